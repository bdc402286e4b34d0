//! Failure modes of `tributary serve` against kinesis-local: nothing lost,
//! nothing hung. Two servers on one data directory, a final flush that
//! cannot be written, commits racing for one dataset.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use support::server::{ServerProcess, dataset_rows, id_counts};
use support::{Emulators, create_stream, kinesis_client, stdout, tributary, unique};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// What most tests here start from: a stream holding events `ids`, and a data directory.
struct Fixture {
    emulators: Emulators,
    rt: tokio::runtime::Runtime,
    stream_arn: String,
    dir: tempfile::TempDir,
    data_dir: PathBuf,
}

fn fixture(prefix: &str, shards: i32, ids: std::ops::Range<usize>) -> Option<Fixture> {
    let emulators = Emulators::from_env()?;
    let rt = runtime();
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &unique(prefix), shards, true));
    put(&rt, &emulators.kinesis, &stream_arn, ids);
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    Some(Fixture { emulators, rt, stream_arn, dir, data_dir })
}

/// Puts one record per id, `payload(id)` each, 200 per call.
fn put_payloads(
    rt: &tokio::runtime::Runtime,
    endpoint: &str,
    stream_arn: &str,
    ids: std::ops::Range<usize>,
    payload: impl Fn(usize) -> String,
) {
    let client = kinesis_client(endpoint);
    let ids: Vec<usize> = ids.collect();
    for chunk in ids.chunks(200) {
        let entries = chunk
            .iter()
            .map(|i| {
                let record = PutRecordsRequestEntry::builder().partition_key(format!("k{i}"));
                record.data(Blob::new(payload(*i))).build().expect("entry")
            })
            .collect();
        let output = rt
            .block_on(client.put_records().stream_arn(stream_arn).set_records(Some(entries)).send())
            .expect("PutRecords");
        assert_eq!(output.failed_record_count(), Some(0));
    }
}

/// Puts events with ids `range`.
fn put(rt: &tokio::runtime::Runtime, endpoint: &str, stream_arn: &str, range: std::ops::Range<usize>) {
    put_payloads(rt, endpoint, stream_arn, range, |i| format!("{{\"id\": {i}, \"ts\": \"2024-06-01T12:00:00Z\"}}"));
}

/// A source reading `stream_arn` from the start into `dataset`.
fn definition(dir: &Path, source: &str, dataset: &str, stream_arn: &str) -> PathBuf {
    let text = format!(
        "sources:\n  - name: {source}\n    kinesis:\n      stream_arn: {stream_arn}\n      init_position: trim_horizon\n      format: json\n    dataset:\n      name: {dataset}\n      format: parquet\n      fields:\n        - {{name: id, type: int64}}\n        - {{name: ts, type: timestamp}}\n      timestamp: ts\n"
    );
    let path = dir.join(format!("{source}.yaml"));
    std::fs::write(&path, text).expect("write definition");
    path
}

