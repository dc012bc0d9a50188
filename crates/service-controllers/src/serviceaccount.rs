//! The ServiceAccount controller: makes sure every active namespace has a
//! ServiceAccount named `default`, creating it when a namespace appears and again
//! whenever it is deleted.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::Client;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::informer::{HandlerRegistration, Informer, InformerFactory, Notification, Store};
use controllers::workqueue::WorkQueue;

use crate::podutil::NAMESPACE_TERMINATING_CAUSE;
use crate::workers::{run_when_synced, KeySync};

/// Canonical name of the ServiceAccount controller.
pub const SERVICEACCOUNT_CONTROLLER_NAME: &str = "serviceaccount-controller";
/// The service accounts ensured in every namespace.
pub const SERVICE_ACCOUNTS_TO_ENSURE: &[&str] = &["default"];

/// Starts the ServiceAccount controller (one worker, as upstream).
pub fn start_serviceaccount_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let c = ServiceAccountController::new(ctx);
    Ok(Box::pin(c.run(1)))
}

struct Inner {
    client: Client,
    namespaces: Store<Namespace>,
    accounts: Store<ServiceAccount>,
    queue: WorkQueue<String>,
}

/// The ServiceAccount controller.
pub struct ServiceAccountController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    namespace_informer: Informer<Namespace>,
    account_informer: Informer<ServiceAccount>,
    registrations: Vec<HandlerRegistration>,
}

impl ServiceAccountController {
    /// Builds the controller on the context's shared informers and subscribes to them.
    pub fn new(ctx: &ControllerContext) -> Self {
        let namespace_informer = ctx.informers.informer::<Namespace>();
        let account_informer = ctx.informers.informer::<ServiceAccount>();
        let queue = WorkQueue::new("serviceaccount");
        let q = queue.clone();
        let ns_reg = namespace_informer.add_handler(move |n: &Notification<Namespace>| {
            if !matches!(n, Notification::Deleted(_)) {
                q.add(n.object().metadata.name.clone().unwrap_or_default());
            }
        });
        let q = queue.clone();
        let sa_reg = account_informer.add_handler(move |n: &Notification<ServiceAccount>| {
            if let Notification::Deleted(sa) = n {
                q.add(sa.metadata.namespace.clone().unwrap_or_default());
            }
        });
        ServiceAccountController {
            inner: Arc::new(Inner {
                client: ctx.client.clone(),
                namespaces: namespace_informer.store(),
                accounts: account_informer.store(),
                queue,
            }),
            informers: ctx.informers.clone(),
            namespace_informer,
            account_informer,
            registrations: vec![ns_reg, sa_reg],
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
                self.account_informer.wait_synced()
            );
        };
        run_when_synced(
            SERVICEACCOUNT_CONTROLLER_NAME,
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
    async fn sync(&self, namespace: &str) -> Result<(), ControllerError> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Ok(());
        };
        let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase != Some("Active") {
            return Ok(());
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let mut failures = Vec::new();
        for name in SERVICE_ACCOUNTS_TO_ENSURE {
            if self.accounts.get_namespaced(namespace, name).is_some() {
                continue;
            }
            let sa = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some((*name).to_string()),
                    namespace: Some(namespace.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            if let Err(e) = api.create(&PostParams::default(), &sa).await {
                let e = ControllerError::from(e);
                if !e.is_already_exists() && !e.has_status_cause(NAMESPACE_TERMINATING_CAUSE) {
                    failures.push(e);
                }
            }
        }
        match ControllerError::aggregate(failures) {
            Some(e) => Err(e),
            None => Ok(()),
        }
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
