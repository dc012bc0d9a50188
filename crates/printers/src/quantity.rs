//! Canonical rendering of resource quantities (`"1536Mi"`, `"500m"`, `"1k"`).
//!
//! Upstream prints quantities through `Quantity.String()`, which yields the
//! canonical form: decimal values with the smallest SI suffix whose exponent
//! is a multiple of three, binary values with the largest exact power-of-1024
//! suffix, precision capped at nano (rounded away from zero). A string that
//! upstream's parser already considers canonical is echoed back unchanged.
//! Strings that do not parse, or that overflow the 128-bit arithmetic used
//! here, are returned as given.

/// The notation family a quantity was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Plain numbers and `n u m k M G T P E` suffixes.
    DecimalSi,
    /// `Ki Mi Gi Ti Pi Ei` suffixes.
    BinarySi,
    /// `e<N>` / `E<N>` exponents.
    DecimalExponent,
}

/// Parsed pieces of a quantity string.
struct Parts<'a> {
    negative: bool,
    /// Integer digits, leading zeros stripped ("0" when none remain).
    num: &'a str,
    /// Fraction digits.
    denom: &'a str,
    base: u32,
    exponent: i32,
    format: Format,
}

fn split(input: &str) -> Option<Parts<'_>> {
    let b = input.as_bytes();
    let end = b.len();
    if end == 0 {
        return None;
    }
    let mut pos = 0;
    let mut negative = false;
    match b[0] {
        b'-' => {
            negative = true;
            pos = 1;
        }
        b'+' => pos = 1,
        _ => {}
    }
    // Leading zeros.
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Some(Parts {
            negative,
            num: "0",
            denom: "",
            base: 10,
            exponent: 0,
            format: Format::DecimalSi,
        });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let mut num = &input[num_start..pos];
    if num.is_empty() {
        num = "0";
    }
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let d_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &input[d_start..pos];
    }
    let suffix = &input[pos..];
    let (base, exponent, format) = interpret_suffix(suffix)?;
    Some(Parts {
        negative,
        num,
        denom,
        base,
        exponent,
        format,
    })
}

fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSi));
    let bin = |e| Some((2, e, Format::BinarySi));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let digits = rest
                .strip_prefix('+')
                .or_else(|| rest.strip_prefix('-'))
                .unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let e: i32 = rest.parse().ok()?;
            Some((10, e, Format::DecimalExponent))
        }
    }
}

fn pow10(e: u32) -> Option<i128> {
    10i128.checked_pow(e)
}

/// Upstream's parser keeps the original text when it is already canonical;
/// this reproduces that decision for the fast (int64) parse path.
fn kept_verbatim(p: &Parts<'_>) -> bool {
    let digits = p.num.len() + p.denom.len();
    let (precision, mut scale, mantissa): (i64, i64, i64) = match p.format {
        Format::DecimalSi | Format::DecimalExponent => {
            (18 - digits as i64, i64::from(p.exponent), 1)
        }
        Format::BinarySi => {
            if p.exponent >= 0 && p.denom.is_empty() {
                let prec = 15 - p.num.len() as i64 - ((p.exponent as f32) * 3.0 / 10.0) as i64 - 1;
                let m = match 1i64.checked_shl(p.exponent as u32) {
                    Some(m) if p.exponent < 63 => m,
                    _ => return false,
                };
                (prec, 0, m)
            } else {
                (-1, 0, 1)
            }
        }
    };
    if precision < 0 {
        return false;
    }
    scale -= p.denom.len() as i64;
    if scale < -9 {
        return false;
    }
    let shifted = format!("{}{}", p.num, p.denom);
    let Ok(value) = shifted.parse::<i64>() else {
        return false;
    };
    if value.checked_mul(mantissa).is_none() {
        return false;
    }
    match p.format {
        Format::BinarySi => p.exponent % 10 == 0 && (value & 0x07) != 0,
        _ => scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0'),
    }
}

/// Returns the canonical string upstream would print for quantity `input`.
pub fn canonical(input: &str) -> String {
    let trimmed = input.trim();
    match canonical_opt(trimmed) {
        Some(s) => s,
        None => input.to_string(),
    }
}

