//! Validated source definitions and the static checks that produce them.
//!
//! A [`Source`] can only be built by [`validate_commit`] (or the file path in
//! [`crate::file`], which normalises friendly scalars into the same proto
//! messages first), so every value of the type satisfies DESIGN.md §2–3:
//! grammars, cross-field rules (timestamp field, keys, cdc, preproc, where,
//! time range) and unique names within a commit. No IO happens here.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use regex::Regex;
use tributary_proto::pbjson_types;
use tributary_proto::v1 as proto;

use crate::arn::{RoleArn, StreamArn};
use crate::data_type::{self, DataType, Field};
use crate::error::{ErrorCode, ParseError, Report, ValidationError};
use crate::init_position::InitPosition;
use crate::predicate::{Expression, Predicate, parse_expression, parse_predicate};
use crate::secret::{Secret, SecretPolicy};

/// Session name used for `AssumeRole` when the definition sets none.
pub const DEFAULT_SESSION_NAME: &str = "TributarySession";

/// How late rows may arrive when the definition sets no `disorder`.
pub const DEFAULT_DISORDER: std::time::Duration = std::time::Duration::from_secs(14 * 86_400);

/// Column names `include_metadata` adds to the dataset.
pub const METADATA_COLUMNS: [&str; 4] = ["_shard_id", "_sequence_number", "_partition_key", "_arrival_time"];

static SOURCE_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9_]{0,62}$").expect("static regex"));
static FIELD_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$").expect("static regex"));
// STS: RoleSessionName and SourceIdentity are 2-64 of [\w+=,.@-]; ExternalId 2-1224 of [\w+=,.@:/-].
static SESSION_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_+=,.@\-]{2,64}$").expect("static regex"));
static EXTERNAL_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_+=,.@:/\-]{2,1224}$").expect("static regex"));
// Glue registry and schema names.
static GLUE_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9\-_$#.]{1,255}$").expect("static regex"));
static AWS_REGION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]{2}(-[a-z0-9]+){2,3}$").expect("static regex"));
static PROTOBUF_FULL_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$").expect("static regex"));

/// A validated source.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// `[a-z][a-z0-9_]{0,62}`, unique in a commit.
    pub name: String,
    /// Where and how records are read.
    pub kinesis: KinesisSource,
    /// The dataset rows land in.
    pub dataset: DatasetSchema,
    /// How rows relate to earlier rows with the same key.
    pub cdc: Cdc,
    /// How late a row may arrive relative to its timestamp.
    pub disorder: std::time::Duration,
    /// Keep rows with `since <= timestamp`.
    pub since: Option<DateTime<Utc>>,
    /// Keep rows with `timestamp < until`.
    pub until: Option<DateTime<Utc>>,
    /// Per dataset field, where its value comes from.
    pub preproc: BTreeMap<String, Preproc>,
    /// Rows must satisfy this predicate to be kept.
    pub filter: Option<Predicate>,
    /// What becomes of rows older than the watermark.
    pub late: LateRows,
    /// Which rows are kept, by a hash of some columns.
    pub sample: Option<Sample>,
    /// Per-source flush policy and error-log retention (unset: the server's defaults).
    pub ingest: Ingest,
    /// A bounded source finishes once no new record arrived for this long.
    pub idleness: Option<std::time::Duration>,
}

/// A source's own flush policy and error-log retention; `None` takes the server's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingest {
    /// Write a batch at this many records.
    pub flush_rows: Option<u64>,
    /// Write a batch at this many decoded bytes.
    pub flush_bytes: Option<u64>,
    /// Write a batch when its oldest record is this old.
    pub flush_interval: Option<std::time::Duration>,
    /// Keep at most this many error-log rows.
    pub error_log_max_rows: Option<u64>,
    /// Keep no error-log row older than this.
    pub error_log_max_age: Option<std::time::Duration>,
}

/// The Kinesis side of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisSource {
    /// The stream.
    pub stream_arn: StreamArn,
    /// The role to assume; `None` reads with the worker's own credentials.
    pub role: Option<AssumeRole>,
    /// Where a new source starts.
    pub init_position: InitPosition,
    /// How record payloads are encoded.
    pub format: Format,
    /// Whether rows carry `_shard_id`, `_sequence_number`, `_partition_key`, `_arrival_time`.
    pub include_metadata: bool,
    /// How shards are read.
    pub consumer: Consumer,
}

/// How a source's shards are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumer {
    /// `GetRecords` polling.
    Polling,
    /// Enhanced fan-out through the registered stream consumer of this name.
    EnhancedFanOut {
        /// The stream consumer's name.
        consumer_name: String,
    },
}

/// How to assume the reader role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    /// The role.
    pub role_arn: RoleArn,
    /// STS session name.
    pub session_name: String,
    /// The external id the role's trust policy asks for.
    pub external_id: Option<String>,
    /// STS source identity.
    pub source_identity: Option<String>,
}

/// How record payloads are encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// One JSON object per record; with `glue`, framed by the Glue Schema Registry.
    Json {
        /// The registry whose JSON Schemas the framed records name.
        glue: Option<GlueRegistry>,
    },
    /// Avro datums.
    Avro(AvroFormat),
    /// Protobuf messages.
    Protobuf(ProtobufFormat),
}

impl Format {
    /// Plain JSON text, no framing.
    pub const JSON: Format = Format::Json { glue: None };

    /// The format's name in a definition: `json`, `avro` or `protobuf`.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Json { .. } => "json",
            Format::Avro(_) => "avro",
            Format::Protobuf(_) => "protobuf",
        }
    }

    /// The Glue Schema Registry the records are framed for, if any.
    pub fn glue_registry(&self) -> Option<&GlueRegistry> {
        match self {
            Format::Json { glue } => glue.as_ref(),
            Format::Avro(AvroFormat::Glue(glue)) => Some(glue),
            Format::Protobuf(ProtobufFormat { schema: ProtobufSchema::Glue(glue), .. }) => Some(glue),
            _ => None,
        }
    }

    /// Whether decoding may ask a schema registry (a blocking call) for a schema it has not met.
    pub fn asks_a_registry(&self) -> bool {
        match self {
            Format::Json { glue } => glue.is_some(),
            Format::Avro(avro) => !matches!(avro, AvroFormat::Inline(_)),
            Format::Protobuf(protobuf) => !matches!(protobuf.schema, ProtobufSchema::Inline { .. }),
        }
    }

    /// The data format a registry's schema must have for this source (`AVRO`, `JSON`, `PROTOBUF`).
    pub fn registry_data_format(&self) -> &'static str {
        match self {
            Format::Json { .. } => "JSON",
            Format::Avro(_) => "AVRO",
            Format::Protobuf(_) => "PROTOBUF",
        }
    }
}

/// Where Avro writer schemas come from.
#[derive(Debug, Clone, PartialEq)]
pub enum AvroFormat {
    /// Confluent wire format: magic byte 0, 4-byte schema id, datum.
    Registry(SchemaRegistry),
    /// Raw datums written with this schema.
    Inline(serde_json::Value),
    /// Glue Schema Registry framing: header version 3, compression, schema version UUID, datum.
    Glue(GlueRegistry),
}

/// Protobuf records: the message type and where its schema comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtobufFormat {
    /// Full name of the record's message type (`shop.v1.Order`).
    pub message: String,
    /// Where the `.proto` schemas come from.
    pub schema: ProtobufSchema,
}

