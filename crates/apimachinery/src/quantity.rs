//! `resource.Quantity`: fixed-point numbers with SI, binary-SI or decimal
//! exponent suffixes (`500m`, `1.5Gi`, `1e3`), parsed, compared, added and
//! serialized exactly as upstream `k8s.io/apimachinery/pkg/api/resource`.
//!
//! Values are exact decimals of arbitrary size. Parsing rounds anything finer
//! than a nano-unit up (away from zero) to `1n`, and caps binary-SI values at
//! 2^63-1, as upstream does. A parsed string already in canonical form is
//! kept and re-emitted verbatim (upstream's cached string); everything else
//! is emitted in canonical form: `0.5` → `500m`, `1000m` → `1`,
//! `1.5Gi` → `1536Mi`. The suffix family of the input is kept, so `1e3`
//! stays `1e3` while `1000` becomes `1k`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// The regular expression upstream quotes in its format error.
pub const QUANTITY_REGEX: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// A quantity parse error, with upstream's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// The string is not of the quantity form.
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    FormatWrong,
    /// The numeric part could not be parsed.
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The suffix is not a known one.
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// The suffix family a quantity is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Decimal exponent: `12e6`.
    DecimalExponent,
    /// Binary SI: `12Mi` (12 × 2^20).
    BinarySI,
    /// Decimal SI: `12M` (12 × 10^6).
    #[default]
    DecimalSI,
}

impl Format {
    /// Upstream's name: `DecimalExponent`, `BinarySI` or `DecimalSI`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::DecimalExponent => "DecimalExponent",
            Format::BinarySI => "BinarySI",
            Format::DecimalSI => "DecimalSI",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Scale of a nano-unit (10^-9), the finest precision parsing keeps.
pub const NANO: i32 = -9;
/// Scale of a micro-unit.
pub const MICRO: i32 = -6;
/// Scale of a milli-unit.
pub const MILLI: i32 = -3;

/// An exact decimal `(-1)^neg × digits × 10^exp`, normalized: `digits` are
/// the decimal digits most significant first, without leading or trailing
/// zeros; zero is the empty digit list with `neg == false` and `exp == 0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct Dec {
    neg: bool,
    digits: Vec<u8>,
    exp: i64,
}

impl Dec {
    fn from_digits(neg: bool, digits: Vec<u8>, exp: i64) -> Dec {
        let mut d = Dec { neg, digits, exp };
        d.normalize();
        d
    }

    fn from_i128(v: i128, exp: i64) -> Dec {
        let mut m = v.unsigned_abs();
        let mut digits = Vec::new();
        while m > 0 {
            digits.push((m % 10) as u8);
            m /= 10;
        }
        digits.reverse();
        Dec::from_digits(v < 0, digits, exp)
    }

    fn normalize(&mut self) {
        let lead = self.digits.iter().take_while(|&&d| d == 0).count();
        if lead > 0 {
            self.digits.drain(..lead);
        }
        while self.digits.last() == Some(&0) {
            self.digits.pop();
            self.exp += 1;
        }
        if self.digits.is_empty() {
            self.neg = false;
            self.exp = 0;
        }
    }

    fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    fn sign(&self) -> i32 {
        if self.is_zero() {
            0
        } else if self.neg {
            -1
        } else {
            1
        }
    }

    /// Compares magnitudes without materializing exponents.
    fn cmp_mag(&self, other: &Dec) -> Ordering {
        self.cmp_mag_digits(&other.digits, other.exp)
    }

