//! Container runtime for the kubelet: runs OCI containers through a small per-container
//! shim process, with the built-in runtime (ferrokube's own, in-process in the shim, see
//! the `native` module) or Debian's `runc`/`crun` binaries.
//!
//! The kubelet builds the OCI [`oci_spec::runtime::Spec`] itself and hands it to
//! [`ContainerRuntime::start`]. Each container gets a shim (the hidden `container-shim`
//! subcommand of the ferrokube binary, see [`shim_main`]) that is the container's parent,
//! copies its output into the CRI log file and records its exit status under the state
//! directory, so containers outlive a kubelet killed with `kill -9` and are adopted by the
//! next kubelet process through [`ContainerRuntime::list`].
//!
//! Also here: per-pod namespaces without a pause process ([`sandbox`]) and the kubelet's
//! pod cgroup tree plus container stats ([`cgroups`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

mod attach;
mod backend;
pub mod cgroups;
mod crilog;
mod interactive;
mod native;
mod runtime;
pub mod sandbox;
mod shim;
mod store;
mod sys;
mod zygote;

pub use attach::{AttachSession, OutputStream};
pub use crilog::format_rfc3339_nano;
pub use interactive::{ExecReader, ExecSession, ExecWriter, TerminalResizer};
pub use runtime::ContainerRuntime;
pub use shim::shim_main;

/// Errors returned by the container runtime, the sandbox and the cgroup helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container id is empty, too long or has characters outside `[A-Za-z0-9_.+-]`.
    #[error("invalid container id {0:?}")]
    InvalidId(String),
    /// No container with this id is known.
    #[error("container {0:?} does not exist")]
    NotFound(String),
    /// A container with this id already exists.
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    /// A sandbox already exists in this directory.
    #[error("sandbox {0:?} already exists")]
    SandboxExists(PathBuf),
    /// The container could not be started; the message is what the kubelet shows with
    /// reason `StartError` (e.g. `... exec: "nope": executable file not found in $PATH`).
    #[error("{0}")]
    StartFailed(String),
    /// The operation needs a running container.
    #[error("container {0:?} is not running")]
    NotRunning(String),
    /// The command could not be started inside the container (not its exit status).
    #[error("{0}")]
    ExecFailed(String),
    /// The container did not exit in time after being killed.
    #[error("container {0:?} did not exit after SIGKILL")]
    StopTimeout(String),
    /// `--oci-runtime` names an unknown runtime.
    #[error("unknown OCI runtime {0:?} (expected builtin, runc or crun)")]
    UnknownRuntime(String),
    /// The runtime binary was not found in `$PATH`.
    #[error("OCI runtime binary {0:?} not found in $PATH")]
    RuntimeNotFound(String),
    /// The spec is missing something the runtime needs.
    #[error("invalid OCI spec: {0}")]
    InvalidSpec(String),
    /// An OCI runtime command failed.
    #[error("{0}")]
    Runtime(String),
    /// A cgroup operation failed.
    #[error("cgroup {path}: {message}")]
    Cgroup {
        /// The cgroup directory or file involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file system or system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A state file could not be encoded or decoded.
    #[error("{context}: {source}")]
    Json {
        /// Which file.
        context: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Which OCI runtime starts the containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OciRuntime {
    /// ferrokube's own OCI runtime, run inside the shim.
    Builtin,
    /// The `runc` binary at this path.
    Runc(PathBuf),
    /// The `crun` binary at this path.
    Crun(PathBuf),
}

impl OciRuntime {
    /// The short name: `builtin`, `runc` or `crun`.
    pub fn name(&self) -> &'static str {
        match self {
            OciRuntime::Builtin => "builtin",
            OciRuntime::Runc(_) => "runc",
            OciRuntime::Crun(_) => "crun",
        }
    }
}

impl FromStr for OciRuntime {
    type Err = Error;

    /// Parses `builtin`, `runc` or `crun` (looked up in `$PATH`), or an absolute path to a
    /// binary named `runc` or `crun`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "builtin" => return Ok(OciRuntime::Builtin),
            "runc" => return sys::find_in_path("runc").map(OciRuntime::Runc),
            "crun" => return sys::find_in_path("crun").map(OciRuntime::Crun),
            _ => {}
        }
        let path = PathBuf::from(s);
        if path.is_absolute() && path.is_file() {
            match path.file_name().and_then(|n| n.to_str()) {
                Some("runc") => return Ok(OciRuntime::Runc(path)),
                Some("crun") => return Ok(OciRuntime::Crun(path)),
                _ => {}
            }
        }
        Err(Error::UnknownRuntime(s.to_string()))
    }
}

