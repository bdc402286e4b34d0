//! Definition files (YAML or JSON) and their friendly scalars.
//!
//! A file is parsed into raw structs that refuse unknown keys, so a typo in a
//! key is caught with its line and column rather than silently ignored. The raw
//! form keeps friendly scalars (`init_position: trim_horizon`, `disorder: 14d`,
//! `type: list<string>`) as written; [`normalise`] turns them into the proto
//! messages, reporting a coded error for each it cannot read, and the proto
//! messages then go through the same validation as an API body.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tributary_proto::pbjson_types;
use tributary_proto::v1 as proto;

use crate::data_type::parse_data_type;
use crate::definition::{Source, utc_to_timestamp, validate_with_reports};
use crate::error::{ErrorCode, Report, ValidationError};
use crate::init_position::{InitPosition, Scalar, parse_init_position};
use crate::secret::SecretPolicy;
use crate::time::{DATE_TIME_FORMS, parse_date_time, parse_duration};

/// A definition file could not be read or is not a definition at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML/JSON, or not shaped like a definition file.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl LoadError {
    /// The error as a coded validation error, for callers that report both kinds alike.
    pub fn to_validation_error(&self) -> ValidationError {
        ValidationError {
            source: String::new(),
            field: String::new(),
            code: ErrorCode::MalformedDefinition,
            message: self.to_string(),
        }
    }
}

/// The top level of a definition file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionFile {
    /// The sources it defines.
    pub sources: Vec<RawSource>,
}

/// A source as written in a file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawSource {
    #[serde(default)]
    pub name: String,
    pub kinesis: Option<RawKinesis>,
    pub dataset: Option<RawDataset>,
    pub cdc: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub disorder: Option<RawScalar>,
    #[serde(default, deserialize_with = "present")]
    pub since: Option<RawScalar>,
    #[serde(default, deserialize_with = "present")]
    pub until: Option<RawScalar>,
    #[serde(default)]
    pub preproc: HashMap<String, RawPreproc>,
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    #[serde(default)]
    pub sample: Option<RawSample>,
    pub late: Option<String>,
    pub ingest: Option<RawIngest>,
    #[serde(default)]
    pub bounded: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub idleness: Option<RawScalar>,
}

/// The `ingest` block as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawIngest {
    pub flush_rows: Option<u64>,
    pub flush_bytes: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub flush_interval: Option<RawScalar>,
    pub error_log_max_rows: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub error_log_max_age: Option<RawScalar>,
}

/// The `kinesis` block as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawKinesis {
    #[serde(default)]
    pub stream_arn: String,
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub init_position: Option<RawScalar>,
    pub format: Option<RawFormat>,
    #[serde(default)]
    pub include_metadata: bool,
    #[serde(default)]
    pub role_session_name: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub source_identity: Option<String>,
    #[serde(default)]
    pub consumer: Option<String>,
    #[serde(default)]
    pub consumer_name: Option<String>,
}

/// `json`, `{json: {...}}`, `{avro: {...}}` or `{protobuf: {...}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum RawFormat {
    Name(String),
    Json { json: RawJson },
    Avro { avro: RawAvro },
    Protobuf { protobuf: RawProtobuf },
}

/// The `json` block as written: only Glue framing has settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawJson {
    pub registry: Option<RawRegistry>,
}

/// `registry: confluent` (with `url` and credentials beside it) or `registry: {glue: {...}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum RawRegistry {
    Kind(String),
    Glue { glue: RawGlue },
}

/// A Glue Schema Registry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawGlue {
    #[serde(default)]
    pub registry_name: String,
    pub schema_name: Option<String>,
    pub region: Option<String>,
    pub role_arn: Option<String>,
}

/// The `avro` block as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawAvro {
    pub registry: Option<RawRegistry>,
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<RawSecret>,
    pub token: Option<RawSecret>,
    /// An inline writer schema: a JSON string or the schema itself as YAML/JSON.
    pub schema: Option<serde_json::Value>,
}

/// The `protobuf` block as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawProtobuf {
    #[serde(default)]
    pub message: String,
    /// Inline `.proto` text.
    pub schema: Option<String>,
    /// Files the inline schema imports: import name → `.proto` text.
    #[serde(default)]
    pub imports: BTreeMap<String, String>,
    pub registry: Option<RawRegistry>,
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<RawSecret>,
    pub token: Option<RawSecret>,
}

/// A secret: inline text or `{env: VAR}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum RawSecret {
    Inline(String),
    Env { env: String },
}

/// The `dataset` block as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawDataset {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub fields: Vec<RawField>,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub keys: Vec<String>,
    /// `parquet` (the default) or `iceberg`.
    #[serde(default)]
    pub format: Option<String>,
}

/// A field: `{name: order_id, type: int64}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawField {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub type_text: Option<String>,
}

/// `sample: 0.1` or `sample: {rate: 0.1, using: [a, b]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum RawSample {
    Rate(RawScalar),
    Spec(RawSampleSpec),
}

/// The long form of `sample`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawSampleSpec {
    pub rate: RawScalar,
    #[serde(default)]
    pub using: Vec<String>,
}

/// A preproc entry: `{ref: "a[b]"}`, `{value: ...}` or `{eval: "a + b"}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawPreproc {
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
    #[serde(default)]
    pub eval: Option<String>,
    #[serde(default, deserialize_with = "present_value")]
    pub value: Option<serde_json::Value>,
}

/// A scalar whose meaning depends on the key it is under.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum RawScalar {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
    Null(()),
}

impl RawScalar {
    fn as_scalar(&self) -> Scalar<'_> {
        match self {
            RawScalar::Bool(b) => Scalar::Bool(*b),
            RawScalar::Int(i) => Scalar::Int(i128::from(*i)),
            RawScalar::UInt(u) => Scalar::Int(i128::from(*u)),
            RawScalar::Float(f) => Scalar::Float(*f),
            RawScalar::Text(t) => Scalar::Text(t),
            RawScalar::Null(()) => Scalar::Null,
        }
    }
}

