//! Listing and sampling streams for a catalog (the metadata workflow).
//!
//! OpenMetadata's Kinesis connector lists every stream, describes each one,
//! lists its shards and reads a few records to show as sample data. The calls
//! here do the same, one file per AWS call, with the mistakes that connector
//! makes designed out:
//! - every listing is paginated the way Kinesis requires (`ListShards` pages
//!   after the first carry only the token);
//! - throttling (`LimitExceededException`, shared by every caller of the
//!   account's control plane) and passing faults are retried with jittered
//!   backoff, a bounded number of times: a persistent error ends the call with
//!   its cause instead of looping;
//! - sampling reads recent data with a `Limit` on every call and unpacks KPL
//!   aggregates, so each sampled message is one user record's payload.

mod describe_summary;
mod list_shards;
mod list_streams;
mod sample;

use std::future::Future;
use std::time::Duration;

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

pub use describe_summary::StreamSummary;
pub use list_shards::ListedShard;
pub(crate) use list_shards::list_all_shards;
pub use list_streams::ListedStream;
pub use sample::{SampleSettings, SampledRecord};

use crate::ReaderError;
use crate::fault::{Backoff, Fault, classify};

/// How the catalog calls page, wait and retry.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// `Limit` of each `ListStreams` page (Kinesis: 1 to 10,000).
    pub streams_page_size: i32,
    /// `MaxResults` of each `ListShards` page (Kinesis: 1 to 10,000).
    pub shards_page_size: i32,
    /// Bound on one call, response included.
    pub call_timeout: Duration,
    /// Attempts per call before a throttled or passing failure is given up.
    pub attempts: u32,
    /// First and largest wait between attempts.
    pub backoff_initial: Duration,
    /// Largest wait between attempts.
    pub backoff_max: Duration,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            streams_page_size: 100,
            shards_page_size: 1000,
            call_timeout: Duration::from_secs(30),
            attempts: 8,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// The Kinesis calls a catalog needs, over one client.
#[derive(Debug, Clone)]
pub struct Catalog {
    client: aws_sdk_kinesis::Client,
    config: CatalogConfig,
}

/// What kind of failure ended a catalog call; callers branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogErrorKind {
    /// IAM refused the action (HTTP 403 or an `AccessDenied*` code).
    AccessDenied,
    /// The stream (or shard) does not exist (any more).
    NotFound,
    /// Still throttled or failing after every attempt.
    Exhausted,
    /// Refused for another reason retrying cannot fix.
    Refused,
}

/// A catalog call that failed for good.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} on `{target}`: {detail}")]
pub struct CatalogError {
    /// The AWS operation, e.g. `ListStreams`.
    pub operation: &'static str,
    /// The stream (or account) it was about.
    pub target: String,
    /// The kind of failure.
    pub kind: CatalogErrorKind,
    /// AWS' code and message, or the last passing failure.
    pub detail: String,
}

impl Catalog {
    /// A catalog over `client`. The client's own retries should be off (see
    /// [`Catalog::client_config`]): these calls retry themselves.
    pub fn new(client: aws_sdk_kinesis::Client, config: CatalogConfig) -> Catalog {
        Catalog { client, config }
    }

    /// `client`'s configuration with the SDK's retries switched off, so that
    /// throttling is retried once, here, with this module's bounds.
    pub fn client_config(config: &aws_sdk_kinesis::Config) -> aws_sdk_kinesis::Config {
        config.to_builder().retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled()).build()
    }

    /// The Kinesis client the calls go through.
    pub fn client(&self) -> &aws_sdk_kinesis::Client {
        &self.client
    }

    /// Runs `call` until it succeeds, fails for good, or runs out of attempts.
    async fn retrying<T, F, Fut>(&self, operation: &'static str, target: &str, mut call: F) -> Result<T, CatalogError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
        let mut attempt = 1;
        loop {
            let failure = match tokio::time::timeout(self.config.call_timeout, call()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(Failure::Final(kind, detail))) => {
                    return Err(CatalogError { operation, target: target.to_owned(), kind, detail });
                }
                Ok(Err(Failure::Passing(detail))) => detail,
                Err(_elapsed) => format!("timed out after {:?}", self.config.call_timeout),
            };
            if attempt >= self.config.attempts {
                let detail = format!("gave up after {attempt} attempts: {failure}");
                return Err(CatalogError {
                    operation,
                    target: target.to_owned(),
                    kind: CatalogErrorKind::Exhausted,
                    detail,
                });
            }
            attempt += 1;
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

/// One failed attempt, classified.
#[derive(Debug)]
enum Failure {
    /// Throttled, 5xx, dropped: another attempt may succeed.
    Passing(String),
    /// Will fail the same way again.
    Final(CatalogErrorKind, String),
}

impl Failure {
    fn of<E>(error: &SdkError<E, HttpResponse>, operation: &'static str, target: &str) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        Failure::from_fault(classify(error, operation, target))
    }

    fn from_fault(fault: Fault) -> Failure {
        match fault {
            Fault::Throttled => Failure::Passing("throttled (LimitExceeded)".to_owned()),
            Fault::Transient(detail) => Failure::Passing(detail),
            Fault::ExpiredIterator => Failure::Passing("shard iterator expired".to_owned()),
            Fault::Fatal(ReaderError::Kinesis { code, message, .. }) => {
                // The classifier names an answer without an error code by its status ("HTTP 403":
                // moto's and IAM's XML refusals).
                let kind = if code == "HTTP 403" || code.starts_with("AccessDenied") {
                    CatalogErrorKind::AccessDenied
                } else if code == "ResourceNotFoundException" {
                    CatalogErrorKind::NotFound
                } else {
                    CatalogErrorKind::Refused
                };
                let detail = if message.is_empty() { code } else { format!("{code}: {message}") };
                Failure::Final(kind, detail)
            }
            Fault::Fatal(other) => Failure::Final(CatalogErrorKind::Refused, other.to_string()),
        }
    }
}
