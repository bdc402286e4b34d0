//! Cluster mode's answers: each shard's lease in a source's status (owner,
//! address, epoch, lease age, checkpoint, lag), from any node, and the
//! cluster's nodes (`GET /api/v1/cluster`).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::DateTime;
use serde_json::{Value, json};
use tributary_cluster::{Lease, LeaseCheckpoint};

use crate::AppState;
use crate::errors::ApiError;

/// Each lease of source `name` with its age on this node's clock (when this node runs the source).
async fn leases_of(
    state: &AppState,
    cluster: &crate::cluster::Cluster,
    name: &str,
) -> Result<Vec<(Lease, Option<Duration>)>, ApiError> {
    if let Some(leases) = state.supervisor.leases(name) {
        let view = leases.view();
        if !view.leases.is_empty() {
            return Ok(view.leases.into_iter().map(|(lease, age)| (lease, Some(age))).collect());
        }
    }
    // Not run here (yet): the table as it is, without ages.
    Ok(cluster.lease_table(name).list().await?.into_iter().map(|lease| (lease, None)).collect())
}

fn checkpoint_json(checkpoint: &LeaseCheckpoint) -> Value {
    match checkpoint {
        LeaseCheckpoint::Sequence { sequence_number, sub_sequence } => {
            json!({ "sequence_number": sequence_number, "sub_sequence": sub_sequence })
        }
        LeaseCheckpoint::TrimHorizon => json!("TRIM_HORIZON"),
        LeaseCheckpoint::Latest => json!("LATEST"),
        LeaseCheckpoint::AtTimestamp => json!("AT_TIMESTAMP"),
        LeaseCheckpoint::ShardEnd => json!("SHARD_END"),
    }
}

/// Adds each shard's lease to a source's status body (`shards`, by id), and
/// a `cluster` summary; shards only the lease table knows are added.
pub(crate) async fn add_leases(state: &AppState, name: &str, body: &mut Value) -> Result<(), ApiError> {
    let Some(cluster) = state.supervisor.cluster() else { return Ok(()) };
    let leases = leases_of(state, cluster, name).await?;
    let Some(shards) = body["shards"].as_array_mut() else { return Ok(()) };
    for (lease, age) in &leases {
        let entry = match shards.iter().position(|shard| shard["shard_id"] == lease.key.as_str()) {
            Some(at) => &mut shards[at],
            None => {
                shards.push(json!({ "shard_id": lease.key, "state": "elsewhere" }));
                let last = shards.len() - 1;
                &mut shards[last]
            }
        };
        let report = lease.report.as_ref();
        entry["lease"] = json!({
            "owner": lease.owner,
            "owner_address": report.map(|report| report.owner_address.as_str()),
            "epoch": lease.epoch,
            "counter": lease.counter,
            "age_millis": age.map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
            "checkpoint": checkpoint_json(&lease.checkpoint),
            "lag_millis": report.map(|report| report.lag_millis),
            "records_per_second": report.map(|report| report.records_per_second),
        });
        if lease.checkpoint == LeaseCheckpoint::ShardEnd {
            entry["state"] = json!("finished");
        } else if entry["state"] == "waiting"
            && lease.owner.as_deref().is_some_and(|owner| owner != cluster.config.node_id)
        {
            entry["state"] = json!("elsewhere");
        }
    }
    shards.sort_by(|a, b| a["shard_id"].as_str().cmp(&b["shard_id"].as_str()));
    body["cluster"] = json!({
        "name": cluster.config.name,
        "node_id": cluster.config.node_id,
        "lag_millis": leases.iter().filter_map(|(lease, _)| lease.report.as_ref().map(|r| r.lag_millis)).max().unwrap_or(0),
    });
    Ok(())
}

/// A decimal sequence number's order: longer is larger, then digit by digit.
fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The records `version`'s rejected table holds as rejected now, and the table's name.
async fn read_rejected(
    state: &AppState,
    version: &tributary_store::StoredVersion,
) -> Result<(String, Vec<tributary_sink::table::RejectedRow>), ApiError> {
    let source = crate::supervisor::stored_source(version, state.supervisor.secret_policy())
        .map_err(|error| ApiError::BadRequest(format!("the source's definition: {error}")))?;
    let table = tributary_sink::table::rejected_table_name(&source.dataset.name);
    let read = tributary_sink::table::current_rows(state.supervisor.catalog(), &table, usize::MAX)
        .await
        .map_err(|error| ApiError::Unavailable(format!("reading {table}: {error}")))?;
    let batches = read.map(|(_, batches)| batches).unwrap_or_default();
    let rows = tributary_sink::table::rejected_rows(&batches).map_err(ApiError::internal)?;
    // A record's latest row is its state (a replay adds `REPLAYED` or a new reason).
    Ok((table, tributary_sink::table::current_rejections(rows)))
}

/// Cluster mode: the rows of the source's rejected table (of one reason, if given), for a replay's dry run.
pub(crate) async fn rejected_rows_of(
    state: &AppState,
    version: &tributary_store::StoredVersion,
    reason: Option<String>,
) -> Result<crate::replay_page::RejectedPage, ApiError> {
    let (_, rows) = read_rejected(state, version).await?;
    Ok(crate::replay_page::unlogged_page(
        rows.iter()
            .filter(|rejected| reason.as_ref().is_none_or(|reason| &rejected.row.reason == reason))
            .map(|rejected| &rejected.row),
    ))
}

