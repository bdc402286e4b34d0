//! `tributary validate --live` against the emulators: kinesis-local for streams,
//! moto for STS and (in its `auth` instance) IAM enforcement.
#![allow(missing_docs)]

mod support;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_credential_types::provider::ProvideCredentials;
use base64::Engine as _;
use support::server::{ServerProcess, assert_retried_in_minutes, dataset_rows};
use support::{Emulators, create_stream, kinesis_client, stdout, tributary, unique, write_definition};
use tributary_source::{AssumeRole, AwsSettings, ClientFactory};

#[tokio::test]
async fn a_valid_source_passes_with_the_role_assumed_through_moto_sts() {
    let Some(emulators) = Emulators::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let stream_arn = create_stream(&emulators.kinesis, &unique("valid"), 2, true).await;
    let account = stream_arn.split(':').nth(4).expect("account");
    let role = format!("arn:aws:iam::{account}:role/tributary-reader");
    let file = write_definition(dir.path(), "orders", &stream_arn, Some(&role));
    let file = file.to_str().expect("utf-8 path");

    let output = tributary(&["validate", "--live", file], &[("AWS_ENDPOINT_URL_STS", &emulators.moto)]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout(&output).trim(), "valid (live): orders");

    // The role really goes through STS: with STS unreachable the same source fails on its role.
    let closed = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
    let output = tributary(&["validate", "--live", file], &[("AWS_ENDPOINT_URL_STS", &format!("http://{closed}"))]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).starts_with("ENDPOINT_UNREACHABLE orders.kinesis.role_arn: STS did not answer"),
        "{}",
        stdout(&output)
    );
}

#[tokio::test]
async fn a_reader_role_with_a_source_identity_is_assumed_with_it() {
    let Some(emulators) = Emulators::from_env() else { return };
    let recorder = |action: &str| format!("{}/moto-api/recorder/{action}", emulators.moto);
    ureq::post(&recorder("start-recording")).send_empty().expect("start moto's recorder");
    let identity = unique("alice");
    let role = AssumeRole {
        role_arn: "arn:aws:iam::123456789012:role/tributary-reader".parse().expect("role ARN"),
        session_name: "tributary-worker".to_owned(),
        external_id: Some("ext-42".to_owned()),
        source_identity: Some(identity.clone()),
    };
    let settings = AwsSettings { sts_endpoint_url: Some(emulators.moto.clone()), ..AwsSettings::default() };
    let factory = ClientFactory::load(settings, Duration::from_secs(10)).await;
    let credentials = factory.role_credentials(&role, "us-east-1").await.provide_credentials().await.expect("assumed");
    assert!(credentials.session_token().is_some(), "an assumed role's credentials carry a session token");

    // What moto received: the AssumeRole call, with the source identity and the rest of the role.
    let recording = ureq::get(&recorder("download-recording"))
        .call()
        .expect("download the recording")
        .body_mut()
        .read_to_string()
        .expect("recording text");
    let sent: Vec<String> = recording
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|entry| {
            let body = entry["body"].as_str()?.to_owned();
            match entry["body_encoded"].as_bool() {
                Some(true) => base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok()),
                _ => Some(body),
            }
        })
        .filter(|body| body.contains("Action=AssumeRole") && body.contains(&identity))
        .collect();
    assert_eq!(sent.len(), 1, "one AssumeRole with the source identity reached STS: {sent:?}");
    for field in [
        format!("SourceIdentity={identity}"),
        "ExternalId=ext-42".to_owned(),
        "RoleSessionName=tributary-worker".to_owned(),
        "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Ftributary-reader".to_owned(),
    ] {
        assert!(sent[0].split('&').any(|pair| pair == field), "{field} missing from {}", sent[0]);
    }
    ureq::post(&recorder("stop-recording")).send_empty().expect("stop moto's recorder");
}

