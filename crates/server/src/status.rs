//! What a worker reports about itself, read by the status and metrics endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tributary_reader::SourceMetrics;

use crate::failure::WorkerError;

/// A worker's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading and writing.
    Running,
    /// Failed; restarting after a backoff.
    Failed,
    /// Stopped (deleted, replaced by a new version, or shut down).
    Stopped,
    /// Done: `until` passed, or a bounded source went idle.
    Finished,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Failed => "failed",
            Phase::Stopped => "stopped",
            Phase::Finished => "finished",
        }
    }
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    last_error: Option<String>,
    /// The failure's reason code (AWS' error code, or ours).
    reason: Option<String>,
    /// When a failed worker is started again (none: only on a new commit).
    retry_at: Option<DateTime<Utc>>,
    /// Why a finished source is done.
    finished_because: Option<String>,
    restarts: u64,
    last_commit_at: Option<DateTime<Utc>>,
}

/// One worker's live state.
#[derive(Debug)]
pub(crate) struct WorkerStatus {
    pub(crate) version: u64,
    inner: Mutex<Inner>,
    reader: Mutex<Option<Arc<SourceMetrics>>>,
    rows_written: AtomicU64,
    records_rejected: AtomicU64,
    rows_late: AtomicU64,
    /// The committed watermark (µs); `i64::MIN` until one is known.
    watermark_micros: AtomicI64,
    commits: AtomicU64,
}

/// What one commit added.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Committed {
    pub(crate) rows: u64,
    pub(crate) rejected: u64,
    pub(crate) late: u64,
    pub(crate) watermark_micros: Option<i64>,
}

/// A copy of a worker's state.
#[derive(Debug, Clone)]
pub(crate) struct StatusSnapshot {
    pub(crate) version: u64,
    pub(crate) phase: Phase,
    pub(crate) last_error: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) retry_at: Option<DateTime<Utc>>,
    pub(crate) finished_because: Option<String>,
    pub(crate) restarts: u64,
    pub(crate) last_commit_at: Option<DateTime<Utc>>,
    pub(crate) rows_written: u64,
    pub(crate) records_rejected: u64,
    pub(crate) rows_late: u64,
    pub(crate) watermark_micros: Option<i64>,
    pub(crate) commits: u64,
    pub(crate) reader: Option<Arc<SourceMetrics>>,
}

impl WorkerStatus {
    pub(crate) fn new(version: u64) -> WorkerStatus {
        WorkerStatus {
            version,
            inner: Mutex::new(Inner {
                phase: Phase::Running,
                last_error: None,
                reason: None,
                retry_at: None,
                finished_because: None,
                restarts: 0,
                last_commit_at: None,
            }),
            reader: Mutex::new(None),
            rows_written: AtomicU64::new(0),
            records_rejected: AtomicU64::new(0),
            rows_late: AtomicU64::new(0),
            watermark_micros: AtomicI64::new(i64::MIN),
            commits: AtomicU64::new(0),
        }
    }

    pub(crate) fn running(&self, reader: Arc<SourceMetrics>) {
        self.inner.lock().phase = Phase::Running;
        *self.reader.lock() = Some(reader);
    }

    /// Failed with `error`; started again at `retry_at` (if ever).
    pub(crate) fn failed(&self, error: &WorkerError, retry_at: Option<DateTime<Utc>>) {
        let mut inner = self.inner.lock();
        inner.phase = Phase::Failed;
        inner.last_error = Some(error.to_string());
        inner.reason = Some(error.code().to_owned());
        inner.retry_at = retry_at;
        inner.restarts += 1;
    }

    pub(crate) fn stopped(&self) {
        let mut inner = self.inner.lock();
        // A finished source stays finished when its (ended) task is stopped.
        if inner.phase != Phase::Finished {
            inner.phase = Phase::Stopped;
        }
    }

    pub(crate) fn finished(&self, reason: String) {
        let mut inner = self.inner.lock();
        inner.phase = Phase::Finished;
        inner.last_error = None;
        inner.finished_because = Some(reason);
    }

    /// The watermark the worker starts from (persisted by earlier commits).
    pub(crate) fn watermark(&self, micros: Option<i64>) {
        self.watermark_micros.store(micros.unwrap_or(i64::MIN), Ordering::Relaxed);
    }

    pub(crate) fn committed(&self, committed: Committed, at: DateTime<Utc>) {
        self.rows_written.fetch_add(committed.rows, Ordering::Relaxed);
        self.records_rejected.fetch_add(committed.rejected, Ordering::Relaxed);
        self.rows_late.fetch_add(committed.late, Ordering::Relaxed);
        self.watermark(committed.watermark_micros);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.inner.lock().last_commit_at = Some(at);
    }

    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> StatusSnapshot {
        let inner = self.inner.lock();
        StatusSnapshot {
            version: self.version,
            phase: inner.phase,
            last_error: inner.last_error.clone(),
            reason: inner.reason.clone(),
            retry_at: inner.retry_at,
            finished_because: inner.finished_because.clone(),
            restarts: inner.restarts,
            last_commit_at: inner.last_commit_at,
            rows_written: self.rows_written.load(Ordering::Relaxed),
            records_rejected: self.records_rejected.load(Ordering::Relaxed),
            rows_late: self.rows_late.load(Ordering::Relaxed),
            watermark_micros: Some(self.watermark_micros.load(Ordering::Relaxed)).filter(|w| *w != i64::MIN),
            commits: self.commits.load(Ordering::Relaxed),
            reader: self.reader.lock().clone(),
        }
    }
}
