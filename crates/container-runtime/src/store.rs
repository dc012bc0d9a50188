//! The per-container state directory (`<state_dir>/<id>/`): the bundle's `config.json`,
//! the container record written by the starter, and the records the shim writes as the
//! container moves on (shim identity, running process, exit status). A container's
//! [`ContainerInfo`] is derived from these files plus process liveness, which is what lets
//! a restarted kubelet adopt containers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::sys::{self, process_alive};
use crate::{ContainerInfo, ContainerIo, ContainerState, Error};

/// The bundle's OCI spec.
pub(crate) const CONFIG_FILE: &str = "config.json";
/// [`Meta`]: written once by the starter before the shim runs.
pub(crate) const META_FILE: &str = "container.json";
/// [`ShimRecord`]: written by the shim as soon as it has detached.
pub(crate) const SHIM_FILE: &str = "shim.json";
/// [`RunningRecord`]: written by the shim once the container process runs.
pub(crate) const RUNNING_FILE: &str = "running.json";
/// [`ExitRecord`]: written by the shim after the container exited (or failed to start).
pub(crate) const EXIT_FILE: &str = "exit.json";
/// The shim's own diagnostics (its stderr).
pub(crate) const SHIM_LOG: &str = "shim.log";
/// Pid file the OCI runtime writes on create.
pub(crate) const INIT_PID_FILE: &str = "init.pid";
/// The unix socket the shim serves attach sessions on (only for containers with stdin or
/// a terminal).
pub(crate) const ATTACH_SOCKET: &str = "attach.sock";

/// Which OCI runtime a container was started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RuntimeKind {
    Builtin,
    Runc,
    Crun,
}

impl RuntimeKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            RuntimeKind::Builtin => "builtin",
            RuntimeKind::Runc => "runc",
            RuntimeKind::Crun => "crun",
        }
    }
}

/// Everything fixed at start: identity, labels, where output goes and how the container
/// is run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub created_at: SystemTime,
    pub log_path: PathBuf,
    pub runtime: RuntimeKind,
    /// The runc/crun binary (none for builtin).
    pub runtime_binary: Option<PathBuf>,
    /// The runtime's state root (`--root`).
    pub runtime_root: PathBuf,
    /// The container's cgroup, as in the spec's `linux.cgroupsPath`.
    pub cgroups_path: String,
    /// Standard input and terminal (absent in records of older versions: none).
    #[serde(default)]
    pub io: ContainerIo,
}

/// A process identified by pid plus start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcRef {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcRef {
    pub(crate) fn of(pid: i32) -> Option<ProcRef> {
        sys::proc_start_time(pid).map(|start_time| ProcRef { pid, start_time })
    }

    pub(crate) fn alive(&self) -> bool {
        process_alive(self.pid, self.start_time)
    }
}

/// The detached shim process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ShimRecord {
    pub shim: ProcRef,
}

/// The running container process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RunningRecord {
    pub init: ProcRef,
    pub started_at: SystemTime,
}

/// How the container ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ExitRecord {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub started_at: Option<SystemTime>,
    pub finished_at: SystemTime,
    pub oom_killed: bool,
    pub reason: String,
    pub message: Option<String>,
}

impl ExitRecord {
    pub(crate) fn into_state(self) -> ContainerState {
        ContainerState::Exited {
            exit_code: self.exit_code,
            signal: self.signal,
            started_at: self.started_at,
            finished_at: self.finished_at,
            oom_killed: self.oom_killed,
            reason: Some(self.reason),
            message: self.message,
        }
    }
}

