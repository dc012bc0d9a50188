//! Container lifecycle against every runtime (builtin, runc, crun): output in the CRI log,
//! exit codes and reasons, start errors, stop with SIGTERM and SIGKILL, OOM kills,
//! adoption by a new runtime object, exec in a sandbox, and cleanup after remove. Needs
//! root, cgroups and `/bin/busybox`.

mod common;

use std::time::{Duration, Instant};

use common::{exited, in_sandbox, with_memory_limit, Ctx, Kind};
use container_runtime::sandbox::{Sandbox, SandboxNamespaces};
use container_runtime::{ContainerState, Error};

async fn echo_output(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = ctx.id("echo");
    let spec = ctx.spec(
        &id,
        &[
            "sh",
            "-c",
            "echo hello; echo oops >&2; echo; printf partial",
        ],
    );
    let info = ctx.start(&id, &spec).await;
    assert!(matches!(
        info.state,
        ContainerState::Running { .. } | ContainerState::Exited { .. }
    ));
    assert_eq!(info.labels["io.kubernetes.container.name"], id);
    let info = ctx.wait_exit(&id).await;
    let (code, signal, oom, reason, _) = exited(&info);
    assert_eq!((code, signal, oom), (0, None, false));
    assert_eq!(reason.as_deref(), Some("Completed"));

    let recs = ctx.log_records(&id);
    let mut bodies: Vec<(String, String, String)> = recs
        .iter()
        .map(|(_, s, t, b)| (s.clone(), t.clone(), b.clone()))
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec![
            ("stderr".into(), "F".into(), "oops".into()),
            ("stdout".into(), "F".into(), "".into()),
            ("stdout".into(), "F".into(), "hello".into()),
            ("stdout".into(), "P".into(), "partial".into()),
        ]
    );
    for (ts, ..) in &recs {
        assert!(
            ts.len() >= 20 && ts.ends_with('Z') && &ts[10..11] == "T",
            "{ts}"
        );
    }
    // stdout records keep their order.
    let out: Vec<&str> = recs
        .iter()
        .filter(|r| r.1 == "stdout")
        .map(|r| r.3.as_str())
        .collect();
    assert_eq!(out, vec!["hello", "", "partial"]);
}
per_runtime!(echo_output);

async fn exit_code(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = ctx.id("exit3");
    ctx.start(&id, &ctx.spec(&id, &["sh", "-c", "exit 3"]))
        .await;
    let info = ctx.wait_exit(&id).await;
    let (code, signal, oom, reason, _) = exited(&info);
    assert_eq!((code, signal, oom), (3, None, false));
    assert_eq!(reason.as_deref(), Some("Error"));
    let ContainerState::Exited {
        started_at,
        finished_at,
        ..
    } = info.state
    else {
        unreachable!()
    };
    assert!(started_at.is_some_and(|s| s <= finished_at));
}
per_runtime!(exit_code);

