//! Rejections: records the codec could not turn into a row, and why.
//!
//! A rejection is data, not a log line: a [`Reason`] (a small enum whose
//! variants carry only what is needed to explain it later), the path of the
//! field at fault, the record's metadata and its payload. Nothing is formatted
//! until the error log or a person asks for [`Rejection::message`], so a
//! stream full of bad records costs little more than a clean one.

use std::fmt;
use std::sync::Arc;

/// The stable reason codes of the error log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    /// Not decodable at all: not JSON / not an object / truncated / trailing
    /// bytes / invalid UTF-8 / bad Avro varint or length / datum not fully consumed.
    Malformed,
    /// A required field is absent.
    MissingField,
    /// A value of the wrong kind.
    TypeMismatch,
    /// `null` where the schema does not allow it.
    NullNotAllowed,
    /// A value outside its type's range (an int32 overflow, a decimal's precision).
    OutOfRange,
    /// A timestamp or date that cannot be read.
    BadTimestamp,
    /// A Confluent schema id the registry does not know.
    UnknownSchemaId,
    /// The record's writer schema cannot resolve to the dataset schema.
    SchemaMismatch,
    /// `cdc: debezium`: a tombstone (null or empty payload), which carries no change.
    CdcTombstone,
    /// `cdc: debezium`: the record is not a Debezium envelope (no `op`, or no row for it).
    CdcNoEnvelope,
    /// `cdc: debezium`: an `op` other than `c`, `r`, `u` or `d`.
    CdcUnknownOp,
    /// `cdc: debezium`: a delete whose `before` lacks a key.
    CdcDeleteWithoutKeys,
    /// Not the framing the source expects (Glue header version or compression
    /// byte, a Protobuf message index that names no message).
    BadFraming,
    /// A Glue schema version UUID the registry does not know.
    UnknownSchemaVersion,
    /// A Glue schema version that is not `AVAILABLE` (pending, failed, deleting).
    SchemaVersionNotAvailable,
    /// A compressed payload that does not inflate.
    BadCompression,
    /// A compressed payload that inflates past the bound (a zlib bomb).
    DecompressedTooLarge,
}

impl ReasonCode {
    /// The code as stored in the error log.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Malformed => "MALFORMED",
            ReasonCode::MissingField => "MISSING_FIELD",
            ReasonCode::TypeMismatch => "TYPE_MISMATCH",
            ReasonCode::NullNotAllowed => "NULL_NOT_ALLOWED",
            ReasonCode::OutOfRange => "OUT_OF_RANGE",
            ReasonCode::BadTimestamp => "BAD_TIMESTAMP",
            ReasonCode::UnknownSchemaId => "UNKNOWN_SCHEMA_ID",
            ReasonCode::SchemaMismatch => "SCHEMA_MISMATCH",
            ReasonCode::CdcTombstone => "CDC_TOMBSTONE",
            ReasonCode::CdcNoEnvelope => "CDC_NO_ENVELOPE",
            ReasonCode::CdcUnknownOp => "CDC_UNKNOWN_OP",
            ReasonCode::CdcDeleteWithoutKeys => "CDC_DELETE_WITHOUT_KEYS",
            ReasonCode::BadFraming => "BAD_FRAMING",
            ReasonCode::UnknownSchemaVersion => "UNKNOWN_SCHEMA_VERSION",
            ReasonCode::SchemaVersionNotAvailable => "SCHEMA_VERSION_NOT_AVAILABLE",
            ReasonCode::BadCompression => "BAD_COMPRESSION",
            ReasonCode::DecompressedTooLarge => "DECOMPRESSED_TOO_LARGE",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of JSON value (or Avro datum) was found where another was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// `null`
    Null,
    /// `true` / `false`
    Bool,
    /// A number.
    Number,
    /// A number with a fraction or exponent, where an integer was expected.
    FractionalNumber,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
    /// An Avro value of this writer type.
    Avro(&'static str),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Found::Null => "null",
            Found::Bool => "a boolean",
            Found::Number => "a number",
            Found::FractionalNumber => "a number with a fraction or exponent",
            Found::String => "a string",
            Found::Array => "an array",
            Found::Object => "an object",
            Found::Avro(kind) => kind,
        })
    }
}

