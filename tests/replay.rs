//! Replaying rejected rows, against kinesis-local. A dry run decodes the rows
//! a source rejected again with its current version or with a draft
//! definition not committed yet, under the draft's rules, and says (API and
//! CLI) how many would now land, by old reason, with examples side by side,
//! writing nothing. A replay lands them exactly once, into Parquet files or
//! an Iceberg table, also when the server dies in the middle.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::lakehouse::{create_bucket, ids, pyiceberg};
use support::server::{ServerProcess, dataset_rows};
use support::{Emulators, create_stream, kinesis_client, put_indexed, stdout, tributary, unique};

/// Every 30th record is rejected, in turn: `id` a string (TYPE_MISMATCH), cut
/// short (MALFORMED), no `id` (MISSING_FIELD); 600 records give 7, 7 and 6.
fn payload(i: usize) -> Vec<u8> {
    if i % 30 == 29 {
        return match (i / 30) % 3 {
            0 => format!("{{\"id\": \"not-a-number-{i}\", \"ts\": \"2024-06-01T00:00:00Z\"}}"),
            1 => format!("{{\"id\": {i}, \"ts\": \"2024-06-01T00:00:00Z\""),
            _ => format!("{{\"ts\": \"2024-06-01T00:00:00Z\", \"name\": \"missing id {i}\"}}"),
        }
        .into_bytes();
    }
    format!("{{\"id\": {i}, \"ts\": \"2024-06-01T12:00:00Z\", \"name\": \"n{i}\"}}").into_bytes()
}

fn definition(dir: &Path, file: &str, stream_arn: &str, id_type: &str, filter: &str) -> std::path::PathBuf {
    let text = format!(
        "sources:\n  - name: events\n    kinesis:\n      stream_arn: {stream_arn}\n      init_position: trim_horizon\n      format: json\n    dataset:\n      name: events_rows\n      format: parquet\n      fields:\n        - {{name: id, type: \"{id_type}\"}}\n        - {{name: ts, type: timestamp}}\n        - {{name: name, type: \"optional<string>\"}}\n      timestamp: ts\n{filter}"
    );
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write definition");
    path
}

/// POSTs `body` to the replay endpoint: the status and the JSON answer.
fn replay(server: &ServerProcess, source: &str, content_type: &str, body: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = agent
        .post(&format!("{}/api/v1/sources/{source}/replay", server.url()))
        .header("Content-Type", content_type)
        .send(body)
        .expect("POST");
    let text = response.body_mut().read_to_string().expect("body");
    (response.status().as_u16(), serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn reason<'a>(answer: &'a Value, code: &str) -> &'a Value {
    answer["by_reason"].as_array().into_iter().flatten().find(|r| r["reason"] == code).expect(code)
}

