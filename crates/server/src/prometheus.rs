//! `/metrics` in the Prometheus text format.

use std::fmt::Write;

use crate::status::Phase;
use crate::supervisor::Supervisor;

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Every metric of every worker.
pub(crate) fn render(supervisor: &Supervisor, error_log_rows: &dyn Fn(&str) -> u64) -> String {
    let workers = supervisor.statuses();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let per_source = |value: &dyn Fn(&crate::status::StatusSnapshot) -> String| {
        workers
            .iter()
            .map(|(name, status)| (format!("source=\"{}\"", escape(name)), value(&status.snapshot())))
            .collect::<Vec<_>>()
    };
    family(
        "tributary_source_up",
        "gauge",
        "1 while the source's worker runs.",
        per_source(&|s| u8::from(s.phase == Phase::Running).to_string()),
    );
    family(
        "tributary_source_version",
        "gauge",
        "Committed version the worker runs.",
        per_source(&|s| s.version.to_string()),
    );
    family(
        "tributary_worker_restarts_total",
        "counter",
        "Worker failures followed by a restart.",
        per_source(&|s| s.restarts.to_string()),
    );
    family(
        "tributary_rows_written_total",
        "counter",
        "Rows committed to the dataset since start.",
        per_source(&|s| s.rows_written.to_string()),
    );
    family(
        "tributary_records_rejected_total",
        "counter",
        "Records sent to the error log since start.",
        per_source(&|s| s.records_rejected.to_string()),
    );
    family(
        "tributary_batches_committed_total",
        "counter",
        "Batch commits since start.",
        per_source(&|s| s.commits.to_string()),
    );
    family(
        "tributary_source_millis_behind_latest",
        "gauge",
        "Maximum MillisBehindLatest over the source's open shards.",
        per_source(&|s| s.reader.as_ref().map_or(0, |r| r.max_millis_behind_latest()).to_string()),
    );
    family(
        "tributary_error_log_rows",
        "gauge",
        "Rows in the source's error log.",
        workers
            .iter()
            .map(|(name, _)| (format!("source=\"{}\"", escape(name)), error_log_rows(name).to_string()))
            .collect(),
    );

    let shards: Vec<(String, tributary_reader::ShardMetricsSnapshot)> = workers
        .iter()
        .flat_map(|(name, status)| {
            let snapshot = status.snapshot();
            let shards = snapshot.reader.map(|reader| reader.snapshot()).unwrap_or_default();
            shards.into_iter().map(move |(shard, metrics)| {
                (format!("source=\"{}\",shard=\"{}\"", escape(name), escape(&shard)), metrics)
            })
        })
        .collect();
    let per_shard = |value: fn(&tributary_reader::ShardMetricsSnapshot) -> String| {
        shards.iter().map(|(labels, metrics)| (labels.clone(), value(metrics))).collect::<Vec<_>>()
    };
    family(
        "tributary_shard_millis_behind_latest",
        "gauge",
        "MillisBehindLatest of the shard's last response.",
        per_shard(|m| m.millis_behind_latest.to_string()),
    );
    family(
        "tributary_shard_arrival_lag_millis",
        "gauge",
        "Age of the newest record when it was read.",
        per_shard(|m| m.arrival_lag_millis.to_string()),
    );
    family(
        "tributary_shard_records_read_total",
        "counter",
        "Records (and KPL sub-records) read.",
        per_shard(|m| m.records.to_string()),
    );
    family("tributary_shard_bytes_read_total", "counter", "Payload bytes read.", per_shard(|m| m.bytes.to_string()));
    family(
        "tributary_shard_calls_total",
        "counter",
        "GetRecords answers (or EFO events) received.",
        per_shard(|m| m.calls.to_string()),
    );
    family(
        "tributary_shard_throttles_total",
        "counter",
        "Calls throttled by Kinesis.",
        per_shard(|m| m.throttles.to_string()),
    );
    family(
        "tributary_shard_transient_errors_total",
        "counter",
        "Calls that failed for a passing reason (5xx, timeouts, dropped connections) and were retried.",
        per_shard(|m| m.transient_errors.to_string()),
    );
    family(
        "tributary_shard_corrupt_aggregates_total",
        "counter",
        "Records that looked like KPL aggregates but were not valid ones (passed on whole).",
        per_shard(|m| m.corrupt_aggregates.to_string()),
    );
    family(
        "tributary_shard_iterator_renewals_total",
        "counter",
        "Iterators or subscriptions rebuilt.",
        per_shard(|m| m.iterator_renewals.to_string()),
    );
    family(
        "tributary_shard_dropped_sub_records_total",
        "counter",
        "KPL sub-records of another shard's hash range.",
        per_shard(|m| m.dropped_sub_records.to_string()),
    );
    family(
        "tributary_shard_finished",
        "gauge",
        "1 once the shard is closed and fully read.",
        per_shard(|m| u8::from(m.finished).to_string()),
    );
    out
}
