//! The API's contract, through `oneshot` on the router (no sockets, no AWS).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use tributary_proto::prost::Message;
use tributary_server::{AppState, Supervisor, WorkerSettings, router};
use tributary_sink::table::TableCatalog;
use tributary_source::{AwsSettings, ClientFactory};
use tributary_store::Store;

async fn state(token: Option<&str>, body_limit: usize) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let aws = ClientFactory::load(AwsSettings::default(), Duration::from_secs(1)).await;
    let catalog = TableCatalog::local(Arc::clone(&store), &dir.path().join("warehouse")).expect("warehouse");
    let supervisor =
        Arc::new(Supervisor::new(Arc::clone(&store), dir.path().to_owned(), aws, WorkerSettings::default(), catalog));
    let state = AppState {
        store,
        supervisor,
        live: None,
        token: token.map(Arc::from),
        open_metrics: false,
        loopback_hosts_only: true,
        body_limit,
    };
    (state, dir)
}

fn source(name: &str) -> Value {
    json!({
        "name": name,
        "kinesis": {
            "stream_arn": format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}"),
            "trim_horizon": {},
            "format": {"json": {}}
        },
        "dataset": {
            "name": name,
            "fields": [
                {"name": "id", "type": {"primitive": "PRIMITIVE_TYPE_INT64"}},
                {"name": "ts", "type": {"primitive": "PRIMITIVE_TYPE_TIMESTAMP"}}
            ],
            "timestamp": "ts"
        }
    })
}

