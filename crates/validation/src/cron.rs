//! CronJob schedule and time-zone checks for validation, answered by the shared
//! `cron-schedule` parser so that messages are robfig/cron's and Go's
//! `time.LoadLocation`'s, as upstream reports them.

/// Whether `name` is a time zone Go's `time.LoadLocation` accepts ("" and
/// `UTC` are UTC, `Local` the local zone, anything else a tz database name),
/// with its error message.
pub fn load_location(name: &str) -> Result<(), String> {
    cron_schedule::load_location(name)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Checks a schedule as robfig/cron's `ParseStandard`, returning its error
/// message on failure.
pub fn parse_standard(spec: &str) -> Result<(), String> {
    cron_schedule::Schedule::parse(spec)
        .map(drop)
        .map_err(|e| e.to_string())
}