/// Keeps an explicit `null` distinct from an absent key.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<RawScalar>, D::Error> {
    RawScalar::deserialize(deserializer).map(Some)
}

fn present_value<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// Reads and parses a definition file: JSON when it ends in `.json`, else YAML.
pub fn load_file(path: &Path) -> Result<DefinitionFile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.to_owned(), source })?;
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse_text(&text, is_json).map_err(|(line, column, message)| LoadError::Parse {
        path: path.to_owned(),
        line,
        column,
        message,
    })
}

/// Parses definition text; the error is `(line, column, message)`.
pub fn parse_text(text: &str, is_json: bool) -> Result<DefinitionFile, (usize, usize, String)> {
    if is_json {
        serde_json::from_str(text).map_err(|e| (e.line(), e.column(), e.to_string()))
    } else {
        serde_norway::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            (line, column, e.to_string())
        })
    }
}

/// Normalises and validates the sources of one or more files as one commit.
pub fn validate_raw_sources(sources: &[RawSource], now: DateTime<Utc>) -> Result<Vec<Source>, Vec<ValidationError>> {
    validate_raw_sources_with(sources, now, &SecretPolicy::default())
}

/// [`validate_raw_sources`] under a given [`SecretPolicy`].
pub fn validate_raw_sources_with(
    sources: &[RawSource],
    now: DateTime<Utc>,
    policy: &SecretPolicy,
) -> Result<Vec<Source>, Vec<ValidationError>> {
    let (definitions, reports): (Vec<_>, Vec<_>) = sources.iter().map(|raw| normalise(raw, now)).unzip();
    validate_with_reports(&definitions, reports, now, policy)
}

/// Normalises the sources of files into the proto messages an API commit carries,
/// or the errors met on the way.
pub fn to_commit_sources(
    sources: &[RawSource],
    now: DateTime<Utc>,
) -> Result<Vec<proto::SourceDefinition>, Vec<ValidationError>> {
    let mut definitions = Vec::with_capacity(sources.len());
    let mut errors = Vec::new();
    for raw in sources {
        let (definition, report) = normalise(raw, now);
        definitions.push(definition);
        errors.extend(report.into_errors());
    }
    if errors.is_empty() { Ok(definitions) } else { Err(errors) }
}

fn normalise(raw: &RawSource, now: DateTime<Utc>) -> (proto::SourceDefinition, Report) {
    let mut report = Report::new(raw.name.clone());
    let definition = proto::SourceDefinition {
        name: raw.name.clone(),
        kinesis: raw.kinesis.as_ref().map(|k| normalise_kinesis(k, &mut report, now)),
        dataset: raw.dataset.as_ref().map(|d| normalise_dataset(d, &mut report)),
        cdc: normalise_cdc(raw.cdc.as_deref(), &mut report),
        disorder: raw.disorder.as_ref().and_then(|d| normalise_duration(d, "disorder", &mut report)),
        since: raw.since.as_ref().and_then(|t| normalise_time(t, "since", &mut report)),
        until: raw.until.as_ref().and_then(|t| normalise_time(t, "until", &mut report)),
        bounded: raw.bounded.unwrap_or(false),
        idleness: raw.idleness.as_ref().and_then(|d| normalise_duration(d, "idleness", &mut report)),
        ingest: raw.ingest.as_ref().map(|ingest| proto::Ingest {
            flush_rows: ingest.flush_rows,
            flush_bytes: ingest.flush_bytes,
            flush_interval: ingest
                .flush_interval
                .as_ref()
                .and_then(|d| normalise_duration(d, "ingest.flush_interval", &mut report)),
            error_log_max_rows: ingest.error_log_max_rows,
            error_log_max_age: ingest
                .error_log_max_age
                .as_ref()
                .and_then(|d| normalise_duration(d, "ingest.error_log_max_age", &mut report)),
        }),
        preproc: raw
            .preproc
            .iter()
            .map(|(name, entry)| {
                let given = [entry.reference.is_some(), entry.value.is_some(), entry.eval.is_some()];
                if given.iter().filter(|g| **g).count() > 1 {
                    report.push(
                        format!("preproc.{name}"),
                        ErrorCode::InvalidPreproc,
                        "give one of `ref`, `value` or `eval`",
                    );
                    return (name.clone(), proto::Preproc { kind: None });
                }
                let kind = match (&entry.reference, &entry.value) {
                    (None, None) => entry.eval.clone().map(proto::preproc::Kind::Eval),
                    (Some(path), None) => Some(proto::preproc::Kind::Ref(path.clone())),
                    (None, Some(value)) => match json_to_proto_value(value) {
                        Some(value) => Some(proto::preproc::Kind::Value(value)),
                        None => {
                            report.push(
                                format!("preproc.{name}.value"),
                                ErrorCode::InvalidPreproc,
                                "the constant is not representable",
                            );
                            None
                        }
                    },
                    (Some(_), Some(_)) => None,
                };
                (name.clone(), proto::Preproc { kind })
            })
            .collect(),
        r#where: raw.filter.clone().unwrap_or_default(),
        sample: raw.sample.as_ref().and_then(|s| normalise_sample(s.rate(), &mut report)),
        sample_using: match &raw.sample {
            Some(RawSample::Spec(spec)) => spec.using.clone(),
            _ => Vec::new(),
        },
        late: normalise_late(raw.late.as_deref(), &mut report),
    };
    (definition, report)
}

