//! Cron schedules as CronJobs interpret them: the standard five fields
//! (minute, hour, day of month, month, day of week, with `*`, `?`, lists, ranges,
//! steps and month/weekday names), the descriptors `@yearly`/`@annually`,
//! `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly` and `@every <duration>`,
//! and an optional `TZ=<zone>` / `CRON_TZ=<zone>` prefix. Parsing follows the rules
//! and error messages of robfig/cron v3's `ParseStandard`, which upstream uses.
//!
//! [`Schedule::next`] gives the first activation strictly after a time: the first
//! whole minute whose wall-clock reading in the schedule's zone matches every field.
//! Across DST changes this means a time skipped by a spring-forward gap does not run
//! that day, and a time repeated by a fall-back fold runs twice, as upstream.
//! Schedules without a zone are read in UTC.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Set on a field written `*` or `?` (or `*/1`): decides how day-of-month and
/// day-of-week combine.
const STAR_BIT: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    kind: Kind,
    tz: TimeZone,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// Bit sets of the matching values of each field.
    Fields {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
    },
    /// `@every`: a fixed delay in whole seconds (at least one).
    Every(i64),
}

/// Looks up an IANA zone as Go's `time.LoadLocation` does ("" and `UTC` are UTC).
/// `Local` is read as UTC, the zone controller managers usually run in.
pub fn load_location(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() || name == "UTC" || name == "Local" {
        return Ok(TimeZone::UTC);
    }
    let valid = name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"/_-+.".contains(&c))
        && !name.contains("..")
        && !name.starts_with('/');
    if valid {
        if let Ok(tz) = jiff::tz::db().get(name) {
            return Ok(tz);
        }
    }
    Err(format!("unknown time zone {name}"))
}

fn go_atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {s:?}: invalid syntax"));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: value out of range"))
}

fn must_parse_int(expr: &str) -> Result<u32, String> {
    let n = go_atoi(expr).map_err(|e| format!("failed to parse int from {expr}: {e}"))?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn parse_int_or_name(expr: &str, b: &Bounds) -> Result<u32, String> {
    let lower = expr.to_lowercase();
    match b.names.iter().find(|(n, _)| *n == lower) {
        Some((_, v)) => Ok(*v),
        None => must_parse_int(expr),
    }
}

fn get_range(expr: &str, b: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let mut extra = 0;
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        extra = STAR_BIT;
        (b.min, b.max)
    } else {
        let start = parse_int_or_name(low_high[0], b)?;
        let end = match low_high.len() {
            1 => start,
            2 => parse_int_or_name(low_high[1], b)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v += step;
    }
    Ok(bits | extra)
}

fn get_field(field: &str, b: &Bounds) -> Result<u64, String> {
    field
        .split(',')
        .try_fold(0u64, |acc, expr| Ok(acc | get_range(expr, b)?))
}

fn all(b: &Bounds) -> u64 {
    (b.min..=b.max).fold(0u64, |acc, v| acc | (1 << v)) | STAR_BIT
}

/// Parses a Go duration into whole nanoseconds (`time.ParseDuration`).
fn parse_go_duration(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        let num = &rest[..n];
        if num.is_empty() || num == "." {
            return Err(invalid());
        }
        rest = &rest[n..];
        let u = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..u];
        let scale: f64 = match unit {
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        rest = &rest[u..];
        total += num.parse::<f64>().map_err(|_| invalid())? * scale;
    }
    let nanos = total as i128;
    Ok(if neg { -nanos } else { nanos })
}

fn field_kind(minute: &str, hour: &str, dom: &str, month: &str, dow: &str) -> Kind {
    let parse = |f: &str, b: &Bounds| get_field(f, b).unwrap_or(0);
    Kind::Fields {
        minute: parse(minute, &MINUTES),
        hour: parse(hour, &HOURS),
        dom: parse(dom, &DOM),
        month: parse(month, &MONTHS),
        dow: parse(dow, &DOW),
    }
}

fn parse_descriptor(d: &str) -> Result<Kind, String> {
    let kind = match d {
        "@yearly" | "@annually" => Kind::Fields {
            minute: 1,
            hour: 1,
            dom: 1 << 1,
            month: 1 << 1,
            dow: all(&DOW),
        },
        "@monthly" => field_kind("0", "0", "1", "*", "*"),
        "@weekly" => field_kind("0", "0", "*", "*", "0"),
        "@daily" | "@midnight" => field_kind("0", "0", "*", "*", "*"),
        "@hourly" => field_kind("0", "*", "*", "*", "*"),
        _ => {
            let Some(dur) = d.strip_prefix("@every ") else {
                return Err(format!("unrecognized descriptor: {d}"));
            };
            let nanos =
                parse_go_duration(dur).map_err(|e| format!("failed to parse duration {d}: {e}"))?;
            // Under a second rounds up to one; otherwise whole seconds.
            let secs = if nanos < 1_000_000_000 {
                1
            } else {
                i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX)
            };
            Kind::Every(secs)
        }
    };
    Ok(kind)
}

