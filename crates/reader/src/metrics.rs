//! Per-shard counters and lag, registered once per shard and updated per
//! response, never looked up per record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

/// Lag and counters of one shard consumer.
#[derive(Debug, Default)]
pub(crate) struct ShardMetrics {
    records: AtomicU64,
    bytes: AtomicU64,
    calls: AtomicU64,
    throttles: AtomicU64,
    transient_errors: AtomicU64,
    iterator_renewals: AtomicU64,
    dropped_sub_records: AtomicU64,
    corrupt_aggregates: AtomicU64,
    millis_behind_latest: AtomicI64,
    arrival_lag_millis: AtomicI64,
    finished: AtomicU64,
    waiting_for_commit: AtomicU64,
    retention_gaps: AtomicU64,
}

/// A consistent-enough copy of a shard's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardMetricsSnapshot {
    /// Records (and sub-records) passed on.
    pub records: u64,
    /// Payload bytes passed on.
    pub bytes: u64,
    /// GetRecords calls or EFO events received.
    pub calls: u64,
    /// Calls refused for throughput (`ProvisionedThroughputExceeded`, KMS throttling).
    pub throttles: u64,
    /// Calls that failed for a passing reason (5xx, timeouts, dropped connections).
    pub transient_errors: u64,
    /// Shard iterators (or subscriptions) rebuilt from the last position.
    pub iterator_renewals: u64,
    /// KPL sub-records dropped because their hash key belongs to another shard.
    pub dropped_sub_records: u64,
    /// Records that started like KPL aggregates but were not valid ones (passed on whole).
    pub corrupt_aggregates: u64,
    /// Kinesis' `MillisBehindLatest` from the last response.
    pub millis_behind_latest: i64,
    /// How old the newest record was when it was read (0 when caught up).
    pub arrival_lag_millis: i64,
    /// The shard is closed and fully read.
    pub finished: bool,
    /// The shard has as many batches out as it may and waits for one to be
    /// committed before reading on (backpressure).
    pub waiting_for_commit: bool,
    /// Times its checkpoint was found past the stream's retention (records lost
    /// to trimming before they were read); reading went on from `TRIM_HORIZON`.
    pub retention_gaps: u64,
}

impl ShardMetrics {
    pub(crate) fn passed_on(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn throttled(&self) {
        self.throttles.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn transient_error(&self) {
        self.transient_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn iterator_renewed(&self) {
        self.iterator_renewals.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn dropped(&self, sub_records: u64) {
        self.dropped_sub_records.fetch_add(sub_records, Ordering::Relaxed);
    }
    pub(crate) fn corrupt_aggregate(&self) {
        self.corrupt_aggregates.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn lag(&self, millis_behind_latest: Option<i64>, arrival_lag_millis: Option<i64>) {
        if let Some(millis) = millis_behind_latest {
            self.millis_behind_latest.store(millis, Ordering::Relaxed);
        }
        if let Some(millis) = arrival_lag_millis {
            self.arrival_lag_millis.store(millis, Ordering::Relaxed);
        }
    }
    pub(crate) fn retention_gap(&self) {
        self.retention_gaps.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn waiting_for_commit(&self, waiting: bool) {
        self.waiting_for_commit.store(u64::from(waiting), Ordering::Relaxed);
    }
    pub(crate) fn finish(&self) {
        self.finished.store(1, Ordering::Relaxed);
        self.lag(Some(0), Some(0));
    }

    /// The current values.
    pub(crate) fn snapshot(&self) -> ShardMetricsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ShardMetricsSnapshot {
            records: load(&self.records),
            bytes: load(&self.bytes),
            calls: load(&self.calls),
            throttles: load(&self.throttles),
            transient_errors: load(&self.transient_errors),
            iterator_renewals: load(&self.iterator_renewals),
            dropped_sub_records: load(&self.dropped_sub_records),
            corrupt_aggregates: load(&self.corrupt_aggregates),
            millis_behind_latest: self.millis_behind_latest.load(Ordering::Relaxed),
            arrival_lag_millis: self.arrival_lag_millis.load(Ordering::Relaxed),
            finished: load(&self.finished) != 0,
            waiting_for_commit: load(&self.waiting_for_commit) != 0,
            retention_gaps: load(&self.retention_gaps),
        }
    }
}

/// The shards of one source.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    shards: Mutex<BTreeMap<String, Arc<ShardMetrics>>>,
}

impl SourceMetrics {
    /// The metrics of `shard_id`, created on first use; a consumer keeps the `Arc`.
    pub(crate) fn register(&self, shard_id: &str) -> Arc<ShardMetrics> {
        Arc::clone(self.shards.lock().entry(shard_id.to_owned()).or_default())
    }

    /// Every shard's metrics, by shard id.
    pub fn snapshot(&self) -> BTreeMap<String, ShardMetricsSnapshot> {
        self.shards.lock().iter().map(|(id, metrics)| (id.clone(), metrics.snapshot())).collect()
    }

    /// The source's lag: the maximum `MillisBehindLatest` over its open shards.
    pub fn max_millis_behind_latest(&self) -> i64 {
        self.snapshot()
            .values()
            .filter(|shard| !shard.finished)
            .map(|shard| shard.millis_behind_latest)
            .max()
            .unwrap_or(0)
    }

    /// The maximum arrival-time lag over its open shards.
    pub fn max_arrival_lag_millis(&self) -> i64 {
        self.snapshot()
            .values()
            .filter(|shard| !shard.finished)
            .map(|shard| shard.arrival_lag_millis)
            .max()
            .unwrap_or(0)
    }
}