/// Where Protobuf schemas come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtobufSchema {
    /// Bare messages written with this `.proto` text, which may import `imports` (name → text).
    Inline {
        /// The `.proto` file declaring the message.
        schema: String,
        /// The files it imports, by import name.
        imports: std::collections::BTreeMap<String, String>,
    },
    /// Confluent framing (magic 0, schema id, message-index path).
    Registry(SchemaRegistry),
    /// Glue Schema Registry framing (header, then one varint message index).
    Glue(GlueRegistry),
}

/// An AWS Glue Schema Registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueRegistry {
    /// The registry's name.
    pub registry_name: String,
    /// The schema the records are written with (checked at commit when given).
    pub schema_name: Option<String>,
    /// The registry's region: as given, else the stream's.
    pub region: String,
    /// A role to read the registry with; `None`: the source's role (or the server's credentials).
    pub role_arn: Option<crate::RoleArn>,
}

/// A Confluent-compatible schema registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRegistry {
    /// Base URL, `http://` or `https://`.
    pub url: String,
    /// Credentials, if the registry wants them.
    pub auth: Option<RegistryAuth>,
}

/// Registry credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// HTTP basic auth.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// Bearer token.
    Token(Secret),
}

/// The dataset's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSchema {
    /// Dataset name, same grammar as a source name.
    pub name: String,
    /// Fields, in order; names unique.
    pub fields: Vec<Field>,
    /// Name of a non-optional `timestamp` field.
    pub timestamp: String,
    /// Key fields.
    pub keys: Vec<String>,
    /// How the dataset is stored.
    pub format: DatasetFormat,
}

/// The suffix of an Iceberg dataset's rejected-row table (`orders__rejected`).
pub const REJECTED_SUFFIX: &str = "__rejected";

/// How a dataset is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DatasetFormat {
    /// Hive-layout Parquet files, listed in the server's manifest.
    #[default]
    Parquet,
    /// An Apache Iceberg v2 table in the server's warehouse.
    Iceberg,
}

/// Change-data-capture mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cdc {
    /// Every record is a new row; the dataset has no keys.
    Append,
    /// A record replaces the row with the same key.
    Upsert,
    /// Debezium envelopes; needs keys.
    Debezium,
}

/// Where a dataset field's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Preproc {
    /// A path into the payload: `address[country]` is `["address", "country"]`.
    Ref(Vec<String>),
    /// A constant.
    Value(serde_json::Value),
    /// Computed from other dataset fields (type-checked against the field).
    Eval(Expression),
}

/// What becomes of a row older than the source's watermark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LateRows {
    /// Counted and dropped.
    #[default]
    Drop,
    /// Counted and kept.
    Keep,
}

/// `sample`: keep a row when the hash of its `using` columns falls under `rate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Fraction of rows kept, in `[0, 1]`.
    pub rate: f64,
    /// Top-level dataset columns hashed, in this order.
    pub using: Vec<String>,
}

/// Validates every source of a commit; all-or-nothing. Secrets may name only
/// variables of the default [`SecretPolicy`].
pub fn validate_commit(
    sources: &[proto::SourceDefinition],
    now: DateTime<Utc>,
) -> Result<Vec<Source>, Vec<ValidationError>> {
    validate_commit_with(sources, now, &SecretPolicy::default())
}

/// [`validate_commit`] under the server's own [`SecretPolicy`].
pub fn validate_commit_with(
    sources: &[proto::SourceDefinition],
    now: DateTime<Utc>,
    policy: &SecretPolicy,
) -> Result<Vec<Source>, Vec<ValidationError>> {
    let reports = sources.iter().map(|s| Report::new(s.name.clone())).collect();
    validate_with_reports(sources, reports, now, policy)
}

/// Validates sources whose reports may already hold errors from normalising a file.
pub(crate) fn validate_with_reports(
    sources: &[proto::SourceDefinition],
    reports: Vec<Report>,
    now: DateTime<Utc>,
    policy: &SecretPolicy,
) -> Result<Vec<Source>, Vec<ValidationError>> {
    let mut errors = Vec::new();
    let mut valid = Vec::new();
    if sources.is_empty() {
        errors.push(ValidationError {
            source: String::new(),
            field: "sources".into(),
            code: ErrorCode::MissingField,
            message: "a commit needs at least one source".into(),
        });
    }
    let mut seen = HashSet::new();
    for (definition, mut report) in sources.iter().zip(reports) {
        if !definition.name.is_empty() && !seen.insert(definition.name.as_str()) {
            report.push(
                "name",
                ErrorCode::DuplicateName,
                format!("source `{}` appears more than once in this commit", definition.name),
            );
        }
        check_secret_env(definition, policy, &mut report);
        let checked = check_source(definition, &mut report, now);
        match checked {
            Some(source) if report.is_empty() => valid.push(source),
            _ => errors.extend(report.into_errors()),
        }
    }
    if errors.is_empty() { Ok(valid) } else { Err(errors) }
}

