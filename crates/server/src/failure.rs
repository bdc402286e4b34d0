//! Why a worker stopped, and whether starting it again can help.

use tributary_reader::ReaderError;
use tributary_store::StoreError;

/// A worker's failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerError {
    /// Passing (network, throttling beyond the reader's retries, a busy disk
    /// or database): restarted with a short, growing backoff.
    #[error("{0}")]
    Transient(String),
    /// Retrying as is cannot fix it (access denied, stream deleted, another
    /// writer moved the checkpoints, a definition this build cannot run):
    /// retried only slowly, and at once when a new version is committed.
    /// Cluster mode: another node claimed a shard of this worker's batch
    /// (it took the lease); the batch is that node's to read again, and this
    /// worker starts again at once on the shards it still holds.
    #[error("{0}")]
    LeaseMoved(String),
    #[error("{message}")]
    Permanent {
        /// A stable code for status and metrics: AWS' error code, or ours.
        code: String,
        /// What happened, for the operator.
        message: String,
    },
}

impl WorkerError {
    pub(crate) fn permanent(code: &str, message: impl Into<String>) -> WorkerError {
        WorkerError::Permanent { code: code.to_owned(), message: message.into() }
    }

    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, WorkerError::Transient(_) | WorkerError::LeaseMoved(_))
    }

    /// The reason code shown in status and metrics.
    pub(crate) fn code(&self) -> &str {
        match self {
            WorkerError::Transient(_) => "TRANSIENT",
            WorkerError::LeaseMoved(_) => "LEASE_MOVED",
            WorkerError::Permanent { code, .. } => code,
        }
    }

    /// A reader's failure: Kinesis' refusals are permanent, the rest passing.
    pub(crate) fn reading(error: ReaderError) -> WorkerError {
        match &error {
            ReaderError::Kinesis { code, .. } => WorkerError::permanent(code, format!("reading: {error}")),
            _ => WorkerError::Transient(format!("reading: {error}")),
        }
    }

    /// A failed batch commit: a moved checkpoint is another writer's doing.
    pub(crate) fn committing(error: StoreError) -> WorkerError {
        match &error {
            StoreError::CheckpointConflict { .. } => {
                WorkerError::permanent("CHECKPOINT_CONFLICT", format!("committing the batch: {error}"))
            }
            _ => WorkerError::Transient(format!("committing the batch: {error}")),
        }
    }
}

/// Everything not classified is passing.
impl From<String> for WorkerError {
    fn from(message: String) -> WorkerError {
        WorkerError::Transient(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_conflicts_are_permanent_the_rest_passing() {
        let denied = ReaderError::Kinesis {
            operation: "GetRecords",
            target: "shardId-0".to_owned(),
            code: "AccessDeniedException".to_owned(),
            message: "not allowed".to_owned(),
        };
        let error = WorkerError::reading(denied);
        assert!(!error.is_retryable());
        assert_eq!(error.code(), "AccessDeniedException");
        assert!(error.to_string().contains("not allowed"), "{error}");

        let conflict = StoreError::CheckpointConflict { scope: "s".to_owned(), shard_id: "shardId-0".to_owned() };
        let error = WorkerError::committing(conflict);
        assert_eq!((error.is_retryable(), error.code()), (false, "CHECKPOINT_CONFLICT"));

        let passing = WorkerError::reading(ReaderError::Internal("a task ended".to_owned()));
        assert_eq!((passing.is_retryable(), passing.code()), (true, "TRANSIENT"));
        let io = WorkerError::committing(StoreError::Io("disk full".to_owned()));
        assert!(io.is_retryable());
    }
}
