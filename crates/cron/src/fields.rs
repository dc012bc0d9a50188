//! The five schedule fields (minute, hour, day of month, month, day of week) and
//! their syntax: comma lists of `*`/`?`, values, `a-b` ranges and `/step`s, with
//! month and weekday names. Each field becomes a bit set of matching values.

use crate::error::{AtoiError, ParseError};

/// Set on a field written `*` or `?` (or with a step of one): decides how day of
/// month and day of week combine.
pub(crate) const STAR_BIT: u64 = 1 << 63;

/// Value range and names of one field.
pub(crate) struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

pub(crate) const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
pub(crate) const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
pub(crate) const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
pub(crate) const MONTHS: Bounds = Bounds {
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
pub(crate) const DOW: Bounds = Bounds {
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

/// Go's `strconv.Atoi` on a 64-bit platform.
fn atoi(s: &str) -> Result<i64, AtoiError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(AtoiError::Syntax(s.to_string()));
    }
    s.parse::<i64>()
        .map_err(|_| AtoiError::Range(s.to_string()))
}

fn non_negative_int(expr: &str) -> Result<u64, ParseError> {
    let n = atoi(expr).map_err(|source| ParseError::Int {
        expr: expr.to_string(),
        source,
    })?;
    u64::try_from(n).map_err(|_| ParseError::Negative {
        value: n,
        expr: expr.to_string(),
    })
}

fn int_or_name(expr: &str, b: &Bounds) -> Result<u64, ParseError> {
    let lower = expr.to_lowercase();
    match b.names.iter().find(|(n, _)| *n == lower) {
        Some((_, v)) => Ok(*v),
        None => non_negative_int(expr),
    }
}

/// The bits of one list element: `*`, `?`, `n`, `a-b`, each with an optional
/// `/step` (`n/step` meaning `n-max/step`).
fn range_bits(expr: &str, b: &Bounds) -> Result<u64, ParseError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let mut star = 0;
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        star = STAR_BIT;
        (b.min, b.max)
    } else {
        let start = int_or_name(low_high[0], b)?;
        let end = match low_high.len() {
            1 => start,
            2 => int_or_name(low_high[1], b)?,
            _ => return Err(ParseError::TooManyHyphens(expr.to_string())),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = non_negative_int(range_and_step[1])?;
            if low_high.len() == 1 {
                end = b.max;
            }
            if step > 1 {
                star = 0;
            }
            step
        }
        _ => return Err(ParseError::TooManySlashes(expr.to_string())),
    };
    let expr = expr.to_string();
    if start < b.min {
        return Err(ParseError::BelowMinimum {
            start,
            min: b.min,
            expr,
        });
    }
    if end > b.max {
        return Err(ParseError::AboveMaximum {
            end,
            max: b.max,
            expr,
        });
    }
    if start > end {
        return Err(ParseError::Reversed { start, end, expr });
    }
    if step == 0 {
        return Err(ParseError::ZeroStep(expr));
    }
    // end <= 59 and step >= 1 here, so neither the shifts nor the sum overflow.
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v = v.saturating_add(step);
    }
    Ok(bits | star)
}

/// The bits of a whole field: a comma list whose empty elements are skipped (as
/// robfig's `strings.FieldsFunc` split does).
pub(crate) fn field_bits(field: &str, b: &Bounds) -> Result<u64, ParseError> {
    field
        .split(',')
        .filter(|e| !e.is_empty())
        .try_fold(0u64, |acc, expr| Ok(acc | range_bits(expr, b)?))
}

/// Every value of the field, plus the star bit.
pub(crate) fn all(b: &Bounds) -> u64 {
    (b.min..=b.max).fold(STAR_BIT, |acc, v| acc | (1 << v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits() {
        assert_eq!(field_bits("*/20", &MINUTES).unwrap(), 1 | 1 << 20 | 1 << 40);
        assert_eq!(field_bits("*", &DOW).unwrap(), 0x7f | STAR_BIT);
        assert_eq!(field_bits("*/1", &DOW).unwrap(), 0x7f | STAR_BIT);
        assert_eq!(field_bits("mon-wed,SAT", &DOW).unwrap(), 0b100_1110);
        assert_eq!(field_bits("50/5", &MINUTES).unwrap(), 1 << 50 | 1 << 55);
        assert_eq!(field_bits("1,,3", &HOURS).unwrap(), 0b1010);
        assert_eq!(field_bits(",", &HOURS).unwrap(), 0);
        assert_eq!(field_bits("0-59/99999999999", &MINUTES).unwrap(), 1);
        assert_eq!(all(&MONTHS), 0x1ffe | STAR_BIT);
    }

    #[test]
    fn errors() {
        let err = |f: &str, b: &Bounds| field_bits(f, b).unwrap_err().to_string();
        assert_eq!(
            err("-1", &MINUTES),
            "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax"
        );
        assert_eq!(
            err("1/-2", &MINUTES),
            "negative number (-2) not allowed: -2"
        );
        assert_eq!(
            err("99999999999999999999", &MINUTES),
            "failed to parse int from 99999999999999999999: strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(
            err("5000000000", &MINUTES),
            "end of range (5000000000) above maximum (59): 5000000000"
        );
        assert_eq!(
            err("13", &MONTHS),
            "end of range (13) above maximum (12): 13"
        );
        assert_eq!(
            err("jan-foo", &MONTHS),
            "failed to parse int from foo: strconv.Atoi: parsing \"foo\": invalid syntax"
        );
    }
}