/// Why a record was rejected; each variant explains itself through [`fmt::Display`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The payload is not well-formed; the text says where and how.
    Malformed(&'static str),
    /// A required field is absent.
    MissingField,
    /// A value of the wrong kind.
    TypeMismatch {
        /// The dataset type, canonical spelling.
        expected: Arc<str>,
        /// What the payload held.
        found: Found,
    },
    /// `null` for a field that is not optional.
    NullNotAllowed,
    /// A value outside its type's range.
    OutOfRange(&'static str),
    /// A timestamp or date that cannot be read.
    BadTimestamp,
    /// A schema id the registry does not know.
    UnknownSchemaId(u32),
    /// The writer schema cannot resolve to the dataset schema.
    SchemaMismatch(Arc<str>),
    /// A Debezium tombstone.
    CdcTombstone,
    /// Not a Debezium envelope; the text says what is missing.
    CdcNoEnvelope(&'static str),
    /// A Debezium `op` other than `c`, `r`, `u`, `d` (as found, capped).
    CdcUnknownOp(Arc<str>),
    /// A Debezium delete whose `before` lacks a key field.
    CdcDeleteWithoutKeys,
    /// Not the expected framing; the text says how.
    BadFraming(&'static str),
    /// A Glue schema version UUID the registry does not know.
    UnknownSchemaVersion(u128),
    /// A Glue schema version whose status is not `AVAILABLE`.
    SchemaVersionNotAvailable {
        /// The version's UUID.
        id: u128,
        /// Its status as the registry gave it.
        status: Arc<str>,
    },
    /// A compressed payload that does not inflate.
    BadCompression,
    /// A payload that inflates past this many bytes.
    DecompressedTooLarge(usize),
}

impl Reason {
    /// The stable code.
    pub fn code(&self) -> ReasonCode {
        match self {
            Reason::Malformed(_) => ReasonCode::Malformed,
            Reason::MissingField => ReasonCode::MissingField,
            Reason::TypeMismatch { .. } => ReasonCode::TypeMismatch,
            Reason::NullNotAllowed => ReasonCode::NullNotAllowed,
            Reason::OutOfRange(_) => ReasonCode::OutOfRange,
            Reason::BadTimestamp => ReasonCode::BadTimestamp,
            Reason::UnknownSchemaId(_) => ReasonCode::UnknownSchemaId,
            Reason::SchemaMismatch(_) => ReasonCode::SchemaMismatch,
            Reason::CdcTombstone => ReasonCode::CdcTombstone,
            Reason::CdcNoEnvelope(_) => ReasonCode::CdcNoEnvelope,
            Reason::CdcUnknownOp(_) => ReasonCode::CdcUnknownOp,
            Reason::CdcDeleteWithoutKeys => ReasonCode::CdcDeleteWithoutKeys,
            Reason::BadFraming(_) => ReasonCode::BadFraming,
            Reason::UnknownSchemaVersion(_) => ReasonCode::UnknownSchemaVersion,
            Reason::SchemaVersionNotAvailable { .. } => ReasonCode::SchemaVersionNotAvailable,
            Reason::BadCompression => ReasonCode::BadCompression,
            Reason::DecompressedTooLarge(_) => ReasonCode::DecompressedTooLarge,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Malformed(what) => f.write_str(what),
            Reason::MissingField => f.write_str("required field is absent"),
            Reason::TypeMismatch { expected, found } => write!(f, "expected {expected}, found {found}"),
            Reason::NullNotAllowed => f.write_str("null is not allowed: the field is not optional"),
            Reason::OutOfRange(what) => f.write_str(what),
            Reason::BadTimestamp => f.write_str(
                "not a timestamp: expected epoch s/ms/us/ns, a numeric string, RFC 3339 or RFC 2822 (no zone means UTC)",
            ),
            Reason::UnknownSchemaId(id) => write!(f, "schema id {id} is not in the registry"),
            Reason::SchemaMismatch(why) => f.write_str(why),
            Reason::CdcTombstone => f.write_str("a Debezium tombstone (null or empty payload) carries no change"),
            Reason::CdcNoEnvelope(what) => write!(f, "not a Debezium envelope: {what}"),
            Reason::CdcUnknownOp(op) => write!(f, "Debezium op `{op}` is not one of c, r, u, d"),
            Reason::CdcDeleteWithoutKeys => f.write_str("a Debezium delete whose `before` lacks the dataset's keys"),
            Reason::BadFraming(what) => f.write_str(what),
            Reason::UnknownSchemaVersion(id) => {
                write!(f, "schema version {} is not in the Glue registry", crate::glue::uuid_text(*id))
            }
            Reason::SchemaVersionNotAvailable { id, status } => {
                write!(f, "schema version {} is {status}, not AVAILABLE", crate::glue::uuid_text(*id))
            }
            Reason::BadCompression => f.write_str("the zlib-compressed payload does not inflate"),
            Reason::DecompressedTooLarge(limit) => {
                write!(f, "the compressed payload inflates past {limit} bytes")
            }
        }
    }
}

/// Where a record came from. Borrowed while decoding; copied only into a rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordMeta<'a> {
    /// The shard it was read from.
    pub shard_id: &'a str,
    /// Its Kinesis sequence number (decimal digits).
    pub sequence_number: &'a str,
    /// Its position inside a KPL aggregated record, if it came from one.
    pub sub_sequence: Option<u64>,
    /// Its partition key.
    pub partition_key: &'a str,
    /// When Kinesis received it, in microseconds since the epoch.
    pub arrival_time_micros: i64,
}

/// A rejected record: the reason, the field path, the record's metadata and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: Reason,
    /// The dataset field at fault, e.g. `customer.email` or `tags[]`; empty for the whole record.
    pub field: Arc<str>,
    /// The shard it was read from.
    pub shard_id: String,
    /// Its sequence number.
    pub sequence_number: String,
    /// Its KPL sub-sequence, if any.
    pub sub_sequence: Option<u64>,
    /// When Kinesis received it (µs since the epoch).
    pub arrival_time_micros: i64,
    /// The payload, whole; the error log caps what it keeps.
    pub payload: Vec<u8>,
}

impl Rejection {
    pub(crate) fn new(reason: Reason, field: Arc<str>, meta: &RecordMeta<'_>, payload: &[u8]) -> Rejection {
        Rejection {
            reason,
            field,
            shard_id: meta.shard_id.to_owned(),
            sequence_number: meta.sequence_number.to_owned(),
            sub_sequence: meta.sub_sequence,
            arrival_time_micros: meta.arrival_time_micros,
            payload: payload.to_vec(),
        }
    }

    /// The stable code.
    pub fn code(&self) -> ReasonCode {
        self.reason.code()
    }

    /// The human-readable explanation, formatted on demand.
    pub fn message(&self) -> String {
        self.reason.to_string()
    }
}

/// A failed value: the reason and the path of the field where it happened.
/// Internal to decoding; becomes a [`Rejection`] with the record's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) reason: Reason,
    pub(crate) field: Arc<str>,
}

impl Fault {
    /// Boxed, so a `Result<_, Box<Fault>>` stays one register wide on the hot path.
    pub(crate) fn new(reason: Reason, field: &Arc<str>) -> Box<Fault> {
        Box::new(Fault { reason, field: Arc::clone(field) })
    }

    /// A fault of the record as a whole (no field).
    pub(crate) fn record(reason: Reason) -> Box<Fault> {
        Box::new(Fault { reason, field: Arc::from("") })
    }
}