fn check_source(definition: &proto::SourceDefinition, report: &mut Report, now: DateTime<Utc>) -> Option<Source> {
    let name = check_name(&definition.name, "name", "source", report);
    let kinesis = match &definition.kinesis {
        Some(kinesis) => check_kinesis(kinesis, &definition.name, report, now),
        None => {
            if !report.has_error_at("kinesis") {
                report.push(
                    "kinesis",
                    ErrorCode::MissingField,
                    "`kinesis` (stream_arn, init_position, format) is required",
                );
            }
            None
        }
    };
    let include_metadata = definition.kinesis.as_ref().is_some_and(|k| k.include_metadata);
    let dataset = match &definition.dataset {
        Some(dataset) => check_dataset(dataset, &definition.name, include_metadata, report),
        None => {
            if !report.has_error_at("dataset") {
                report.push("dataset", ErrorCode::MissingField, "`dataset` (name, fields, timestamp) is required");
            }
            None
        }
    };
    let cdc = check_cdc(definition, report);
    let disorder = match &definition.disorder {
        None => Some(DEFAULT_DISORDER),
        Some(d) if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 => {
            report.push("disorder", ErrorCode::InvalidDuration, "`disorder` must be a non-negative duration");
            None
        }
        Some(d) => u64::try_from(d.seconds)
            .ok()
            .zip(u32::try_from(d.nanos).ok())
            .map(|(seconds, nanos)| std::time::Duration::new(seconds, nanos)),
    };
    let since = check_time(definition.since.as_ref(), "since", report);
    let until = check_time(definition.until.as_ref(), "until", report);
    if let (Some(Some(since)), Some(Some(until))) = (since, until)
        && since >= until
    {
        report.push(
            "until",
            ErrorCode::InvalidTimeRange,
            format!("`since` ({since}) must be before `until` ({until})"),
        );
    }
    let fields: &[Field] = dataset.as_ref().map_or(&[], |d: &DatasetSchema| d.fields.as_slice());
    let preproc = check_preproc(&definition.preproc, fields, dataset.is_some(), report);
    let filter = check_where(&definition.r#where, fields, dataset.is_some(), report);
    let sample = check_sample(definition, dataset.as_ref(), report);
    let late = match proto::Late::try_from(definition.late) {
        Ok(proto::Late::Unspecified | proto::Late::Drop) => Some(LateRows::Drop),
        Ok(proto::Late::Keep) => Some(LateRows::Keep),
        Err(_) => {
            report.push("late", ErrorCode::InvalidLate, "`late` must be `drop` or `keep`");
            None
        }
    };
    let ingest = check_ingest(definition.ingest.as_ref(), report);
    let idleness = check_bounded(definition, report);
    Some(Source {
        name: name?,
        kinesis: kinesis?,
        dataset: dataset?,
        cdc: cdc?,
        disorder: disorder?,
        since: since?,
        until: until?,
        preproc: preproc?,
        filter: filter?,
        late: late?,
        sample: sample?,
        ingest: ingest?,
        idleness: idleness?,
    })
}

fn positive_duration(
    duration: Option<&pbjson_types::Duration>,
    field: &str,
    report: &mut Report,
) -> Option<Option<std::time::Duration>> {
    match duration {
        None => Some(None),
        Some(d) if d.seconds > 0 && (0..1_000_000_000).contains(&d.nanos) => {
            Some(Some(std::time::Duration::new(d.seconds as u64, d.nanos as u32)))
        }
        Some(_) => {
            report.push(
                field,
                ErrorCode::InvalidIngest,
                format!("`{field}` must be a positive duration such as `10s`"),
            );
            None
        }
    }
}

/// The largest `flush_bytes`: a batch's decoded payloads must stay below the
/// decoder's limit (32-bit Arrow offsets, 1 GiB) with room for one more
/// GetRecords answer (10 MiB) read before the size is checked.
pub const MAX_FLUSH_BYTES: u64 = 512 * 1024 * 1024;

/// Fennel's rule: `idleness` exactly when `bounded`. `Some(None)`: unbounded.
fn check_bounded(definition: &proto::SourceDefinition, report: &mut Report) -> Option<Option<std::time::Duration>> {
    let idleness = definition.idleness.as_ref();
    match (definition.bounded, idleness) {
        (false, None) => Some(None),
        (true, None) => {
            report.push("idleness", ErrorCode::InvalidBounded, "a `bounded` source needs `idleness`, e.g. `1h`");
            None
        }
        (false, Some(_)) => {
            report.push("idleness", ErrorCode::InvalidBounded, "`idleness` applies to `bounded: true` sources only");
            None
        }
        (true, Some(d)) => match (u64::try_from(d.seconds), u32::try_from(d.nanos)) {
            (Ok(seconds), Ok(nanos)) if nanos < 1_000_000_000 && (seconds, nanos) != (0, 0) => {
                Some(Some(std::time::Duration::new(seconds, nanos)))
            }
            _ => {
                report.push(
                    "idleness",
                    ErrorCode::InvalidBounded,
                    "`idleness` must be a positive duration such as `1h`",
                );
                None
            }
        },
    }
}

fn check_ingest(ingest: Option<&proto::Ingest>, report: &mut Report) -> Option<Ingest> {
    let Some(ingest) = ingest else { return Some(Ingest::default()) };
    let mut valid = true;
    for (field, value) in [
        ("ingest.flush_rows", ingest.flush_rows),
        ("ingest.flush_bytes", ingest.flush_bytes),
        ("ingest.error_log_max_rows", ingest.error_log_max_rows),
    ] {
        if value == Some(0) {
            report.push(field, ErrorCode::InvalidIngest, format!("`{field}` must be at least 1"));
            valid = false;
        }
    }
    if ingest.flush_bytes.is_some_and(|bytes| bytes > MAX_FLUSH_BYTES) {
        report.push(
            "ingest.flush_bytes",
            ErrorCode::InvalidIngest,
            format!("`ingest.flush_bytes` may be at most {MAX_FLUSH_BYTES} (512 MiB): a batch must fit the decoder's 1 GiB limit"),
        );
        valid = false;
    }
    let flush_interval = positive_duration(ingest.flush_interval.as_ref(), "ingest.flush_interval", report);
    let error_log_max_age = positive_duration(ingest.error_log_max_age.as_ref(), "ingest.error_log_max_age", report);
    if !valid {
        return None;
    }
    Some(Ingest {
        flush_rows: ingest.flush_rows,
        flush_bytes: ingest.flush_bytes,
        flush_interval: flush_interval?,
        error_log_max_rows: ingest.error_log_max_rows,
        error_log_max_age: error_log_max_age?,
    })
}

fn check_name(name: &str, field: &str, what: &str, report: &mut Report) -> Option<String> {
    if name.is_empty() {
        if !report.has_error_at(field) {
            report.push(field, ErrorCode::MissingField, format!("the {what} needs a name"));
        }
        return None;
    }
    if !SOURCE_NAME.is_match(name) {
        report.push(
            field,
            ErrorCode::InvalidName,
            format!("{what} name `{name}` must start with a-z and have 1-63 characters of a-z 0-9 _"),
        );
        return None;
    }
    Some(name.to_owned())
}

fn check_kinesis(
    kinesis: &proto::KinesisStream,
    source_name: &str,
    report: &mut Report,
    now: DateTime<Utc>,
) -> Option<KinesisSource> {
    let stream_arn = if kinesis.stream_arn.is_empty() {
        if !report.has_error_at("kinesis.stream_arn") {
            report.push("kinesis.stream_arn", ErrorCode::MissingField, "`stream_arn` is required");
        }
        None
    } else {
        match kinesis.stream_arn.parse::<StreamArn>() {
            Ok(arn) => Some(arn),
            Err(e) => {
                report.push("kinesis.stream_arn", ErrorCode::InvalidArn, e.to_string());
                None
            }
        }
    };
    let role_arn = if kinesis.role_arn.is_empty() {
        Some(None)
    } else {
        match kinesis.role_arn.parse::<RoleArn>() {
            Ok(role) => {
                if let Some(stream) = &stream_arn
                    && stream.partition() != role.partition()
                {
                    report.push(
                        "kinesis.role_arn",
                        ErrorCode::PartitionMismatch,
                        format!(
                            "role is in partition `{}` but the stream is in `{}`",
                            role.partition().as_str(),
                            stream.partition().as_str()
                        ),
                    );
                }
                Some(Some(role))
            }
            Err(e) => {
                report.push("kinesis.role_arn", ErrorCode::InvalidArn, e.to_string());
                None
            }
        }
    };
    let session_name = check_sts_text(
        &kinesis.role_session_name,
        &SESSION_NAME,
        "kinesis.role_session_name",
        "2-64 characters of A-Z a-z 0-9 + = , . @ _ -",
        report,
    );
    let external_id = check_sts_text(
        &kinesis.external_id,
        &EXTERNAL_ID,
        "kinesis.external_id",
        "2-1224 characters of A-Z a-z 0-9 + = , . @ : / _ -",
        report,
    );
    let source_identity = check_sts_text(
        &kinesis.source_identity,
        &SESSION_NAME,
        "kinesis.source_identity",
        "2-64 characters of A-Z a-z 0-9 + = , . @ _ -",
        report,
    );
    if kinesis.role_arn.is_empty()
        && [&kinesis.role_session_name, &kinesis.external_id, &kinesis.source_identity].iter().any(|s| !s.is_empty())
    {
        report.push(
            "kinesis.role_arn",
            ErrorCode::MissingField,
            "`role_session_name`, `external_id` and `source_identity` only apply with a `role_arn`",
        );
    }
    let init_position = check_init_position(kinesis.init_position.as_ref(), report, now);
    let format = check_format(kinesis.format.as_ref(), stream_arn.as_ref().map(StreamArn::region), report);

    let role = match (role_arn?, session_name?, external_id?, source_identity?) {
        (Some(role_arn), session_name, external_id, source_identity) => Some(AssumeRole {
            role_arn,
            session_name: session_name.unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned()),
            external_id,
            source_identity,
        }),
        (None, ..) => None,
    };
    let consumer = match kinesis.consumer.trim() {
        "" | "polling" if kinesis.consumer_name.is_empty() => Some(Consumer::Polling),
        "" | "polling" => {
            report.push(
                "kinesis.consumer_name",
                ErrorCode::InvalidConsumer,
                "`consumer_name` only applies with `consumer: efo`",
            );
            None
        }
        "efo" => {
            let name = if kinesis.consumer_name.is_empty() {
                format!("tributary-{source_name}")
            } else {
                kinesis.consumer_name.clone()
            };
            // Kinesis: 1-128 of [a-zA-Z0-9_.-].
            if name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
                Some(Consumer::EnhancedFanOut { consumer_name: name })
            } else {
                report.push(
                    "kinesis.consumer_name",
                    ErrorCode::InvalidConsumer,
                    format!("`{name}` is not a stream consumer name (1-128 of a-z A-Z 0-9 _ . -)"),
                );
                None
            }
        }
        other => {
            report.push(
                "kinesis.consumer",
                ErrorCode::InvalidConsumer,
                format!("`{other}` is not a consumer; use `polling` (GetRecords) or `efo` (enhanced fan-out)"),
            );
            None
        }
    };
    Some(KinesisSource {
        stream_arn: stream_arn?,
        role,
        init_position: init_position?,
        format: format?,
        include_metadata: kinesis.include_metadata,
        consumer: consumer?,
    })
}

