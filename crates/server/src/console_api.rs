//! What the console reads beyond the plain API: a source's charts history,
//! any committed version's definition (for the diff), counts of its rejected
//! rows by reason, their NDJSON export, and Avro payloads as JSON.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tributary_codec::{Registries, RegistryClient, avro_datum_json, glue_unframed, registry_schema_id, uuid_text};
use tributary_source::{AvroFormat, ClientFactory, Format, Source};
use tributary_store::{ErrorRow, NewErrorRow};

use crate::AppState;
use crate::api::{ErrorParams, off_runtime, redacted_definition, time};
use crate::errors::ApiError;

#[derive(Debug, Deserialize)]
pub(crate) struct HistoryParams {
    /// How far back, in minutes (at most the 6 h kept).
    minutes: Option<u64>,
}

/// `GET /api/v1/sources/{name}/history`: lag, rows/s and rejected/s over
/// time, for the source and each shard, as this process sampled them.
pub(crate) async fn source_history(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<Value>, ApiError> {
    let reading = state.clone();
    let looked_up = name.clone();
    if off_runtime(move || Ok(reading.store.source(&looked_up)?)).await?.is_none() {
        return Err(ApiError::not_found(format!("no source named `{name}`")));
    }
    let window = Duration::from_secs(params.minutes.unwrap_or(60).clamp(1, 360) * 60);
    Ok(Json(state.supervisor.history().answer(&name, window)))
}

/// `GET /api/v1/sources/{name}/versions/{version}`: that version's definition (secrets redacted).
pub(crate) async fn source_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, u64)>,
) -> Result<Json<Value>, ApiError> {
    off_runtime(move || {
        let versions = state.store.versions(&name)?;
        let Some(found) = versions.iter().find(|stored| stored.version == version) else {
            return Err(ApiError::not_found(format!("source `{name}` has no version {version}")));
        };
        Ok(Json(json!({
            "name": name,
            "version": found.version,
            "committed_at": time(found.committed_at),
            "message": found.message,
            "definition": redacted_definition(found),
        })))
    })
    .await
}

/// `GET /api/v1/sources/{name}/errors/summary`: the rejected rows matching
/// the filters (all but `reason`), counted by reason.
pub(crate) async fn errors_summary(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<ErrorParams>,
) -> Result<Json<Value>, ApiError> {
    let reading = state.clone();
    let looked_up = name.clone();
    let Some(summary) = off_runtime(move || Ok(reading.store.source(&looked_up)?)).await? else {
        return Err(ApiError::not_found(format!("no source named `{name}`")));
    };
    // In cluster mode the rejected table is the error log every node shares.
    if state.supervisor.cluster().is_some() {
        return Ok(Json(crate::cluster_api::shared_summary(&state, &summary.current, &params).await?));
    }
    off_runtime(move || {
        let counts = state.store.error_counts(&params.query(name, 0)?)?;
        let total: u64 = counts.iter().map(|(_, rows)| rows).sum();
        let by_reason: Vec<Value> =
            counts.into_iter().map(|(reason, rows)| json!({"reason": reason, "rows": rows})).collect();
        Ok(Json(json!({ "total": total, "by_reason": by_reason })))
    })
    .await
}

/// Rows per page of an export.
const EXPORT_PAGE: u32 = 1000;

/// `GET /api/v1/sources/{name}/errors/export`: every rejected row matching
/// the filters, newest first, one JSON object per line, streamed page by page.
pub(crate) async fn errors_export(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<ErrorParams>,
) -> Result<Response, ApiError> {
    let first = params.query(name.clone(), EXPORT_PAGE)?;
    let reading = state.clone();
    let looked_up = name.clone();
    let Some(summary) = off_runtime(move || Ok(reading.store.source(&looked_up)?)).await? else {
        return Err(ApiError::not_found(format!("no source named `{name}`")));
    };
    let disposition = format!("attachment; filename=\"{}-rejected.ndjson\"", file_name_safe(&name));
    let headers =
        [(header::CONTENT_TYPE, "application/x-ndjson".to_owned()), (header::CONTENT_DISPOSITION, disposition)];
    // In cluster mode the rejected table is the error log every node shares (read whole).
    if state.supervisor.cluster().is_some() {
        let lines = crate::cluster_api::shared_export(&state, &summary.current, &params).await?;
        return Ok((headers, lines).into_response());
    }
    let pages = futures_util::stream::unfold(Some(first), move |query| {
        let store = std::sync::Arc::clone(&state.store);
        async move {
            let mut query = query?;
            let page = off_runtime(move || {
                let rows = store.errors(&query)?;
                query.before = (rows.len() == query.limit as usize).then(|| rows.last().map(|row| row.id)).flatten();
                let mut lines = Vec::new();
                for row in &rows {
                    serde_json::to_writer(&mut lines, &error_json(row)).map_err(ApiError::internal)?;
                    lines.push(b'\n');
                }
                Ok((lines, query.before.is_some().then_some(query)))
            })
            .await;
            match page {
                Ok((lines, next)) => Some((Ok::<_, std::io::Error>(bytes::Bytes::from(lines)), next)),
                // The answer has started: a failure can only cut it short (the client sees no last newline).
                Err(error) => Some((Err(std::io::Error::other(format!("{error:?}"))), None)),
            }
        }
    });
    Ok((headers, Body::from_stream(pages)).into_response())
}

