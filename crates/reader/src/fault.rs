//! What a failed Kinesis call means for a shard consumer, and how long to wait.
//!
//! Throttling, 5xx answers, timeouts and dropped connections are passing
//! conditions: the consumer backs off (exponentially, with jitter) and tries
//! again, forever. Only answers that cannot get better by waiting (the stream
//! is gone, access is denied, the request is invalid) end the reader.

use std::time::Duration;

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::ReaderError;

/// The class of a failed call.
#[derive(Debug)]
pub(crate) enum Fault {
    /// Over the shard's or account's throughput: wait and retry.
    Throttled,
    /// The shard iterator expired: build a new one from the last position.
    ExpiredIterator,
    /// 5xx, timeout, dropped connection, garbled answer: the call may or may not
    /// have been applied; wait and retry from the last position.
    Transient(String),
    /// Cannot succeed by retrying.
    Fatal(ReaderError),
}

/// Classifies `error` from `operation` (e.g. `GetRecords`) on `target` (a stream or shard).
pub(crate) fn classify<E>(error: &SdkError<E, HttpResponse>, operation: &'static str, target: &str) -> Fault
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = error.raw_response().map(|response| response.status().as_u16());
    match error {
        SdkError::TimeoutError(_) => return Fault::Transient(format!("{operation} timed out")),
        SdkError::DispatchFailure(_) => return Fault::Transient(format!("{operation}: {}", innermost_cause(error))),
        SdkError::ResponseError(_) => {
            return Fault::Transient(format!("{operation}: unreadable answer (HTTP {status:?})"));
        }
        _ => {}
    }
    classify_refusal(error.code(), status, error.message(), operation, target)
}

/// Classifies a call Kinesis answered with an error `code` (and HTTP `status`).
pub(crate) fn classify_refusal(
    code: Option<&str>,
    status: Option<u16>,
    message: Option<&str>,
    operation: &'static str,
    target: &str,
) -> Fault {
    let describe = || match (code, message) {
        (Some(code), Some(message)) => {
            format!("{operation}: {code}: {}", message.chars().take(500).collect::<String>())
        }
        (Some(code), None) => format!("{operation}: {code}"),
        _ => format!("{operation}: HTTP {status:?}"),
    };
    match code {
        Some(
            "ProvisionedThroughputExceededException"
            | "KMSThrottlingException"
            | "LimitExceededException"
            | "ThrottlingException",
        ) => Fault::Throttled,
        Some("ExpiredIteratorException") => Fault::ExpiredIterator,
        // An EFO subscription still open from the previous attempt, or a consumer still being registered.
        Some("ResourceInUseException") => Fault::Transient(describe()),
        Some("InternalFailureException" | "ServiceUnavailableException" | "InternalFailure" | "ServiceUnavailable") => {
            Fault::Transient(describe())
        }
        _ if status.is_some_and(|status| status >= 500) => Fault::Transient(describe()),
        _ => Fault::Fatal(ReaderError::Kinesis {
            operation,
            target: target.to_owned(),
            code: code.map(str::to_owned).or(status.map(|status| format!("HTTP {status}"))).unwrap_or_default(),
            message: message.map(|message| message.chars().take(500).collect()).unwrap_or_default(),
        }),
    }
}

pub(crate) fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Exponential backoff with "equal jitter": each wait is between half and all
/// of the current step, so shards throttled together do not retry in lockstep.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max, step: initial }
    }

    /// The next wait; each call doubles the step up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// After a success, start again from the initial step.
    pub(crate) fn reset(&mut self) {
        self.step = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_bounded() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        for (delay, step) in delays.iter().zip([100u64, 200, 400, 800, 800, 800]) {
            assert!(
                *delay >= Duration::from_millis(step / 2) && *delay <= Duration::from_millis(step),
                "{delay:?} for {step}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