/// `Some(None)` when empty (unset), `Some(Some(text))` when valid, `None` when invalid.
fn check_sts_text(text: &str, grammar: &Regex, field: &str, rule: &str, report: &mut Report) -> Option<Option<String>> {
    if text.is_empty() {
        return Some(None);
    }
    if grammar.is_match(text) {
        Some(Some(text.to_owned()))
    } else {
        report.push(field, ErrorCode::InvalidName, format!("`{text}` must be {rule}"));
        None
    }
}

fn check_init_position(
    position: Option<&proto::kinesis_stream::InitPosition>,
    report: &mut Report,
    now: DateTime<Utc>,
) -> Option<InitPosition> {
    use proto::kinesis_stream::InitPosition as Wire;
    const FIELD: &str = "kinesis.init_position";
    match position {
        None => {
            if !report.has_error_at(FIELD) {
                report.push(
                    FIELD,
                    ErrorCode::MissingField,
                    "`init_position` is required: `latest`, `trim_horizon` or a date-time",
                );
            }
            None
        }
        Some(Wire::Latest(_)) => Some(InitPosition::Latest),
        Some(Wire::TrimHorizon(_)) => Some(InitPosition::TrimHorizon),
        Some(Wire::AtTimestamp(timestamp)) => match timestamp_to_utc(timestamp) {
            Some(time) if time > now => {
                report.push(
                    FIELD,
                    ErrorCode::InvalidInitPosition,
                    format!("`{time}` is in the future; Kinesis cannot start there"),
                );
                None
            }
            Some(time) if time.timestamp() < 0 => {
                report.push(FIELD, ErrorCode::InvalidInitPosition, format!("`{time}` is before 1970"));
                None
            }
            Some(time) => Some(InitPosition::AtTimestamp(time)),
            None => {
                report.push(FIELD, ErrorCode::InvalidInitPosition, "`at_timestamp` is not a valid timestamp");
                None
            }
        },
    }
}

fn timestamp_to_utc(timestamp: &pbjson_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    Utc.timestamp_opt(timestamp.seconds, nanos).single()
}

/// Converts an instant to its proto form.
pub(crate) fn utc_to_timestamp(time: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn check_time(
    value: Option<&pbjson_types::Timestamp>,
    field: &str,
    report: &mut Report,
) -> Option<Option<DateTime<Utc>>> {
    match value {
        None => Some(None),
        Some(timestamp) => match timestamp_to_utc(timestamp) {
            Some(time) => Some(Some(time)),
            None => {
                report.push(field, ErrorCode::InvalidTimeRange, format!("`{field}` is not a valid timestamp"));
                None
            }
        },
    }
}

fn check_format(format: Option<&proto::Format>, stream_region: Option<&str>, report: &mut Report) -> Option<Format> {
    use proto::avro_format::SchemaSource;
    use proto::format::Kind;
    const FIELD: &str = "kinesis.format";
    let Some(kind) = format.and_then(|f| f.kind.as_ref()) else {
        // Most Kinesis producers write JSON; an unset format means JSON.
        return if report.has_error_at(FIELD) { None } else { Some(Format::JSON) };
    };
    match kind {
        Kind::Json(json) => match &json.glue {
            None => Some(Format::JSON),
            Some(glue) => check_glue(glue, "kinesis.format.json.registry.glue", stream_region?, report)
                .map(|glue| Format::Json { glue: Some(glue) }),
        },
        Kind::Avro(avro) => match &avro.schema_source {
            None => {
                report.push(
                    format!("{FIELD}.avro"),
                    ErrorCode::InvalidFormat,
                    "avro needs a `registry` (with `url`) or an inline writer `schema`",
                );
                None
            }
            Some(SchemaSource::Schema(text)) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(
                    schema
                    @ (serde_json::Value::Object(_) | serde_json::Value::Array(_) | serde_json::Value::String(_)),
                ) => Some(Format::Avro(AvroFormat::Inline(schema))),
                Ok(_) => {
                    report.push(
                        format!("{FIELD}.avro.schema"),
                        ErrorCode::InvalidFormat,
                        "an Avro schema is a JSON object, array or type name",
                    );
                    None
                }
                Err(e) => {
                    report.push(
                        format!("{FIELD}.avro.schema"),
                        ErrorCode::InvalidFormat,
                        format!("the inline Avro schema is not JSON: {e}"),
                    );
                    None
                }
            },
            Some(SchemaSource::Registry(registry)) => {
                check_registry(registry, "kinesis.format.avro", report).map(|r| Format::Avro(AvroFormat::Registry(r)))
            }
            Some(SchemaSource::Glue(glue)) => {
                check_glue(glue, "kinesis.format.avro.registry.glue", stream_region?, report)
                    .map(|glue| Format::Avro(AvroFormat::Glue(glue)))
            }
        },
        Kind::Protobuf(protobuf) => check_protobuf(protobuf, stream_region, report).map(Format::Protobuf),
    }
}