/// Reason for an exit as CRI reports it.
pub(crate) fn exit_reason(exit_code: i32, oom_killed: bool) -> &'static str {
    if oom_killed {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// One container's directory.
#[derive(Clone, Debug)]
pub(crate) struct ContainerDir {
    pub path: PathBuf,
}

impl ContainerDir {
    pub(crate) fn new(path: PathBuf) -> Self {
        ContainerDir { path }
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub(crate) fn meta(&self) -> Result<Option<Meta>, Error> {
        sys::read_json(&self.file(META_FILE))
    }

    pub(crate) fn shim(&self) -> Result<Option<ShimRecord>, Error> {
        sys::read_json(&self.file(SHIM_FILE))
    }

    pub(crate) fn running(&self) -> Result<Option<RunningRecord>, Error> {
        sys::read_json(&self.file(RUNNING_FILE))
    }

    pub(crate) fn exit(&self) -> Result<Option<ExitRecord>, Error> {
        sys::read_json(&self.file(EXIT_FILE))
    }

    pub(crate) fn write_exit(&self, rec: &ExitRecord) -> Result<(), Error> {
        sys::write_json(&self.file(EXIT_FILE), rec)
    }

    /// Derives the container's current state. When both the shim and the container
    /// process are gone without an exit record (the shim was killed), an exit with code 255
    /// is recorded so the answer stays stable.
    pub(crate) fn info(&self) -> Result<Option<ContainerInfo>, Error> {
        let Some(meta) = self.meta()? else {
            return Ok(None);
        };
        let state = self.state()?;
        Ok(Some(ContainerInfo {
            id: meta.id,
            labels: meta.labels,
            state,
            created_at: meta.created_at,
            log_path: meta.log_path,
        }))
    }

    fn state(&self) -> Result<ContainerState, Error> {
        if let Some(exit) = self.exit()? {
            return Ok(exit.into_state());
        }
        let shim_alive = self.live_shim()?.is_some();
        // The shim may have recorded the exit between the two reads.
        let running = self.running()?;
        if let Some(exit) = self.exit()? {
            return Ok(exit.into_state());
        }
        match running {
            Some(run) => {
                if shim_alive || run.init.alive() {
                    Ok(ContainerState::Running {
                        pid: run.init.pid,
                        started_at: run.started_at,
                    })
                } else {
                    let rec = ExitRecord {
                        exit_code: 255,
                        signal: None,
                        started_at: Some(run.started_at),
                        finished_at: SystemTime::now(),
                        oom_killed: false,
                        reason: "Error".to_string(),
                        message: Some(
                            "container shim exited before recording the container's exit status"
                                .to_string(),
                        ),
                    };
                    self.record_lost(rec)
                }
            }
            None => {
                let shim_dead = match self.shim()? {
                    Some(s) => !s.shim.alive(),
                    None => self.shim_overdue(),
                };
                if !shim_dead {
                    return Ok(ContainerState::Created);
                }
                let rec = ExitRecord {
                    exit_code: 128,
                    signal: None,
                    started_at: None,
                    finished_at: SystemTime::now(),
                    oom_killed: false,
                    reason: "StartError".to_string(),
                    message: Some("container shim exited before starting the container".into()),
                };
                self.record_lost(rec)
            }
        }
    }

    /// True when the shim has had 30 s to write its record after the container record
    /// and has not.
    fn shim_overdue(&self) -> bool {
        let written = std::fs::metadata(self.file(META_FILE)).and_then(|m| m.modified());
        match written {
            Ok(t) => t.elapsed().map(|d| d.as_secs() >= 30).unwrap_or(false),
            Err(_) => true,
        }
    }

    fn record_lost(&self, rec: ExitRecord) -> Result<ContainerState, Error> {
        // Best effort: a read-only state dir still gets an answer.
        let _ = self.write_exit(&rec);
        Ok(match self.exit()? {
            Some(stored) => stored.into_state(),
            None => rec.into_state(),
        })
    }

    /// The live shim, if any.
    pub(crate) fn live_shim(&self) -> Result<Option<ProcRef>, Error> {
        Ok(self.shim()?.map(|s| s.shim).filter(|s| s.alive()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            id: "c1".into(),
            labels: BTreeMap::from([("a".to_string(), "b".to_string())]),
            created_at: SystemTime::UNIX_EPOCH,
            log_path: "/tmp/x.log".into(),
            runtime: RuntimeKind::Runc,
            runtime_binary: Some("/usr/sbin/runc".into()),
            runtime_root: "/run/x".into(),
            cgroups_path: "/a/b".into(),
            io: ContainerIo::default(),
        }
    }

    #[test]
    fn reasons() {
        assert_eq!(exit_reason(0, false), "Completed");
        assert_eq!(exit_reason(3, false), "Error");
        assert_eq!(exit_reason(137, true), "OOMKilled");
    }

    #[test]
    fn states_from_records() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ContainerDir::new(tmp.path().to_path_buf());
        assert!(dir.info().unwrap().is_none());
        sys::write_json(&dir.file(META_FILE), &meta()).unwrap();
        // Fresh record, no shim yet: Created.
        assert_eq!(dir.info().unwrap().unwrap().state, ContainerState::Created);

        // Running with a live process (ourselves).
        let me = ProcRef::of(std::process::id() as i32).unwrap();
        let started = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5);
        sys::write_json(
            &dir.file(RUNNING_FILE),
            &RunningRecord {
                init: me,
                started_at: started,
            },
        )
        .unwrap();
        let info = dir.info().unwrap().unwrap();
        assert_eq!(
            info.state,
            ContainerState::Running {
                pid: me.pid,
                started_at: started
            }
        );
        assert_eq!(info.labels["a"], "b");

        // Process and shim gone without an exit record: 255, recorded once.
        let gone = ProcRef {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        sys::write_json(
            &dir.file(RUNNING_FILE),
            &RunningRecord {
                init: gone,
                started_at: started,
            },
        )
        .unwrap();
        sys::write_json(&dir.file(SHIM_FILE), &ShimRecord { shim: gone }).unwrap();
        let ContainerState::Exited {
            exit_code,
            reason,
            finished_at,
            ..
        } = dir.info().unwrap().unwrap().state
        else {
            panic!("not exited")
        };
        assert_eq!(exit_code, 255);
        assert_eq!(reason.as_deref(), Some("Error"));
        let again = dir.info().unwrap().unwrap().state;
        assert!(matches!(again, ContainerState::Exited { finished_at: f, .. } if f == finished_at));
    }
}
