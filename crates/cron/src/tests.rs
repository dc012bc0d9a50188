//! Unit tests of parsing and next-time computation, gathered from the former
//! copies in `validation` (schedule validation) and `batch-controllers` (the
//! CronJob controller).

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn next(spec: &str, after: &str) -> String {
    Schedule::parse(spec)
        .unwrap()
        .next(ts(after))
        .map(|t| t.to_string())
        .unwrap_or_else(|| "none".into())
}

fn next_in(spec: &str, zone: &str, after: &str) -> String {
    Schedule::parse(spec)
        .unwrap()
        .in_time_zone(load_location(zone).unwrap())
        .next(ts(after))
        .map(|t| t.to_string())
        .unwrap()
}

#[test]
fn parse_errors_match_robfig() {
    let err = |s: &str| Schedule::parse(s).unwrap_err().to_string();
    assert_eq!(err(""), "empty spec string");
    assert_eq!(
        err("* * * *"),
        "expected exactly 5 fields, found 4: [* * * *]"
    );
    assert_eq!(
        err("60 * * * *"),
        "end of range (60) above maximum (59): 60"
    );
    assert_eq!(
        err("* * 0 * *"),
        "beginning of range (0) below minimum (1): 0"
    );
    assert_eq!(err("* * * * 7"), "end of range (7) above maximum (6): 7");
    assert_eq!(
        err("x * * * *"),
        "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        err("5-3 * * * *"),
        "beginning of range (5) beyond end of range (3): 5-3"
    );
    assert_eq!(
        err("*/0 * * * *"),
        "step of range should be a positive number: */0"
    );
    assert_eq!(err("1-2-3 * * * *"), "too many hyphens: 1-2-3");
    assert_eq!(err("1/2/3 * * * *"), "too many slashes: 1/2/3");
    assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
    assert_eq!(
        err("@every 5x"),
        "failed to parse duration @every 5x: time: unknown unit \"x\" in duration \"5x\""
    );
    assert_eq!(
        err("TZ=Mars/Base 0 * * * *"),
        "provided bad location Mars/Base: unknown time zone Mars/Base"
    );
}

#[test]
fn standard_fields() {
    assert_eq!(
        next("*/1 * * * *", "2024-01-01T10:00:00Z"),
        "2024-01-01T10:01:00Z"
    );
    assert_eq!(
        next("*/1 * * * *", "2024-01-01T10:00:30Z"),
        "2024-01-01T10:01:00Z"
    );
    assert_eq!(
        next("*/15 * * * *", "2024-01-01T10:16:00Z"),
        "2024-01-01T10:30:00Z"
    );
    assert_eq!(
        next("5 4 * * *", "2024-01-01T04:05:00Z"),
        "2024-01-02T04:05:00Z"
    );
    assert_eq!(
        next("0 0 1 jan *", "2024-01-01T00:00:00Z"),
        "2025-01-01T00:00:00Z"
    );
    // 2024-01-06 is a Saturday.
    assert_eq!(
        next("30 9 * * MON-FRI", "2024-01-05T10:00:00Z"),
        "2024-01-08T09:30:00Z"
    );
    assert_eq!(
        next("0 12 * * sun", "2024-01-01T00:00:00Z"),
        "2024-01-07T12:00:00Z"
    );
    // Lists, ranges with steps, N/step.
    assert_eq!(
        next("10,40 1-5/2 * * *", "2024-01-01T01:40:00Z"),
        "2024-01-01T03:10:00Z"
    );
    assert_eq!(
        next("50/5 * * * *", "2024-01-01T00:56:00Z"),
        "2024-01-01T01:50:00Z"
    );
    // Leap day.
    assert_eq!(
        next("0 0 29 2 *", "2024-03-01T00:00:00Z"),
        "2028-02-29T00:00:00Z"
    );
    // Never: 30th of February.
    assert_eq!(next("0 0 30 2 *", "2024-01-01T00:00:00Z"), "none");
}

#[test]
fn day_of_month_or_day_of_week() {
    // Both restricted: either matches. 2024-01-03 is a Wednesday.
    assert_eq!(
        next("0 0 15 * wed", "2024-01-01T00:00:00Z"),
        "2024-01-03T00:00:00Z"
    );
    // One is a star: both must match (the 1st that is a Wednesday).
    assert_eq!(
        next("0 0 1 * *", "2024-01-01T00:00:00Z"),
        "2024-02-01T00:00:00Z"
    );
    assert_eq!(
        next("0 0 */1 * wed", "2024-01-01T00:00:00Z"),
        "2024-01-03T00:00:00Z"
    );
    // A step above one clears the star: OR semantics again.
    assert_eq!(
        next("0 0 */2 * mon", "2024-01-01T00:00:00Z"),
        "2024-01-03T00:00:00Z"
    );
}

