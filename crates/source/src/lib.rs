//! Tributary source definitions: what a user commits, and the checks a commit
//! must pass before a worker ever reads a record.
//!
//! A definition arrives as a file ([`load_file`]: YAML or JSON with friendly
//! scalars) or as an API body ([`tributary_proto::v1::CommitRequest`]). Both
//! become a validated [`Source`] through the same static checks
//! ([`validate_commit`]), which collect every problem as a [`ValidationError`]
//! with a stable [`ErrorCode`] and a field path. With the `live` feature (on by
//! default), `live::check_source` then proves, against AWS, that the stream can
//! really be read.
//!
//! ```
//! use chrono::Utc;
//! use tributary_source::{parse_text, validate_raw_sources, ErrorCode};
//!
//! let yaml = r#"
//! sources:
//!   - name: orders
//!     kinesis:
//!       stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/orders
//!       init_position: Trim_Horizon
//!     dataset:
//!       fields: [{name: id, type: int}, {name: ts, type: "list<strng>"}]
//!       timestamp: ts
//! "#;
//! let file = parse_text(yaml, false).expect("well-formed YAML");
//! let errors = validate_raw_sources(&file.sources, Utc::now()).unwrap_err();
//! assert_eq!(errors[0].code, ErrorCode::UnknownType);
//! assert_eq!(errors[0].field, "dataset.fields[1].type");
//! ```

mod arn;
#[cfg(feature = "live")]
mod assumed_role;
#[cfg(feature = "live")]
mod aws;
mod data_type;
mod definition;
#[cfg(feature = "live")]
pub mod dynamodb;
mod error;
mod file;
#[cfg(feature = "live")]
pub mod glue_schemas;
mod init_position;
#[cfg(feature = "live")]
pub mod live;
mod predicate;
mod secret;
mod time;

#[cfg(feature = "live")]
pub use aws::{AwsSettings, ClientFactory};

pub use arn::{ArnError, Partition, RoleArn, StreamArn};

pub use data_type::{DataType, Field, MAX_DECIMAL_PRECISION, parse_data_type};
pub use definition::{
    AssumeRole, AvroFormat, Cdc, Consumer, DEFAULT_DISORDER, DEFAULT_SESSION_NAME, DatasetFormat, DatasetSchema,
    Format, Ingest, KinesisSource, LateRows, MAX_FLUSH_BYTES, METADATA_COLUMNS, Preproc, ProtobufFormat,
    ProtobufSchema, REJECTED_SUFFIX, RegistryAuth, Sample, SchemaRegistry, Source, parse_ref_path, validate_commit,
    validate_commit_with,
};
pub use error::{ErrorCode, ParseError, ValidationError};
pub use file::{
    DefinitionFile, LoadError, RawSource, load_file, parse_text, to_commit_sources, validate_raw_sources,
    validate_raw_sources_with,
};
pub use init_position::{InitPosition, Scalar, parse_init_position};
pub use predicate::{BinaryOp, Expr, Expression, Literal, Predicate, parse_expression, parse_predicate};
pub use secret::{DEFAULT_SECRET_ENV_PREFIX, Secret, SecretPolicy};
pub use time::{parse_date_time, parse_duration};
