//! The kubelet's side of its HTTPS API (`crates/kubelet-server`): what the server
//! reads — the pods with the status the workers last computed, the runtime, pod
//! network namespaces, directories — and starting it on `--address:--port`
//! (and `/healthz` on 127.0.0.1:`--healthz-port`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use container_runtime::sandbox::Sandbox;
use container_runtime::ContainerRuntime;
use k8s_openapi::api::core::v1::Pod;
use kubelet_server::{Host, ServingCert, TlsOptions};
use tracing::warn;

use crate::{KubeletError, Shared};

struct KubeletHost(Arc<Shared>);

impl Host for KubeletHost {
    fn node_name(&self) -> String {
        self.0.node_name.clone()
    }

    fn pods(&self) -> Vec<Pod> {
        self.0.pods.read().values().cloned().collect()
    }

    fn runtime(&self) -> &ContainerRuntime {
        &self.0.runtime
    }

    fn pod_netns(&self, pod_uid: &str) -> Option<PathBuf> {
        Sandbox::open(&self.0.config.pods_dir().join(pod_uid).join("sandbox"))
            .ok()
            .flatten()
            .and_then(|s| s.net)
    }

    fn root_dir(&self) -> PathBuf {
        self.0.config.root_dir.clone()
    }

    fn image_fs_dir(&self) -> PathBuf {
        self.0.config.image_store_dir()
    }

    fn pod_volumes(&self, pod_uid: &str) -> Vec<(String, PathBuf)> {
        let pods = self.0.pods.read();
        let Some(pod) = pods.get(pod_uid) else {
            return Vec::new();
        };
        let dir = self.0.config.pods_dir().join(pod_uid);
        pod.spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter(|v| v.host_path.is_none())
            .map(|v| (v.name.clone(), crate::volumes::volume_dir(&dir, v)))
            .collect()
    }

    fn container_rootfs(&self, container_id: &str) -> Option<PathBuf> {
        Some(
            self.0
                .config
                .root_dir
                .join("containers")
                .join(container_id)
                .join("upper"),
        )
    }
}

/// Starts the API server (and the healthz endpoint) in the background. Without a
/// client CA nobody could be authenticated, so the server is not started.
pub(crate) async fn start(shared: &Arc<Shared>) -> Result<(), KubeletError> {
    let cfg = &shared.config;
    let Some(ca) = cfg.client_ca.clone() else {
        warn!("no client CA: the kubelet API (logs, exec, port-forward) is not served");
        return Ok(());
    };
    let tls = TlsOptions {
        serving: ServingCert::SelfSigned {
            hosts: vec![shared.node_name.clone(), shared.node_ip.to_string()],
        },
        client_ca_pem: ca,
    };
    let addr = SocketAddr::new(cfg.address, cfg.port);
    let server =
        kubelet_server::KubeletServer::bind(addr, tls, Arc::new(KubeletHost(shared.clone())))
            .await
            .map_err(|e| KubeletError::Config(format!("serving the kubelet API on {addr}: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = server.run().await {
            warn!(error = %e, "the kubelet API stopped");
        }
    });
    if cfg.healthz_port != 0 {
        let healthz = SocketAddr::from(([127, 0, 0, 1], cfg.healthz_port));
        let listener = tokio::net::TcpListener::bind(healthz)
            .await
            .map_err(|source| KubeletError::Io {
                what: format!("binding healthz on {healthz}"),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(e) = kubelet_server::serve_healthz_on(listener).await {
                warn!(error = %e, "healthz stopped");
            }
        });
    }
    Ok(())
}