async fn missing_binary(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = ctx.id("nope");
    let err = ctx
        .rt
        .start(
            &id,
            &ctx.spec(&id, &["nope"]),
            &ctx.log(&id),
            common::labels(&id),
        )
        .await
        .unwrap_err();
    let Error::StartFailed(msg) = err else {
        panic!("unexpected error {err:?}")
    };
    assert!(
        msg.contains(r#"exec: "nope": executable file not found in $PATH"#),
        "{msg}"
    );
    let info = ctx.rt.get(&id).unwrap().unwrap();
    let (code, _, _, reason, message) = exited(&info);
    assert_eq!(code, 128);
    assert_eq!(reason.as_deref(), Some("StartError"));
    assert_eq!(message.as_deref(), Some(msg.as_str()));
    // Nothing from the runtime itself ends up in the container log.
    assert!(
        ctx.log_records(&id).is_empty(),
        "{:?}",
        ctx.log_records(&id)
    );
    ctx.rt.remove(&id).unwrap();
    assert!(ctx.rt.get(&id).unwrap().is_none());
}
per_runtime!(missing_binary);

async fn stop_with_sigterm(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = ctx.id("term");
    let script = "trap 'echo got TERM; exit 42' TERM; echo ready; sleep 1000 & wait";
    ctx.start(&id, &ctx.spec(&id, &["sh", "-c", script])).await;
    wait_for_log(&ctx, &id, "ready").await;
    let t = Instant::now();
    ctx.rt
        .stop(&id, Duration::from_secs(2), None)
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let info = ctx.rt.get(&id).unwrap().unwrap();
    let (code, signal, _, reason, _) = exited(&info);
    assert_eq!((code, signal), (42, None));
    assert_eq!(reason.as_deref(), Some("Error"));
    assert!(ctx.log_records(&id).iter().any(|r| r.3 == "got TERM"));
    // Stopping again and signalling an exited container are no-ops.
    ctx.rt
        .stop(&id, Duration::from_secs(2), None)
        .await
        .unwrap();
    ctx.rt.signal(&id, libc::SIGTERM).unwrap();
}
per_runtime!(stop_with_sigterm);

async fn stop_with_sigkill(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = ctx.id("kill");
    let script = "trap '' TERM; echo ready; sleep 1000 & wait";
    ctx.start(&id, &ctx.spec(&id, &["sh", "-c", script])).await;
    wait_for_log(&ctx, &id, "ready").await;
    let t = Instant::now();
    ctx.rt
        .stop(&id, Duration::from_secs(1), None)
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let info = ctx.rt.get(&id).unwrap().unwrap();
    let (code, signal, oom, reason, _) = exited(&info);
    assert_eq!((code, signal, oom), (137, Some(9), false));
    assert_eq!(reason.as_deref(), Some("Error"));
}
per_runtime!(stop_with_sigkill);

async fn oom_killed(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = ctx.id("oom");
    let spec = with_memory_limit(
        ctx.spec(&id, &["sh", "-c", "head -c 100m /dev/zero | tail"]),
        16 << 20,
    );
    ctx.start(&id, &spec).await;
    let info = ctx.wait_exit(&id).await;
    let (code, _, oom, reason, _) = exited(&info);
    assert!(oom, "{info:?}");
    assert_eq!(code, 137);
    assert_eq!(reason.as_deref(), Some("OOMKilled"));
}
per_runtime!(oom_killed);

async fn adoption(kind: Kind) {
    let mut ctx = Ctx::new(kind);
    let id = ctx.id("adopt");
    let script = "trap 'exit 0' TERM; sleep 1000 & wait";
    let info = ctx.start(&id, &ctx.spec(&id, &["sh", "-c", script])).await;
    let ContainerState::Running { pid, started_at } = info.state else {
        panic!("{info:?}")
    };
    // The shim is detached: not our child.
    let shim = ctx.rt.shim_pid(&id).unwrap().expect("shim runs");
    let stat = std::fs::read_to_string(format!("/proc/{shim}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, std::process::id() as i32);
    // ... and in its own session, away from the kubelet's process group and terminal.
    let sid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sid, shim);
    // The container process is the shim's child.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let cppid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cppid, shim);
    // Memory of the shim (shown with --nocapture): RSS, and PSS/private from smaps.
    let rollup = std::fs::read_to_string(format!("/proc/{shim}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        rollup
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    };
    eprintln!(
        "{kind:?} shim {shim}: rss {} kB, pss {} kB, private {} kB",
        field("Rss:"),
        field("Pss:"),
        field("Private_Clean:") + field("Private_Dirty:")
    );

    // sh forks its sleep after the container started: allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let stats = ctx.rt.stats(&id).unwrap();
        if stats.pids >= 2 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(stats.memory_usage_bytes > 0 && stats.pids >= 2, "{stats:?}");

    // A restarted kubelet builds a new runtime over the same state dir.
    ctx.reopen();
    let list = ctx.rt.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].state, ContainerState::Running { pid, started_at });
    assert_eq!(list[0].labels, common::labels(&id));
    ctx.rt
        .stop(&id, Duration::from_secs(5), None)
        .await
        .unwrap();
    let (code, signal, ..) = exited(&ctx.rt.get(&id).unwrap().unwrap());
    assert_eq!((code, signal), (0, None));
}
per_runtime!(adoption);

async fn exec_in_sandbox(kind: Kind) {
    let ctx = Ctx::new(kind);
    let sb_dir = ctx.tmp.path().join("sandbox");
    let all = SandboxNamespaces {
        net: true,
        ipc: true,
        uts: true,
    };
    let sb = ctx
        .rt
        .create_sandbox(&sb_dir, "uid-1", "web-0", all)
        .await
        .unwrap();
    let _guard = SandboxGuard(sb.clone());
    let id = ctx.id("exec");
    let spec = in_sandbox(ctx.spec(&id, &["sleep", "1000"]), &sb);
    ctx.start(&id, &spec).await;
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let t = Duration::from_secs(5);

    let out = ctx
        .rt
        .exec_capture(&id, &s(&["cat", "/etc/hostname"]), t)
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.timed_out), (0, false));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web-0\n");
    let out = ctx
        .rt
        .exec_capture(&id, &s(&["hostname"]), t)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web-0\n");

    let out = ctx
        .rt
        .exec_capture(
            &id,
            &s(&["sh", "-c", "echo out; echo err >&2; echo $PATH; exit 5"]),
            t,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 5);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "out\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    let err = ctx
        .rt
        .exec_capture(&id, &s(&["nope"]), t)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ExecFailed(m) if m.contains("\"nope\"") && m.contains("not found")),
        "{err:?}"
    );

    let start = Instant::now();
    let out = ctx
        .rt
        .exec_capture(&id, &s(&["sleep", "30"]), Duration::from_millis(500))
        .await
        .unwrap();
    assert!(out.timed_out);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // The timed-out command was killed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ps = ctx
        .rt
        .exec_capture(&id, &s(&["ps", "-o", "pid,args"]), t)
        .await
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout).to_string();
    assert!(
        ps.contains("sleep 1000") && !ps.contains("sleep 30"),
        "{ps}"
    );
    // Nothing but pid 1 and this ps (no zombies left by the killed command).
    assert_eq!(ps.lines().count(), 3, "{ps}");
    ctx.rt
        .stop(&id, Duration::from_secs(0), None)
        .await
        .unwrap();
    let err = ctx
        .rt
        .exec_capture(&id, &s(&["true"]), t)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotRunning(_)), "{err:?}");
}
per_runtime!(exec_in_sandbox);