impl Schedule {
    /// Parses a schedule as robfig/cron's `ParseStandard`, with its error messages.
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        if spec.is_empty() {
            return Err("empty spec string".into());
        }
        let mut tz = TimeZone::UTC;
        let mut spec = spec;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let eq = spec.find('=').unwrap_or(0);
            let Some(sp) = spec.find(' ') else {
                let loc = &spec[eq + 1..];
                return Err(format!(
                    "provided bad location {loc}: unknown time zone {loc}"
                ));
            };
            let loc = &spec[eq + 1..sp];
            tz = load_location(loc).map_err(|e| format!("provided bad location {loc}: {e}"))?;
            spec = spec[sp..].trim();
        }
        if spec.starts_with('@') {
            return Ok(Schedule {
                kind: parse_descriptor(spec)?,
                tz,
            });
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
        let kind = Kind::Fields {
            minute: get_field(fields[0], &MINUTES)?,
            hour: get_field(fields[1], &HOURS)?,
            dom: get_field(fields[2], &DOM)?,
            month: get_field(fields[3], &MONTHS)?,
            dow: get_field(fields[4], &DOW)?,
        };
        Ok(Schedule { kind, tz })
    }

    /// The zone the schedule's fields are read in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The same schedule read in `tz` (what upstream gets by prefixing the schedule
    /// with `TZ=<spec.timeZone>`).
    pub fn in_time_zone(mut self, tz: TimeZone) -> Schedule {
        self.tz = tz;
        self
    }

    /// The first activation strictly after `after`; `None` if there is none within
    /// five years (e.g. `0 0 30 2 *`), as upstream's zero time.
    pub fn next(&self, after: Timestamp) -> Option<Timestamp> {
        match self.kind {
            Kind::Every(secs) => {
                let base = Timestamp::from_second(after.as_second()).ok()?;
                base.checked_add(SignedDuration::from_secs(secs)).ok()
            }
            Kind::Fields {
                minute,
                hour,
                dom,
                month,
                dow,
            } => self.next_matching(after, minute, hour, dom, month, dow),
        }
    }

    fn next_matching(
        &self,
        after: Timestamp,
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
    ) -> Option<Timestamp> {
        let start = after.as_second().div_euclid(60) * 60 + 60;
        let mut t = Timestamp::from_second(start).ok()?;
        let year_limit = t.to_zoned(self.tz.clone()).year() + 5;
        let has = |set: u64, v: i8| v >= 0 && set & (1u64 << v) != 0;
        // Each step moves to the next month, day, hour or minute, so this is bounded;
        // the cap only guards against surprises in the zone data.
        for _ in 0..1_000_000 {
            let z = t.to_zoned(self.tz.clone());
            if z.year() > year_limit {
                return None;
            }
            if !has(month, z.month()) {
                let first = z
                    .date()
                    .first_of_month()
                    .checked_add(jiff::Span::new().months(1))
                    .ok()?;
                t = first.to_zoned(self.tz.clone()).ok()?.timestamp();
                continue;
            }
            let dom_match = has(dom, z.day());
            let dow_match = has(dow, z.weekday().to_sunday_zero_offset());
            let day_match = if dom & STAR_BIT != 0 || dow & STAR_BIT != 0 {
                dom_match && dow_match
            } else {
                dom_match || dow_match
            };
            if !day_match {
                let next_day = z.date().tomorrow().ok()?;
                t = next_day.to_zoned(self.tz.clone()).ok()?.timestamp();
                continue;
            }
            if !has(hour, z.hour()) {
                let hour_start = t
                    .checked_sub(SignedDuration::from_secs(i64::from(z.minute()) * 60))
                    .ok()?;
                let next = hour_start.checked_add(SignedDuration::from_hours(1)).ok()?;
                t = if next > t {
                    next
                } else {
                    t.checked_add(SignedDuration::from_mins(1)).ok()?
                };
                continue;
            }
            if !has(minute, z.minute()) {
                t = t.checked_add(SignedDuration::from_mins(1)).ok()?;
                continue;
            }
            return Some(t);
        }
        None
    }
}

#[cfg(test)]
mod tests {
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
        let err = |s: &str| Schedule::parse(s).unwrap_err();
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
        assert_eq!(
            load_location("Nowhere/City").unwrap_err(),
            "unknown time zone Nowhere/City"
        );
        assert_eq!(
            load_location("../etc/passwd").unwrap_err(),
            "unknown time zone ../etc/passwd"
        );
    }
}
