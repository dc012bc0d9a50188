//! Error types of schedule parsing. Their `Display` texts are the messages
//! robfig/cron v3, Go's `strconv`, `time.ParseDuration` and `time.LoadLocation`
//! produce, since upstream Kubernetes shows those to users verbatim.

use apimachinery::gofmt::quote;

/// A time-zone name the tz database does not know (Go's `time.LoadLocation`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0}")]
pub struct UnknownTimeZone(pub String);

/// Why an integer did not parse (Go's `strconv.Atoi`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AtoiError {
    /// Not an optionally signed run of decimal digits.
    #[error("strconv.Atoi: parsing {}: invalid syntax", quote(.0))]
    Syntax(String),
    /// Digits whose value does not fit a 64-bit signed integer.
    #[error("strconv.Atoi: parsing {}: value out of range", quote(.0))]
    Range(String),
}

/// Why a duration did not parse (Go's `time.ParseDuration`); each variant carries
/// the whole input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Malformed number, empty input or overflow.
    #[error("time: invalid duration {}", quote(.0))]
    Invalid(String),
    /// A number not followed by a unit.
    #[error("time: missing unit in duration {}", quote(.0))]
    MissingUnit(String),
    /// A unit other than `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`.
    #[error("time: unknown unit {} in duration {}", quote(.unit), quote(.input))]
    UnknownUnit {
        /// The unrecognised unit.
        unit: String,
        /// The whole duration text.
        input: String,
    },
}

/// Why a schedule did not parse, with robfig/cron v3's messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The schedule is the empty string.
    #[error("empty spec string")]
    Empty,
    /// The zone of a `TZ=`/`CRON_TZ=` prefix is unknown.
    #[error("provided bad location {location}: {source}")]
    BadLocation {
        /// The zone name as written.
        location: String,
        /// The lookup failure.
        source: UnknownTimeZone,
    },
    /// Not exactly five whitespace-separated fields.
    #[error("expected exactly 5 fields, found {}: [{}]", .0.len(), .0.join(" "))]
    FieldCount(Vec<String>),
    /// A value that is neither a number nor a known name.
    #[error("failed to parse int from {expr}: {source}")]
    Int {
        /// The value as written.
        expr: String,
        /// The integer parse failure.
        source: AtoiError,
    },
    /// A negative number.
    #[error("negative number ({value}) not allowed: {expr}")]
    Negative {
        /// The parsed value.
        value: i64,
        /// The value as written.
        expr: String,
    },
    /// More than one `-` in a range.
    #[error("too many hyphens: {0}")]
    TooManyHyphens(String),
    /// More than one `/` in a range.
    #[error("too many slashes: {0}")]
    TooManySlashes(String),
    /// A range starting below the field's minimum.
    #[error("beginning of range ({start}) below minimum ({min}): {expr}")]
    BelowMinimum {
        /// First value of the range.
        start: u64,
        /// Smallest value the field allows.
        min: u64,
        /// The range as written.
        expr: String,
    },
    /// A range ending above the field's maximum.
    #[error("end of range ({end}) above maximum ({max}): {expr}")]
    AboveMaximum {
        /// Last value of the range.
        end: u64,
        /// Largest value the field allows.
        max: u64,
        /// The range as written.
        expr: String,
    },
    /// A range whose start is after its end.
    #[error("beginning of range ({start}) beyond end of range ({end}): {expr}")]
    Reversed {
        /// First value of the range.
        start: u64,
        /// Last value of the range.
        end: u64,
        /// The range as written.
        expr: String,
    },
    /// A step of zero.
    #[error("step of range should be a positive number: {0}")]
    ZeroStep(String),
    /// An `@...` word that is not a known descriptor.
    #[error("unrecognized descriptor: {0}")]
    UnknownDescriptor(String),
    /// An `@every` whose duration does not parse.
    #[error("failed to parse duration {descriptor}: {source}")]
    Every {
        /// The whole descriptor, `@every ...`.
        descriptor: String,
        /// The duration parse failure.
        source: DurationError,
    },
}
