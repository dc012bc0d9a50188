//! What a container sees from inside, side by side for the built-in runtime, runc and
//! crun: the same spec (user, capabilities, read-only root, masked and read-only paths,
//! bind mounts, devices and the device cgroup, sysctls, limits, working directory) must
//! give the same answers in each, and the answers must be the expected ones. Needs root,
//! cgroups and `/bin/busybox`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{Ctx, Kind};
use oci_spec::runtime::{Capability, LinuxCapabilities, Mount, Spec, UserBuilder};

/// Prints `key=value` lines about the container, as the shell inside sees it.
const REPORT: &str = r#"
echo pid=$$
echo host=$(hostname)
echo cwd=$(pwd)
echo foo=$FOO
echo id="$(id)"
for k in CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs; do
  echo $k=$(sed -n "s/^$k:[[:space:]]*//p" /proc/self/status)
done
echo nofile=$(ulimit -n)
echo oom=$(cat /proc/self/oom_score_adj)
echo shm_rmid=$(cat /proc/sys/kernel/shm_rmid_forced)
touch /rootfile 2>/dev/null && echo root=rw || echo root=ro
touch /tmp/x 2>/dev/null && echo tmp=rw || echo tmp=ro
touch /data/x 2>/dev/null && echo data=rw || echo data=ro
touch /ro/x 2>/dev/null && echo ro=rw || echo ro=ro
echo keys=$(wc -c < /proc/keys)
echo acpi=$(ls /proc/acpi | wc -l)
echo firmware=$(ls /sys/firmware | wc -l)
(echo 1 > /proc/sys/kernel/shm_rmid_forced) 2>/dev/null && echo procsys=rw || echo procsys=ro
touch /sys/x 2>/dev/null && echo sys=rw || echo sys=ro
echo dev="$(ls /dev | sort | tr '\n' ' ')"
echo devlinks="$(for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done | tr '\n' ' ')"
echo zero=$(head -c 3 /dev/zero | wc -c)
(echo x > /dev/null) 2>/dev/null && echo null=ok || echo null=denied
if mknod /tmp/disk $DISK 2>/dev/null; then
  head -c 1 /tmp/disk 2>&1 >/dev/null | grep -q 'not permitted' && echo disk=denied || echo disk=open
else
  echo disk=nomknod
fi
echo memlimit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null)
echo cgroupfs="$(ls /sys/fs/cgroup | sort | tr '\n' ' ')"
"#;

fn caps(list: &[Capability]) -> std::collections::HashSet<Capability> {
    list.iter().copied().collect()
}

fn bind(dest: &str, source: &Path, ro: bool) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(source.to_path_buf()));
    m.set_options(Some(vec![
        "rbind".into(),
        if ro { "ro" } else { "rw" }.into(),
    ]));
    m
}

/// The host's root file system device, as `b MAJOR MINOR` for mknod.
fn root_disk() -> String {
    let dev = fs::metadata("/").unwrap().dev();
    format!("b {} {}", libc::major(dev), libc::minor(dev))
}

/// Runs the report in a container of `kind` with the spec `adjust` makes; returns it.
async fn report(kind: Kind, adjust: impl Fn(&Ctx, Spec) -> Spec) -> BTreeMap<String, String> {
    let ctx = Ctx::new(kind);
    for applet in [
        "id", "sed", "wc", "touch", "readlink", "sort", "tr", "mknod", "cut",
    ] {
        let _ = std::os::unix::fs::symlink("busybox", ctx.rootfs.join("bin").join(applet));
    }
    let id = ctx.id("isolation");
    let script = format!("DISK='{}'\n{REPORT}", root_disk());
    let spec = adjust(&ctx, ctx.spec(&id, &["sh", "-c", &script]));
    ctx.start(&id, &spec).await;
    let info = ctx.wait_exit(&id).await;
    let (code, ..) = common::exited(&info);
    let mut out = BTreeMap::new();
    for (_, stream, _, body) in ctx.log_records(&id) {
        if stream == "stderr" {
            eprintln!("{kind:?} stderr: {body}");
            continue;
        }
        if let Some((k, v)) = body.split_once('=') {
            out.insert(k.to_string(), v.trim().to_string());
        }
    }
    assert_eq!(code, 0, "{kind:?}: the report failed: {out:?}");
    out
}

/// Runs the same report under every runtime and checks that they agree.
async fn side_by_side(adjust: impl Fn(&Ctx, Spec) -> Spec + Copy) -> BTreeMap<String, String> {
    let builtin = report(Kind::Builtin, adjust).await;
    for other in [Kind::Runc, Kind::Crun] {
        let mut theirs = report(other, adjust).await;
        if other == Kind::Crun {
            // crun 1.8 links net_cls and net_prio in /sys/fs/cgroup although this
            // machine does not mount them, and /dev/core although it has no
            // /proc/kcore; runc and the built-in runtime do neither.
            for (key, extra) in [
                ("cgroupfs", &["net_cls", "net_prio"][..]),
                ("dev", &["core"]),
            ] {
                if let Some(v) = theirs.get_mut(key) {
                    *v = v
                        .split(' ')
                        .filter(|w| !extra.contains(w))
                        .collect::<Vec<_>>()
                        .join(" ");
                }
            }
        }
        for (k, v) in &theirs {
            assert_eq!(
                builtin.get(k),
                Some(v),
                "{k}: builtin {:?} vs {other:?} {v:?}",
                builtin.get(k)
            );
        }
        assert_eq!(builtin.len(), theirs.len(), "{builtin:?} vs {theirs:?}");
    }
    builtin
}