fn check_protobuf(
    protobuf: &proto::ProtobufFormat,
    stream_region: Option<&str>,
    report: &mut Report,
) -> Option<ProtobufFormat> {
    use proto::protobuf_format::SchemaSource;
    const FIELD: &str = "kinesis.format.protobuf";
    let message = protobuf.message.trim().trim_start_matches('.');
    let message_ok = if message.is_empty() {
        report.push(format!("{FIELD}.message"), ErrorCode::MissingField, "protobuf needs the record's `message` type");
        false
    } else if !PROTOBUF_FULL_NAME.is_match(message) {
        report.push(
            format!("{FIELD}.message"),
            ErrorCode::InvalidFormat,
            format!("`{message}` is not a message name (`package.Message`, dots between identifiers)"),
        );
        false
    } else {
        true
    };
    if !protobuf.imports.is_empty() && !matches!(protobuf.schema_source, Some(SchemaSource::Schema(_))) {
        report.push(format!("{FIELD}.imports"), ErrorCode::InvalidFormat, "`imports` belong to an inline `schema`");
        return None;
    }
    let schema = match &protobuf.schema_source {
        None => {
            report.push(
                FIELD,
                ErrorCode::InvalidFormat,
                "protobuf needs an inline `.proto` `schema` or a `registry` (`confluent` with `url`, or `{glue: {...}}`)",
            );
            None
        }
        Some(SchemaSource::Schema(text)) if text.trim().is_empty() => {
            report.push(format!("{FIELD}.schema"), ErrorCode::InvalidFormat, "the inline `.proto` schema is empty");
            None
        }
        Some(SchemaSource::Schema(text)) => Some(ProtobufSchema::Inline {
            schema: text.clone(),
            imports: protobuf.imports.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }),
        Some(SchemaSource::Registry(registry)) => check_registry(registry, FIELD, report).map(ProtobufSchema::Registry),
        Some(SchemaSource::Glue(glue)) => {
            check_glue(glue, "kinesis.format.protobuf.registry.glue", stream_region?, report).map(ProtobufSchema::Glue)
        }
    };
    let schema = schema?;
    message_ok.then(|| ProtobufFormat { message: message.to_owned(), schema })
}

fn check_glue(
    glue: &proto::GlueSchemaRegistry,
    field: &str,
    stream_region: &str,
    report: &mut Report,
) -> Option<GlueRegistry> {
    let mut ok = true;
    if glue.registry_name.is_empty() {
        report.push(
            format!("{field}.registry_name"),
            ErrorCode::MissingField,
            "a Glue registry needs its `registry_name`",
        );
        ok = false;
    }
    for (name, value) in [("registry_name", &glue.registry_name), ("schema_name", &glue.schema_name)] {
        if !value.is_empty() && !GLUE_NAME.is_match(value) {
            report.push(
                format!("{field}.{name}"),
                ErrorCode::InvalidFormat,
                format!("`{value}` is not a Glue name: 1-255 characters of A-Z a-z 0-9 - _ $ # ."),
            );
            ok = false;
        }
    }
    let region = if glue.region.is_empty() { stream_region } else { glue.region.as_str() };
    if !AWS_REGION.is_match(region) {
        report.push(format!("{field}.region"), ErrorCode::InvalidFormat, format!("`{region}` is not an AWS region"));
        ok = false;
    }
    let role_arn = if glue.role_arn.is_empty() {
        None
    } else {
        match glue.role_arn.parse::<RoleArn>() {
            Ok(role) => Some(role),
            Err(e) => {
                report.push(format!("{field}.role_arn"), ErrorCode::InvalidArn, e.to_string());
                ok = false;
                None
            }
        }
    };
    ok.then(|| GlueRegistry {
        registry_name: glue.registry_name.clone(),
        schema_name: (!glue.schema_name.is_empty()).then(|| glue.schema_name.clone()),
        region: region.to_owned(),
        role_arn,
    })
}

/// A Confluent registry; `field` is the format's block (`kinesis.format.avro`).
fn check_registry(registry: &proto::SchemaRegistry, field: &str, report: &mut Report) -> Option<SchemaRegistry> {
    use proto::schema_registry::Auth;
    let kind_ok = match proto::RegistryKind::try_from(registry.kind) {
        Ok(proto::RegistryKind::Confluent | proto::RegistryKind::Unspecified) => true,
        Err(_) => {
            report.push(format!("{field}.registry"), ErrorCode::InvalidFormat, "the only registry kind is `confluent`");
            false
        }
    };
    let url = registry.url.trim();
    let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let url_ok = match host {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace) => true,
        _ => {
            report.push(
                format!("{field}.url"),
                ErrorCode::InvalidFormat,
                format!("registry url `{url}` must be an http:// or https:// URL with a host"),
            );
            false
        }
    };
    let auth = match &registry.auth {
        None => Some(None),
        Some(Auth::Basic(basic)) => {
            let password = check_secret(basic.password.as_ref(), &format!("{field}.password"), report);
            if basic.username.is_empty() {
                report.push(format!("{field}.username"), ErrorCode::MissingField, "basic auth needs a `username`");
            }
            password
                .filter(|_| !basic.username.is_empty())
                .map(|password| Some(RegistryAuth::Basic { username: basic.username.clone(), password }))
        }
        Some(Auth::Token(token)) => {
            check_secret(Some(token), &format!("{field}.token"), report).map(|t| Some(RegistryAuth::Token(t)))
        }
    };
    if kind_ok && url_ok {
        auth.map(|auth| SchemaRegistry { url: url.trim_end_matches('/').to_owned(), auth })
    } else {
        None
    }
}

/// Refuses `{env: VAR}` secrets outside the policy's prefix.
fn check_secret_env(definition: &proto::SourceDefinition, policy: &SecretPolicy, report: &mut Report) {
    use proto::avro_format::SchemaSource;
    use proto::format::Kind;
    use proto::schema_registry::Auth;
    use proto::secret::Value;
    let format = definition.kinesis.as_ref().and_then(|k| k.format.as_ref()).and_then(|f| f.kind.as_ref());
    let (block, registry) = match format {
        Some(Kind::Avro(proto::AvroFormat { schema_source: Some(SchemaSource::Registry(registry)) })) => {
            ("kinesis.format.avro", registry)
        }
        Some(Kind::Protobuf(proto::ProtobufFormat {
            schema_source: Some(proto::protobuf_format::SchemaSource::Registry(registry)),
            ..
        })) => ("kinesis.format.protobuf", registry),
        _ => return,
    };
    let (field, secret) = match &registry.auth {
        Some(Auth::Basic(basic)) => (format!("{block}.password"), basic.password.as_ref()),
        Some(Auth::Token(token)) => (format!("{block}.token"), Some(token)),
        None => return,
    };
    if let Some(Value::Env(var)) = secret.and_then(|s| s.value.as_ref())
        && let Some(why) = policy.refuse(var)
    {
        report.push(field, ErrorCode::InvalidSecret, why);
    }
}

fn check_secret(secret: Option<&proto::Secret>, field: &str, report: &mut Report) -> Option<Secret> {
    use proto::secret::Value;
    match secret.and_then(|s| s.value.as_ref()) {
        Some(Value::Inline(value)) if !value.is_empty() => Some(Secret::Inline(value.clone())),
        Some(Value::Env(var)) if !var.is_empty() => Some(Secret::Env(var.clone())),
        _ => {
            report.push(field, ErrorCode::InvalidSecret, "the secret is empty; give it inline or as `{env: VAR}`");
            None
        }
    }
}

