//! Validation errors: what a commit answers when it refuses a definition.
//!
//! Every refusal names the source, the field path inside it and a stable
//! [`ErrorCode`] that callers (the API, the CLI, scripts) can branch on; the
//! message is for people. A commit collects every error it can find rather than
//! stopping at the first, so a user fixes a definition in one round.

use std::fmt;

/// Stable, machine-readable reason a definition was refused.
///
/// The string forms (`INVALID_ARN`, ...) are part of the API contract: add
/// variants, never rename them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// The file or body is not a definition at all (syntax, shape, unknown key).
    MalformedDefinition,
    /// A required field is absent.
    MissingField,
    /// A source, dataset or field name breaks the naming grammar.
    InvalidName,
    /// Two sources (or two fields of one struct) share a name.
    DuplicateName,
    /// A stream or role ARN is malformed.
    InvalidArn,
    /// The stream and role ARNs are in different AWS partitions.
    PartitionMismatch,
    /// `init_position` is none of the accepted forms.
    InvalidInitPosition,
    /// A type string names no known type.
    UnknownType,
    /// A reference (timestamp, key, preproc, where) names no dataset field.
    UnknownField,
    /// The timestamp field is not of type `timestamp`.
    InvalidTimestampField,
    /// The `cdc` mode and the dataset's keys disagree.
    InvalidCdc,
    /// A duration is not of the `1h 30m` grammar.
    InvalidDuration,
    /// `since`/`until` is not a time, or `since >= until`.
    InvalidTimeRange,
    /// A `preproc` entry is malformed.
    InvalidPreproc,
    /// The `where` predicate does not parse or is not boolean.
    InvalidWhere,
    /// `sample` is outside `[0, 1]`, or its `using` columns are wrong.
    InvalidSample,
    /// `late` is neither `drop` nor `keep`.
    InvalidLate,
    /// `dataset.format` is neither `parquet` nor `iceberg`.
    InvalidDatasetFormat,
    /// The record format is malformed (bad registry URL, bad inline schema, ...).
    InvalidFormat,
    /// A secret is empty or names an unset environment variable.
    InvalidSecret,
    /// STS refused to assume the role.
    RoleNotAssumable,
    /// The stream does not exist.
    StreamNotFound,
    /// The stream exists but is not ACTIVE or UPDATING.
    StreamNotActive,
    /// An IAM action the reader needs was refused; the message names it.
    AccessDenied,
    /// An AWS endpoint did not answer within the timeout.
    EndpointUnreachable,
    /// The writer schema cannot resolve to the dataset schema.
    SchemaIncompatible,
    /// The Glue Schema Registry the format names does not exist.
    SchemaRegistryNotFound,
    /// The schema the format names is not in its registry.
    SchemaNotFound,
    /// AWS answered with an error no other code describes.
    AwsError,
    /// An `ingest` setting (flush policy, error-log retention) is out of range.
    InvalidIngest,
    /// `consumer` is neither `polling` nor `efo`, or its consumer name is invalid.
    InvalidConsumer,
    /// `bounded` and `idleness` do not go together (each needs the other).
    InvalidBounded,
    /// A `where` or `eval` expression, or a type, nests deeper or holds more
    /// terms than Tributary accepts (every recursive structure from a user is bounded).
    TooComplex,
}

