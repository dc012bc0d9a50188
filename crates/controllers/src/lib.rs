//! The controller manager of ferrokube: a reusable controller framework and the
//! controllers built on it.
//!
//! Framework (shared by every controller):
//! - [`informer`]: shared informers (one watch and cache per resource type) with
//!   indexes, change handlers and cache-sync waiting;
//! - [`workqueue`]: client-go's rate-limited, deduplicating work queue;
//! - [`events`]: the core/v1 Event recorder with upstream's correlation;
//! - [`expectations`]: creations/deletions in flight per controller key;
//! - [`controller`]: the shared [`ControllerContext`], [`ControllerDescriptor`], and
//!   the worker loop [`run_workers`];
//! - [`manager`]: flags ([`ControllerManagerConfig`]), `--controllers` selection, the
//!   controller registry and [`run`];
//! - [`podcontrol`], [`ranking`], [`util`]: pod creation/deletion with events, the
//!   scale-down order, and pod/selector helpers; `claim`: adopting and releasing
//!   dependents.
//!
//! Controllers: [`replicaset`] (ReplicaSet and ReplicationController) and
//! [`deployment`] (Deployment, rolling out through ReplicaSets).
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
//!    as a [`ControllerDescriptor`] in [`manager::controller_descriptors`], and its
//!    `--concurrent-…-syncs` flag in [`ControllerManagerConfig`].
//!
//! Tests can start one controller with [`start_controller`] on a context of their own.

pub(crate) mod claim;
pub mod controller;
pub mod deployment;
pub mod error;
pub mod events;
pub mod expectations;
pub mod informer;
pub mod manager;
pub mod podcontrol;
pub mod ranking;
pub mod replicaset;
pub mod util;
pub mod workqueue;

pub use controller::{run_workers, ControllerContext, ControllerDescriptor, ControllerFuture};
pub use error::ControllerError;
pub use manager::{controller_descriptors, run, start_controller, ControllerManagerConfig};