fn commit(server: &ServerProcess, file: &Path) {
    let output = tributary(&["commit", &file.to_string_lossy(), "--server", &server.url(), "-m", "test"], &[]);
    assert!(output.status.success(), "commit failed: {}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
}

fn wait_for_read(server: &ServerProcess, records: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.records_read() < records {
        assert!(Instant::now() < deadline, "the workers did not read {records} records within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_second_serve_on_the_same_data_directory_exits_1_and_the_first_keeps_every_row() {
    let Some(Fixture { emulators, rt, stream_arn, dir, data_dir }) = fixture("locked", 2, 0..300) else { return };
    let server = ServerProcess::start(&data_dir, &[]);
    commit(&server, &definition(dir.path(), "locked", "locked_rows", &stream_arn));
    server.wait_for_records("locked", 300, Duration::from_secs(60));

    let second_log = dir.path().join("second.log");
    let mut second = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--data-dir"])
        .arg(&data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stderr(std::fs::File::create(&second_log).expect("log"))
        .spawn()
        .expect("run a second serve");
    // A second server that starts serving never exits on its own: bounded, then killed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let said = std::fs::read_to_string(&second_log).expect("second log");
    assert_eq!(exit.and_then(|status| status.code()), Some(1), "the second serve exits 1: {said}");
    assert!(said.contains("in use by another tributary serve") && said.contains(&server.pid().to_string()), "{said}");
    assert!(!said.contains("serving http://"), "it never listened: {said}");

    // The first server goes on, and every row lands once.
    put(&rt, &emulators.kinesis, &stream_arn, 300..600);
    server.wait_for_records("locked", 600, Duration::from_secs(60));
    assert!(server.stop());
    let counts = id_counts(&dataset_rows(&data_dir, "locked_rows", None));
    assert_eq!(counts.len(), 600, "every row is in the dataset");
    assert!(counts.values().all(|n| *n == 1), "no row twice");
}

#[test]
fn a_final_flush_that_fails_still_lets_delete_and_sigterm_return() {
    let Some(Fixture { stream_arn, dir, data_dir, .. }) = fixture("unflushable", 1, 0..100) else { return };
    // Nothing is written before a stop asks for it.
    let server = ServerProcess::start(&data_dir, &["--flush-seconds", "600"]);
    commit(&server, &definition(dir.path(), "deleted", "deleted_rows", &stream_arn));
    commit(&server, &definition(dir.path(), "held", "held_rows", &stream_arn));
    wait_for_read(&server, 200);

    // Each dataset's directory becomes a file: the final flushes cannot be written (as root too).
    for dataset in ["deleted_rows", "held_rows"] {
        let path = data_dir.join("datasets").join(dataset);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).expect("remove the dataset directory");
        }
        std::fs::create_dir_all(data_dir.join("datasets")).expect("datasets directory");
        std::fs::write(&path, b"in the way").expect("a file in the way");
    }

    // The bound turns a hang into a failure; the server's own bound on a stop is 30 s.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into();
    let deleted = agent.delete(&format!("{}/api/v1/sources/deleted", server.url())).call().expect("DELETE returns");
    assert_eq!(deleted.status(), 200);
    assert_eq!(server.get("/api/v1/sources/deleted/status")["state"], "deleted");

    let log = data_dir.with_extension("log");
    assert!(!server.stop(), "SIGTERM returns, and the exit says not everything was committed");
    let said = std::fs::read_to_string(&log).expect("server log");
    assert!(said.contains("1 worker(s) could not commit what they held"), "{said}");

    // What was not committed is read again: with the directory back, the held source lands all 100.
    std::fs::remove_file(data_dir.join("datasets").join("held_rows")).expect("remove the file");
    let server = ServerProcess::start(&data_dir, &[]);
    server.wait_for_records("held", 100, Duration::from_secs(60));
    assert!(server.stop());
    assert_eq!(dataset_rows(&data_dir, "held_rows", None).len(), 100);
}

#[test]
fn commits_racing_for_one_dataset_end_with_one_writer() {
    let Some(Fixture { stream_arn, dir, data_dir, .. }) = fixture("race", 1, 0..0) else { return };
    // Live validation on: its calls to AWS are the window two commits could race through.
    let server = ServerProcess::start(&data_dir, &[]);
    for round in 0..4 {
        let dataset = format!("contested_{round}");
        let files: Vec<PathBuf> = ["a", "b"]
            .iter()
            .map(|side| definition(dir.path(), &format!("racer_{side}_{round}"), &dataset, &stream_arn))
            .collect();
        let url = server.url();
        let outcomes: Vec<bool> = std::thread::scope(|scope| {
            let racers: Vec<_> = files
                .iter()
                .map(|file| {
                    let url = url.clone();
                    scope.spawn(move || {
                        tributary(&["commit", &file.to_string_lossy(), "--server", &url, "-m", "race"], &[])
                            .status
                            .success()
                    })
                })
                .collect();
            racers.into_iter().map(|racer| racer.join().expect("racer")).collect()
        });
        assert_eq!(
            outcomes.iter().filter(|ok| **ok).count(),
            1,
            "round {round}: exactly one commit wins: {outcomes:?}"
        );
        let sources = server.get("/api/v1/sources");
        let writers = sources["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .filter(|source| source["name"].as_str().is_some_and(|name| name.ends_with(&format!("_{round}"))))
            .count();
        assert_eq!(writers, 1, "round {round}: one writer of {dataset}: {sources:#}");
    }
    assert!(server.stop());
}

/// Rows a reader sees in the dataset directory: pyarrow's dataset discovery
/// (which skips `_` and `.` paths), or our own reader when pyarrow is not there.
fn rows_readers_see(data_dir: &Path, dataset: &str) -> usize {
    let root = data_dir.join("datasets").join(dataset);
    let python = std::env::var("TRIBUTARY_TEST_PYARROW_PYTHON").ok().filter(|python| !python.is_empty());
    let Some(python) = python else {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!in_ci, "TRIBUTARY_TEST_PYARROW_PYTHON is not set: run through ./scripts/test.sh");
        return dataset_rows(data_dir, dataset, None).len();
    };
    let script = "import os, sys, pyarrow.dataset as ds\n\
                  print(ds.dataset(sys.argv[1], format='parquet', partitioning='hive').count_rows() if os.path.isdir(sys.argv[1]) else 0)\n";
    let output = Command::new(python).args(["-c", script]).arg(&root).output().expect("run python");
    assert!(output.status.success(), "pyarrow: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().parse().expect("a count")
}

/// Every Parquet file under the dataset directory, staged or not.
fn parquet_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn a_batch_whose_commit_fails_leaves_nothing_a_reader_sees() {
    let Some(Fixture { emulators, stream_arn, dir, data_dir, .. }) = fixture("uncommitted", 1, 0..100) else { return };
    // The first flush comes 3 s after the commit, once the lock below is held.
    let server = ServerProcess::start(&data_dir, &["--flush-seconds", "3"]);
    commit(&server, &definition(dir.path(), "unlucky", "unlucky_rows", &stream_arn));

    // Another process holds the state database's write lock longer than the server's busy
    // timeout (5 s): the batch is written, its commit fails.
    let mut holder = Command::new(&emulators.moto_python)
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n",
        ])
        .arg(data_dir.join("tributary.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("lock holder");
    let mut said = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().expect("stdout")), &mut said)
        .expect("read");
    assert_eq!(said.trim(), "locked");
    // A commit failed, and its batch sits staged (each restart discards it and stages it again).
    let root = data_dir.join("datasets").join("unlucky_rows");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = server.get("/api/v1/sources/unlucky/status");
        let failed = status["error"].as_str().is_some_and(|error| error.contains("committing the batch"));
        if failed && !parquet_files(&root.join("_staging")).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no failed commit with a staged batch within 60 s: {status:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rows_readers_see(&data_dir, "unlucky_rows"), 0, "no reader sees an uncommitted batch");

    drop(holder.stdin.take());
    let _ = holder.wait();
    server.wait_for_records("unlucky", 100, Duration::from_secs(60));
    assert_eq!(rows_readers_see(&data_dir, "unlucky_rows"), 100, "once committed, every row once");
    assert!(server.stop());
    assert!(parquet_files(&root.join("_staging")).is_empty(), "the failed batch's staged files were discarded");
}

#[test]
fn a_lost_state_database_deletes_no_committed_file() {
    let Some(Fixture { stream_arn, dir, data_dir, .. }) = fixture("amnesia", 1, 0..100) else { return };
    let file = definition(dir.path(), "forgetful", "forgetful_rows", &stream_arn);
    let server = ServerProcess::start(&data_dir, &[]);
    commit(&server, &file);
    server.wait_for_records("forgetful", 100, Duration::from_secs(60));
    assert!(server.stop());
    let root = data_dir.join("datasets").join("forgetful_rows");
    let committed = parquet_files(&root);
    assert!(!committed.is_empty());

    for name in ["tributary.db", "tributary.db-wal", "tributary.db-shm"] {
        let _ = std::fs::remove_file(data_dir.join(name));
    }
    let server = ServerProcess::start(&data_dir, &[]);
    commit(&server, &file);
    // The new state reads the stream again from the start: its 100 rows are committed anew.
    server.wait_for_records("forgetful", 100, Duration::from_secs(60));
    assert!(server.stop());
    let now = parquet_files(&root);
    for file in &committed {
        assert!(now.contains(file), "{} was deleted", file.display());
    }
}

#[test]
fn kill_9_between_commit_and_publish_loses_and_repeats_nothing() {
    let Some(Fixture { emulators, rt, stream_arn, dir, data_dir }) = fixture("halfway", 2, 0..300) else { return };
    let file = definition(dir.path(), "halfway", "halfway_rows", &stream_arn);

    // The first batch commits, and the process dies before moving its files into place.
    let server = ServerProcess::start_with_env(&data_dir, &[], &[("TRIBUTARY_FAILPOINT", "after-commit")]);
    let output = tributary(&["commit", &file.to_string_lossy(), "--server", &server.url(), "-m", "test"], &[]);
    assert!(output.status.success(), "commit: {}", String::from_utf8_lossy(&output.stderr));
    let log = data_dir.with_extension("log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("failpoint after-commit") {
        assert!(Instant::now() < deadline, "the failpoint was not reached");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    let root = data_dir.join("datasets").join("halfway_rows");
    assert!(!parquet_files(&root.join("_staging")).is_empty(), "committed files wait in the staging area");
    assert_eq!(rows_readers_see(&data_dir, "halfway_rows"), 0);

    // The next start finishes the move; nothing is read twice, nothing is lost.
    let server = ServerProcess::start(&data_dir, &[]);
    put(&rt, &emulators.kinesis, &stream_arn, 300..400);
    server.wait_for_records("halfway", 400, Duration::from_secs(60));
    assert!(server.stop());
    assert!(parquet_files(&root.join("_staging")).is_empty());
    let counts = id_counts(&dataset_rows(&data_dir, "halfway_rows", None));
    assert_eq!(counts.len(), 400, "every row");
    assert!(counts.values().all(|n| *n == 1), "no row twice");
    assert_eq!(rows_readers_see(&data_dir, "halfway_rows"), 400);
}

#[test]
fn a_checkpoint_past_retention_resumes_at_trim_horizon_and_says_so() {
    let Some(Fixture { emulators, rt, stream_arn, dir, data_dir }) = fixture("trimmed", 1, 0..10) else { return };
    let server = ServerProcess::start(&data_dir, &[]);
    commit(&server, &definition(dir.path(), "gappy", "gappy_rows", &stream_arn));
    server.wait_for_records("gappy", 10, Duration::from_secs(60));
    assert!(server.stop());

    // While stopped, the checkpoint's record ages out: its position is one Kinesis no longer
    // has (the emulator refuses it, as it refuses any record it does not hold).
    let moved = Command::new(&emulators.moto_python)
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             rows = c.execute('SELECT scope, shard_id, sequence_number FROM checkpoints').fetchall()\n\
             for scope, shard, sequence in rows:\n\
             \x20   c.execute('UPDATE checkpoints SET sequence_number = ? WHERE scope = ? AND shard_id = ?', (str(int(sequence) + 1), scope, shard))\n\
             c.commit()\n\
             print(len(rows))\n",
        ])
        .arg(data_dir.join("tributary.db"))
        .output()
        .expect("python");
    assert_eq!(String::from_utf8_lossy(&moved.stdout).trim(), "1", "{}", String::from_utf8_lossy(&moved.stderr));
    put(&rt, &emulators.kinesis, &stream_arn, 10..20);

    let server = ServerProcess::start(&data_dir, &[]);
    let status = server.wait_for_records("gappy", 20, Duration::from_secs(60));
    assert_eq!(status["state"], "running", "no failure, no restart loop: {status:#}");
    let shard = &status["shards"][0];
    assert_eq!(
        (shard["warning"].as_str(), shard["retention_gaps"].as_u64()),
        (Some("RETENTION_GAP"), Some(1)),
        "{status:#}"
    );
    let metrics = server.metrics();
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("tributary_shard_retention_gaps_total{source=\"gappy\"")
                && line.ends_with(" 1")),
        "{metrics}"
    );
    assert!(server.stop());
    let counts = id_counts(&dataset_rows(&data_dir, "gappy_rows", None));
    assert_eq!(counts.len(), 20, "the records after the gap are read");
    assert!(counts.values().all(|n| *n == 1), "nothing before the checkpoint is read again");
}

