//! Reading a `GetRecords` answer body in one borrowed pass.
//!
//! An answer is mostly base64 payloads with a sequence number, a partition key
//! and a timestamp each. A general JSON deserializer spends more time on that
//! shape (field-name matching through visitors, per-string UTF-8 checks of the
//! payloads, a second copy of every payload) than the rest of the reader does
//! per record, so this scanner reads exactly that shape: strings are found with
//! `memchr` and borrowed unless they hold escapes, payloads go straight from the
//! body to base64, unknown fields are skipped, and `ChildShards` (once per shard
//! lifetime) is handed to serde_json. Anything that is not JSON is reported with
//! its byte offset; tests check it against serde_json on generated answers.

use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::ReaderError;
use crate::batch::PartitionKey;
use crate::batch::Record;
use crate::cursor::Received;
use crate::fault::Fault;
use crate::kpl::{self, HashKeyRange};
use crate::lineage::ShardInfo;
use crate::position::SequenceNumber;

/// A `GetRecords` answer.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub(crate) received: Received,
    /// `None`: the shard is closed and fully read.
    pub(crate) next_shard_iterator: Option<String>,
    pub(crate) millis_behind_latest: Option<i64>,
    pub(crate) children: Vec<ShardInfo>,
}

/// Parses a `GetRecords` answer body.
///
/// A body that is not JSON (cut short or garbled in transit) is a passing
/// fault: the call is made again. A record that cannot be one (a sequence
/// number that is not a number, a payload that is not base64) is fatal.
pub(crate) fn parse_answer(body: &[u8], shard_id: &str) -> Result<Answer, Fault> {
    let wire = Scanner::new(body)
        .answer()
        .map_err(|garbled| Fault::Transient(format!("GetRecords: unreadable answer: {garbled}")))?;
    let invalid = |detail: String| Fault::Fatal(ReaderError::InvalidResponse { shard_id: shard_id.to_owned(), detail });
    // Every payload decoded into one buffer, sized exactly: one allocation per answer.
    let decoded_len = wire.records.iter().map(|record| record.data.len() / 4 * 3 + 3).sum();
    let mut payloads = Vec::with_capacity(decoded_len);
    let mut ends = Vec::with_capacity(wire.records.len());
    let mut aggregated = false;
    for record in &wire.records {
        let start = payloads.len();
        base64_simd::STANDARD.decode_append(&record.data, &mut payloads).map_err(|e| {
            let sequence_number = String::from_utf8_lossy(&record.sequence_number);
            invalid(format!("record {sequence_number}: Data is not base64: {e}"))
        })?;
        aggregated |= payloads[start..].starts_with(&kpl::MAGIC);
        ends.push(payloads.len());
    }
    let payloads = Bytes::from(payloads);
    // Kinesis always stamps arrival; a record without one counts as arriving now.
    let read_at = Utc::now();
    let mut start = 0;
    let mut records = Vec::with_capacity(wire.records.len());
    for (record, end) in wire.records.iter().zip(ends) {
        records.push(Record {
            sequence_number: SequenceNumber::from_digits(&record.sequence_number)
                .map_err(|e| invalid(e.to_string()))?,
            sub_sequence: None,
            partition_key: PartitionKey::from(record.partition_key.as_ref()),
            arrival_time: record
                .arrival
                .and_then(|seconds| DateTime::<Utc>::from_timestamp_micros((seconds * 1e6).round() as i64))
                .unwrap_or(read_at),
            data: payloads.slice(start..end),
        });
        start = end;
    }
    let children = match wire.child_shards {
        None => Vec::new(),
        Some(raw) => serde_json::from_slice::<Option<Vec<WireChild<'_>>>>(raw)
            .map_err(|error| Fault::Transient(format!("GetRecords: unreadable ChildShards: {error}")))?
            .unwrap_or_default()
            .into_iter()
            .map(|child| ShardInfo {
                hash_range: child
                    .hash_range
                    .and_then(|range| HashKeyRange::parse(&range.starting, &range.ending))
                    .unwrap_or(HashKeyRange::ALL),
                shard_id: child.shard_id,
                parents: child.parents,
            })
            .collect(),
    };
    Ok(Answer {
        received: Received { records, aggregated },
        next_shard_iterator: wire.next_shard_iterator.map(Cow::into_owned),
        millis_behind_latest: wire.millis_behind_latest,
        children,
    })
}