#[test]
fn a_dry_run_tells_which_rejected_rows_a_fixed_definition_would_land() {
    let Some(emulators) = Emulators::from_env() else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let client = kinesis_client(&emulators.kinesis);
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &unique("replay"), 2, true));
    rt.block_on(put_indexed(&client, &stream_arn, 0..600, payload));

    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let server = ServerProcess::start(&data_dir, &[]);
    let committed = definition(dir.path(), "v1.yaml", &stream_arn, "int64", "");
    let output = tributary(&["commit", &committed.to_string_lossy(), "--server", &server.url(), "-m", "v1"], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let status = server.wait_for_records("events", 600, Duration::from_secs(60));
    assert_eq!((status["rows"].as_u64(), status["rejected"].as_u64()), (Some(580), Some(20)), "{status:#}");

    // The current version rejects them all again, each for its old reason.
    let (code, answer) = replay(&server, "events", "application/json", r#"{"dry_run": true}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!((answer["examined"].as_u64(), answer["would_land"].as_u64()), (Some(20), Some(0)), "{answer:#}");
    assert_eq!(answer["decoded_with"], 1);
    for (code, rows) in [("TYPE_MISMATCH", 7), ("MALFORMED", 7), ("MISSING_FIELD", 6)] {
        let tally = reason(&answer, code);
        assert_eq!((tally["rows"].as_u64(), tally["still_rejected"].as_u64()), (Some(rows), Some(rows)), "{tally:#}");
        let example = &tally["examples"][0];
        assert_eq!((&example["was"]["reason"], &example["now"]["reason"]), (&json!(code), &json!(code)), "{example:#}");
    }

    // A draft with `id` optional text lands the TYPE_MISMATCH and MISSING_FIELD rows;
    // its `where` leaves out the ones without a name; the cut-short ones stay MALFORMED.
    let draft =
        definition(dir.path(), "draft.yaml", &stream_arn, "optional<string>", "    where: \"name IS NOT NULL\"\n");
    let shown = tributary(
        &["replay", "events", "--dry-run", "--definition", &draft.to_string_lossy(), "--server", &server.url()],
        &[],
    );
    let text = stdout(&shown);
    assert!(shown.status.success(), "{text}{}", String::from_utf8_lossy(&shown.stderr));
    assert!(
        text.contains(
            "20 rejected rows examined with draft: 6 would land, 7 filtered by the rules, 7 still rejected, 0 kept only in part"
        ),
        "{text}"
    );
    let json_answer = tributary(
        &[
            "replay",
            "events",
            "--dry-run",
            "--json",
            "--definition",
            &draft.to_string_lossy(),
            "--server",
            &server.url(),
        ],
        &[],
    );
    let answer: Value = serde_json::from_slice(&json_answer.stdout).expect("JSON answer");
    let missing = reason(&answer, "MISSING_FIELD");
    assert_eq!(missing["would_land"], 6, "{missing:#}");
    let landed = &missing["examples"][0]["now"];
    assert_eq!(landed["outcome"], "lands");
    assert!(landed["row"]["id"].is_null(), "{landed:#}");
    assert!(landed["row"]["name"].as_str().is_some_and(|name| name.starts_with("missing id ")), "{landed:#}");
    let mismatched = reason(&answer, "TYPE_MISMATCH");
    assert_eq!(mismatched["filtered"], 7, "{mismatched:#}");
    let filtered = &mismatched["examples"][0]["now"];
    assert_eq!(filtered["outcome"], "filtered");
    assert!(filtered["row"]["id"].as_str().is_some_and(|id| id.starts_with("not-a-number-")), "{filtered:#}");
    assert_eq!(reason(&answer, "MALFORMED")["still_rejected"], 7);

    // One reason only.
    let (_, only) = replay(&server, "events", "application/json", r#"{"dry_run": true, "reason": "MALFORMED"}"#);
    assert_eq!(only["examined"], 7, "{only:#}");

    // Nothing was written: the dataset and the error log are as they were.
    let after = server.get("/api/v1/sources/events/status");
    assert_eq!((after["rows"].as_u64(), after["rejected"].as_u64()), (Some(580), Some(20)));
    assert_eq!(server.errors("events").len(), 20);

    // Refusals, each with a clear answer.
    let refused =
        tributary(&["replay", "events", "--definition", &draft.to_string_lossy(), "--server", &server.url()], &[]);
    assert_eq!(refused.status.code(), Some(1), "a replay lands rows with the committed version only");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("commit the draft first"), "{refused:?}");
    assert_eq!(replay(&server, "nope", "application/json", r#"{"dry_run": true}"#).0, 404);
    assert_eq!(replay(&server, "events", "text/plain", r#"{"dry_run": true}"#).0, 415, "no simple cross-site POST");
    assert_eq!(replay(&server, "events", "application/json", r#"{"dry_run": true, "x": 1}"#).0, 400);
    let other = r#"{"dry_run": true, "draft": {"name": "other"}}"#;
    let (code, answer) = replay(&server, "events", "application/json", other);
    assert_eq!(code, 400, "{answer}");

    // The fix committed (`id` optional): a replay lands the rows without an id, once.
    let fixed = definition(dir.path(), "v2.yaml", &stream_arn, "optional<int64>", "");
    let output = tributary(&["commit", &fixed.to_string_lossy(), "--server", &server.url(), "-m", "v2"], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let replayed = tributary(&["replay", "events", "--server", &server.url()], &[]);
    let text = stdout(&replayed);
    assert!(replayed.status.success(), "{text}{}", String::from_utf8_lossy(&replayed.stderr));
    assert!(
        text.contains("replayed with version 2: 6 rows landed, 0 filtered by the rules, 14 still rejected"),
        "{text}"
    );
    let (code, again) = replay(&server, "events", "application/json", r#"{"dry_run": false}"#);
    assert_eq!(code, 200, "{again}");
    assert_eq!((again["landed"].as_u64(), again["still_rejected"].as_u64()), (Some(0), Some(14)), "{again:#}");
    let left = server.errors("events");
    assert_eq!(left.len(), 14, "the replayed rows left the error log's view");
    assert!(left.iter().all(|row| row["reason"] != "MISSING_FIELD"), "{left:#?}");
    let status = server.get("/api/v1/sources/events/status");
    assert_eq!(status["rows"].as_u64(), Some(586), "{status:#}");
    let rows = dataset_rows(&data_dir, "events_rows", Some("name"));
    let replayed_rows =
        rows.iter().filter(|row| row.extra.as_deref().is_some_and(|name| name.starts_with("missing id "))).count();
    assert_eq!(replayed_rows, 6, "each replayed row once");
    assert_eq!(rows.len(), 586);
    assert!(server.stop(), "SIGTERM ends the server cleanly");
}

/// Record `i` of the Iceberg test: every 25th without a `name` (MISSING_FIELD
/// until `name` is optional), every 25th another with a text `id` (TYPE_MISMATCH for good).
fn iceberg_payload(i: usize) -> Vec<u8> {
    match i % 25 {
        24 => format!("{{\"id\": {i}, \"ts\": \"2024-06-01T00:00:00Z\"}}"),
        12 => format!("{{\"id\": \"x{i}\", \"ts\": \"2024-06-01T00:00:00Z\", \"name\": \"n\"}}"),
        _ => format!("{{\"id\": {i}, \"ts\": \"2024-06-0{}T12:00:00Z\", \"name\": \"n{i}\"}}", 1 + i % 3),
    }
    .into_bytes()
}

fn iceberg_definition(dir: &Path, file: &str, stream_arn: &str, name_type: &str) -> std::path::PathBuf {
    let text = format!(
        "sources:\n  - name: fixed\n    kinesis:\n      stream_arn: {stream_arn}\n      init_position: trim_horizon\n      format: json\n    dataset:\n      name: fixed_rows\n      format: iceberg\n      fields:\n        - {{name: id, type: int64}}\n        - {{name: ts, type: timestamp}}\n        - {{name: name, type: \"{name_type}\"}}\n      timestamp: ts\n"
    );
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write definition");
    path
}

/// Where the fixed source's tables live, and how pyiceberg finds them.
struct Warehouse {
    flags: Vec<String>,
    env: Vec<(String, String)>,
    /// The Glue database recording the tables, if not the embedded catalog.
    glue_database: Option<String>,
}

impl Warehouse {
    fn local() -> Warehouse {
        Warehouse { flags: Vec::new(), env: Vec::new(), glue_database: None }
    }

    /// pyiceberg's location of table `name` (under `data_dir` when local).
    fn table(&self, data_dir: &Path, name: &str) -> String {
        match &self.glue_database {
            Some(database) => format!("glue:{database}/{name}"),
            None => data_dir.join("warehouse").join(name).display().to_string(),
        }
    }

    /// On moto's S3, recorded in moto's Glue: a catalog that moves one table at a time.
    fn glue(emulators: &Emulators) -> Warehouse {
        let database = unique("replayglue_");
        let flags = vec![
            "--warehouse".to_owned(),
            format!("s3://{}/tables", create_bucket(emulators)),
            "--catalog".to_owned(),
            "glue".to_owned(),
            "--glue-database".to_owned(),
            database.clone(),
        ];
        Warehouse {
            flags,
            env: vec![("AWS_ENDPOINT_URL_GLUE".to_owned(), emulators.moto.clone())],
            glue_database: Some(database),
        }
    }
}

/// Ingests, commits the fix, replays with `failpoint` set (the server dies
/// there), starts again, replays again: every fixed row is in the table once.
fn replay_killed_at(emulators: &Emulators, failpoint: &str, warehouse: &Warehouse) {
    replay_in_chunks_killed_at(emulators, failpoint, warehouse, None);
}

/// [`replay_killed_at`], with `chunk_rows` rows per chunk when given (the
/// server then dies at the first chunk's `failpoint`, with the next one decoded
/// or being decoded beside it).
fn replay_in_chunks_killed_at(emulators: &Emulators, failpoint: &str, warehouse: &Warehouse, chunk_rows: Option<&str>) {
    const RECORDS: usize = 500;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let client = kinesis_client(&emulators.kinesis);
    let fixable: Vec<i64> = (0..RECORDS).filter(|i| i % 25 == 24).map(|i| i as i64).collect();
    let valid: Vec<i64> = (0..RECORDS).filter(|i| i % 25 != 24 && i % 25 != 12).map(|i| i as i64).collect();
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &unique("replayice"), 2, true));
    rt.block_on(put_indexed(&client, &stream_arn, 0..RECORDS, iceberg_payload));
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let mut flags: Vec<&str> = warehouse.flags.iter().map(String::as_str).collect();
    if let Some(rows) = chunk_rows {
        flags.extend(["--replay-chunk-rows", rows]);
    }
    let env: Vec<(&str, &str)> = warehouse.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut dying = env.clone();
    dying.push(("TRIBUTARY_FAILPOINT", failpoint));
    let mut server = ServerProcess::start_with_env(&data_dir, &flags, &dying);
    let v1 = iceberg_definition(dir.path(), "v1.yaml", &stream_arn, "string");
    let output = tributary(&["commit", &v1.to_string_lossy(), "--server", &server.url()], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let status = server.wait_for_records("fixed", RECORDS as u64, Duration::from_secs(60));
    assert_eq!((status["rows"].as_u64(), status["rejected"].as_u64()), (Some(valid.len() as u64), Some(40)));

    // The fix: `name` optional. Its dry run says what the replay will do.
    let v2 = iceberg_definition(dir.path(), "v2.yaml", &stream_arn, "optional<string>");
    let output = tributary(&["commit", &v2.to_string_lossy(), "--server", &server.url()], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (_, dry) = replay(&server, "fixed", "application/json", r#"{"dry_run": true}"#);
    assert_eq!((dry["would_land"].as_u64(), dry["still_rejected"].as_u64()), (Some(20), Some(20)), "{dry:#}");

    // The replay dies at the failpoint; the next start settles it by the table's replay marker.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let died = agent
        .post(&format!("{}/api/v1/sources/fixed/replay", server.url()))
        .header("Content-Type", "application/json")
        .send(r#"{"dry_run": false}"#);
    if let Ok(mut answer) = died {
        let said = answer.body_mut().read_to_string().unwrap_or_default();
        panic!("{failpoint}: the server should have died mid-replay; it answered {}: {said}", answer.status());
    }
    server.restart_after_exit(&env, Duration::from_secs(60));
    let (code, again) = replay(&server, "fixed", "application/json", r#"{"dry_run": false}"#);
    assert_eq!(code, 200, "{again}");
    let landed_now = again["landed"].as_u64().unwrap_or_default();
    match (failpoint, chunk_rows) {
        ("replay-before-table-commit", _) => assert_eq!(landed_now, 20, "{failpoint}: {again:#}"),
        // The first chunk's fixed rows (how many depends on the log's order) landed before the stop.
        (_, Some(_)) => assert!(landed_now <= 20, "{failpoint}: {again:#}"),
        (_, None) => assert_eq!(landed_now, 0, "{failpoint}: {again:#}"),
    }
    assert_eq!(again["still_rejected"].as_u64(), Some(20), "{failpoint}: {again:#}");
    if chunk_rows.is_some() {
        assert!(again["chunks"].as_u64() > Some(1), "{failpoint}: {again:#}");
    }
    let (_, third) = replay(&server, "fixed", "application/json", r#"{"dry_run": false}"#);
    assert_eq!(third["landed"].as_u64(), Some(0), "{failpoint}: {third:#}");

    // Read back by pyiceberg: every valid and every fixed row once; the rejected
    // table says each fixed row was replayed, once.
    if let Some(read) = pyiceberg(warehouse.table(&data_dir, "fixed_rows"), None) {
        let mut expected: Vec<i64> = valid.iter().chain(&fixable).copied().collect();
        expected.sort_unstable();
        assert_eq!(ids(&read), expected, "{failpoint}");
        let rejected = pyiceberg(warehouse.table(&data_dir, "fixed_rows__rejected"), None).expect("read");
        let marks = rejected["rejected"].as_array().expect("rows");
        let replayed = marks.iter().filter(|mark| mark.as_str().is_some_and(|m| m.ends_with("/REPLAYED"))).count();
        assert_eq!(replayed, fixable.len(), "{failpoint}: {marks:?}");
    }
    let left = server.errors("fixed");
    assert_eq!(left.len(), 20, "{failpoint}");
    assert!(left.iter().all(|row| row["reason"] == "TYPE_MISMATCH"), "{left:#?}");
    let status = server.get("/api/v1/sources/fixed/status");
    assert_eq!(status["rows"].as_u64(), Some((valid.len() + fixable.len()) as u64), "{failpoint}: {status:#}");
    assert!(server.stop());
}

#[test]
fn a_replay_killed_before_or_after_its_table_commit_and_run_again_lands_every_fixed_row_once() {
    let Some(emulators) = Emulators::from_env() else { return };
    for failpoint in ["replay-after-table-commit", "replay-before-table-commit"] {
        replay_killed_at(&emulators, failpoint, &Warehouse::local());
    }
}

#[test]
fn a_replay_in_many_chunks_killed_after_its_first_table_commit_and_run_again_lands_every_fixed_row_once() {
    let Some(emulators) = Emulators::from_env() else { return };
    // 40 rows in chunks of 6: a chunk lands while the next is decoded.
    replay_in_chunks_killed_at(&emulators, "replay-after-table-commit", &Warehouse::local(), Some("6"));
}

#[test]
fn with_glue_a_replay_killed_between_its_two_table_commits_is_finished_at_the_next_start() {
    let Some(emulators) = Emulators::from_env() else { return };
    // Glue moves one table at a time: the rows table got the chunk, the rejected table not yet.
    replay_killed_at(&emulators, "between-replay-commits", &Warehouse::glue(&emulators));
}
