//! The schema every fuzz target decodes into: every type, nested.

use tributary_codec::{Decoder, RecordMeta};

pub const FIELDS: &str = r#"
      fields:
        - {name: id, type: int64}
        - {name: small, type: "optional<int32>"}
        - {name: amount, type: "optional<float64>"}
        - {name: f32, type: "optional<float32>"}
        - {name: ts, type: timestamp}
        - {name: day, type: "optional<date>"}
        - {name: price, type: "optional<decimal(10, 2)>"}
        - {name: name, type: "optional<string>"}
        - {name: blob, type: "optional<bytes>"}
        - {name: flag, type: "optional<bool>"}
        - {name: tags, type: "optional<list<string>>"}
        - {name: attrs, type: "optional<map<string, list<int64>>>"}
        - {name: customer, type: "optional<struct<id: int64, email: optional<string>, tags: list<optional<string>>>>"}
      timestamp: ts
"#;

#[allow(dead_code)]
pub fn decoder(format: &str) -> Decoder {
    Decoder::new(&source(format, "", ""), None).expect("compiles")
}

/// The fuzz source: `dataset` lines go after the fields, `extra` after the dataset.
#[allow(dead_code)]
pub fn source(format: &str, dataset: &str, extra: &str) -> tributary_source::Source {
    let yaml = format!(
        "sources:\n  - name: fuzz\n    kinesis:\n      stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/f\n      init_position: trim_horizon\n      format: {format}\n      include_metadata: true\n    dataset:{FIELDS}{dataset}{extra}"
    );
    let file = tributary_source::parse_text(&yaml, false).expect("definition parses");
    tributary_source::validate_raw_sources(&file.sources, chrono::Utc::now()).expect("valid").remove(0)
}

/// Decodes `data` between two flushes and checks the batch accounts for it exactly.
pub fn check(decoder: &mut Decoder, data: &[u8]) {
    let meta = RecordMeta { shard_id: "s", sequence_number: "1", ..RecordMeta::default() };
    let accepted = decoder.decode(data, &meta).expect("no transient error without a registry");
    let out = decoder.flush().expect("flush never fails");
    assert_eq!(out.batch.num_rows(), usize::from(accepted));
    assert_eq!(out.rejections.len(), usize::from(!accepted));
    if let Some(rejection) = out.rejections.first() {
        assert_eq!(rejection.payload, data);
        assert!(!rejection.message().is_empty());
    }
}
