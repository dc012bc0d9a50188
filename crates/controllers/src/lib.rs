//! The controller framework of ferrokube, shared by every controller crate
//! (`apps-controllers`, ...) and the `controller-manager` that runs them:
//! - [`informer`]: shared informers (one watch and cache per resource type) with
//!   indexes, change handlers and cache-sync waiting;
//! - [`workqueue`]: client-go's rate-limited, deduplicating work queue;
//! - [`events`]: the core/v1 Event recorder with upstream's correlation;
//! - [`expectations`]: creations/deletions in flight per controller key;
//! - [`controller`]: the shared [`ControllerContext`], [`ControllerDescriptor`], and
//!   the worker loop [`run_workers`];
//! - [`config`]: the flags of every controller ([`ControllerManagerConfig`]);
//! - [`podcontrol`], [`ranking`], [`util`]: pod creation/deletion with events, the
//!   scale-down order, and pod/selector helpers; [`claim`]: adopting and releasing
//!   dependents.
//! - [`servicecache`]: Services and EndpointSlices for node components that rebuild
//!   a whole model after changes (kube-proxy, cluster DNS).
//!
//! Controllers reach the API server only through a `kube::Client`.
//!
//! # Adding a controller
//!
//! 1. A constructor taking the [`ControllerContext`]: get the shared informers it
//!    needs (`ctx.informers.informer::<Deployment>()`), add indexes, and subscribe
//!    handlers with [`informer::Informer::add_handler`] that turn notifications into
//!    keys on its own [`workqueue::WorkQueue`] (keep the returned registrations). Make
//!    an event recorder with `ctx.events.recorder("deployment-controller")`.
//! 2. A run future: `ctx.informers.start()`, wait for the informers' caches
//!    ([`informer::Informer::wait_synced`]), then
//!    `run_workers(name, queue, workers, |key| async move { sync(key).await })`.
//!    The sync reads from the caches ([`informer::Store`]), writes through the client,
//!    and returns an error to be retried with backoff; [`expectations::Expectations`]
//!    guards against acting twice on objects still in flight.
//! 3. A `fn(&ControllerContext) -> Result<ControllerFuture, ControllerError>` listed
//!    as a [`ControllerDescriptor`] by its crate's `descriptors()` (gathered by the
//!    `controller-manager` crate), and its flags in [`ControllerManagerConfig`].
//!
//! Tests can start one controller by calling its start function on a
//! [`ControllerContext`] of their own.

pub mod claim;
pub mod config;
pub mod controller;
pub mod error;
pub mod events;
pub mod expectations;
pub mod informer;
pub mod podcontrol;
pub mod ranking;
pub mod servicecache;
pub mod util;
pub mod workqueue;

pub use config::{ControllerManagerConfig, LeaderElectionConfig};
pub use controller::StartFn;
pub use controller::{run_workers, ControllerContext, ControllerDescriptor, ControllerFuture};
pub use error::ControllerError;
