//! An OpenMetadata stand-in for the metadata workflow's tests: it implements
//! the endpoints the sink uses, keeps what it was sent, and validates every
//! request body against OpenMetadata's own JSON Schemas
//! (`../shared/openmetadata-spec/`), the way the real server would refuse it.
//! Also a Kinesis proxy that injects faults for chosen calls.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Where the spec is: `../shared/openmetadata-spec/json/schema`.
pub fn spec_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/openmetadata-spec/json/schema");
    assert!(root.is_dir(), "OpenMetadata's schemas are missing at {}", root.display());
    root.canonicalize().expect("canonical spec path")
}

/// Resolves `$ref`s by file path: each file's `$id` is replaced by its own
/// `file://` URI (several upstream ids are inconsistent), and a file the spec
/// leaves out (other services' connections) is a schema that matches nothing.
struct SpecFiles;

impl jsonschema::Retrieve for SpecFiles {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let path = PathBuf::from(uri.path().as_str());
        load_schema(&path)
    }
}

fn load_schema(path: &Path) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(matching_nothing(path));
    };
    let mut schema: Value = serde_json::from_str(&text)?;
    if let Some(object) = schema.as_object_mut() {
        object.insert("$id".into(), Value::String(format!("file://{}", path.display())));
    }
    Ok(schema)
}

/// A stand-in for a file the spec leaves out: it and every place other files
/// point into it (`#/definitions/x`) match nothing.
fn matching_nothing(missing: &Path) -> Value {
    let mut schema = json!({"not": {}});
    let mut pending = vec![spec_root()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            for piece in text.split("\"$ref\"").skip(1) {
                let Some(reference) = piece.split('"').nth(1) else { continue };
                let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
                if file.is_empty() || !pointer.starts_with('/') {
                    continue;
                }
                let target = normalize(&dir.join(file));
                if target != missing {
                    continue;
                }
                let mut node = &mut schema;
                let keys: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
                for (index, key) in keys.iter().enumerate() {
                    let last = index + 1 == keys.len();
                    let object = node.as_object_mut().expect("object");
                    node =
                        object.entry((*key).to_owned()).or_insert_with(|| if last { json!(false) } else { json!({}) });
                }
            }
        }
    }
    schema
}

/// `a/b/../c` as `a/c`, without touching the file system (the file may not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A validator for `file#pointer` under the spec root.
pub fn validator(relative: &str) -> jsonschema::Validator {
    let (file, pointer) = relative.split_once('#').unwrap_or((relative, ""));
    let path = spec_root().join(file);
    let root = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$ref": format!("file://{}#{pointer}", path.display()),
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .with_retriever(SpecFiles)
        .build(&root)
        .unwrap_or_else(|error| panic!("schema {relative}: {error}"))
}

/// Every error of `instance` against `validator`, as text.
pub fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator.iter_errors(instance).map(|error| format!("{} at {}", error, error.instance_path())).collect()
}

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: Value,
}

/// What the stand-in holds.
#[derive(Default)]
pub struct OmState {
    pub requests: Vec<Received>,
    /// Bodies that failed their schema, with why.
    pub invalid: Vec<String>,
    /// Entities by kind, then fully qualified name: (id, body, deleted).
    pub entities: BTreeMap<String, BTreeMap<String, (String, Value, bool)>>,
    /// Sample data by topic id.
    pub samples: BTreeMap<String, Vec<String>>,
    pub edges: Vec<(String, String, String, String)>,
    /// Each edge's `lineageDetails`, in the order of `edges`.
    pub edge_details: Vec<Value>,
    /// Pipeline statuses by pipeline FQN, in the order received.
    pub statuses: BTreeMap<String, Vec<Value>>,
    /// Statuses to answer the next matching requests with, in order: (method, path, status).
    pub faults: VecDeque<(String, String, u16)>,
    next_id: u64,
}

impl OmState {
    pub fn topic(&self, fqn: &str) -> Option<&(String, Value, bool)> {
        self.entities.get("topics").and_then(|topics| topics.get(fqn))
    }

    pub fn sample_of(&self, fqn: &str) -> Option<&Vec<String>> {
        let (id, _, _) = self.topic(fqn)?;
        self.samples.get(id)
    }

    /// Adds a topic as an earlier run would have.
    pub fn seed_topic(&mut self, service: &str, name: &str) {
        let fqn = format!("{service}.{}", quote(name));
        let id = self.new_id();
        self.entities
            .entry("topics".into())
            .or_default()
            .insert(fqn, (id, json!({"name": name, "service": service}), false));
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_id)
    }
}

fn quote(name: &str) -> String {
    if name.contains('.') { format!("\"{name}\"") } else { name.to_owned() }
}