async fn remove_leaves_nothing(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = ctx.id("rm");
    let tmp = ctx.tmp.path().to_path_buf();
    let mounts_before = common::mounts_under(&tmp);
    let info = ctx.start(&id, &ctx.spec(&id, &["sleep", "1000"])).await;
    let ContainerState::Running { pid, .. } = info.state else {
        panic!()
    };
    let cgroup = ctx.rt.cgroup_path(&id).unwrap();
    let dirs = container_runtime::cgroups::cgroup_dirs(&cgroup).unwrap();
    assert!(
        dirs.iter().any(|d| d.is_dir()),
        "no cgroup dirs for {cgroup}"
    );
    assert!(!common::processes_mentioning(&id).is_empty());
    assert!(container_runtime::cgroups::cgroup_pids(&cgroup).contains(&pid));

    // remove() of a running container kills it first.
    ctx.rt.remove(&id).unwrap();
    assert!(ctx.rt.get(&id).unwrap().is_none());
    assert!(ctx.rt.list().unwrap().is_empty());
    for d in &dirs {
        assert!(!d.exists(), "{} left", d.display());
    }
    assert_eq!(common::processes_mentioning(&id), Vec::<i32>::new());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(common::mounts_under(&tmp), mounts_before);
    // Only the runtime roots stay in the state dir; the log is kept.
    let left: Vec<_> = std::fs::read_dir(&ctx.state_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![".runtime".to_string()]);
    let root = ctx.state_dir.join(".runtime");
    for e in std::fs::read_dir(&root).unwrap() {
        let e = e.unwrap();
        let inner: Vec<_> = std::fs::read_dir(e.path()).unwrap().collect();
        assert!(inner.is_empty(), "{} not empty", e.path().display());
    }
    assert!(ctx.log(&id).exists());
    // Removing again is fine.
    ctx.rt.remove(&id).unwrap();
}
per_runtime!(remove_leaves_nothing);