fn normalise_kinesis(raw: &RawKinesis, report: &mut Report, now: DateTime<Utc>) -> proto::KinesisStream {
    use proto::kinesis_stream::InitPosition as Wire;
    let init_position =
        raw.init_position.as_ref().and_then(|scalar| match parse_init_position(scalar.as_scalar(), now) {
            Ok(InitPosition::Latest) => Some(Wire::Latest(pbjson_types::Empty {})),
            Ok(InitPosition::TrimHorizon) => Some(Wire::TrimHorizon(pbjson_types::Empty {})),
            Ok(InitPosition::AtTimestamp(time)) => Some(Wire::AtTimestamp(utc_to_timestamp(time))),
            Err(message) => {
                report.push("kinesis.init_position", ErrorCode::InvalidInitPosition, message);
                None
            }
        });
    proto::KinesisStream {
        stream_arn: raw.stream_arn.trim().to_owned(),
        role_arn: raw.role_arn.as_deref().unwrap_or_default().trim().to_owned(),
        init_position,
        format: raw.format.as_ref().and_then(|f| normalise_format(f, report)),
        include_metadata: raw.include_metadata,
        role_session_name: raw.role_session_name.clone().unwrap_or_default(),
        external_id: raw.external_id.clone().unwrap_or_default(),
        source_identity: raw.source_identity.clone().unwrap_or_default(),
        consumer: raw.consumer.clone().unwrap_or_default(),
        consumer_name: raw.consumer_name.clone().unwrap_or_default(),
    }
}

fn normalise_format(raw: &RawFormat, report: &mut Report) -> Option<proto::Format> {
    use proto::format::Kind;
    let kind = match raw {
        RawFormat::Name(name) if name.trim().eq_ignore_ascii_case("json") => Kind::Json(proto::JsonFormat::default()),
        RawFormat::Name(name)
            if name.trim().eq_ignore_ascii_case("avro") || name.trim().eq_ignore_ascii_case("protobuf") =>
        {
            report.push(
                "kinesis.format",
                ErrorCode::InvalidFormat,
                format!(
                    "{} needs its schema: `{{{0}: {{schema: ...}}}}` or a registry (`registry: confluent` with `url`, or `registry: {{glue: {{registry_name: ...}}}}`)",
                    name.trim().to_ascii_lowercase()
                ),
            );
            return None;
        }
        RawFormat::Name(name) => {
            report.push(
                "kinesis.format",
                ErrorCode::InvalidFormat,
                format!("unknown format `{name}`; expected `json`, `{{avro: {{...}}}}` or `{{protobuf: {{...}}}}`"),
            );
            return None;
        }
        RawFormat::Json { json } => Kind::Json(proto::JsonFormat {
            glue: match &json.registry {
                None => None,
                Some(RawRegistry::Glue { glue }) => Some(normalise_glue(glue)),
                Some(RawRegistry::Kind(kind)) => {
                    report.push(
                        "kinesis.format.json.registry",
                        ErrorCode::InvalidFormat,
                        format!("JSON records come bare or framed by `registry: {{glue: {{...}}}}`, not `{kind}`"),
                    );
                    return None;
                }
            },
        }),
        RawFormat::Avro { avro } => Kind::Avro(normalise_avro(avro, report)?),
        RawFormat::Protobuf { protobuf } => Kind::Protobuf(normalise_protobuf(protobuf, report)?),
    };
    Some(proto::Format { kind: Some(kind) })
}

fn normalise_glue(raw: &RawGlue) -> proto::GlueSchemaRegistry {
    proto::GlueSchemaRegistry {
        registry_name: raw.registry_name.clone(),
        schema_name: raw.schema_name.clone().unwrap_or_default(),
        region: raw.region.clone().unwrap_or_default(),
        role_arn: raw.role_arn.clone().unwrap_or_default(),
    }
}

/// A registry's settings as written in a format block.
struct RawRegistrySettings<'a> {
    registry: Option<&'a RawRegistry>,
    url: &'a Option<String>,
    username: &'a Option<String>,
    password: &'a Option<RawSecret>,
    token: &'a Option<RawSecret>,
}

impl RawRegistrySettings<'_> {
    /// Whether a Confluent registry's settings were written.
    fn confluent_settings(&self) -> bool {
        self.url.is_some() || self.username.is_some() || self.password.is_some() || self.token.is_some()
    }
}

/// What a format block's schema is, as written.
enum SchemaChoice<'a, S> {
    /// An inline schema.
    Inline(&'a S),
    /// A registry's.
    Registry(NormalisedRegistry),
    /// Neither was given.
    Neither,
}

/// An inline `schema` or a `registry` (with its settings), never both; `None` after a reported error.
fn schema_choice<'a, S>(
    schema: &'a Option<S>,
    settings: &RawRegistrySettings<'_>,
    field: &str,
    report: &mut Report,
) -> Option<SchemaChoice<'a, S>> {
    match (schema, settings.registry) {
        (Some(_), Some(_)) => {
            report.push(field, ErrorCode::InvalidFormat, "give a `registry` or an inline `schema`, not both");
            None
        }
        (Some(_), None) if settings.confluent_settings() => {
            report.push(
                field,
                ErrorCode::InvalidFormat,
                "`url`, `username`, `password` and `token` belong to a `registry`",
            );
            None
        }
        (Some(schema), None) => Some(SchemaChoice::Inline(schema)),
        (None, Some(registry)) => normalise_registry(registry, settings, field, report).map(SchemaChoice::Registry),
        (None, None) => Some(SchemaChoice::Neither),
    }
}

/// Where a format's schemas come from, normalised.
enum NormalisedRegistry {
    Confluent(proto::SchemaRegistry),
    Glue(proto::GlueSchemaRegistry),
}