impl ErrorCode {
    /// The stable string form used by the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedDefinition => "MALFORMED_DEFINITION",
            ErrorCode::MissingField => "MISSING_FIELD",
            ErrorCode::InvalidName => "INVALID_NAME",
            ErrorCode::DuplicateName => "DUPLICATE_NAME",
            ErrorCode::InvalidArn => "INVALID_ARN",
            ErrorCode::PartitionMismatch => "PARTITION_MISMATCH",
            ErrorCode::InvalidInitPosition => "INVALID_INIT_POSITION",
            ErrorCode::UnknownType => "UNKNOWN_TYPE",
            ErrorCode::UnknownField => "UNKNOWN_FIELD",
            ErrorCode::InvalidTimestampField => "INVALID_TIMESTAMP_FIELD",
            ErrorCode::InvalidCdc => "INVALID_CDC",
            ErrorCode::InvalidDuration => "INVALID_DURATION",
            ErrorCode::InvalidTimeRange => "INVALID_TIME_RANGE",
            ErrorCode::InvalidPreproc => "INVALID_PREPROC",
            ErrorCode::InvalidWhere => "INVALID_WHERE",
            ErrorCode::InvalidSample => "INVALID_SAMPLE",
            ErrorCode::InvalidLate => "INVALID_LATE",
            ErrorCode::InvalidDatasetFormat => "INVALID_DATASET_FORMAT",
            ErrorCode::InvalidFormat => "INVALID_FORMAT",
            ErrorCode::InvalidSecret => "INVALID_SECRET",
            ErrorCode::RoleNotAssumable => "ROLE_NOT_ASSUMABLE",
            ErrorCode::StreamNotFound => "STREAM_NOT_FOUND",
            ErrorCode::StreamNotActive => "STREAM_NOT_ACTIVE",
            ErrorCode::AccessDenied => "ACCESS_DENIED",
            ErrorCode::EndpointUnreachable => "ENDPOINT_UNREACHABLE",
            ErrorCode::SchemaIncompatible => "SCHEMA_INCOMPATIBLE",
            ErrorCode::SchemaRegistryNotFound => "SCHEMA_REGISTRY_NOT_FOUND",
            ErrorCode::SchemaNotFound => "SCHEMA_NOT_FOUND",
            ErrorCode::AwsError => "AWS_ERROR",
            ErrorCode::InvalidIngest => "INVALID_INGEST",
            ErrorCode::InvalidConsumer => "INVALID_CONSUMER",
            ErrorCode::InvalidBounded => "INVALID_BOUNDED",
            ErrorCode::TooComplex => "TOO_COMPLEX",
        }
    }

    /// Whether the refusal came from talking to AWS (live checks) rather than
    /// from the definition's text.
    pub fn is_live(self) -> bool {
        match self {
            ErrorCode::RoleNotAssumable
            | ErrorCode::StreamNotFound
            | ErrorCode::StreamNotActive
            | ErrorCode::AccessDenied
            | ErrorCode::EndpointUnreachable
            | ErrorCode::SchemaRegistryNotFound
            | ErrorCode::SchemaNotFound
            | ErrorCode::AwsError => true,
            ErrorCode::MalformedDefinition
            | ErrorCode::MissingField
            | ErrorCode::InvalidName
            | ErrorCode::DuplicateName
            | ErrorCode::InvalidArn
            | ErrorCode::PartitionMismatch
            | ErrorCode::InvalidIngest
            | ErrorCode::InvalidConsumer
            | ErrorCode::InvalidBounded
            | ErrorCode::TooComplex
            | ErrorCode::InvalidInitPosition
            | ErrorCode::UnknownType
            | ErrorCode::UnknownField
            | ErrorCode::InvalidTimestampField
            | ErrorCode::InvalidCdc
            | ErrorCode::InvalidDuration
            | ErrorCode::InvalidTimeRange
            | ErrorCode::InvalidPreproc
            | ErrorCode::InvalidWhere
            | ErrorCode::InvalidSample
            | ErrorCode::InvalidLate
            | ErrorCode::InvalidDatasetFormat
            | ErrorCode::InvalidFormat
            | ErrorCode::InvalidSecret
            | ErrorCode::SchemaIncompatible => false,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a source definition was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The source's name as written (may itself be invalid or empty).
    pub source: String,
    /// Dotted path inside the source, e.g. `kinesis.stream_arn`.
    pub field: String,
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable explanation; never contains a secret.
    pub message: String,
}

impl fmt::Display for ValidationError {
    /// The CLI's line format: `CODE source.field: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.code)?;
        match (self.source.is_empty(), self.field.is_empty()) {
            (false, false) => write!(f, "{}.{}", self.source, self.field)?,
            (false, true) => f.write_str(&self.source)?,
            (true, false) => f.write_str(&self.field)?,
            (true, true) => f.write_str("<commit>")?,
        }
        write!(f, ": {}", self.message)
    }
}

impl From<ValidationError> for tributary_proto::v1::ValidationError {
    fn from(error: ValidationError) -> Self {
        tributary_proto::v1::ValidationError {
            source: error.source,
            field: error.field,
            code: error.code.as_str().to_owned(),
            message: error.message,
        }
    }
}

/// Collects the errors of one source while it is validated.
#[derive(Debug)]
pub(crate) struct Report {
    source: String,
    errors: Vec<ValidationError>,
}

impl Report {
    pub(crate) fn new(source: impl Into<String>) -> Self {
        Report { source: source.into(), errors: Vec::new() }
    }

    pub(crate) fn push(&mut self, field: impl Into<String>, code: ErrorCode, message: impl Into<String>) {
        self.errors.push(ValidationError {
            source: self.source.clone(),
            field: field.into(),
            code,
            message: message.into(),
        });
    }

    /// Whether an error was already reported at `field` or below it, so a
    /// later check does not report the same mistake a second time.
    pub(crate) fn has_error_at(&self, field: &str) -> bool {
        self.errors
            .iter()
            .any(|e| e.field == field || e.field.strip_prefix(field).is_some_and(|rest| rest.starts_with(['.', '['])))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn into_errors(self) -> Vec<ValidationError> {
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_cli_line_format() {
        let error = ValidationError {
            source: "orders".into(),
            field: "kinesis.stream_arn".into(),
            code: ErrorCode::InvalidArn,
            message: "bad".into(),
        };
        assert_eq!(error.to_string(), "INVALID_ARN orders.kinesis.stream_arn: bad");
    }

    #[test]
    fn has_error_at_matches_the_field_and_its_children_only() {
        let mut report = Report::new("s");
        report.push("dataset.fields[1].type", ErrorCode::UnknownType, "x");
        assert!(report.has_error_at("dataset.fields[1]"));
        assert!(report.has_error_at("dataset"));
        assert!(!report.has_error_at("dataset.fields[10]"));
        assert!(!report.has_error_at("data"));
    }
}

/// Why a type string or an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// It does not parse, or its types do not fit.
    Invalid(String),
    /// It nests deeper, or holds more terms, than Tributary accepts.
    TooComplex(String),
}

impl ParseError {
    /// What is wrong, for the user.
    pub fn message(&self) -> &str {
        match self {
            ParseError::Invalid(message) | ParseError::TooComplex(message) => message,
        }
    }

    /// [`ErrorCode::TooComplex`] past a bound, `invalid` for any other refusal.
    pub fn code(&self, invalid: ErrorCode) -> ErrorCode {
        match self {
            ParseError::Invalid(_) => invalid,
            ParseError::TooComplex(_) => ErrorCode::TooComplex,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl From<String> for ParseError {
    fn from(message: String) -> ParseError {
        ParseError::Invalid(message)
    }
}
