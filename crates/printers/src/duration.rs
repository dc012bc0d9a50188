//! Human-readable durations as upstream prints them in AGE-like cells.
//!
//! The rules mirror apimachinery's `duration.HumanDuration`: about two to three
//! significant figures, seconds below two minutes, tolerance of one second of
//! clock skew ("0s"), and `<invalid>` for timestamps further in the future.

use jiff::{SignedDuration, Timestamp};

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const NANOS_PER_MINUTE: i128 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i128 = 60 * NANOS_PER_MINUTE;

/// Formats a duration the way upstream's `HumanDuration` does
/// (`"45s"`, `"3m20s"`, `"95m"`, `"5h2m"`, `"3d4h"`, `"400d"`, `"2y10d"`, ...).
pub fn human_duration(d: SignedDuration) -> String {
    human_duration_nanos(d.as_nanos())
}

/// [`human_duration`] over a plain count of nanoseconds.
pub(crate) fn human_duration_nanos(d: i128) -> String {
    // Whole seconds, truncated toward zero.
    let seconds = d / NANOS_PER_SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / NANOS_PER_MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / NANOS_PER_HOUR;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{}h", hours / 24, h)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{}d", hours / 24 / 365, dy)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// Elapsed time from `t` to `now`, or `<unknown>` for an unset timestamp
/// (upstream's `translateTimestampSince`).
pub fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> String {
        human_duration(SignedDuration::from_secs(s))
    }

    #[test]
    fn seconds_range() {
        assert_eq!(secs(0), "0s");
        assert_eq!(secs(1), "1s");
        assert_eq!(secs(59), "59s");
        assert_eq!(secs(60), "60s");
        assert_eq!(secs(119), "119s");
    }

    #[test]
    fn skew_tolerance() {
        assert_eq!(secs(-1), "0s");
        assert_eq!(human_duration(SignedDuration::from_millis(-1999)), "0s");
        assert_eq!(secs(-2), "<invalid>");
        assert_eq!(secs(-3600), "<invalid>");
    }

    #[test]
    fn minutes_range() {
        assert_eq!(secs(120), "2m");
        assert_eq!(secs(121), "2m1s");
        assert_eq!(secs(9 * 60 + 59), "9m59s");
        assert_eq!(secs(10 * 60), "10m");
        assert_eq!(secs(10 * 60 + 59), "10m");
        assert_eq!(secs(2 * 3600 + 3 * 60), "123m");
        assert_eq!(secs(3 * 3600 - 1), "179m");
    }

    #[test]
    fn hours_range() {
        assert_eq!(secs(3 * 3600), "3h");
        assert_eq!(secs(3 * 3600 + 5 * 60), "3h5m");
        assert_eq!(secs(7 * 3600 + 59 * 60 + 59), "7h59m");
        assert_eq!(secs(8 * 3600), "8h");
        assert_eq!(secs(8 * 3600 + 30 * 60), "8h");
        assert_eq!(secs(47 * 3600 + 59 * 60), "47h");
    }

    #[test]
    fn days_range() {
        assert_eq!(secs(48 * 3600), "2d");
        assert_eq!(secs(3 * 86400 + 4 * 3600), "3d4h");
        assert_eq!(secs(7 * 86400 + 23 * 3600), "7d23h");
        assert_eq!(secs(8 * 86400), "8d");
        assert_eq!(secs(8 * 86400 + 5 * 3600), "8d");
        assert_eq!(secs(729 * 86400), "729d");
    }

    #[test]
    fn years_range() {
        assert_eq!(secs(730 * 86400), "2y");
        assert_eq!(secs(733 * 86400), "2y3d");
        assert_eq!(secs(365 * 7 * 86400 + 364 * 86400), "7y364d");
        assert_eq!(secs(365 * 8 * 86400), "8y");
        assert_eq!(secs(365 * 20 * 86400 + 100 * 86400), "20y");
    }

    #[test]
    fn since_handles_unset() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        let t: Timestamp = "2024-05-01T11:55:00Z".parse().unwrap();
        assert_eq!(since(Some(t), now), "5m");
        assert_eq!(since(None, now), "<unknown>");
    }
}