#[derive(Deserialize)]
struct WireHashKeyRange<'a> {
    #[serde(rename = "StartingHashKey", borrow)]
    starting: Cow<'a, str>,
    #[serde(rename = "EndingHashKey", borrow)]
    ending: Cow<'a, str>,
}

#[derive(Deserialize)]
struct WireChild<'a> {
    #[serde(rename = "ShardId")]
    shard_id: String,
    #[serde(rename = "ParentShards", default)]
    parents: Vec<String>,
    #[serde(rename = "HashKeyRange", borrow, default)]
    hash_range: Option<WireHashKeyRange<'a>>,
}

/// The answer as found in the body, borrowing from it.
#[derive(Debug, Default)]
struct WireAnswer<'a> {
    records: Vec<WireRecord<'a>>,
    next_shard_iterator: Option<Cow<'a, str>>,
    millis_behind_latest: Option<i64>,
    /// The raw `ChildShards` value, when present.
    child_shards: Option<&'a [u8]>,
}

#[derive(Debug)]
struct WireRecord<'a> {
    /// Checked as digits (so as UTF-8) when it becomes a [`SequenceNumber`].
    sequence_number: Cow<'a, [u8]>,
    partition_key: Cow<'a, str>,
    /// Base64, still encoded.
    data: Cow<'a, [u8]>,
    arrival: Option<f64>,
}

/// Why a body is not a readable answer, and where.
#[derive(Debug)]
struct Garbled {
    at: usize,
    what: &'static str,
}

