//! The worker loop shared by this crate's controllers: every controller keeps its
//! state in an `Arc` and syncs one queue key at a time with it.

use std::future::Future;
use std::sync::Arc;

use controllers::controller::run_workers;
use controllers::error::ControllerError;
use controllers::workqueue::WorkQueue;

/// Runs `workers` workers of the controller `name` on `queue` until the future is
/// dropped; each key is handed to `sync` along with a clone of `state`.
pub(crate) async fn run_sync_workers<S, F, Fut>(
    name: &str,
    queue: WorkQueue<String>,
    workers: usize,
    state: Arc<S>,
    sync: F,
) where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ControllerError>> + Send + 'static,
{
    run_workers(name, queue, workers, move |key| sync(state.clone(), key)).await;
}
