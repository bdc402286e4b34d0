//! `tributary metadata ingest` end to end: kinesis-local streams of every
//! shape, a committed Tributary source, and an OpenMetadata stand-in that
//! validates every request body against OpenMetadata's own schemas.

mod support;

use std::path::Path;
use std::process::Command;

use aws_sdk_kinesis::primitives::Blob;
use serde_json::{Value, json};
use support::openmetadata::{Fault, FaultProxy, OpenMetadataStandIn, errors, validator};
use support::server::ServerProcess;
use support::{Emulators, create_stream, kinesis_client, stdout, tributary, unique, wait_active, write_definition};

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.stand-in-bot.token";
const SECRET: &str = "SECRET-NEVER-SENT-wJalrXUtnFEMI";

/// The docs' workflow with this test's endpoint, filter and sink.
fn workflow(
    dir: &Path,
    service: &str,
    endpoint: &str,
    includes: &[&str],
    excludes: &[&str],
    sink: &str,
    host_port: &str,
) -> std::path::PathBuf {
    let list = |items: &[&str]| items.iter().map(|i| format!("\n          - \"{i}\"")).collect::<String>();
    let text = format!(
        r#"source:
  type: kinesis
  serviceName: {service}
  serviceConnection:
    config:
      type: Kinesis
      awsConfig:
        awsAccessKeyId: test-access-key
        awsSecretAccessKey: "${{OM_TEST_AWS_SECRET}}"
        awsRegion: us-east-1
        endPointURL: {endpoint}
  sourceConfig:
    config:
      type: MessagingMetadata
      generateSampleData: true
      markDeletedTopics: true
      topicFilterPattern:
        includes:{}
        excludes:{}
{sink}
workflowConfig:
  loggerLevel: INFO
  openMetadataServerConfig:
    hostPort: "{host_port}"
    authProvider: openmetadata
    securityConfig:
      jwtToken: "$OM_TEST_JWT"
"#,
        list(includes),
        list(excludes),
    );
    let path = dir.join(format!("{service}.yaml"));
    std::fs::write(&path, text).expect("write workflow");
    path
}

/// A workflow for streams named `prefix...` that writes its requests to a file.
fn file_sink_workflow(
    dir: &Path,
    service: &str,
    endpoint: &str,
    prefix: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let lines = dir.join(format!("{service}.jsonl"));
    let sink = format!("sink:\n  type: file\n  config:\n    filename: {}", lines.display());
    let file = workflow(dir, service, endpoint, &[&regex_escape(prefix)], &[], &sink, "http://127.0.0.1:9/api");
    (file, lines)
}

async fn stream_arn(client: &aws_sdk_kinesis::Client, name: &str) -> String {
    let answer = client.describe_stream_summary().stream_name(name).send().await.expect("DescribeStreamSummary");
    answer.stream_description_summary().expect("a summary").stream_arn().to_owned()
}

const REST_SINK: &str = "sink:\n  type: metadata-rest\n  config: {}";

async fn put(endpoint: &str, stream: &str, key: &str, data: &[u8]) {
    kinesis_client(endpoint)
        .put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(data.to_vec()))
        .send()
        .await
        .expect("PutRecord");
}

