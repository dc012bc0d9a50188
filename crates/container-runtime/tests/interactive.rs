//! Interactive exec (`exec_spawn`) against all three runtimes: stdin round trips, exit
//! codes, terminals (device name, resize, TERM), start failures, and that a dropped
//! session leaves no process behind.

mod common;

use std::time::{Duration, Instant};

use common::{processes_mentioning, Ctx, Kind};
use container_runtime::{Error, ExecReader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn read_all(r: Option<ExecReader>) -> String {
    let Some(mut r) = r else {
        return String::new();
    };
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut out))
        .await
        .expect("output did not end")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

async fn running(ctx: &Ctx, name: &str) -> String {
    let id = ctx.id(name);
    ctx.start(&id, &ctx.spec(&id, &["sleep", "1000"])).await;
    id
}

async fn stdin_round_trip(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = running(&ctx, "io").await;

    let mut session = ctx
        .rt
        .exec_spawn(&id, &s(&["cat"]), false, true)
        .await
        .unwrap();
    assert!(!session.is_tty());
    let mut stdin = session.take_stdin().unwrap();
    let out = tokio::spawn(read_all(session.take_stdout()));
    let err = tokio::spawn(read_all(session.take_stderr()));
    stdin.write_all(b"hello\n").await.unwrap();
    stdin.write_all(b"world\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    assert_eq!(out.await.unwrap(), "hello\nworld\n");
    assert_eq!(err.await.unwrap(), "");
    assert_eq!(session.wait().await.unwrap(), 0);
    // wait() can be asked again.
    assert_eq!(session.wait().await.unwrap(), 0);

    // Without stdin the command reads end of file at once.
    let mut session = ctx
        .rt
        .exec_spawn(&id, &s(&["cat"]), false, false)
        .await
        .unwrap();
    assert!(session.take_stdin().is_none());
    assert_eq!(read_all(session.take_stdout()).await, "");
    assert_eq!(session.wait().await.unwrap(), 0);
}
per_runtime!(stdin_round_trip);

async fn exit_codes(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = running(&ctx, "code").await;
    let mut session = ctx
        .rt
        .exec_spawn(
            &id,
            &s(&["sh", "-c", "echo out; echo oops >&2; exit 7"]),
            false,
            false,
        )
        .await
        .unwrap();
    let out = tokio::spawn(read_all(session.take_stdout()));
    let err = tokio::spawn(read_all(session.take_stderr()));
    assert_eq!(session.wait().await.unwrap(), 7);
    assert_eq!(out.await.unwrap(), "out\n");
    assert_eq!(err.await.unwrap(), "oops\n");

    // Killed by a signal: 128+9.
    let mut session = ctx
        .rt
        .exec_spawn(&id, &s(&["sh", "-c", "kill -9 $$"]), false, false)
        .await
        .unwrap();
    assert_eq!(session.wait().await.unwrap(), 137);

    // A command that does not exist fails to start, with or without a terminal.
    for tty in [false, true] {
        let res = match ctx.rt.exec_spawn(&id, &s(&["nope"]), tty, true).await {
            Ok(mut session) => {
                let out = tokio::spawn(read_all(session.take_stdout()));
                let err = tokio::spawn(read_all(session.take_stderr()));
                let res = session.wait().await;
                let _ = (out.await, err.await);
                res
            }
            Err(e) => Err(e),
        };
        assert!(
            matches!(&res, Err(Error::ExecFailed(m)) if m.contains("\"nope\"") && m.contains("not found")),
            "tty={tty}: {res:?}"
        );
    }
}
per_runtime!(exit_codes);

async fn terminal(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = running(&ctx, "tty").await;
    let mut session = ctx
        .rt
        .exec_spawn(&id, &s(&["sh"]), true, true)
        .await
        .unwrap();
    assert!(session.is_tty());
    assert!(session.take_stderr().is_none());
    session.resize(100, 40).unwrap();
    let out = tokio::spawn(read_all(session.take_stdout()));
    let mut stdin = session.take_stdin().unwrap();
    stdin
        .write_all(b"tty; stty size; echo term=$TERM; exit 3\n")
        .await
        .unwrap();
    assert_eq!(session.wait().await.unwrap(), 3);
    let out = out.await.unwrap();
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("40 100"), "{out:?}");
    assert!(out.contains("term=xterm"), "{out:?}");
    // A terminal turns \n into \r\n.
    assert!(out.contains("40 100\r\n"), "{out:?}");

    // Resizing while the command runs reaches it.
    let mut session = ctx
        .rt
        .exec_spawn(&id, &s(&["sh", "-c", "read x; stty size"]), true, true)
        .await
        .unwrap();
    let resizer = session.resizer().unwrap();
    let out = tokio::spawn(read_all(session.take_stdout()));
    let mut stdin = session.take_stdin().unwrap();
    resizer.resize(30, 12).unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    assert_eq!(session.wait().await.unwrap(), 0);
    let out = out.await.unwrap();
    assert!(out.contains("12 30"), "{out:?}");
}
per_runtime!(terminal);

async fn dropped_sessions_kill(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = running(&ctx, "drop").await;
    let marker = match kind {
        Kind::Builtin => "424101",
        Kind::Runc => "424102",
        Kind::Crun => "424103",
    };
    for tty in [false, true] {
        let session = ctx
            .rt
            .exec_spawn(&id, &s(&["sleep", marker]), tty, true)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        // /proc/<pid>/cmdline separates arguments with NULs.
        let needle = format!("sleep\0{marker}");
        while processes_mentioning(&needle).is_empty() {
            assert!(Instant::now() < deadline, "exec never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(session);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes_mentioning(&needle).is_empty() {
            assert!(
                Instant::now() < deadline,
                "tty={tty}: exec survived its session"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The exec bookkeeping files go away too.
    let bundle = ctx.rt.bundle_dir(&id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = std::fs::read_dir(&bundle)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("exec-"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
per_runtime!(dropped_sessions_kill);
