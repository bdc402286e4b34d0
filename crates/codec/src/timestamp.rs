//! Timestamps and dates in record payloads (DESIGN.md §2).
//!
//! Epoch integers are read by magnitude (seconds, milliseconds, microseconds
//! or nanoseconds), numeric strings like numbers, and date-time strings as RFC
//! 3339 (a hand-written fast path for the common `YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM]`
//! shape), RFC 2822 or the other spellings tributary-source accepts; no zone
//! means UTC. Everything is stored as microseconds since the epoch, UTC.

use tributary_source::parse_date_time;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Below this an epoch number is seconds (up to the year 5138), then ms, µs, ns.
const SECONDS_LIMIT: i64 = 100_000_000_000;
const MILLIS_LIMIT: i64 = SECONDS_LIMIT * 1_000;
const MICROS_LIMIT: i64 = MILLIS_LIMIT * 1_000;

/// An epoch integer of unknown unit, to microseconds; `None` on overflow.
pub(crate) fn micros_from_epoch_int(value: i64) -> Option<i64> {
    let magnitude = value.unsigned_abs();
    if magnitude < SECONDS_LIMIT.unsigned_abs() {
        value.checked_mul(MICROS_PER_SECOND)
    } else if magnitude < MILLIS_LIMIT.unsigned_abs() {
        value.checked_mul(1_000)
    } else if magnitude < MICROS_LIMIT.unsigned_abs() {
        Some(value)
    } else {
        Some(value / 1_000)
    }
}

/// An epoch number with a fraction, to microseconds.
pub(crate) fn micros_from_epoch_float(value: f64) -> Option<i64> {
    if !value.is_finite() {
        return None;
    }
    let scale = match value.abs() {
        m if m < 1e11 => 1e6,
        m if m < 1e14 => 1e3,
        m if m < 1e17 => 1.0,
        _ => 1e-3,
    };
    let micros = (value * scale).round();
    // i64 range check before the cast; the cast is then exact for integral values in range.
    if (-9.2e18..=9.2e18).contains(&micros) { Some(micros as i64) } else { None }
}

/// A timestamp's text as bytes: the common RFC 3339 shape without a UTF-8 check.
pub(crate) fn micros_from_bytes(text: &[u8]) -> Option<i64> {
    fast_rfc3339(text).or_else(|| micros_from_str(std::str::from_utf8(text).ok()?))
}