#[tokio::test]
async fn a_missing_stream_is_stream_not_found() {
    let Some(emulators) = Emulators::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // A real stream's ARN tells us the emulator's account; the missing one shares it.
    let existing = create_stream(&emulators.kinesis, &unique("exists"), 1, true).await;
    let missing = existing.replace(":stream/", ":stream/never-created-");
    let file = write_definition(dir.path(), "ghost", &missing, None);

    let output = tributary(&["validate", "--live", file.to_str().expect("utf-8")], &[]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(out.starts_with("STREAM_NOT_FOUND ghost.kinesis.stream_arn: "), "{out}");
}

#[tokio::test]
async fn a_creating_stream_is_stream_not_active() {
    let Some(emulators) = Emulators::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let stream_arn = create_stream(&emulators.kinesis_slow, &unique("creating"), 1, false).await;
    let file = write_definition(dir.path(), "early", &stream_arn, None);

    let output = tributary(
        &["validate", "--live", file.to_str().expect("utf-8")],
        &[("AWS_ENDPOINT_URL_KINESIS", &emulators.kinesis_slow)],
    );
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(out.starts_with("STREAM_NOT_ACTIVE early.kinesis.stream_arn: "), "{out}");
    assert!(out.contains("CREATING"), "{out}");
}

/// Runs the IAM fixture script with moto's Python.
fn moto_iam(emulators: &Emulators, args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/moto_iam.py");
    let output = Command::new(&emulators.moto_python)
        .arg(script)
        .arg(&emulators.moto_auth)
        .args(args)
        .output()
        .expect("run moto_iam.py");
    assert!(output.status.success(), "moto_iam.py failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Turns moto-auth's IAM enforcement off again however the test ends.
struct EnforcementGuard<'a>(&'a Emulators);

impl Drop for EnforcementGuard<'_> {
    fn drop(&mut self) {
        moto_iam(self.0, &["-", "inf"]);
    }
}

#[tokio::test]
// One test for everything under moto-auth's enforcement: the switch is global to
// that emulator, and nextest runs tests in parallel processes.
async fn iam_enforcement_names_the_refused_action_and_signed_reads_pass() {
    let Some(emulators) = Emulators::from_env() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let suffix = unique("iam");
    let fixture: serde_json::Value = serde_json::from_str(&moto_iam(&emulators, &[&suffix])).expect("fixture JSON");
    let text = |pointer: &str| fixture.pointer(pointer).and_then(|v| v.as_str()).expect(pointer).to_owned();
    let (key_id, secret) = (text("/reader/access_key_id"), text("/reader/secret_access_key"));
    let stream_arn = text("/stream_arn");
    let env = [
        ("AWS_ENDPOINT_URL_STS", emulators.moto_auth.as_str()),
        ("AWS_ENDPOINT_URL_KINESIS", emulators.moto_auth.as_str()),
        ("AWS_ACCESS_KEY_ID", key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let full = write_definition(dir.path(), "full", &stream_arn, Some(&text("/full_role")));
    let partial = write_definition(dir.path(), "partial", &stream_arn, Some(&text("/partial_role")));
    let foreign = write_definition(dir.path(), "foreign", &stream_arn, Some(&text("/foreign_role")));
    let efo_definition = |name: &str, role: &str| {
        let file = write_definition(dir.path(), name, &stream_arn, Some(&text(role)));
        let text = std::fs::read_to_string(&file)
            .expect("read")
            .replace("format: json\n", "format: json\n      consumer: efo\n");
        std::fs::write(&file, text).expect("write");
        file
    };
    let pushed = efo_definition("pushed", "/efo_role");
    let unseen = efo_definition("unseen", "/full_role");
    let produced = put_numbered(&emulators.moto_auth, &stream_arn, 40).await;

    moto_iam(&emulators, &["-", "0"]);
    let _guard = EnforcementGuard(&emulators);

    // The reader itself may not touch Kinesis: passing proves the role's credentials were used.
    let output = tributary(&["validate", "--live", full.to_str().expect("utf-8")], &env);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    let output = tributary(&["validate", "--live", partial.to_str().expect("utf-8")], &env);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(out.starts_with("ACCESS_DENIED partial.kinesis.stream_arn: `kinesis:GetRecords` was refused"), "{out}");
    assert!(out.contains("HTTP 403"), "{out}");

    // Enhanced fan-out is checked for what it uses: no GetRecords, but DescribeStreamConsumer
    // (a consumer not registered yet passes).
    let output = tributary(&["validate", "--live", pushed.to_str().expect("utf-8")], &env);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let output = tributary(&["validate", "--live", unseen.to_str().expect("utf-8")], &env);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(
        out.starts_with("ACCESS_DENIED unseen.kinesis.consumer: `kinesis:DescribeStreamConsumer` was refused"),
        "{out}"
    );

    let output = tributary(&["validate", "--live", foreign.to_str().expect("utf-8")], &env);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(out.starts_with("ROLE_NOT_ASSUMABLE foreign.kinesis.role_arn: "), "{out}");
    assert!(out.contains("AccessDenied"), "{out}");
    for printed in [stdout(&output), String::from_utf8_lossy(&output.stderr).into_owned()] {
        assert!(!printed.contains(&secret), "the secret key leaked: {printed}");
    }

    // A Glue Schema Registry source is checked for `glue:GetSchemaVersion`, with the source's role.
    let glue_definition = |name: &str, role: &str| {
        let file = write_definition(dir.path(), name, &stream_arn, Some(&text(role)));
        let glue = format!(
            "format: {{avro: {{registry: {{glue: {{registry_name: {}, schema_name: orders}}}}}}}}\n",
            text("/glue_registry")
        );
        let definition = std::fs::read_to_string(&file).expect("read").replace("format: json\n", &glue);
        std::fs::write(&file, definition).expect("write");
        file
    };
    let glue_env = [env.as_slice(), &[("AWS_ENDPOINT_URL_GLUE", emulators.moto_auth.as_str())]].concat();
    let denied = glue_definition("glue_denied", "/glue_denied_role");
    let output = tributary(&["validate", "--live", denied.to_str().expect("utf-8")], &glue_env);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(
        out.starts_with(
            "ACCESS_DENIED glue_denied.kinesis.format.avro.registry.glue: `glue:GetSchemaVersion` was refused"
        ),
        "{out}"
    );
    let allowed = glue_definition("glue_full", "/glue_full_role");
    let output = tributary(&["validate", "--live", allowed.to_str().expect("utf-8")], &glue_env);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    // The metadata workflow through the same role, which lacks kinesis:ListStreams: the run
    // stops at once with IAM's answer (no retries), and test-connection says which step failed.
    let workflow = dir.path().join("workflow.yaml");
    std::fs::write(
        &workflow,
        format!(
            "source:\n  type: kinesis\n  serviceName: iam_svc\n  serviceConnection:\n    config:\n      type: Kinesis\n      awsConfig:\n        awsAccessKeyId: {key_id}\n        awsSecretAccessKey: \"${{WORKFLOW_SECRET}}\"\n        awsRegion: us-east-1\n        endPointURL: {}\n        assumeRoleArn: {}\n  sourceConfig:\n    config:\n      type: MessagingMetadata\nsink:\n  type: metadata-rest\nworkflowConfig:\n  openMetadataServerConfig:\n    hostPort: http://127.0.0.1:9/api\n",
            emulators.moto_auth,
            text("/full_role")
        ),
    )
    .expect("write workflow");
    let path = workflow.to_str().expect("utf-8");
    let output = tributary(&["metadata", "ingest", "-c", path], &[("WORKFLOW_SECRET", secret.as_str())]);
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("listing streams failed: ListStreams") && err.contains("403"), "{err}");
    assert!(err.contains("needs kinesis:ListStreams") && !err.contains("gave up after"), "fails fast: {err}");
    let output = tributary(&["metadata", "test-connection", "-c", path], &[("WORKFLOW_SECRET", secret.as_str())]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.starts_with("PASS AssumeRole: assumed ") && out.contains("\nFAIL ListStreams: "), "{out}");
    assert!(out.contains("SKIP GetRecords"), "{out}");
    assert!(!out.contains(&secret) && !err.contains(&secret), "the secret key leaked");

    // The worker reads through the assumed role; moto checks every request's SigV4
    // signature, including the GetRecords calls the reader signs itself.
    // Plain Parquet files: the rows are read back below with the parquet crate.
    let source = std::fs::read_to_string(&full)
        .expect("read")
        .replace("init_position: latest", "init_position: trim_horizon")
        .replace("    dataset:\n", "    dataset:\n      format: parquet\n");
    std::fs::write(&full, source).expect("write");
    let server = ServerProcess::start_with_env(&dir.path().join("data"), &[], &env);
    let output = tributary(&["commit", full.to_str().expect("utf-8"), "--server", &server.url(), "-m", "signed"], &[]);
    assert!(output.status.success(), "commit: {}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
    let status = server.wait_for_records("full", produced, Duration::from_secs(60));
    assert_eq!(status["rows"], produced, "{status:#}");
    let mut ids: Vec<i64> = dataset_rows(&server.data_dir, "full", None).iter().map(|row| row.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..produced as i64).collect::<Vec<_>>());

    // A running source whose role may not GetRecords (committed without the live check that
    // would refuse it, as when a policy changes under a running source): failed, with IAM's
    // answer as its reason (moto sends a bare 403), and retried minutes later, not at the
    // pace of a network blip.
    let output =
        tributary(&["commit", partial.to_str().expect("utf-8"), "--server", &server.url(), "-m", "denied"], &[]);
    assert_eq!(output.status.code(), Some(1), "the live check refuses it: {}", stdout(&output));
    assert!(server.stop(), "a clean stop");
    let server = ServerProcess::start_with_env(&dir.path().join("data"), &["--no-live-validation"], &env);
    let output =
        tributary(&["commit", partial.to_str().expect("utf-8"), "--server", &server.url(), "-m", "denied"], &[]);
    assert!(output.status.success(), "commit: {}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
    let status = server.wait_for_state("partial", "failed", Duration::from_secs(60));
    let reason = status["reason"].as_str().expect("a reason code");
    assert!(reason == "AccessDeniedException" || reason == "HTTP 403", "{status:#}");
    assert_retried_in_minutes(&status);
    assert!(server.stop(), "a clean stop");

    // `serve --catalog glue` on least privilege: a principal that may use an existing
    // Glue database but not create one starts; with a missing database it exits 1
    // naming the refused call.
    let (tables_key, tables_secret) = (text("/tables_user/access_key_id"), text("/tables_user/secret_access_key"));
    let glue_env = [
        ("AWS_ENDPOINT_URL_GLUE", emulators.moto_auth.as_str()),
        ("AWS_ENDPOINT_URL_S3", emulators.moto_auth.as_str()),
        ("AWS_ACCESS_KEY_ID", tables_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", tables_secret.as_str()),
    ];
    let database = text("/glue_database");
    let glue_flags = ["--warehouse", "s3://least-privilege/tables", "--catalog", "glue", "--glue-database"];
    let mut flags = glue_flags.to_vec();
    flags.push(&database);
    let server = ServerProcess::start_with_env(&dir.path().join("glue-data"), &flags, &glue_env);
    let tables = server.get("/api/v1/tables");
    assert_eq!(tables["catalog"], serde_json::Value::from(format!("glue:{database}")), "{tables:#}");
    assert!(server.stop(), "a clean stop");
    let glue_data = dir.path().join("glue-data-missing").display().to_string();
    let mut args = vec!["serve", "--data-dir", &glue_data, "--listen", "127.0.0.1:0"];
    args.extend(glue_flags);
    args.push("never_created");
    let output = tributary(&args, &glue_env);
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("Glue CreateDatabase never_created") && err.contains("AccessDenied"), "{err}");
    assert!(!err.contains(&tables_secret), "the secret key leaked: {err}");
}

/// Puts records with ids 0..count (enforcement off) and returns how many.
async fn put_numbered(endpoint: &str, stream_arn: &str, count: u64) -> u64 {
    let client = kinesis_client(endpoint);
    for id in 0..count {
        let payload = format!(r#"{{"id": {id}, "ts": "2026-11-22T06:00:00Z"}}"#);
        client
            .put_record()
            .stream_arn(stream_arn)
            .partition_key(format!("k{id}"))
            .data(aws_sdk_kinesis::primitives::Blob::new(payload))
            .send()
            .await
            .expect("PutRecord");
    }
    count
}

#[tokio::test]
async fn an_endpoint_nobody_listens_on_is_unreachable() {
    // No emulator needed: the point is that nothing answers.
    let dir = tempfile::tempdir().expect("tempdir");
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let file = write_definition(dir.path(), "nowhere", "arn:aws:kinesis:us-east-1:000000000000:stream/s", None);

    let started = Instant::now();
    let output = tributary(
        &["validate", "--live", "--timeout", "5", file.to_str().expect("utf-8")],
        &[
            ("AWS_ENDPOINT_URL_KINESIS", &endpoint),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(out.starts_with("ENDPOINT_UNREACHABLE nowhere.kinesis.stream_arn: Kinesis did not answer"), "{out}");
    // Behaviour, not speed: the check must end by its own timeout rather than hang.
    assert!(started.elapsed() < Duration::from_secs(5 + 10), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out() {
    // Accepts connections and never replies: only the timeout can end the check.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_definition(dir.path(), "silent", "arn:aws:kinesis:us-east-1:000000000000:stream/s", None);

    let started = Instant::now();
    let output = tributary(
        &["validate", "--live", "--timeout", "2", file.to_str().expect("utf-8")],
        &[
            ("AWS_ENDPOINT_URL_KINESIS", &endpoint),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    drop(listener);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(out.starts_with("ENDPOINT_UNREACHABLE silent.kinesis.stream_arn: "), "{out}");
    assert!(started.elapsed() >= Duration::from_secs(2), "ended before its timeout: {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(2 + 10), "took {:?}", started.elapsed());
}
