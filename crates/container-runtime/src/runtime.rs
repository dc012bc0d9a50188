//! [`ContainerRuntime`]: the kubelet's handle on its containers. It writes bundles,
//! starts one shim per container, and answers everything else (list, wait, signal, stop,
//! exec, interactive exec, remove) from the state directory and process liveness, so a
//! new kubelet process adopts the containers of the previous one.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::attach::AttachSession;
use crate::backend;
use crate::cgroups::{self, Stats};
use crate::interactive::{ExecLaunch, ExecSession};
use crate::sandbox::{Sandbox, SandboxNamespaces};
use crate::shim::{read_pid_file, ExecResult, StartReport};
use crate::store::{ContainerDir, Meta, RuntimeKind, CONFIG_FILE, EXIT_FILE, META_FILE, SHIM_LOG};
use crate::sys;
use crate::{
    validate_container_id, ContainerInfo, ContainerIo, ContainerState, Error, ExecOutput,
    OciRuntime, RuntimeConfig,
};

/// How long [`ContainerRuntime::start`] waits for the shim's report (the kubelet's default
/// runtime request timeout).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long [`ContainerRuntime::stop`] waits after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// Cap on captured exec output per stream.
const EXEC_OUTPUT_CAP: usize = 16 << 20;

/// Runs OCI containers for the kubelet. Cheap to clone; all clones share the state
/// directory.
#[derive(Clone, Debug)]
pub struct ContainerRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RuntimeConfig,
    exec_seq: AtomicU64,
    /// Forks the shims of new containers.
    launcher: crate::zygote::Launcher,
}

impl ContainerRuntime {
    /// Creates the state directory (and the runtime roots below it).
    pub fn new(config: RuntimeConfig) -> Result<Self, Error> {
        fs::create_dir_all(&config.state_dir)
            .map_err(|e| Error::io(format!("creating {}", config.state_dir.display()), e))?;
        let kind = kind_of(&config.oci);
        let root = backend::runtime_root(&config.state_dir, kind);
        fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        match &config.oci {
            OciRuntime::Runc(p) | OciRuntime::Crun(p) if !p.is_file() => {
                return Err(Error::RuntimeNotFound(p.display().to_string()));
            }
            _ => {}
        }
        Ok(ContainerRuntime {
            inner: Arc::new(Inner {
                config,
                exec_seq: AtomicU64::new(0),
                launcher: Default::default(),
            }),
        })
    }

