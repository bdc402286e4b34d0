//! The HTTP API (DESIGN.md §7).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use prost::Message;
use serde::Deserialize;
use serde_json::{Value, json};
use tributary_proto::v1::{
    CommitRequest, CommitResponse, DatasetFormat as ProtoDatasetFormat, SourceDefinition, SourceVersion,
    ValidationError as ProtoError,
};
use tributary_sink::table::{TableError, TableWriter};
use tributary_source::{DatasetFormat, InitPosition, Source, ValidationError};
use tributary_store::{ErrorQuery, NewVersion, StoredVersion};

use crate::AppState;
use crate::errors::ApiError;
use crate::prometheus;
use crate::status::Phase;
use crate::worker::checkpoint_scope;

const PROTOBUF: &str = "application/x-protobuf";
/// Largest sum of payloads and messages in one `/errors` answer.
pub(crate) const ERRORS_ANSWER_BYTES: usize = 4 << 20;

/// The API's routes over `state`.
pub fn router(state: AppState) -> Router {
    // Everything but liveness needs the token when one is configured: reads show
    // payloads, role ARNs and registry URLs too.
    let mut protected = Router::new()
        .route("/api/v1/commit", post(commit))
        .route("/api/v1/sources/{name}", axum::routing::delete(delete_source))
        .route("/api/v1/sources", get(list_sources))
        .route("/api/v1/sources/{name}", get(show_source))
        .route("/api/v1/sources/{name}/status", get(source_status))
        .route("/api/v1/sources/{name}/errors", get(source_errors))
        .route("/api/v1/sources/{name}/errors/summary", get(crate::console_api::errors_summary))
        .route("/api/v1/sources/{name}/errors/export", get(crate::console_api::errors_export))
        .route("/api/v1/sources/{name}/history", get(crate::console_api::source_history))
        .route("/api/v1/sources/{name}/versions/{version}", get(crate::console_api::source_version))
        .route("/api/v1/sources/{name}/replay", post(crate::replay::replay_source))
        .route("/api/v1/cluster", get(crate::cluster_api::show_cluster))
        .route("/api/v1/tables", get(crate::tables::list_tables))
        .route("/api/v1/tables/{name}", get(crate::tables::show_table));
    let mut open = Router::new().route("/healthz", get(|| async { "ok\n" })).merge(crate::console::routes());
    if state.open_metrics {
        open = open.route("/metrics", get(metrics));
    } else {
        protected = protected.route("/metrics", get(metrics));
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(protected)
        .merge(open)
        .fallback(|| async { ApiError::not_found("no such endpoint; see DESIGN.md §7 for the API") })
        .layer(middleware::from_fn_with_state(state.clone(), require_loopback_host))
        .layer(DefaultBodyLimit::max(state.body_limit))
        .with_state(state)
}

/// On a loopback bind, a request naming another host came through a browser
/// whose page rebound a DNS name to 127.0.0.1: refuse it (421).
async fn require_loopback_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.loopback_hosts_only
        && let Some(host) = request.headers().get(header::HOST)
        && !host.to_str().is_ok_and(is_loopback_host)
    {
        return ApiError::Misdirected.into_response();
    }
    next.run(request).await
}

/// `localhost`, `127.0.0.1`, `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host
            .rsplit_once(':')
            .map_or(host, |(name, port)| if port.chars().all(|c| c.is_ascii_digit()) { name } else { host }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|address| address.is_loopback())
}

pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Calls need `Authorization: Bearer <token>` when a token is configured.
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let matches = presented.is_some_and(|token| constant_time_eq(token.as_bytes(), expected.as_bytes()));
        if !matches {
            let message = if presented.is_some() {
                "the bearer token is not valid"
            } else {
                "this call needs `Authorization: Bearer <token>`"
            };
            return ApiError::Unauthorized(message.to_owned()).into_response();
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[derive(Debug, Deserialize)]
struct CommitParams {
    #[serde(default)]
    dry_run: bool,
}

/// The body's encoding, from its `Content-Type`: JSON or protobuf, nothing else.
///
/// A browser page may send `text/plain` (or a form) to 127.0.0.1 without asking
/// first; only a "non-simple" type like `application/json` needs a CORS
/// preflight, which this server never grants. So any other type is a 415.
pub(crate) fn body_encoding(headers: &HeaderMap) -> Result<bool, ApiError> {
    let value = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let media_type = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match media_type.as_str() {
        "application/json" => Ok(false),
        PROTOBUF | "application/protobuf" => Ok(true),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "send the body as `application/json` or `{PROTOBUF}`, not `{value}`"
        ))),
    }
}

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest(format!("cannot read the request body: {}", rejection.body_text()))
        }
    })
}

