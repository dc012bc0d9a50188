//! What every controller is built from: the shared [`ControllerContext`] (client,
//! informers, event broadcaster, configuration), the [`ControllerDescriptor`] the
//! manager starts controllers by, and [`run_workers`], the worker loop over a
//! [`WorkQueue`] (sync a key; forget it on success, re-queue it with backoff on error).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kube::Client;
use tokio::task::JoinSet;

use crate::config::ControllerManagerConfig;
use crate::error::ControllerError;
use crate::events::EventBroadcaster;
use crate::informer::InformerFactory;
use crate::workqueue::WorkQueue;

/// Handles shared by all controllers of one manager. Cheap to clone.
#[derive(Clone)]
pub struct ControllerContext {
    /// The API client.
    pub client: Client,
    /// Shared informers (one watch per resource type).
    pub informers: InformerFactory,
    /// Event writer; make recorders with [`EventBroadcaster::recorder`].
    pub events: EventBroadcaster,
    /// The manager's configuration (worker counts and the like).
    pub config: Arc<ControllerManagerConfig>,
}

impl ControllerContext {
    /// A context over `client`. Must run inside a tokio runtime (the event writer is
    /// spawned here); informers start with [`InformerFactory::start`].
    pub fn new(client: Client, config: ControllerManagerConfig) -> Self {
        ControllerContext {
            informers: InformerFactory::new(client.clone()),
            events: EventBroadcaster::new(client.clone()),
            client,
            config: Arc::new(config),
        }
    }
}

/// A running controller: a future that runs until dropped.
pub type ControllerFuture = BoxFuture<'static, ()>;

/// Builds a controller (registering its informer handlers) and returns the future that
/// runs it.
pub type StartFn = fn(&ControllerContext) -> Result<ControllerFuture, ControllerError>;

/// How the manager knows a controller.
#[derive(Clone, Copy, Debug)]
pub struct ControllerDescriptor {
    /// Canonical name, as in `--controllers` (e.g. `replicaset-controller`).
    pub name: &'static str,
    /// Other accepted names (e.g. `replicaset`).
    pub aliases: &'static [&'static str],
    /// Whether `*` leaves it off.
    pub disabled_by_default: bool,
    /// Constructor.
    pub start: StartFn,
}

/// Aborts the worker tasks and stops the queue when the owning future is dropped.
struct StopOnDrop {
    queue_stop: Box<dyn Fn() + Send + Sync>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        (self.queue_stop)();
    }
}

/// Runs `workers` tasks (at least one) that take keys from `queue` and call `sync` on each, until the
/// returned future is dropped (which stops the queue and aborts the workers). A key is
/// forgotten by the rate limiter after a successful sync and re-queued with backoff
/// after an error (or a panic).
pub async fn run_workers<F, Fut>(name: &str, queue: WorkQueue<String>, workers: usize, sync: F)
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ControllerError>> + Send + 'static,
{
    let sync = Arc::new(sync);
    let stopper = queue.clone();
    let _stop = StopOnDrop {
        queue_stop: Box::new(move || stopper.shut_down()),
    };
    let mut set = JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let sync = sync.clone();
        let name = name.to_string();
        set.spawn(async move {
            while let Some(key) = queue.get().await {
                let result = AssertUnwindSafe(sync(key.clone())).catch_unwind().await;
                match result {
                    Ok(Ok(())) => queue.forget(&key),
                    Ok(Err(err)) => {
                        tracing::warn!(controller = %name, key = %key, error = %err, "sync failed; requeueing");
                        queue.add_rate_limited(key.clone());
                    }
                    Err(_) => {
                        tracing::error!(controller = %name, key = %key, "sync panicked; requeueing");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_retry_failures_and_forget_successes() {
        let queue: WorkQueue<String> = WorkQueue::new("test");
        let attempts: Arc<Mutex<Vec<String>>> = Arc::default();
        let a = attempts.clone();
        let runner = tokio::spawn(run_workers("test", queue.clone(), 2, move |key: String| {
            let a = a.clone();
            async move {
                let n = {
                    let mut a = a.lock();
                    a.push(key.clone());
                    a.iter().filter(|k| **k == key).count()
                };
                if key == "flaky" && n < 3 {
                    return Err(ControllerError::Other("not yet".into()));
                }
                if key == "panics" && n < 2 {
                    panic!("boom");
                }
                Ok(())
            }
        }));
        queue.add("ok".into());
        queue.add("flaky".into());
        queue.add("panics".into());
        for _ in 0..100 {
            let done = {
                let a = attempts.lock();
                a.iter().filter(|k| *k == "flaky").count() == 3
                    && a.iter().filter(|k| *k == "panics").count() == 2
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let a = attempts.lock().clone();
        assert_eq!(a.iter().filter(|k| *k == "ok").count(), 1);
        assert_eq!(a.iter().filter(|k| *k == "flaky").count(), 3);
        assert_eq!(a.iter().filter(|k| *k == "panics").count(), 2);
        assert_eq!(
            queue.num_requeues(&"flaky".to_string()),
            0,
            "forgotten after success"
        );
        runner.abort();
        let _ = runner.await;
        assert!(
            queue.is_shutting_down(),
            "dropping the runner stops the queue"
        );
    }
}
