//! Controllers of the batch workloads, built on the `controllers` framework:
//! [`job`] (Job: pods to completion, tracked with finalizers), [`cronjob`] (CronJob:
//! Jobs on a cron schedule) and [`ttl`] (TTL-after-finished: deleting finished Jobs
//! once their `ttlSecondsAfterFinished` has passed).
//!
//! Shared pieces: [`clock`] (the injectable "now"), [`cron`] (schedule parsing and
//! next-time computation, re-exported from the `cron-schedule` crate) and
//! [`intervals`] (the `"1,3-5"` index lists of Indexed Jobs). [`descriptors`] lists
//! the controllers for the controller manager.

pub mod clock;
pub use cron_schedule as cron;
pub mod cronjob;
pub mod intervals;
pub mod job;
pub mod ttl;

use controllers::ControllerDescriptor;

/// The controllers of this crate, for the controller manager's registry.
pub fn descriptors() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor {
            name: job::JOB_CONTROLLER_NAME,
            aliases: &["job"],
            disabled_by_default: false,
            start: job::start_job_controller,
        },
        ControllerDescriptor {
            name: cronjob::CRONJOB_CONTROLLER_NAME,
            aliases: &["cronjob"],
            disabled_by_default: false,
            start: cronjob::start_cronjob_controller,
        },
        ControllerDescriptor {
            name: ttl::TTL_AFTER_FINISHED_CONTROLLER_NAME,
            aliases: &["ttl-after-finished"],
            disabled_by_default: false,
            start: ttl::start_ttl_after_finished_controller,
        },
    ]
}

/// Starts the controller of this crate named `name` (canonical name or alias) on
/// `ctx`, for tests and embedders that run one controller alone.
pub fn start(
    ctx: &controllers::ControllerContext,
    name: &str,
) -> Result<controllers::ControllerFuture, controllers::ControllerError> {
    let d = descriptors()
        .into_iter()
        .find(|d| d.name == name || d.aliases.contains(&name))
        .ok_or_else(|| {
            controllers::ControllerError::Config(format!(
                "{name:?} is not in the list of known controllers"
            ))
        })?;
    (d.start)(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_have_upstream_names() {
        let names: Vec<(&str, &[&str])> =
            descriptors().iter().map(|d| (d.name, d.aliases)).collect();
        assert_eq!(
            names,
            [
                ("job-controller", &["job"][..]),
                ("cronjob-controller", &["cronjob"][..]),
                ("ttl-after-finished-controller", &["ttl-after-finished"][..]),
            ]
        );
    }
}
