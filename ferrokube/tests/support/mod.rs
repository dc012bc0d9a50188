//! End-to-end test harness: starts the `ferrokube` binary on a loopback port with a
//! temporary data directory (stopped by PID when the test ends) and runs the real
//! kubectl binaries against it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
pub use testenv::{die_with_parent, free_port, Etcd};

/// A running ferrokube.
pub struct Cluster {
    child: Child,
    /// The etcd it stores in, if not the embedded store.
    pub etcd: Option<Etcd>,
    /// The data directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The HTTPS port.
    pub port: u16,
    /// How long the process took from spawn to ready.
    pub ready_after: Duration,
}

impl Cluster {
    /// Starts `ferrokube server` with the embedded store.
    pub fn start() -> Cluster {
        Self::start_with(&[])
    }

    /// Starts `ferrokube server` on a fresh etcd.
    pub fn start_on_etcd() -> Cluster {
        let etcd = Etcd::start();
        let mut c = Self::start_with(&["--etcd-servers", &etcd.endpoint]);
        c.etcd = Some(etcd);
        c
    }

    /// Starts `ferrokube server` with extra arguments.
    pub fn start_with(extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    /// Starts `ferrokube server` on an existing data directory, without the
    /// server's own kubelet (tests that need nodes bring simulated ones).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Cluster {
        let mut args = vec!["--disable-agent"];
        args.extend_from_slice(extra);
        Self::launch(dir, &args)
    }

    /// Starts `ferrokube server` with its own kubelet (this machine as a node) on
    /// `dir`, with extra arguments.
    /// The kubelet serves its API on a free loopback port and reports 127.0.0.1 as
    /// the node's address, so tests running side by side never collide and nothing
    /// leaves the loopback; eviction only reacts to a nearly exhausted memory. Pods get
    /// no network (a bridge in the host's namespace would give them a route to the
    /// host's network): a test that wants one runs the cluster in a network namespace
    /// of its own and passes `--kubelet-arg pod-network=bridge`; only such a cluster
    /// runs kube-proxy (its rules belong in that namespace, not the host's).
    pub fn start_agent_in(dir: tempfile::TempDir, extra: &[&str]) -> Cluster {
        let port = format!("port={}", free_port());
        let mut args = vec![
            "--kubelet-arg",
            &port,
            "--kubelet-arg",
            "healthz-port=0",
            "--kubelet-arg",
            "address=127.0.0.1",
            "--kubelet-arg",
            "node-ip=127.0.0.1",
            // The host's disk fill level must not evict test pods (upstream's
            // default evicts below 10% free); tests that want pressure set their own.
            "--kubelet-arg",
            "eviction-hard=memory.available<1Mi",
            "--kubelet-arg",
            "pod-network=none",
        ];
        if !extra.contains(&"pod-network=bridge") {
            args.push("--disable-kube-proxy");
        }
        args.extend_from_slice(extra);
        Self::launch(dir, &args)
    }

    /// Starts `ferrokube server` on `dir` listening on `bind` (not only loopback),
    /// with exactly these extra arguments: for a cluster inside network namespaces
    /// a test made, which other nodes join.
    pub fn start_server(dir: tempfile::TempDir, bind: &str, extra: &[&str]) -> Cluster {
        Self::launch_on(dir, bind, extra)
    }

    fn launch(dir: tempfile::TempDir, extra: &[&str]) -> Cluster {
        Self::launch_on(dir, "127.0.0.1", extra)
    }

    fn launch_on(dir: tempfile::TempDir, bind: &str, extra: &[&str]) -> Cluster {
        Self::launch_at(dir, bind, free_port(), extra)
    }

    /// kill -9 of the server, then a new one without its own kubelet (as
    /// [`Cluster::start_in`]) on the same data directory and port, so clients
    /// configured for the old one reconnect to it.
    pub fn restart_in_place(self, extra: &[&str]) -> Cluster {
        let port = self.port;
        let dir = self.kill9();
        let mut args = vec!["--disable-agent"];
        args.extend_from_slice(extra);
        Self::launch_at(dir, "127.0.0.1", port, &args)
    }

    fn launch_at(dir: tempfile::TempDir, bind: &str, port: u16, extra: &[&str]) -> Cluster {
        let started = Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrokube"));
        cmd.arg("server")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--bind-address", bind, "--secure-port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("starting ferrokube");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("ready in") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!("ferrokube did not become ready");
        }
        Cluster {
            child,
            etcd: None,
            kubeconfig: dir.path().join("admin.kubeconfig"),
            dir,
            port,
            ready_after: started.elapsed(),
        }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL and waits for it, keeping the data directory.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        // Hand the data directory over: swap it with a fresh empty one.
        std::mem::replace(&mut self.dir, dir)
    }

    /// Stops the server with SIGTERM and waits for it to exit (up to `limit`),
    /// keeping the data directory.
    pub fn terminate(mut self, limit: Duration) -> tempfile::TempDir {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// Starts `ferrokube sim-nodes` against this cluster with extra arguments; the
    /// process is killed when the returned guard drops.
    pub fn sim_nodes(&self, extra: &[&str]) -> Component {
        self.component("sim-nodes", extra)
    }

    /// Starts another component (`scheduler`, `controller-manager`, …) of the binary
    /// against this cluster.
    pub fn component(&self, name: &str, extra: &[&str]) -> Component {
        self.component_in(name, Path::new("."), extra)
    }

    /// [`component`](Self::component) started in the working directory `cwd`.
    pub fn component_in(&self, name: &str, cwd: &Path, extra: &[&str]) -> Component {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrokube"));
        cmd.current_dir(cwd)
            .arg(name)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        Component(cmd.spawn().expect("starting a component"))
    }

    /// kubectl of the given minor version (`"1.27"`, `"1.33"`).
    pub fn kubectl(&self, version: &str) -> Kubectl {
        Kubectl {
            bin: kubectl_bin(version),
            kubeconfig: self.kubeconfig.clone(),
        }
    }
}

/// A component process, killed by PID on drop.
pub struct Component(Child);

impl Component {
    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `kubectl.<version>` next to the machine's kubectl.
pub fn kubectl_bin(version: &str) -> PathBuf {
    let which = Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .expect("locating kubectl");
    let path = String::from_utf8_lossy(&which.stdout).trim().to_string();
    let bin = Path::new(&path)
        .parent()
        .expect("kubectl directory")
        .join(format!("kubectl.{version}"));
    assert!(bin.exists(), "{} not found", bin.display());
    bin
}

/// One kubectl binary pointed at a cluster.
pub struct Kubectl {
    /// The binary.
    pub bin: PathBuf,
    /// The kubeconfig.
    pub kubeconfig: PathBuf,
}

impl Kubectl {
    /// A command with the kubeconfig set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.kubeconfig.parent().unwrap())
            .args(args);
        c
    }

    /// Runs kubectl.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("running kubectl")
    }

    /// Runs kubectl with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applies YAML from stdin, asserting success; returns stdout.
    pub fn apply(&self, args: &[&str], yaml: &str) -> String {
        let mut all = vec!["apply", "-f", "-"];
        all.extend_from_slice(args);
        let out = self.run_stdin(&all, yaml);
        assert!(
            out.status.success(),
            "kubectl {all:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl, asserting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Parses `kubectl get ... -o json`.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl output is JSON")
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A kube-rs client with the cluster's admin credentials.
pub async fn admin_client(c: &Cluster) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&c.kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}
