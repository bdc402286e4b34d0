//! `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use tributary_cluster::LeaseCounters;

use tributary_reader::ShardMetricsSnapshot;

use crate::status::{Phase, StatusSnapshot};
use crate::supervisor::Supervisor;

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Every metric of every worker.
///
/// Written straight into one string, each worker and shard snapshotted once:
/// scrapes come every few seconds and a source can have hundreds of shards.
pub(crate) fn render(supervisor: &Supervisor, error_log_rows: &dyn Fn(&str) -> u64) -> String {
    let sources: Vec<(String, StatusSnapshot, u64)> = supervisor
        .statuses()
        .iter()
        .map(|(name, status)| (format!("source=\"{}\"", escape(name)), status.snapshot(), error_log_rows(name)))
        .collect();
    let shards: Vec<(String, ShardMetricsSnapshot)> = sources
        .iter()
        .flat_map(|(source_labels, snapshot, _)| {
            let shards = snapshot.reader.as_ref().map(|reader| reader.snapshot()).unwrap_or_default();
            shards
                .into_iter()
                .map(move |(shard, metrics)| (format!("{source_labels},shard=\"{}\"", escape(&shard)), metrics))
        })
        .collect();
    let mut out = String::with_capacity(256 + 120 * (sources.len() * 8 + shards.len() * 11));
    let mut per_source = |name: &str, kind: &str, help: &str, value: &dyn Fn(&StatusSnapshot, u64) -> i64| {
        header(&mut out, name, kind, help);
        for (labels, snapshot, error_rows) in &sources {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(snapshot, *error_rows));
        }
    };
    let count = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    per_source("tributary_source_up", "gauge", "1 while the source's worker runs.", &|s, _| {
        i64::from(s.phase == Phase::Running)
    });
    per_source("tributary_source_version", "gauge", "Committed version the worker runs.", &|s, _| count(s.version));
    per_source("tributary_worker_restarts_total", "counter", "Worker failures followed by a restart.", &|s, _| {
        count(s.restarts)
    });
    per_source("tributary_rows_written_total", "counter", "Rows committed to the dataset since start.", &|s, _| {
        count(s.rows_written)
    });
    per_source("tributary_records_rejected_total", "counter", "Records sent to the error log since start.", &|s, _| {
        count(s.records_rejected)
    });
    per_source(
        "tributary_rows_late_total",
        "counter",
        "Rows older than the watermark since start (dropped, or kept with `late: keep`).",
        &|s, _| count(s.rows_late),
    );
    per_source("tributary_batches_committed_total", "counter", "Batch commits since start.", &|s, _| count(s.commits));
    per_source(
        "tributary_source_millis_behind_latest",
        "gauge",
        "Maximum MillisBehindLatest over the source's open shards.",
        &|s, _| s.reader.as_ref().map_or(0, |r| r.max_millis_behind_latest()),
    );
    per_source("tributary_error_log_rows", "gauge", "Rows in the source's error log.", &|_, rows| count(rows));
    header(
        &mut out,
        "tributary_table_commit_retries_total",
        "counter",
        "Iceberg table commits tried again after another writer's commit moved the table first.",
    );
    let _ = writeln!(out, "tributary_table_commit_retries_total {}", tributary_sink::table::commit_retries());
    // Sources without a watermark yet (nothing committed) have no series.
    header(
        &mut out,
        "tributary_source_watermark_seconds",
        "gauge",
        "Largest event time committed minus `disorder`, in seconds since the epoch.",
    );
    for (labels, snapshot, _) in &sources {
        if let Some(watermark) = snapshot.watermark_micros {
            let _ = writeln!(out, "tributary_source_watermark_seconds{{{labels}}} {}", watermark as f64 / 1e6);
        }
    }
    // Failed workers only, labelled with the reason code (one series per reason seen now).
    header(&mut out, "tributary_worker_failed", "gauge", "1 while the worker is failed, by reason code.");
    for (labels, snapshot, _) in &sources {
        if let (Phase::Failed, Some(reason)) = (snapshot.phase, &snapshot.reason) {
            let _ = writeln!(out, "tributary_worker_failed{{{labels},reason=\"{}\"}} 1", escape(reason));
        }
    }

    let mut per_shard = |name: &str, kind: &str, help: &str, value: fn(&ShardMetricsSnapshot) -> i64| {
        header(&mut out, name, kind, help);
        for (labels, metrics) in &shards {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(metrics));
        }
    };
    per_shard(
        "tributary_shard_millis_behind_latest",
        "gauge",
        "MillisBehindLatest of the shard's last response.",
        |m| m.millis_behind_latest,
    );
    per_shard("tributary_shard_arrival_lag_millis", "gauge", "Age of the newest record when it was read.", |m| {
        m.arrival_lag_millis
    });
    per_shard("tributary_shard_records_read_total", "counter", "Records (and KPL sub-records) read.", |m| {
        saturating(m.records)
    });
    per_shard("tributary_shard_bytes_read_total", "counter", "Payload bytes read.", |m| saturating(m.bytes));
    per_shard("tributary_shard_calls_total", "counter", "GetRecords answers (or EFO events) received.", |m| {
        saturating(m.calls)
    });
    per_shard("tributary_shard_throttles_total", "counter", "Calls throttled by Kinesis.", |m| saturating(m.throttles));
    per_shard(
        "tributary_shard_transient_errors_total",
        "counter",
        "Calls that failed for a passing reason (5xx, timeouts, dropped connections) and were retried.",
        |m| saturating(m.transient_errors),
    );
    per_shard(
        "tributary_shard_corrupt_aggregates_total",
        "counter",
        "Records that looked like KPL aggregates but were not valid ones (passed on whole).",
        |m| saturating(m.corrupt_aggregates),
    );
    per_shard("tributary_shard_iterator_renewals_total", "counter", "Iterators or subscriptions rebuilt.", |m| {
        saturating(m.iterator_renewals)
    });
    per_shard(
        "tributary_shard_dropped_sub_records_total",
        "counter",
        "KPL sub-records of another shard's hash range.",
        |m| saturating(m.dropped_sub_records),
    );
    per_shard("tributary_shard_finished", "gauge", "1 once the shard is closed and fully read.", |m| {
        i64::from(m.finished)
    });
    per_shard(
        "tributary_shard_retention_gaps_total",
        "counter",
        "Checkpoints found past the stream's retention (records trimmed unread); reading went on from TRIM_HORIZON.",
        |m| saturating(m.retention_gaps),
    );
    per_shard(
        "tributary_shard_waiting_for_commit",
        "gauge",
        "1 while the shard has all the batches out it may and waits for a commit (backpressure).",
        |m| i64::from(m.waiting_for_commit),
    );
    lease_metrics(&mut out, supervisor);
    out
}

