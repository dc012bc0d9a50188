//! The loop the approver and the signer share (upstream's `CertificateController`):
//! every CertificateSigningRequest that changes is queued by name; a worker hands the
//! cached request to the controller's [`CsrHandler`] unless it already has a
//! certificate, and re-queues it with backoff when the handler fails.

use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

use controllers::controller::{run_workers, ControllerContext};
use controllers::error::ControllerError;
use controllers::informer::{
    object_key, HandlerRegistration, Informer, InformerFactory, Notification, Store,
};
use controllers::workqueue::WorkQueue;

use crate::request::is_issued;

/// The outcome of writing a request back: a request deleted meanwhile needs nothing
/// more; any other failure says what `what` was.
pub fn written<T>(result: Result<T, kube::Error>, what: &str) -> Result<(), ControllerError> {
    match result.map_err(ControllerError::from) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(ControllerError::Other(format!("{what}: {e}"))),
    }
}

/// What one certificate controller does with a request that has no certificate yet.
pub trait CsrHandler: Send + Sync + 'static {
    /// Acts on `csr` (a copy of the cached object, free to change and send back).
    fn handle(
        &self,
        csr: CertificateSigningRequest,
    ) -> impl Future<Output = Result<(), ControllerError>> + Send;
}

/// A controller that runs a [`CsrHandler`] on every request without a certificate.
pub struct CertificateController<H> {
    name: &'static str,
    handler: Arc<H>,
    csrs: Store<CertificateSigningRequest>,
    queue: WorkQueue<String>,
    informers: InformerFactory,
    informer: Informer<CertificateSigningRequest>,
    registration: HandlerRegistration,
}

impl<H: CsrHandler> CertificateController<H> {
    /// Builds the controller `name` on the context's shared CSR informer.
    pub fn new(ctx: &ControllerContext, name: &'static str, handler: H) -> Self {
        let informer = ctx.informers.informer::<CertificateSigningRequest>();
        let queue = WorkQueue::new(name);
        let q = queue.clone();
        let registration =
            informer.add_handler(move |n: &Notification<CertificateSigningRequest>| {
                q.add(object_key(n.object().as_ref()))
            });
        CertificateController {
            name,
            handler: Arc::new(handler),
            csrs: informer.store(),
            queue,
            informers: ctx.informers.clone(),
            informer,
            registration,
        }
    }

    /// Starts the informers, waits for the cache, and runs `workers` workers until
    /// the future is dropped.
    pub async fn run(self, workers: usize) {
        self.informers.start();
        self.informer.wait_synced().await;
        tracing::info!(
            controller = self.name,
            workers,
            "caches synced; starting workers"
        );
        let _registration = self.registration;
        let (csrs, handler) = (self.csrs, self.handler);
        run_workers(self.name, self.queue, workers, move |key| {
            let (csrs, handler) = (csrs.clone(), handler.clone());
            async move {
                // Gone, or already issued: nothing left to do.
                let Some(csr) = csrs.get(&key) else {
                    return Ok(());
                };
                if is_issued(&csr) {
                    return Ok(());
                }
                handler.handle(csr.as_ref().clone()).await
            }
        })
        .await;
    }
}