/// Cluster mode's `/errors`: the source's rejected table, the error log every
/// node shares (a node's own log holds only what it rejected), newest batch
/// first. Pages end at a batch's edge; `before` and `next_before` are
/// rejection times in microseconds. The current snapshot is read whole.
pub(crate) async fn shared_errors(
    state: &AppState,
    version: &tributary_store::StoredVersion,
    params: crate::api::ErrorParams,
) -> Result<Json<Value>, ApiError> {
    let (table, rows) = read_rejected(state, version).await?;
    let filters = params.query(version.source.clone(), 0)?;
    let mut rows = newest_first(matching(rows, &filters, true));
    rows.retain(|rejected| params.before.is_none_or(|before| rejected.rejected_at.timestamp_micros() < before));
    let limit = params.limit.unwrap_or(50).clamp(1, 1000) as usize;
    let mut budget = crate::api::ERRORS_ANSWER_BYTES;
    let mut end = 0;
    // Whole batches (one rejection time) per page, so the cursor skips nothing.
    while end < rows.len() && end < limit && budget > 0 {
        let at = rows[end].rejected_at;
        while end < rows.len() && rows[end].rejected_at == at {
            budget = budget.saturating_sub(rows[end].row.payload.len() * 4 / 3 + rows[end].row.message.len() + 512);
            end += 1;
        }
    }
    let more = end < rows.len();
    rows.truncate(end);
    let next_before = more.then(|| rows.last().map(|row| row.rejected_at.timestamp_micros())).flatten();
    let errors: Vec<Value> = rows.iter().map(shared_error_json).collect();
    Ok(Json(json!({ "errors": errors, "next_before": next_before, "from": table })))
}

/// The rows of `rows` that `filters` admit (its reason only `with_reason`).
fn matching(
    rows: Vec<tributary_sink::table::RejectedRow>,
    filters: &tributary_store::ErrorQuery,
    with_reason: bool,
) -> Vec<tributary_sink::table::RejectedRow> {
    let admits = |rejected: &tributary_sink::table::RejectedRow| {
        let row = &rejected.row;
        (!with_reason || filters.reason.as_ref().is_none_or(|reason| &row.reason == reason))
            && filters.field.as_ref().is_none_or(|field| &row.field == field)
            && filters.shard_id.as_ref().is_none_or(|shard| &row.shard_id == shard)
            && filters.since.is_none_or(|since| rejected.rejected_at >= since)
            && filters.until.is_none_or(|until| rejected.rejected_at < until)
    };
    rows.into_iter().filter(admits).collect()
}

fn newest_first(mut rows: Vec<tributary_sink::table::RejectedRow>) -> Vec<tributary_sink::table::RejectedRow> {
    rows.sort_by(|a, b| {
        b.rejected_at
            .cmp(&a.rejected_at)
            .then_with(|| b.row.shard_id.cmp(&a.row.shard_id))
            .then_with(|| sequence_order(&b.row.sequence_number, &a.row.sequence_number))
            .then_with(|| b.row.sub_sequence.cmp(&a.row.sub_sequence))
    });
    rows
}

/// A row of the shared rejected table as `/errors` shows it.
fn shared_error_json(rejected: &tributary_sink::table::RejectedRow) -> Value {
    crate::console_api::rejected_row_json(None, None, &rejected.row, rejected.rejected_at)
}

/// Cluster mode's `/errors/summary`: the shared rejected table's rows, counted by reason.
pub(crate) async fn shared_summary(
    state: &AppState,
    version: &tributary_store::StoredVersion,
    params: &crate::api::ErrorParams,
) -> Result<Value, ApiError> {
    let (_, rows) = read_rejected(state, version).await?;
    let rows = matching(rows, &params.query(version.source.clone(), 0)?, false);
    let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for rejected in &rows {
        *counts.entry(rejected.row.reason.clone()).or_default() += 1;
    }
    let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let by_reason: Vec<Value> = counts.iter().map(|(reason, rows)| json!({"reason": reason, "rows": rows})).collect();
    Ok(json!({ "total": rows.len(), "by_reason": by_reason }))
}

/// Cluster mode's `/errors/export`: the shared rejected table's rows matching the filters, as NDJSON.
pub(crate) async fn shared_export(
    state: &AppState,
    version: &tributary_store::StoredVersion,
    params: &crate::api::ErrorParams,
) -> Result<Vec<u8>, ApiError> {
    let (_, rows) = read_rejected(state, version).await?;
    let rows = newest_first(matching(rows, &params.query(version.source.clone(), 0)?, true));
    let mut lines = Vec::new();
    for rejected in &rows {
        serde_json::to_writer(&mut lines, &shared_error_json(rejected)).map_err(ApiError::internal)?;
        lines.push(b'\n');
    }
    Ok(lines)
}

/// `GET /api/v1/cluster`: the cluster's nodes (404 outside cluster mode).
pub(crate) async fn show_cluster(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(cluster) = state.supervisor.cluster() else {
        return Err(ApiError::not_found("this server is not in cluster mode (start it with --cluster NAME)"));
    };
    // Wall clocks of two machines, for people only: a node is shown live if its
    // row is younger than three heartbeats here (leases decide nothing by it).
    let now = chrono::Utc::now().timestamp_micros();
    let stale_after = i64::try_from(cluster.config.heartbeat_every.as_micros() * 3).unwrap_or(i64::MAX);
    let nodes: Vec<Value> = cluster
        .nodes()
        .await?
        .into_iter()
        .map(|node| {
            let at = |micros: i64| DateTime::from_timestamp_micros(micros).map(|at| at.to_rfc3339());
            json!({
                "id": node.id,
                "address": node.address,
                "shards_held": node.shards_held,
                "last_heartbeat": at(node.heartbeat_at_micros),
                "started_at": at(node.started_at_micros),
                "live": now.saturating_sub(node.heartbeat_at_micros) < stale_after,
                "this_node": node.id == cluster.config.node_id,
            })
        })
        .collect();
    Ok(Json(json!({ "cluster": cluster.config.name, "node_id": cluster.config.node_id, "nodes": nodes })))
}
