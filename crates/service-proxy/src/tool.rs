//! Running a packet-filter tool (`nft`, `iptables-save`, `iptables-restore`):
//! its arguments, an optional script on stdin, and its output, or the first lines
//! of what it said on stderr when it fails.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// Why a tool run did not succeed.
pub(crate) enum ToolError {
    /// It could not be started (or waited for).
    Spawn(std::io::Error),
    /// It ran and failed, saying this.
    Failed(String),
}

/// Runs `program` with `args` and `input` on stdin; returns its stdout.
pub(crate) async fn run(
    program: &Path,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, ToolError> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ToolError::Spawn)?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A tool that stops reading early says why on stderr, read below.
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    let out = child.wait_with_output().await.map_err(ToolError::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(ToolError::Failed(
            err.trim().lines().take(6).collect::<Vec<_>>().join("\n"),
        ))
    }
}
