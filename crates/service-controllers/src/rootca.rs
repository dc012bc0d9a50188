//! The root CA certificate publisher: keeps a ConfigMap `kube-root-ca.crt` in every
//! namespace whose `ca.crt` is the CA bundle clients in pods use to verify the
//! apiserver, with a `kubernetes.io/description` annotation; it is recreated when
//! deleted and restored when edited.
//!
//! The bundle is read from `--root-ca-file` (it must hold at least one PEM
//! certificate). Upstream falls back to the CA data of the controller manager's own
//! client configuration when the flag is unset; a `kube::Client` does not expose it,
//! so the descriptor's start function then skips the controller with a warning, and
//! [`start_root_ca_publisher_with_bundle`] takes the bundle from the caller.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::Client;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::informer::{HandlerRegistration, Informer, InformerFactory, Notification, Store};
use controllers::workqueue::WorkQueue;

use crate::podutil::NAMESPACE_TERMINATING_CAUSE;
use crate::workers::{run_when_synced, KeySync};

/// Canonical name of the root CA certificate publisher.
pub const ROOT_CA_PUBLISHER_CONTROLLER_NAME: &str = "root-ca-certificate-publisher-controller";
/// Name of the published ConfigMap.
pub const ROOT_CA_CONFIG_MAP_NAME: &str = "kube-root-ca.crt";
/// Its data key.
pub const ROOT_CA_KEY: &str = "ca.crt";
/// The annotation describing the ConfigMap.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Its value.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Checks that `pem` holds at least one parseable PEM certificate (other blocks are
/// ignored), as upstream's ParseCertsPEM.
pub fn validate_ca_bundle(pem: &[u8]) -> Result<(), String> {
    let mut found = false;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| e.to_string())?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        block.parse_x509().map_err(|e| e.to_string())?;
        found = true;
    }
    if found {
        Ok(())
    } else {
        Err("data does not contain any valid RSA or ECDSA certificates".into())
    }
}

/// Starts the publisher with the bundle of `--root-ca-file`; an unreadable or invalid
/// file is a configuration error. Without the flag the controller is skipped (see the
/// module docs).
pub fn start_root_ca_publisher(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let Some(path) = ctx.config.root_ca_file.as_ref() else {
        if let Some(bundle) = ctx.config.client_ca_bundle.clone() {
            validate_ca_bundle(bundle.as_bytes()).map_err(ControllerError::Config)?;
            return start_root_ca_publisher_with_bundle(ctx, bundle);
        }
        tracing::warn!(
            controller = ROOT_CA_PUBLISHER_CONTROLLER_NAME,
            "--root-ca-file is not set; not publishing kube-root-ca.crt"
        );
        return Ok(Box::pin(async {}));
    };
    let data = std::fs::read(path).map_err(|e| {
        ControllerError::Config(format!(
            "error reading root-ca-file at {}: {e}",
            path.display()
        ))
    })?;
    validate_ca_bundle(&data).map_err(ControllerError::Config)?;
    let bundle = String::from_utf8(data).map_err(|e| {
        ControllerError::Config(format!(
            "error reading root-ca-file at {}: {e}",
            path.display()
        ))
    })?;
    start_root_ca_publisher_with_bundle(ctx, bundle)
}

/// Starts the publisher (one worker) publishing `bundle` (PEM).
pub fn start_root_ca_publisher_with_bundle(
    ctx: &ControllerContext,
    bundle: String,
) -> Result<ControllerFuture, ControllerError> {
    let c = RootCaPublisher::new(ctx, bundle);
    Ok(Box::pin(c.run(1)))
}

struct Inner {
    client: Client,
    config_maps: Store<ConfigMap>,
    queue: WorkQueue<String>,
    bundle: String,
}

/// The root CA certificate publisher.
pub struct RootCaPublisher {
    inner: Arc<Inner>,
    informers: InformerFactory,
    namespace_informer: Informer<Namespace>,
    config_map_informer: Informer<ConfigMap>,
    registrations: Vec<HandlerRegistration>,
}