fn normalise_registry(
    registry: &RawRegistry,
    raw: &RawRegistrySettings<'_>,
    field: &str,
    report: &mut Report,
) -> Option<NormalisedRegistry> {
    let secret = |s: &RawSecret| proto::Secret {
        value: Some(match s {
            RawSecret::Inline(v) => proto::secret::Value::Inline(v.clone()),
            RawSecret::Env { env } => proto::secret::Value::Env(env.clone()),
        }),
    };
    let kind = match registry {
        RawRegistry::Glue { glue } => {
            if raw.confluent_settings() {
                report.push(
                    field,
                    ErrorCode::InvalidFormat,
                    "`url`, `username`, `password` and `token` belong to a Confluent registry, not to Glue (which uses the source's AWS role)",
                );
                return None;
            }
            return Some(NormalisedRegistry::Glue(normalise_glue(glue)));
        }
        RawRegistry::Kind(kind) if kind.trim().eq_ignore_ascii_case("confluent") => proto::RegistryKind::Confluent,
        RawRegistry::Kind(kind) => {
            report.push(
                format!("{field}.registry"),
                ErrorCode::InvalidFormat,
                format!("unknown registry `{kind}`; expected `confluent` or `{{glue: {{registry_name: ...}}}}`"),
            );
            return None;
        }
    };
    let auth = match (raw.username, raw.password, raw.token) {
        (None, None, None) => None,
        (None, None, Some(token)) => Some(proto::schema_registry::Auth::Token(secret(token))),
        (username, password, None) => Some(proto::schema_registry::Auth::Basic(proto::BasicAuth {
            username: username.clone().unwrap_or_default(),
            password: password.as_ref().map(secret),
        })),
        _ => {
            report.push(field, ErrorCode::InvalidFormat, "give `username` and `password`, or a `token`, not both");
            return None;
        }
    };
    Some(NormalisedRegistry::Confluent(proto::SchemaRegistry {
        kind: kind as i32,
        url: raw.url.clone().unwrap_or_default(),
        auth,
    }))
}

fn normalise_avro(raw: &RawAvro, report: &mut Report) -> Option<proto::AvroFormat> {
    use proto::avro_format::SchemaSource;
    const FIELD: &str = "kinesis.format.avro";
    let settings = RawRegistrySettings {
        registry: raw.registry.as_ref(),
        url: &raw.url,
        username: &raw.username,
        password: &raw.password,
        token: &raw.token,
    };
    let schema_source = match schema_choice(&raw.schema, &settings, FIELD, report)? {
        SchemaChoice::Inline(serde_json::Value::String(text)) => SchemaSource::Schema(text.clone()),
        SchemaChoice::Inline(schema) => SchemaSource::Schema(schema.to_string()),
        SchemaChoice::Registry(NormalisedRegistry::Confluent(registry)) => SchemaSource::Registry(registry),
        SchemaChoice::Registry(NormalisedRegistry::Glue(glue)) => SchemaSource::Glue(glue),
        SchemaChoice::Neither => {
            report.push(
                FIELD,
                ErrorCode::InvalidFormat,
                "avro needs a `registry` (with `url`) or an inline writer `schema`",
            );
            return None;
        }
    };
    Some(proto::AvroFormat { schema_source: Some(schema_source) })
}

fn normalise_protobuf(raw: &RawProtobuf, report: &mut Report) -> Option<proto::ProtobufFormat> {
    use proto::protobuf_format::SchemaSource;
    let settings = RawRegistrySettings {
        registry: raw.registry.as_ref(),
        url: &raw.url,
        username: &raw.username,
        password: &raw.password,
        token: &raw.token,
    };
    let schema_source = match schema_choice(&raw.schema, &settings, "kinesis.format.protobuf", report)? {
        SchemaChoice::Inline(schema) => Some(SchemaSource::Schema(schema.clone())),
        SchemaChoice::Registry(NormalisedRegistry::Confluent(registry)) => Some(SchemaSource::Registry(registry)),
        SchemaChoice::Registry(NormalisedRegistry::Glue(glue)) => Some(SchemaSource::Glue(glue)),
        // The static checks say what is missing.
        SchemaChoice::Neither => None,
    };
    Some(proto::ProtobufFormat {
        message: raw.message.clone(),
        schema_source,
        imports: raw.imports.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    })
}

fn normalise_dataset(raw: &RawDataset, report: &mut Report) -> proto::Dataset {
    let fields = raw
        .fields
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let data_type = match field.type_text.as_deref() {
                None => None,
                Some(text) => match parse_data_type(text) {
                    Ok(data_type) => Some((&data_type).into()),
                    Err(e) => {
                        report.push(
                            format!("dataset.fields[{index}].type"),
                            e.code(ErrorCode::UnknownType),
                            format!("field `{}`: {e}", field.name),
                        );
                        None
                    }
                },
            };
            proto::Field { name: field.name.clone(), r#type: data_type }
        })
        .collect();
    let format = match raw.format.as_deref().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None => proto::DatasetFormat::Unspecified,
        Some("parquet") => proto::DatasetFormat::Parquet,
        Some("iceberg") => proto::DatasetFormat::Iceberg,
        Some(other) => {
            report.push(
                "dataset.format",
                ErrorCode::InvalidDatasetFormat,
                format!("unknown `format: {other}`; expected `parquet` or `iceberg`"),
            );
            proto::DatasetFormat::Unspecified
        }
    };
    proto::Dataset {
        name: raw.name.clone(),
        fields,
        timestamp: raw.timestamp.clone(),
        keys: raw.keys.clone(),
        format: format as i32,
    }
}

impl RawSample {
    fn rate(&self) -> &RawScalar {
        match self {
            RawSample::Rate(rate) => rate,
            RawSample::Spec(spec) => &spec.rate,
        }
    }
}

fn normalise_late(raw: Option<&str>, report: &mut Report) -> i32 {
    let late = match raw.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None => proto::Late::Unspecified,
        Some("drop") => proto::Late::Drop,
        Some("keep") => proto::Late::Keep,
        Some(other) => {
            report.push("late", ErrorCode::InvalidLate, format!("unknown `late: {other}`; expected `drop` or `keep`"));
            proto::Late::Unspecified
        }
    };
    late as i32
}

fn normalise_cdc(raw: Option<&str>, report: &mut Report) -> i32 {
    let cdc = match raw.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("append") => proto::Cdc::Append,
        Some("upsert") => proto::Cdc::Upsert,
        Some("debezium") => proto::Cdc::Debezium,
        Some(other) => {
            report.push(
                "cdc",
                ErrorCode::InvalidCdc,
                format!("unknown cdc mode `{other}`; expected `append`, `upsert` or `debezium`"),
            );
            proto::Cdc::Unspecified
        }
    };
    cdc as i32
}

