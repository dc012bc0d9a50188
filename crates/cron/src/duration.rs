//! Go duration strings (`time.ParseDuration`): a sign, then one or more
//! `<number><unit>` terms such as `1h30m` or `1.5s`, as `@every` takes them.

use crate::error::DurationError;
use jiff::SignedDuration;

/// 2^63: the magnitude limit Go checks while summing terms.
const LIMIT: u64 = 1 << 63;

/// Nanoseconds per unit, as Go's unit table.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Splits off the leading decimal digits of `s` as an integer; `None` on overflow
/// past 2^63.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut x: u64 = 0;
    for d in s[..n].bytes() {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(d - b'0');
        if x > LIMIT {
            return None;
        }
    }
    Some((x, &s[n..]))
}

/// Splits off the leading digits of a fraction as `(digits, 10^kept)`, dropping
/// digits that would overflow.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for d in s[..n].bytes() {
        if overflow || x > (LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(d - b'0');
        if y > LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[n..])
}

/// Parses a Go duration string, with Go's error messages.
pub fn parse_go_duration(input: &str) -> Result<SignedDuration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let (neg, mut s) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if s == "0" {
        return Ok(SignedDuration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let before = s.len();
        let (mut v, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let pre = s.len() != before;
        let (mut frac, mut scale, mut post) = (0, 1.0, false);
        if let Some(rest) = s.strip_prefix('.') {
            let (f, sc, rest2) = leading_fraction(rest);
            post = rest2.len() != rest.len();
            (frac, scale, s) = (f, sc, rest2);
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_len = s
            .bytes()
            .take_while(|c| *c != b'.' && !c.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let Some(per) = unit_nanos(unit) else {
            return Err(DurationError::UnknownUnit {
                unit: unit.to_string(),
                input: input.to_string(),
            });
        };
        if v > LIMIT / per {
            return Err(invalid());
        }
        v *= per;
        if frac > 0 {
            // At most 3.6e12 (one hour in nanoseconds), so the cast is exact enough.
            v += (frac as f64 * (per as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(invalid)?;
    }
    let nanos = if neg {
        -i128::from(total)
    } else if total > LIMIT - 1 {
        return Err(invalid());
    } else {
        i128::from(total)
    };
    i64::try_from(nanos)
        .map(SignedDuration::from_nanos)
        .map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse_go_duration(s).unwrap_err().to_string()
    }

    #[test]
    fn parses_like_go() {
        let secs = |s: &str| parse_go_duration(s).unwrap().as_secs_f64();
        assert_eq!(secs("1h30m"), 5400.0);
        assert_eq!(secs("90s"), 90.0);
        assert_eq!(secs("1.5m"), 90.0);
        assert_eq!(secs(".5s"), 0.5);
        assert_eq!(secs("-2s"), -2.0);
        assert_eq!(secs("0"), 0.0);
        assert_eq!(secs("100ms"), 0.1);
        assert_eq!(secs("3\u{b5}s"), 0.000003);
        assert_eq!(
            parse_go_duration("2562047h47m16.854775807s").unwrap(),
            SignedDuration::from_nanos(i64::MAX)
        );
        assert_eq!(
            parse_go_duration("-2562047h47m16.854775808s").unwrap(),
            SignedDuration::from_nanos(i64::MIN)
        );
    }

    #[test]
    fn errors_like_go() {
        assert_eq!(err(""), "time: invalid duration \"\"");
        assert_eq!(err("-"), "time: invalid duration \"-\"");
        assert_eq!(err("5"), "time: missing unit in duration \"5\"");
        assert_eq!(err("1.5.5h"), "time: missing unit in duration \"1.5.5h\"");
        assert_eq!(err(".s"), "time: invalid duration \".s\"");
        assert_eq!(err("h"), "time: invalid duration \"h\"");
        assert_eq!(err("5x"), "time: unknown unit \"x\" in duration \"5x\"");
        assert_eq!(err("3000000h"), "time: invalid duration \"3000000h\"");
        assert_eq!(
            err("2562047h47m16.854775808s"),
            "time: invalid duration \"2562047h47m16.854775808s\""
        );
    }
}