impl RootCaPublisher {
    /// Builds the publisher of `bundle` on the context's shared informers.
    pub fn new(ctx: &ControllerContext, bundle: String) -> Self {
        let namespace_informer = ctx.informers.informer::<Namespace>();
        let config_map_informer = ctx.informers.informer::<ConfigMap>();
        let queue = WorkQueue::new("root_ca_cert_publisher");
        let q = queue.clone();
        let ns_reg = namespace_informer.add_handler(move |n: &Notification<Namespace>| match n {
            Notification::Added(ns) => q.add(ns.metadata.name.clone().unwrap_or_default()),
            Notification::Updated { new, .. } => {
                let active = new.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Active");
                if active {
                    q.add(new.metadata.name.clone().unwrap_or_default());
                }
            }
            Notification::Deleted(_) => {}
        });
        let q = queue.clone();
        let cm_reg = config_map_informer.add_handler(move |n: &Notification<ConfigMap>| {
            if matches!(n, Notification::Added(_)) {
                return;
            }
            let cm = n.object();
            if cm.metadata.name.as_deref() == Some(ROOT_CA_CONFIG_MAP_NAME) {
                q.add(cm.metadata.namespace.clone().unwrap_or_default());
            }
        });
        RootCaPublisher {
            inner: Arc::new(Inner {
                client: ctx.client.clone(),
                config_maps: config_map_informer.store(),
                queue,
                bundle,
            }),
            informers: ctx.informers.clone(),
            namespace_informer,
            config_map_informer,
            registrations: vec![ns_reg, cm_reg],
        }
    }

    /// Syncs one namespace now (for tests and tools).
    pub async fn sync(&self, namespace: &str) -> Result<(), ControllerError> {
        self.inner.sync(namespace).await
    }

    /// Starts the informers, waits for their caches, and runs `workers` workers until
    /// the future is dropped.
    pub async fn run(self, workers: usize) {
        let synced = async {
            tokio::join!(
                self.namespace_informer.wait_synced(),
                self.config_map_informer.wait_synced()
            );
        };
        run_when_synced(
            ROOT_CA_PUBLISHER_CONTROLLER_NAME,
            &self.informers,
            synced,
            self.registrations,
            workers,
            self.inner,
        )
        .await;
    }
}

impl Inner {
    fn data(&self) -> BTreeMap<String, String> {
        [(ROOT_CA_KEY.to_string(), self.bundle.clone())].into()
    }

    async fn sync(&self, namespace: &str) -> Result<(), ControllerError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let data = self.data();
        let Some(current) = self
            .config_maps
            .get_namespaced(namespace, ROOT_CA_CONFIG_MAP_NAME)
        else {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(ROOT_CA_CONFIG_MAP_NAME.to_string()),
                    namespace: Some(namespace.to_string()),
                    annotations: Some(
                        [(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string())].into(),
                    ),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            return match api.create(&PostParams::default(), &cm).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let e = ControllerError::from(e);
                    if e.is_not_found() || e.has_status_cause(NAMESPACE_TERMINATING_CAUSE) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
            };
        };
        let described = current
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
            .is_some_and(|d| !d.is_empty());
        if current.data.as_ref() == Some(&data) && described {
            return Ok(());
        }
        let mut cm = (*current).clone();
        cm.data = Some(data);
        cm.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string());
        let name = ROOT_CA_CONFIG_MAP_NAME;
        api.replace(name, &PostParams::default(), &cm).await?;
        Ok(())
    }
}

impl KeySync for Inner {
    fn queue(&self) -> &WorkQueue<String> {
        &self.queue
    }

    async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        Inner::sync(self, key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_validation() {
        let err = validate_ca_bundle(b"not a certificate").unwrap_err();
        assert_eq!(
            err,
            "data does not contain any valid RSA or ECDSA certificates"
        );
        let key_only = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(validate_ca_bundle(key_only).is_err());
        let junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(validate_ca_bundle(junk).is_err());
    }
}
