//! Attaching to containers started with stdin and/or a terminal, against all three
//! runtimes: input reaches the container, output reaches every attached session,
//! `stdin_once` closes the input when the first session ends, a plain stdin stays open
//! across sessions, and a terminal container gets a resizable pty with `TERM` set.

mod common;

use std::time::Duration;

use common::{exited, labels, Ctx, Kind};
use container_runtime::{AttachSession, ContainerIo, ContainerState, Error, OutputStream};
use tokio::io::AsyncWriteExt;

async fn start_io(ctx: &Ctx, name: &str, args: &[&str], io: ContainerIo) -> String {
    let id = ctx.id(name);
    ctx.rt
        .start_with_io(&id, &ctx.spec(&id, args), &ctx.log(&id), labels(&id), io)
        .await
        .unwrap_or_else(|e| panic!("start {id}: {e}"));
    id
}

async fn attach(ctx: &Ctx, id: &str) -> AttachSession {
    attach_with(ctx, id, true).await
}

async fn attach_with(ctx: &Ctx, id: &str, stdin: bool) -> AttachSession {
    ctx.rt
        .attach(id, stdin)
        .await
        .unwrap()
        .expect("the container should be attachable")
}

/// Reads output until `until` appears in what `stream` carried; returns all of it.
async fn read_until(s: &mut AttachSession, stream: OutputStream, until: &str) -> String {
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(until) {
            match s.next_output().await.unwrap() {
                Some((st, data)) if st == stream => seen.push_str(&String::from_utf8_lossy(&data)),
                Some(_) => {}
                None => panic!("output ended before {until:?}; got {seen:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {until:?} in time; got {seen:?}"));
    seen
}

/// Reads the rest of the output (until the container is gone).
async fn read_to_end(s: &mut AttachSession) -> String {
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some((_, data)) = s.next_output().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("output did not end; got {seen:?}"));
    seen
}

async fn stdin_once(kind: Kind) {
    let ctx = Ctx::new(kind);
    let io = ContainerIo {
        stdin: true,
        stdin_once: true,
        tty: false,
    };
    let script = "while read l; do echo got:$l; echo err:$l >&2; done; echo eof";
    let id = start_io(&ctx, "once", &["sh", "-c", script], io).await;

    // A session without input leaves the input alone.
    let mut watcher = attach_with(&ctx, &id, false).await;
    assert!(watcher.take_stdin().is_none());
    drop(watcher);
    let mut first = attach(&ctx, &id).await;
    let mut second = attach(&ctx, &id).await;
    assert!(!first.is_tty() && first.resizer().is_none());
    let mut input = first.take_stdin().expect("the first session gets stdin");
    // Only one copy of the input exists: later sessions get none.
    assert!(second.take_stdin().is_none());

    input.write_all(b"a\n").await.unwrap();
    read_until(&mut first, OutputStream::Stdout, "got:a\n").await;
    read_until(&mut first, OutputStream::Stderr, "err:a\n").await;
    read_until(&mut second, OutputStream::Stdout, "got:a\n").await;

    // The session ending closes the container's input.
    drop(input);
    drop(first);
    let rest = read_to_end(&mut second).await;
    assert!(rest.contains("eof"), "{rest:?}");
    let info = ctx.wait_exit(&id).await;
    assert_eq!(exited(&info).0, 0, "{info:?}");
    let logged: Vec<String> = ctx.log_records(&id).into_iter().map(|r| r.3).collect();
    assert_eq!(logged, ["got:a", "err:a", "eof"].map(String::from).to_vec());

    // An exited container cannot be attached to.
    assert!(matches!(
        ctx.rt.attach(&id, true).await,
        Err(Error::NotRunning(_))
    ));
}
per_runtime!(stdin_once);

async fn stdin_stays_open(kind: Kind) {
    let ctx = Ctx::new(kind);
    let io = ContainerIo {
        stdin: true,
        stdin_once: false,
        tty: false,
    };
    let id = start_io(&ctx, "open", &["cat"], io).await;
    for word in ["one", "two"] {
        let mut s = attach(&ctx, &id).await;
        let mut input = s.take_stdin().expect("every session gets stdin");
        input
            .write_all(format!("{word}\n").as_bytes())
            .await
            .unwrap();
        read_until(&mut s, OutputStream::Stdout, &format!("{word}\n")).await;
        // Detaching does not end the container's input.
        drop(input);
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let info = ctx.rt.get(&id).unwrap().unwrap();
    assert!(
        matches!(info.state, ContainerState::Running { .. }),
        "{info:?}"
    );
}
per_runtime!(stdin_stays_open);

async fn terminal(kind: Kind) {
    let ctx = Ctx::new(kind);
    let io = ContainerIo {
        stdin: true,
        stdin_once: true,
        tty: true,
    };
    let id = start_io(&ctx, "tty", &["sh"], io).await;
    let mut s = attach(&ctx, &id).await;
    assert!(s.is_tty());
    s.resizer().unwrap().resize(100, 30).unwrap();
    let mut input = s.take_stdin().unwrap();
    input.write_all(b"tty; stty size\n").await.unwrap();
    let out = read_until(&mut s, OutputStream::Stdout, "30 100\r\n").await;
    assert!(out.contains("/dev/pts/"), "{out:?}");

    // With a terminal, ending a session does not close the input: a new session still
    // drives the same shell.
    drop(input);
    drop(s);
    let mut s = attach(&ctx, &id).await;
    let mut input = s.take_stdin().unwrap();
    input
        .write_all(b"echo term=$TERM; echo oops >&2; exit 4\n")
        .await
        .unwrap();
    let out = read_to_end(&mut s).await;
    assert!(out.contains("term=xterm\r\n"), "{out:?}");
    // Standard error is the terminal too.
    assert!(out.contains("oops\r\n"), "{out:?}");
    let info = ctx.wait_exit(&id).await;
    assert_eq!(exited(&info).0, 4, "{info:?}");
    let logged = ctx.log_records(&id);
    assert!(
        logged
            .iter()
            .any(|r| r.1 == "stdout" && r.3.contains("term=xterm")),
        "{logged:?}"
    );
    assert!(logged.iter().all(|r| r.1 == "stdout"), "{logged:?}");
}
per_runtime!(terminal);

/// Containers without stdin and terminal have no attach socket: their output is only in
/// the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_containers_are_not_attachable() {
    let ctx = Ctx::new(Kind::Builtin);
    let id = ctx.id("plain");
    ctx.start(&id, &ctx.spec(&id, &["sleep", "1000"])).await;
    assert!(ctx.rt.attach(&id, true).await.unwrap().is_none());
    let dir = ctx.rt.bundle_dir(&id).unwrap();
    assert!(!dir.join("attach.sock").exists());
}
