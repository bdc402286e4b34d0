//! Helpers shared by the codec's integration tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use chrono::Utc;
use tributary_codec::{DecodedBatch, Decoder, RecordMeta};
use tributary_source::{Source, parse_text, validate_raw_sources};

/// A validated source with these dataset fields (`name: type` pairs), timestamp `ts`,
/// and `format` given as YAML (e.g. `json`).
pub fn source(fields: &[(&str, &str)], format: &str, extra: &str) -> Source {
    let fields: String = fields.iter().map(|(n, t)| format!("        - {{name: {n}, type: \"{t}\"}}\n")).collect();
    let yaml = format!(
        "sources:\n  - name: t\n    kinesis:\n      stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/t\n      init_position: trim_horizon\n      format: {format}\n    dataset:\n      fields:\n{fields}      timestamp: ts\n{extra}"
    );
    let file = parse_text(&yaml, false).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
    validate_raw_sources(&file.sources, Utc::now()).unwrap_or_else(|e| panic!("{e:#?}\n{yaml}")).remove(0)
}

/// Metadata for the `n`th record of a test.
pub fn meta(sequence: &str) -> RecordMeta<'_> {
    RecordMeta {
        shard_id: "shardId-000000000001",
        sequence_number: sequence,
        sub_sequence: None,
        partition_key: "pk",
        arrival_time_micros: 1_700_000_000_000_000,
    }
}

/// Decodes every payload (sequence numbers "1", "2", ...) and flushes.
pub fn decode_all(decoder: &mut Decoder, payloads: &[Vec<u8>]) -> DecodedBatch {
    let sequences: Vec<String> = (1..=payloads.len()).map(|i| i.to_string()).collect();
    for (payload, sequence) in payloads.iter().zip(&sequences) {
        decoder.decode(payload, &meta(sequence)).expect("no transient error");
    }
    decoder.flush().expect("flush")
}