async fn two_containers_share_sandbox(kind: Kind) {
    let ctx = Ctx::new(kind);
    let sb_dir = ctx.tmp.path().join("sandbox");
    let all = SandboxNamespaces {
        net: true,
        ipc: true,
        uts: true,
    };
    let sb = ctx
        .rt
        .create_sandbox(&sb_dir, "uid-2", "web-1", all)
        .await
        .unwrap();
    let _guard = SandboxGuard(sb.clone());
    let server = ctx.id("server");
    let client = ctx.id("client");
    let s1 = in_sandbox(
        ctx.spec(
            &server,
            &[
                "sh",
                "-c",
                "hostname; nc -l -p 8080 -e sh -c 'read l; echo got-$l'",
            ],
        ),
        &sb,
    );
    let s2 = in_sandbox(
        ctx.spec(
            &client,
            &[
                "sh",
                "-c",
                "hostname; for i in 1 2 3 4 5 6 7 8 9 10; do echo hello | nc 127.0.0.1 8080 && exit 0; sleep 0.2; done; exit 1",
            ],
        ),
        &sb,
    );
    ctx.start(&server, &s1).await;
    ctx.start(&client, &s2).await;
    let c = ctx.wait_exit(&client).await;
    assert_eq!(exited(&c).0, 0, "{:?}", ctx.log_records(&client));
    let s = ctx.wait_exit(&server).await;
    assert_eq!(exited(&s).0, 0);
    let server_out: Vec<String> = ctx.log_records(&server).into_iter().map(|r| r.3).collect();
    let client_out: Vec<String> = ctx.log_records(&client).into_iter().map(|r| r.3).collect();
    // The server answers over the connection; the client prints the answer.
    assert_eq!(server_out, vec!["web-1".to_string()]);
    assert_eq!(
        client_out,
        vec!["web-1".to_string(), "got-hello".to_string()]
    );
}
per_runtime!(two_containers_share_sandbox);

struct SandboxGuard(Sandbox);

impl Drop for SandboxGuard {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}

