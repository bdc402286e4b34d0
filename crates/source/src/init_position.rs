//! Where a new source starts reading its stream.
//!
//! `latest` and `trim_horizon` are Kinesis' own positions; anything else is an
//! instant, read with `AT_TIMESTAMP`. An instant may be written as a date-time
//! or as epoch **seconds**. Numbers are where users slip: a millisecond epoch
//! is a valid number but a date thousands of years ahead, so it is refused
//! with a hint rather than silently read as "the future" (which Kinesis refuses
//! anyway).

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};

use crate::time::{DATE_TIME_FORMS, parse_date_time};

/// A validated start position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitPosition {
    /// Only records put after the source was committed. The server pins it to
    /// the commit time so every worker and restart agrees on where it began.
    Latest,
    /// The oldest record still in the stream.
    TrimHorizon,
    /// The first record that arrived at or after this instant.
    AtTimestamp(DateTime<Utc>),
}

impl fmt::Display for InitPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitPosition::Latest => f.write_str("latest"),
            InitPosition::TrimHorizon => f.write_str("trim_horizon"),
            InitPosition::AtTimestamp(time) => {
                write!(f, "{}", time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }
        }
    }
}

/// A scalar as it appears in a definition file, before it is understood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// `null`, `~`, or absent.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A string.
    Text(&'a str),
}

fn accepted_forms() -> String {
    format!("expected `latest`, `trim_horizon`, {DATE_TIME_FORMS}, or epoch seconds such as `1704067200`")
}

/// Parses an `init_position`; `now` bounds it (Kinesis refuses future instants).
pub fn parse_init_position(scalar: Scalar<'_>, now: DateTime<Utc>) -> Result<InitPosition, String> {
    match scalar {
        Scalar::Null => Err(format!("`null` is not a start position; {}", accepted_forms())),
        Scalar::Bool(value) => Err(format!("`{value}` is not a start position; {}", accepted_forms())),
        Scalar::Int(seconds) => epoch_position(seconds, 0, &seconds.to_string(), now),
        Scalar::Float(value) => float_epoch_position(value, now),
        Scalar::Text(text) => text_position(text, now),
    }
}

fn text_position(text: &str, now: DateTime<Utc>) -> Result<InitPosition, String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("latest") {
        return Ok(InitPosition::Latest);
    }
    if trimmed.eq_ignore_ascii_case("trim_horizon") {
        return Ok(InitPosition::TrimHorizon);
    }
    if let Ok(seconds) = trimmed.parse::<i128>() {
        return epoch_position(seconds, 0, trimmed, now);
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
        && let Ok(value) = trimmed.parse::<f64>()
    {
        return float_epoch_position(value, now);
    }
    match parse_date_time(trimmed) {
        Some(time) => at_timestamp(time, trimmed, now),
        None if trimmed.is_empty() => Err(format!("empty start position; {}", accepted_forms())),
        None => Err(format!("`{trimmed}` is not a start position; {}", accepted_forms())),
    }
}