/// The stand-in server.
pub struct OpenMetadataStandIn {
    pub state: Arc<Mutex<OmState>>,
    pub addr: SocketAddr,
    pub token: String,
}

struct Shared {
    state: Arc<Mutex<OmState>>,
    token: String,
    validators: BTreeMap<&'static str, jsonschema::Validator>,
}

impl OpenMetadataStandIn {
    /// Starts on a free loopback port; requests must carry `Bearer {token}`.
    pub async fn start(token: &str) -> OpenMetadataStandIn {
        let validators: BTreeMap<&'static str, jsonschema::Validator> = [
            ("messagingServices", "api/services/createMessagingService.json"),
            ("topics", "api/data/createTopic.json"),
            ("sampleData", "entity/data/topic.json#/definitions/topicSampleData"),
            ("pipelineServices", "api/services/createPipelineService.json"),
            ("pipelines", "api/data/createPipeline.json"),
            ("storageServices", "api/services/createStorageService.json"),
            ("containers", "api/data/createContainer.json"),
            ("lineage", "api/lineage/addLineage.json"),
            ("databaseServices", "api/services/createDatabaseService.json"),
            ("databases", "api/data/createDatabase.json"),
            ("databaseSchemas", "api/data/createDatabaseSchema.json"),
            ("tables", "api/data/createTable.json"),
            ("pipelineStatus", "entity/data/pipeline.json#/definitions/pipelineStatus"),
        ]
        .into_iter()
        .map(|(kind, file)| (kind, validator(file)))
        .collect();
        let state = Arc::new(Mutex::new(OmState::default()));
        let shared = Arc::new(Shared { state: Arc::clone(&state), token: token.to_owned(), validators });
        let app = Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        OpenMetadataStandIn { state, addr, token: token.to_owned() }
    }

    /// OpenMetadata's `hostPort`.
    pub fn host_port(&self) -> String {
        format!("http://{}/api", self.addr)
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::String("<not json>".into()))
    };
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut state = shared.state.lock().expect("state");
    state.requests.push(Received {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    if authorization.as_deref() != Some(&format!("Bearer {}", shared.token)) {
        return (StatusCode::UNAUTHORIZED, "{\"code\":401,\"message\":\"Not authorized\"}").into_response();
    }
    if let Some(position) =
        state.faults.iter().position(|(m, p, _)| *m == method.as_str() && path.starts_with(p.as_str()))
    {
        let (_, _, status) = state.faults.remove(position).expect("fault");
        return (StatusCode::from_u16(status).expect("status"), "{\"message\":\"injected\"}").into_response();
    }
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let validate = |state: &mut OmState, kind: &str| {
        if let Some(validator) = shared.validators.get(kind) {
            for error in errors(validator, &body) {
                state.invalid.push(format!("{method} {path}: {error}"));
            }
        }
    };
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["system", "version"]) => {
            axum::Json(json!({"version": "2.0.7", "revision": "stand-in", "timestamp": 0})).into_response()
        }
        ("GET", ["services", kind, "name", name]) | ("GET", [kind, "name", name]) => {
            match state.entities.get(*kind).and_then(|all| all.get(&decode(name))) {
                Some((id, body, _)) => axum::Json(entity_view(&state, kind, &decode(name), id, body)).into_response(),
                None => (StatusCode::NOT_FOUND, "{\"code\":404,\"message\":\"not found\"}").into_response(),
            }
        }
        ("PUT", ["pipelines", fqn, "status"]) => {
            validate(&mut state, "pipelineStatus");
            let fqn = decode(fqn);
            let Some((id, pipeline, _)) = state.entities.get("pipelines").and_then(|all| all.get(&fqn)).cloned() else {
                return (StatusCode::NOT_FOUND, "{\"code\":404,\"message\":\"no such pipeline\"}").into_response();
            };
            // The server refuses a status naming a task the pipeline does not have.
            let tasks: Vec<&str> =
                pipeline["tasks"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
            for task in body["taskStatus"].as_array().into_iter().flatten() {
                if !tasks.contains(&task["name"].as_str().unwrap_or_default()) {
                    state
                        .invalid
                        .push(format!("PUT {path}: task {} is not one of the pipeline's {tasks:?}", task["name"]));
                }
            }
            state.statuses.entry(fqn.clone()).or_default().push(body.clone());
            axum::Json(entity_view(&state, "pipelines", &fqn, &id, &pipeline)).into_response()
        }
        ("PUT", ["services", kind]) | ("PUT", [kind]) if *kind != "lineage" => {
            validate(&mut state, kind);
            let (fqn, id) = create(&mut state, kind, &body);
            axum::Json(entity_view(&state, kind, &fqn, &id, &body)).into_response()
        }
        // OpenMetadata's Python sink creates topics, tables, ... in batches.
        ("PUT", [kind, "bulk"]) => {
            let requests = body.as_array().cloned().unwrap_or_default();
            let mut done = Vec::new();
            for request in &requests {
                if let Some(validator) = shared.validators.get(*kind) {
                    for error in errors(validator, request) {
                        state.invalid.push(format!("{method} {path}: {error}"));
                    }
                }
                let (fqn, _) = create(&mut state, kind, request);
                done.push(json!({"request": fqn, "status": 200}));
            }
            axum::Json(json!({"status": "success", "numberOfRowsProcessed": requests.len().max(1),
                "numberOfRowsPassed": requests.len().max(1), "numberOfRowsFailed": 0, "successRequest": done,
                "failedRequest": []}))
            .into_response()
        }
        ("PUT", ["topics", id, "sampleData"]) => {
            validate(&mut state, "sampleData");
            let messages = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
            let messages = messages.iter().map(|m| m.as_str().unwrap_or("<not a string>").to_owned()).collect();
            state.samples.insert((*id).to_owned(), messages);
            // The topic, with the sample it now holds.
            axum::Json(
                json!({"id": id, "sampleData": {"messages": body.get("messages").cloned().unwrap_or(json!([]))}}),
            )
            .into_response()
        }
        ("PUT", ["lineage"]) => {
            validate(&mut state, "lineage");
            let pick = |end: &str, key: &str| {
                body.pointer(&format!("/edge/{end}/{key}")).and_then(Value::as_str).unwrap_or_default().to_owned()
            };
            let edge = (
                pick("fromEntity", "type"),
                pick("fromEntity", "id"),
                pick("toEntity", "type"),
                pick("toEntity", "id"),
            );
            state.edges.push(edge);
            state.edge_details.push(body.pointer("/edge/lineageDetails").cloned().unwrap_or(Value::Null));
            StatusCode::OK.into_response()
        }
        ("GET", ["topics"]) => {
            let params: BTreeMap<String, String> = query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), decode(v)))
                .collect();
            let service = params.get("service").cloned().unwrap_or_default();
            let limit: usize = params.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
            let after: usize = params.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let live: Vec<Value> = state
                .entities
                .get("topics")
                .into_iter()
                .flatten()
                .filter(|(_, (_, body, deleted))| {
                    !deleted && body.get("service").and_then(Value::as_str) == Some(service.as_str())
                })
                .map(|(fqn, (id, body, _))| json!({"id": id, "name": body["name"], "fullyQualifiedName": fqn}))
                .collect();
            let page: Vec<Value> = live.iter().skip(after).take(limit).cloned().collect();
            let next = (after + limit < live.len()).then(|| (after + limit).to_string());
            axum::Json(json!({"data": page, "paging": {"after": next, "total": live.len()}})).into_response()
        }
        ("DELETE", ["topics", id]) => {
            let mut found = false;
            for (entity_id, _, deleted) in
                state.entities.get_mut("topics").into_iter().flatten().map(|(_, entry)| entry)
            {
                if entity_id == id {
                    *deleted = true;
                    found = true;
                }
            }
            if found { StatusCode::OK.into_response() } else { StatusCode::NOT_FOUND.into_response() }
        }
        // A missing lineage edge (`GET lineage/getLineageEdge/..`) answers this way too, with a code as the server's do.
        _ => (StatusCode::NOT_FOUND, Body::from("{\"code\":404,\"message\":\"no such endpoint in the stand-in\"}"))
            .into_response(),
    }
}