fn check_dataset(
    dataset: &proto::Dataset,
    source_name: &str,
    include_metadata: bool,
    report: &mut Report,
) -> Option<DatasetSchema> {
    let name = if dataset.name.is_empty() && SOURCE_NAME.is_match(source_name) {
        // A dataset named like its source is the common case; say it once.
        Some(source_name.to_owned())
    } else {
        check_name(&dataset.name, "dataset.name", "dataset", report)
    };
    if dataset.fields.is_empty() && !report.has_error_at("dataset.fields") {
        report.push("dataset.fields", ErrorCode::MissingField, "the dataset needs at least one field");
    }
    let mut fields = Vec::with_capacity(dataset.fields.len());
    let mut all_fields_ok = true;
    let mut seen = HashSet::new();
    for (index, field) in dataset.fields.iter().enumerate() {
        let path = format!("dataset.fields[{index}]");
        let mut ok = true;
        if field.name.is_empty() {
            report.push(format!("{path}.name"), ErrorCode::MissingField, "the field needs a name");
            ok = false;
        } else if !FIELD_NAME.is_match(&field.name) {
            report.push(
                format!("{path}.name"),
                ErrorCode::InvalidName,
                format!(
                    "field name `{}` must start with a letter or `_` and have 1-128 characters of A-Z a-z 0-9 _",
                    field.name
                ),
            );
            ok = false;
        } else if !seen.insert(field.name.as_str()) {
            report.push(
                format!("{path}.name"),
                ErrorCode::DuplicateName,
                format!("field `{}` appears more than once", field.name),
            );
            ok = false;
        } else if include_metadata && METADATA_COLUMNS.contains(&field.name.as_str()) {
            report.push(
                format!("{path}.name"),
                ErrorCode::DuplicateName,
                format!("field `{}` clashes with a column `include_metadata` adds", field.name),
            );
            ok = false;
        }
        let data_type = match &field.r#type {
            Some(wire) => match data_type::from_proto(wire) {
                Ok(data_type) => Some(data_type),
                Err(e) => {
                    report.push(
                        format!("{path}.type"),
                        e.code(ErrorCode::UnknownType),
                        format!("field `{}`: {e}", field.name),
                    );
                    None
                }
            },
            None => {
                if !report.has_error_at(&format!("{path}.type")) {
                    report.push(
                        format!("{path}.type"),
                        ErrorCode::MissingField,
                        format!("field `{}` has no type", field.name),
                    );
                }
                None
            }
        };
        match data_type {
            Some(data_type) if ok => fields.push(Field { name: field.name.clone(), data_type }),
            _ => all_fields_ok = false,
        }
    }
    let known = |name: &str| dataset.fields.iter().any(|f| f.name == name);
    let timestamp = if dataset.timestamp.is_empty() {
        report.push(
            "dataset.timestamp",
            ErrorCode::MissingField,
            "the dataset needs a `timestamp` field naming its event time",
        );
        None
    } else if !known(&dataset.timestamp) {
        report.push(
            "dataset.timestamp",
            ErrorCode::UnknownField,
            format!("timestamp field `{}` is not a dataset field", dataset.timestamp),
        );
        None
    } else {
        match fields.iter().find(|f| f.name == dataset.timestamp).map(|f| &f.data_type) {
            Some(DataType::Timestamp) => Some(dataset.timestamp.clone()),
            Some(other) => {
                let why = if other.is_optional() { "; every row needs a time, so it cannot be optional" } else { "" };
                report.push(
                    "dataset.timestamp",
                    ErrorCode::InvalidTimestampField,
                    format!("timestamp field `{}` is `{other}`, not `timestamp`{why}", dataset.timestamp),
                );
                None
            }
            // The field itself was refused and reported above.
            None => None,
        }
    };
    let mut keys_ok = true;
    let mut seen_keys = HashSet::new();
    for (index, key) in dataset.keys.iter().enumerate() {
        if !known(key) {
            report.push(
                format!("dataset.keys[{index}]"),
                ErrorCode::UnknownField,
                format!("key `{key}` is not a dataset field"),
            );
            keys_ok = false;
        } else if !seen_keys.insert(key.as_str()) {
            report.push(
                format!("dataset.keys[{index}]"),
                ErrorCode::DuplicateName,
                format!("key `{key}` appears more than once"),
            );
            keys_ok = false;
        }
    }
    let format = match proto::DatasetFormat::try_from(dataset.format) {
        Ok(proto::DatasetFormat::Unspecified | proto::DatasetFormat::Parquet) => DatasetFormat::Parquet,
        Ok(proto::DatasetFormat::Iceberg) => DatasetFormat::Iceberg,
        Err(_) => {
            report.push("dataset.format", ErrorCode::InvalidDatasetFormat, "`format` must be `parquet` or `iceberg`");
            return None;
        }
    };
    if format == DatasetFormat::Iceberg && dataset.name.ends_with(REJECTED_SUFFIX) {
        report.push(
            "dataset.name",
            ErrorCode::DuplicateName,
            format!(
                "`{}`: names ending in `{REJECTED_SUFFIX}` are the rejected-row tables of Iceberg datasets",
                dataset.name
            ),
        );
        return None;
    }
    if !(all_fields_ok && keys_ok) || dataset.fields.is_empty() {
        return None;
    }
    Some(DatasetSchema { name: name?, fields, timestamp: timestamp?, keys: dataset.keys.clone(), format })
}

/// `sample`: a rate in [0, 1] and the columns it hashes (Fennel's rules: top-level
/// fields, none fed by `preproc`; by default the keys, else every field but the
/// timestamp and those fed by `preproc`).
fn check_sample(
    definition: &proto::SourceDefinition,
    dataset: Option<&DatasetSchema>,
    report: &mut Report,
) -> Option<Option<Sample>> {
    let Some(rate) = definition.sample else {
        if !definition.sample_using.is_empty() {
            report.push("sample.using", ErrorCode::InvalidSample, "`using` needs a `rate`");
            return None;
        }
        return Some(None);
    };
    if !(0.0..=1.0).contains(&rate) {
        report.push("sample", ErrorCode::InvalidSample, format!("`sample` is {rate}; it must be a fraction in [0, 1]"));
        return None;
    }
    let dataset = dataset?;
    let using: Vec<String> = if !definition.sample_using.is_empty() {
        definition.sample_using.clone()
    } else if !dataset.keys.is_empty() {
        dataset.keys.clone()
    } else {
        let hashable = |f: &&Field| f.name != dataset.timestamp && !definition.preproc.contains_key(&f.name);
        dataset.fields.iter().filter(hashable).map(|f| f.name.clone()).collect()
    };
    let mut ok = true;
    for (index, name) in using.iter().enumerate() {
        let at = format!("sample.using[{index}]");
        if !dataset.fields.iter().any(|f| &f.name == name) {
            report.push(&at, ErrorCode::InvalidSample, format!("`{name}` is not a dataset field"));
            ok = false;
        } else if definition.preproc.contains_key(name) {
            report.push(
                &at,
                ErrorCode::InvalidSample,
                format!("`{name}` is set by `preproc`, so `sample` cannot hash it"),
            );
            ok = false;
        } else if using[..index].contains(name) {
            report.push(&at, ErrorCode::InvalidSample, format!("`{name}` is named twice"));
            ok = false;
        }
    }
    if using.is_empty() {
        report.push("sample.using", ErrorCode::InvalidSample, "`sample` needs at least one column to hash");
        ok = false;
    }
    ok.then_some(Some(Sample { rate, using }))
}

fn check_cdc(definition: &proto::SourceDefinition, report: &mut Report) -> Option<Cdc> {
    let cdc = match proto::Cdc::try_from(definition.cdc) {
        Ok(proto::Cdc::Unspecified | proto::Cdc::Append) => Cdc::Append,
        Ok(proto::Cdc::Upsert) => Cdc::Upsert,
        Ok(proto::Cdc::Debezium) => Cdc::Debezium,
        Err(_) => {
            report.push("cdc", ErrorCode::InvalidCdc, "`cdc` must be `append`, `upsert` or `debezium`");
            return None;
        }
    };
    let has_keys = definition.dataset.as_ref().is_some_and(|d| !d.keys.is_empty());
    match (cdc, has_keys) {
        (Cdc::Append, true) => {
            report.push(
                "cdc",
                ErrorCode::InvalidCdc,
                "`cdc: append` needs a dataset without keys; use `upsert` or drop `keys`",
            );
            None
        }
        (Cdc::Upsert | Cdc::Debezium, false) => {
            let mode = if cdc == Cdc::Upsert { "upsert" } else { "debezium" };
            report.push("cdc", ErrorCode::InvalidCdc, format!("`cdc: {mode}` needs `dataset.keys`"));
            None
        }
        _ => Some(cdc),
    }
}

