//! Deleting the connection-tracking entries of UDP flows whose endpoint left
//! their Service ([`crate::model::stale_udp_flows`]), with the `conntrack` command
//! as upstream's kube-proxy long did: without it, such a flow keeps going to the
//! old endpoint until its entry expires.

use std::path::PathBuf;
use std::process::Stdio;

use crate::model::StaleFlows;

/// Runs `conntrack -D` for stale flows.
pub struct Conntrack {
    path: PathBuf,
    warned: bool,
}

impl Conntrack {
    /// Uses the `conntrack` command at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Conntrack {
        Conntrack {
            path: path.into(),
            warned: false,
        }
    }

    /// The arguments deleting one kind of stale flow.
    pub fn args(flow: &StaleFlows) -> Vec<String> {
        let mut args = vec!["-D".to_string(), "-p".into(), "udp".into()];
        match flow {
            StaleFlows::ToAddress { address, endpoint } => {
                args.extend(["--orig-dst".into(), address.to_string()]);
                args.extend(["--dst-nat".into(), endpoint.to_string()]);
            }
            StaleFlows::ToNodePort { port, endpoint } => {
                args.extend(["--orig-port-dst".into(), port.to_string()]);
                args.extend(["--dst-nat".into(), endpoint.to_string()]);
            }
        }
        args
    }

    /// Deletes the entries of these flows. Finding none is normal; a missing
    /// `conntrack` command is reported once.
    pub async fn clear(&mut self, flows: &[StaleFlows]) {
        for flow in flows {
            let run = tokio::process::Command::new(&self.path)
                .args(Self::args(flow))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            if let Err(e) = run {
                if !self.warned {
                    tracing::warn!(
                        error = %e,
                        command = %self.path.display(),
                        "cannot delete stale UDP conntrack entries: flows to removed endpoints last until they expire"
                    );
                    self.warned = true;
                }
                return;
            }
        }
    }
}
