//! The run loop shared by this crate's controllers: every controller keeps its
//! state in an `Arc` and syncs one queue key at a time with it, once the caches it
//! reads have synced.

use std::future::Future;
use std::sync::Arc;

use controllers::controller::run_workers;
use controllers::error::ControllerError;
use controllers::informer::{HandlerRegistration, InformerFactory};
use controllers::workqueue::WorkQueue;

/// A controller's state: its queue, and how one key is synced.
pub(crate) trait KeySync: Send + Sync + 'static {
    fn queue(&self) -> &WorkQueue<String>;
    fn sync(&self, key: &str) -> impl Future<Output = Result<(), ControllerError>> + Send;
}

/// Starts the shared informers, waits for `synced` (the controller's caches, and
/// whatever it does once they are filled), then runs `workers` workers of the
/// controller `name` on the state's queue until the future is dropped. The handler
/// registrations live as long.
pub(crate) async fn run_when_synced<S: KeySync>(
    name: &'static str,
    informers: &InformerFactory,
    synced: impl Future<Output = ()>,
    registrations: Vec<HandlerRegistration>,
    workers: usize,
    state: Arc<S>,
) {
    informers.start();
    synced.await;
    tracing::info!(
        controller = name,
        workers,
        "caches synced; starting workers"
    );
    let _registrations = registrations;
    let queue = state.queue().clone();
    run_workers(name, queue, workers, move |key| {
        let state = state.clone();
        async move { state.sync(&key).await }
    })
    .await;
}
