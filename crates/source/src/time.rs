//! Date-time and duration grammars shared by `init_position`, `since`,
//! `until` and `disorder`.
//!
//! Date-times are RFC 3339, the common ISO-8601 spellings (space or `T`,
//! optional seconds and fraction, `Z` / `±HH:MM` / `±HHMM` / `±HH`), a bare
//! date (midnight), or RFC 2822. No zone means UTC: a definition must mean the
//! same instant on every machine that reads it.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// How a date-time or a duration is written, for error messages.
pub(crate) const DATE_TIME_FORMS: &str = "an RFC 3339 / ISO-8601 date-time such as `2024-01-01T00:00:00Z` or `2024-01-01 00:00:00` (no zone means UTC), a date such as `2024-01-01`";

const ZONED_FORMATS: [&str; 4] =
    ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z", "%Y-%m-%d %H:%M%#z"];
const NAIVE_FORMATS: [&str; 4] = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"];

/// Parses a date-time in any accepted form; `None` when it is none of them.
pub fn parse_date_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() || !text.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    // `Z` is not a `%#z` offset; it means +00:00.
    let (body, zulu) = match text.strip_suffix(['Z', 'z']) {
        Some(body) => (body, true),
        None => (text, false),
    };
    if !zulu {
        for format in ZONED_FORMATS {
            if let Ok(time) = DateTime::parse_from_str(body, format) {
                return Some(time.with_timezone(&Utc));
            }
        }
    }
    for format in NAIVE_FORMATS {
        if let Ok(time) = NaiveDateTime::parse_from_str(body, format) {
            return Some(Utc.from_utc_datetime(&time));
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(body, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|midnight| Utc.from_utc_datetime(&midnight));
    }
    if zulu {
        return None;
    }
    DateTime::parse_from_rfc2822(text).ok().map(|time| time.with_timezone(&Utc))
}

/// The unit letters of the duration grammar, largest first, with their length in seconds.
const DURATION_UNITS: [(char, u64); 6] =
    [('y', 365 * 86_400), ('w', 7 * 86_400), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parses a duration such as `14d`, `1h 30m` or `1y 2w`: whole numbers, each
/// followed by one of `y w d h m s` (a year is 365 days), each unit at most
/// once and largest first, optionally separated by spaces. Returns seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("duration is empty; write it like `14d` or `1h 30m`".to_owned());
    }
    let mut total: u64 = 0;
    let mut last_unit_index: Option<usize> = None;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("`{trimmed}`: expected a number at `{rest}`; write it like `14d` or `1h 30m`"));
        }
        let amount: u64 =
            rest[..digits].parse().map_err(|_| format!("`{trimmed}`: number `{}` is too large", &rest[..digits]))?;
        rest = &rest[digits..];
        let Some(unit) = rest.chars().next() else {
            return Err(format!("`{trimmed}`: `{amount}` has no unit; add one of y w d h m s, e.g. `{amount}s`"));
        };
        let Some(index) = DURATION_UNITS.iter().position(|(letter, _)| *letter == unit) else {
            return Err(format!("`{trimmed}`: unknown unit `{unit}`; units are y w d h m s"));
        };
        if last_unit_index.is_some_and(|last| last >= index) {
            return Err(format!("`{trimmed}`: units must appear once each, largest first (y w d h m s)"));
        }
        last_unit_index = Some(index);
        total = amount
            .checked_mul(DURATION_UNITS[index].1)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(|| format!("`{trimmed}` is too long"))?;
        rest = rest[unit.len_utf8()..].trim_start();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("test literal").with_timezone(&Utc)
    }

    #[test]
    fn date_time_forms() {
        let cases = [
            ("2023-05-31T15:30:00Z", "2023-05-31T15:30:00Z"),
            ("2023-05-31 15:30:00", "2023-05-31T15:30:00Z"),
            ("2023-05-31T15:30:00", "2023-05-31T15:30:00Z"),
            ("2023-05-31T15:30:00.123456-08:00", "2023-05-31T23:30:00.123456Z"),
            ("2023-05-31 15:30:00+0200", "2023-05-31T13:30:00Z"),
            ("2023-05-31T15:30+02", "2023-05-31T13:30:00Z"),
            ("2023-05-31 15:30", "2023-05-31T15:30:00Z"),
            ("2023-05-31T15:30:00.5Z", "2023-05-31T15:30:00.5Z"),
            ("2023-05-31", "2023-05-31T00:00:00Z"),
            ("  2023-05-31  ", "2023-05-31T00:00:00Z"),
            ("Wed, 31 May 2023 15:30:00 +0000", "2023-05-31T15:30:00Z"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_date_time(text), Some(utc(expected)), "{text}");
        }
    }

    #[test]
    fn not_date_times() {
        for text in
            ["", "now", "today", "2023-13-01", "2023-05-31T25:00:00", "31/05/2023", "1685547000", "2023-05-31Zx"]
        {
            assert_eq!(parse_date_time(text), None, "{text}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("14d"), Ok(14 * 86_400));
        assert_eq!(parse_duration("1h 30m"), Ok(5_400));
        assert_eq!(parse_duration("1h30m"), Ok(5_400));
        assert_eq!(parse_duration("1y 2w 3d 4h 5m 6s"), Ok(365 * 86_400 + 17 * 86_400 + 4 * 3_600 + 5 * 60 + 6));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration(" 90s "), Ok(90));
    }

    #[test]
    fn bad_durations() {
        let cases = [
            ("1x", "unknown unit `x`"),
            ("", "empty"),
            ("10", "has no unit"),
            ("h", "expected a number"),
            ("30m 1h", "largest first"),
            ("1h 1h", "largest first"),
            ("-1h", "expected a number"),
            ("1.5h", "unknown unit `.`"),
            ("99999999999999999999s", "too large"),
            ("999999999999999y", "too long"),
        ];
        for (text, expected) in cases {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