fn root_spec(ctx: &Ctx, mut spec: Spec) -> Spec {
    let data = ctx.tmp.path().join("data");
    let ro = ctx.tmp.path().join("ro");
    fs::create_dir_all(&data).unwrap();
    fs::create_dir_all(&ro).unwrap();
    spec.set_hostname(Some("iso".into()));
    let mut root = spec.root().clone().unwrap();
    root.set_readonly(Some(true));
    spec.set_root(Some(root));
    let mut p = spec.process().clone().unwrap();
    p.set_cwd(PathBuf::from("/work/dir"));
    let mut env = p.env().clone().unwrap_or_default();
    env.push("FOO=bar".into());
    p.set_env(Some(env));
    p.set_oom_score_adj(Some(500));
    p.set_no_new_privileges(Some(false));
    let set = caps(&[
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fowner,
        Capability::Mknod,
        Capability::Setuid,
        Capability::Setgid,
        Capability::Kill,
        Capability::NetBindService,
    ]);
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set));
    c.set_inheritable(None);
    c.set_ambient(None);
    p.set_capabilities(Some(c));
    spec.set_process(Some(p));
    let mut mounts = spec.mounts().clone().unwrap();
    let mut tmp = Mount::default();
    tmp.set_destination(PathBuf::from("/tmp"));
    tmp.set_typ(Some("tmpfs".into()));
    tmp.set_source(Some(PathBuf::from("tmpfs")));
    tmp.set_options(Some(vec!["nosuid".into(), "mode=1777".into()]));
    mounts.push(tmp);
    mounts.push(bind("/data", &data, false));
    mounts.push(bind("/ro", &ro, true));
    spec.set_mounts(Some(mounts));
    let mut linux = spec.linux().clone().unwrap();
    linux.set_sysctl(Some(
        [("kernel.shm_rmid_forced".to_string(), "1".to_string())].into(),
    ));
    spec.set_linux(Some(linux));
    common::with_memory_limit(spec, 64 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_container_matches_runc_and_crun() {
    let r = side_by_side(root_spec).await;
    let expect = [
        ("pid", "1"),
        ("host", "iso"),
        ("cwd", "/work/dir"),
        ("foo", "bar"),
        ("id", "uid=0 gid=0"),
        ("NoNewPrivs", "0"),
        ("CapInh", "0000000000000000"),
        ("CapEff", "00000000080004eb"),
        ("CapPrm", "00000000080004eb"),
        ("CapBnd", "00000000080004eb"),
        ("CapAmb", "0000000000000000"),
        ("nofile", "1024"),
        ("oom", "500"),
        ("shm_rmid", "1"),
        ("root", "ro"),
        ("tmp", "rw"),
        ("data", "rw"),
        ("ro", "ro"),
        ("keys", "0"),
        ("acpi", "0"),
        ("firmware", "0"),
        ("procsys", "ro"),
        ("sys", "ro"),
        ("zero", "3"),
        ("null", "ok"),
        ("disk", "denied"),
        ("memlimit", "67108864"),
    ];
    for (k, v) in expect {
        assert_eq!(r.get(k).map(String::as_str), Some(v), "{k} in {r:?}");
    }
    for node in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
    ] {
        assert!(
            r["dev"].split(' ').any(|d| d == node),
            "/dev lacks {node}: {}",
            r["dev"]
        );
    }
    assert_eq!(
        r["devlinks"],
        "/proc/self/fd /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2 pts/ptmx"
    );
    assert!(
        r["cgroupfs"].split(' ').any(|d| d == "memory"),
        "{}",
        r["cgroupfs"]
    );
}

fn user_spec(_: &Ctx, mut spec: Spec) -> Spec {
    let mut p = spec.process().clone().unwrap();
    p.set_user(
        UserBuilder::default()
            .uid(1000u32)
            .gid(1000u32)
            .additional_gids(vec![10u32, 20])
            .build()
            .unwrap(),
    );
    let set = caps(&[Capability::NetBindService, Capability::Kill]);
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set.clone()));
    c.set_inheritable(Some(caps(&[Capability::NetBindService])));
    c.set_ambient(Some(caps(&[Capability::NetBindService])));
    p.set_capabilities(Some(c));
    spec.set_process(Some(p));
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_ambient_capabilities_match_runc_and_crun() {
    let r = side_by_side(user_spec).await;
    let expect = [
        ("id", "uid=1000 gid=1000 groups=10,20"),
        ("NoNewPrivs", "1"),
        ("CapInh", "0000000000000400"),
        ("CapPrm", "0000000000000400"),
        ("CapEff", "0000000000000400"),
        ("CapBnd", "0000000000000420"),
        ("CapAmb", "0000000000000400"),
        ("root", "ro"),
        ("null", "ok"),
        ("disk", "nomknod"),
    ];
    for (k, v) in expect {
        assert_eq!(r.get(k).map(String::as_str), Some(v), "{k} in {r:?}");
    }
}