/// Parses a preproc reference path: `address[country]`, `a[b][c]`.
pub fn parse_ref_path(text: &str) -> Result<Vec<String>, String> {
    let mut path = Vec::new();
    let (head, mut rest) = match text.find('[') {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    if head.is_empty() || head.contains(']') {
        return Err(format!("`{text}` must start with a payload field name, e.g. `address[country]`"));
    }
    path.push(head.to_owned());
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('[') else {
            return Err(format!("`{text}`: expected `[` at `{rest}`"));
        };
        let Some(end) = inner.find(']') else {
            return Err(format!("`{text}`: `[` is not closed"));
        };
        let segment = &inner[..end];
        if segment.is_empty() || segment.contains('[') {
            return Err(format!("`{text}`: empty or nested segment"));
        }
        path.push(segment.to_owned());
        rest = &inner[end + 1..];
    }
    Ok(path)
}

fn constant_fits(value: &serde_json::Value, data_type: &DataType) -> bool {
    use serde_json::Value;
    match (value, data_type) {
        (Value::Null, t) => t.is_optional(),
        (v, DataType::Optional(inner)) => constant_fits(v, inner),
        (Value::Bool(_), DataType::Bool) => true,
        (Value::Number(n), DataType::Int32 | DataType::Int64) => n.is_i64() || n.is_u64(),
        (Value::Number(_), DataType::Float32 | DataType::Float64 | DataType::Decimal { .. } | DataType::Timestamp) => {
            true
        }
        (
            Value::String(_),
            DataType::String | DataType::Bytes | DataType::Timestamp | DataType::Date | DataType::Decimal { .. },
        ) => true,
        (Value::Array(items), DataType::List(inner)) => items.iter().all(|v| constant_fits(v, inner)),
        (Value::Object(map), DataType::Map(inner)) => map.values().all(|v| constant_fits(v, inner)),
        (Value::Object(map), DataType::Struct(fields)) => {
            map.keys().all(|k| fields.iter().any(|f| &f.name == k))
                && fields
                    .iter()
                    .all(|f| map.get(&f.name).map_or(f.data_type.is_optional(), |v| constant_fits(v, &f.data_type)))
        }
        _ => false,
    }
}

fn check_preproc(
    preproc: &std::collections::HashMap<String, proto::Preproc>,
    fields: &[Field],
    fields_known: bool,
    report: &mut Report,
) -> Option<BTreeMap<String, Preproc>> {
    use proto::preproc::Kind;
    let mut checked = BTreeMap::new();
    let mut ok = true;
    // Sorted so errors come out in a stable order.
    let mut entries: Vec<_> = preproc.iter().collect();
    entries.sort_by_key(|(name, _)| name.as_str());
    for (name, entry) in entries {
        let path = format!("preproc.{name}");
        let field = fields.iter().find(|f| &f.name == name);
        if field.is_none() && fields_known {
            report.push(&path, ErrorCode::UnknownField, format!("preproc key `{name}` is not a dataset field"));
            ok = false;
            continue;
        }
        match &entry.kind {
            None => {
                report.push(&path, ErrorCode::InvalidPreproc, "a preproc entry needs `ref`, `value` or `eval`");
                ok = false;
            }
            Some(Kind::Ref(text)) => match parse_ref_path(text) {
                Ok(ref_path) => {
                    checked.insert(name.clone(), Preproc::Ref(ref_path));
                }
                Err(e) => {
                    report.push(format!("{path}.ref"), ErrorCode::InvalidPreproc, e);
                    ok = false;
                }
            },
            Some(Kind::Eval(text)) => match field.map(|f| check_eval(text, f, fields, preproc)) {
                Some(Err(e)) => {
                    report.push(format!("{path}.eval"), e.code(ErrorCode::InvalidPreproc), e.message());
                    ok = false;
                }
                Some(Ok(expression)) => {
                    checked.insert(name.clone(), Preproc::Eval(expression));
                }
                None => ok = false,
            },
            Some(Kind::Value(value)) => {
                let json = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
                match field {
                    Some(field) if !constant_fits(&json, &field.data_type) => {
                        report.push(
                            format!("{path}.value"),
                            ErrorCode::InvalidPreproc,
                            format!("constant {json} does not fit field `{name}` of type `{}`", field.data_type),
                        );
                        ok = false;
                    }
                    _ => {
                        checked.insert(name.clone(), Preproc::Value(json));
                    }
                }
            }
        }
    }
    ok.then_some(checked)
}

/// An `eval` reads dataset fields that are not computed themselves, and fills
/// an optional field (an expression over payload values can be NULL).
fn check_eval(
    text: &str,
    field: &Field,
    fields: &[Field],
    preproc: &std::collections::HashMap<String, proto::Preproc>,
) -> Result<Expression, ParseError> {
    if !field.data_type.is_optional() {
        return Err(ParseError::Invalid(format!(
            "`{}` is computed by `eval`, which may give NULL: declare it `optional<{}>`",
            field.name, field.data_type
        )));
    }
    let expression = parse_expression(text, fields, &field.data_type)?;
    for read in expression.fields() {
        let computed = preproc.get(read).is_some_and(|p| matches!(p.kind, Some(proto::preproc::Kind::Eval(_))));
        if computed {
            return Err(ParseError::Invalid(format!("`eval` reads `{read}`, which is computed by `eval` too")));
        }
    }
    Ok(expression)
}