fn commit_response(protobuf: bool, status: StatusCode, response: CommitResponse) -> Response {
    if protobuf {
        return (status, [(header::CONTENT_TYPE, PROTOBUF)], response.encode_to_vec()).into_response();
    }
    let mut body = serde_json::to_value(&response).unwrap_or_else(|_| json!({}));
    if let Value::Object(fields) = &mut body {
        fields.insert("ok".into(), Value::Bool(response.ok));
        if !response.ok {
            let count = response.errors.len();
            let first = response.errors.first().map(|e| format!("{} {}.{}: {}", e.code, e.source, e.field, e.message));
            fields.insert(
                "error".into(),
                Value::String(format!(
                    "{count} validation error(s); nothing was stored; first: {}",
                    first.unwrap_or_default()
                )),
            );
        }
    }
    (status, Json(body)).into_response()
}

fn proto_errors(errors: Vec<ValidationError>) -> Vec<ProtoError> {
    errors
        .into_iter()
        .map(|error| ProtoError {
            source: error.source,
            field: error.field,
            code: error.code.as_str().to_owned(),
            message: error.message,
        })
        .collect()
}

async fn commit(
    State(state): State<AppState>,
    Query(params): Query<CommitParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let protobuf = body_encoding(&headers)?;
    let body = body_bytes(body)?;
    let request: CommitRequest = if protobuf {
        CommitRequest::decode(body)
            .map_err(|error| ApiError::BadRequest(format!("the body is not a protobuf CommitRequest: {error}")))?
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ApiError::BadRequest(format!("the body is not a JSON CommitRequest: {error}")))?
    };
    let now = Utc::now();
    let invalid = |errors| {
        let response = CommitResponse { ok: false, errors: proto_errors(errors), versions: Vec::new() };
        Ok(commit_response(protobuf, StatusCode::UNPROCESSABLE_ENTITY, response))
    };
    let mut request = request;
    resolve_dataset_formats(&state, &mut request.sources)?;
    let sources = match tributary_source::validate_commit_with(&request.sources, now, state.supervisor.secret_policy())
    {
        Ok(sources) => sources,
        Err(errors) => return invalid(errors),
    };
    let compile_errors: Vec<ValidationError> =
        sources.iter().filter_map(|source| tributary_codec::compile_check(source).err()).collect();
    if !compile_errors.is_empty() {
        return invalid(compile_errors);
    }
    let table_errors = table_schema_errors(&state, &sources).await;
    if !table_errors.is_empty() {
        return invalid(table_errors);
    }
    // Checked early for a quick answer, and again under the commit lock below.
    let conflicts = dataset_conflicts(&state, &sources)?;
    if !conflicts.is_empty() {
        return invalid(conflicts);
    }
    if let Some((factory, timeout)) = &state.live {
        let mut errors = Vec::new();
        for source in &sources {
            if let Err(error) = tributary_source::live::check_source(
                factory,
                source,
                *timeout,
                tributary_codec::check_registered_schema,
            )
            .await
            {
                errors.push(error);
            }
        }
        if !errors.is_empty() {
            return invalid(errors);
        }
    }
    if params.dry_run {
        return Ok(commit_response(protobuf, StatusCode::OK, CommitResponse { ok: true, ..CommitResponse::default() }));
    }

    let mut versions = Vec::with_capacity(sources.len());
    for (source, definition) in sources.iter().zip(&request.sources) {
        versions.push(NewVersion {
            source: source.name.clone(),
            definition: serde_json::to_string(definition).map_err(ApiError::internal)?,
            stream_arn: source.kinesis.stream_arn.to_string(),
            start_at: start_at(&state, source, now)?,
        });
    }
    // Check, store and start as one step under the commit lock, in a task of
    // its own: a client that hangs up midway cannot leave a version stored
    // whose worker never started.
    let applied = tokio::spawn(async move {
        let _serialized = state.supervisor.lock_commits().await;
        if let Some(cluster) = state.supervisor.cluster() {
            // What other nodes committed counts for the one-writer-per-dataset check.
            cluster.sync_definitions(&state.store, Some(&state.supervisor)).await.map_err(ApiError::Unavailable)?;
        }
        let conflicts = dataset_conflicts(&state, &sources)?;
        if !conflicts.is_empty() {
            return Ok(Err(conflicts));
        }
        let store = Arc::clone(&state.store);
        let message = request.message.clone();
        let stored = match state.supervisor.cluster() {
            // Numbered by the cluster's shared table, then cached in the store.
            Some(cluster) => {
                let stored = cluster.append(&versions, &message, now).await?;
                let adopted = stored.clone();
                off_runtime(move || {
                    adopted.iter().try_for_each(|version| store.adopt_version(version).map(drop))?;
                    Ok(())
                })
                .await?;
                stored
            }
            None => off_runtime(move || Ok(store.commit_versions(&versions, &message, now)?)).await?,
        };
        for version in &stored {
            state.supervisor.apply(version.clone()).await;
        }
        Ok::<_, ApiError>(Ok(stored))
    })
    .await
    .map_err(ApiError::internal)??;
    let stored = match applied {
        Ok(stored) => stored,
        Err(conflicts) => return invalid(conflicts),
    };
    let versions = stored.iter().map(|v| SourceVersion { source: v.source.clone(), version: v.version }).collect();
    Ok(commit_response(protobuf, StatusCode::OK, CommitResponse { ok: true, errors: Vec::new(), versions }))
}

