//! Live commit checks: prove, against AWS, that a validated source can be read.
//!
//! The checks run in the order a worker needs them and stop at the first
//! failure (a later call cannot succeed when an earlier one failed):
//!
//! 1. `sts:AssumeRole` on the source's role, when it names one
//!    ([AssumeRole](https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html));
//! 2. with those credentials, [`DescribeStreamSummary`](https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeStreamSummary.html):
//!    the stream exists and is `ACTIVE` or `UPDATING`;
//! 3. [`ListShards`](https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListShards.html), then
//!    for polling [`GetShardIterator`](https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html) and
//!    [`GetRecords`](https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html),
//!    for enhanced fan-out [`DescribeStreamConsumer`](https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeStreamConsumer.html)
//!    (a consumer not registered yet is fine: the worker registers it): each
//!    call proves one IAM action the reader needs. `RegisterStreamConsumer` and
//!    `SubscribeToShard` cannot be tried without registering a consumer, so
//!    they are not.
//!
//! 4. for a Glue Schema Registry source, the registry's checks ([`glue`]).
//!
//! A refusal is classified by HTTP status as well as by error code: some
//! peers (and proxies) answer a denied call with a 403 whose body is not the
//! service's JSON, and that is still a denial of that action.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::aws::ClientFactory;
use crate::definition::{AssumeRole, Consumer, Source};
use crate::error::{ErrorCode, ValidationError};

pub use crate::aws::DEFAULT_TIMEOUT;

mod glue;

/// Whether a registry's schema (its data format, its text) can fill the
/// source's dataset; `Err` says why not. The codec provides it
/// (`tributary_codec::check_registered_schema`), as this crate has no decoder.
pub type SchemaCheck = fn(&Source, &str, &str) -> Result<(), String>;

/// Field path of errors about the role.
const ROLE_FIELD: &str = "kinesis.role_arn";
/// Field path of errors about the stream.
const STREAM_FIELD: &str = "kinesis.stream_arn";
/// Field path of errors about the stream consumer (enhanced fan-out).
const CONSUMER_FIELD: &str = "kinesis.consumer";

/// Runs every live check for `source` within `timeout`; `Ok` when the stream
/// can be read, else the one error that stopped the checks.
pub async fn check_source(
    factory: &ClientFactory,
    source: &Source,
    timeout: Duration,
    schemas: SchemaCheck,
) -> Result<(), ValidationError> {
    let error = |field: &str, code: ErrorCode, message: String| ValidationError {
        source: source.name.clone(),
        field: field.to_owned(),
        code,
        message,
    };
    match tokio::time::timeout(timeout, run_checks(factory, source, schemas)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(failure)) => Err(error(failure.field, failure.code, failure.message)),
        Err(_elapsed) => Err(error(
            STREAM_FIELD,
            ErrorCode::EndpointUnreachable,
            format!("AWS did not answer within {} s", timeout.as_secs_f64()),
        )),
    }
}

/// Why a check failed, before it is attributed to a source.
struct Failure {
    field: &'static str,
    code: ErrorCode,
    message: String,
}

async fn run_checks(factory: &ClientFactory, source: &Source, schemas: SchemaCheck) -> Result<(), Failure> {
    let region = source.kinesis.stream_arn.region();
    let credentials = match &source.kinesis.role {
        Some(role) => Some(assume_role(factory, region, role).await?),
        None => None,
    };
    check_stream(factory, source, credentials.clone()).await?;
    match source.kinesis.format.glue_registry() {
        Some(registry) => glue::check(factory, source, registry, credentials, schemas).await,
        None => Ok(()),
    }
}

async fn check_stream(
    factory: &ClientFactory,
    source: &Source,
    credentials: Option<SharedCredentialsProvider>,
) -> Result<(), Failure> {
    let stream_arn = source.kinesis.stream_arn.as_str();
    let kinesis = factory.kinesis(source.kinesis.stream_arn.region(), credentials);

    let summary = kinesis
        .describe_stream_summary()
        .stream_arn(stream_arn)
        .send()
        .await
        .map_err(|e| kinesis_failure(&e, "kinesis:DescribeStreamSummary"))?;
    let status = summary.stream_description_summary().map(|s| s.stream_status().clone());
    match status {
        Some(StreamStatus::Active | StreamStatus::Updating) => {}
        Some(other) => {
            return Err(Failure {
                field: STREAM_FIELD,
                code: ErrorCode::StreamNotActive,
                message: format!("stream `{stream_arn}` is {}; it must be ACTIVE or UPDATING", other.as_str()),
            });
        }
        None => {
            return Err(Failure {
                field: STREAM_FIELD,
                code: ErrorCode::AwsError,
                message: "DescribeStreamSummary answered without a stream description".to_owned(),
            });
        }
    }

    let shards = kinesis
        .list_shards()
        .stream_arn(stream_arn)
        .max_results(1)
        .send()
        .await
        .map_err(|e| kinesis_failure(&e, "kinesis:ListShards"))?;
    let Some(shard_id) = shards.shards().first().map(|s| s.shard_id().to_owned()) else {
        return Err(Failure {
            field: STREAM_FIELD,
            code: ErrorCode::AwsError,
            message: format!("stream `{stream_arn}` lists no shards"),
        });
    };

    if let Consumer::EnhancedFanOut { consumer_name } = &source.kinesis.consumer {
        return match kinesis.describe_stream_consumer().stream_arn(stream_arn).consumer_name(consumer_name).send().await
        {
            Ok(_) => Ok(()),
            Err(error) if classify(&error) == Class::NotFound => Ok(()),
            Err(error) => {
                Err(Failure { field: CONSUMER_FIELD, ..kinesis_failure(&error, "kinesis:DescribeStreamConsumer") })
            }
        };
    }

    let iterator = kinesis
        .get_shard_iterator()
        .stream_arn(stream_arn)
        .shard_id(&shard_id)
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await
        .map_err(|e| kinesis_failure(&e, "kinesis:GetShardIterator"))?;
    let Some(iterator) = iterator.shard_iterator() else {
        return Err(Failure {
            field: STREAM_FIELD,
            code: ErrorCode::AwsError,
            message: format!("GetShardIterator gave no iterator for shard `{shard_id}`"),
        });
    };

    kinesis
        .get_records()
        .stream_arn(stream_arn)
        .shard_iterator(iterator)
        .limit(1)
        .send()
        .await
        .map_err(|e| kinesis_failure(&e, "kinesis:GetRecords"))?;
    Ok(())
}