    /// Compares the magnitude with `digits × 10^exp` (`digits` normalized
    /// like [`Dec::digits`]).
    fn cmp_mag_digits(&self, digits: &[u8], exp: i64) -> Ordering {
        match (self.is_zero(), digits.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let top_a = self.digits.len() as i64 + self.exp;
        let top_b = digits.len() as i64 + exp;
        if top_a != top_b {
            return top_a.cmp(&top_b);
        }
        let n = self.digits.len().max(digits.len());
        for i in 0..n {
            let a = self.digits.get(i).copied().unwrap_or(0);
            let b = digits.get(i).copied().unwrap_or(0);
            if a != b {
                return a.cmp(&b);
            }
        }
        Ordering::Equal
    }

    fn neg(&self) -> Dec {
        let mut d = self.clone();
        if !d.is_zero() {
            d.neg = !d.neg;
        }
        d
    }

    /// The number of little-endian digits of the magnitude scaled to
    /// exponent `e` (`e <= self.exp`).
    fn le_len_at(&self, e: i64) -> usize {
        (self.exp - e) as usize + self.digits.len()
    }

    /// Digit `i` (little-endian, 0 beyond the end) of the magnitude scaled
    /// to exponent `e` (`e <= self.exp`).
    fn le_digit_at(&self, e: i64, i: usize) -> u8 {
        let pad = (self.exp - e) as usize;
        if i < pad || i >= pad + self.digits.len() {
            0
        } else {
            self.digits[self.digits.len() - 1 - (i - pad)]
        }
    }

    fn add(&self, other: &Dec) -> Dec {
        if self.is_zero() {
            return other.clone();
        }
        if other.is_zero() {
            return self.clone();
        }
        let e = self.exp.min(other.exp);
        let (a_len, b_len) = (self.le_len_at(e), other.le_len_at(e));
        if self.neg == other.neg {
            let n = a_len.max(b_len);
            let mut out = Vec::with_capacity(n + 1);
            let mut carry = 0u8;
            for i in 0..n {
                let s = self.le_digit_at(e, i) + other.le_digit_at(e, i) + carry;
                out.push(s % 10);
                carry = s / 10;
            }
            if carry > 0 {
                out.push(carry);
            }
            out.reverse();
            return Dec::from_digits(self.neg, out, e);
        }
        let (big, small, neg) = match self.cmp_mag(other) {
            Ordering::Equal => return Dec::default(),
            Ordering::Greater => (self, other, self.neg),
            Ordering::Less => (other, self, other.neg),
        };
        let big_len = big.le_len_at(e);
        let mut out = Vec::with_capacity(big_len);
        let mut borrow = 0i8;
        for i in 0..big_len {
            let d = big.le_digit_at(e, i);
            let mut v = d as i8 - small.le_digit_at(e, i) as i8 - borrow;
            if v < 0 {
                v += 10;
                borrow = 1;
            } else {
                borrow = 0;
            }
            out.push(v as u8);
        }
        out.reverse();
        Dec::from_digits(neg, out, e)
    }

    /// Multiplies the magnitude by a small factor.
    fn mul_small(&self, m: u64) -> Dec {
        if self.is_zero() || m == 0 {
            return Dec::default();
        }
        let mut out = Vec::with_capacity(self.digits.len() + 20);
        if m <= u64::from(u32::MAX) {
            // The carry never exceeds `m`, so `9m + carry` fits in a u64 and
            // the costly 128-bit division is avoided.
            let mut carry: u64 = 0;
            for &d in self.digits.iter().rev() {
                let v = u64::from(d) * m + carry;
                out.push((v % 10) as u8);
                carry = v / 10;
            }
            while carry > 0 {
                out.push((carry % 10) as u8);
                carry /= 10;
            }
        } else {
            let mut carry: u128 = 0;
            for &d in self.digits.iter().rev() {
                let v = d as u128 * m as u128 + carry;
                out.push((v % 10) as u8);
                carry = v / 10;
            }
            while carry > 0 {
                out.push((carry % 10) as u8);
                carry /= 10;
            }
        }
        out.reverse();
        Dec::from_digits(self.neg, out, self.exp)
    }

    /// Whether the value is a multiple of 10^scale already.
    fn is_exact_at(&self, scale: i64) -> bool {
        self.is_zero() || self.exp >= scale
    }

    /// Rounds away from zero to a multiple of 10^scale; reports exactness.
    fn into_round_up(self, scale: i64) -> (Dec, bool) {
        if self.is_exact_at(scale) {
            return (self, true);
        }
        self.round_up_inexact(scale)
    }

    /// [`Dec::into_round_up`] of a value that is not exact at `scale`.
    fn round_up_inexact(&self, scale: i64) -> (Dec, bool) {
        let drop = scale - self.exp;
        let len = self.digits.len() as i64;
        if drop >= len {
            return (Dec::from_digits(self.neg, vec![1], scale), false);
        }
        let mut kept = self.digits[..(len - drop) as usize].to_vec();
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, 1);
                break;
            }
            i -= 1;
            if kept[i] == 9 {
                kept[i] = 0;
            } else {
                kept[i] += 1;
                break;
            }
        }
        (Dec::from_digits(self.neg, kept, scale), false)
    }

    /// The value as an integer count of 10^scale units, if it is exactly one
    /// and fits an i128.
    fn to_i128_at(&self, scale: i64) -> Option<i128> {
        if self.is_zero() {
            return Some(0);
        }
        if self.exp < scale {
            return None;
        }
        let zeros = self.exp - scale;
        if self.digits.len() as i64 + zeros > 38 {
            return None;
        }
        let mut v: i128 = 0;
        for &d in &self.digits {
            v = v * 10 + d as i128;
        }
        for _ in 0..zeros {
            v *= 10;
        }
        Some(if self.neg { -v } else { v })
    }

    /// Full big-endian digits of a non-negative integer magnitude
    /// (`exp >= 0`).
    fn integer_digits(&self) -> Vec<u8> {
        let mut out = self.digits.clone();
        out.extend(std::iter::repeat_n(0, self.exp.max(0) as usize));
        out
    }

    fn to_f64(&self) -> f64 {
        if self.is_zero() {
            return 0.0;
        }
        let s: String = self.digits.iter().map(|d| (b'0' + d) as char).collect();
        let v: f64 = format!("{s}e{}", self.exp).parse().unwrap_or(f64::INFINITY);
        if self.neg {
            -v
        } else {
            v
        }
    }
}

/// Divides big-endian digits by `d`, returning the quotient (with leading
/// zeros stripped) if the division is exact.
fn div_exact(digits: &[u8], d: u32) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(digits.len());
    let mut rem: u64 = 0;
    for &x in digits {
        let cur = rem * 10 + x as u64;
        out.push((cur / d as u64) as u8);
        rem = cur % d as u64;
    }
    if rem != 0 {
        return None;
    }
    let lead = out.iter().take_while(|&&x| x == 0).count();
    out.drain(..lead);
    Some(out)
}

/// A fixed-point quantity (upstream `resource.Quantity`).
///
/// Equality, ordering and hashing compare values only (`1k == 1000`); the
/// format and the remembered input string do not take part.
#[derive(Clone, Debug, Default)]
pub struct Quantity {
    value: Dec,
    format: Format,
    cached: Option<String>,
}

struct ParsedParts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// Upstream's `parseQuantityString` scanner.
fn parse_quantity_string(s: &str) -> Result<ParsedParts<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    if let Some(&c) = b.first() {
        if c == b'-' {
            positive = false;
            pos += 1;
        } else if c == b'+' {
            pos += 1;
        }
    }
    // Strip leading zeros; a string of only zeros is zero.
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(ParsedParts {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < end && is_digit(b[pos]) {
        pos += 1;
    }
    let mut num = &s[num_start..pos];
    if num.is_empty() {
        num = "0";
    }
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && is_digit(b[pos]) {
            pos += 1;
        }
        denom = &s[denom_start..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && is_digit(b[pos]) {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::FormatWrong);
    }
    Ok(ParsedParts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// Interprets a suffix: (base, exponent, format).
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSI));
    let bin = |e| Some((2, e, Format::BinarySI));
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
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let parsed: i64 = s[1..].parse().ok()?;
            // Upstream truncates the exponent to 32 bits.
            Some((10, parsed as i32, Format::DecimalExponent))
        }
        _ => None,
    }
}