/// One of [`LeaseCounters`].
type LeaseCounter = fn(&LeaseCounters) -> &AtomicU64;

/// Cluster mode: each source's lease events and leases held on this node.
fn lease_metrics(out: &mut String, supervisor: &Supervisor) {
    if supervisor.cluster().is_none() {
        return;
    }
    let leases = supervisor.all_leases();
    let counters: [(&str, &str, LeaseCounter); 7] = [
        ("tributary_leases_taken_total", "Leases this node took (free, expired or balanced).", |c| &c.taken),
        ("tributary_leases_lost_total", "Leases found taken by another node.", |c| &c.lost),
        ("tributary_lease_renewals_total", "Lease renewals that went through.", |c| &c.renewed),
        (
            "tributary_lease_renewal_failures_total",
            "Lease renewals DynamoDB did not answer (the lease is kept until one says it moved).",
            |c| &c.renew_failures,
        ),
        ("tributary_lease_scans_total", "Scans of the lease table.", |c| &c.scans),
        ("tributary_lease_checkpoints_total", "Checkpoints (and SHARD_ENDs) mirrored into leases.", |c| &c.checkpoints),
        (
            "tributary_lease_table_calls_total",
            "DynamoDB calls to the lease table (one renews up to 100 leases).",
            |c| &c.calls,
        ),
    ];
    for (name, help, counter) in counters {
        header(out, name, "counter", help);
        for (source, held) in &leases {
            let value = saturating(counter(held.counters()).load(Ordering::Relaxed));
            let _ = writeln!(out, "{name}{{source=\"{}\"}} {value}", escape(source));
        }
    }
    header(out, "tributary_leases_held", "gauge", "Shards whose leases this node holds.");
    for (source, held) in &leases {
        let _ = writeln!(out, "tributary_leases_held{{source=\"{}\"}} {}", escape(source), held.held_count());
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
