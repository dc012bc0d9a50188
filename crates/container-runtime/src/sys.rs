//! Small system helpers: process identity by pid plus start time (so a recycled pid is
//! never mistaken for a container), pidfds, signals, atomic state files and `$PATH` lookup.

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::Error;

/// The start time of a process in clock ticks since boot (field 22 of `/proc/<pid>/stat`),
/// or `None` when the process does not exist.
pub(crate) fn proc_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: skip to the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` started at `start_time` still runs (a zombie has exited).
pub(crate) fn process_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return false;
    };
    let state = rest.split_whitespace().next();
    state != Some("Z") && state != Some("X") && parse_start_time(&stat) == Some(start_time)
}

/// Opens a pidfd for `pid` (Linux 5.3+).
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; the returned fd is owned by us.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just handed us this new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Opens a pidfd for the process `pid` started at `start_time`, or `None` when that
/// process is gone (the start time is checked after opening, so the fd cannot refer to a
/// recycled pid).
pub(crate) fn pidfd_for(pid: i32, start_time: u64) -> io::Result<Option<OwnedFd>> {
    match pidfd_open(pid) {
        Ok(fd) => {
            if process_alive(pid, start_time) {
                Ok(Some(fd))
            } else {
                Ok(None)
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sends `signal` to the process `pid` started at `start_time`. Returns `false` when the
/// process no longer exists.
pub(crate) fn signal_process(pid: i32, start_time: u64, signal: i32) -> io::Result<bool> {
    match pidfd_for(pid, start_time) {
        Ok(Some(fd)) => {
            // SAFETY: plain syscall on a descriptor we own.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            if r == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                Ok(false)
            } else {
                Err(e)
            }
        }
        Ok(None) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            if !process_alive(pid, start_time) {
                return Ok(false);
            }
            // SAFETY: kill(2) with integer arguments.
            if unsafe { libc::kill(pid, signal) } == 0 {
                Ok(true)
            } else {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ESRCH) {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
        Err(e) => Err(e),
    }
}

/// Writes `data` to `path` atomically (temporary file, rename): readers see the old or
/// the new content, also after this process is killed mid-way. Not fsynced: runtime
/// state describes processes, which do not outlive the machine either (the state
/// directory belongs on a tmpfs such as /run, as containerd's does), and every fsync
/// costs the whole node during a burst of pod starts.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
    }
    fs::rename(&tmp, path)
}

/// Serializes `value` as JSON into `path` with [`write_atomic`].
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let data = serde_json::to_vec(value).map_err(|source| Error::Json {
        context: format!("encoding {}", path.display()),
        source,
    })?;
    write_atomic(path, &data).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Reads JSON from `path`; `Ok(None)` when the file does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|source| Error::Json {
            context: format!("decoding {}", path.display()),
            source,
        })
}

/// Looks up an executable in `$PATH`.
pub(crate) fn find_in_path(name: &str) -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(Error::RuntimeNotFound(name.to_string()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Decodes a `waitpid` status into (exit code, signal): a signal death gives 128+signal.
pub(crate) fn decode_wait_status(status: i32) -> (i32, Option<i32>) {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (128 + sig, Some(sig))
    } else if libc::WIFEXITED(status) {
        (libc::WEXITSTATUS(status), None)
    } else {
        (255, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_parsing() {
        let stat =
            "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert!(proc_start_time(std::process::id() as i32).is_some());
        assert_eq!(proc_start_time(-1), None);
    }

    #[test]
    fn wait_status_decoding() {
        // exit(3) is encoded as 3 << 8; SIGKILL death as 9.
        assert_eq!(decode_wait_status(3 << 8), (3, None));
        assert_eq!(decode_wait_status(9), (137, Some(9)));
        assert_eq!(decode_wait_status(15), (143, Some(15)));
    }

    #[test]
    fn atomic_json_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), None);
        write_json(&p, &vec![1u32, 2]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), Some(vec![1, 2]));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn signal_missing_process() {
        assert!(!signal_process(i32::MAX - 1, 1, 0).unwrap());
        let me = std::process::id() as i32;
        let st = proc_start_time(me).unwrap();
        assert!(signal_process(me, st, 0).unwrap());
        assert!(!signal_process(me, st + 1, 0).unwrap());
    }
}
