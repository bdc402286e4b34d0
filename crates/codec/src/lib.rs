//! Tributary's record codec: JSON and Avro payloads to Arrow record batches.
//!
//! A [`Decoder`] is compiled once from a validated source definition. Records
//! are pushed one at a time with their metadata ([`Decoder::decode`]); a
//! [`Decoder::flush`] returns the accepted rows as a `RecordBatch` and every
//! rejected record as a [`Rejection`] with a stable [`ReasonCode`], the field at
//! fault and its payload. A bad record never fails the batch or changes its
//! neighbours. The API is synchronous and has no AWS or async dependency, in
//! the spirit of arrow-json's `Decoder`.
//!
//! ```
//! use chrono::Utc;
//! use tributary_codec::{Decoder, RecordMeta, ReasonCode};
//! use tributary_source::{parse_text, validate_raw_sources};
//!
//! let yaml = r#"
//! sources:
//!   - name: orders
//!     kinesis:
//!       stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/orders
//!       init_position: trim_horizon
//!     dataset:
//!       fields: [{name: id, type: int64}, {name: ts, type: timestamp}]
//!       timestamp: ts
//! "#;
//! let file = parse_text(yaml, false).unwrap();
//! let source = &validate_raw_sources(&file.sources, Utc::now()).unwrap()[0];
//! let mut decoder = Decoder::new(source, None).unwrap();
//! let meta = RecordMeta::default();
//! assert!(decoder.decode(br#"{"id": 1, "ts": "2024-01-01T00:00:00Z"}"#, &meta).unwrap());
//! assert!(!decoder.decode(br#"{"id": "one", "ts": 1704067200}"#, &meta).unwrap());
//! let out = decoder.flush().unwrap();
//! assert_eq!(out.batch.num_rows(), 1);
//! assert_eq!(out.rejections[0].code(), ReasonCode::TypeMismatch);
//! assert_eq!(&*out.rejections[0].field, "id");
//! ```

mod avro;
mod cdc;
mod columns;
mod decimal;
mod decoder;
mod expr;
mod glue;
mod json;
mod json_schema;
mod protobuf;
mod rejection;
mod rules;
mod sample_hash;
mod schema_cache;
mod timestamp;

pub use avro::{DEFAULT_REGISTRY_TIMEOUT, RegistryClient, RegistryError, avro_datum_json, registry_schema_id};
pub use cdc::{KEYS_METADATA, OP_COLUMN, SEQUENCE_COLUMN, SUB_SEQUENCE_COLUMN};
pub use decoder::{
    CompileError, DecodeError, DecodedBatch, Decoder, Registries, check_registered_schema, compile_check,
};
pub use glue::{
    GLUE_COMPRESSION_NONE, GLUE_COMPRESSION_ZLIB, GLUE_HEADER_LEN, GLUE_HEADER_VERSION, GlueSchemaSource,
    GlueSchemaVersion, MAX_INFLATED_BYTES, glue_frame, glue_unframed, parse_uuid, uuid_text,
};
pub use protobuf::{confluent_message_path, glue_message_index};
pub use rejection::{Found, Reason, ReasonCode, RecordMeta, Rejection};
pub use rules::{Applied, OutcomeCounts, RowOutcome, SourceRules};
