//! Running one nftables transaction with the `nft` command (blocking), and the
//! start of a transaction that replaces a table whole.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::NetError;

/// Applies `script` with `nft -f -`; `what` names the rules in errors.
pub(crate) fn run(nft: &Path, script: &str, what: &str) -> Result<(), NetError> {
    let io = |source| NetError::Io {
        context: format!("running {} for {what}", nft.display()),
        source,
    };
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(io)?;
    }
    let out = child.wait_with_output().map_err(io)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Io {
            context: format!(
                "nft rejected the {what}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            source: std::io::Error::other("nft failed"),
        })
    }
}

/// The lines that start a transaction replacing the `ip` table `table` (it need not
/// exist yet) and add its chain `chain` hooked at `hook`.
pub(crate) fn replace_table(table: &str, chain: &str, hook: &str) -> String {
    let t = format!("ip {table}");
    format!(
        "add table {t}\ndelete table {t}\nadd table {t}\nadd chain {t} {chain} {{ type nat hook {hook} ; }}\n"
    )
}