fn canonical_opt(input: &str) -> Option<String> {
    let p = split(input)?;
    if kept_verbatim(&p) {
        return Some(input.to_string());
    }
    // Exact value = mantissa * 10^scale.
    let digits: i128 = format!("{}{}", p.num, p.denom).parse().ok()?;
    let mut scale: i32 = -(p.denom.len() as i32);
    let mut mantissa = digits;
    if p.base == 10 {
        scale = scale.checked_add(p.exponent)?;
    } else {
        let factor = 1i128.checked_shl(p.exponent as u32)?;
        if p.exponent >= 126 {
            return None;
        }
        mantissa = mantissa.checked_mul(factor)?;
    }
    // Round the magnitude up to nano precision.
    if scale < -9 {
        let div = pow10((-9 - scale) as u32)?;
        let q = mantissa / div;
        mantissa = if mantissa % div != 0 { q + 1 } else { q };
        scale = -9;
    }
    let mut format = p.format;
    if format == Format::BinarySi && magnitude_below(mantissa, scale, 1)? {
        format = Format::DecimalSi;
    }
    if mantissa == 0 {
        return Some("0".to_string());
    }
    let signed = if p.negative { -mantissa } else { mantissa };

    if format == Format::BinarySi {
        if magnitude_below(mantissa, scale, 1024)? {
            format = Format::DecimalSi;
        } else if let Some(int) = as_integer(signed, scale) {
            let (amount, times) = remove_factors(int, 1024);
            let suffix = match times {
                0 => "",
                1 => "Ki",
                2 => "Mi",
                3 => "Gi",
                4 => "Ti",
                5 => "Pi",
                6 => "Ei",
                _ => return None,
            };
            return Some(format!("{amount}{suffix}"));
        } else {
            format = Format::DecimalSi;
        }
    }

    let (mut amount, times) = remove_factors(signed, 10);
    let mut exponent = scale + times as i32;
    match exponent.rem_euclid(3) {
        1 => {
            amount = amount.checked_mul(10)?;
            exponent -= 1;
        }
        2 => {
            amount = amount.checked_mul(100)?;
            exponent -= 2;
        }
        _ => {}
    }
    let suffix = match format {
        Format::DecimalExponent => {
            if exponent == 0 {
                String::new()
            } else {
                format!("e{exponent}")
            }
        }
        _ => match exponent {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => "",
        }
        .to_string(),
    };
    Some(format!("{amount}{suffix}"))
}

/// Whether |mantissa * 10^scale| < limit.
fn magnitude_below(mantissa: i128, scale: i32, limit: i128) -> Option<bool> {
    if scale >= 0 {
        match pow10(scale as u32).and_then(|f| mantissa.checked_mul(f)) {
            Some(v) => Some(v < limit),
            None => Some(false),
        }
    } else {
        let f = pow10((-scale) as u32)?;
        Some(mantissa < limit.checked_mul(f)?)
    }
}

/// The value as an integer, if it has no fractional part.
fn as_integer(signed: i128, scale: i32) -> Option<i128> {
    if scale >= 0 {
        signed.checked_mul(pow10(scale as u32)?)
    } else {
        let f = pow10((-scale) as u32)?;
        if signed % f == 0 {
            Some(signed / f)
        } else {
            None
        }
    }
}

/// Divides out `base` while it divides evenly; returns the rest and the count.
fn remove_factors(value: i128, base: i128) -> (i128, u32) {
    let negative = value < 0;
    let mut v = value.abs();
    let mut times = 0;
    while v >= base && v % base == 0 {
        v /= base;
        times += 1;
    }
    (if negative { -v } else { v }, times)
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_forms() {
        let cases = [
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("2048Ki", "2Mi"),
            ("1025Ki", "1025Ki"),
            ("10", "10"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("0", "0"),
            ("0Gi", "0"),
            ("500Mi", "500Mi"),
            ("1e3", "1e3"),
            ("1E3", "1E3"),
            ("1.5e3", "1500"),
            ("12e6", "12e6"),
            ("5G", "5G"),
            ("5000M", "5G"),
            ("0.1m", "100u"),
            ("0.0000000001", "1n"),
            ("1.5Ki", "1536"),
            ("0.5Ki", "512"),
            ("512", "512"),
            ("-1", "-1"),
            ("-1000", "-1k"),
            ("250m", "250m"),
            ("2", "2"),
            ("4", "4"),
            ("8Gi", "8Gi"),
            ("16Gi", "16Gi"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(input), want, "input {input}");
        }
    }

    #[test]
    fn garbage_is_echoed() {
        assert_eq!(canonical("lots"), "lots");
        assert_eq!(canonical("1Qi"), "1Qi");
    }
}