const DECIMAL_SUFFIXES: [(i64, &str); 10] = [
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// The decimal digits of `i64::MAX` (9223372036854775807).
const I64_MAX_DIGITS: [u8; 19] = [9, 2, 2, 3, 3, 7, 2, 0, 3, 6, 8, 5, 4, 7, 7, 5, 8, 0, 7];

impl Quantity {
    /// Parses a quantity (upstream `resource.ParseQuantity`).
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        if s == "0" {
            return Ok(Quantity {
                value: Dec::default(),
                format: Format::DecimalSI,
                cached: Some(s.to_string()),
            });
        }
        let parts = parse_quantity_string(s)?;
        let (base, exponent, mut format) =
            interpret_suffix(parts.suffix).ok_or(QuantityError::Suffix)?;

        let mut all_digits: Vec<u8> = Vec::with_capacity(parts.num.len() + parts.denom.len());
        all_digits.extend(parts.num.bytes().map(|c| c - b'0'));
        all_digits.extend(parts.denom.bytes().map(|c| c - b'0'));
        let denom_len = parts.denom.len() as i64;
        let neg = !parts.positive;

        // Would upstream keep the input string as the canonical form? Only on
        // its int64 fast path, for inputs already in canonical shape.
        let mut keep_string = false;
        let value = if base == 10 {
            let scale = exponent as i64 - denom_len;
            let precision = 18 - (parts.num.len() + parts.denom.len()) as i64;
            if precision >= 0 && scale >= NANO as i64 {
                // The digits of `num` followed by those of `denom`.
                let shifted = all_digits.as_slice();
                keep_string =
                    scale % 3 == 0 && !shifted.ends_with(&[0, 0, 0]) && shifted.first() != Some(&0);
            }
            Dec::from_digits(neg, all_digits, scale)
        } else {
            if parts.denom.is_empty() {
                let precision = 15 - parts.num.len() as i64 - (exponent as i64 * 3 / 10) - 1;
                if precision >= 0 {
                    if let Ok(v) = parts.num.parse::<i64>() {
                        if v.checked_mul(1i64 << exponent).is_some() {
                            keep_string = v & 0x07 != 0;
                        }
                    }
                }
            }
            // Multiply by 2^exponent in steps that fit the small multiplier.
            let mut d = Dec::from_digits(neg, all_digits, -denom_len);
            let mut remaining = exponent;
            while remaining > 0 {
                let step = remaining.min(30);
                d = d.mul_small(1u64 << step);
                remaining -= step;
            }
            d
        };

        // Round anything finer than a nano-unit up, away from zero.
        let (mut value, _) = value.into_round_up(NANO as i64);
        if format == Format::BinarySI {
            if value.cmp_mag_digits(&I64_MAX_DIGITS, 0) == Ordering::Greater {
                let max = Dec::from_i128(i64::MAX as i128, 0);
                value = if value.neg { max.neg() } else { max };
            }
            if !value.is_zero() && value.cmp_mag_digits(&[1], 0) == Ordering::Less {
                format = Format::DecimalSI;
            }
        }
        Ok(Quantity {
            value,
            format,
            cached: keep_string.then(|| s.to_string()),
        })
    }

    /// `value` units in the given format (upstream `NewQuantity`).
    pub fn new(value: i64, format: Format) -> Quantity {
        Quantity {
            value: Dec::from_i128(value as i128, 0),
            format,
            cached: None,
        }
    }

    /// `value` thousandths in the given format (upstream `NewMilliQuantity`).
    pub fn new_milli(value: i64, format: Format) -> Quantity {
        Quantity {
            value: Dec::from_i128(value as i128, MILLI as i64),
            format,
            cached: None,
        }
    }

    /// `value × 10^scale` in DecimalSI format (upstream `NewScaledQuantity`).
    pub fn new_scaled(value: i64, scale: i32) -> Quantity {
        Quantity {
            value: Dec::from_i128(value as i128, scale as i64),
            format: Format::DecimalSI,
            cached: None,
        }
    }

    /// The format the quantity is emitted in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Changes the emitting format.
    pub fn set_format(&mut self, format: Format) {
        if self.format != format {
            self.format = format;
            self.cached = None;
        }
    }

    /// Whether the quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.value.is_zero()
    }

    /// -1, 0 or 1 by sign.
    pub fn sign(&self) -> i32 {
        self.value.sign()
    }

    /// The value rounded up (away from zero) to an integer, saturating at the
    /// i64 bounds (upstream `Value`).
    pub fn value(&self) -> i64 {
        self.scaled_value(0)
    }

    /// The value in thousandths rounded up (away from zero), saturating at
    /// the i64 bounds (upstream `MilliValue`).
    pub fn milli_value(&self) -> i64 {
        self.scaled_value(MILLI)
    }

    /// The value in units of 10^scale rounded up (away from zero),
    /// saturating at the i64 bounds (upstream `ScaledValue`).
    pub fn scaled_value(&self, scale: i32) -> i64 {
        let rounded = if self.value.is_exact_at(scale as i64) {
            std::borrow::Cow::Borrowed(&self.value)
        } else {
            std::borrow::Cow::Owned(self.value.round_up_inexact(scale as i64).0)
        };
        match rounded.to_i128_at(scale as i64) {
            Some(v) => v.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
            None if rounded.neg => i64::MIN,
            None => i64::MAX,
        }
    }

    /// The value as an i64 if it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        self.value.to_i128_at(0).and_then(|v| i64::try_from(v).ok())
    }

    /// The value as an approximate float.
    pub fn as_approximate_f64(&self) -> f64 {
        self.value.to_f64()
    }

    /// Compares with an integer.
    pub fn cmp_i64(&self, v: i64) -> Ordering {
        self.cmp(&Quantity::new(v, Format::DecimalSI))
    }

    /// Rounds up (away from zero) to a multiple of 10^scale; returns whether
    /// the value was already exact (upstream `RoundUp`).
    pub fn round_up(&mut self, scale: i32) -> bool {
        if self.value.is_exact_at(scale as i64) {
            return true;
        }
        self.value = self.value.round_up_inexact(scale as i64).0;
        self.cached = None;
        false
    }

    /// Adds `other`. A zero quantity takes on the format of `other`.
    pub fn add(&mut self, other: &Quantity) {
        self.cached = None;
        if self.is_zero() {
            self.format = other.format;
        }
        self.value = self.value.add(&other.value);
    }

    /// Subtracts `other`. A zero quantity takes on the format of `other`.
    pub fn sub(&mut self, other: &Quantity) {
        self.cached = None;
        if self.is_zero() {
            self.format = other.format;
        }
        self.value = self.value.add(&other.value.neg());
    }

    /// Multiplies by an integer.
    pub fn mul(&mut self, y: i64) {
        self.cached = None;
        let mut v = self.value.mul_small(y.unsigned_abs());
        if y < 0 {
            v = v.neg();
        }
        self.value = v;
    }

    /// Negates the value.
    pub fn neg(&mut self) {
        self.cached = None;
        self.value = self.value.neg();
    }

    /// The canonical string, ignoring any remembered input string.
    pub fn canonical_string(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_canonical(&mut out);
        out
    }

    /// Writes the canonical string (see [`Quantity::canonical_string`]).
    fn write_canonical<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        let v = &self.value;
        if v.is_zero() {
            return w.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySI {
            let small = v.cmp_mag_digits(&[1, 0, 2, 4], 0) == Ordering::Less;
            if small || v.exp < 0 {
                // Small or fractional binary values are shown as decimal.
                format = Format::DecimalSI;
            }
        }
        if v.neg {
            w.write_char('-')?;
        }
        if format == Format::BinarySI {
            if let Some(n) = v.to_i128_at(0) {
                let mut m = n.unsigned_abs();
                let mut power = 0;
                while power < BINARY_SUFFIXES.len() - 1 && m % 1024 == 0 {
                    m /= 1024;
                    power += 1;
                }
                return write!(w, "{m}{}", BINARY_SUFFIXES[power]);
            }
            let mut digits = v.integer_digits();
            let mut power = 0;
            while power < BINARY_SUFFIXES.len() - 1 {
                match div_exact(&digits, 1024) {
                    Some(q) => {
                        digits = q;
                        power += 1;
                    }
                    None => break,
                }
            }
            write_digits(w, &digits, 0)?;
            return w.write_str(BINARY_SUFFIXES[power]);
        }
        // Base 10: move the exponent down to a multiple of three.
        let mut exp = v.exp;
        let mut zeros = 0;
        while exp % 3 != 0 {
            zeros += 1;
            exp -= 1;
        }
        write_digits(w, &v.digits, zeros)?;
        let decimal = DECIMAL_SUFFIXES
            .iter()
            .find(|(e, _)| *e == exp)
            .map(|(_, s)| *s);
        match (format, decimal) {
            (Format::DecimalSI, Some(suffix)) => w.write_str(suffix),
            // DecimalSI has no suffix beyond E or below n: use an exponent.
            _ if exp == 0 => Ok(()),
            _ => write!(w, "e{exp}"),
        }
    }
}