impl std::fmt::Display for Garbled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// The first `"` or `\\` in `bytes`. Keys, sequence numbers and partition keys
/// end within a few words, where a word-at-a-time look beats setting up
/// `memchr2`; payloads run on into it.
#[inline]
fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Flags zero bytes; the lowest flag is always a true one, which is all a search needs.
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut at = 0;
    for chunk in bytes.chunks_exact(8).take(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let found = zero_bytes(word ^ (ONES * u64::from(b'"'))) | zero_bytes(word ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr::memchr2(b'"', b'\\', &bytes[at..]).map(|stop| at + stop)
}

/// Nesting allowed inside skipped values (Kinesis sends two levels).
const MAX_DEPTH: usize = 64;

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn new(bytes: &'a [u8]) -> Scanner<'a> {
        Scanner { bytes, at: 0 }
    }

    fn garbled<T>(&self, what: &'static str) -> Result<T, Garbled> {
        Err(Garbled { at: self.at, what })
    }

    fn answer(mut self) -> Result<WireAnswer<'a>, Garbled> {
        let mut answer = WireAnswer::default();
        self.object(|scanner, key| {
            match key {
                b"Records" => answer.records = scanner.records()?,
                b"NextShardIterator" => answer.next_shard_iterator = scanner.nullable_string()?,
                b"MillisBehindLatest" => answer.millis_behind_latest = scanner.nullable_i64()?,
                b"ChildShards" => {
                    let start = scanner.at;
                    scanner.skip_value(0)?;
                    answer.child_shards = Some(&scanner.bytes[start..scanner.at]);
                }
                _ => scanner.skip_value(0)?,
            }
            Ok(())
        })?;
        self.whitespace();
        if self.at != self.bytes.len() {
            return self.garbled("trailing characters");
        }
        Ok(answer)
    }

    fn records(&mut self) -> Result<Vec<WireRecord<'a>>, Garbled> {
        // Sized once from the body (a record takes a few hundred bytes; an answer holds at most 10,000).
        let mut records = Vec::with_capacity((self.bytes.len() / 256).min(10_000));
        if self.literal(b"null") {
            return Ok(records);
        }
        self.array(|scanner| {
            let (mut sequence_number, mut partition_key, mut data, mut arrival) = (None, None, None, None);
            scanner.object(|scanner, key| {
                match key {
                    b"SequenceNumber" => sequence_number = Some(scanner.string_bytes()?),
                    b"PartitionKey" => partition_key = Some(scanner.string()?),
                    b"Data" => data = Some(scanner.string_bytes()?),
                    b"ApproximateArrivalTimestamp" => arrival = scanner.nullable_f64()?,
                    _ => scanner.skip_value(0)?,
                }
                Ok(())
            })?;
            match (sequence_number, partition_key, data) {
                (Some(sequence_number), Some(partition_key), Some(data)) => {
                    records.push(WireRecord { sequence_number, partition_key, data, arrival });
                    Ok(())
                }
                _ => scanner.garbled("a record without SequenceNumber, PartitionKey or Data"),
            }
        })?;
        Ok(records)
    }

    /// `{ "key": value, ... }`; `field` reads each value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &[u8]) -> Result<(), Garbled>) -> Result<(), Garbled> {
        self.delimited(b'{', b'}', |scanner| {
            let key = scanner.string_bytes()?;
            scanner.whitespace();
            scanner.expect(b':')?;
            scanner.whitespace();
            field(scanner, &key)
        })
    }

    /// `[ item, ... ]`; `item` reads each one.
    fn array(&mut self, item: impl FnMut(&mut Self) -> Result<(), Garbled>) -> Result<(), Garbled> {
        self.delimited(b'[', b']', item)
    }

    /// `open` entries separated by commas `close`, each read by `entry`.
    fn delimited(
        &mut self,
        open: u8,
        close: u8,
        mut entry: impl FnMut(&mut Self) -> Result<(), Garbled>,
    ) -> Result<(), Garbled> {
        self.whitespace();
        self.expect(open)?;
        self.whitespace();
        if self.next_is(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.whitespace();
            entry(self)?;
            self.whitespace();
            match self.bytes.get(self.at) {
                Some(b',') => self.at += 1,
                Some(&byte) if byte == close => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return self.garbled(if close == b'}' { "expected , or }" } else { "expected , or ]" }),
            }
        }
    }

    fn skip_value(&mut self, depth: usize) -> Result<(), Garbled> {
        if depth > MAX_DEPTH {
            return self.garbled("nested too deeply");
        }
        self.whitespace();
        match self.bytes.get(self.at) {
            Some(b'"') => self.string_bytes().map(drop),
            Some(b'{') => self.object(|scanner, _| scanner.skip_value(depth + 1)),
            Some(b'[') => self.array(|scanner| scanner.skip_value(depth + 1)),
            Some(b't') if self.literal(b"true") => Ok(()),
            Some(b'f') if self.literal(b"false") => Ok(()),
            Some(b'n') if self.literal(b"null") => Ok(()),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            _ => self.garbled("expected a value"),
        }
    }

    fn nullable_string(&mut self) -> Result<Option<Cow<'a, str>>, Garbled> {
        if self.literal(b"null") { Ok(None) } else { self.string().map(Some) }
    }

    fn nullable_i64(&mut self) -> Result<Option<i64>, Garbled> {
        self.nullable_number("expected an integer")
    }

    fn nullable_f64(&mut self) -> Result<Option<f64>, Garbled> {
        self.nullable_number("expected a number")
    }

    /// `null`, or a number that parses as `T` (`what` says which, when it does not).
    fn nullable_number<T: std::str::FromStr>(&mut self, what: &'static str) -> Result<Option<T>, Garbled> {
        if self.literal(b"null") {
            return Ok(None);
        }
        let at = self.at;
        let text = self.number()?;
        text.parse().map(Some).map_err(|_| Garbled { at, what })
    }

    /// A JSON number's text (grammar checked).
    fn number(&mut self) -> Result<&'a str, Garbled> {
        let start = self.at;
        let digits = |scanner: &mut Self| {
            let from = scanner.at;
            while scanner.bytes.get(scanner.at).is_some_and(u8::is_ascii_digit) {
                scanner.at += 1;
            }
            scanner.at > from
        };
        if self.next_is(b'-') {
            self.at += 1;
        }
        if self.next_is(b'0') {
            self.at += 1;
        } else if !digits(self) {
            return self.garbled("expected a number");
        }
        if self.next_is(b'.') {
            self.at += 1;
            if !digits(self) {
                return self.garbled("expected digits after .");
            }
        }
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.bytes.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !digits(self) {
                return self.garbled("expected an exponent");
            }
        }
        // Only ASCII digits and signs were taken.
        std::str::from_utf8(&self.bytes[start..self.at]).or_else(|_| self.garbled("expected a number"))
    }

    fn string(&mut self) -> Result<Cow<'a, str>, Garbled> {
        let at = self.at;
        let content = self.string_bytes()?;
        // The raw text, escapes still escaped: an escaped newline is fine, a raw one is not.
        self.no_control_characters(&self.bytes[at..self.at], at)?;
        match content {
            Cow::Borrowed(bytes) => std::str::from_utf8(bytes).map(Cow::Borrowed),
            Cow::Owned(bytes) => String::from_utf8(bytes).map(Cow::Owned).map_err(|error| error.utf8_error()),
        }
        .map_err(|_| Garbled { at, what: "a string that is not UTF-8" })
    }

    /// A string's content, unescaped; borrowed when it holds no escape.
    ///
    /// Control characters are not looked for here: payloads (most of the
    /// bytes) are checked by base64 instead, text by [`Self::string`].
    fn string_bytes(&mut self) -> Result<Cow<'a, [u8]>, Garbled> {
        self.expect(b'"')?;
        let start = self.at;
        let bytes = self.bytes;
        let Some(stop) = quote_or_backslash(&bytes[start..]) else {
            return self.garbled("an unterminated string");
        };
        self.at = start + stop;
        if bytes[self.at] == b'"' {
            self.at += 1;
            return Ok(Cow::Borrowed(&bytes[start..self.at - 1]));
        }
        // Escapes: unescape into a copy from here on.
        let mut owned = bytes[start..self.at].to_vec();
        loop {
            match bytes.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Cow::Owned(owned));
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape(&mut owned)?;
                }
                Some(&byte) => {
                    owned.push(byte);
                    self.at += 1;
                }
                None => return self.garbled("an unterminated string"),
            }
        }
    }

    fn no_control_characters(&self, content: &[u8], at: usize) -> Result<(), Garbled> {
        if content.iter().any(|&byte| byte < 0x20) {
            return Err(Garbled { at, what: "a control character in a string" });
        }
        Ok(())
    }

    /// One escape after its backslash, appended as UTF-8.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), Garbled> {
        let Some(&kind) = self.bytes.get(self.at) else {
            return self.garbled("an unterminated string");
        };
        self.at += 1;
        let byte = match kind {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let character = self.unicode_escape()?;
                let mut buffer = [0u8; 4];
                out.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
                return Ok(());
            }
            _ => return self.garbled("an unknown escape"),
        };
        out.push(byte);
        Ok(())
    }

    /// `XXXX` after `\u`, with a second `\uXXXX` for a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, Garbled> {
        let high = self.hex4()?;
        if !(0xD800..0xDC00).contains(&high) {
            return char::from_u32(high).map_or_else(|| self.garbled("a lone surrogate"), Ok);
        }
        if !self.bytes[self.at..].starts_with(b"\\u") {
            return self.garbled("a lone surrogate");
        }
        self.at += 2;
        let low = self.hex4()?;
        if !(0xDC00..0xE000).contains(&low) {
            return self.garbled("a lone surrogate");
        }
        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
            .map_or_else(|| self.garbled("a lone surrogate"), Ok)
    }

    fn hex4(&mut self) -> Result<u32, Garbled> {
        let Some(digits) = self.bytes.get(self.at..self.at + 4) else {
            return self.garbled("a short \\u escape");
        };
        let mut value = 0;
        for &digit in digits {
            let Some(nibble) = char::from(digit).to_digit(16) else {
                return self.garbled("a \\u escape that is not hexadecimal");
            };
            value = value * 16 + nibble;
        }
        self.at += 4;
        Ok(value)
    }

    fn whitespace(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn next_is(&self, byte: u8) -> bool {
        self.bytes.get(self.at) == Some(&byte)
    }

    fn expect(&mut self, byte: u8) -> Result<(), Garbled> {
        if self.next_is(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Garbled { at: self.at, what: expected(byte) })
        }
    }

    /// Takes `word` when it comes next.
    fn literal(&mut self, word: &[u8]) -> bool {
        let found = self.bytes[self.at..].starts_with(word);
        if found {
            self.at += word.len();
        }
        found
    }
}

