//! Rejections as error-log rows, with the payload capped.

use chrono::{DateTime, Utc};
use tributary_codec::Rejection;
use tributary_store::NewErrorRow;

/// The most payload bytes kept per rejected record; the original length is kept too.
pub const PAYLOAD_CAP: usize = 64 * 1024;

/// The error-log rows of a batch's rejections.
pub fn error_rows(rejections: &[Rejection]) -> Vec<NewErrorRow> {
    rejections
        .iter()
        .map(|rejection| NewErrorRow {
            shard_id: rejection.shard_id.clone(),
            sequence_number: rejection.sequence_number.clone(),
            sub_sequence: rejection.sub_sequence,
            arrival_time: DateTime::from_timestamp_micros(rejection.arrival_time_micros)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            reason: rejection.code().as_str().to_owned(),
            field: rejection.field.to_string(),
            message: rejection.message(),
            payload: rejection.payload[..rejection.payload.len().min(PAYLOAD_CAP)].to_vec(),
            payload_length: rejection.payload.len() as u64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tributary_codec::{Decoder, RecordMeta};

    use super::*;

    #[test]
    fn payloads_are_capped_with_their_original_length() {
        let text = "sources:\n  - name: s\n    kinesis:\n      stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/s\n      init_position: trim_horizon\n      format: json\n    dataset:\n      fields:\n        - {name: id, type: int64}\n        - {name: ts, type: timestamp}\n      timestamp: ts\n";
        let file = tributary_source::parse_text(text, false).expect("parses");
        let sources = tributary_source::validate_raw_sources(&file.sources, Utc::now()).expect("valid");
        let mut decoder = Decoder::new(&sources[0], None).expect("decoder");
        let meta = RecordMeta {
            shard_id: "shard-0",
            sequence_number: "42",
            sub_sequence: Some(1),
            partition_key: "k",
            arrival_time_micros: 1_700_000_000_000_000,
        };
        let huge = format!("{{\"id\": \"{}\"}}", "x".repeat(100_000));
        assert!(!decoder.decode(huge.as_bytes(), &meta).expect("decodes"));
        let rows = error_rows(&decoder.flush().expect("flush").rejections);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.payload.len(), row.payload_length), (PAYLOAD_CAP, huge.len() as u64));
        assert_eq!(
            (row.reason.as_str(), row.field.as_str(), row.sequence_number.as_str(), row.sub_sequence),
            ("TYPE_MISMATCH", "id", "42", Some(1))
        );
        assert_eq!(row.arrival_time.timestamp(), 1_700_000_000);
    }
}
