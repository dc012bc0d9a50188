//! The pure scheduling logic of the CronJob controller: which scheduled time (if
//! any) is due now, how many were missed, when to look again, the Job made for a
//! scheduled time, and helpers over Jobs and the active list.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::cron::Schedule;
use controllers::util::new_controller_ref;

/// The annotation holding the time a Job was scheduled for (RFC 3339, in the
/// CronJob's zone).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Padding added to requeue delays against clock skew.
pub const NEXT_SCHEDULE_DELTA: SignedDuration = SignedDuration::from_millis(100);

/// More missed schedules than this are reported as "too many".
pub const MAX_MISSED_SCHEDULES: i64 = 100;

/// How many scheduled times were missed since the last one handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    /// None.
    None,
    /// Some, at most [`MAX_MISSED_SCHEDULES`].
    Few,
    /// More than [`MAX_MISSED_SCHEDULES`].
    Many,
}

/// What [`most_recent_schedule_time`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MostRecent {
    /// The time counting starts from: the last schedule time, else the creation
    /// time (raised to `now - startingDeadlineSeconds` when asked).
    pub earliest: Timestamp,
    /// The latest scheduled time at or before `now`, after `earliest`.
    pub most_recent: Option<Timestamp>,
    /// How many were missed.
    pub missed: Missed,
}

/// The error for schedules whose consecutive activations are under a second apart
/// (or that never fire), as upstream reports them.
pub const SCHEDULE_TOO_CLOSE: &str = "time difference between two schedules is less than 1 second";

fn time_of(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

/// The most recent scheduled time of `cj` at or before `now`, counting the missed
/// ones roughly (as upstream: from the interval between the first two activations).
pub fn most_recent_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
    include_starting_deadline: bool,
) -> Result<MostRecent, String> {
    let status = cj.status.clone().unwrap_or_default();
    let mut earliest = time_of(&status.last_schedule_time)
        .or_else(|| time_of(&cj.metadata.creation_timestamp))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let deadline = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds);
    if let (true, Some(d)) = (include_starting_deadline, deadline) {
        if let Ok(limit) = now.checked_sub(SignedDuration::from_secs(d)) {
            if limit > earliest {
                earliest = limit;
            }
        }
    }
    let result = |most_recent, missed| MostRecent {
        earliest,
        most_recent,
        missed,
    };
    let (Some(t1), Some(t2)) = (
        schedule.next(earliest),
        schedule.next(earliest).and_then(|t1| schedule.next(t1)),
    ) else {
        return Err(SCHEDULE_TOO_CLOSE.into());
    };
    if now < t1 {
        return Ok(result(None, Missed::None));
    }
    if now < t2 {
        return Ok(result(Some(t1), Missed::None));
    }
    let between = t2
        .duration_since(t1)
        .round(jiff::Unit::Second)
        .map_or(0, |d| d.as_secs());
    if between < 1 {
        return Err(SCHEDULE_TOO_CLOSE.into());
    }
    let elapsed = now.duration_since(t1).as_secs();
    let missed_count = elapsed / between + 1;
    // Start one interval before the estimate and let the schedule find the exact
    // times (schedules need not be evenly spaced).
    let back = SignedDuration::from_secs((missed_count - 2).saturating_mul(between));
    let mut most_recent = None;
    let mut t = t1.checked_add(back).ok().and_then(|p| schedule.next(p));
    while let Some(cur) = t {
        if cur > now {
            break;
        }
        most_recent = Some(cur);
        t = schedule.next(cur);
    }
    let missed = if missed_count > MAX_MISSED_SCHEDULES {
        Missed::Many
    } else if missed_count > 0 {
        Missed::Few
    } else {
        Missed::None
    };
    Ok(result(most_recent, missed))
}

/// How long to wait before looking at `cj` again: until its next scheduled time
/// (plus [`NEXT_SCHEDULE_DELTA`]).
pub fn next_schedule_time_duration(
    cj: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
) -> SignedDuration {
    let from = match most_recent_schedule_time(cj, now, schedule, false) {
        Err(_) => now,
        Ok(MostRecent {
            most_recent: Some(t),
            ..
        }) => t,
        Ok(MostRecent {
            earliest,
            most_recent: None,
            missed,
        }) => {
            if missed == Missed::None {
                earliest
            } else {
                now
            }
        }
    };
    match schedule.next(from) {
        Some(next) => next.duration_since(now) + NEXT_SCHEDULE_DELTA,
        // Never fires again: look again in a day in case the spec changes.
        None => SignedDuration::from_hours(24),
    }
}

