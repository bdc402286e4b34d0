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

/// `GET /api/v1/cluster`: the cluster's nodes (404 outside cluster mode).
pub(crate) async fn show_cluster(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(cluster) = state.supervisor.cluster() else {
        return Err(ApiError::not_found("this server is not in cluster mode (start it with --cluster NAME)"));
    };
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
                "this_node": node.id == cluster.config.node_id,
            })
        })
        .collect();
    Ok(Json(json!({ "cluster": cluster.config.name, "node_id": cluster.config.node_id, "nodes": nodes })))
}