/// A timestamp string (numeric, RFC 3339, RFC 2822, ...) to microseconds.
pub(crate) fn micros_from_str(text: &str) -> Option<i64> {
    if let Some(micros) = fast_rfc3339(text.as_bytes()) {
        return Some(micros);
    }
    let trimmed = text.trim();
    if let Ok(value) = trimmed.parse::<i64>() {
        return micros_from_epoch_int(value);
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && let Ok(value) = trimmed.parse::<f64>()
    {
        return micros_from_epoch_float(value);
    }
    let time = parse_date_time(trimmed)?;
    time.timestamp().checked_mul(MICROS_PER_SECOND)?.checked_add(i64::from(time.timestamp_subsec_micros()))
}

/// A date string (`YYYY-MM-DD`, or a date-time whose UTC day is taken) to days since the epoch.
pub(crate) fn days_from_str(text: &str) -> Option<i32> {
    let bytes = text.as_bytes();
    if bytes.len() == 10
        && let Some(days) = civil_days(bytes)
    {
        return i32::try_from(days).ok();
    }
    let micros = micros_from_str(text)?;
    i32::try_from(micros.div_euclid(MICROS_PER_DAY)).ok()
}

fn digits<const N: usize>(bytes: &[u8]) -> Option<i64> {
    let mut value = 0i64;
    for &b in bytes.get(..N)? {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(b - b'0');
    }
    Some(value)
}

/// `YYYY-MM-DD` to days since 1970-01-01 (proleptic Gregorian).
fn civil_days(bytes: &[u8]) -> Option<i64> {
    if bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    let year = digits::<4>(bytes)?;
    let month = digits::<2>(&bytes[5..])?;
    let day = digits::<2>(&bytes[8..])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// The common RFC 3339 shape, parsed without allocation; `None` sends the text
/// to the general parser (which also refuses what is truly malformed).
fn fast_rfc3339(bytes: &[u8]) -> Option<i64> {
    if bytes.len() < 19 || !matches!(bytes[10], b'T' | b't' | b' ') || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let days = civil_days(&bytes[..10])?;
    let hour = digits::<2>(&bytes[11..])?;
    let minute = digits::<2>(&bytes[14..])?;
    let second = digits::<2>(&bytes[17..])?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut pos = 19;
    let mut fraction_micros = 0i64;
    if bytes.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            if pos - start < 6 {
                fraction_micros = fraction_micros * 10 + i64::from(bytes[pos] - b'0');
            }
            pos += 1;
        }
        if pos == start {
            return None;
        }
        for _ in (pos - start)..6 {
            fraction_micros *= 10;
        }
    }
    let offset_seconds = match &bytes[pos..] {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits::<2>(&[*h1, *h2])?;
            let minutes = digits::<2>(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3_600 + minutes * 60;
            if *sign == b'+' { seconds } else { -seconds }
        }
        _ => return None,
    };
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_seconds;
    seconds.checked_mul(MICROS_PER_SECOND)?.checked_add(fraction_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_numbers_by_magnitude() {
        let micros = 1_685_547_000_000_000;
        assert_eq!(micros_from_epoch_int(1_685_547_000), Some(micros));
        assert_eq!(micros_from_epoch_int(1_685_547_000_000), Some(micros));
        assert_eq!(micros_from_epoch_int(1_685_547_000_000_000), Some(micros));
        assert_eq!(micros_from_epoch_int(1_685_547_000_000_000_000), Some(micros));
        assert_eq!(micros_from_epoch_int(0), Some(0));
        assert_eq!(micros_from_epoch_int(-86_400), Some(-86_400_000_000));
        assert_eq!(micros_from_epoch_float(1_685_547_000.25), Some(micros + 250_000));
        assert_eq!(micros_from_epoch_float(f64::NAN), None);
    }

    #[test]
    fn strings() {
        let micros = 1_685_547_000_000_000;
        for text in [
            "2023-05-31T15:30:00Z",
            "2023-05-31T15:30:00+00:00",
            "2023-05-31T17:30:00+02:00",
            "2023-05-31 15:30:00",
            "2023-05-31T15:30:00",
            "1685547000",
            "1685547000000",
            "Wed, 31 May 2023 15:30:00 +0000",
        ] {
            assert_eq!(micros_from_str(text), Some(micros), "{text}");
        }
        assert_eq!(micros_from_str("2023-05-31T15:30:00.123456789Z"), Some(micros + 123_456));
        assert_eq!(micros_from_str("2023-05-31T15:30:00.5-01:30"), Some(micros + 5_400_000_000 + 500_000));
        for bad in ["", "yesterday", "2023-02-30T00:00:00Z", "2023-05-31T24:00:00Z", "2023-05-31T15:30:00.Z"] {
            assert_eq!(micros_from_str(bad), None, "{bad}");
        }
    }

    #[test]
    fn fast_path_agrees_with_chrono() {
        for text in
            ["1970-01-01T00:00:00Z", "2000-02-29T23:59:59.999999Z", "1969-12-31T23:59:59Z", "2400-12-31T12:00:00-11:59"]
        {
            let chrono = chrono::DateTime::parse_from_rfc3339(text).expect("valid");
            assert_eq!(fast_rfc3339(text.as_bytes()), Some(chrono.timestamp_micros()), "{text}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(days_from_str("1970-01-01"), Some(0));
        assert_eq!(days_from_str("2023-05-31"), Some(19_508));
        assert_eq!(days_from_str("1969-12-31"), Some(-1));
        assert_eq!(days_from_str("2023-05-31T23:00:00-02:00"), Some(19_509));
        assert_eq!(days_from_str("2023-13-01"), None);
    }
}