/// A definition that does not say how its dataset is stored gets an Iceberg
/// table, unless it is a new version of a source whose dataset is Parquet
/// files (versions stored before tables existed say nothing, and mean
/// Parquet): a new version never moves a dataset unasked. The choice is
/// stored in the version, so it never changes on a restart.
fn resolve_dataset_formats(state: &AppState, definitions: &mut [SourceDefinition]) -> Result<(), ApiError> {
    for definition in definitions {
        let Some(dataset) = definition.dataset.as_mut().filter(|dataset| dataset.format == 0) else { continue };
        let current = state.store.source(&definition.name)?.filter(|summary| summary.deleted_at.is_none());
        let stays_parquet = current
            .and_then(|summary| {
                crate::supervisor::stored_source(&summary.current, state.supervisor.secret_policy()).ok()
            })
            .is_some_and(|source| source.dataset.format == DatasetFormat::Parquet);
        let format = if stays_parquet { ProtoDatasetFormat::Parquet } else { ProtoDatasetFormat::Iceberg };
        dataset.format = format as i32;
    }
    Ok(())
}

/// An Iceberg dataset's table must be able to take the new version's rows:
/// added fields optional, types the same or promoted.
async fn table_schema_errors(state: &AppState, sources: &[Source]) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    for source in sources.iter().filter(|source| source.dataset.format == DatasetFormat::Iceberg) {
        let Ok(decoder) = tributary_codec::Decoder::new(source, None) else { continue };
        let identifiers = crate::table_output::identifier_fields(source);
        let checked = TableWriter::check_schema(
            state.supervisor.catalog(),
            &source.dataset.name,
            &source.dataset.timestamp,
            &decoder.schema(),
            &identifiers,
        )
        .await;
        let message = match checked {
            Ok(()) => continue,
            Err(TableError::Schema(error)) => format!("the dataset's Iceberg table cannot take it: {error}"),
            Err(other) => format!("reading the dataset's Iceberg table: {other}"),
        };
        errors.push(ValidationError {
            source: source.name.clone(),
            field: "dataset.fields".to_owned(),
            code: tributary_source::ErrorCode::SchemaIncompatible,
            message,
        });
    }
    errors
}

