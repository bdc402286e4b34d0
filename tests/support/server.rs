//! A `tributary serve` process for end-to-end tests, and what it wrote.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

/// A running server on a loopback port, with its data directory.
pub struct ServerProcess {
    child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

impl ServerProcess {
    /// Starts `tributary serve` (quick flushes and polls) on a port of its own
    /// choosing and waits until it answers /healthz.
    pub fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_with_env(data_dir, extra, &[])
    }

    /// [`ServerProcess::start`] with extra environment variables (endpoints, credentials).
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let (child, port) = spawn(data_dir, &extra, &env);
        let server = ServerProcess { child, port, data_dir: data_dir.to_owned(), extra, env };
        server.wait_healthy();
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if ureq::get(&format!("{}/healthz", self.url())).call().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tributary serve did not answer /healthz within 30 s");
    }

    /// `kill -9`, then a fresh process on the same data directory.
    pub fn crash_and_restart(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
        let (child, port) = spawn(&self.data_dir, &self.extra, &self.env);
        (self.child, self.port) = (child, port);
        self.wait_healthy();
    }

    /// Waits up to `limit` for the process to end on its own (a failpoint's
    /// abort), then starts a fresh one with `env` instead of the old environment.
    pub fn restart_after_exit(&mut self, env: &[(&str, &str)], limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "tributary serve did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let (child, port) = spawn(&self.data_dir, &self.extra, &self.env);
        (self.child, self.port) = (child, port);
        self.wait_healthy();
    }

    /// Waits up to `limit` for the process to end (a failpoint's abort, a
    /// signal sent before); whether it exited successfully.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(Instant::now() < deadline, "tributary serve did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub fn stop(mut self) -> bool {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(Instant::now() < deadline, "tributary serve did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET a JSON answer; panics with the server's message on anything but 200.
    pub fn get(&self, path: &str) -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = agent.get(&format!("{}{path}", self.url())).call().expect("GET");
        let body = response.body_mut().read_to_string().expect("body");
        assert_eq!(response.status(), 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    /// GET a JSON answer: `None` on 404 (not there yet), panics on anything else but 200.
    pub fn get_if_found(&self, path: &str) -> Option<Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = agent.get(&format!("{}{path}", self.url())).call().expect("GET");
        let body = response.body_mut().read_to_string().expect("body");
        if response.status() == 404 {
            return None;
        }
        assert_eq!(response.status(), 200, "GET {path}: {body}");
        Some(serde_json::from_str(&body).expect("JSON"))
    }

    /// Waits until the source has committed `rows` + `rejected` + `filtered` +
    /// `late` records in all (a late row kept by `late: keep` counts twice).
    pub fn wait_for_records(&self, source: &str, total: u64, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.get(&format!("/api/v1/sources/{source}/status"));
            let done = ["rows", "rejected", "filtered", "late"]
                .iter()
                .map(|key| status[key].as_u64().unwrap_or(0))
                .sum::<u64>();
            if done >= total {
                return status;
            }
            assert!(Instant::now() < deadline, "{done} of {total} records ingested within {limit:?}: {status:#}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The /metrics text.
    pub fn metrics(&self) -> String {
        let mut response = ureq::get(&format!("{}/metrics", self.url())).call().expect("GET /metrics");
        response.body_mut().read_to_string().expect("text")
    }

    /// Waits until `source`'s worker is in `state`; its status then.
    pub fn wait_for_state(&self, source: &str, state: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.get(&format!("/api/v1/sources/{source}/status"));
            if status["state"] == state {
                return status;
            }
            assert!(Instant::now() < deadline, "not {state} within {limit:?}: {status:#}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Records this process's readers have handed on, summed over shards (from /metrics).
    pub fn records_read(&self) -> u64 {
        self.metrics()
            .lines()
            .filter(|line| line.starts_with("tributary_shard_records_read_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// GetRecords answers (or EFO events) each shard of `source` received, from /metrics.
    pub fn shard_calls(&self, source: &str) -> HashMap<String, u64> {
        let metrics = self.metrics();
        let prefix = format!("tributary_shard_calls_total{{source=\"{source}\",shard=\"");
        metrics
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(&prefix)?;
                let (shard, value) = rest.split_once("\"} ")?;
                Some((shard.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, `KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success(), "kill -{signal} {}", self.child.id());
    }

    /// `kill -9`, and reaps it; nothing is started again.
    pub fn crash(mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// The process id (for messages that name it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every rejected row of a source (newest first).
    pub fn errors(&self, source: &str) -> Vec<Value> {
        let mut rows = Vec::new();
        let mut before = None::<i64>;
        loop {
            let mut path = format!("/api/v1/sources/{source}/errors?limit=1000");
            if let Some(id) = before {
                path.push_str(&format!("&before={id}"));
            }
            let page = self.get(&path);
            rows.extend(page["errors"].as_array().cloned().unwrap_or_default());
            match page["next_before"].as_i64() {
                Some(id) => before = Some(id),
                None => return rows,
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A failing test shows what the server said last (its directory is about to go).
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- last lines of {}:", self.data_dir.display());
            tail.iter().rev().for_each(|line| eprintln!("{line}"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Quick flushes and polls for tests, unless the test sets the flag itself.
fn quick_defaults(extra: &[String]) -> Vec<&'static str> {
    [("--flush-seconds", "0.3"), ("--idle-poll-ms", "100"), ("--idle-poll-max-ms", "300")]
        .into_iter()
        .filter(|(flag, _)| !extra.iter().any(|arg| arg == flag))
        .flat_map(|(flag, value)| [flag, value])
        .collect()
}

/// Starts the server on 127.0.0.1:0 and reads the port it bound from its log.
/// (Ports picked by the test could be taken by another test's server in between.)
fn spawn(data_dir: &Path, extra: &[String], env: &[(String, String)]) -> (Child, u16) {
    let log_path = data_dir.with_extension("log");
    let log = File::options().create(true).append(true).open(&log_path).expect("server log");
    let logged_before = std::fs::metadata(&log_path).map(|m| m.len() as usize).unwrap_or(0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(quick_defaults(extra))
        .args(extra)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start tributary serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let port =
            text.get(logged_before..).unwrap_or_default().split("serving http://127.0.0.1:").nth(1).and_then(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u16>().ok()
            });
        if let Some(port) = port {
            return (child, port);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("tributary serve exited ({status}): {}", text.get(logged_before..).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "tributary serve did not say where it listens within 30 s: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that a failed worker's status puts its next try minutes away (a
/// permanent failure), not at the pace of a passing one.
pub fn assert_retried_in_minutes(status: &Value) {
    let retry_at = status["retry_at"].as_str().and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
    let retry_at = retry_at.unwrap_or_else(|| panic!("no retry_at: {status:#}")).with_timezone(&chrono::Utc);
    assert!(retry_at > chrono::Utc::now() + chrono::Duration::minutes(4), "{status:#}");
    assert_eq!(status["restarts"].as_u64(), Some(1), "failed once, not restarted since: {status:#}");
}

/// One dataset row as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Row {
    pub id: i64,
    pub shard_id: Option<String>,
    pub sequence_number: Option<String>,
    pub extra: Option<String>,
}

/// Every row in every Parquet file of the dataset, read with the parquet crate.
pub fn dataset_rows(data_dir: &Path, dataset: &str, extra_column: Option<&str>) -> Vec<Row> {
    let mut rows = Vec::new();
    let root = data_dir.join("datasets").join(dataset);
    let Ok(partitions) = std::fs::read_dir(&root) else { return rows };
    for partition in partitions {
        let partition = partition.expect("entry").path();
        // As readers do: `_staging` and dot-directories are not part of the dataset.
        if partition.file_name().and_then(|name| name.to_str()).is_none_or(|name| name.starts_with(['_', '.'])) {
            continue;
        }
        for file in std::fs::read_dir(partition).expect("partition") {
            let path = file.expect("entry").path();
            if path.extension().is_none_or(|ext| ext != "parquet") {
                continue;
            }
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open"))
                .expect("a Parquet file")
                .build()
                .expect("reader");
            for batch in reader {
                rows.extend(batch_rows(&batch.expect("batch"), extra_column));
            }
        }
    }
    rows.sort();
    rows
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    batch.column_by_name(name).and_then(|column| column.as_any().downcast_ref::<StringArray>())
}

fn batch_rows(batch: &RecordBatch, extra_column: Option<&str>) -> Vec<Row> {
    let ids =
        batch.column_by_name("id").and_then(|c| c.as_any().downcast_ref::<Int64Array>()).expect("an int64 id column");
    let shard = strings(batch, "_shard_id");
    let sequence = strings(batch, "_sequence_number");
    let extra = extra_column.and_then(|name| strings(batch, name));
    (0..batch.num_rows())
        .map(|i| Row {
            id: ids.value(i),
            shard_id: shard.map(|s| s.value(i).to_owned()),
            sequence_number: sequence.map(|s| s.value(i).to_owned()),
            extra: extra.filter(|e| e.is_valid(i)).map(|e| e.value(i).to_owned()),
        })
        .collect()
}

/// Counts of each id, to spot repeats.
pub fn id_counts(rows: &[Row]) -> HashMap<i64, usize> {
    let mut counts = HashMap::new();
    for row in rows {
        *counts.entry(row.id).or_insert(0) += 1;
    }
    counts
}