/// The scheduled time to start a Job for now (the most recent unmet one), if any,
/// and whether too many were missed.
pub fn next_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
) -> Result<(Option<Timestamp>, bool), String> {
    let mr = most_recent_schedule_time(cj, now, schedule, true)?;
    match mr.most_recent {
        Some(t) if t <= now => Ok((Some(t), mr.missed == Missed::Many)),
        _ => Ok((None, false)),
    }
}

/// The name of the Job for `scheduled`: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cj: &CronJob, scheduled: Timestamp) -> String {
    format!(
        "{}-{}",
        cj.metadata.name.as_deref().unwrap_or(""),
        scheduled.as_second().div_euclid(60)
    )
}

/// Formats as Go's RFC 3339 (`Z` for a zero offset).
pub fn rfc3339_in(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    let offset = z.offset().seconds();
    let base = z.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if offset == 0 {
        format!("{base}Z")
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        format!("{base}{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60)
    }
}

/// The Job to create for `scheduled`: the template's labels, annotations and spec,
/// the scheduled-timestamp annotation, a deterministic name and the controller
/// reference.
pub fn job_from_template(cj: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let labels: BTreeMap<String, String> = tmeta.labels.unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = tmeta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.to_string(),
        rfc3339_in(scheduled, tz),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![new_controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// The finished condition type of a Job (`Complete` or `Failed` with status True).
pub fn finished_status(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

/// Whether the Job has finished.
pub fn is_job_finished(job: &Job) -> bool {
    finished_status(job).is_some()
}

/// Whether the Job completed successfully.
pub fn is_job_succeeded(job: &Job) -> bool {
    finished_status(job) == Some("Complete")
}

/// Whether `uid` is in the CronJob's active list.
pub fn in_active_list(cj: &CronJob, uid: &str) -> bool {
    cj.status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .is_some_and(|a| a.iter().any(|r| r.uid.as_deref() == Some(uid)))
}

/// Whether a Job named `name` in `namespace` is in the CronJob's active list.
pub fn in_active_list_by_name(cj: &CronJob, namespace: &str, name: &str) -> bool {
    cj.status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .is_some_and(|a| {
            a.iter().any(|r| {
                r.name.as_deref() == Some(name) && r.namespace.as_deref() == Some(namespace)
            })
        })
}

/// Removes `uid` from the active list.
pub fn delete_from_active_list(cj: &mut CronJob, uid: &str) {
    if let Some(active) = cj.status.as_mut().and_then(|s| s.active.as_mut()) {
        active.retain(|r| r.uid.as_deref() != Some(uid));
    }
}

/// Orders Jobs oldest first by start time (Jobs never started last), then by name.
pub fn by_start_time(a: &Job, b: &Job) -> Ordering {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    match (start(a), start(b)) {
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (sa, sb) if sa == sb => a.metadata.name.cmp(&b.metadata.name),
        (sa, sb) => sa.cmp(&sb),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{CronJobSpec, CronJobStatus, JobStatus};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cronjob(
        schedule: &str,
        created: &str,
        last: Option<&str>,
        deadline: Option<i64>,
    ) -> CronJob {
        CronJob {
            metadata: ObjectMeta {
                name: Some("cj".into()),
                namespace: Some("ns".into()),
                uid: Some("uid-1".into()),
                creation_timestamp: Some(Time(ts(created))),
                ..Default::default()
            },
            spec: Some(CronJobSpec {
                schedule: schedule.into(),
                starting_deadline_seconds: deadline,
                ..Default::default()
            }),
            status: Some(CronJobStatus {
                last_schedule_time: last.map(|l| Time(ts(l))),
                ..Default::default()
            }),
        }
    }

    fn sched(s: &str) -> Schedule {
        Schedule::parse(s).unwrap()
    }

    #[test]
    fn nothing_due_before_first_time() {
        let cj = cronjob("*/5 * * * *", "2024-01-01T10:01:00Z", None, None);
        let s = sched("*/5 * * * *");
        let now = ts("2024-01-01T10:04:00Z");
        assert_eq!(next_schedule_time(&cj, now, &s).unwrap(), (None, false));
        let mr = most_recent_schedule_time(&cj, now, &s, false).unwrap();
        assert_eq!(mr.missed, Missed::None);
        // Requeue at 10:05 plus the delta.
        assert_eq!(
            next_schedule_time_duration(&cj, now, &s),
            SignedDuration::from_secs(60) + NEXT_SCHEDULE_DELTA
        );
    }

    #[test]
    fn one_due() {
        let cj = cronjob("*/5 * * * *", "2024-01-01T10:01:00Z", None, None);
        let s = sched("*/5 * * * *");
        let now = ts("2024-01-01T10:06:00Z");
        assert_eq!(
            next_schedule_time(&cj, now, &s).unwrap(),
            (Some(ts("2024-01-01T10:05:00Z")), false)
        );
        assert_eq!(
            next_schedule_time_duration(&cj, now, &s),
            SignedDuration::from_secs(240) + NEXT_SCHEDULE_DELTA
        );
    }

    #[test]
    fn several_missed_gives_the_latest() {
        let cj = cronjob(
            "0 * * * *",
            "2024-01-01T00:00:00Z",
            Some("2024-01-01T05:00:00Z"),
            None,
        );
        let s = sched("0 * * * *");
        let now = ts("2024-01-01T09:30:00Z");
        let mr = most_recent_schedule_time(&cj, now, &s, true).unwrap();
        assert_eq!(mr.most_recent, Some(ts("2024-01-01T09:00:00Z")));
        assert_eq!(mr.missed, Missed::Few);
        assert_eq!(mr.earliest, ts("2024-01-01T05:00:00Z"));
    }

    #[test]
    fn too_many_missed() {
        let cj = cronjob("* * * * *", "2024-01-01T00:00:00Z", None, None);
        let s = sched("* * * * *");
        let now = ts("2024-01-01T01:42:30Z");
        // 101 scheduled minutes from 00:01 to 01:41, plus 01:42: 102 > 100.
        let (t, many) = next_schedule_time(&cj, now, &s).unwrap();
        assert_eq!(t, Some(ts("2024-01-01T01:42:00Z")));
        assert!(many);
        let cj = cronjob("* * * * *", "2024-01-01T00:00:00Z", None, None);
        let (_, many) = next_schedule_time(&cj, ts("2024-01-01T01:40:30Z"), &s).unwrap();
        assert!(!many, "100 missed is not too many");
        // A starting deadline bounds the count.
        let cj = cronjob("* * * * *", "2024-01-01T00:00:00Z", None, Some(200));
        let (t, many) = next_schedule_time(&cj, now, &s).unwrap();
        assert_eq!(t, Some(ts("2024-01-01T01:42:00Z")));
        assert!(!many);
    }

    #[test]
    fn irregular_schedules_find_exact_times() {
        let cj = cronjob(
            "30 6-16/4 * * 1-5",
            "2024-01-01T00:00:00Z",
            Some("2024-01-02T06:30:00Z"),
            None,
        );
        let s = sched("30 6-16/4 * * 1-5");
        // Tuesday 2024-01-09 12:00: the latest is 10:30 that day.
        let mr = most_recent_schedule_time(&cj, ts("2024-01-09T12:00:00Z"), &s, false).unwrap();
        assert_eq!(mr.most_recent, Some(ts("2024-01-09T10:30:00Z")));
    }

    #[test]
    fn impossible_schedule_errors() {
        let cj = cronjob("59 23 31 2 *", "2024-01-01T00:00:00Z", None, None);
        let s = sched("59 23 31 2 *");
        assert_eq!(
            next_schedule_time(&cj, ts("2024-06-01T00:00:00Z"), &s).unwrap_err(),
            SCHEDULE_TOO_CLOSE
        );
    }

    #[test]
    fn names_and_annotations() {
        let cj = cronjob("*/1 * * * *", "2024-01-01T00:00:00Z", None, None);
        let t = ts("2024-01-01T10:05:00Z");
        assert_eq!(job_name(&cj, t), format!("cj-{}", t.as_second() / 60));
        assert_eq!(job_name(&cj, t), "cj-28401725");
        let job = job_from_template(&cj, t, &TimeZone::UTC);
        assert_eq!(
            job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP_ANNOTATION],
            "2024-01-01T10:05:00Z"
        );
        let ny = crate::cron::load_location("America/New_York").unwrap();
        assert_eq!(rfc3339_in(t, &ny), "2024-01-01T05:05:00-05:00");
        let kolkata = crate::cron::load_location("Asia/Kolkata").unwrap();
        assert_eq!(rfc3339_in(t, &kolkata), "2024-01-01T15:35:00+05:30");
        let owner = &job.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CronJob", Some(true))
        );
    }

    #[test]
    fn start_time_order() {
        let job = |name: &str, start: Option<&str>| Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(JobStatus {
                start_time: start.map(|s| Time(ts(s))),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut jobs = [
            job("c", None),
            job("b", Some("2024-01-01T00:00:00Z")),
            job("a", Some("2024-01-01T00:00:00Z")),
            job("d", Some("2023-01-01T00:00:00Z")),
        ];
        jobs.sort_by(by_start_time);
        let names: Vec<&str> = jobs
            .iter()
            .map(|j| j.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["d", "a", "b", "c"]);
    }
}