fn expected(byte: u8) -> &'static str {
    match byte {
        b'{' => "expected {",
        b'[' => "expected [",
        b'"' => "expected a string",
        b':' => "expected :",
        _ => "unexpected character",
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn answers_are_parsed_in_one_pass() {
        let body = br#"{"MillisBehindLatest":0,"NextShardIterator":"AAA=","Records":[
            {"SequenceNumber":"4959","ApproximateArrivalTimestamp":1.717243200123E9,"Data":"eyJpZCI6MX0=","PartitionKey":"k\"1"},
            {"SequenceNumber":"4960","Data":"","PartitionKey":"k2","EncryptionType":"NONE"}],
            "ChildShards":[{"ShardId":"shardId-1","ParentShards":["shardId-0"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"}}]}"#;
        let answer = parse_answer(body, "shardId-0").expect("parses");
        let records = &answer.received.records;
        assert_eq!(records.len(), 2);
        assert_eq!(
            (records[0].sequence_number.as_str(), &*records[0].partition_key, &records[0].data[..]),
            ("4959", "k\"1", &b"{\"id\":1}"[..])
        );
        assert_eq!(records[0].arrival_time.timestamp_micros(), 1_717_243_200_123_000);
        assert!(records[1].data.is_empty());
        assert_eq!(answer.next_shard_iterator.as_deref(), Some("AAA="));
        assert_eq!(answer.millis_behind_latest, Some(0));
        assert_eq!(answer.children.len(), 1);
        assert_eq!(answer.children[0].shard_id, "shardId-1");
        assert_eq!(answer.children[0].parents, ["shardId-0"]);
        assert_eq!(answer.children[0].hash_range, HashKeyRange::parse("0", "9").expect("a range"));
    }

    #[test]
    fn the_word_search_finds_what_memchr_finds() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 90) as usize;
            // Mostly text, a few quotes, backslashes and bytes one off from them.
            let bytes: Vec<u8> = (0..len)
                .map(|i| match (state.rotate_left(i as u32 * 7) % 61) as u8 {
                    0 => b'"',
                    1 => b'\\',
                    2 => b'"' + 1,
                    3 => b'\\' - 1,
                    4 => 0x80 | b'"',
                    n => b'a' + n % 26,
                })
                .collect();
            assert_eq!(quote_or_backslash(&bytes), memchr::memchr2(b'"', b'\\', &bytes), "{bytes:?}");
        }
    }

    #[test]
    fn a_closed_shard_has_no_next_iterator() {
        let answer =
            parse_answer(br#"{"Records":null,"MillisBehindLatest":0,"ChildShards":null}"#, "s").expect("parses");
        assert!(answer.next_shard_iterator.is_none() && answer.received.records.is_empty());
    }

    #[test]
    fn garbled_answers_are_transient_and_impossible_records_fatal() {
        assert!(matches!(parse_answer(b"{\"Records\": [", "s"), Err(Fault::Transient(_))));
        let bad_sequence = br#"{"Records": [{"SequenceNumber": "x", "Data": "", "PartitionKey": "k"}]}"#;
        assert!(matches!(parse_answer(bad_sequence, "s"), Err(Fault::Fatal(ReaderError::InvalidResponse { .. }))));
        let bad_base64 = br#"{"Records": [{"SequenceNumber": "1", "Data": "!!", "PartitionKey": "k"}]}"#;
        assert!(matches!(parse_answer(bad_base64, "s"), Err(Fault::Fatal(ReaderError::InvalidResponse { .. }))));
    }

    #[test]
    fn escapes_whitespace_unknown_fields_and_nulls_are_read() {
        let body = br#" { "Records" : [ { "Data" : "ab\/d" , "Extra" : {"a": [1, -2.5e3, true, false, null, "x\"]"]},
            "PartitionKey" : "caf\u00e9 \ud83e\udd80\n", "SequenceNumber" : "007", "ApproximateArrivalTimestamp" : null } ] ,
            "NextShardIterator" : null , "MillisBehindLatest" : null , "ChildShards" : null } "#;
        let before = Utc::now();
        let answer = parse_answer(body, "s").expect("parses");
        assert_eq!(answer.received.records.len(), 1);
        let record = &answer.received.records[0];
        assert_eq!(&*record.partition_key, "café 🦀\n");
        assert_eq!(record.sequence_number.as_str(), "007");
        assert_eq!(&record.data[..], base64_simd::STANDARD.decode_to_vec("ab/d").expect("base64"));
        assert!(record.arrival_time >= before && record.arrival_time <= Utc::now(), "no arrival counts as now");
        assert!(answer.next_shard_iterator.is_none() && answer.millis_behind_latest.is_none());
        assert!(answer.children.is_empty());
    }

    #[test]
    fn answers_holding_a_payload_that_starts_like_a_kpl_aggregate_are_marked_where_decoded() {
        let aggregate_like = base64_simd::STANDARD.encode_to_string([&kpl::MAGIC[..], b"rest"].concat());
        let body = format!(
            r#"{{"Records":[{{"SequenceNumber":"1","Data":"{aggregate_like}","PartitionKey":"k"}},{{"SequenceNumber":"2","Data":"eyJpZCI6MX0=","PartitionKey":"k"}}]}}"#
        );
        assert!(parse_answer(body.as_bytes(), "s").expect("parses").received.aggregated);
        let plain = r#"{"Records":[{"SequenceNumber":"2","Data":"eyJpZCI6MX0=","PartitionKey":"k"}]}"#;
        assert!(!parse_answer(plain.as_bytes(), "s").expect("parses").received.aggregated);
    }

    #[test]
    fn every_cut_of_an_answer_is_a_passing_fault() {
        let body = br#"{"MillisBehindLatest":12,"NextShardIterator":"AAA=","Records":[{"SequenceNumber":"4959","ApproximateArrivalTimestamp":1.5E9,"Data":"eyJpZCI6MX0=","PartitionKey":"k\u00e9"}],"ChildShards":[{"ShardId":"shardId-1","ParentShards":["shardId-0"]}]}"#;
        assert!(parse_answer(body, "s").is_ok());
        for cut in 0..body.len() {
            match parse_answer(&body[..cut], "s") {
                Err(Fault::Transient(_)) => {}
                other => panic!("a body cut at {cut} gave {other:?}"),
            }
        }
    }

    #[test]
    fn not_json_is_a_passing_fault() {
        for body in [
            &b"<html>"[..],
            b"{\"Records\":[]} x",
            b"{\"Records\":[{\"SequenceNumber\":\"1\",\"Data\":\"\"}]}",
            b"{\"Records\":[],}",
            b"{\"MillisBehindLatest\":1.5}",
            b"{\"MillisBehindLatest\":01}",
            b"{\"NextShardIterator\":\"a\x01b\"}",
            b"{\"NextShardIterator\":\"\\ud800\"}",
            b"{\"NextShardIterator\":\"\\q\"}",
            b"{\"NextShardIterator\":\"\xff\"}",
        ] {
            assert!(
                matches!(parse_answer(body, "s"), Err(Fault::Transient(_))),
                "{:?} is not an answer",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// An answer written the way any JSON writer might: keys in any order,
    /// optional fields, unknown fields, spaces, `\/` for `/`.
    #[derive(Debug, Clone)]
    struct Generated {
        records: Vec<(String, String, Vec<u8>, Option<f64>)>,
        next_shard_iterator: Option<String>,
        millis_behind_latest: Option<i64>,
        spaced: bool,
        escape_slashes: bool,
        reversed: bool,
    }

    fn generated() -> impl Strategy<Value = Generated> {
        let record = (
            "[1-9][0-9]{0,80}",
            any::<String>().prop_filter("partition keys are not empty", |key| !key.is_empty()),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::option::of(1.0e9..2.0e9f64),
        );
        (
            proptest::collection::vec(record, 0..6),
            proptest::option::of(any::<String>()),
            proptest::option::of(0..i64::MAX),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(records, next_shard_iterator, millis_behind_latest, spaced, escape_slashes, reversed)| Generated {
                    records,
                    next_shard_iterator,
                    millis_behind_latest,
                    spaced,
                    escape_slashes,
                    reversed,
                },
            )
    }

    fn write(generated: &Generated) -> String {
        let space = if generated.spaced { " \n\t" } else { "" };
        let object = |mut fields: Vec<(&str, String)>| {
            if generated.reversed {
                fields.reverse();
            }
            let fields: Vec<String> = fields
                .into_iter()
                .map(|(key, value)| format!("{space}\"{key}\"{space}:{space}{value}{space}"))
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        let json = |value: &dyn erased::Json| value.json();
        let records: Vec<String> = generated
            .records
            .iter()
            .map(|(sequence_number, partition_key, data, arrival)| {
                let mut data = json(&base64_simd::STANDARD.encode_to_string(data));
                if generated.escape_slashes {
                    data = data.replace('/', "\\/");
                }
                let mut fields = vec![
                    ("SequenceNumber", json(sequence_number)),
                    ("Data", data),
                    ("PartitionKey", json(partition_key)),
                    ("EncryptionType", json(&"NONE".to_owned())),
                ];
                if let Some(arrival) = arrival {
                    fields.push(("ApproximateArrivalTimestamp", format!("{arrival:e}")));
                }
                object(fields)
            })
            .collect();
        let mut fields = vec![("Records", format!("[{}]", records.join(",")))];
        fields.push((
            "NextShardIterator",
            generated.next_shard_iterator.as_ref().map_or_else(|| "null".to_owned(), |iterator| json(iterator)),
        ));
        if let Some(millis) = generated.millis_behind_latest {
            fields.push(("MillisBehindLatest", millis.to_string()));
        }
        fields.push(("Unknown", r#"{"nested": [{"deeper": [1, 2.5, "\"]"]}], "flag": false}"#.to_owned()));
        object(fields)
    }

    mod erased {
        /// serde_json's writing of a value, for the generator.
        pub(super) trait Json {
            fn json(&self) -> String;
        }
        impl Json for String {
            fn json(&self) -> String {
                serde_json::to_string(self).unwrap_or_default()
            }
        }
    }

    proptest! {
        #[test]
        fn generated_answers_read_back_as_written(generated in generated()) {
            let body = write(&generated);
            // The body is valid JSON by serde_json's judgement too.
            prop_assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
            let answer = parse_answer(body.as_bytes(), "s").map_err(|fault| TestCaseError::fail(format!("{fault:?} on {body}")))?;
            prop_assert_eq!(answer.received.records.len(), generated.records.len());
            for (record, (sequence_number, partition_key, data, arrival)) in answer.received.records.iter().zip(&generated.records) {
                prop_assert_eq!(record.sequence_number.as_str(), sequence_number.as_str());
                prop_assert_eq!(&*record.partition_key, partition_key.as_str());
                prop_assert_eq!(&record.data[..], &data[..]);
                if let Some(seconds) = arrival {
                    prop_assert_eq!(record.arrival_time.timestamp_micros(), (seconds * 1e6).round() as i64);
                }
            }
            prop_assert_eq!(answer.next_shard_iterator, generated.next_shard_iterator);
            prop_assert_eq!(answer.millis_behind_latest, generated.millis_behind_latest);
        }

        #[test]
        fn mangled_answers_never_panic(generated in generated(), cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
            let mut body = write(&generated).into_bytes();
            for (at, byte) in cuts {
                let at = at.index(body.len());
                body[at] = byte;
            }
            let _ = parse_answer(&body, "s");
        }
    }
}