/// Creates or updates the entity of `kind` that `body` asks for: its FQN and id.
fn create(state: &mut OmState, kind: &str, body: &Value) -> (String, String) {
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let parent =
        ["service", "database", "databaseSchema"].iter().find_map(|key| body.get(*key).and_then(Value::as_str));
    let fqn = match parent {
        Some(parent) => format!("{parent}.{}", quote(&name)),
        None => quote(&name),
    };
    let existing = state.entities.get(kind).and_then(|all| all.get(&fqn)).map(|(id, _, _)| id.clone());
    let id = existing.unwrap_or_else(|| state.new_id());
    state.entities.entry(kind.to_owned()).or_default().insert(fqn.clone(), (id.clone(), body.clone(), false));
    (fqn, id)
}

/// An entity as the server answers with it: the create request's fields, its id and
/// fully qualified name, and its parents as entity references.
fn entity_view(state: &OmState, kind: &str, fqn: &str, id: &str, body: &Value) -> Value {
    let mut entity = body.clone();
    entity["id"] = json!(id);
    entity["fullyQualifiedName"] = json!(fqn);
    entity["version"] = json!(0.1);
    entity["updatedAt"] = json!(1_700_000_000_000_i64);
    entity["updatedBy"] = json!("ingestion-bot");
    entity["deleted"] = json!(false);
    entity["href"] = json!(format!("http://stand-in/api/v1/{kind}/{id}"));
    let reference =
        |kind: &str, fqn: &str, kind_type: &str| {
            state.entities.get(kind).and_then(|all| all.get(fqn)).map(
                |(id, body, _)| json!({"id": id, "type": kind_type, "name": body["name"], "fullyQualifiedName": fqn}),
            )
        };
    let service_kind = match kind {
        "topics" => Some(("messagingServices", "messagingService")),
        "pipelines" => Some(("pipelineServices", "pipelineService")),
        "containers" => Some(("storageServices", "storageService")),
        "databases" => Some(("databaseServices", "databaseService")),
        _ => None,
    };
    if let (Some((service_kind, service_type)), Some(service)) = (service_kind, body["service"].as_str()) {
        entity["service"] = reference(service_kind, service, service_type).unwrap_or(Value::Null);
    }
    // A schema or table names its parents by FQN: service, then database, then schema.
    let parts: Vec<&str> = fqn.split('.').collect();
    if matches!(kind, "databaseSchemas" | "tables") && parts.len() >= 3 {
        entity["service"] = reference("databaseServices", parts[0], "databaseService").unwrap_or(Value::Null);
        entity["database"] = reference("databases", &parts[..2].join("."), "database").unwrap_or(Value::Null);
    }
    if kind == "tables" && parts.len() >= 4 {
        entity["databaseSchema"] =
            reference("databaseSchemas", &parts[..3].join("."), "databaseSchema").unwrap_or(Value::Null);
    }
    entity
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Kinesis proxy on loopback that forwards to `upstream`, answering
/// `(operation, body substring)` matches with an injected error instead, `count` times each.
pub struct FaultProxy {
    pub addr: SocketAddr,
    pub injected: Arc<Mutex<Vec<String>>>,
    /// Every call forwarded: `X-Amz-Target body`.
    pub forwarded: Arc<Mutex<Vec<String>>>,
}

pub struct Fault {
    pub operation: &'static str,
    pub body_contains: String,
    pub error_type: &'static str,
    pub remaining: u32,
}

impl FaultProxy {
    pub async fn start(upstream: &str, faults: Vec<Fault>) -> FaultProxy {
        let faults = Arc::new(Mutex::new(faults));
        let injected = Arc::new(Mutex::new(Vec::new()));
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let upstream = upstream.trim_end_matches('/').to_owned();
        let (faults_state, injected_state, forwarded_state) =
            (Arc::clone(&faults), Arc::clone(&injected), Arc::clone(&forwarded));
        let app = Router::new().fallback(move |request: Request| {
            let (faults, injected, forwarded, upstream) = (
                Arc::clone(&faults_state),
                Arc::clone(&injected_state),
                Arc::clone(&forwarded_state),
                upstream.clone(),
            );
            async move { forward(request, &upstream, &faults, &injected, &forwarded).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        FaultProxy { addr, injected, forwarded }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn forward(
    request: Request,
    upstream: &str,
    faults: &Mutex<Vec<Fault>>,
    injected: &Mutex<Vec<String>>,
    forwarded: &Mutex<Vec<String>>,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20).await.expect("body");
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = String::from_utf8_lossy(&body).into_owned();
    {
        let mut faults = faults.lock().expect("faults");
        if let Some(fault) = faults
            .iter_mut()
            .find(|f| f.remaining > 0 && target.ends_with(f.operation) && text.contains(&f.body_contains))
        {
            fault.remaining -= 1;
            injected.lock().expect("injected").push(format!("{} {}", fault.operation, fault.error_type));
            let answer = json!({"__type": fault.error_type, "message": "injected by the test proxy"}).to_string();
            return Response::builder()
                .status(400)
                .header("content-type", "application/x-amz-json-1.1")
                .body(Body::from(answer))
                .expect("response");
        }
    }
    forwarded.lock().expect("forwarded").push(format!("{target} {text}"));
    let url = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "host" | "content-length" | "connection"))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let answer = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut request = agent.post(&url);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = request.send(&body[..]).expect("forward to kinesis-local");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/x-amz-json-1.1")
            .to_owned();
        let bytes = response.body_mut().read_to_vec().expect("read answer");
        (status, content_type, bytes)
    })
    .await
    .expect("forward");
    Response::builder().status(answer.0).header("content-type", answer.1).body(Body::from(answer.2)).expect("response")
}