fn normalise_duration(raw: &RawScalar, field: &str, report: &mut Report) -> Option<pbjson_types::Duration> {
    let result = match raw {
        RawScalar::Text(text) => parse_duration(text),
        RawScalar::Null(()) => return None,
        RawScalar::Int(_) | RawScalar::UInt(_) | RawScalar::Float(_) => {
            Err("a bare number has no unit; write it like `3600s`, `14d` or `1h 30m`".to_owned())
        }
        RawScalar::Bool(b) => Err(format!("`{b}` is not a duration; write it like `14d` or `1h 30m`")),
    };
    match result.and_then(|seconds| i64::try_from(seconds).map_err(|_| "the duration is too long".to_owned())) {
        Ok(seconds) => Some(pbjson_types::Duration { seconds, nanos: 0 }),
        Err(message) => {
            report.push(field, ErrorCode::InvalidDuration, message);
            None
        }
    }
}

fn normalise_time(raw: &RawScalar, field: &str, report: &mut Report) -> Option<pbjson_types::Timestamp> {
    let time = match raw {
        RawScalar::Null(()) => return None,
        RawScalar::Text(text) => parse_date_time(text),
        RawScalar::Int(seconds) => chrono::DateTime::from_timestamp(*seconds, 0),
        RawScalar::UInt(seconds) => i64::try_from(*seconds).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0)),
        RawScalar::Float(_) | RawScalar::Bool(_) => None,
    };
    match time {
        Some(time) => Some(utc_to_timestamp(time)),
        None => {
            report.push(
                field,
                ErrorCode::InvalidTimeRange,
                format!("`{field}` must be {DATE_TIME_FORMS}, or whole epoch seconds"),
            );
            None
        }
    }
}

fn normalise_sample(raw: &RawScalar, report: &mut Report) -> Option<f64> {
    let fraction = match raw {
        RawScalar::Null(()) => return None,
        RawScalar::Float(f) => Some(*f),
        RawScalar::Int(i) => Some(*i as f64),
        RawScalar::UInt(u) => Some(*u as f64),
        RawScalar::Text(text) => text.trim().parse::<f64>().ok(),
        RawScalar::Bool(_) => None,
    };
    // Out-of-range fractions are left to the shared check so API and files say the same.
    if fraction.is_none() {
        report.push("sample", ErrorCode::InvalidSample, "`sample` must be a fraction in [0, 1]");
    }
    fraction
}

fn json_to_proto_value(value: &serde_json::Value) -> Option<pbjson_types::Value> {
    serde_json::from_value(value.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).single().expect("valid")
    }

    const EXAMPLE: &str = r#"
sources:
  - name: orders
    kinesis:
      stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/orders
      role_arn: arn:aws:iam::000000000000:role/tributary-reader
      init_position: trim_horizon
      format: json
      include_metadata: false
    dataset:
      name: orders
      fields:
        - {name: order_id, type: int64}
        - {name: amount, type: "optional<float64>"}
        - {name: ts, type: timestamp}
        - {name: tags, type: "list<string>"}
        - {name: customer, type: "struct<id: int64, email: optional<string>>"}
        - {name: country, type: "optional<string>"}
        - {name: source, type: string}
      timestamp: ts
    cdc: append
    disorder: 14d
    since: 2024-01-01T00:00:00Z
    until: null
    preproc:
      country: {ref: "address[country]"}
      source:  {value: "kinesis"}
    where: "amount > 0 AND country <> 'XX'"
    sample: 0.1
