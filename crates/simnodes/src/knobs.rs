//! The annotations through which tests steer simulated pods and nodes, and the
//! parsing of their values (Go-style durations such as `2s`, `500ms`, `1m30s`).

use std::collections::BTreeMap;
use std::time::Duration;

/// Pod annotation: containers exit this long after each start.
pub const EXIT_AFTER: &str = "sim.ferrokube.io/exit-after";
/// Pod annotation: the exit code used with [`EXIT_AFTER`] (default 0).
pub const EXIT_CODE: &str = "sim.ferrokube.io/exit-code";
/// Pod annotation: the running containers exit at once with this code.
pub const FAIL: &str = "sim.ferrokube.io/fail";
/// Pod annotation: `"true"` keeps the containers running but not ready.
pub const NOT_READY: &str = "sim.ferrokube.io/not-ready";
/// Node annotation: `"stopped"` makes the node behave as if its kubelet died.
pub const HEARTBEAT: &str = "sim.ferrokube.io/heartbeat";

/// The pod knobs in effect, read from the pod's annotations. Values that do not
/// parse are reported in `errors` and otherwise ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PodKnobs {
    pub exit_after: Option<Duration>,
    pub exit_code: i32,
    /// The raw `fail` value (so that a changed value fails the pod again) and its code.
    pub fail: Option<(String, i32)>,
    pub not_ready: bool,
    pub errors: Vec<String>,
}

impl PodKnobs {
    /// Reads the knobs from a pod's annotations.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> PodKnobs {
        let mut k = PodKnobs::default();
        let Some(a) = annotations else {
            return k;
        };
        if let Some(v) = a.get(EXIT_AFTER) {
            match parse_duration(v) {
                Some(d) => k.exit_after = Some(d),
                None => k
                    .errors
                    .push(format!("{EXIT_AFTER}: invalid duration {v:?}")),
            }
        }
        if let Some(v) = a.get(EXIT_CODE) {
            match v.trim().parse::<i32>() {
                Ok(c) => k.exit_code = c,
                Err(_) => k
                    .errors
                    .push(format!("{EXIT_CODE}: invalid exit code {v:?}")),
            }
        }
        if let Some(v) = a.get(FAIL) {
            match v.trim().parse::<i32>() {
                Ok(c) => k.fail = Some((v.clone(), c)),
                Err(_) => k.errors.push(format!("{FAIL}: invalid exit code {v:?}")),
            }
        }
        k.not_ready = a.get(NOT_READY).is_some_and(|v| v == "true");
        k
    }
}

/// Whether a node's annotations say its heartbeat is stopped.
pub(crate) fn heartbeat_stopped(annotations: Option<&BTreeMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(HEARTBEAT))
        .is_some_and(|v| v == "stopped")
}

/// Parses a non-negative Go duration: a sequence of decimal numbers, each with
/// an optional fraction and a unit among `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`
/// (`"0"` alone needs no unit).
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        if frac_part.contains('.') {
            return None;
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        total_nanos = total_nanos.checked_add(int.checked_mul(unit_nanos)?)?;
        // The fraction, digit by digit, truncated below a nanosecond.
        let mut scale = unit_nanos;
        for d in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            total_nanos = total_nanos.checked_add(u128::from(d - b'0') * scale)?;
        }
        rest = next;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).ok()?;
    Some(Duration::new(secs, (total_nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("2s"), Some(ms(2000)));
        assert_eq!(parse_duration("500ms"), Some(ms(500)));
        assert_eq!(parse_duration("1.5s"), Some(ms(1500)));
        assert_eq!(parse_duration("1m30s"), Some(ms(90_000)));
        assert_eq!(parse_duration("1h"), Some(ms(3_600_000)));
        assert_eq!(parse_duration(".5s"), Some(ms(500)));
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "2", "s", "2x", "-1s", "1..2s", "."] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn knobs_from_annotations() {
        let mut a = BTreeMap::new();
        a.insert(EXIT_AFTER.to_string(), "2s".to_string());
        a.insert(EXIT_CODE.to_string(), "3".to_string());
        a.insert(FAIL.to_string(), "7".to_string());
        a.insert(NOT_READY.to_string(), "true".to_string());
        let k = PodKnobs::from_annotations(Some(&a));
        assert_eq!(k.exit_after, Some(Duration::from_secs(2)));
        assert_eq!(k.exit_code, 3);
        assert_eq!(k.fail, Some(("7".to_string(), 7)));
        assert!(k.not_ready);
        assert!(k.errors.is_empty());

        a.insert(EXIT_AFTER.to_string(), "soon".to_string());
        a.insert(NOT_READY.to_string(), "yes".to_string());
        let k = PodKnobs::from_annotations(Some(&a));
        assert_eq!(k.exit_after, None);
        assert!(!k.not_ready);
        assert_eq!(
            k.errors,
            vec![format!("{EXIT_AFTER}: invalid duration \"soon\"")]
        );
        assert_eq!(PodKnobs::from_annotations(None), PodKnobs::default());
    }

    #[test]
    fn heartbeat() {
        let mut a = BTreeMap::new();
        assert!(!heartbeat_stopped(Some(&a)));
        a.insert(HEARTBEAT.to_string(), "stopped".to_string());
        assert!(heartbeat_stopped(Some(&a)));
        assert!(!heartbeat_stopped(None));
    }
}