/// Writes decimal `digits` followed by `zeros` zeros ("0" when there are
/// none at all).
fn write_digits<W: fmt::Write>(w: &mut W, digits: &[u8], zeros: usize) -> fmt::Result {
    if digits.is_empty() && zeros == 0 {
        return w.write_str("0");
    }
    let mut buf = [b'0'; 64];
    let mut rest = digits
        .iter()
        .map(|d| b'0' + d)
        .chain(std::iter::repeat_n(b'0', zeros));
    loop {
        let mut n = 0;
        for (slot, c) in buf.iter_mut().zip(rest.by_ref()) {
            *slot = c;
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        // Only ASCII digits were written.
        w.write_str(std::str::from_utf8(&buf[..n]).unwrap_or(""))?;
        if n < buf.len() {
            return Ok(());
        }
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Quantity) -> bool {
        self.value == other.value
    }
}

impl Eq for Quantity {}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Quantity) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Quantity) -> Ordering {
        match (self.value.sign(), other.value.sign()) {
            (a, b) if a != b => a.cmp(&b),
            (0, _) => Ordering::Equal,
            (1, _) => self.value.cmp_mag(&other.value),
            _ => other.value.cmp_mag(&self.value),
        }
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;

    fn add(mut self, rhs: Quantity) -> Quantity {
        Quantity::add(&mut self, &rhs);
        self
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;

    fn sub(mut self, rhs: Quantity) -> Quantity {
        Quantity::sub(&mut self, &rhs);
        self
    }
}

impl std::ops::AddAssign<&Quantity> for Quantity {
    fn add_assign(&mut self, rhs: &Quantity) {
        self.add(rhs);
    }
}

impl std::ops::SubAssign<&Quantity> for Quantity {
    fn sub_assign(&mut self, rhs: &Quantity) {
        self.sub(rhs);
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cached {
            Some(s) => f.write_str(s),
            None => self.write_canonical(f),
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Quantity, QuantityError> {
        Quantity::parse(s)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quantity string or number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
        Quantity::parse(v.trim()).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        Quantity::parse(&v.to_string()).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        Quantity::parse(&v.to_string()).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
        if !v.is_finite() {
            return Err(E::custom(QuantityError::FormatWrong));
        }
        Quantity::parse(&v.to_string()).map_err(E::custom)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Quantity, E> {
        Ok(Quantity::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<Quantity, E> {
        Ok(Quantity::default())
    }
}

/// Accepts a string (surrounding whitespace trimmed, as upstream does), a
/// JSON number, or `null` (zero).
impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Quantity, D::Error> {
        deserializer.deserialize_any(QuantityVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// `i × 10^exp` in a format, like upstream's `decQuantity` test helper.
    fn dec(i: i64, exp: i64, format: Format) -> Quantity {
        Quantity {
            value: Dec::from_i128(i as i128, exp),
            format,
            cached: None,
        }
    }

    use Format::{BinarySI as B, DecimalExponent as X, DecimalSI as D};

    #[test]
    fn parse_values_and_formats() {
        let table: Vec<(&str, Quantity)> = vec![
            ("0", dec(0, 0, D)),
            ("0n", dec(0, 0, D)),
            ("0u", dec(0, 0, D)),
            ("0m", dec(0, 0, D)),
            ("0Ki", dec(0, 0, B)),
            ("0k", dec(0, 0, D)),
            ("0Mi", dec(0, 0, B)),
            ("0M", dec(0, 0, D)),
            ("0Gi", dec(0, 0, B)),
            ("0G", dec(0, 0, D)),
            ("0Ti", dec(0, 0, B)),
            ("0T", dec(0, 0, D)),
            ("1", dec(1, 0, D)),
            ("1Ki", dec(1024, 0, B)),
            ("8Ki", dec(8 * 1024, 0, B)),
            ("7Mi", dec(7 * 1024 * 1024, 0, B)),
            ("6Gi", dec(6 * 1024 * 1024 * 1024, 0, B)),
            ("5Ti", dec(5 << 40, 0, B)),
            ("4Pi", dec(4 << 50, 0, B)),
            ("3Ei", dec(3 << 60, 0, B)),
            ("10Ti", dec(10 << 40, 0, B)),
            ("100Ti", dec(100 << 40, 0, B)),
            ("5n", dec(5, -9, D)),
            ("4u", dec(4, -6, D)),
            ("3m", dec(3, -3, D)),
            ("9", dec(9, 0, D)),
            ("8k", dec(8, 3, D)),
            ("50k", dec(5, 4, D)),
            ("7M", dec(7, 6, D)),
            ("6G", dec(6, 9, D)),
            ("5T", dec(5, 12, D)),
            ("40T", dec(4, 13, D)),
            ("300T", dec(3, 14, D)),
            ("2P", dec(2, 15, D)),
            ("1E", dec(1, 18, D)),
            ("1E-3", dec(1, -3, X)),
            ("1e3", dec(1, 3, X)),
            ("1E6", dec(1, 6, X)),
            ("1e9", dec(1, 9, X)),
            ("1E12", dec(1, 12, X)),
            ("1e15", dec(1, 15, X)),
            ("1E18", dec(1, 18, X)),
            ("1e14", dec(1, 14, X)),
            ("1e13", dec(1, 13, X)),
            ("100.035k", dec(100035, 0, D)),
            ("0.001", dec(1, -3, D)),
            ("0.0005k", dec(5, -1, D)),
            ("0.005", dec(5, -3, D)),
            ("0.05", dec(5, -2, D)),
            ("0.5", dec(5, -1, D)),
            ("0.00050k", dec(5, -1, D)),
            ("0.00500", dec(5, -3, D)),
            ("0.05000", dec(5, -2, D)),
            ("0.50000", dec(5, -1, D)),
            ("0.5e0", dec(5, -1, X)),
            ("0.5e-1", dec(5, -2, X)),
            ("0.5e-2", dec(5, -3, X)),
            ("10.035M", dec(10035, 3, D)),
            ("1.2e3", dec(12, 2, X)),
            ("1.3E+6", dec(13, 5, X)),
            ("1.40e9", dec(14, 8, X)),
            ("1.53E12", dec(153, 10, X)),
            ("1.6e15", dec(16, 14, X)),
            ("1.7E18", dec(17, 17, X)),
            ("9.01", dec(901, -2, D)),
            ("8.1k", dec(81, 2, D)),
            ("7.123456M", dec(7123456, 0, D)),
            ("6.987654321G", dec(6987654321, 0, D)),
            ("5.444T", dec(5444, 9, D)),
            ("40.1T", dec(401, 11, D)),
            ("300.2T", dec(3002, 11, D)),
            ("2.5P", dec(25, 14, D)),
            ("1.01E", dec(101, 16, D)),
            ("3.001n", dec(4, -9, D)),
            ("1.1E-9", dec(2, -9, X)),
            ("0.0000000001", dec(1, -9, D)),
            ("0.0000000005", dec(1, -9, D)),
            ("0.00000000050", dec(1, -9, D)),
            ("0.5e-9", dec(1, -9, X)),
            ("0.9n", dec(1, -9, D)),
            ("0.00000012345", dec(124, -9, D)),
            ("0.00000012354", dec(124, -9, D)),
            ("9Ei", dec(i64::MAX, 0, B)),
            ("9223372036854775807Ki", dec(i64::MAX, 0, B)),
            ("12E", dec(12, 18, D)),
            ("100.035Ki", dec(10243584, -2, B)),
            ("0.5Mi", dec(524288, 0, B)),
            ("0.05Gi", dec(536870912, -1, B)),
            ("0.025Ti", dec(274877906944, -1, B)),
            ("0.000000000001Ki", dec(2, -9, D)),
            (".001", dec(1, -3, D)),
            (".0001k", dec(100, -3, D)),
            ("1.", dec(1, 0, D)),
            ("1.G", dec(1, 9, D)),
        ];
        for (input, want) in &table {
            let got = q(input);
            assert_eq!(got, *want, "{input}");
            assert_eq!(got.format(), want.format, "{input}");
            // The negated input parses to the negated value, same format.
            let neg = q(&format!("-{input}"));
            assert_eq!(neg, dec(0, 0, D) - want.clone(), "-{input}");
            assert_eq!(neg.format(), want.format, "-{input}");
            // An explicit plus changes nothing.
            let plus = q(&format!("+{input}"));
            assert_eq!(plus, *want, "+{input}");
            assert_eq!(plus.format(), want.format, "+{input}");
        }
    }

    #[test]
    fn parse_rejects_what_upstream_rejects() {
        let fmt = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
        let cases = [
            ("", fmt),
            ("1.1.M", fmt),
            ("1+1.0M", fmt),
            ("0.1mi", "unable to parse quantity's suffix"),
            ("0.1am", fmt),
            ("aoeu", fmt),
            (".5i", "unable to parse quantity's suffix"),
            ("1i", "unable to parse quantity's suffix"),
            ("-3.01i", "unable to parse quantity's suffix"),
            ("-3.01e-", "unable to parse quantity's suffix"),
            (" 1", fmt),
            ("1 ", fmt),
            ("1ki", "unable to parse quantity's suffix"),
            ("1KI", fmt),
            ("1e", "unable to parse quantity's suffix"),
            ("1e1.5", fmt),
            ("1Gi5", "unable to parse quantity's suffix"),
            ("1,000", fmt),
            ("½", fmt),
        ];
        for (input, msg) in cases {
            let err = Quantity::parse(input).err().map(|e| e.to_string());
            assert_eq!(err.as_deref(), Some(msg), "{input:?}");
        }
        assert_eq!(
            QuantityError::FormatWrong.to_string(),
            format!("quantities must match the regular expression '{QUANTITY_REGEX}'")
        );
    }

    #[test]
    fn canonical_strings_of_large_values() {
        // Beyond what fits in 128 bits, and more digits than one write.
        let mut big = Quantity::new(1 << 60, B);
        big.mul(1 << 40);
        assert_eq!(big.to_string(), "1099511627776Ei");
        big.mul(1 << 40);
        assert_eq!(big.to_string(), "1208925819614629174706176Ei");
        big.neg();
        assert_eq!(big.to_string(), "-1208925819614629174706176Ei");
        big.add(&q("1"));
        assert_eq!(
            big.to_string(),
            "-1393796574908163946345982392040522594123775"
        );
        let long = "1234567890".repeat(7);
        assert_eq!(q(&long).to_string(), long);
        assert_eq!(q(&format!("-{long}")).to_string(), format!("-{long}"));
        assert_eq!(q(&format!("{long}0")).to_string(), format!("{long}0"));
        // 10 times smaller, and a whole number.
        assert_eq!(
            q(&format!("{long}00m")).to_string(),
            long.strip_suffix('0').unwrap_or_default()
        );
        assert_eq!(q(&"9".repeat(64)).to_string(), "9".repeat(64));
    }

    #[test]
    fn canonical_strings() {
        // (value, canonical form, a non-canonical spelling of it)
        let table: Vec<(Quantity, &str, &str)> = vec![
            (dec(1024 * 1024 * 1024, 0, B), "1Gi", "1024Mi"),
            (dec(300 * 1024 * 1024, 0, B), "300Mi", "307200Ki"),
            (dec(6 * 1024, 0, B), "6Ki", ""),
            (dec(1001 * 1024 * 1024 * 1024, 0, B), "1001Gi", "1025024Mi"),
            (dec(1 << 40, 0, B), "1Ti", "1024Gi"),
            (dec(5, 0, B), "5", "5000m"),
            (dec(500, -3, B), "500m", "0.5"),
            (dec(1, 9, D), "1G", "1000M"),
            (dec(1000, 6, D), "1G", "0.001T"),
            (dec(1000000, 3, D), "1G", ""),
            (dec(1000000000, 0, D), "1G", ""),
            (dec(1, -3, D), "1m", "1000u"),
            (dec(80, -3, D), "80m", ""),
            (dec(1080, -3, D), "1080m", "1.08"),
            (dec(108, -2, D), "1080m", "1080000000n"),
            (dec(10800, -4, D), "1080m", ""),
            (dec(300, 6, D), "300M", ""),
            (dec(1, 12, D), "1T", ""),
            (dec(1, 18, D), "1E", ""),
            (dec(1, 21, D), "1e21", "1000E"),
            (dec(5, 21, D), "5e21", "5000E"),
            (dec(1, 24, D), "1e24", "1000000E"),
            (dec(1234567, 6, D), "1234567M", ""),
            (dec(1234567, -3, B), "1234567m", ""),
            (dec(3, 3, D), "3k", ""),
            (dec(1025, 0, B), "1025", ""),
            (dec(0, 0, D), "0", ""),
            (dec(0, 0, B), "0", ""),
            (dec(1, 9, X), "1e9", ".001e12"),
            (dec(1, -3, X), "1e-3", "0.001e0"),
            (dec(1, -9, X), "1e-9", "1000e-12"),
            (dec(80, -3, X), "80e-3", ""),
            (dec(300, 6, X), "300e6", ""),
            (dec(1, 12, X), "1e12", ""),
            (dec(1, 3, X), "1e3", ""),
            (dec(3, 3, X), "3e3", ""),
            (dec(3, 3, D), "3k", ""),
            (dec(0, 0, X), "0", "00"),
            (dec(1, -9, D), "1n", ""),
            (dec(80, -9, D), "80n", ""),
            (dec(1080, -9, D), "1080n", ""),
            (dec(108, -8, D), "1080n", ""),
            (dec(10800, -10, D), "1080n", ""),
            (dec(1, -6, D), "1u", ""),
            (dec(80, -6, D), "80u", ""),
            (dec(1080, -6, D), "1080u", ""),
        ];
        for (value, canonical, alternate) in &table {
            assert_eq!(value.to_string(), *canonical);
            // Parsing the canonical form keeps it verbatim.
            let parsed = q(canonical);
            assert_eq!(parsed.cached.as_deref(), Some(*canonical), "{canonical}");
            assert_eq!(parsed.to_string(), *canonical);
            if !alternate.is_empty() {
                let alt = q(alternate);
                assert!(alt.cached.is_none(), "{alternate} kept its string");
                assert_eq!(alt.to_string(), *canonical, "{alternate}");
            }
            if !value.is_zero() {
                let mut negated = value.clone();
                negated.neg();
                assert_eq!(negated.to_string(), format!("-{canonical}"));
            }
        }
    }

    #[test]
    fn parse_emit() {
        let table = [
            ("1Ki", "1Ki"),
            ("1Mi", "1Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1000M", "1G"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1.5Gi", "1536Mi"),
            ("1e3", "1e3"),
            ("1000", "1k"),
            ("1.5", "1500m"),
            ("1.5k", "1500"),
            ("0.1", "100m"),
            ("100m", "100m"),
            ("250m", "250m"),
            ("2000m", "2"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("129M", "129M"),
            ("123Mi", "123Mi"),
            ("0.0000000001", "1n"),
            ("1.1Ki", "1126400m"),
            ("12345678901234567890", "12345678901234567890"),
            ("1e1000000", "10e999999"),
            ("1e-1000000", "1e-9"),
            ("1E-1000000", "1e-9"),
            ("0.1E-9", "1e-9"),
            ("-0", "0"),
            ("000", "0"),
            ("+", "0"),
            ("-", "0"),
            (".", "0"),
            ("-.", "0"),
            ("0.0", "0"),
        ];
        for (input, want) in table {
            assert_eq!(q(input).to_string(), want, "{input}");
            if input.starts_with(['+', '-']) {
                continue;
            }
            let neg = q(&format!("-{input}"));
            if !neg.is_zero() {
                assert_eq!(neg.to_string(), format!("-{want}"), "-{input}");
            }
        }
    }

    #[test]
    fn parsed_string_reuse_matches_upstream() {
        // Upstream's fast path keeps these spellings verbatim.
        for kept in [
            "+1", "01", "1.500", "+3Ki", "-1", "100m", "1Gi", "1e3", "-5e-3",
        ] {
            assert_eq!(q(kept).to_string(), kept, "{kept}");
        }
        // ...and recomputes these.
        for (input, want) in [
            ("1.0", "1"),
            ("1.000", "1"),
            ("0.500", "500m"),
            ("8Ki", "8Ki"),
            ("1024Ki", "1Mi"),
            ("1.5Ki", "1536"),
            ("1.5e3", "1500"),
        ] {
            let parsed = q(input);
            assert!(parsed.cached.is_none(), "{input}");
            assert_eq!(parsed.to_string(), want, "{input}");
        }
    }

    #[test]
    fn remembered_string_versus_canonical() {
        let kept = q("1.500");
        assert_eq!(kept.to_string(), "1.500");
        assert_eq!(kept.canonical_string(), "1500m");
        let mut changed = kept.clone();
        changed.set_format(Format::DecimalExponent);
        assert_eq!(changed.to_string(), "1500e-3");
        let mut rounded = q("1.0001");
        assert!(!rounded.round_up(MILLI));
        assert_eq!(rounded.to_string(), "1001m");
        assert_eq!(Format::BinarySI.to_string(), "BinarySI");
    }

    #[test]
    fn comparison() {
        assert_eq!(q("0").cmp(&q("0")), Ordering::Equal);
        assert_eq!(q("100m").cmp(&q("50m")), Ordering::Greater);
        assert_eq!(q("50m").cmp(&q("100m")), Ordering::Less);
        assert_eq!(q("10000T").cmp(&q("100Gi")), Ordering::Greater);
        assert_eq!(q("1k"), q("1000"));
        assert_eq!(q("1Ki"), q("1024"));
        assert!(q("-1") < q("0"));
        assert!(q("-2") < q("-1"));
        assert!(q("1e1000000") > q("9E"));
        assert!(q("-1e1000000") < q("-9E"));
        assert_eq!(q("1").cmp_i64(1), Ordering::Equal);
        assert_eq!(q("1001m").cmp_i64(1), Ordering::Greater);
        let mut set = std::collections::HashSet::new();
        set.insert(q("1k"));
        assert!(set.contains(&q("1000")));
    }

    #[test]
    fn round_up() {
        let table = [
            ("9.01", -3, dec(901, -2, D), true),
            ("9.01", -2, dec(901, -2, D), true),
            ("9.01", -1, dec(91, -1, D), false),
            ("9.01", 0, dec(10, 0, D), false),
            ("9.01", 1, dec(10, 0, D), false),
            ("9.01", 2, dec(100, 0, D), false),
            ("-9.01", -3, dec(-901, -2, D), true),
            ("-9.01", -2, dec(-901, -2, D), true),
            ("-9.01", -1, dec(-91, -1, D), false),
            ("-9.01", 0, dec(-10, 0, D), false),
            ("-9.01", 1, dec(-10, 0, D), false),
            ("-9.01", 2, dec(-100, 0, D), false),
        ];
        for (input, scale, want, exact) in table {
            let mut got = q(input);
            assert_eq!(got.round_up(scale), exact, "{input} {scale}");
            assert_eq!(got, want, "{input} {scale}");
        }
    }

    #[test]
    fn values() {
        assert_eq!(q("1Mi").value(), 1024 * 1024);
        assert_eq!(q("1.5").value(), 2);
        assert_eq!(q("-1.5").value(), -2);
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("1").milli_value(), 1000);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("0.5").milli_value(), 500);
        assert_eq!(q("1e30").value(), i64::MAX);
        assert_eq!(q("-1e30").value(), i64::MIN);
        assert_eq!(q("9Ei").value(), i64::MAX);
        for (from, to, want) in [
            (NANO, NANO, 1),
            (NANO, MICRO, 1),
            (NANO, MILLI, 1),
            (NANO, 0, 1),
            (MICRO, NANO, 1000),
            (MICRO, MICRO, 1),
            (MICRO, MILLI, 1),
            (MICRO, 0, 1),
            (MILLI, NANO, 1000 * 1000),
            (MILLI, MICRO, 1000),
            (MILLI, MILLI, 1),
            (MILLI, 0, 1),
            (0, NANO, 1000 * 1000 * 1000),
            (0, MICRO, 1000 * 1000),
            (0, MILLI, 1000),
            (0, 0, 1),
            (2, -2, 100 * 100),
        ] {
            assert_eq!(
                Quantity::new_scaled(1, from).scaled_value(to),
                want,
                "{from} -> {to}"
            );
        }
        assert_eq!(q("1k").as_i64(), Some(1000));
        assert_eq!(q("1000m").as_i64(), Some(1));
        assert_eq!(q("100m").as_i64(), None);
        assert_eq!(q("1e30").as_i64(), None);
        assert_eq!(q("1.1Ki").as_approximate_f64(), 1126.4);
        assert_eq!(q("2Gi").as_approximate_f64(), 2.147483648e9);
    }

    #[test]
    fn constructors() {
        for (v, f, want) in [
            (1, D, "1m"),
            (1000, D, "1"),
            (1234000, D, "1234"),
            (1024, B, "1024m"),
            (1024 * 1024, B, "1048576m"),
        ] {
            assert_eq!(Quantity::new_milli(v, f).to_string(), want);
        }
        for (v, f, want) in [
            (1, D, "1"),
            (1000, D, "1k"),
            (1234000, D, "1234k"),
            (1024, B, "1Ki"),
            (1000000, X, "1e6"),
            (1024 * 1024, B, "1Mi"),
        ] {
            assert_eq!(Quantity::new(v, f).to_string(), want);
        }
        for (v, s, want) in [
            (1, NANO, "1n"),
            (1000, NANO, "1u"),
            (1, MICRO, "1u"),
            (1000, MICRO, "1m"),
            (1, MILLI, "1m"),
            (1000, MILLI, "1"),
            (1, 0, "1"),
            (0, NANO, "0"),
        ] {
            assert_eq!(Quantity::new_scaled(v, s).to_string(), want);
        }
        assert_eq!(Quantity::new(1000000, X).to_string(), "1e6");
        assert_eq!(Quantity::new_milli(1000000, X).to_string(), "1e3");
    }

    #[test]
    fn arithmetic() {
        let cases = [
            (dec(10, 0, D), dec(1, 1, D), dec(20, 0, D)),
            (dec(10, 0, D), dec(1, 0, B), dec(11, 0, D)),
            (dec(10, 0, B), dec(1, 0, D), dec(11, 0, B)),
            (dec(0, 0, D), dec(50, 0, D), dec(50, 0, D)),
            (dec(50, 0, D), dec(0, 0, D), dec(50, 0, D)),
        ];
        for (a, b, want) in cases {
            let mut got = a.clone();
            got.add(&b);
            assert_eq!(got, want);
            assert_eq!(got.format(), want.format);
        }
        let mut x = q("10");
        x.sub(&q("1"));
        assert_eq!(x, q("9"));
        let mut z = Quantity::default();
        z.sub(&q("50"));
        assert_eq!(z.to_string(), "-50");
        // Adding to zero takes on the other's format and so its suffix.
        for s in ["100m", "1Gi"] {
            let mut zero = q("0");
            zero.add(&q(s));
            assert_eq!(zero.to_string(), s);
            let mut v = q(s);
            v.add(&q("0"));
            assert_eq!(v.to_string(), s);
            let mut v = q(s);
            v.sub(&q("0"));
            assert_eq!(v.to_string(), s);
            let mut zero = q("0");
            zero.sub(&q(s));
            assert_eq!(zero.to_string(), format!("-{s}"));
        }
        let mut total = q("250m");
        total += &q("1.5");
        total += &q("1Gi");
        assert_eq!(total.to_string(), "1073741825750m");
        let mut cpu = q("2");
        cpu -= &q("2500m");
        assert_eq!(cpu.to_string(), "-500m");
        assert!(!cpu.is_zero());
        assert_eq!(cpu.sign(), -1);
        let mut big = q("9223372036854775807");
        big.add(&q("1"));
        assert_eq!(big.to_string(), "9223372036854775808");
        let mut m = q("1.5");
        m.mul(-4);
        assert_eq!(m.to_string(), "-6");
        assert_eq!((q("1Ki") - q("1Ki")).to_string(), "0");
        let mut e = q("8Ei");
        e.add(&q("8Ei"));
        assert_eq!(e.to_string(), "18446744073709551614");
        let mut e = Quantity::new(1 << 62, B);
        e.mul(1 << 10);
        assert_eq!(e.to_string(), "4096Ei");
    }

    #[test]
    fn serde_round_trip() {
        let json = serde_json::to_string(&q("0.5")).unwrap_or_default();
        assert_eq!(json, "\"500m\"");
        let parsed: Quantity = serde_json::from_str("\" 1\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.to_string(), "1");
        for (input, want) in [
            ("1", "1"),
            (" 1", "1"),
            ("1 ", "1"),
            ("10", "10"),
            ("-1", "-1"),
            (" -1", "-1"),
            ("1.5", "1500m"),
            ("\"1Gi\"", "1Gi"),
            ("null", "0"),
        ] {
            let parsed: Quantity =
                serde_json::from_str(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.to_string(), want, "{input}");
        }
        let err = serde_json::from_str::<Quantity>("\"abc\"")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("quantities must match the regular expression"),
            "{err}"
        );
        let v: serde_json::Value = serde_json::json!({"cpu": "1000m"});
        let parsed: std::collections::BTreeMap<String, Quantity> =
            serde_json::from_value(v).unwrap_or_default();
        assert_eq!(
            serde_json::to_value(&parsed).ok(),
            Some(serde_json::json!({"cpu": "1"}))
        );
        assert_eq!(
            "250m".parse::<Quantity>().map(|q| q.milli_value()).ok(),
            Some(250)
        );
    }
}