async fn assume_role(
    factory: &ClientFactory,
    region: &str,
    role: &AssumeRole,
) -> Result<SharedCredentialsProvider, Failure> {
    let sts = factory.sts(region, None);
    let mut request = sts.assume_role().role_arn(role.role_arn.as_str()).role_session_name(&role.session_name);
    if let Some(external_id) = &role.external_id {
        request = request.external_id(external_id);
    }
    if let Some(source_identity) = &role.source_identity {
        request = request.source_identity(source_identity);
    }
    let output = request.send().await.map_err(|e| match classify(&e) {
        Class::Unreachable => Failure {
            field: ROLE_FIELD,
            code: ErrorCode::EndpointUnreachable,
            message: format!("STS did not answer: {}", unreachable_cause(&e)),
        },
        Class::Denied | Class::NotFound | Class::Other => Failure {
            field: ROLE_FIELD,
            code: ErrorCode::RoleNotAssumable,
            message: format!("cannot assume `{}`: {}", role.role_arn, describe(&e)),
        },
    })?;
    let Some(credentials) = output.credentials() else {
        return Err(Failure {
            field: ROLE_FIELD,
            code: ErrorCode::RoleNotAssumable,
            message: format!("STS answered AssumeRole for `{}` without credentials", role.role_arn),
        });
    };
    let expiry = std::time::SystemTime::try_from(*credentials.expiration()).ok();
    Ok(SharedCredentialsProvider::new(Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_owned()),
        expiry,
        "tributary-assume-role",
    )))
}

/// What kind of failure an AWS call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Nothing answered: connection refused, DNS, timeout.
    Unreachable,
    /// An answer that refuses the caller's permission.
    Denied,
    /// The named resource does not exist.
    NotFound,
    /// Any other answer.
    Other,
}

fn classify<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Class {
    match error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => Class::Unreachable,
        SdkError::ConstructionFailure(_) => Class::Other,
        _ => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            match error.code() {
                Some("ResourceNotFoundException" | "EntityNotFoundException") => Class::NotFound,
                Some("AccessDeniedException" | "AccessDenied" | "KMSAccessDeniedException") => Class::Denied,
                _ if status == Some(403) => Class::Denied,
                _ => Class::Other,
            }
        }
    }
}

/// Why nothing answered (connection refused, timeout), from the error's source chain.
fn unreachable_cause<E: std::error::Error + 'static>(error: &SdkError<E, HttpResponse>) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    match error {
        SdkError::TimeoutError(_) => "the request timed out".to_owned(),
        _ => cause.to_string(),
    }
}

/// `Code: message` of an AWS answer. When the SDK could not parse one (a peer or
/// proxy answering in another protocol, e.g. XML to a JSON call), the code and
/// message are read from the raw body; never the whole body or its headers.
fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(error: &SdkError<E, HttpResponse>) -> String {
    if let (Some(code), message) = (error.code(), error.message()) {
        return match message {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        };
    }
    let Some(response) = error.raw_response() else {
        return DisplayErrorContext(error).to_string();
    };
    let status = response.status().as_u16();
    let body = response.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
    match (tag_text(&body, "Code"), tag_text(&body, "Message")) {
        (Some(code), Some(message)) => format!("HTTP {status} {code}: {message}"),
        (Some(code), None) => format!("HTTP {status} {code}"),
        _ => format!("HTTP {status} with no error code"),
    }
}

/// The text of the first `<tag>...</tag>` in an XML error body, bounded in length.
fn tag_text(body: &str, tag: &str) -> Option<String> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + body[start..].find(&format!("</{tag}>"))?;
    Some(body[start..end].chars().take(500).collect())
}

fn kinesis_failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
    error: &SdkError<E, HttpResponse>,
    action: &str,
) -> Failure {
    let (code, message) = match classify(error) {
        Class::Unreachable => {
            (ErrorCode::EndpointUnreachable, format!("Kinesis did not answer: {}", unreachable_cause(error)))
        }
        Class::Denied => {
            // KMS-encrypted streams also need the key; name what was really refused.
            let action = if error.code() == Some("KMSAccessDeniedException") { "kms:Decrypt" } else { action };
            (ErrorCode::AccessDenied, format!("`{action}` was refused: {}", describe(error)))
        }
        Class::NotFound => (ErrorCode::StreamNotFound, format!("the stream does not exist: {}", describe(error))),
        Class::Other => (ErrorCode::AwsError, format!("`{action}` failed: {}", describe(error))),
    };
    Failure { field: STREAM_FIELD, code, message }
}