fn float_epoch_position(value: f64, now: DateTime<Utc>) -> Result<InitPosition, String> {
    if !value.is_finite() {
        return Err(format!("`{value}` is not a start position; {}", accepted_forms()));
    }
    let whole = value.trunc();
    // Beyond i64 seconds it is far in the future anyway; clamp for the hint.
    let seconds = whole.clamp(i64::MIN as f64, i64::MAX as f64) as i128;
    let nanos = ((value - whole) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    epoch_position(seconds, nanos, &value.to_string(), now)
}

/// 2000-01-01T00:00:00Z: a number that reads as a time after this once scaled
/// down is taken as a finer unit; Kinesis (2013) holds nothing older.
const PLAUSIBLE_EPOCH_START: i128 = 946_684_800;

fn epoch_position(seconds: i128, nanos: u32, written: &str, now: DateTime<Utc>) -> Result<InitPosition, String> {
    if seconds < 0 {
        return Err(format!("`{written}` is negative; epoch seconds start at 0 (1970-01-01T00:00:00Z)"));
    }
    let now_seconds = i128::from(now.timestamp());
    if seconds > now_seconds {
        for (unit, divisor) in [("milliseconds", 1_000), ("microseconds", 1_000_000), ("nanoseconds", 1_000_000_000)] {
            let scaled = seconds / divisor;
            if (PLAUSIBLE_EPOCH_START..=now_seconds).contains(&scaled) {
                return Err(format!(
                    "`{written}` looks like epoch {unit}; init_position takes epoch seconds (divide by {divisor})"
                ));
            }
        }
        return Err(format!("`{written}` as epoch seconds is in the future; Kinesis cannot start there"));
    }
    let time = i64::try_from(seconds)
        .ok()
        .and_then(|seconds| Utc.timestamp_opt(seconds, nanos).single())
        .ok_or_else(|| format!("`{written}` is out of range; {}", accepted_forms()))?;
    at_timestamp(time, written, now)
}

fn at_timestamp(time: DateTime<Utc>, written: &str, now: DateTime<Utc>) -> Result<InitPosition, String> {
    if time > now {
        return Err(format!(
            "`{written}` is in the future ({}); Kinesis cannot start there",
            time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        ));
    }
    Ok(InitPosition::AtTimestamp(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid")
    }

    fn at(text: &str) -> InitPosition {
        InitPosition::AtTimestamp(DateTime::parse_from_rfc3339(text).expect("literal").with_timezone(&Utc))
    }

    #[test]
    fn named_positions_ignore_case_and_surrounding_space() {
        for text in ["latest", "LATEST", " Latest\t"] {
            assert_eq!(parse_init_position(Scalar::Text(text), now()), Ok(InitPosition::Latest), "{text}");
        }
        for text in ["trim_horizon", "Trim_Horizon", "TRIM_HORIZON "] {
            assert_eq!(parse_init_position(Scalar::Text(text), now()), Ok(InitPosition::TrimHorizon), "{text}");
        }
    }

    #[test]
    fn instants() {
        let cases: [(Scalar<'_>, &str); 8] = [
            (Scalar::Text("2023-05-31 15:30:00"), "2023-05-31T15:30:00Z"),
            (Scalar::Text("2023-05-31T15:30:00.123456-08:00"), "2023-05-31T23:30:00.123456Z"),
            (Scalar::Text("2023-05-31"), "2023-05-31T00:00:00Z"),
            (Scalar::Int(1_685_547_000), "2023-05-31T15:30:00Z"),
            (Scalar::Float(1_685_547_000.25), "2023-05-31T15:30:00.25Z"),
            (Scalar::Text("1685547000"), "2023-05-31T15:30:00Z"),
            (Scalar::Text("1685547000.25"), "2023-05-31T15:30:00.25Z"),
            (Scalar::Int(0), "1970-01-01T00:00:00Z"),
        ];
        for (scalar, expected) in cases {
            assert_eq!(parse_init_position(scalar, now()), Ok(at(expected)), "{scalar:?}");
        }
    }

    #[test]
    fn milliseconds_and_finer_get_a_hint() {
        let cases = [
            (Scalar::Int(1_685_547_000_000), "milliseconds"),
            (Scalar::Text("1685547000000"), "milliseconds"),
            (Scalar::Int(1_685_547_000_000_000), "microseconds"),
            (Scalar::Int(1_685_547_000_000_000_000), "nanoseconds"),
            (Scalar::Float(1_685_547_000_000.0), "milliseconds"),
        ];
        for (scalar, unit) in cases {
            let err = parse_init_position(scalar, now()).expect_err("refused");
            assert!(err.contains(unit) && err.contains("epoch seconds"), "{scalar:?}: {err}");
        }
    }

    #[test]
    fn refusals_list_the_accepted_forms() {
        let cases = [
            Scalar::Bool(true),
            Scalar::Null,
            Scalar::Text(""),
            Scalar::Text("now"),
            Scalar::Text("today"),
            Scalar::Text("latest(2024-01-01)"),
            Scalar::Float(f64::NAN),
        ];
        for scalar in cases {
            let err = parse_init_position(scalar, now()).expect_err("refused");
            assert!(err.contains("`latest`") && err.contains("epoch seconds"), "{scalar:?}: {err}");
        }
    }

    #[test]
    fn future_and_negative_are_refused() {
        let future = parse_init_position(Scalar::Text("2027-01-01T00:00:00Z"), now()).expect_err("future");
        assert!(future.contains("future"), "{future}");
        let future_seconds = parse_init_position(Scalar::Int(1_767_225_601), now()).expect_err("future");
        assert!(future_seconds.contains("future"), "{future_seconds}");
        let negative = parse_init_position(Scalar::Int(-1), now()).expect_err("negative");
        assert!(negative.contains("negative"), "{negative}");
        let negative_text = parse_init_position(Scalar::Text("-5"), now()).expect_err("negative");
        assert!(negative_text.contains("negative"), "{negative_text}");
    }
}