#[test]
fn descriptors() {
    assert_eq!(
        next("@hourly", "2024-01-01T10:00:00Z"),
        "2024-01-01T11:00:00Z"
    );
    assert_eq!(
        next("@daily", "2024-01-01T10:00:00Z"),
        "2024-01-02T00:00:00Z"
    );
    assert_eq!(
        next("@midnight", "2024-01-01T10:00:00Z"),
        "2024-01-02T00:00:00Z"
    );
    assert_eq!(
        next("@weekly", "2024-01-01T10:00:00Z"),
        "2024-01-07T00:00:00Z"
    );
    assert_eq!(
        next("@monthly", "2024-01-01T10:00:00Z"),
        "2024-02-01T00:00:00Z"
    );
    assert_eq!(
        next("@yearly", "2024-01-01T10:00:00Z"),
        "2025-01-01T00:00:00Z"
    );
    assert_eq!(
        next("@annually", "2024-01-01T00:00:00Z"),
        "2025-01-01T00:00:00Z"
    );
    assert_eq!(
        next("@every 90s", "2024-01-01T10:00:00.5Z"),
        "2024-01-01T10:01:30Z"
    );
    assert_eq!(
        next("@every 1h30m", "2024-01-01T10:00:00Z"),
        "2024-01-01T11:30:00Z"
    );
    assert_eq!(
        next("@every 100ms", "2024-01-01T10:00:00Z"),
        "2024-01-01T10:00:01Z"
    );
}

#[test]
fn time_zones() {
    // 09:00 in New York (EST, UTC-5) is 14:00 UTC.
    assert_eq!(
        next_in("0 9 * * *", "America/New_York", "2024-01-01T00:00:00Z"),
        "2024-01-01T14:00:00Z"
    );
    assert_eq!(
        next("CRON_TZ=Asia/Tokyo 0 9 * * *", "2024-01-01T00:00:00Z"),
        "2024-01-02T00:00:00Z"
    );
    assert_eq!(
        next("TZ=Asia/Kolkata 30 9 * * *", "2024-01-01T00:00:00Z"),
        "2024-01-01T04:00:00Z"
    );
    let s = Schedule::parse("TZ=Europe/Paris @daily").unwrap();
    assert_eq!(
        s.next(ts("2024-07-01T12:00:00Z")).unwrap(),
        ts("2024-07-01T22:00:00Z")
    );
}

#[test]
fn dst_spring_forward_skips_the_gap() {
    // 2024-03-10: New York jumps from 02:00 EST to 03:00 EDT; 02:30 does not exist.
    let ny = "America/New_York";
    assert_eq!(
        next_in("30 2 * * *", ny, "2024-03-09T08:00:00Z"),
        "2024-03-11T06:30:00Z",
        "the skipped day is not run"
    );
    // Hourly keeps firing each real hour around the gap.
    assert_eq!(
        next_in("0 * * * *", ny, "2024-03-10T06:30:00Z"),
        "2024-03-10T07:00:00Z"
    );
    assert_eq!(
        next_in("0 * * * *", ny, "2024-03-10T07:00:00Z"),
        "2024-03-10T08:00:00Z"
    );
    // 03:00 EDT the same morning is 07:00 UTC.
    assert_eq!(
        next_in("0 3 * * *", ny, "2024-03-10T05:00:00Z"),
        "2024-03-10T07:00:00Z"
    );
}

#[test]
fn dst_fall_back_runs_twice() {
    // 2024-11-03: New York goes from 02:00 EDT back to 01:00 EST; 01:30 happens
    // at 05:30Z and again at 06:30Z.
    let ny = "America/New_York";
    assert_eq!(
        next_in("30 1 * * *", ny, "2024-11-03T04:00:00Z"),
        "2024-11-03T05:30:00Z"
    );
    assert_eq!(
        next_in("30 1 * * *", ny, "2024-11-03T05:30:00Z"),
        "2024-11-03T06:30:00Z"
    );
    assert_eq!(
        next_in("30 1 * * *", ny, "2024-11-03T06:30:00Z"),
        "2024-11-04T06:30:00Z"
    );
    // Midnight the next day is 05:00Z in EST.
    assert_eq!(
        next_in("0 0 * * *", ny, "2024-11-03T05:00:00Z"),
        "2024-11-04T05:00:00Z"
    );
}

#[test]
fn zones_load_like_go() {
    assert!(load_location("America/New_York").is_ok());
    assert!(load_location("").is_ok());
    assert!(load_location("UTC").is_ok());
    assert_eq!(
        load_location("Nowhere/City").unwrap_err().to_string(),
        "unknown time zone Nowhere/City"
    );
    assert_eq!(
        load_location("../etc/passwd").unwrap_err().to_string(),
        "unknown time zone ../etc/passwd"
    );
}

#[test]
fn accepts_valid_schedules() {
    for spec in [
        "*/5 * * * *",
        "0 0 1 jan-dec mon-fri",
        "@hourly",
        "@every 1h30m",
        "CRON_TZ=UTC 0 * * * *",
        "1,,2 * * * ?",
    ] {
        assert!(Schedule::parse(spec).is_ok(), "{spec}");
    }
}