/// How the runtime is set up.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where bundles and container state live, e.g. `/run/ferrokube/containers`.
    pub state_dir: PathBuf,
    /// The OCI runtime used for new containers (existing ones keep the one that started them).
    pub oci: OciRuntime,
    /// The program started as the container shim (the ferrokube binary).
    pub shim_program: PathBuf,
    /// Arguments put before the shim's own, e.g. `["container-shim"]`.
    pub shim_args: Vec<OsString>,
}

/// How a container's standard input and terminal are set up (the CRI's `stdin`,
/// `stdin_once` and `tty`, from the pod's container spec). Without `stdin` the container
/// reads from `/dev/null`; with `tty` its stdio is a pseudo-terminal and everything it
/// writes is logged as stdout. Either makes the shim serve attach sessions
/// ([`ContainerRuntime::attach`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerIo {
    /// Keep a standard input open that attach sessions write to.
    #[serde(default)]
    pub stdin: bool,
    /// Close standard input once the first attach session that wrote to it ends (not with
    /// a terminal, as containerd does).
    #[serde(default)]
    pub stdin_once: bool,
    /// Give the container a pseudo-terminal.
    #[serde(default)]
    pub tty: bool,
}

impl ContainerIo {
    /// Whether the shim serves attach sessions for this container.
    pub fn attachable(&self) -> bool {
        self.stdin || self.tty
    }
}

/// What is known about one container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// The container id given to [`ContainerRuntime::start`].
    pub id: String,
    /// The labels given to [`ContainerRuntime::start`].
    pub labels: BTreeMap<String, String>,
    /// Current state.
    pub state: ContainerState,
    /// When [`ContainerRuntime::start`] was called.
    pub created_at: SystemTime,
    /// The CRI log file the container's output goes to.
    pub log_path: PathBuf,
}

/// The state of a container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ContainerState {
    /// The shim is setting the container up.
    Created,
    /// The container's process runs.
    Running {
        /// Host pid of the container's init process.
        pid: i32,
        /// When the process was started.
        started_at: SystemTime,
    },
    /// The container's process is gone (or never started).
    Exited {
        /// Exit code; 128+signal for a signal death (SIGKILL gives 137), 128 for a start
        /// error, 255 when the status could not be determined.
        exit_code: i32,
        /// The signal that killed the process, if any.
        signal: Option<i32>,
        /// When the process was started (none for a start error).
        started_at: Option<SystemTime>,
        /// When the exit was observed.
        finished_at: SystemTime,
        /// Whether the kernel's OOM killer killed a process of the container.
        oom_killed: bool,
        /// `OOMKilled`, `Error`, `Completed` or `StartError`.
        reason: Option<String>,
        /// Details, e.g. the start error.
        message: Option<String>,
    },
}

impl ContainerState {
    /// Whether the container has exited.
    pub fn is_exited(&self) -> bool {
        matches!(self, ContainerState::Exited { .. })
    }
}

/// Result of [`ContainerRuntime::exec_capture`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code of the command (128+signal for a signal death); -1 when it timed out
    /// before an exit status was known.
    pub exit_code: i32,
    /// Everything the command wrote to stdout (capped at 16 MiB).
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr (capped at 16 MiB).
    pub stderr: Vec<u8>,
    /// Whether the command was killed because the timeout passed.
    pub timed_out: bool,
}

/// Checks a container id: 1 to 128 characters from `[A-Za-z0-9_.+-]`, not starting with a
/// dot or a dash.
pub fn validate_container_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        assert!(validate_container_id("abc123").is_ok());
        assert!(validate_container_id("a.b_c+d-e").is_ok());
        for bad in ["", ".hidden", "-x", "a/b", "a b", "..", &"x".repeat(129)] {
            assert!(
                matches!(validate_container_id(bad), Err(Error::InvalidId(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn handles_are_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<ContainerRuntime>();
        fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
        assert_error::<Error>();
    }

    #[test]
    fn runtime_names() {
        assert_eq!(
            "builtin".parse::<OciRuntime>().unwrap(),
            OciRuntime::Builtin
        );
        assert!(matches!(
            "runc".parse::<OciRuntime>(),
            Ok(OciRuntime::Runc(_)) | Err(Error::RuntimeNotFound(_))
        ));
        assert!(matches!(
            "nope".parse::<OciRuntime>(),
            Err(Error::UnknownRuntime(_))
        ));
        assert_eq!(OciRuntime::Builtin.name(), "builtin");
    }
}