/// A dataset has one writer: two live sources writing the same dataset would
/// delete each other's uncommitted files at start-up.
fn dataset_conflicts(state: &AppState, sources: &[Source]) -> Result<Vec<ValidationError>, ApiError> {
    let mut writers: BTreeMap<String, String> = BTreeMap::new();
    for summary in state.store.sources()? {
        if summary.deleted_at.is_some() {
            continue;
        }
        if let Ok(existing) = crate::supervisor::stored_source(&summary.current, state.supervisor.secret_policy()) {
            writers.insert(existing.dataset.name, existing.name);
        }
    }
    let mut errors = Vec::new();
    let mut in_commit: BTreeMap<&str, &str> = BTreeMap::new();
    for source in sources {
        let dataset = source.dataset.name.as_str();
        let other = in_commit
            .insert(dataset, &source.name)
            .map(str::to_owned)
            .or_else(|| writers.get(dataset).filter(|writer| **writer != source.name).cloned());
        if let Some(other) = other {
            errors.push(ValidationError {
                source: source.name.clone(),
                field: "dataset.name".to_owned(),
                code: tributary_source::ErrorCode::DuplicateName,
                message: format!(
                    "dataset `{dataset}` is already written by source `{other}`; a dataset has one source"
                ),
            });
        }
    }
    Ok(errors)
}

/// Where a new version starts: a version on the same stream as the one before
/// keeps its start (and its checkpoints); otherwise `latest` is pinned to now.
fn start_at(state: &AppState, source: &Source, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
    if let Some(previous) = state.store.source(&source.name)?
        && previous.current.stream_arn == source.kinesis.stream_arn.to_string()
    {
        return Ok(previous.current.start_at);
    }
    Ok(match source.kinesis.init_position {
        InitPosition::Latest => Some(now),
        InitPosition::TrimHorizon => None,
        InitPosition::AtTimestamp(at) => Some(at),
    })
}

