//! Cron schedules as Kubernetes CronJobs read them, shared by API validation and
//! the CronJob controller.
//!
//! [`Schedule::parse`] accepts what robfig/cron v3's `ParseStandard` (used by
//! upstream) accepts, and fails with its messages ([`ParseError`]): five fields
//! (minute, hour, day of month, month, day of week, each a comma list of `*`, `?`,
//! values, ranges and steps, months and weekdays also by name), the descriptors
//! `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`
//! and `@every <Go duration>`, and an optional `TZ=<zone>` / `CRON_TZ=<zone>`
//! prefix. [`load_location`] resolves zone names as Go's `time.LoadLocation`.
//!
//! [`Schedule::next`] gives the first activation strictly after a time: the first
//! whole minute whose wall-clock reading in the schedule's zone matches every field.
//! Across DST changes a time skipped by a spring-forward gap does not run that day
//! and a time repeated by a fall-back fold runs twice, as upstream. Schedules
//! without a zone are read in UTC.

mod duration;
mod error;
mod fields;
mod zone;

pub use duration::parse_go_duration;
pub use error::{AtoiError, DurationError, ParseError, UnknownTimeZone};
pub use zone::load_location;

use fields::{all, field_bits, DOM, DOW, HOURS, MINUTES, MONTHS, STAR_BIT};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// A parsed schedule and the zone its fields are read in.
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

fn parse_descriptor(d: &str) -> Result<Kind, ParseError> {
    let (minute, hour, dom, month, dow) = match d {
        "@yearly" | "@annually" => (1, 1, 1 << 1, 1 << 1, all(&DOW)),
        "@monthly" => (1, 1, 1 << 1, all(&MONTHS), all(&DOW)),
        "@weekly" => (1, 1, all(&DOM), all(&MONTHS), 1),
        "@daily" | "@midnight" => (1, 1, all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => (1, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => {
            let Some(text) = d.strip_prefix("@every ") else {
                return Err(ParseError::UnknownDescriptor(d.to_string()));
            };
            let dur = parse_go_duration(text).map_err(|source| ParseError::Every {
                descriptor: d.to_string(),
                source,
            })?;
            // Under a second (negative included) becomes one second; otherwise the
            // delay is truncated to whole seconds.
            let secs = if dur < SignedDuration::from_secs(1) {
                1
            } else {
                dur.as_secs()
            };
            return Ok(Kind::Every(secs));
        }
    };
    Ok(Kind::Fields {
        minute,
        hour,
        dom,
        month,
        dow,
    })
}

impl Schedule {
    /// Parses a schedule as robfig/cron's `ParseStandard`, with its error messages.
    /// A `TZ=`/`CRON_TZ=` prefix sets the zone; otherwise it is UTC.
    pub fn parse(spec: &str) -> Result<Schedule, ParseError> {
        if spec.is_empty() {
            return Err(ParseError::Empty);
        }
        let mut tz = TimeZone::UTC;
        let mut spec = spec;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let eq = spec.find('=').map_or(0, |i| i + 1);
            // robfig slices up to the first space; without one it panics, which
            // is reported here as the zone being unknown.
            let Some(sp) = spec.find(' ') else {
                let location = spec[eq..].to_string();
                return Err(ParseError::BadLocation {
                    source: UnknownTimeZone(location.clone()),
                    location,
                });
            };
            let location = &spec[eq..sp];
            tz = load_location(location).map_err(|source| ParseError::BadLocation {
                location: location.to_string(),
                source,
            })?;
            spec = spec[sp..].trim();
        }
        if spec.starts_with('@') {
            return Ok(Schedule {
                kind: parse_descriptor(spec)?,
                tz,
            });
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(ParseError::FieldCount(
                fields.iter().map(|f| f.to_string()).collect(),
            ));
        };
        let kind = Kind::Fields {
            minute: field_bits(minute, &MINUTES)?,
            hour: field_bits(hour, &HOURS)?,
            dom: field_bits(dom, &DOM)?,
            month: field_bits(month, &MONTHS)?,
            dow: field_bits(dow, &DOW)?,
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
            } => self.next_matching(after, [minute, hour, dom, month, dow]),
        }
    }

    /// The first whole minute after `after` matching the field bit sets
    /// `[minute, hour, dom, month, dow]`.
    fn next_matching(&self, after: Timestamp, sets: [u64; 5]) -> Option<Timestamp> {
        let [minute, hour, dom, month, dow] = sets;
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
mod tests;