    /// The configuration this runtime was created with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    fn dir(&self, id: &str) -> Result<ContainerDir, Error> {
        validate_container_id(id)?;
        Ok(ContainerDir::new(self.inner.config.state_dir.join(id)))
    }

    /// Writes the bundle (`<state_dir>/<id>/config.json` with `spec`, whose `root.path` is
    /// an absolute, prepared rootfs) and starts the container through a new shim. Output
    /// goes to `log_path` in the CRI log format. Returns once the process runs, or with
    /// [`Error::StartFailed`] (the container then stays listed as exited with reason
    /// `StartError` until removed). `labels` are kept with the container.
    ///
    /// The spec is adjusted as containerd does: no terminal, negative `oomScoreAdj`
    /// clamped to 0, and `linux.cgroupsPath` defaulted to `/ferrokube/<id>`. The
    /// container reads from `/dev/null`: see [`start_with_io`](Self::start_with_io).
    pub async fn start(
        &self,
        id: &str,
        spec: &oci_spec::runtime::Spec,
        log_path: &Path,
        labels: BTreeMap<String, String>,
    ) -> Result<ContainerInfo, Error> {
        self.start_with_io(id, spec, log_path, labels, ContainerIo::default())
            .await
    }

    /// [`start`](Self::start) with a standard input and/or a terminal: with `io.tty` the
    /// spec asks for a terminal and gets `TERM=xterm` unless it sets `TERM` (as
    /// containerd's `WithTTY`).
    pub async fn start_with_io(
        &self,
        id: &str,
        spec: &oci_spec::runtime::Spec,
        log_path: &Path,
        labels: BTreeMap<String, String>,
        io: ContainerIo,
    ) -> Result<ContainerInfo, Error> {
        let dir = self.dir(id)?;
        let (spec, cgroups_path) = prepare_spec(id, spec, io.tty)?;
        match fs::create_dir(&dir.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.to_string()))
            }
            Err(e) => return Err(Error::io(format!("creating {}", dir.path.display()), e)),
        }
        let cfg = &self.inner.config;
        let kind = kind_of(&cfg.oci);
        let meta = Meta {
            id: id.to_string(),
            labels,
            created_at: SystemTime::now(),
            log_path: log_path.to_path_buf(),
            runtime: kind,
            runtime_binary: match &cfg.oci {
                OciRuntime::Builtin => None,
                OciRuntime::Runc(p) | OciRuntime::Crun(p) => Some(p.clone()),
            },
            runtime_root: backend::runtime_root(&cfg.state_dir, kind),
            cgroups_path,
            io,
        };
        let written = serde_json::to_vec(&spec)
            .map_err(|source| Error::Json {
                context: "encoding config.json".into(),
                source,
            })
            .and_then(|data| {
                sys::write_atomic(&dir.file(CONFIG_FILE), &data)
                    .map_err(|e| Error::io("writing config.json", e))
            })
            .and_then(|()| {
                fs::create_dir_all(&meta.runtime_root)
                    .map_err(|e| Error::io(format!("creating {}", meta.runtime_root.display()), e))
            })
            .and_then(|()| sys::write_json(&dir.file(META_FILE), &meta));
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&dir.path);
            return Err(e);
        }

        let report = self.spawn_shim(&dir).await;
        match report {
            Ok(StartReport { pid: Some(_), .. }) => {
                self.get(id)?.ok_or_else(|| Error::NotFound(id.to_string()))
            }
            Ok(StartReport {
                error: Some(msg), ..
            }) => Err(Error::StartFailed(msg)),
            Ok(_) | Err(_) => {
                let detail = match report {
                    Err(e) => e.to_string(),
                    Ok(_) => "container shim exited without reporting".to_string(),
                };
                // The shim may still have recorded why.
                if let Some(exit) = dir.exit()? {
                    if let Some(msg) = exit.message {
                        return Err(Error::StartFailed(msg));
                    }
                }
                let tail = fs::read_to_string(dir.file(SHIM_LOG)).unwrap_or_default();
                let tail = tail.lines().last().unwrap_or("").to_string();
                Err(Error::StartFailed(
                    format!("{detail} {tail}").trim().to_string(),
                ))
            }
        }
    }

    /// Creates the namespaces selected by `share` for the pod `pod_uid` in the sandbox
    /// directory `dir` (created if missing): a holder process forked by the shim launcher
    /// unshares them, sets `hostname` in the new UTS namespace and brings `lo` up in the
    /// new network namespace (see the `sandbox` module). On failure nothing is left
    /// running. Fails with [`Error::SandboxExists`] if `dir` already holds a sandbox
    /// (remove it first).
    pub async fn create_sandbox(
        &self,
        dir: &Path,
        pod_uid: &str,
        hostname: &str,
        share: SandboxNamespaces,
    ) -> Result<Sandbox, Error> {
        let dir = std::path::absolute(dir)
            .map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
        crate::sandbox::prepare(&dir, hostname)?;
        let made = self.start_holder(&dir, pod_uid, hostname, share).await;
        if let Err(e) = made {
            let _ = Sandbox::remove_dir(&dir);
            return Err(e);
        }
        match Sandbox::open(&dir) {
            Ok(Some(sb)) => Ok(sb),
            other => {
                let _ = Sandbox::remove_dir(&dir);
                Err(other
                    .err()
                    .unwrap_or_else(|| Error::Runtime("sandbox vanished after creation".into())))
            }
        }
    }

    /// Starts the sandbox's namespace holder, if the pod has namespaces of its own (else
    /// only writes the sandbox record).
    async fn start_holder(
        &self,
        dir: &Path,
        pod_uid: &str,
        hostname: &str,
        share: SandboxNamespaces,
    ) -> Result<(), Error> {
        if !share.any() {
            return crate::sandbox::write_unheld(dir, pod_uid, hostname, share);
        }
        let args = crate::sandbox::holder_args(dir, pod_uid, hostname, share);
        let devnull = fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| Error::io("opening /dev/null", e))?;
        match self.spawn_helper(args, devnull).await? {
            StartReport { pid: Some(_), .. } => Ok(()),
            StartReport {
                error: Some(msg), ..
            } => Err(Error::Runtime(format!(
                "creating the pod's namespaces: {msg}"
            ))),
            StartReport { .. } => Err(Error::Runtime(
                "the sandbox holder exited without reporting".into(),
            )),
        }
    }

    async fn spawn_shim(&self, dir: &ContainerDir) -> Result<StartReport, Error> {
        let shim_log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.file(SHIM_LOG))
            .map_err(|e| Error::io("creating shim.log", e))?;
        let args: Vec<std::ffi::OsString> = vec!["run".into(), dir.path.clone().into()];
        self.spawn_helper(args, shim_log).await
    }

    /// Starts a detached `container-shim` process (`args` after `container-shim`) with
    /// `stderr`, and reads its start report.
    async fn spawn_helper(
        &self,
        args: Vec<std::ffi::OsString>,
        shim_log: fs::File,
    ) -> Result<StartReport, Error> {
        let cfg = &self.inner.config;
        let devnull = fs::File::open("/dev/null").map_err(|e| Error::io("opening /dev/null", e))?;
        let (status_read, status_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("pipe", e.into()))?;
        // Forked by the launcher; with the launcher unavailable, started as a new process.
        let (launched, status_write, shim_log) = {
            let inner = self.inner.clone();
            let args = args.clone();
            tokio::task::spawn_blocking(move || {
                let launched = inner.launcher.launch(
                    &inner.config.shim_program,
                    &inner.config.shim_args,
                    &args,
                    [devnull.as_fd(), status_write.as_fd(), shim_log.as_fd()],
                );
                (launched, status_write, shim_log)
            })
            .await
            .map_err(|e| Error::StartFailed(format!("container shim launch: {e}")))?
        };
        let direct = match launched {
            Ok(_) => {
                drop(status_write);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "container shim launcher unavailable; starting the shim directly");
                let child = tokio::process::Command::new(&cfg.shim_program)
                    .args(&cfg.shim_args)
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(status_write))
                    .stderr(Stdio::from(shim_log))
                    .spawn()
                    .map_err(|e| {
                        Error::StartFailed(format!(
                            "failed to start container shim {}: {e}",
                            cfg.shim_program.display()
                        ))
                    })?;
                Some(child)
            }
        };
        let mut out = tokio::net::unix::pipe::Receiver::from_owned_fd(status_read)
            .map_err(|e| Error::io("watching the shim's status pipe", e))?;
        let mut buf = Vec::new();
        let read = tokio::time::timeout(START_TIMEOUT, out.read_to_end(&mut buf)).await;
        // The first shim process exits right after forking the real one.
        if let Some(mut child) = direct {
            let _ = child.wait().await;
        }
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Error::io("reading the shim's report", e)),
            Err(_) => {
                return Err(Error::StartFailed(
                    "timed out waiting for the container shim".into(),
                ))
            }
        }
        serde_json::from_slice(&buf).map_err(|source| Error::Json {
            context: "decoding the shim's report".into(),
            source,
        })
    }

    /// Every container in the state directory, including those started by a previous
    /// kubelet process, sorted by creation time.
    pub fn list(&self) -> Result<Vec<ContainerInfo>, Error> {
        let state_dir = &self.inner.config.state_dir;
        let entries = match fs::read_dir(state_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("reading {}", state_dir.display()), e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_container_id(&name).is_err() {
                continue;
            }
            match ContainerDir::new(entry.path()).info() {
                Ok(Some(info)) => out.push(info),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(container = %name, error = %e, "unreadable container state")
                }
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// One container, or `None` if unknown.
    pub fn get(&self, id: &str) -> Result<Option<ContainerInfo>, Error> {
        self.dir(id)?.info()
    }

    /// Sends `signal` to the container's process. Not an error if it already exited.
    pub fn signal(&self, id: &str, signal: i32) -> Result<(), Error> {
        let dir = self.dir(id)?;
        let info = dir.info()?.ok_or_else(|| Error::NotFound(id.to_string()))?;
        if info.state.is_exited() {
            return Ok(());
        }
        if let Some(run) = dir.running()? {
            sys::signal_process(run.init.pid, run.init.start_time, signal)
                .map_err(|e| Error::io(format!("signalling container {id}"), e))?;
        }
        Ok(())
    }

    /// Sends `stop_signal` (SIGTERM by default), waits up to `grace`, then SIGKILLs; returns
    /// once the exit is recorded.
    pub async fn stop(
        &self,
        id: &str,
        grace: Duration,
        stop_signal: Option<i32>,
    ) -> Result<(), Error> {
        let info = self
            .get(id)?
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        if info.state.is_exited() {
            return Ok(());
        }
        if !grace.is_zero() {
            self.signal(id, stop_signal.unwrap_or(libc::SIGTERM))?;
            if let Ok(res) = tokio::time::timeout(grace, self.wait(id)).await {
                return res.map(|_| ());
            }
        }
        self.signal(id, libc::SIGKILL)?;
        match tokio::time::timeout(KILL_TIMEOUT, self.wait(id)).await {
            Ok(res) => res.map(|_| ()),
            Err(_) => Err(Error::StopTimeout(id.to_string())),
        }
    }

    /// Resolves when the container has exited (reacting within milliseconds: it watches
    /// the shim through a pidfd, falling back to polling).
    pub async fn wait(&self, id: &str) -> Result<ContainerInfo, Error> {
        let dir = self.dir(id)?;
        loop {
            let info = dir.info()?.ok_or_else(|| Error::NotFound(id.to_string()))?;
            if info.state.is_exited() {
                return Ok(info);
            }
            let target = match dir.live_shim()? {
                Some(s) => Some(s),
                None => dir.running()?.map(|r| r.init).filter(|p| p.alive()),
            };
            let fd = target.and_then(|p| sys::pidfd_for(p.pid, p.start_time).ok().flatten());
            // SAFETY: the pidfd is owned by the AsyncFd and neither replaced nor closed
            // while registered.
            let afd = fd.map(|fd| unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            });
            match afd {
                Some(Ok(afd)) => {
                    // Until that process ends; meanwhile one look a second for an exit
                    // record, since a shim outlives its container while something
                    // else holds the container's output open.
                    let exit_file = dir.file(EXIT_FILE);
                    while tokio::time::timeout(Duration::from_secs(1), afd.readable())
                        .await
                        .is_err()
                        && !exit_file.exists()
                    {}
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Removes a container: kills it if it still runs, deletes the runtime's state, its
    /// cgroup and the bundle directory. The log file stays (the kubelet owns it). Removing
    /// an unknown container is not an error. This blocks (briefly, or up to ~15 s when it
    /// has to kill a running container and its shim): async callers should run it with
    /// `spawn_blocking` when that matters.
    pub fn remove(&self, id: &str) -> Result<(), Error> {
        let dir = self.dir(id)?;
        let meta = match dir.meta() {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => {
                return remove_dir(&dir.path);
            }
        };
        let info = dir.info()?;
        if info.is_some_and(|i| !i.state.is_exited()) {
            if let Some(run) = dir.running()? {
                let _ = sys::signal_process(run.init.pid, run.init.start_time, libc::SIGKILL);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while !dir.info()?.is_some_and(|i| i.state.is_exited()) {
                if Instant::now() > deadline {
                    return Err(Error::StopTimeout(id.to_string()));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Let the shim finish its own cleanup, then make sure of it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(shim) = dir.live_shim()? {
            if Instant::now() > deadline {
                let _ = sys::signal_process(shim.pid, shim.start_time, libc::SIGKILL);
                std::thread::sleep(Duration::from_millis(20));
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut first_err = None;
        if let Err(e) = backend::delete(&meta, &dir) {
            first_err.get_or_insert(Error::Runtime(e));
        }
        if let Err(e) = cgroups::remove_cgroup(&meta.cgroups_path) {
            first_err.get_or_insert(e);
        }
        if let Err(e) = remove_dir(&dir.path) {
            first_err.get_or_insert(e);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs `cmd` in the running container (its namespaces, cgroup, user, environment and
    /// working directory from the spec), capturing stdout and stderr. When `timeout`
    /// Checks an exec request (a command, a running container) and picks a token
    /// naming its files in the container's directory.
    fn exec_preflight(&self, id: &str, cmd: &[String]) -> Result<(ContainerDir, String), Error> {
        let dir = self.dir(id)?;
        if cmd.is_empty() {
            return Err(Error::ExecFailed("no command given".into()));
        }
        let info = dir.info()?.ok_or_else(|| Error::NotFound(id.to_string()))?;
        if !matches!(info.state, ContainerState::Running { .. }) {
            return Err(Error::NotRunning(id.to_string()));
        }
        let token = format!(
            "{}-{}",
            std::process::id(),
            self.inner.exec_seq.fetch_add(1, Ordering::Relaxed)
        );
        Ok((dir, token))
    }

    /// passes, the command is SIGKILLed and `timed_out` is set.
    pub async fn exec_capture(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let (dir, token) = self.exec_preflight(id, cmd)?;
        let cfg = &self.inner.config;
        let result_path = dir.file(&format!("exec-{token}.result"));
        let pid_path = dir.file(&format!("exec-{token}.pid"));
        let mut child = tokio::process::Command::new(&cfg.shim_program)
            .args(&cfg.shim_args)
            .arg("exec")
            .arg(&dir.path)
            .arg(&token)
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::ExecFailed(format!("failed to start exec helper: {e}")))?;
        let out_task = child.stdout.take().map(|s| tokio::spawn(read_capped(s)));
        let err_task = child.stderr.take().map(|s| tokio::spawn(read_capped(s)));

        let mut timed_out = false;
        tokio::select! {
            _ = child.wait() => {}
            _ = tokio::time::sleep(timeout) => {
                timed_out = true;
                if let Some(pid) = read_pid_file(&pid_path) {
                    if let Some(p) = crate::store::ProcRef::of(pid) {
                        let _ = sys::signal_process(p.pid, p.start_time, libc::SIGKILL);
                    }
                }
                // Let the helper reap the command (else it lingers as a zombie under the
                // container's init), then make sure the helper is gone too.
                if tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_err() {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
            }
        }
        let collect = |task: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
            let Some(task) = task else { return Vec::new() };
            let abort = task.abort_handle();
            match tokio::time::timeout(Duration::from_secs(1), task).await {
                Ok(Ok(v)) => v,
                _ => {
                    abort.abort();
                    Vec::new()
                }
            }
        };
        let stdout = collect(out_task).await;
        let stderr = collect(err_task).await;
        let result: Option<ExecResult> = sys::read_json(&result_path).ok().flatten();
        let _ = fs::remove_file(&result_path);
        let _ = fs::remove_file(&pid_path);
        match result {
            Some(ExecResult {
                error: Some(msg), ..
            }) if !timed_out => Err(Error::ExecFailed(msg)),
            Some(ExecResult {
                exit_code: Some(code),
                ..
            }) => Ok(ExecOutput {
                exit_code: if timed_out { -1 } else { code },
                stdout,
                stderr,
                timed_out,
            }),
            _ if timed_out => Ok(ExecOutput {
                exit_code: -1,
                stdout,
                stderr,
                timed_out,
            }),
            _ => Err(Error::ExecFailed(format!(
                "exec helper ended without a result: {}",
                String::from_utf8_lossy(&stderr).trim()
            ))),
        }
    }

    /// Starts `cmd` in the running container (its namespaces, cgroup, user, environment
    /// and working directory, as [`exec_capture`](Self::exec_capture)) for interactive use:
    /// with `tty` the command gets a terminal created inside the container (stdout then
    /// carries all output, resizable through the session; `TERM=xterm` is added unless the
    /// container sets `TERM`), otherwise pipes for stdout and stderr; stdin is connected
    /// when `stdin` is set. Returns once the command was handed to the OCI runtime (with
    /// a terminal: once it runs); a command that cannot be started shows up as
    /// [`Error::ExecFailed`] here or from [`ExecSession::wait`].
    pub async fn exec_spawn(
        &self,
        id: &str,
        cmd: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<ExecSession, Error> {
        let (dir, token) = self.exec_preflight(id, cmd)?;
        let cfg = &self.inner.config;
        let mut command = std::process::Command::new(&cfg.shim_program);
        command
            .args(&cfg.shim_args)
            .arg(if tty { "exec-tty" } else { "exec" })
            .arg(&dir.path)
            .arg(&token)
            .args(cmd);
        ExecSession::start(ExecLaunch {
            command,
            tty,
            stdin,
            pid_path: dir.file(&format!("exec-{token}.pid")),
            result_path: dir.file(&format!("exec-{token}.result")),
        })
        .await
    }

    /// Attaches to the running container's own stdio: `Ok(None)` when it was started
    /// without stdin and terminal (its output is then only in the log), otherwise a session
    /// receiving its output from now on, with its terminal when it has one and, when
    /// `stdin` is asked for, its input (for a `stdin_once` container only the first
    /// session asking for input gets it).
    pub async fn attach(&self, id: &str, stdin: bool) -> Result<Option<AttachSession>, Error> {
        let dir = self.dir(id)?;
        let meta = dir.meta()?.ok_or_else(|| Error::NotFound(id.to_string()))?;
        if dir.exit()?.is_some() || dir.live_shim()?.is_none() {
            return Err(Error::NotRunning(id.to_string()));
        }
        if !meta.io.attachable() {
            return Ok(None);
        }
        AttachSession::connect(dir.path.clone(), stdin)
            .await
            .map(Some)
    }

    /// Makes the container's shim reopen its log file (after the kubelet rotated it).
    pub fn reopen_log(&self, id: &str) -> Result<(), Error> {
        let dir = self.dir(id)?;
        if dir.meta()?.is_none() {
            return Err(Error::NotFound(id.to_string()));
        }
        // The shim handles SIGUSR1 once the container runs (running.json exists).
        if dir.running()?.is_none() {
            return Err(Error::NotRunning(id.to_string()));
        }
        match dir.live_shim()? {
            Some(s) => sys::signal_process(s.pid, s.start_time, libc::SIGUSR1)
                .map(|_| ())
                .map_err(|e| Error::io("signalling the shim", e)),
            None => Err(Error::NotRunning(id.to_string())),
        }
    }

    /// Resource usage of a running container.
    pub fn stats(&self, id: &str) -> Result<Stats, Error> {
        let meta = self
            .dir(id)?
            .meta()?
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        cgroups::container_stats(&meta.cgroups_path)
    }

    /// The container's cgroup path (`linux.cgroupsPath` of its spec).
    pub fn cgroup_path(&self, id: &str) -> Result<String, Error> {
        let meta = self
            .dir(id)?
            .meta()?
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        Ok(meta.cgroups_path)
    }

    /// The pid of the container's shim, if it runs.
    pub fn shim_pid(&self, id: &str) -> Result<Option<i32>, Error> {
        Ok(self.dir(id)?.live_shim()?.map(|p| p.pid))
    }

    /// The bundle directory of a container.
    pub fn bundle_dir(&self, id: &str) -> Result<PathBuf, Error> {
        Ok(self.dir(id)?.path)
    }
}

fn kind_of(oci: &OciRuntime) -> RuntimeKind {
    match oci {
        OciRuntime::Builtin => RuntimeKind::Builtin,
        OciRuntime::Runc(_) => RuntimeKind::Runc,
        OciRuntime::Crun(_) => RuntimeKind::Crun,
    }
}

fn remove_dir(path: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

/// The spec as written to the bundle, and its cgroup path.
fn prepare_spec(
    id: &str,
    spec: &oci_spec::runtime::Spec,
    tty: bool,
) -> Result<(oci_spec::runtime::Spec, String), Error> {
    let mut spec = spec.clone();
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("root is missing".into()))?;
    if !root.path().is_absolute() {
        return Err(Error::InvalidSpec(format!(
            "root.path {} is not absolute",
            root.path().display()
        )));
    }
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| Error::InvalidSpec("process is missing".into()))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::InvalidSpec("process.args is empty".into()));
    }
    process.set_terminal(Some(tty));
    process.set_console_size(None);
    if tty {
        let mut env = process.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".to_string());
        }
        process.set_env(Some(env));
    }
    if process.oom_score_adj().is_some_and(|a| a < 0) {
        process.set_oom_score_adj(Some(0));
    }
    spec.set_process(Some(process));
    let mut linux = spec.linux().clone().unwrap_or_default();
    let cgroups_path = match linux.cgroups_path() {
        Some(p) => p.to_string_lossy().into_owned(),
        None => format!("/ferrokube/{id}"),
    };
    if !cgroups_path.starts_with('/') {
        return Err(Error::InvalidSpec(format!(
            "linux.cgroupsPath {cgroups_path:?} is not absolute"
        )));
    }
    linux.set_cgroups_path(Some(PathBuf::from(&cgroups_path)));
    spec.set_linux(Some(linux));
    Ok((spec, cgroups_path))
}

async fn read_capped<R: AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let room = EXEC_OUTPUT_CAP.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_adjustments() {
        let mut spec = oci_spec::runtime::Spec::default();
        let mut root = spec.root().clone().unwrap();
        root.set_path("/abs/rootfs".into());
        spec.set_root(Some(root));
        let mut p = spec.process().clone().unwrap();
        p.set_terminal(Some(true));
        p.set_oom_score_adj(Some(-998));
        p.set_env(Some(vec!["PATH=/bin".to_string()]));
        spec.set_process(Some(p));
        let (out, cg) = prepare_spec("c1", &spec, false).unwrap();
        assert_eq!(cg, "/ferrokube/c1");
        let p = out.process().as_ref().unwrap();
        assert_eq!(p.terminal(), Some(false));
        assert_eq!(p.oom_score_adj(), Some(0));
        assert!(!p.env().iter().flatten().any(|e| e.starts_with("TERM=")));

        // A terminal brings TERM=xterm, unless the container sets TERM itself.
        let (out, _) = prepare_spec("c1", &spec, true).unwrap();
        let p = out.process().as_ref().unwrap();
        assert_eq!(p.terminal(), Some(true));
        assert!(p.env().iter().flatten().any(|e| e == "TERM=xterm"));
        let mut own = spec.clone();
        let mut p = own.process().clone().unwrap();
        p.set_env(Some(vec!["TERM=vt100".to_string()]));
        own.set_process(Some(p));
        let (out, _) = prepare_spec("c1", &own, true).unwrap();
        let env = out.process().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(env, vec!["TERM=vt100".to_string()]);

        let mut rel = spec.clone();
        let mut root = rel.root().clone().unwrap();
        root.set_path("rootfs".into());
        rel.set_root(Some(root));
        assert!(matches!(
            prepare_spec("c1", &rel, false),
            Err(Error::InvalidSpec(_))
        ));
    }
}