fn run(args: &[&str]) -> std::process::Output {
    tributary(args, &[("OM_TEST_JWT", JWT), ("OM_TEST_AWS_SECRET", SECRET)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_every_stream_shape_with_schemas_lineage_and_stale_topics() {
    let Some(emulators) = Emulators::from_env() else { return };
    let kinesis = emulators.kinesis.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("om").replace('-', "_");
    let name = |suffix: &str| format!("{prefix}-{suffix}");

    // 40 one-shard streams, then one of each shape worth a look.
    let mut expected: Vec<String> = Vec::new();
    for index in 0..40 {
        create_stream(kinesis, &name(&format!("plain{index:02}")), 1, false).await;
        expected.push(name(&format!("plain{index:02}")));
    }
    for (suffix, shards) in [
        ("four", 4),
        ("split", 2),
        ("kpl", 1),
        ("binary", 1),
        ("b64", 1),
        ("empty", 1),
        ("long", 1),
        ("many", 3),
        ("dot.ted", 1),
        ("src", 1),
    ] {
        create_stream(kinesis, &name(suffix), shards, true).await;
        expected.push(name(suffix));
    }
    create_stream(kinesis, &name("excluded1"), 1, true).await;
    let client = kinesis_client(kinesis);

    // A split: one closed parent and two open children, three open in all.
    let split = name("split");
    let shards = client.list_shards().stream_name(&split).send().await.expect("ListShards");
    let parent = shards.shards()[0].clone();
    let range = parent.hash_key_range().expect("hash range");
    let middle = (range.starting_hash_key().parse::<u128>().expect("u128")
        + range.ending_hash_key().parse::<u128>().expect("u128"))
        / 2;
    client
        .split_shard()
        .stream_name(&split)
        .shard_to_split(parent.shard_id())
        .new_starting_hash_key(middle.to_string())
        .send()
        .await
        .expect("SplitShard");
    let split_arn = stream_arn(&client, &split).await;
    wait_active(kinesis, &split_arn).await;

    let kpl = tributary_reader::kpl::pack(&[
        ("a", None, b"{\"sub\":1}"),
        ("b", None, b"{\"sub\":2}"),
        ("c", None, b"{\"sub\":3}"),
    ]);
    put(kinesis, &name("kpl"), "a", &kpl).await;
    let binary: Vec<u8> = vec![0xff, 0xfe, 0x00, 0x81, 0x10];
    put(kinesis, &name("binary"), "k", &binary).await;
    // Valid JSON that is also valid base64 text: must not be decoded a second time.
    for payload in [r#"{"QUFB":"QUFB"}"#, "\"aGVsbG8gd29ybGQ=\"", "eyJrIjoidiJ9"] {
        put(kinesis, &name("b64"), "k", payload.as_bytes()).await;
    }
    for index in 0..12 {
        put(kinesis, &name("many"), &format!("key{index}"), format!("{{\"n\":{index}}}").as_bytes()).await;
    }
    put(kinesis, &name("dot.ted"), "k", b"dotted").await;
    client
        .increase_stream_retention_period()
        .stream_name(name("long"))
        .retention_period_hours(48)
        .send()
        .await
        .expect("retention");

    // A committed Tributary source reads `src`: its schema and lineage get published.
    let src_arn = stream_arn(&client, &name("src")).await;
    let server = ServerProcess::start(&dir.path().join("data"), &[]);
    let definition = write_definition(dir.path(), "clicks", &src_arn, None);
    let output = tributary(&["commit", definition.to_str().expect("utf-8"), "--server", &server.url()], &[]);
    assert!(output.status.success(), "commit: {}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));

    let om = OpenMetadataStandIn::start(JWT).await;
    let service = format!("svc_{}", prefix);
    {
        let mut state = om.state.lock().expect("state");
        // From an earlier run: gone from Kinesis and admitted (deleted); excluded, and outside the includes (kept).
        state.seed_topic(&service, &name("gone"));
        state.seed_topic(&service, &name("excluded_old"));
        state.seed_topic(&service, "someone_elses_topic");
        // The server is busy twice: both are retried.
        state.faults.push_back(("PUT".into(), "/api/v1/topics".into(), 429));
        state.faults.push_back(("PUT".into(), "/api/v1/topics".into(), 503));
    }
    let escaped = regex_escape(&prefix);
    let file = workflow(
        dir.path(),
        &service,
        kinesis,
        &[&format!("{escaped}-")],
        &[&format!("{escaped}-EXCLUDED")],
        REST_SINK,
        &om.host_port(),
    );
    // Pages of two: ListStreams and ListShards both paginate (ListShards' later pages carry only the token).
    let output = run(&[
        "metadata",
        "ingest",
        "-c",
        file.to_str().expect("utf-8"),
        "--page-size",
        "2",
        "--tributary-server",
        &server.url(),
    ]);
    let (out, err) = (stdout(&output), String::from_utf8_lossy(&output.stderr).into_owned());
    assert_eq!(output.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.lines().last().is_some_and(|line| line.starts_with("listed=")
            && line.contains(&format!("published={}", expected.len()))
            && line.contains("failed=0")
            && line.contains("deleted=1")),
        "{out}"
    );

    let state = om.state.lock().expect("state");
    assert!(state.invalid.is_empty(), "bodies OpenMetadata would refuse:\n{}", state.invalid.join("\n"));
    assert!(
        state.requests.iter().all(|r| r.authorization.as_deref() == Some(&format!("Bearer {JWT}"))),
        "every request carries the JWT"
    );
    for request in &state.requests {
        assert!(!request.body.to_string().contains(SECRET), "the AWS secret reached the server: {}", request.path);
    }
    assert_eq!(state.requests[0].path, "/api/v1/system/version");
    let service_body = &state.entities["messagingServices"][&service].1;
    assert_eq!(service_body["serviceType"], "Kinesis");
    assert_eq!(service_body["connection"]["config"]["awsConfig"]["awsAccessKeyId"], "test-access-key");
    assert!(service_body["connection"]["config"]["awsConfig"].get("awsSecretAccessKey").is_none());
    assert!(
        state.requests.iter().filter(|r| r.method == "PUT" && r.path == "/api/v1/topics").count() >= expected.len() + 2,
        "429 and 503 were retried"
    );

    let fqn = |suffix: &str| {
        let topic = name(suffix);
        format!("{service}.{}", if topic.contains('.') { format!("\"{topic}\"") } else { topic })
    };
    let live: Vec<String> = state.entities["topics"]
        .iter()
        .filter(|(_, (_, body, deleted))| !deleted && body.get("partitions").is_some())
        .map(|(_, (_, body, _))| body["name"].as_str().expect("name").to_owned())
        .collect();
    let mut live = live;
    live.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(live, want, "exactly the admitted streams are topics");
    let topic = |suffix: &str| state.topic(&fqn(suffix)).unwrap_or_else(|| panic!("topic {suffix}")).1.clone();
    assert_eq!(topic("plain00")["partitions"], 1);
    assert_eq!(topic("four")["partitions"], 4);
    assert_eq!(topic("split")["partitions"], 3, "open shards only, the closed parent is not a partition");
    assert_eq!(topic("many")["partitions"], 3);
    assert_eq!(topic("plain00")["retentionTime"], 24 * 3_600_000);
    assert_eq!(topic("long")["retentionTime"], 48 * 3_600_000);
    assert_eq!(topic("plain00")["maximumMessageSize"], 1_000_000);
    assert!(topic("plain00")["sourceUrl"].as_str().is_some_and(|url| url.contains("console.aws.amazon.com/kinesis")));

    // Sample data: on the first run, decoded exactly once.
    let sample = |suffix: &str| state.sample_of(&fqn(suffix)).unwrap_or_else(|| panic!("sample of {suffix}")).clone();
    assert_eq!(sample("b64"), [r#"{"QUFB":"QUFB"}"#, "\"aGVsbG8gd29ybGQ=\"", "eyJrIjoidiJ9"]);
    assert_eq!(sample("kpl"), [r#"{"sub":1}"#, r#"{"sub":2}"#, r#"{"sub":3}"#], "KPL aggregates unpacked");
    assert_eq!(sample("binary"), ["base64://4AgRA="]);
    assert_eq!(sample("dot.ted"), ["dotted"]);
    assert!(sample("empty").is_empty());
    let many = sample("many");
    assert_eq!(many.len(), 10, "at most --sample-size records: {many:?}");
    assert!(many.iter().all(|m| m.starts_with("{\"n\":")), "{many:?}");

    // What only Tributary knows: the dataset schema and the lineage.
    let schema = &topic("src")["messageSchema"];
    assert_eq!(schema["schemaType"], "JSON");
    assert_eq!(
        schema["schemaFields"],
        json!([{"name": "id", "dataType": "LONG"}, {"name": "ts", "dataType": "TIMESTAMP"}])
    );
    assert!(topic("plain00").get("messageSchema").is_none());
    let (src_id, pipeline_id, container_id) = (
        state.topic(&fqn("src")).expect("src").0.clone(),
        state.entities["pipelines"]["tributary.clicks"].0.clone(),
        state.entities["containers"]["tributary_datasets.clicks"].0.clone(),
    );
    // One edge from the topic to the dataset, carrying the pipeline and which field feeds which column.
    assert_eq!(state.edges, [("topic".to_owned(), src_id, "container".to_owned(), container_id)]);
    assert_eq!(
        state.edge_details[0],
        json!({"pipeline": {"id": pipeline_id, "type": "pipeline"}, "columnsLineage": [
            {"fromColumns": [format!("{}.id", fqn("src"))], "toColumn": "tributary_datasets.clicks.id"},
            {"fromColumns": [format!("{}.ts", fqn("src"))], "toColumn": "tributary_datasets.clicks.ts"},
        ]})
    );
    // The ingest's health: the source is running, its one task carries the counts and a link to them.
    let status = &state.statuses["tributary.clicks"][0];
    assert_eq!(status["executionStatus"], "Successful", "{status}");
    assert_eq!(status["taskStatus"][0]["name"], "ingest");
    assert_eq!(status["taskStatus"][0]["logLink"], format!("{}/api/v1/sources/clicks/status", server.url()));
    let task = &state.entities["pipelines"]["tributary.clicks"].1["tasks"][0];
    assert!(task["description"].as_str().is_some_and(|d| d.starts_with("running: ")), "{task}");
    let container = &state.entities["containers"]["tributary_datasets.clicks"].1;
    assert_eq!(
        container["dataModel"]["columns"][0],
        json!({"name": "id", "dataType": "BIGINT", "dataTypeDisplay": "int64"})
    );
    assert!(container["fullPath"].as_str().is_some_and(|p| p.ends_with("warehouse/clicks")), "{container}");

    // markDeletedTopics: only the stale, admitted topic.
    let deleted: Vec<&str> = state.entities["topics"]
        .values()
        .filter(|(_, _, deleted)| *deleted)
        .map(|(_, body, _)| body["name"].as_str().expect("name"))
        .collect();
    assert_eq!(deleted, [name("gone").as_str()]);
    drop(state);
    assert!(server.stop(), "a clean stop");
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { vec![c] } else { vec!['\\', c] })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stream_is_reported_and_throttling_is_retried() {
    let Some(emulators) = Emulators::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("omf").replace('-', "_");
    for suffix in ["ok1", "ok2", "broken", "throttled"] {
        create_stream(&emulators.kinesis, &format!("{prefix}-{suffix}"), 1, true).await;
    }
    let proxy = FaultProxy::start(
        &emulators.kinesis,
        vec![
            // Deleted under our feet: fails for good, reported, the others go on.
            Fault {
                operation: "DescribeStreamSummary",
                body_contains: format!("{prefix}-broken"),
                error_type: "ResourceNotFoundException",
                remaining: 100,
            },
            // Over the account's control-plane rate three times, then through.
            Fault {
                operation: "DescribeStreamSummary",
                body_contains: format!("{prefix}-throttled"),
                error_type: "LimitExceededException",
                remaining: 3,
            },
        ],
    )
    .await;
    let om = OpenMetadataStandIn::start(JWT).await;
    let file =
        workflow(dir.path(), "svc_faults", &proxy.url(), &[&regex_escape(&prefix)], &[], REST_SINK, &om.host_port());
    let output = run(&["metadata", "ingest", "-c", file.to_str().expect("utf-8")]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "a failed stream fails the run: {out}");
    assert!(
        out.contains(&format!("FAILED {prefix}-broken: DescribeStreamSummary"))
            && out.contains("ResourceNotFoundException"),
        "{out}"
    );
    assert!(out.lines().last().is_some_and(|l| l.contains("published=3") && l.contains("failed=1")), "{out}");
    assert_eq!(proxy.injected.lock().expect("injected").iter().filter(|f| f.contains("LimitExceeded")).count(), 3);
    let state = om.state.lock().expect("state");
    assert!(state.invalid.is_empty(), "{:?}", state.invalid);
    assert!(state.topic(&format!("svc_faults.{prefix}-throttled")).is_some(), "throttled, retried, published");
    // The listing was complete, the failed stream still exists: nothing is stale.
    assert!(state.requests.iter().all(|r| r.method != "DELETE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_sink_writes_one_line_per_request() {
    let Some(emulators) = Emulators::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("omfile").replace('-', "_");
    create_stream(&emulators.kinesis, &format!("{prefix}-a"), 2, true).await;
    put(&emulators.kinesis, &format!("{prefix}-a"), "k", b"hello").await;
    let (file, lines) = file_sink_workflow(dir.path(), "svc_file", &emulators.kinesis, &prefix);
    let output = run(&["metadata", "ingest", "-c", file.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let requests: Vec<Value> = std::fs::read_to_string(&lines)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let topic = requests.iter().find(|r| r["path"] == "/v1/topics").expect("topic request");
    assert_eq!(topic["method"], "PUT");
    assert_eq!(topic["body"]["partitions"], 2);
    let errors = errors(&validator("api/data/createTopic.json"), &topic["body"]);
    assert!(errors.is_empty(), "{errors:?}");
    let sample = requests
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/sampleData")))
        .expect("sample request");
    assert_eq!(sample["body"], json!({"messages": ["hello"]}));
    assert!(!std::fs::read_to_string(&lines).expect("read").contains(SECRET));
}

#[test]
fn workflow_files_are_validated_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = workflow(dir.path(), "svc", "http://127.0.0.1:9", &["a"], &[], REST_SINK, "http://127.0.0.1:9/api");
    let text = std::fs::read_to_string(&good).expect("read");
    for (from, to, path) in [
        (
            "awsRegion: us-east-1",
            "awsRegoin: us-east-1",
            "source.serviceConnection.config.awsConfig.awsRegoin: unknown field `awsRegoin`",
        ),
        ("        awsRegion: us-east-1\n", "", "source.serviceConnection.config.awsConfig: missing field `awsRegion`"),
        (
            "generateSampleData: true",
            "generateSampleData: 3",
            "source.sourceConfig.config.generateSampleData: invalid type",
        ),
        ("loggerLevel: INFO", "loggerLevel: LOUD", "workflowConfig.loggerLevel: unknown variant `LOUD`"),
    ] {
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, text.replacen(from, to, 1)).expect("write");
        let output = run(&["metadata", "ingest", "-c", bad.to_str().expect("utf-8")]);
        assert_eq!(output.status.code(), Some(2), "{path}");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(err.contains(path), "{err}");
        assert!(stdout(&output).is_empty(), "nothing ran");
    }
    let output =
        tributary(&["metadata", "test-connection", "-c", good.to_str().expect("utf-8")], &[("OM_TEST_JWT", JWT)]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "OM_TEST_AWS_SECRET is unset: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("environment variable `OM_TEST_AWS_SECRET` is not set"));
}

/// The docs' examples: our parser and OpenMetadata's schema agree on each.
#[test]
fn the_docs_workflow_parses_and_agrees_with_openmetadatas_schema() {
    let schema = validator("metadataIngestion/workflow.json#/properties/openMetadataWorkflowConfig");
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/openmetadata/kinesis.yaml"))
        .expect("example");
    let mut cases: Vec<(String, bool)> = vec![(example.clone(), true)];
    for (from, to) in [
        ("awsRegion: us-east-2", "awsRegoin: us-east-2"),
        ("      type: Kinesis\n", "      type: Kinesis\n      bootstrapServers: x\n"),
        ("generateSampleData: true", "generateSampleData: yes please"),
        ("hostPort:", "hostport:"),
        ("type: MessagingMetadata", "type: MessagingMetadata\n      markDeletedTopics: 1"),
    ] {
        assert!(example.contains(from), "{from}");
        cases.push((example.replacen(from, to, 1), false));
    }
    for (text, valid) in cases {
        let value: Value = serde_norway::from_str(&text).expect("yaml");
        let schema_errors = errors(&schema, &value);
        assert_eq!(schema_errors.is_empty(), valid, "schema: {schema_errors:?}\n{text}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.yaml");
        std::fs::write(&path, &text).expect("write");
        let output = tributary(
            &["metadata", "test-connection", "-c", path.to_str().expect("utf-8"), "--timeout", "1"],
            &[("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:9")],
        );
        // Valid: it runs (and fails to connect, exit 1); invalid: refused before anything runs (exit 2).
        assert_eq!(
            output.status.code(),
            Some(if valid { 1 } else { 2 }),
            "{}{}",
            stdout(&output),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_airflow_dag_compiles() {
    let Some(emulators) = Emulators::from_env() else { return };
    let dag = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/openmetadata/airflow_dag.py");
    let output =
        std::process::Command::new(&emulators.moto_python).args(["-m", "py_compile", dag]).output().expect("python");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // With Airflow installed, the DAG also imports and names its task.
    let import = std::process::Command::new(&emulators.moto_python)
        .args(["-c", &format!("import importlib.util as u, sys\ntry:\n    import airflow\nexcept ImportError:\n    print('no airflow'); sys.exit(0)\nspec=u.spec_from_file_location('dag', '{dag}'); m=u.module_from_spec(spec); spec.loader.exec_module(m)\nassert m.dag.task_ids == ['tributary_metadata_ingest'], m.dag.task_ids\nprint('imported')")])
        .output()
        .expect("python");
    assert!(output.status.success() && import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let said = String::from_utf8_lossy(&import.stdout);
    assert!(said.contains("imported") || said.contains("no airflow"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_passes_each_step_and_every_runs_until_sigterm() {
    let Some(emulators) = Emulators::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("omevery").replace('-', "_");
    create_stream(&emulators.kinesis, &format!("{prefix}-a"), 1, true).await;
    let (file, _lines) = file_sink_workflow(dir.path(), "svc_every", &emulators.kinesis, &prefix);
    let path = file.to_str().expect("utf-8");

    let output = run(&["metadata", "test-connection", "-c", path]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    let steps: Vec<&str> = out.lines().map(|line| line.split(':').next().unwrap_or_default()).collect();
    assert_eq!(
        steps,
        [
            "PASS ListStreams",
            "PASS DescribeStreamSummary",
            "PASS ListShards",
            "PASS GetShardIterator",
            "PASS GetRecords"
        ]
    );

    // --every: a summary per run; SIGTERM between runs ends it cleanly.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["metadata", "ingest", "-c", path, "--every", "1s"])
        .envs([("OM_TEST_JWT", JWT), ("OM_TEST_AWS_SECRET", SECRET), ("AWS_EC2_METADATA_DISABLED", "true")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line == "run 3" {
                let _ = seen_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let third_run = seen_rx.recv_timeout(std::time::Duration::from_secs(60));
    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("wait");
    let err = reader.join().expect("stderr reader");
    assert!(third_run.is_ok(), "no third run within 60 s: {err}");
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(err.contains("stopping: signal received"), "{err}");
    let summaries = String::from_utf8_lossy(&output.stdout).lines().filter(|line| line.starts_with("listed=")).count();
    assert!(summaries >= 2, "a summary per run: {}", String::from_utf8_lossy(&output.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_and_glue_registry_schemas_are_published_as_the_topics_message_schema() {
    let Some(emulators) = Emulators::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("omschema").replace('-', "_");
    let registry = format!("{prefix}_registry");
    // One registered Avro schema (`orders-avro`), from the Glue fixture.
    let fixture = Command::new(&emulators.moto_python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/glue_registry.py"))
        .args([&emulators.moto, "records", &registry, "0"])
        .output()
        .expect("run glue_registry.py");
    assert!(fixture.status.success(), "{}", String::from_utf8_lossy(&fixture.stderr));
    let proto_arn = create_stream(&emulators.kinesis, &format!("{prefix}-proto"), 1, true).await;
    let glue_arn = create_stream(&emulators.kinesis, &format!("{prefix}-glue"), 1, true).await;
    let proto = "syntax = \"proto3\"; package shop; message Order { int64 id = 1; int64 ts = 2; }";
    let fields = "    dataset:\n      fields:\n        - {name: id, type: int64}\n        - {name: ts, type: timestamp}\n      timestamp: ts\n";
    let definition = format!(
        "sources:\n  - name: proto_orders\n    kinesis:\n      stream_arn: {proto_arn}\n      init_position: latest\n      format: {{protobuf: {{message: shop.Order, schema: '{proto}'}}}}\n{fields}  - name: glue_orders\n    kinesis:\n      stream_arn: {glue_arn}\n      init_position: latest\n      format: {{avro: {{registry: {{glue: {{registry_name: {registry}, schema_name: orders-avro}}}}}}}}\n{fields}"
    );
    let definition_file = dir.path().join("schemas.yaml");
    std::fs::write(&definition_file, definition).expect("write definition");
    let server = ServerProcess::start(&dir.path().join("data"), &[]);
    let output = tributary(&["commit", definition_file.to_str().expect("utf-8"), "--server", &server.url()], &[]);
    assert!(output.status.success(), "commit: {}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));

    let (file, lines) = file_sink_workflow(dir.path(), "svc_schemas", &emulators.kinesis, &prefix);
    let output = run(&["metadata", "ingest", "-c", file.to_str().expect("utf-8"), "--tributary-server", &server.url()]);
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
    let requests: Vec<Value> = std::fs::read_to_string(&lines)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let schema_of = |stream: &str| {
        requests
            .iter()
            .find(|r| r["path"] == "/v1/topics" && r["body"]["name"] == stream)
            .unwrap_or_else(|| panic!("topic {stream}"))["body"]["messageSchema"]
            .clone()
    };
    let proto_schema = schema_of(&format!("{prefix}-proto"));
    assert_eq!(proto_schema["schemaType"], "Protobuf");
    assert_eq!(proto_schema["schemaText"], proto);
    let glue_schema = schema_of(&format!("{prefix}-glue"));
    assert_eq!(glue_schema["schemaType"], "Avro");
    let text: Value = serde_json::from_str(glue_schema["schemaText"].as_str().expect("text")).expect("Avro JSON");
    assert_eq!(text["name"], "Order", "the registry's latest version, not the dataset's fields: {text}");
    for request in requests.iter().filter(|r| r["path"] == "/v1/topics") {
        let errors = errors(&validator("api/data/createTopic.json"), &request["body"]);
        assert!(errors.is_empty(), "{errors:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_a_wide_stream_reads_a_few_shards_spread_over_its_hash_keys() {
    let Some(emulators) = Emulators::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("omwide").replace('-', "_");
    let (narrow, wide_empty, wide_full) =
        (format!("{prefix}-narrow"), format!("{prefix}-wide-empty"), format!("{prefix}-wide-full"));
    create_stream(&emulators.kinesis, &narrow, 1, true).await;
    create_stream(&emulators.kinesis, &wide_empty, 40, true).await;
    create_stream(&emulators.kinesis, &wide_full, 40, true).await;
    for n in 0..200 {
        put(&emulators.kinesis, &wide_full, &format!("key-{n}"), format!("{{\"n\":{n}}}").as_bytes()).await;
    }
    let proxy = FaultProxy::start(&emulators.kinesis, Vec::new()).await;
    let (file, lines) = file_sink_workflow(dir.path(), "svc_wide", &proxy.url(), &prefix);
    let output = run(&["metadata", "ingest", "-c", file.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let iterators = |stream: &str| {
        let quoted = format!("stream/{stream}\"");
        let forwarded = proxy.forwarded.lock().expect("forwarded");
        forwarded.iter().filter(|call| call.contains("GetShardIterator") && call.contains(&quoted)).count()
    };
    // The streams are younger than the look-back: one pass from the oldest data.
    assert_eq!(iterators(&narrow), 1);
    assert_eq!(iterators(&wide_empty), 3, "one wave of three shards finds nothing: it stops there");
    let full = iterators(&wide_full);
    assert!((3..=10).contains(&full), "{full} shards read for 10 records");
    let requests: Vec<Value> = std::fs::read_to_string(&lines)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    // Only the wide stream with records has a sample to show: ten of its messages.
    let samples: Vec<usize> = requests
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/sampleData")))
        .filter_map(|r| r["body"]["messages"].as_array().map(Vec::len))
        .filter(|messages| *messages > 0)
        .collect();
    assert_eq!(samples, [10]);
}

/// Polls `done` for up to `seconds`.
fn wait_for(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}

/// A source whose dataset is an Iceberg table in Glue: the lineage ends at the
/// `table` OpenMetadata's Glue connector catalogs (created once, with its
/// service, database and schema, then left alone), column by column with
/// `preproc` refs followed; and the server itself publishes the pipeline's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_tables_get_column_lineage_and_the_server_publishes_pipeline_status() {
    let Some(emulators) = Emulators::from_env() else { return };
    let kinesis = emulators.kinesis.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("omglue").replace('-', "_");
    let stream = format!("{prefix}-orders");
    create_stream(kinesis, &stream, 1, false).await;
    let arn = stream_arn(&kinesis_client(kinesis), &stream).await;
    let om = OpenMetadataStandIn::start(JWT).await;
    let service = format!("svc_{prefix}");
    let file = workflow(dir.path(), &service, kinesis, &[&regex_escape(&prefix)], &[], REST_SINK, &om.host_port());

    let bucket = support::lakehouse::create_bucket(&emulators);
    let database = unique("omglue_").replace('-', "_");
    let warehouse = format!("s3://{bucket}/tables");
    let status_file = file.to_str().expect("utf-8");
    let server = ServerProcess::start_with_env(
        &dir.path().join("data"),
        &[
            "--warehouse",
            &warehouse,
            "--catalog",
            "glue",
            "--glue-database",
            &database,
            "--openmetadata-status",
            status_file,
            "--openmetadata-status-seconds",
            "1",
        ],
        &[("AWS_ENDPOINT_URL_GLUE", &emulators.moto), ("OM_TEST_JWT", JWT), ("OM_TEST_AWS_SECRET", SECRET)],
    );
    let definition = dir.path().join("orders.yaml");
    std::fs::write(
        &definition,
        format!(
            "sources:\n  - name: orders\n    kinesis:\n      stream_arn: {arn}\n      init_position: trim_horizon\n      format: json\n    dataset:\n      name: orders_rows\n      format: iceberg\n      fields:\n        - {{name: id, type: int64}}\n        - {{name: ts, type: timestamp}}\n        - {{name: country, type: \"optional<string>\"}}\n        - {{name: origin, type: string}}\n      timestamp: ts\n    preproc:\n      country: {{ref: \"address[country]\"}}\n      origin: {{value: kinesis}}\n"
        ),
    )
    .expect("definition");
    let output = tributary(&["commit", definition.to_str().expect("utf-8"), "--server", &server.url()], &[]);
    assert!(output.status.success(), "commit: {}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
    put(kinesis, &stream, "k", br#"{"id": 1, "ts": 1700000000, "address": {"country": "NL"}}"#).await;

    // The server's own publication: the pipeline is created and its status follows the worker.
    let published = wait_for(30, || {
        let state = om.state.lock().expect("state");
        state
            .statuses
            .get("tributary.orders")
            .is_some_and(|all| all.iter().any(|s| s["executionStatus"] == "Successful"))
    });
    assert!(published, "no Successful status from the server: {:?}", om.state.lock().expect("state").statuses);

    let ingest = || {
        let output = run(&[
            "metadata",
            "ingest",
            "-c",
            file.to_str().expect("utf-8"),
            "--tributary-server",
            &server.url(),
            "--database-service",
            "glue_prod",
        ]);
        let said = format!("{}\n{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
        assert_eq!(output.status.code(), Some(0), "{said}");
        said
    };
    let said = ingest();
    let table_fqn = format!("glue_prod.123456789012.{database}.orders_rows");
    {
        let state = om.state.lock().expect("state");
        assert!(state.invalid.is_empty(), "bodies OpenMetadata would refuse:\n{}", state.invalid.join("\n"));
        assert!(state.entities.contains_key("databaseServices"), "no Glue table: {said}");
        assert_eq!(state.entities["databaseServices"]["glue_prod"].1["serviceType"], "Glue");
        assert!(state.entities["databases"].contains_key("glue_prod.123456789012"), "moto's account is the catalog id");
        assert!(state.entities["databaseSchemas"].contains_key(&format!("glue_prod.123456789012.{database}")));
        let (table_id, table, _) = state.entities["tables"].get(&table_fqn).expect("the Glue table").clone();
        assert_eq!(table["tableType"], "Iceberg");
        let columns: Vec<&str> =
            table["columns"].as_array().expect("columns").iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(columns, ["id", "ts", "country", "origin"]);
        // The messageSchema is the payload's shape: `country` sits at `address.country`; the constant is not in it.
        let topic_fqn = format!("{service}.{stream}");
        let topic = state.topic(&topic_fqn).expect("topic");
        assert_eq!(
            topic.1["messageSchema"]["schemaFields"],
            json!([{"name": "id", "dataType": "LONG"}, {"name": "ts", "dataType": "TIMESTAMP"},
                   {"name": "address", "dataType": "RECORD", "children": [{"name": "country", "dataType": "STRING"}]}])
        );
        assert_eq!(state.edges, [("topic".to_owned(), topic.0.clone(), "table".to_owned(), table_id)]);
        let pipeline_id = &state.entities["pipelines"]["tributary.orders"].0;
        assert_eq!(
            state.edge_details[0],
            json!({"pipeline": {"id": pipeline_id, "type": "pipeline"}, "columnsLineage": [
                {"fromColumns": [format!("{topic_fqn}.id")], "toColumn": format!("{table_fqn}.id")},
                {"fromColumns": [format!("{topic_fqn}.ts")], "toColumn": format!("{table_fqn}.ts")},
                {"fromColumns": [format!("{topic_fqn}.address.country")], "toColumn": format!("{table_fqn}.country")},
            ]})
        );
    }
    // A second run finds the table (as the Glue connector would have made it) and leaves it alone.
    ingest();
    let state = om.state.lock().expect("state");
    let table_puts = state.requests.iter().filter(|r| r.method == "PUT" && r.path == "/api/v1/tables").count();
    assert_eq!(table_puts, 1, "the existing table is not overwritten");
    assert_eq!(state.edges.len(), 2, "the edge is put again");
    assert!(state.invalid.is_empty(), "bodies OpenMetadata would refuse:\n{}", state.invalid.join("\n"));
    drop(state);
    assert!(server.stop(), "a clean stop");
}

/// The Python of a venv holding `openmetadata-ingestion` 2.0.7 (scripts/test.sh makes it).
fn openmetadata_python() -> Option<String> {
    match std::env::var("TRIBUTARY_TEST_OPENMETADATA_PYTHON") {
        Ok(python) if !python.is_empty() => Some(python),
        _ => {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!in_ci, "TRIBUTARY_TEST_OPENMETADATA_PYTHON is not set: run through ./scripts/test.sh");
            eprintln!("SKIPPED: TRIBUTARY_TEST_OPENMETADATA_PYTHON not set");
            None
        }
    }
}

/// What a stand-in ended up with, by topic name: (partitions, retention in ms, samples).
/// (OpenMetadata's Python models send the retention, a JSON number, as `86400000.0`.)
fn topics_of(
    om: &OpenMetadataStandIn,
    service: &str,
) -> std::collections::BTreeMap<String, (Value, Option<f64>, Vec<String>)> {
    let state = om.state.lock().expect("state");
    state.entities["topics"]
        .iter()
        .filter(|(fqn, _)| fqn.starts_with(&format!("{service}.")))
        .map(|(fqn, (_, body, _))| {
            let sample = state.sample_of(fqn).cloned().unwrap_or_default();
            (
                body["name"].as_str().unwrap_or_default().to_owned(),
                (body["partitions"].clone(), body["retentionTime"].as_f64(), sample),
            )
        })
        .collect()
}

/// OpenMetadata's own workflow (`metadata ingest -c`, openmetadata-ingestion 2.0.7) runs the
/// wheel's Custom Messaging source: the same topics, partitions, retention and samples as
/// `tributary metadata ingest` on the same streams, plus the schema, lineage and pipeline status
/// of a Tributary source, every body valid against OpenMetadata's schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetadatas_workflow_runs_the_custom_messaging_connector() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(python) = openmetadata_python() else { return };
    let kinesis = emulators.kinesis.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique("omcustom").replace('-', "_");
    let name = |suffix: &str| format!("{prefix}-{suffix}");
    create_stream(kinesis, &name("three"), 3, false).await;
    create_stream(kinesis, &name("events"), 1, false).await;
    create_stream(kinesis, &name("quiet"), 1, false).await;
    create_stream(kinesis, &name("skipped"), 1, false).await;
    for index in 0..4 {
        put(kinesis, &name("three"), &format!("k{index}"), format!("{{\"n\":{index}}}").as_bytes()).await;
    }
    put(kinesis, &name("events"), "k", br#"{"id": 7, "ts": 1700000000}"#).await;
    put(kinesis, &name("events"), "k", &[0xff, 0x00, 0x10]).await;
    let events_arn = stream_arn(&kinesis_client(kinesis), &name("events")).await;
    let server = ServerProcess::start(&dir.path().join("data"), &[]);
    let definition = write_definition(dir.path(), "events_src", &events_arn, None);
    let output = tributary(&["commit", definition.to_str().expect("utf-8"), "--server", &server.url()], &[]);
    assert!(output.status.success(), "commit: {}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));

    // The peer: `tributary metadata ingest` on the same streams.
    let service = format!("svc_{prefix}");
    let ours = OpenMetadataStandIn::start(JWT).await;
    let file = workflow(
        dir.path(),
        &service,
        kinesis,
        &[&regex_escape(&prefix)],
        &[".*-skipped"],
        REST_SINK,
        &ours.host_port(),
    );
    let output = run(&["metadata", "ingest", "-c", file.to_str().expect("utf-8"), "--tributary-server", &server.url()]);
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));

    // The wheel, built with this build's binary, installed apart from the shared venv.
    let dist = dir.path().join("dist");
    let built = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tributary-openmetadata/build-wheel.sh"))
        .args([env!("CARGO_BIN_EXE_tributary"), dist.to_str().expect("utf-8")])
        .env("PYTHON", &python)
        .output()
        .expect("build-wheel.sh");
    assert!(built.status.success(), "build-wheel.sh: {}", String::from_utf8_lossy(&built.stderr));
    let wheel = stdout(&built).trim().to_owned();
    assert!(wheel.ends_with(".whl") && wheel.contains("-py3-none-linux_"), "a platform wheel: {wheel}");
    let site = dir.path().join("site");
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--target"])
        .args([site.to_str().expect("utf-8"), &wheel])
        .output()
        .expect("pip install");
    assert!(installed.status.success(), "pip install: {}", String::from_utf8_lossy(&installed.stderr));

    let theirs = OpenMetadataStandIn::start(JWT).await;
    let custom = dir.path().join("custom.yaml");
    std::fs::write(
        &custom,
        format!(
            r#"source:
  type: custommessaging
  serviceName: {service}
  serviceConnection:
    config:
      type: CustomMessaging
      sourcePythonClass: tributary_openmetadata.source.TributarySource
      connectionOptions:
        awsRegion: us-east-1
        endPointURL: {kinesis}
        tributaryServer: {server}
        topicFilterExcludes: '[".*-skipped"]'
  sourceConfig:
    config:
      type: MessagingMetadata
      generateSampleData: true
      topicFilterPattern:
        includes:
          - "{filter}"
sink:
  type: metadata-rest
  config: {{}}
workflowConfig:
  loggerLevel: INFO
  openMetadataServerConfig:
    hostPort: "{host_port}"
    authProvider: openmetadata
    securityConfig:
      jwtToken: "{JWT}"
"#,
            server = server.url(),
            filter = regex_escape(&prefix),
            host_port = theirs.host_port(),
        ),
    )
    .expect("custom workflow");
    // OpenMetadata's CLI from its venv, with the wheel's package on the path: (exit code, what it said).
    let ingest_with_openmetadata = |workflow: &Path| {
        let output = Command::new(Path::new(&python).with_file_name("metadata"))
            .args(["ingest", "-c", workflow.to_str().expect("utf-8")])
            .env("PYTHONPATH", &site)
            .output()
            .expect("metadata ingest");
        (output.status.code(), format!("{}\n{}", stdout(&output), String::from_utf8_lossy(&output.stderr)))
    };
    let (code, said) = ingest_with_openmetadata(&custom);
    assert_eq!(code, Some(0), "{said}");

    // An endpoint that does not answer: the run fails at once, saying which check failed.
    let unreachable = dir.path().join("unreachable.yaml");
    let text = std::fs::read_to_string(&custom).expect("custom workflow").replace(kinesis, "http://127.0.0.1:1");
    std::fs::write(&unreachable, text).expect("unreachable workflow");
    let (code, failed_said) = ingest_with_openmetadata(&unreachable);
    assert_ne!(code, Some(0), "{failed_said}");
    assert!(
        failed_said.contains("Kinesis test connection failed") && failed_said.contains("FAIL ListStreams"),
        "{failed_said}"
    );

    let (want, got) = (topics_of(&ours, &service), topics_of(&theirs, &service));
    assert_eq!(want.len(), 3, "the `skipped` stream is excluded: {want:?}");
    assert_eq!(got, want, "the same topics, partitions, retention and samples\n{said}");
    assert_eq!(got[&name("three")].0, 3);
    assert_eq!(got[&name("events")].2, [r#"{"id": 7, "ts": 1700000000}"#, "base64:/wAQ"]);
    let state = theirs.state.lock().expect("state");
    assert!(state.invalid.is_empty(), "bodies OpenMetadata would refuse:\n{}\n{said}", state.invalid.join("\n"));
    assert_eq!(state.entities["messagingServices"][&service].1["serviceType"], "CustomMessaging");
    let topic_fqn = format!("{service}.{}", name("events"));
    let topic = state.topic(&topic_fqn).expect("events topic");
    assert_eq!(
        topic.1["messageSchema"]["schemaFields"],
        json!([{"name": "id", "dataType": "LONG"}, {"name": "ts", "dataType": "TIMESTAMP"}])
    );
    let container_id = &state.entities["containers"]["tributary_datasets.events_src"].0;
    assert_eq!(state.edges, [("topic".to_owned(), topic.0.clone(), "container".to_owned(), container_id.clone())]);
    assert_eq!(
        state.edge_details[0]["columnsLineage"][0],
        json!({"fromColumns": [format!("{topic_fqn}.id")], "toColumn": "tributary_datasets.events_src.id"})
    );
    assert_eq!(state.edge_details[0]["pipeline"]["id"], state.entities["pipelines"]["tributary.events_src"].0.as_str());
    assert_eq!(state.statuses["tributary.events_src"][0]["executionStatus"], "Successful");
    drop(state);
    assert!(server.stop(), "a clean stop");
}