async fn wait_for_log(ctx: &Ctx, id: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ctx.log_records(id).iter().any(|r| r.3 == text) {
        assert!(Instant::now() < deadline, "{id}: no {text:?} in the log");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn shim_killed(kind: Kind) {
    let ctx = Ctx::new(kind);
    let id = ctx.id("orphan");
    let info = ctx.start(&id, &ctx.spec(&id, &["sleep", "1000"])).await;
    let ContainerState::Running { pid, .. } = info.state else {
        panic!("{info:?}")
    };
    let shim = ctx.rt.shim_pid(&id).unwrap().unwrap();
    // SAFETY: kill(2) on the shim we just looked up.
    assert_eq!(unsafe { libc::kill(shim, libc::SIGKILL) }, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ctx.rt.shim_pid(&id).unwrap(), None);
    // The container outlives its shim.
    assert!(matches!(
        ctx.rt.get(&id).unwrap().unwrap().state,
        ContainerState::Running { pid: p, .. } if p == pid
    ));
    ctx.rt.stop(&id, Duration::ZERO, None).await.unwrap();
    let (code, _, _, reason, message) = exited(&ctx.rt.get(&id).unwrap().unwrap());
    assert_eq!(code, 255);
    assert_eq!(reason.as_deref(), Some("Error"));
    assert!(message.unwrap().contains("shim"));
    let cgroup = ctx.rt.cgroup_path(&id).unwrap();
    ctx.rt.remove(&id).unwrap();
    for d in container_runtime::cgroups::cgroup_dirs(&cgroup).unwrap() {
        assert!(!d.exists(), "{} left", d.display());
    }
    assert!(ctx.rt.list().unwrap().is_empty());
}
per_runtime!(shim_killed);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_reopen_after_rotation() {
    let ctx = Ctx::new(Kind::Builtin);
    let id = ctx.id("rotate");
    let script = "echo one; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo two";
    let spec = ctx.spec(&id, &["sh", "-c", script]);
    // The rootfs is shared with the host: the test signals through its /tmp.
    let go = ctx.rootfs.join("tmp/go");
    let mut spec = spec;
    let mut root = spec.root().clone().unwrap();
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    ctx.start(&id, &spec).await;
    wait_for_log(&ctx, &id, "one").await;
    let rotated = ctx.log(&id).with_extension("log.1");
    std::fs::rename(ctx.log(&id), &rotated).unwrap();
    ctx.rt.reopen_log(&id).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(&go, "").unwrap();
    ctx.wait_exit(&id).await;
    let old: Vec<String> = common::parse_log(&std::fs::read_to_string(&rotated).unwrap())
        .into_iter()
        .map(|r| r.3)
        .collect();
    let new: Vec<String> = ctx.log_records(&id).into_iter().map(|r| r.3).collect();
    assert_eq!(old, vec!["one".to_string()]);
    assert_eq!(new, vec!["two".to_string()]);
    assert!(matches!(ctx.rt.reopen_log(&id), Err(Error::NotRunning(_))));
}

/// Pids of this test process's children whose command line mentions `needle`.
fn children_mentioning(needle: &str) -> Vec<i32> {
    common::processes_mentioning(needle)
        .into_iter()
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            ppid == Some(std::process::id())
        })
        .collect()
}

/// Shims are forked by one launcher per runtime, named after their container, and a
/// launcher that died is replaced; dropping the runtime ends its launcher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shims_are_forked_by_a_launcher() {
    let mut ctx = Ctx::new(Kind::Builtin);
    let launcher_name = format!("{}\0zygote\0", env!("CARGO_BIN_EXE_ferrokube-shim"));
    // Under `cargo test` other tests' launchers are this process's children too.
    let ours = || children_mentioning(&launcher_name);
    let before = ours();
    let a = ctx.id("launched-a");
    ctx.start(&a, &ctx.spec(&a, &["sleep", "1000"])).await;
    let shim = ctx.rt.shim_pid(&a).unwrap().expect("shim runs");
    let cmdline = std::fs::read(format!("/proc/{shim}/cmdline")).unwrap();
    let title = String::from_utf8_lossy(&cmdline);
    let expected = format!("container-shim run {}", ctx.state_dir.join(&a).display());
    assert!(title.starts_with(&expected), "shim is named {title:?}");
    let launchers: Vec<i32> = ours().into_iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(launchers.len(), 1, "one new launcher: {launchers:?}");

    // SAFETY: kill(2) on the launcher we just found.
    assert_eq!(unsafe { libc::kill(launchers[0], libc::SIGKILL) }, 0);
    let b = ctx.id("launched-b");
    ctx.start(&b, &ctx.spec(&b, &["sleep", "1000"])).await;
    assert!(ctx.rt.shim_pid(&b).unwrap().is_some());
    let replaced: Vec<i32> = ours().into_iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(replaced.len(), 1, "one launcher again: {replaced:?}");
    assert_ne!(replaced[0], launchers[0]);
    // The first container's shim did not depend on the launcher.
    assert!(ctx.rt.shim_pid(&a).unwrap().is_some());

    // A restarted kubelet's runtime starts its own launcher when it needs one; the old
    // one ends with the old runtime.
    ctx.reopen();
    assert!(
        !std::path::Path::new(&format!("/proc/{}", replaced[0])).exists(),
        "launcher outlived its runtime"
    );
}