/// Seconds from putting `range` on `stream_arn` until `source` has committed `total` records.
fn seconds_to_land(
    rt: &tokio::runtime::Runtime,
    server: &ServerProcess,
    endpoint: &str,
    stream_arn: &str,
    source: &str,
    range: std::ops::Range<usize>,
    total: u64,
) -> f64 {
    let started = Instant::now();
    put(rt, endpoint, stream_arn, range);
    server.wait_for_records(source, total, Duration::from_secs(60));
    started.elapsed().as_secs_f64()
}

#[test]
fn large_error_log_queries_do_not_hold_up_another_sources_commits() {
    let Some(emulators) = Emulators::from_env() else { return };
    let rt = runtime();
    let noisy_stream = rt.block_on(create_stream(&emulators.kinesis, &unique("noisy"), 1, true));
    let busy_stream = rt.block_on(create_stream(&emulators.kinesis, &unique("busy"), 1, true));
    // 1,000 rejected records of 4 KiB each in the error log.
    put_payloads(&rt, &emulators.kinesis, &noisy_stream, 0..1000, |i| format!("not json {i} {}", "x".repeat(4096)));
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let server = ServerProcess::start(&data_dir, &["--flush-seconds", "0.2"]);
    commit(&server, &definition(dir.path(), "noisy", "noisy_rows", &noisy_stream));
    commit(&server, &definition(dir.path(), "busy", "busy_rows", &busy_stream));
    server.wait_for_records("noisy", 1000, Duration::from_secs(60));

    let quiet = seconds_to_land(&rt, &server, &emulators.kinesis, &busy_stream, "busy", 0..200, 200);
    // Now with clients reading the whole error log, page after page, the whole time.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (loaded, pages) = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut pages = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let page = server.get("/api/v1/sources/noisy/errors?limit=1000");
                        assert!(!page["errors"].as_array().expect("errors").is_empty());
                        pages += 1;
                    }
                    pages
                })
            })
            .collect();
        let loaded = seconds_to_land(&rt, &server, &emulators.kinesis, &busy_stream, "busy", 200..400, 400);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (loaded, readers.into_iter().map(|reader| reader.join().expect("reader")).sum::<u64>())
    });
    eprintln!(
        "busy source: 200 records landed in {quiet:.2} s alone, {loaded:.2} s while {pages} error-log pages were read"
    );
    assert!(pages > 0, "the error log was read meanwhile");
    assert!(server.stop());
    assert_eq!(id_counts(&dataset_rows(&data_dir, "busy_rows", None)).len(), 400);
}