"#;

    #[test]
    fn the_design_example_validates() {
        let file = parse_text(EXAMPLE, false).expect("parses");
        let sources = validate_raw_sources(&file.sources, now()).unwrap_or_else(|e| panic!("{e:#?}"));
        let source = &sources[0];
        assert_eq!(source.disorder.as_secs(), 14 * 86_400);
        assert_eq!(source.since.map(|t| t.to_rfc3339()), Some("2024-01-01T00:00:00+00:00".to_owned()));
        assert_eq!(source.until, None);
        assert_eq!(source.sample.as_ref().map(|s| s.rate), Some(0.1));
        assert_eq!(source.dataset.fields.len(), 7);
    }

    #[test]
    fn ingest_settings_override_the_server_defaults_and_are_checked() {
        let text = format!(
            "{EXAMPLE}    ingest: {{flush_rows: 5000, flush_interval: 2s, error_log_max_rows: 10, error_log_max_age: 1d}}\n"
        );
        let sources = validate_raw_sources(&parse_text(&text, false).expect("parses").sources, now()).expect("valid");
        let ingest = sources[0].ingest;
        assert_eq!((ingest.flush_rows, ingest.flush_bytes), (Some(5000), None));
        assert_eq!(ingest.flush_interval, Some(std::time::Duration::from_secs(2)));
        assert_eq!(
            (ingest.error_log_max_rows, ingest.error_log_max_age),
            (Some(10), Some(std::time::Duration::from_secs(86_400)))
        );

        let bad = format!("{EXAMPLE}    ingest: {{flush_rows: 0, flush_interval: 0s, error_log_max_age: soon}}\n");
        let errors =
            validate_raw_sources(&parse_text(&bad, false).expect("parses").sources, now()).expect_err("invalid");
        let codes: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(
            codes,
            [
                ("ingest.error_log_max_age", "INVALID_DURATION"),
                ("ingest.flush_rows", "INVALID_INGEST"),
                ("ingest.flush_interval", "INVALID_INGEST"),
            ]
        );
        assert!(
            parse_text(&format!("{EXAMPLE}    ingest: {{flush_rowz: 1}}\n"), false).is_err(),
            "unknown keys are refused"
        );

        // A batch larger than the decoder can hold would fail at the flush, not here.
        let oversized = format!("{EXAMPLE}    ingest: {{flush_bytes: {}}}\n", crate::MAX_FLUSH_BYTES + 1);
        let errors =
            validate_raw_sources(&parse_text(&oversized, false).expect("parses").sources, now()).expect_err("invalid");
        assert_eq!(errors[0].field, "ingest.flush_bytes");
        assert_eq!(errors[0].code.as_str(), "INVALID_INGEST");
        assert!(errors[0].message.contains("at most 536870912"), "{}", errors[0].message);
        let largest = format!("{EXAMPLE}    ingest: {{flush_bytes: {}}}\n", crate::MAX_FLUSH_BYTES);
        assert!(validate_raw_sources(&parse_text(&largest, false).expect("parses").sources, now()).is_ok());
    }

    #[test]
    fn bounded_sources_need_idleness_and_only_they_may_have_it() {
        let check = |extra: &str| {
            let text = format!("{EXAMPLE}{extra}");
            validate_raw_sources(&parse_text(&text, false).expect("parses").sources, now())
        };
        let sources = check("    bounded: true\n    idleness: 1s\n").expect("valid");
        assert_eq!(sources[0].idleness, Some(std::time::Duration::from_secs(1)));
        assert_eq!(check("").expect("valid")[0].idleness, None, "unbounded by default");
        for (extra, message) in [
            ("    bounded: true\n", "needs `idleness`"),
            ("    idleness: 1h\n", "`bounded: true` sources only"),
            ("    bounded: false\n    idleness: 1h\n", "`bounded: true` sources only"),
            ("    bounded: true\n    idleness: 0s\n", "positive duration"),
        ] {
            let errors = check(extra).expect_err(extra);
            assert_eq!((errors[0].field.as_str(), errors[0].code.as_str()), ("idleness", "INVALID_BOUNDED"), "{extra}");
            assert!(errors[0].message.contains(message), "{extra}: {}", errors[0].message);
        }
    }

    #[test]
    fn sample_late_and_eval_forms_and_their_commit_errors() {
        let check = |from: &str, to: &str| {
            assert!(EXAMPLE.contains(from), "{from}");
            let text = EXAMPLE.replace(from, to);
            validate_raw_sources(&parse_text(&text, false).expect("parses").sources, now())
        };
        let coded = |from: &str, to: &str| -> Vec<(String, String, String)> {
            let errors = check(from, to).expect_err(to);
            errors.into_iter().map(|e| (e.field, e.code.as_str().to_owned(), e.message)).collect()
        };
        // sample: the default hashes every field but the timestamp and the preproc'd ones.
        let sources = check("", "").expect("valid");
        let using = sources[0].sample.as_ref().map(|s| s.using.clone()).expect("a sample");
        assert_eq!(using, ["order_id", "amount", "tags", "customer"]);
        let sources = check("sample: 0.1", "sample: {rate: 0.5, using: [customer, order_id]}").expect("valid");
        assert_eq!(
            sources[0].sample,
            Some(crate::Sample { rate: 0.5, using: vec!["customer".into(), "order_id".into()] })
        );
        for (to, field, message) in [
            ("sample: {rate: 0.5, using: [nope]}", "sample.using[0]", "not a dataset field"),
            ("sample: {rate: 0.5, using: [order_id, country]}", "sample.using[1]", "set by `preproc`"),
            ("sample: {rate: 0.5, using: [amount, amount]}", "sample.using[1]", "named twice"),
            ("sample: {rate: 1.5, using: [amount]}", "sample", "fraction in [0, 1]"),
            ("sample: {rate: x}", "sample", "fraction in [0, 1]"),
        ] {
            let errors = coded("sample: 0.1", to);
            assert_eq!((errors[0].0.as_str(), errors[0].1.as_str()), (field, "INVALID_SAMPLE"), "{to}");
            assert!(errors[0].2.contains(message), "{to}: {}", errors[0].2);
        }
        // late
        assert_eq!(check("", "").expect("valid")[0].late, crate::LateRows::Drop);
        assert_eq!(check("sample: 0.1", "late: keep").expect("valid")[0].late, crate::LateRows::Keep);
        assert_eq!(coded("sample: 0.1", "late: maybe")[0].1, "INVALID_LATE");
        // dataset.format
        assert_eq!(check("", "").expect("valid")[0].dataset.format, crate::DatasetFormat::Parquet);
        let iceberg = check("      timestamp: ts\n", "      timestamp: ts\n      format: iceberg\n").expect("valid");
        assert_eq!(iceberg[0].dataset.format, crate::DatasetFormat::Iceberg);
        let errors = coded("      timestamp: ts\n", "      timestamp: ts\n      format: delta\n");
        assert_eq!((errors[0].0.as_str(), errors[0].1.as_str()), ("dataset.format", "INVALID_DATASET_FORMAT"));
        let text = EXAMPLE.replace("      timestamp: ts\n", "      timestamp: ts\n      format: iceberg\n");
        let name =
            text.split("    dataset:\n      name: ").nth(1).and_then(|rest| rest.lines().next()).expect("a name");
        let clash = text.replace(&format!("      name: {name}\n"), &format!("      name: {name}__rejected\n"));
        let errors =
            validate_raw_sources(&parse_text(&clash, false).expect("parses").sources, now()).expect_err("clash");
        assert_eq!((errors[0].field.as_str(), errors[0].code.as_str()), ("dataset.name", "DUPLICATE_NAME"));
        // eval
        let sources = check("country: {ref: \"address[country]\"}", "amount: {eval: \"order_id * 2\"}").expect("valid");
        assert!(matches!(sources[0].preproc.get("amount"), Some(crate::Preproc::Eval(_))));
        let errors = coded("source:  {value: \"kinesis\"}", "source:  {eval: \"'x'\"}");
        assert_eq!((errors[0].0.as_str(), errors[0].1.as_str()), ("preproc.source.eval", "INVALID_PREPROC"));
        assert!(errors[0].2.contains("may give NULL: declare it `optional<string>`"), "{}", errors[0].2);
        let country = "country: {ref: \"address[country]\"}";
        for (to, field, message) in [
            ("amount: {eval: \"country\"}", "preproc.amount.eval", "does not fit type `optional<float64>`"),
            ("amount: {eval: \"order_id +\"}", "preproc.amount.eval", "ends where a value was expected"),
            ("amount: {eval: \"nope * 2\"}", "preproc.amount.eval", "`nope` is not a dataset field"),
            ("amount: {eval: \"CASE WHEN ts > '2024-01-01' THEN 1 ELSE 'x' END\"}", "preproc.amount.eval", "branches"),
            ("amount: {eval: \"amount + 1\"}", "preproc.amount.eval", "computed by `eval` too"),
            ("amount: {eval: \"1\", value: 2}", "preproc.amount", "one of `ref`, `value` or `eval`"),
        ] {
            let errors = coded(country, to);
            let found = errors.iter().find(|e| e.0.starts_with(field)).unwrap_or_else(|| panic!("{to}: {errors:?}"));
            assert_eq!(found.1, "INVALID_PREPROC", "{to}");
            assert!(found.2.contains(message), "{to}: {}", found.2);
        }
    }

    #[test]
    fn consumer_is_polling_or_efo() {
        let check = |consumer: &str| {
            let text = EXAMPLE.replace("format: json", &format!("format: json\n      {consumer}"));
            validate_raw_sources(&parse_text(&text, false).expect("parses").sources, now())
        };
        let efo = check("consumer: efo").expect("valid");
        assert_eq!(
            efo[0].kinesis.consumer,
            crate::Consumer::EnhancedFanOut { consumer_name: "tributary-orders".into() }
        );
        let named = check("consumer: efo\n      consumer_name: analytics").expect("valid");
        assert_eq!(named[0].kinesis.consumer, crate::Consumer::EnhancedFanOut { consumer_name: "analytics".into() });
        assert_eq!(check("consumer: polling").expect("valid")[0].kinesis.consumer, crate::Consumer::Polling);
        for (bad, field) in [
            ("consumer: kcl", "kinesis.consumer"),
            ("consumer: efo\n      consumer_name: \"no spaces\"", "kinesis.consumer_name"),
            ("consumer_name: analytics", "kinesis.consumer_name"),
        ] {
            let errors = check(bad).expect_err(bad);
            assert_eq!((errors[0].field.as_str(), errors[0].code.as_str()), (field, "INVALID_CONSUMER"), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_are_parse_errors_with_a_location() {
        let text = "sources:\n  - name: a\n    kinesis:\n      stream_arm: x\n";
        let (line, column, message) = parse_text(text, false).expect_err("typo");
        assert_eq!((line, column), (4, 7));
        assert!(message.contains("stream_arm"), "{message}");
        let (line, _, _) = parse_text("{\"sources\": [}", true).expect_err("bad json");
        assert_eq!(line, 1);
    }

    #[test]
    fn friendly_scalar_errors_are_coded_and_not_repeated() {
        let text = EXAMPLE
            .replace("init_position: trim_horizon", "init_position: 1685547000000")
            .replace("disorder: 14d", "disorder: 1x")
            .replace("list<string>", "list<strng>");
        let file = parse_text(&text, false).expect("parses");
        let errors = validate_raw_sources(&file.sources, now()).expect_err("invalid");
        let codes: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(
            codes,
            [
                ("kinesis.init_position", "INVALID_INIT_POSITION"),
                ("dataset.fields[3].type", "UNKNOWN_TYPE"),
                ("disorder", "INVALID_DURATION"),
            ]
        );
        assert!(errors[0].message.contains("milliseconds"));
        assert!(errors[1].message.contains("`tags`") && errors[1].message.contains("strng"));
    }

    fn registry_text(password_var: &str) -> String {
        EXAMPLE.replace(
            "format: json",
            &format!("format: {{avro: {{registry: confluent, url: \"http://localhost:8081\", username: u, password: {{env: {password_var}}}}}}}"),
        )
    }

    #[test]
    fn avro_forms() {
        let registry = EXAMPLE.replace(
            "format: json",
            "format: {avro: {registry: confluent, url: \"http://localhost:8081\", username: u, password: {env: TRIBUTARY_SECRET_REG_PASSWORD}}}",
        );
        let sources =
            validate_raw_sources(&parse_text(&registry, false).expect("parses").sources, now()).expect("valid");
        let crate::definition::Format::Avro(crate::definition::AvroFormat::Registry(registry)) =
            &sources[0].kinesis.format
        else {
            panic!("{:?}", sources[0].kinesis.format)
        };
        assert_eq!(registry.url, "http://localhost:8081");
        // The server's own credentials are not for a definition to name (and send to its registry).
        for var in ["AWS_SECRET_ACCESS_KEY", "TRIBUTARY_TOKEN"] {
            let stealing = registry_text(var);
            let errors =
                validate_raw_sources(&parse_text(&stealing, false).expect("parses").sources, now()).expect_err(var);
            assert_eq!(
                (errors[0].field.as_str(), errors[0].code),
                ("kinesis.format.avro.password", ErrorCode::InvalidSecret)
            );
            assert!(errors[0].message.contains("TRIBUTARY_SECRET_"), "{}", errors[0].message);
        }
        let custom = crate::secret::SecretPolicy { env_prefix: "REG_".into() };
        let sources = validate_raw_sources_with(
            &parse_text(&registry_text("REG_PASSWORD"), false).expect("parses").sources,
            now(),
            &custom,
        );
        assert!(sources.is_ok(), "{sources:?}");
        let inline = EXAMPLE.replace("format: json", "format: {avro: {schema: {type: record, name: r, fields: []}}}");
        assert!(validate_raw_sources(&parse_text(&inline, false).expect("parses").sources, now()).is_ok());
        let both = EXAMPLE.replace("format: json", "format: {avro: {schema: \"int\", registry: confluent}}");
        let errors = validate_raw_sources(&parse_text(&both, false).expect("parses").sources, now()).expect_err("both");
        assert_eq!(errors[0].code, ErrorCode::InvalidFormat);
        let xml = EXAMPLE.replace("format: json", "format: xml");
        let errors = validate_raw_sources(&parse_text(&xml, false).expect("parses").sources, now()).expect_err("xml");
        assert_eq!((errors[0].field.as_str(), errors[0].code), ("kinesis.format", ErrorCode::InvalidFormat));
    }

    #[test]
    fn glue_and_protobuf_forms() {
        use crate::definition::{AvroFormat, Format, ProtobufSchema};
        let parse = |format: &str| {
            let text = EXAMPLE.replace("format: json", &format!("format: {format}"));
            validate_raw_sources(&parse_text(&text, false).expect("parses").sources, now())
        };
        let sources = parse("{avro: {registry: {glue: {registry_name: shop, schema_name: orders}}}}").expect("valid");
        let Format::Avro(AvroFormat::Glue(glue)) = &sources[0].kinesis.format else { panic!() };
        assert_eq!((glue.registry_name.as_str(), glue.schema_name.as_deref()), ("shop", Some("orders")));
        assert_eq!(glue.region, "us-east-1", "the stream's region by default");
        assert_eq!(glue.role_arn, None, "the source's role by default");

        let sources = parse(
            "{json: {registry: {glue: {registry_name: shop, region: eu-west-1, role_arn: \"arn:aws:iam::000000000000:role/glue\"}}}}",
        )
        .expect("valid");
        let Format::Json { glue: Some(glue) } = &sources[0].kinesis.format else { panic!() };
        assert_eq!(glue.region, "eu-west-1");
        assert_eq!(glue.role_arn.as_ref().map(|r| r.as_str()), Some("arn:aws:iam::000000000000:role/glue"));
        assert_eq!(parse("{json: {}}").expect("valid")[0].kinesis.format, Format::JSON);

        let sources = parse(
            "{protobuf: {message: shop.Order, schema: \"syntax = \\\"proto3\\\"; package shop; import \\\"money.proto\\\"; message Order {}\", imports: {money.proto: \"syntax = \\\"proto3\\\";\"}}}",
        )
        .expect("valid");
        let Format::Protobuf(protobuf) = &sources[0].kinesis.format else { panic!() };
        assert_eq!(protobuf.message, "shop.Order");
        let ProtobufSchema::Inline { imports, .. } = &protobuf.schema else { panic!() };
        assert!(imports.contains_key("money.proto"));
        let sources = parse("{protobuf: {message: .shop.Order, registry: confluent, url: \"http://localhost:8081\"}}")
            .expect("valid");
        let Format::Protobuf(protobuf) = &sources[0].kinesis.format else { panic!() };
        assert!(matches!(protobuf.schema, ProtobufSchema::Registry(_)));
        assert_eq!(protobuf.message, "shop.Order", "a leading dot is the same full name");
        let sources =
            parse("{protobuf: {message: shop.Order, registry: {glue: {registry_name: shop}}}}").expect("valid");
        let Format::Protobuf(protobuf) = &sources[0].kinesis.format else { panic!() };
        assert!(matches!(protobuf.schema, ProtobufSchema::Glue(_)));

        let refused = [
            (
                "{avro: {registry: {glue: {}}}}",
                "kinesis.format.avro.registry.glue.registry_name",
                ErrorCode::MissingField,
            ),
            (
                "{avro: {registry: {glue: {registry_name: \"bad name\"}}}}",
                "kinesis.format.avro.registry.glue.registry_name",
                ErrorCode::InvalidFormat,
            ),
            (
                "{avro: {registry: {glue: {registry_name: r, region: Mars}}}}",
                "kinesis.format.avro.registry.glue.region",
                ErrorCode::InvalidFormat,
            ),
            (
                "{avro: {registry: {glue: {registry_name: r, role_arn: nope}}}}",
                "kinesis.format.avro.registry.glue.role_arn",
                ErrorCode::InvalidArn,
            ),
            (
                "{avro: {registry: {glue: {registry_name: r}}, url: \"http://x\"}}",
                "kinesis.format.avro",
                ErrorCode::InvalidFormat,
            ),
            ("{json: {registry: confluent}}", "kinesis.format.json.registry", ErrorCode::InvalidFormat),
            (
                "{protobuf: {schema: \"syntax = \\\"proto3\\\";\"}}",
                "kinesis.format.protobuf.message",
                ErrorCode::MissingField,
            ),
            ("{protobuf: {message: shop.Order}}", "kinesis.format.protobuf", ErrorCode::InvalidFormat),
            (
                "{protobuf: {message: \"shop..Order\", schema: x}}",
                "kinesis.format.protobuf.message",
                ErrorCode::InvalidFormat,
            ),
            (
                "{protobuf: {message: shop.Order, registry: {glue: {registry_name: r}}, imports: {a.proto: x}}}",
                "kinesis.format.protobuf.imports",
                ErrorCode::InvalidFormat,
            ),
            ("protobuf", "kinesis.format", ErrorCode::InvalidFormat),
        ];
        for (format, field, code) in refused {
            let errors = parse(format).expect_err(format);
            assert_eq!((errors[0].field.as_str(), errors[0].code), (field, code), "{format}: {errors:?}");
        }
    }

    #[test]
    fn explicit_null_init_position_is_invalid_not_missing() {
        let text = EXAMPLE.replace("init_position: trim_horizon", "init_position: null");
        let errors = validate_raw_sources(&parse_text(&text, false).expect("parses").sources, now()).expect_err("null");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code, ErrorCode::InvalidInitPosition);
        let text = EXAMPLE.replace("      init_position: trim_horizon\n", "");
        let errors =
            validate_raw_sources(&parse_text(&text, false).expect("parses").sources, now()).expect_err("absent");
        assert_eq!(errors[0].code, ErrorCode::MissingField);
    }
}