/// The stored definition with inline secrets replaced.
pub(crate) fn redacted_definition(version: &StoredVersion) -> Value {
    fn redact(value: &mut Value, parent_key: Option<&str>) {
        match value {
            Value::Object(fields) => {
                let secret = matches!(parent_key, Some("password" | "token"));
                for (key, field) in fields.iter_mut() {
                    if secret && key == "inline" {
                        *field = Value::String("***".into());
                    } else {
                        redact(field, Some(key));
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| redact(item, parent_key)),
            _ => {}
        }
    }
    let mut definition = serde_json::from_str(&version.definition).unwrap_or(Value::Null);
    redact(&mut definition, None);
    definition
}

fn state_of(state: &AppState, name: &str, deleted: bool) -> &'static str {
    if deleted {
        return "deleted";
    }
    state.supervisor.status(name).map_or("stopped", |status| status.snapshot().phase.as_str())
}

fn list_sources_now(state: AppState) -> Result<Json<Value>, ApiError> {
    let sources: Vec<Value> = state
        .store
        .sources()?
        .into_iter()
        .map(|summary| {
            json!({
                "name": summary.name,
                "version": summary.current.version,
                "stream_arn": summary.current.stream_arn,
                "committed_at": time(summary.current.committed_at),
                "deleted_at": summary.deleted_at.map(time),
                "state": state_of(&state, &summary.name, summary.deleted_at.is_some()),
            })
        })
        .collect();
    Ok(Json(json!({ "sources": sources })))
}

fn show_source_now(state: AppState, name: String) -> Result<Json<Value>, ApiError> {
    let summary = state.store.source(&name)?.ok_or_else(|| ApiError::not_found(format!("no source named `{name}`")))?;
    let versions: Vec<Value> = state
        .store
        .versions(&name)?
        .iter()
        .map(|v| json!({"version": v.version, "committed_at": time(v.committed_at), "message": v.message, "stream_arn": v.stream_arn}))
        .collect();
    // Where the dataset lives, for catalogs (the metadata workflow's lineage).
    let dataset =
        crate::supervisor::stored_source(&summary.current, state.supervisor.secret_policy()).ok().map(|source| {
            let catalog = state.supervisor.catalog();
            let (format, location) = match source.dataset.format {
                DatasetFormat::Iceberg => ("iceberg", catalog.table_location(&source.dataset.name)),
                DatasetFormat::Parquet => {
                    ("parquet", state.supervisor.dataset_dir(&source.dataset.name).display().to_string())
                }
            };
            let mut dataset = json!({"name": source.dataset.name, "format": format, "location": location});
            if let (DatasetFormat::Iceberg, Some((database, catalog_id))) =
                (source.dataset.format, catalog.glue_database())
            {
                dataset["glue"] = json!({"database": database, "catalog_id": catalog_id});
            }
            dataset
        });
    Ok(Json(json!({
        "name": summary.name,
        "version": summary.current.version,
        "dataset": dataset,
        "state": state_of(&state, &name, summary.deleted_at.is_some()),
        "deleted_at": summary.deleted_at.map(time),
        "start_at": summary.current.start_at.map(time),
        "definition": redacted_definition(&summary.current),
        "versions": versions,
    })))
}

async fn delete_source(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    // As a commit: one step under the commit lock, finished even if the client hangs up.
    tokio::spawn(async move {
        let _serialized = state.supervisor.lock_commits().await;
        if let Some(cluster) = state.supervisor.cluster() {
            cluster.sync_definitions(&state.store, Some(&state.supervisor)).await.map_err(ApiError::Unavailable)?;
        }
        let Some(summary) = state.store.source(&name)? else {
            return Err(ApiError::not_found(format!("no source named `{name}`")));
        };
        if let Some(cluster) = state.supervisor.cluster()
            && summary.deleted_at.is_none()
        {
            // Every node stops it when it reads the delete; this one at once.
            cluster.delete(&summary.current, Utc::now()).await?;
        }
        let (store, deleting) = (Arc::clone(&state.store), name.clone());
        let deleted = off_runtime(move || Ok(store.delete_source(&deleting, Utc::now())?));
        if summary.deleted_at.is_some() || !deleted.await? {
            return Err(ApiError::not_found(format!("source `{name}` is already deleted")));
        }
        state.supervisor.retire(&summary.current).await;
        Ok(Json(json!({ "deleted": name, "version": summary.current.version })))
    })
    .await
    .map_err(ApiError::internal)?
}

pub(crate) fn source_status_now(state: AppState, name: String) -> Result<Json<Value>, ApiError> {
    let summary = state.store.source(&name)?.ok_or_else(|| ApiError::not_found(format!("no source named `{name}`")))?;
    let version = &summary.current;
    let stored = crate::supervisor::stored_source(version, state.supervisor.secret_policy()).ok();
    let dataset_name = stored.as_ref().map(|source| source.dataset.name.clone());
    let format = match stored.as_ref().map(|source| source.dataset.format) {
        Some(DatasetFormat::Iceberg) => "iceberg",
        _ => "parquet",
    };
    let scope = checkpoint_scope(&name, &version.stream_arn);
    let max_event = state.store.max_event_time(&scope)?;
    let disorder = stored.as_ref().map_or(tributary_source::DEFAULT_DISORDER, |source| source.disorder);
    let watermark = max_event.map(|max| max.saturating_sub(i64::try_from(disorder.as_micros()).unwrap_or(i64::MAX)));
    let micros_time = |micros: i64| chrono::DateTime::from_timestamp_micros(micros).map(time);
    let (rows, bytes) = match &dataset_name {
        Some(dataset) => state.store.dataset_totals(dataset)?,
        None => (0, 0),
    };
    let checkpoints = state.store.checkpoints(&scope)?;
    let counts: BTreeMap<String, (u64, u64, u64, u64)> = state
        .store
        .shard_counts(&name)?
        .into_iter()
        .map(|c| (c.shard_id, (c.rows, c.rejected, c.filtered, c.late)))
        .collect();
    let worker = state.supervisor.status(&name).map(|status| status.snapshot());
    let reader = worker.as_ref().and_then(|w| w.reader.as_ref()).map(|r| r.snapshot()).unwrap_or_default();

    let mut shard_ids: Vec<&String> = checkpoints.keys().chain(counts.keys()).chain(reader.keys()).collect();
    shard_ids.sort();
    shard_ids.dedup();
    let shards: Vec<Value> = shard_ids
        .into_iter()
        .map(|shard_id| {
            let checkpoint = checkpoints.get(shard_id);
            let metrics = reader.get(shard_id);
            let finished = checkpoint.is_some_and(|c| c.finished);
            let shard_state = if finished {
                "finished"
            } else if metrics.is_some_and(|m| m.finished) {
                "closing"
            } else if metrics.is_some() {
                "reading"
            } else {
                "waiting"
            };
            let (rows, rejected, filtered, late) = counts.get(shard_id).copied().unwrap_or_default();
            json!({
                "shard_id": shard_id,
                "state": shard_state,
                "checkpoint": checkpoint.and_then(|c| c.position.as_ref()).map(|p| json!({
                    "sequence_number": p.sequence_number.as_str(),
                    "sub_sequence": p.sub_sequence,
                })),
                "millis_behind_latest": metrics.map(|m| m.millis_behind_latest),
                "arrival_lag_millis": metrics.map(|m| m.arrival_lag_millis),
                "records_read": metrics.map(|m| m.records),
                "throttles": metrics.map(|m| m.throttles),
                // Records were trimmed before they were read: reading went on from TRIM_HORIZON.
                "warning": metrics.filter(|m| m.retention_gaps > 0).map(|_| "RETENTION_GAP"),
                "retention_gaps": metrics.map(|m| m.retention_gaps),
                "rows": rows,
                "rejected": rejected,
                "filtered": filtered,
                "late": late,
            })
        })
        .collect();
    let deleted = summary.deleted_at.is_some();
    Ok(Json(json!({
        "source": name,
        "version": version.version,
        "state": if deleted { "deleted" } else { worker.as_ref().map_or("stopped", |w| w.phase.as_str()) },
        "error": worker.as_ref().filter(|w| w.phase == Phase::Failed).and_then(|w| w.last_error.clone()),
        "reason": worker.as_ref().filter(|w| w.phase == Phase::Failed).and_then(|w| w.reason.clone()),
        "retry_at": worker.as_ref().filter(|w| w.phase == Phase::Failed).and_then(|w| w.retry_at).map(time),
        "finished_because": worker.as_ref().filter(|w| w.phase == Phase::Finished).and_then(|w| w.finished_because.clone()),
        "restarts": worker.as_ref().map_or(0, |w| w.restarts),
        "last_commit_at": worker.as_ref().and_then(|w| w.last_commit_at).map(time),
        "dataset": { "name": dataset_name, "format": format, "rows": rows, "bytes": bytes },
        "rows": counts.values().map(|c| c.0).sum::<u64>(),
        "rejected": counts.values().map(|c| c.1).sum::<u64>(),
        "filtered": counts.values().map(|c| c.2).sum::<u64>(),
        "late": counts.values().map(|c| c.3).sum::<u64>(),
        // Rows older than this are late (max_event_time - disorder); persisted with the checkpoints.
        "watermark": watermark.and_then(micros_time),
        "max_event_time": max_event.and_then(micros_time),
        "error_log_rows": state.store.error_count(&name)?,
        "lag_millis": worker.as_ref().and_then(|w| w.reader.as_ref()).map_or(0, |r| r.max_millis_behind_latest()),
        "shards": shards,
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorParams {
    pub(crate) limit: Option<u32>,
    pub(crate) before: Option<i64>,
    pub(crate) reason: Option<String>,
    pub(crate) field: Option<String>,
    pub(crate) shard: Option<String>,
    /// Rejected at or after (RFC 3339).
    pub(crate) since: Option<String>,
    /// Rejected before (RFC 3339).
    pub(crate) until: Option<String>,
}

impl ErrorParams {
    /// The store's query of `source`'s rows these parameters ask for (empty filters are none).
    pub(crate) fn query(&self, source: String, limit: u32) -> Result<ErrorQuery, ApiError> {
        let given = |value: &Option<String>| value.clone().filter(|value| !value.is_empty());
        let time = |name: &str, value: &Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
            given(value)
                .map(|text| {
                    DateTime::parse_from_rfc3339(&text)
                        .map(|at| at.with_timezone(&Utc))
                        .map_err(|error| ApiError::BadRequest(format!("`{name}` is not an RFC 3339 time: {error}")))
                })
                .transpose()
        };
        Ok(ErrorQuery {
            source,
            limit,
            before: self.before,
            reason: given(&self.reason),
            field: given(&self.field),
            shard_id: given(&self.shard),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
        })
    }
}

/// A payload as text when it is UTF-8, else base64.
/// Store queries (and the answers built from them) run on blocking threads,
/// at most this many at once: a large `/errors` page or a slow disk then holds
/// one of those, never the runtime the readers and the API share.
const STORE_CALLS: usize = 8;
static STORE_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(STORE_CALLS);

pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = STORE_PERMITS.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)?
}

async fn list_sources(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    off_runtime(move || list_sources_now(state)).await
}

async fn show_source(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    off_runtime(move || show_source_now(state, name)).await
}

async fn source_status(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let (reading, source) = (state.clone(), name.clone());
    let Json(mut body) = off_runtime(move || source_status_now(reading, name)).await?;
    // An Iceberg dataset's table, as its metadata says now (location, snapshot, rows, files).
    if body["dataset"]["format"] == "iceberg"
        && let Some(dataset) = body["dataset"]["name"].as_str().map(str::to_owned)
    {
        body["table"] = crate::tables::table_status(&state, &dataset).await;
    }
    crate::cluster_api::add_leases(&state, &source, &mut body).await?;
    Ok(Json(body))
}

async fn source_errors(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<ErrorParams>,
) -> Result<Json<Value>, ApiError> {
    // In cluster mode the rejected table is the error log every node shares.
    if state.supervisor.cluster().is_some() {
        let reading = state.clone();
        let summary = off_runtime(move || Ok(reading.store.source(&name)?)).await?;
        let Some(summary) = summary else { return Err(ApiError::not_found("no such source")) };
        return crate::cluster_api::shared_errors(&state, &summary.current, params).await;
    }
    off_runtime(move || source_errors_now(state, name, params)).await
}

pub(crate) fn readable_payload(payload: &[u8]) -> (Value, &'static str) {
    match std::str::from_utf8(payload) {
        Ok(text) => (Value::String(text.to_owned()), "utf8"),
        Err(_) => (Value::String(base64::engine::general_purpose::STANDARD.encode(payload)), "base64"),
    }
}

fn source_errors_now(state: AppState, name: String, params: ErrorParams) -> Result<Json<Value>, ApiError> {
    let Some(summary) = state.store.source(&name)? else {
        return Err(ApiError::not_found(format!("no source named `{name}`")));
    };
    let limit = params.limit.unwrap_or(50).clamp(1, 1000);
    let query = params.query(name, limit)?;
    let mut rows = state.store.errors(&query)?;
    let mut more = rows.len() == limit as usize;
    // At most ERRORS_ANSWER_BYTES of payloads and messages per answer (each payload is
    // capped at 64 KiB; 1,000 of them would be 64 MiB): the rest is on the next page.
    let mut budget = ERRORS_ANSWER_BYTES;
    let fits = rows
        .iter()
        .position(|error| {
            let size = error.row.payload.len() * 4 / 3 + error.row.message.len() + 512;
            let over = size > budget;
            budget = budget.saturating_sub(size);
            over
        })
        .map_or(rows.len(), |first_over| first_over.max(1));
    if fits < rows.len() {
        rows.truncate(fits);
        more = true;
    }
    let next_before = more.then(|| rows.last().map(|row| row.id)).flatten();
    let mut errors: Vec<Value> = rows.iter().map(crate::console_api::error_json).collect();
    if let Ok(source) = crate::supervisor::stored_source(&summary.current, state.supervisor.secret_policy()) {
        crate::console_api::add_avro(&state.supervisor.context().aws, &source, &rows, &mut errors);
    }
    Ok(Json(json!({ "errors": errors, "next_before": next_before })))
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let body = off_runtime(move || {
        let store = &state.store;
        Ok(prometheus::render(&state.supervisor, &|source| store.error_count(source).unwrap_or(0)))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}