async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = router(state.clone()).oneshot(request).await.expect("the router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

fn post(uri: &str, body: impl Into<Body>, token: Option<&str>) -> Request<Body> {
    let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(body.into()).expect("request")
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

fn sources_stored(body: &Value) -> usize {
    body["sources"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn mutating_calls_need_the_token_when_one_is_configured() {
    let (state, _dir) = state(Some("s3cret-token"), 1 << 20).await;
    let body = json!({"sources": [source("orders")]}).to_string();
    let (status, answer) = call(&state, post("/api/v1/commit?dry_run=true", body.clone(), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer["error"].as_str().expect("a message").contains("Bearer"), "{answer}");
    let (status, answer) = call(&state, post("/api/v1/commit?dry_run=true", body.clone(), Some("wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!answer.to_string().contains("s3cret-token"), "the expected token is never echoed");
    let delete = Request::delete("/api/v1/sources/orders").body(Body::empty()).expect("request");
    assert_eq!(call(&state, delete).await.0, StatusCode::UNAUTHORIZED);

    let (status, answer) = call(&state, post("/api/v1/commit?dry_run=true", body, Some("s3cret-token"))).await;
    assert_eq!((status, answer["ok"].as_bool()), (StatusCode::OK, Some(true)), "{answer}");
    // Reads need it too (they show payloads and ARNs).
    assert_eq!(call(&state, get("/api/v1/sources")).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let (state, _dir) = state(None, 1024).await;
    let body = json!({"sources": [source("orders")], "message": "x".repeat(4096)}).to_string();
    let (status, answer) = call(&state, post("/api/v1/commit", body, None)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer["error"].as_str().expect("a JSON error").contains("larger"), "{answer}");
}

#[tokio::test]
async fn bad_json_is_a_400_that_names_the_problem() {
    let (state, _dir) = state(None, 1 << 20).await;
    let (status, answer) = call(&state, post("/api/v1/commit", "{\"sources\": [", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = answer["error"].as_str().expect("a message");
    assert!(message.contains("JSON CommitRequest") && message.contains("line 1"), "{message}");

    let (status, answer) = call(&state, post("/api/v1/commit", r#"{"sourcez": []}"#, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().expect("a message").contains("sourcez"), "{answer}");
}

#[tokio::test]
async fn unknown_sources_and_paths_are_404() {
    let (state, _dir) = state(None, 1 << 20).await;
    for path in
        ["/api/v1/sources/nope", "/api/v1/sources/nope/status", "/api/v1/sources/nope/errors", "/api/v2/whatever"]
    {
        let (status, answer) = call(&state, get(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(answer["error"].is_string(), "{path}: {answer}");
    }
    let delete = Request::delete("/api/v1/sources/nope").body(Body::empty()).expect("request");
    assert_eq!(call(&state, delete).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_dry_run_stores_nothing_and_one_invalid_source_stores_none() {
    let (state, _dir) = state(None, 1 << 20).await;
    let (status, answer) =
        call(&state, post("/api/v1/commit?dry_run=true", json!({"sources": [source("orders")]}).to_string(), None))
            .await;
    assert_eq!((status, answer["ok"].as_bool()), (StatusCode::OK, Some(true)), "{answer}");
    assert_eq!(sources_stored(&call(&state, get("/api/v1/sources")).await.1), 0, "a dry run stores nothing");

    let mut invalid = source("clicks");
    invalid["kinesis"]["stream_arn"] = json!("arn:aws:kinesis:us-east-1:12345:stream/clicks");
    let body = json!({"sources": [source("orders"), invalid]}).to_string();
    let (status, answer) = call(&state, post("/api/v1/commit", body, None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["ok"], json!(false));
    let errors = answer["errors"].as_array().expect("errors");
    assert!(errors.iter().all(|e| e["source"] == "clicks"), "{answer}");
    assert_eq!(errors[0]["field"], "kinesis.stream_arn");
    assert!(answer["error"].as_str().expect("a message").contains("nothing was stored"));
    assert_eq!(sources_stored(&call(&state, get("/api/v1/sources")).await.1), 0, "all or nothing");
}

#[tokio::test]
async fn protobuf_bodies_get_protobuf_answers() {
    let (state, _dir) = state(None, 1 << 20).await;
    let request: tributary_proto::v1::CommitRequest =
        serde_json::from_value(json!({"sources": [source("orders")]})).expect("a CommitRequest");
    let http = Request::post("/api/v1/commit?dry_run=true")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Body::from(request.encode_to_vec()))
        .expect("request");
    let response = router(state.clone()).oneshot(http).await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/x-protobuf");
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let answer = tributary_proto::v1::CommitResponse::decode(bytes).expect("a protobuf CommitResponse");
    assert!(answer.ok && answer.errors.is_empty());

    let garbage = Request::post("/api/v1/commit")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Body::from(vec![0xFF, 0xFF, 0xFF]))
        .expect("request");
    let (status, answer) = call(&state, garbage).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().expect("message").contains("protobuf"), "{answer}");
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let (state, _dir) = state(None, 1 << 20).await;
    let (status, body) = call(&state, get("/healthz")).await;
    assert_eq!((status, body), (StatusCode::OK, Value::String("ok\n".into())));
    let (status, body) = call(&state, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().expect("text");
    for family in [
        "tributary_rows_written_total counter",
        "tributary_shard_transient_errors_total counter",
        "tributary_shard_corrupt_aggregates_total counter",
    ] {
        assert!(text.contains(&format!("# TYPE {family}")), "{family} missing: {text}");
    }
}

#[tokio::test]
async fn stored_secrets_never_come_back_from_the_api() {
    let (state, _dir) = state(None, 1 << 20).await;
    let mut with_secrets = source("avro_orders");
    with_secrets["kinesis"]["format"] = json!({"avro": {"registry": {
        "kind": "REGISTRY_KIND_CONFLUENT",
        "url": "http://127.0.0.1:9",
        "basic": {"username": "reader", "password": {"inline": "hunter2-registry-password"}}
    }}});
    let (status, answer) =
        call(&state, post("/api/v1/commit", json!({"sources": [with_secrets]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for path in [
        "/api/v1/sources",
        "/api/v1/sources/avro_orders",
        "/api/v1/sources/avro_orders/status",
        "/api/v1/sources/avro_orders/errors",
        "/metrics",
    ] {
        let (status, body) = call(&state, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.to_string().contains("hunter2"), "{path} leaks the secret: {body}");
    }
    let (_, shown) = call(&state, get("/api/v1/sources/avro_orders")).await;
    let password = &shown["definition"]["kinesis"]["format"]["avro"]["registry"]["basic"]["password"];
    assert_eq!(password, &json!({"inline": "***"}), "{shown}");
    state.supervisor.stop_all().await;
}

#[tokio::test]
async fn a_dataset_has_one_source() {
    let (state, _dir) = state(None, 1 << 20).await;
    let first = source("orders");
    let (status, answer) =
        call(&state, post("/api/v1/commit", json!({"sources": [first.clone()]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Re-committing the same source is fine; another source on its dataset is not.
    let (status, _) =
        call(&state, post("/api/v1/commit?dry_run=true", json!({"sources": [first]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::OK);
    let mut rival = source("orders_copy");
    rival["dataset"]["name"] = json!("orders");
    let (status, answer) = call(&state, post("/api/v1/commit", json!({"sources": [rival]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(
        (answer["errors"][0]["field"].as_str(), answer["errors"][0]["code"].as_str()),
        (Some("dataset.name"), Some("DUPLICATE_NAME"))
    );
    // Two sources of one commit on one dataset: refused too.
    let mut a = source("a_src");
    let mut b = source("b_src");
    a["dataset"]["name"] = json!("shared");
    b["dataset"]["name"] = json!("shared");
    let (status, _) =
        call(&state, post("/api/v1/commit?dry_run=true", json!({"sources": [a, b]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    state.supervisor.stop_all().await;
}

#[tokio::test]
async fn a_definition_cannot_name_the_servers_own_credentials() {
    let (state, _dir) = state(None, 1 << 20).await;
    for (var, auth) in [("AWS_SECRET_ACCESS_KEY", "basic"), ("TRIBUTARY_TOKEN", "token")] {
        let mut stealing = source("thief");
        let secret = json!({"env": var});
        let auth_value = if auth == "basic" { json!({"username": "u", "password": secret}) } else { secret };
        stealing["kinesis"]["format"] = json!({"avro": {"registry": {
            "kind": "REGISTRY_KIND_CONFLUENT", "url": "http://attacker.invalid", auth: auth_value
        }}});
        let (status, answer) =
            call(&state, post("/api/v1/commit", json!({"sources": [stealing]}).to_string(), None)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["code"], "INVALID_SECRET", "{answer}");
        assert!(answer["errors"][0]["message"].as_str().is_some_and(|m| m.contains(var)), "{answer}");
    }
    let (_, listed) = call(&state, get("/api/v1/sources")).await;
    assert_eq!(sources_stored(&listed), 0, "nothing was stored");
    // A variable meant for definitions passes.
    let mut allowed = source("reader");
    allowed["kinesis"]["format"] = json!({"avro": {"registry": {
        "kind": "REGISTRY_KIND_CONFLUENT", "url": "http://127.0.0.1:9", "token": {"env": "TRIBUTARY_SECRET_REGISTRY_TOKEN"}
    }}});
    let (status, answer) =
        call(&state, post("/api/v1/commit?dry_run=true", json!({"sources": [allowed]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    state.supervisor.stop_all().await;
}

fn with_host(mut request: Request<Body>, host: &str) -> Request<Body> {
    request.headers_mut().insert(header::HOST, host.parse().expect("host"));
    request
}

#[tokio::test]
async fn every_route_but_healthz_needs_the_token_when_one_is_configured() {
    let (state, _dir) = state(Some("read-token"), 1 << 20).await;
    let authorized = |request: Request<Body>| {
        let mut request = request;
        request.headers_mut().insert(header::AUTHORIZATION, "Bearer read-token".parse().expect("header"));
        request
    };
    for path in [
        "/api/v1/sources",
        "/api/v1/sources/x",
        "/api/v1/sources/x/status",
        "/api/v1/sources/x/errors",
        "/api/v1/sources/x/errors/summary",
        "/api/v1/sources/x/errors/export",
        "/api/v1/sources/x/history",
        "/api/v1/sources/x/versions/1",
        "/metrics",
    ] {
        let (status, answer) = call(&state, get(path)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {answer}");
        let (status, _) = call(&state, authorized(get(path))).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{path} with the token");
    }
    let (status, _) = call(&state, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "liveness stays open");
    // Scrapers may be let in to /metrics alone.
    let open = AppState { open_metrics: true, ..state.clone() };
    let (status, _) = call(&open, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&open, get("/api/v1/sources")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    state.supervisor.stop_all().await;
}

#[tokio::test]
async fn browsers_cannot_commit_across_sites_or_through_rebound_names() {
    let (state, _dir) = state(None, 1 << 20).await;
    let body = json!({"sources": [source("orders")]}).to_string();
    // A cross-site form or fetch without preflight can only send "simple" types.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""] {
        let mut request = Request::post("/api/v1/commit?dry_run=true");
        if !content_type.is_empty() {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let (status, answer) = call(&state, request.body(Body::from(body.clone())).expect("request")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}: {answer}");
    }
    let request = Request::post("/api/v1/commit?dry_run=true")
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body.clone()))
        .expect("request");
    assert_eq!(call(&state, request).await.0, StatusCode::OK);
    // DNS rebinding: the page's own name arrives as Host.
    for host in ["evil.example", "evil.example:7878", "127.0.0.1.evil.example", "10.0.0.1:7878"] {
        let (status, _) = call(&state, with_host(get("/api/v1/sources"), host)).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{host}");
        let (status, _) = call(&state, with_host(post("/api/v1/commit?dry_run=true", body.clone(), None), host)).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
    for host in ["localhost", "localhost:7878", "127.0.0.1:7878", "127.0.0.2", "[::1]:7878", "LOCALHOST"] {
        let (status, _) = call(&state, with_host(get("/api/v1/sources"), host)).await;
        assert_eq!(status, StatusCode::OK, "{host}");
    }
    state.supervisor.stop_all().await;
}

#[tokio::test]
async fn a_server_beyond_loopback_needs_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let aws = ClientFactory::load(AwsSettings::default(), Duration::from_secs(1)).await;
    // A documentation address: nothing could listen there, and nothing tries.
    let mut config = tributary_server::ServerConfig::new(dir.path().to_owned());
    config.listen = "192.0.2.1:7878".parse().expect("address");
    let refused = tributary_server::Server::start(config.clone(), aws.clone()).await.err().expect("refused");
    assert!(refused.to_string().contains("without a token"), "{refused}");
    config.insecure_no_auth = true;
    let error = tributary_server::Server::start(config, aws).await.err().expect("192.0.2.1 is not ours to bind");
    assert!(error.to_string().contains("listen on 192.0.2.1"), "told it may, it tries: {error}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_state_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let aws = ClientFactory::load(AwsSettings::default(), Duration::from_secs(1)).await;
    let mut config = tributary_server::ServerConfig::new(data.clone());
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.token = Some("t0ken-never-printed".into());
    assert!(!format!("{config:?}").contains("t0ken-never-printed"), "ServerConfig's Debug hides the token");
    let server = tributary_server::Server::start(config, aws).await.expect("start");
    let mode = |path: &std::path::Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    for file in ["tributary.db", "tributary.db-wal", "tributary.db-shm"] {
        let path = data.join(file);
        assert!(path.exists(), "{file}");
        assert_eq!(mode(&path), 0o600, "{file}");
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_cannot_hold_the_server() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let aws = ClientFactory::load(AwsSettings::default(), Duration::from_secs(1)).await;
    let mut config = tributary_server::ServerConfig::new(dir.path().join("data"));
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.live_validation = false;
    config.header_read_timeout = Duration::from_secs(1);
    config.max_connections = 50;
    let server = tributary_server::Server::start(config, aws).await.expect("start");
    let address = server.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));

    // 200 clients connect and never send a request (one sends half a header line).
    let mut idle = Vec::new();
    for index in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
        if index == 0 {
            tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /api/v1/sources HTTP/1.1\r\nHost: local")
                .await
                .expect("write");
        }
        idle.push(stream);
    }
    // A commit is still served (the idle ones are dropped after the header timeout).
    let url = format!("http://{address}/api/v1/commit?dry_run=true");
    let body = json!({"sources": [source("orders")]}).to_string();
    let committed = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            ureq::post(&url).header("Content-Type", "application/json").send(body).map(|r| r.status().as_u16())
        }),
    )
    .await
    .expect("the commit is answered within 30 s")
    .expect("join");
    assert_eq!(committed.expect("answered"), 200);
    // The server closed the idle connections itself.
    for stream in idle.iter_mut().take(3) {
        let mut buffer = [0u8; 512];
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await.expect("closed within 10 s");
        // Closed outright, or after a 408 for the half-sent head.
        if let Ok(n) = read
            && n > 0
        {
            assert!(
                String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 408"),
                "{}",
                String::from_utf8_lossy(&buffer[..n])
            );
        }
    }
    let _ = stop.send(());
    let uncommitted = tokio::time::timeout(Duration::from_secs(20), serving).await.expect("stops").expect("join");
    assert_eq!(uncommitted, 0, "every worker committed what it held");
}

#[tokio::test]
async fn an_errors_answer_is_bounded_in_rows_and_bytes() {
    let (state, _dir) = state(None, 1 << 20).await;
    let (status, answer) =
        call(&state, post("/api/v1/commit", json!({"sources": [source("orders")]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    state.supervisor.stop_all().await;
    let payload = vec![b'x'; 64 * 1024];
    let rows: Vec<tributary_store::NewErrorRow> = (0..200)
        .map(|index| tributary_store::NewErrorRow {
            shard_id: "shard-0".into(),
            sequence_number: index.to_string(),
            sub_sequence: None,
            arrival_time: chrono::Utc::now(),
            reason: "TYPE_MISMATCH".into(),
            field: "id".into(),
            message: "expected int64".into(),
            payload: payload.clone(),
            payload_length: payload.len() as u64,
        })
        .collect();
    let batch = tributary_store::BatchCommit {
        source: "orders",
        version: 1,
        scope: "orders@bounded-test",
        files: &[],
        advances: &[],
        rejected: &rows,
        counts: &[],
        retention: tributary_store::ErrorRetention::default(),
        max_event_micros: None,
    };
    state.store.commit_batch(&batch, chrono::Utc::now()).expect("commit rejected rows");
    let (status, answer) = call(&state, get("/api/v1/sources/orders/errors?limit=100000")).await;
    assert_eq!(status, StatusCode::OK);
    let returned = answer["errors"].as_array().expect("rows");
    let bytes: usize = returned.iter().map(|row| row["payload"].as_str().map_or(0, str::len)).sum();
    assert!(!returned.is_empty() && returned.len() < 200, "{} rows", returned.len());
    assert!(bytes <= 4 << 20, "{bytes} payload bytes in one answer");
    assert!(answer["next_before"].is_i64(), "the rest is a page away: {}", answer["next_before"]);
}

#[tokio::test]
async fn a_definition_silent_on_storage_gets_a_table_unless_its_source_already_writes_files() {
    let (state, _dir) = state(None, 1 << 20).await;
    let stored_format = |name: &str| -> Value {
        let summary = state.store.source(name).expect("store").expect("stored");
        let definition: Value = serde_json::from_str(&summary.current.definition).expect("json");
        definition["dataset"]["format"].clone()
    };
    // A new source: an Iceberg table, and the version says so.
    let (status, answer) =
        call(&state, post("/api/v1/commit", json!({"sources": [source("fresh")]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(stored_format("fresh"), json!("DATASET_FORMAT_ICEBERG"));
    // A version stored before tables existed (no format): it meant Parquet files, and a
    // new version that says nothing keeps them.
    let old = tributary_store::NewVersion {
        source: "legacy".into(),
        definition: source("legacy").to_string(),
        stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/legacy".into(),
        start_at: None,
    };
    state.store.commit_versions(&[old], "before tables", chrono::Utc::now()).expect("store");
    let (status, answer) =
        call(&state, post("/api/v1/commit", json!({"sources": [source("legacy")]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(stored_format("legacy"), json!("DATASET_FORMAT_PARQUET"));
    // Saying so moves it.
    let mut moved = source("legacy");
    moved["dataset"]["format"] = json!("DATASET_FORMAT_ICEBERG");
    let (status, answer) = call(&state, post("/api/v1/commit", json!({"sources": [moved]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(stored_format("legacy"), json!("DATASET_FORMAT_ICEBERG"));
    state.supervisor.stop_all().await;
}

/// The review's crash: a dry run of a `where` with 100,000 `OR` terms (1.6 MB,
/// under the body limit) overflowed the stack and took the server down. Now it
/// is a coded refusal, and so is a type nested past the bound.
#[tokio::test]
async fn an_expression_or_type_past_the_bounds_is_a_coded_refusal_not_a_crash() {
    let (state, _dir) = state(None, 4 << 20).await;
    let mut huge = source("orders");
    let terms: Vec<String> = (0..100_000).map(|i| format!("id = {i}")).collect();
    huge["where"] = json!(terms.join(" OR "));
    let (status, answer) =
        call(&state, post("/api/v1/commit?dry_run=true", json!({"sources": [huge]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(
        (answer["errors"][0]["code"].as_str(), answer["errors"][0]["field"].as_str()),
        (Some("TOO_COMPLEX"), Some("where"))
    );

    let mut deep = source("clicks");
    let mut nested = json!({"primitive": "PRIMITIVE_TYPE_INT64"});
    for _ in 0..40 {
        nested = json!({"list": nested});
    }
    deep["dataset"]["fields"][0]["type"] = nested;
    let (status, answer) =
        call(&state, post("/api/v1/commit?dry_run=true", json!({"sources": [deep]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["errors"][0]["code"], "TOO_COMPLEX", "{answer}");

    // The server is still there, and a sane commit goes through.
    let (status, answer) =
        call(&state, post("/api/v1/commit?dry_run=true", json!({"sources": [source("orders")]}).to_string(), None))
            .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// `GET /api/v1/tables/{name}` turned `name` into a path under the warehouse:
/// `..%2F` left it. Only table names are looked up now.
#[tokio::test]
async fn a_table_name_from_the_url_never_leaves_the_warehouse() {
    let (state, dir) = state(None, 1 << 20).await;
    // A table-shaped directory beside the warehouse, with a version hint a lookup would follow.
    let outside = dir.path().join("outside").join("metadata");
    std::fs::create_dir_all(&outside).expect("dir");
    std::fs::write(outside.join("version-hint.text"), "00000-x").expect("hint");
    for name in ["..%2Foutside", "..", "Orders", "a%2Fb", "orders%00"] {
        let (status, answer) = call(&state, get(&format!("/api/v1/tables/{name}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {answer}");
    }
    let (status, _) = call(&state, get("/api/v1/tables/orders__rejected")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a valid name without a table");
}

#[tokio::test]
async fn the_console_is_served_without_the_token_under_a_strict_policy() {
    let (state, _dir) = state(Some("read-token"), 1 << 20).await;
    for (path, kind) in [("/", "text/html"), ("/console/app.js", "text/javascript"), ("/console/app.css", "text/css")] {
        let response = router(state.clone()).oneshot(get(path)).await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        let header =
            |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(header(header::CONTENT_TYPE).starts_with(kind), "{path}");
        let policy = header(header::CONTENT_SECURITY_POLICY);
        assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
        assert_eq!(header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(header(header::X_FRAME_OPTIONS), "DENY");
    }
    // The page holds no inline script or style, and loads nothing from elsewhere.
    let (_, page) = call(&state, get("/")).await;
    let page = page.as_str().expect("HTML").to_owned();
    assert!(!page.contains("<script>") && !page.contains("style=") && !page.contains("onclick"), "{page}");
    assert!(!page.contains("http://") && !page.contains("https://"), "{page}");
    // The rebinding check still applies to it.
    let response = router(state.clone()).oneshot(with_host(get("/"), "evil.example")).await.expect("answer");
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    state.supervisor.stop_all().await;
}

#[tokio::test]
async fn the_console_reads_counts_by_reason_an_export_a_history_and_any_version() {
    let (state, _dir) = state(None, 1 << 20).await;
    for message in ["first", "second"] {
        let mut body = json!({"sources": [source("orders")], "message": message});
        if message == "second" {
            body["sources"][0]["kinesis"]["stream_arn"] =
                json!("arn:aws:kinesis:us-east-1:000000000000:stream/orders-2");
        }
        let (status, answer) = call(&state, post("/api/v1/commit", body.to_string(), None)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    state.supervisor.stop_all().await;
    let row = |sequence: usize, reason: &str, shard: &str| tributary_store::NewErrorRow {
        shard_id: shard.into(),
        sequence_number: sequence.to_string(),
        sub_sequence: None,
        arrival_time: chrono::Utc::now(),
        reason: reason.into(),
        field: "id".into(),
        message: "<b>not</b> an int64".into(),
        payload: b"<img src=x onerror=alert(1)>".to_vec(),
        payload_length: 28,
    };
    let rows: Vec<_> = (0..30)
        .map(|i| row(i, if i % 3 == 0 { "MALFORMED" } else { "TYPE_MISMATCH" }, if i < 10 { "a" } else { "b" }))
        .collect();
    let batch = tributary_store::BatchCommit {
        source: "orders",
        version: 2,
        scope: "orders@console-test",
        files: &[],
        advances: &[],
        rejected: &rows,
        counts: &[],
        retention: tributary_store::ErrorRetention::default(),
        max_event_micros: None,
    };
    state.store.commit_batch(&batch, chrono::Utc::now()).expect("commit rejected rows");

    let (status, summary) = call(&state, get("/api/v1/sources/orders/errors/summary")).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(
        summary,
        json!({"total": 30, "by_reason": [{"reason": "TYPE_MISMATCH", "rows": 20}, {"reason": "MALFORMED", "rows": 10}]})
    );
    let (_, shard_a) = call(&state, get("/api/v1/sources/orders/errors/summary?shard=a&reason=MALFORMED")).await;
    assert_eq!(shard_a["total"], 10, "the reason is not a filter of the counts: {shard_a}");
    let (status, bad_time) = call(&state, get("/api/v1/sources/orders/errors?since=yesterday")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad_time}");

    let response = router(state.clone())
        .oneshot(get("/api/v1/sources/orders/errors/export?reason=MALFORMED&shard=b"))
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let lines: Vec<Value> =
        String::from_utf8_lossy(&bytes).lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect();
    assert_eq!(lines.len(), 6, "MALFORMED rows of shard b: 12, 15, 18, 21, 24, 27");
    assert!(lines.iter().all(|line| line["reason"] == "MALFORMED" && line["shard_id"] == "b"));
    assert_eq!(lines[0]["payload"], "<img src=x onerror=alert(1)>");

    let (status, history) = call(&state, get("/api/v1/sources/orders/history?minutes=5")).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["window_ms"], 300_000);
    assert!(history["times"].is_array() && history["source_series"]["lag_millis"].is_array(), "{history}");
    assert_eq!(call(&state, get("/api/v1/sources/nope/history")).await.0, StatusCode::NOT_FOUND);

    let (status, first) = call(&state, get("/api/v1/sources/orders/versions/1")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!((first["version"].as_u64(), first["message"].as_str()), (Some(1), Some("first")));
    assert!(
        first["definition"]["kinesis"]["stream_arn"].as_str().is_some_and(|arn| arn.ends_with("/orders")),
        "{first}"
    );
    let (_, second) = call(&state, get("/api/v1/sources/orders/versions/2")).await;
    assert!(second["definition"]["kinesis"]["stream_arn"].as_str().is_some_and(|arn| arn.ends_with("/orders-2")));
    assert_eq!(call(&state, get("/api/v1/sources/orders/versions/3")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_avro_sources_rejected_payloads_show_decoded_with_the_writer_schema() {
    let (state, _dir) = state(None, 1 << 20).await;
    let mut avro = source("clicks");
    let schema = r#"{"type": "record", "name": "click", "fields": [{"name": "id", "type": "long"}, {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}}]}"#;
    avro["kinesis"]["format"] = json!({"avro": {"schema": schema}});
    let (status, answer) = call(&state, post("/api/v1/commit", json!({"sources": [avro]}).to_string(), None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    state.supervisor.stop_all().await;
    // id 7 and ts 1 as zigzag varints: a datum of the writer schema; then bytes that are not one.
    let rows: Vec<_> = [vec![0x0e, 0x02], vec![0xff]]
        .into_iter()
        .enumerate()
        .map(|(index, payload)| tributary_store::NewErrorRow {
            shard_id: "shard-0".into(),
            sequence_number: index.to_string(),
            sub_sequence: None,
            arrival_time: chrono::Utc::now(),
            reason: "SCHEMA_MISMATCH".into(),
            field: String::new(),
            message: "as the test says".into(),
            payload_length: payload.len() as u64,
            payload,
        })
        .collect();
    let batch = tributary_store::BatchCommit {
        source: "clicks",
        version: 1,
        scope: "clicks@avro-test",
        files: &[],
        advances: &[],
        rejected: &rows,
        counts: &[],
        retention: tributary_store::ErrorRetention::default(),
        max_event_micros: None,
    };
    state.store.commit_batch(&batch, chrono::Utc::now()).expect("commit rejected rows");
    let (status, answer) = call(&state, get("/api/v1/sources/clicks/errors")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let errors = answer["errors"].as_array().expect("rows");
    let decoded = errors.iter().find(|row| row["sequence_number"] == "0").expect("row 0");
    assert_eq!(decoded["avro"], json!({"id": 7, "ts": 1}), "{decoded:#}");
    let garbage = errors.iter().find(|row| row["sequence_number"] == "1").expect("row 1");
    assert!(garbage["avro"].is_null() && garbage["avro_error"].is_string(), "{garbage:#}");
}