fn check_where(text: &str, fields: &[Field], fields_known: bool, report: &mut Report) -> Option<Option<Predicate>> {
    if text.trim().is_empty() {
        return Some(None);
    }
    if !fields_known {
        // Without a valid schema the predicate cannot be type-checked; the schema's errors say why.
        return None;
    }
    match parse_predicate(text, fields) {
        Ok(predicate) => Some(Some(predicate)),
        Err(e) => {
            report.push("where", e.code(ErrorCode::InvalidWhere), e.message());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_type::parse_data_type;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).single().expect("valid")
    }

    fn field(name: &str, type_text: &str) -> proto::Field {
        proto::Field { name: name.into(), r#type: Some((&parse_data_type(type_text).expect("valid")).into()) }
    }

    fn valid() -> proto::SourceDefinition {
        proto::SourceDefinition {
            name: "orders".into(),
            kinesis: Some(proto::KinesisStream {
                stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/orders".into(),
                role_arn: "arn:aws:iam::000000000000:role/reader".into(),
                init_position: Some(proto::kinesis_stream::InitPosition::TrimHorizon(pbjson_types::Empty {})),
                format: Some(proto::Format { kind: Some(proto::format::Kind::Json(proto::JsonFormat::default())) }),
                ..Default::default()
            }),
            dataset: Some(proto::Dataset {
                name: "orders".into(),
                fields: vec![
                    field("order_id", "int64"),
                    field("amount", "optional<float64>"),
                    field("ts", "timestamp"),
                ],
                timestamp: "ts".into(),
                keys: vec![],
                format: 0,
            }),
            r#where: "amount > 0".into(),
            ..Default::default()
        }
    }

    fn codes(result: Result<Vec<Source>, Vec<ValidationError>>) -> Vec<(String, &'static str)> {
        result.expect_err("invalid").into_iter().map(|e| (e.field, e.code.as_str())).collect()
    }

    #[test]
    fn valid_definition_gets_defaults() {
        let sources = validate_commit(&[valid()], now()).expect("valid");
        let source = &sources[0];
        assert_eq!(source.cdc, Cdc::Append);
        assert_eq!(source.disorder, DEFAULT_DISORDER);
        assert_eq!(source.kinesis.role.as_ref().map(|r| r.session_name.as_str()), Some(DEFAULT_SESSION_NAME));
        assert_eq!(source.kinesis.init_position, InitPosition::TrimHorizon);
        assert!(source.filter.is_some());
    }

    #[test]
    fn cdc_rules() {
        let mut keyed_append = valid();
        keyed_append.dataset.as_mut().expect("set").keys = vec!["order_id".into()];
        assert_eq!(codes(validate_commit(&[keyed_append.clone()], now())), [("cdc".to_owned(), "INVALID_CDC")]);
        keyed_append.cdc = proto::Cdc::Upsert as i32;
        assert!(validate_commit(&[keyed_append], now()).is_ok());
        let mut keyless_upsert = valid();
        keyless_upsert.cdc = proto::Cdc::Debezium as i32;
        assert_eq!(codes(validate_commit(&[keyless_upsert], now())), [("cdc".to_owned(), "INVALID_CDC")]);
    }

    #[test]
    fn timestamp_field_rules() {
        let mut missing = valid();
        missing.dataset.as_mut().expect("set").timestamp = "created".into();
        assert_eq!(codes(validate_commit(&[missing], now())), [("dataset.timestamp".to_owned(), "UNKNOWN_FIELD")]);
        let mut wrong_type = valid();
        wrong_type.dataset.as_mut().expect("set").timestamp = "order_id".into();
        assert_eq!(
            codes(validate_commit(&[wrong_type], now())),
            [("dataset.timestamp".to_owned(), "INVALID_TIMESTAMP_FIELD")]
        );
        let mut optional = valid();
        optional.dataset.as_mut().expect("set").fields[2] = field("ts", "optional<timestamp>");
        let errors = validate_commit(&[optional], now()).expect_err("optional");
        assert!(errors[0].message.contains("cannot be optional"), "{errors:?}");
    }

    #[test]
    fn keys_must_exist_once() {
        let mut source = valid();
        source.cdc = proto::Cdc::Upsert as i32;
        source.dataset.as_mut().expect("set").keys = vec!["order_id".into(), "nope".into(), "order_id".into()];
        assert_eq!(
            codes(validate_commit(&[source], now())),
            [("dataset.keys[1]".to_owned(), "UNKNOWN_FIELD"), ("dataset.keys[2]".to_owned(), "DUPLICATE_NAME")]
        );
    }

    #[test]
    fn time_range_and_sample() {
        let mut source = valid();
        source.since = Some(pbjson_types::Timestamp { seconds: 100, nanos: 0 });
        source.until = Some(pbjson_types::Timestamp { seconds: 100, nanos: 0 });
        source.sample = Some(1.5);
        assert_eq!(
            codes(validate_commit(&[source], now())),
            [("until".to_owned(), "INVALID_TIME_RANGE"), ("sample".to_owned(), "INVALID_SAMPLE")]
        );
    }

    #[test]
    fn partitions_must_agree() {
        let mut source = valid();
        source.kinesis.as_mut().expect("set").role_arn = "arn:aws-cn:iam::000000000000:role/reader".into();
        assert_eq!(codes(validate_commit(&[source], now())), [("kinesis.role_arn".to_owned(), "PARTITION_MISMATCH")]);
    }

    #[test]
    fn names_unique_in_a_commit() {
        let errors = codes(validate_commit(&[valid(), valid()], now()));
        assert_eq!(errors, [("name".to_owned(), "DUPLICATE_NAME")]);
        assert_eq!(codes(validate_commit(&[], now())), [("sources".to_owned(), "MISSING_FIELD")]);
    }

    #[test]
    fn preproc_keys_are_dataset_fields() {
        let mut source = valid();
        source.preproc.insert(
            "country".into(),
            proto::Preproc { kind: Some(proto::preproc::Kind::Ref("address[country]".into())) },
        );
        source
            .preproc
            .insert("order_id".into(), proto::Preproc { kind: Some(proto::preproc::Kind::Ref("id[".into())) });
        source.preproc.insert(
            "amount".into(),
            proto::Preproc {
                kind: Some(proto::preproc::Kind::Value(pbjson_types::Value {
                    kind: Some(pbjson_types::value::Kind::StringValue("x".into())),
                })),
            },
        );
        assert_eq!(
            codes(validate_commit(&[source], now())),
            [
                ("preproc.amount.value".to_owned(), "INVALID_PREPROC"),
                ("preproc.country".to_owned(), "UNKNOWN_FIELD"),
                ("preproc.order_id.ref".to_owned(), "INVALID_PREPROC"),
            ]
        );
        assert_eq!(
            parse_ref_path("address[country][code]"),
            Ok(vec!["address".into(), "country".into(), "code".into()])
        );
        assert_eq!(parse_ref_path("id"), Ok(vec!["id".into()]));
        for bad in ["", "[a]", "a[]", "a[b", "a[b]c", "a[[b]]"] {
            assert!(parse_ref_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn future_at_timestamp_from_the_api_is_refused() {
        let mut source = valid();
        source.kinesis.as_mut().expect("set").init_position = Some(proto::kinesis_stream::InitPosition::AtTimestamp(
            utc_to_timestamp(now() + chrono::Duration::hours(1)),
        ));
        assert_eq!(
            codes(validate_commit(&[source], now())),
            [("kinesis.init_position".to_owned(), "INVALID_INIT_POSITION")]
        );
    }

    #[test]
    fn metadata_columns_are_reserved_with_include_metadata() {
        let mut source = valid();
        source.kinesis.as_mut().expect("set").include_metadata = true;
        source.dataset.as_mut().expect("set").fields.push(field("_shard_id", "string"));
        assert_eq!(codes(validate_commit(&[source], now())), [("dataset.fields[3].name".to_owned(), "DUPLICATE_NAME")]);
    }

    #[test]
    fn avro_registry_checks() {
        let mut source = valid();
        source.kinesis.as_mut().expect("set").format = Some(proto::Format {
            kind: Some(proto::format::Kind::Avro(proto::AvroFormat {
                schema_source: Some(proto::avro_format::SchemaSource::Registry(proto::SchemaRegistry {
                    kind: 0,
                    url: "ftp://registry".into(),
                    auth: Some(proto::schema_registry::Auth::Basic(proto::BasicAuth {
                        username: String::new(),
                        password: None,
                    })),
                })),
            })),
        });
        assert_eq!(
            codes(validate_commit(&[source], now())),
            [
                ("kinesis.format.avro.url".to_owned(), "INVALID_FORMAT"),
                ("kinesis.format.avro.password".to_owned(), "INVALID_SECRET"),
                ("kinesis.format.avro.username".to_owned(), "MISSING_FIELD"),
            ]
        );
    }
}
