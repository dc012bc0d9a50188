//! Time-zone lookup with the acceptance rules of Go's `time.LoadLocation`, backed
//! by jiff's tz database.

use crate::error::UnknownTimeZone;
use jiff::tz::TimeZone;

/// Looks up an IANA zone as Go's `time.LoadLocation` does: "" and `UTC` are UTC,
/// names with characters outside `[A-Za-z0-9/_+.-]`, a `..` or a leading `/` are
/// refused, anything else must be in the tz database. `Local` is read as UTC, the
/// zone control planes usually run in.
pub fn load_location(name: &str) -> Result<TimeZone, UnknownTimeZone> {
    if name.is_empty() || name == "UTC" || name == "Local" {
        return Ok(TimeZone::UTC);
    }
    let well_formed = name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"/_-+.".contains(&c))
        && !name.contains("..")
        && !name.starts_with('/');
    if well_formed {
        if let Ok(tz) = jiff::tz::db().get(name) {
            return Ok(tz);
        }
    }
    Err(UnknownTimeZone(name.to_string()))
}