/// A name as it may appear in a header's quoted file name.
fn file_name_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

/// A rejected row of the error log as the API shows it.
pub(crate) fn error_json(error: &ErrorRow) -> Value {
    rejected_row_json(Some(error.id), Some(error.version), &error.row, error.rejected_at)
}

/// A rejected row as the API shows it; a row of the shared rejected table
/// (cluster mode) has no error-log `id` and no `version`.
pub(crate) fn rejected_row_json(
    id: Option<i64>,
    version: Option<u64>,
    row: &NewErrorRow,
    rejected_at: chrono::DateTime<chrono::Utc>,
) -> Value {
    let (payload, encoding) = crate::api::readable_payload(&row.payload);
    json!({
        "id": id,
        "version": version,
        "shard_id": row.shard_id,
        "sequence_number": row.sequence_number,
        "sub_sequence": row.sub_sequence,
        "arrival_time": time(row.arrival_time),
        "rejected_at": time(rejected_at),
        "reason": row.reason,
        "field": row.field,
        "message": row.message,
        "payload": payload,
        "payload_encoding": encoding,
        "payload_length": row.payload_length,
        "payload_truncated": (row.payload.len() as u64) < row.payload_length,
    })
}

/// Adds to each of `answers` (the JSON of `rows`) its payload decoded as
/// Avro with the writer schema, when the source reads Avro and the schema is
/// known (inline, or the registry's for the payload's schema id or Glue
/// schema version): `avro`, or `avro_error` when the payload does not decode
/// with it. Runs on a blocking thread (registries are asked and waited for).
pub(crate) fn add_avro(aws: &ClientFactory, source: &Source, rows: &[ErrorRow], answers: &mut [Value]) {
    let Format::Avro(avro) = &source.kinesis.format else { return };
    if let AvroFormat::Glue(_) = avro {
        add_glue_avro(aws, source, rows, answers);
        return;
    }
    let registry = match avro {
        AvroFormat::Registry(settings) => match RegistryClient::with_timeout(settings, Duration::from_secs(2)) {
            Ok(client) => Some(client),
            Err(_) => return,
        },
        AvroFormat::Inline(_) | AvroFormat::Glue(_) => None,
    };
    // One look-up per schema id per answer; an unreachable registry is asked once.
    let mut schemas: HashMap<u32, Option<String>> = HashMap::new();
    for (row, answer) in rows.iter().zip(answers.iter_mut()) {
        if (row.row.payload.len() as u64) < row.row.payload_length {
            continue;
        }
        let decoded = match (avro, &registry) {
            (AvroFormat::Inline(schema), _) => avro_datum_json(&schema.to_string(), &row.row.payload),
            (AvroFormat::Registry(_), Some(client)) => {
                let Some(id) = registry_schema_id(&row.row.payload) else {
                    answer["avro_error"] = json!("no schema registry header");
                    continue;
                };
                let schema = schemas.entry(id).or_insert_with(|| client.fetch(id).ok().flatten()).clone();
                match schema {
                    Some(schema) => avro_datum_json(&schema, &row.row.payload[5..]),
                    None => Err(format!("schema {id} is not known to the registry")),
                }
            }
            (AvroFormat::Registry(_) | AvroFormat::Glue(_), None) | (AvroFormat::Glue(_), Some(_)) => continue,
        };
        match decoded {
            Ok(value) => answer["avro"] = value,
            Err(error) => answer["avro_error"] = json!(error),
        }
    }
}

/// [`add_avro`] for Glue-framed payloads: each version's writer schema is read once per answer.
fn add_glue_avro(aws: &ClientFactory, source: &Source, rows: &[ErrorRow], answers: &mut [Value]) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let Ok(Registries { glue: Some(glue), .. }) = runtime.block_on(crate::registries::registries_for(aws, source))
    else {
        return;
    };
    let mut schemas: HashMap<u128, Result<String, String>> = HashMap::new();
    for (row, answer) in rows.iter().zip(answers.iter_mut()) {
        if (row.row.payload.len() as u64) < row.row.payload_length {
            continue;
        }
        let decoded = glue_unframed(&row.row.payload).and_then(|(id, body)| {
            let schema = schemas.entry(id).or_insert_with(|| match glue.schema_version(id) {
                Ok(Some(version)) => Ok(version.definition),
                Ok(None) => Err(format!("schema version {} is not in the Glue registry", uuid_text(id))),
                Err(error) => Err(error.to_string()),
            });
            match schema {
                Ok(schema) => avro_datum_json(schema, &body),
                Err(error) => Err(error.clone()),
            }
        });
        match decoded {
            Ok(value) => answer["avro"] = value,
            Err(error) => answer["avro_error"] = json!(error),
        }
    }
}
