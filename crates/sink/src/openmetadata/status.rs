//! A source's state, as a pipeline status OpenMetadata shows (`entity/data/pipeline.json#/definitions/pipelineStatus`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::entities::PipelineRun;

/// The one task of a source's pipeline (its status carries the whole source's state).
pub const INGEST_TASK: &str = "ingest";

/// The status of the source described by `status` (the body of Tributary's
/// `GET /api/v1/sources/{name}/status`) at `now`; `None` for a deleted source.
///
/// Running and finished sources are `Successful`, a failed one (restarting after
/// a backoff) `Failed`, one that no worker of this server runs `Pending`.
/// `log_link` (the status endpoint) lets a user open the numbers behind it.
pub fn pipeline_run(status: &Value, log_link: Option<&str>, now: SystemTime) -> Option<PipelineRun> {
    let now_millis =
        now.duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    let state = status.get("state").and_then(Value::as_str).unwrap_or("stopped");
    let execution = match state {
        "deleted" => return None,
        "running" | "finished" => "Successful",
        "failed" => "Failed",
        _ => "Pending",
    };
    let count = |key: &str| status.get(key).and_then(Value::as_u64).unwrap_or(0);
    let mut summary = format!(
        "{state}: {} rows, {} rejected, {} filtered, {} late; lag {} ms",
        count("rows"),
        count("rejected"),
        count("filtered"),
        count("late"),
        count("lag_millis")
    );
    if let Some(error) = status.get("error").and_then(Value::as_str) {
        summary.push_str(&format!("; last error: {error}"));
    }
    let mut task = json!({"name": INGEST_TASK, "executionStatus": execution, "endTime": now_millis});
    if let Some(link) = log_link {
        task["logLink"] = Value::String(link.to_owned());
    }
    let status = json!({"timestamp": now_millis, "executionStatus": execution, "taskStatus": [task]});
    Some(PipelineRun { status, summary })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_millis(millis)
    }

    #[test]
    fn worker_states_map_to_execution_statuses() {
        let running = json!({"state": "running", "rows": 12, "rejected": 3, "lag_millis": 40});
        let run = pipeline_run(&running, Some("http://127.0.0.1:1/api/v1/sources/a/status"), at(1_000)).expect("a run");
        assert_eq!(run.status["executionStatus"], "Successful");
        assert_eq!(run.status["timestamp"], 1_000);
        assert_eq!(run.status["taskStatus"][0]["name"], INGEST_TASK);
        assert_eq!(run.status["taskStatus"][0]["logLink"], "http://127.0.0.1:1/api/v1/sources/a/status");
        assert_eq!(run.summary, "running: 12 rows, 3 rejected, 0 filtered, 0 late; lag 40 ms");
        let failed = json!({"state": "failed", "error": "stream not found"});
        let run = pipeline_run(&failed, None, at(1_000)).expect("a run");
        assert_eq!(run.status["executionStatus"], "Failed");
        assert!(run.summary.ends_with("last error: stream not found"), "{}", run.summary);
        assert!(run.status["taskStatus"][0].get("logLink").is_none());
        assert_eq!(
            pipeline_run(&json!({"state": "stopped"}), None, at(1)).expect("a run").status["executionStatus"],
            "Pending"
        );
        assert_eq!(pipeline_run(&json!({"state": "deleted"}), None, at(1)), None);
    }
}
