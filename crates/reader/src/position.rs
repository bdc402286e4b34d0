//! Where a shard has been read up to: sequence numbers and checkpoint positions.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::compact::CompactStr;

/// A Kinesis sequence number: up to 128 bits written in decimal.
///
/// They are compared as numbers (by digit count, then digit by digit), which
/// is how Kinesis orders records within a shard.
///
/// Held inline up to 62 digits (Kinesis writes 56): one per record, no allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber(CompactStr<62>);

/// A sequence number that is not a run of decimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Kinesis sequence number: {0:?}")]
pub struct InvalidSequenceNumber(pub String);

impl SequenceNumber {
    /// Checks that `text` is a sequence number (decimal digits, no sign).
    pub fn new(text: &str) -> Result<SequenceNumber, InvalidSequenceNumber> {
        SequenceNumber::from_digits(text.as_bytes())
    }

    /// [`Self::new`] for bytes as found in an answer: digits are ASCII, so no
    /// separate UTF-8 check is needed.
    pub(crate) fn from_digits(digits: &[u8]) -> Result<SequenceNumber, InvalidSequenceNumber> {
        let invalid = || InvalidSequenceNumber(String::from_utf8_lossy(digits).chars().take(64).collect());
        if digits.is_empty() || digits.len() > 128 {
            return Err(invalid());
        }
        CompactStr::from_digits(digits).map(SequenceNumber).ok_or_else(invalid)
    }

    /// The digits as Kinesis wrote them.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The digits without leading zeros (`0` for zero), as bytes: compared once per record.
    fn significant_digits(&self) -> &[u8] {
        let digits = self.0.as_bytes();
        let first = digits.iter().position(|&digit| digit != b'0').unwrap_or(digits.len());
        if first == digits.len() { b"0" } else { &digits[first..] }
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant_digits(), other.significant_digits());
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SequenceNumber({})", self.as_str())
    }
}

/// The last record a shard consumer has passed on (delivered, or dropped as
/// a KPL sub-record outside the shard's hash range).
///
/// A KPL aggregated record can be split across batches; while it is,
/// `record_complete` is false and the shard resumes *after* the record before
/// it (`previous_sequence_number`) and skips the sub-records already passed.
/// Kinesis never sees `AT_SEQUENCE_NUMBER` from us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPosition {
    /// The record's sequence number.
    pub sequence_number: SequenceNumber,
    /// Its KPL sub-sequence number, when it is a sub-record.
    pub sub_sequence: Option<u64>,
    /// False while sub-records of this aggregated record remain.
    pub record_complete: bool,
    /// The last complete record before this one, if the shard read one.
    pub previous_sequence_number: Option<SequenceNumber>,
}

impl RecordPosition {
    /// Whether the record `(sequence_number, sub_sequence)` is at or before this position.
    pub fn covers(&self, sequence_number: &SequenceNumber, sub_sequence: Option<u64>) -> bool {
        match sequence_number.cmp(&self.sequence_number) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal if self.record_complete => true,
            Ordering::Equal => match (sub_sequence, self.sub_sequence) {
                (Some(sub), Some(passed)) => sub <= passed,
                // A record read once as aggregated and once as plain cannot happen; be safe.
                _ => true,
            },
        }
    }

    /// The complete record to resume after, if any.
    pub fn resume_after(&self) -> Option<&SequenceNumber> {
        if self.record_complete { Some(&self.sequence_number) } else { self.previous_sequence_number.as_ref() }
    }
}

/// A shard's checkpoint: how far it has been read and whether it is done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardCheckpoint {
    /// The last record passed on; `None` before the first.
    pub position: Option<RecordPosition>,
    /// The shard is closed and every record in it has been passed on.
    pub finished: bool,
}

impl ShardCheckpoint {
    /// The checkpoint of a shard read up to and including the whole record `sequence_number`.
    pub fn after(sequence_number: SequenceNumber) -> ShardCheckpoint {
        ShardCheckpoint {
            position: Some(RecordPosition {
                sequence_number,
                sub_sequence: None,
                record_complete: true,
                previous_sequence_number: None,
            }),
            finished: false,
        }
    }
}

/// Where a shard with no checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record in the shard.
    TrimHorizon,
    /// The first record that arrived at or after this instant. A source
    /// committed with `latest` is pinned to its commit time this way, so
    /// restarts and new workers agree on where it began.
    AtTimestamp(DateTime<Utc>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(text: &str) -> SequenceNumber {
        SequenceNumber::new(text).expect("digits")
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(seq("9") < seq("10"));
        assert!(
            seq("49590338271490256608559692538361571095921575989136588898")
                > seq("4959033827149025660855969253836157109592157598913658889")
        );
        assert_eq!(seq("007").cmp(&seq("7")), Ordering::Equal);
        assert!(SequenceNumber::new("12a").is_err());
        assert!(SequenceNumber::new("").is_err());
        assert!(SequenceNumber::new("-1").is_err());
    }

    #[test]
    fn only_digits_make_a_sequence_number() {
        for byte in 0..=u8::MAX {
            let mut digits = *b"4959033827149025660855969253836157109592157598913658889";
            for at in [0, 7, 8, 31, digits.len() - 1] {
                let saved = digits[at];
                digits[at] = byte;
                assert_eq!(SequenceNumber::from_digits(&digits).is_ok(), byte.is_ascii_digit(), "{byte:#x} at {at}");
                digits[at] = saved;
            }
        }
        assert!(SequenceNumber::from_digits(&[b'1'; 129]).is_err());
        assert!(SequenceNumber::from_digits(&[b'1'; 128]).is_ok());
    }

    #[test]
    fn a_position_covers_what_was_passed_on() {
        let partial = RecordPosition {
            sequence_number: seq("200"),
            sub_sequence: Some(3),
            record_complete: false,
            previous_sequence_number: Some(seq("100")),
        };
        assert!(partial.covers(&seq("150"), None));
        assert!(partial.covers(&seq("200"), Some(3)));
        assert!(!partial.covers(&seq("200"), Some(4)));
        assert!(!partial.covers(&seq("201"), None));
        assert_eq!(partial.resume_after(), Some(&seq("100")));

        let complete = RecordPosition { record_complete: true, ..partial };
        assert!(complete.covers(&seq("200"), Some(9)));
        assert_eq!(complete.resume_after(), Some(&seq("200")));
    }
}
