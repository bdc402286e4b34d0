//! `/api/v1/tables`: the datasets' Iceberg tables as their metadata says
//! (current snapshot, rows, files); a table's snapshots, schema and first
//! rows read back through its current snapshot.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tributary_sink::table::{self, TableSummary};

use crate::AppState;
use crate::errors::ApiError;

/// Rows a single answer may carry.
const MAX_ROWS: usize = 1000;

/// Snapshots a table's answer lists (the newest).
const MAX_SNAPSHOTS: usize = 100;

/// A table's summary; `catalog` says which catalog records it (`embedded`, `glue:DATABASE`).
pub(crate) fn summary_json(summary: &TableSummary, catalog: &str) -> Value {
    json!({
        "name": summary.name,
        "format": "iceberg",
        "catalog": catalog,
        "location": summary.location,
        "metadata_location": summary.metadata_location,
        "snapshot_id": summary.snapshot_id,
        "snapshots": summary.snapshots,
        "rows": summary.rows,
        "files": summary.files,
        "schema_id": summary.schema_id,
    })
}

/// The summary of the table of dataset `name`, for a source's status;
/// `Null` when it has none yet, an `error` object when it cannot be read.
pub(crate) async fn table_status(state: &AppState, name: &str) -> Value {
    match table::summary(state.supervisor.catalog(), name).await {
        Ok(Some(summary)) => summary_json(&summary, &state.supervisor.catalog().kind()),
        Ok(None) => Value::Null,
        Err(error) => json!({ "name": name, "error": error.to_string() }),
    }
}

pub(crate) async fn list_tables(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let summaries = table::summaries(state.supervisor.catalog()).await.map_err(ApiError::internal)?;
    let kind = state.supervisor.catalog().kind();
    Ok(Json(json!({
        "warehouse": state.supervisor.catalog().warehouse(),
        "catalog": kind,
        "tables": summaries.iter().map(|summary| summary_json(summary, &kind)).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ShowParams {
    rows: Option<usize>,
}

pub(crate) async fn show_table(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<ShowParams>,
) -> Result<Json<Value>, ApiError> {
    let catalog = state.supervisor.catalog();
    // A name from the URL becomes a path under the warehouse only if it is a table's (`..%2F` is not).
    if !table::is_table_name(&name) {
        return Err(ApiError::not_found(format!("no table named `{}`", name.escape_debug())));
    }
    let not_found = || ApiError::not_found(format!("no table named `{name}`"));
    let summary = table::summary(catalog, &name).await.map_err(ApiError::internal)?.ok_or_else(not_found)?;
    let mut body = summary_json(&summary, &catalog.kind());
    if let Some((snapshots, schema)) = table::snapshots_and_schema(catalog, &name).await.map_err(ApiError::internal)? {
        let newest = snapshots.len().saturating_sub(MAX_SNAPSHOTS);
        body["snapshot_history"] = snapshots[newest..]
            .iter()
            .map(|snapshot| {
                json!({
                    "snapshot_id": snapshot.snapshot_id,
                    "committed_at": chrono::DateTime::from_timestamp_millis(snapshot.timestamp_ms).map(crate::api::time),
                    "operation": snapshot.operation,
                    "added_rows": snapshot.added_rows,
                    "added_files": snapshot.added_files,
                })
            })
            .collect();
        body["schema"] = schema
            .iter()
            .map(|field| json!({"id": field.id, "name": field.name, "type": field.field_type, "required": field.required}))
            .collect();
    }
    let wanted = params.rows.unwrap_or(0).min(MAX_ROWS);
    if wanted > 0 {
        let (_, batches) =
            table::current_rows(catalog, &name, wanted).await.map_err(ApiError::internal)?.ok_or_else(not_found)?;
        let mut writer = arrow_json::ArrayWriter::new(Vec::new());
        for batch in &batches {
            writer.write(batch).map_err(ApiError::internal)?;
        }
        writer.finish().map_err(ApiError::internal)?;
        let rows: Value = serde_json::from_slice(&writer.into_inner()).unwrap_or_else(|_| json!([]));
        body["sample"] = if rows.is_null() { json!([]) } else { rows };
    }
    Ok(Json(body))
}
