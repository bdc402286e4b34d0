//! Cluster mode's side of the server (DESIGN.md §10): the cluster's shared
//! definitions, which every node follows by polling, and this node's row in
//! the nodes table. The leases of each source are in `leases.rs`.
//!
//! A commit or delete on any node is appended to the shared definitions
//! table first (a conditional put: racing commits get one version each, in
//! order), then adopted by the local store, which is a cache; every node
//! polls the table every `poll_every` and runs what changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tributary_cluster::{
    Change, ClusterError, CoordinatorConfig, DefinitionsTable, LeaseTable, LiveNodes, Node, NodesTable, SharedVersion,
    changes,
};
use tributary_source::ClientFactory;
use tributary_store::{NewVersion, Store, StoredVersion};

use crate::ServerError;
use crate::supervisor::Supervisor;

/// How this process takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The cluster's name: its DynamoDB tables are `tributary-{name}-…`.
    pub name: String,
    /// This process's id (its leases' `leaseOwner`), unique per start.
    pub node_id: String,
    /// Where the other nodes and operators reach this process's API.
    pub advertise: String,
    /// Lease timing.
    pub leases: CoordinatorConfig,
    /// How often the shared definitions are read for changes.
    pub poll_every: Duration,
    /// How often this node's row in the nodes table is rewritten.
    pub heartbeat_every: Duration,
    /// How long a node's row stays after its heartbeat stopped without it
    /// leaving (a crash): shown as not live until then, then deleted.
    pub forget_nodes_after: Duration,
}

impl ClusterConfig {
    /// Defaults for cluster `name`, node `node_id`, reached at `advertise`.
    pub fn new(name: String, node_id: String, advertise: String) -> ClusterConfig {
        ClusterConfig {
            name,
            node_id,
            advertise,
            leases: CoordinatorConfig::default(),
            poll_every: Duration::from_secs(2),
            heartbeat_every: Duration::from_secs(5),
            forget_nodes_after: Duration::from_secs(15 * 60),
        }
    }
}

/// A node of a running cluster.
pub(crate) struct Cluster {
    pub(crate) config: ClusterConfig,
    dynamodb: aws_sdk_dynamodb::Client,
    definitions: DefinitionsTable,
    nodes: NodesTable,
    started_at_micros: i64,
    /// Heartbeats written so far (the row's counter).
    beats: AtomicU64,
    /// Which nodes are live, and how many (for balancing).
    live: parking_lot::Mutex<LiveNodes>,
    live_count: Arc<AtomicUsize>,
    /// The definitions' change counter at the last poll that brought this node up to date.
    followed_changes: parking_lot::Mutex<Option<u64>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("config", &self.config).finish_non_exhaustive()
    }
}

fn to_shared(version: &NewVersion, message: &str, now: DateTime<Utc>, deleted: bool) -> SharedVersion {
    SharedVersion {
        source: version.source.clone(),
        version: 0,
        definition: version.definition.clone(),
        stream_arn: version.stream_arn.clone(),
        start_at_micros: version.start_at.map(|at| at.timestamp_micros()),
        committed_at_micros: now.timestamp_micros(),
        message: message.to_owned(),
        deleted,
        finished_because: None,
    }
}

fn to_stored(shared: &SharedVersion) -> StoredVersion {
    StoredVersion {
        source: shared.source.clone(),
        version: shared.version,
        definition: shared.definition.clone(),
        stream_arn: shared.stream_arn.clone(),
        start_at: shared.start_at_micros.and_then(DateTime::from_timestamp_micros),
        committed_at: DateTime::from_timestamp_micros(shared.committed_at_micros).unwrap_or_default(),
        message: shared.message.clone(),
        finished_because: shared.finished_because.clone(),
    }
}

impl Cluster {
    /// Joins cluster `config.name`: creates its definitions and nodes tables if missing.
    pub(crate) async fn join(config: ClusterConfig, aws: &ClientFactory) -> Result<Cluster, ServerError> {
        let dynamodb = aws.dynamodb();
        let definitions = DefinitionsTable::new(dynamodb.clone(), DefinitionsTable::table_name(&config.name));
        let nodes = NodesTable::new(dynamodb.clone(), NodesTable::table_name(&config.name));
        let failed = |error: ClusterError| ServerError::Io(format!("--cluster {}: {error}", config.name));
        definitions.ensure().await.map_err(failed)?;
        nodes.ensure().await.map_err(failed)?;
        let started_at_micros = Utc::now().timestamp_micros();
        let live = parking_lot::Mutex::new(LiveNodes::new(config.heartbeat_every * 3));
        Ok(Cluster {
            config,
            dynamodb,
            definitions,
            nodes,
            started_at_micros,
            beats: AtomicU64::new(0),
            live,
            live_count: Arc::new(AtomicUsize::new(1)),
            followed_changes: parking_lot::Mutex::new(None),
        })
    }

    /// The lease table of `source`, as this node writes it.
    pub(crate) fn lease_table(&self, source: &str) -> LeaseTable {
        LeaseTable::new(
            self.dynamodb.clone(),
            LeaseTable::table_name(&self.config.name, source),
            self.config.node_id.clone(),
        )
    }

    /// Appends each version to the shared definitions (numbered there), in order.
    pub(crate) async fn append(
        &self,
        versions: &[NewVersion],
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<StoredVersion>, ClusterError> {
        let mut stored = Vec::with_capacity(versions.len());
        for version in versions {
            let shared = self.definitions.append(&to_shared(version, message, now, false)).await?;
            stored.push(to_stored(&shared));
        }
        Ok(stored)
    }

    /// Appends a version deleting `current`'s source.
    pub(crate) async fn delete(&self, current: &StoredVersion, now: DateTime<Utc>) -> Result<(), ClusterError> {
        let version = NewVersion {
            source: current.source.clone(),
            definition: current.definition.clone(),
            stream_arn: current.stream_arn.clone(),
            start_at: current.start_at,
        };
        self.definitions.append(&to_shared(&version, "deleted", now, true)).await.map(drop)
    }

    /// At start-up, before any worker runs: the local store takes the
    /// cluster's definitions (new versions, deletes), so the workers it
    /// starts are the cluster's.
    pub(crate) async fn adopt_definitions(&self, store: &Arc<Store>) -> Result<usize, String> {
        self.sync_definitions(store, None).await
    }

    /// Brings the local store and the workers to the cluster's definitions:
    /// runs new versions, stops deleted sources. Answers how many changed.
    /// Reads the versions only when the change counter moved since.
    pub(crate) async fn follow_definitions(
        &self,
        store: &Arc<Store>,
        supervisor: &Supervisor,
    ) -> Result<usize, String> {
        // Read before the versions, so a change landing in between is seen at the next poll.
        let count = self.definitions.change_count().await.map_err(|error| error.to_string())?;
        if count.is_some() && count == *self.followed_changes.lock() {
            return Ok(0);
        }
        // Not while a commit on this node is between its append and its start.
        let _serialized = supervisor.lock_commits().await;
        let changed = self.sync_definitions(store, Some(supervisor)).await?;
        *self.followed_changes.lock() = count;
        Ok(changed)
    }

    /// [`Cluster::follow_definitions`] without the commit lock (its caller holds it).
    pub(crate) async fn sync_definitions(
        &self,
        store: &Arc<Store>,
        supervisor: Option<&Supervisor>,
    ) -> Result<usize, String> {
        let heads = self.definitions.heads().await.map_err(|error| error.to_string())?;
        let reading = Arc::clone(store);
        let summaries = tokio::task::spawn_blocking(move || reading.sources())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let running: HashMap<String, u64> = summaries
            .iter()
            .filter(|summary| summary.deleted_at.is_none())
            .map(|summary| (summary.name.clone(), summary.current.version))
            .collect();
        let mut found = changes(&running, &heads);
        // A version this node runs that another node found finished: run it as finished (it stops).
        for summary in summaries.iter().filter(|summary| summary.deleted_at.is_none()) {
            let Some(head) = heads.get(&summary.name) else { continue };
            if head.version == summary.current.version
                && head.finished_because.is_some()
                && summary.current.finished_because.is_none()
            {
                found.push(Change::Run(head.clone()));
            }
        }
        for change in &found {
            match change {
                Change::Run(shared) => {
                    let version = to_stored(shared);
                    let adopting = (Arc::clone(store), version.clone());
                    tokio::task::spawn_blocking(move || {
                        let (store, version) = adopting;
                        store.adopt_version(&version)?;
                        match &version.finished_because {
                            Some(because) => store.mark_finished(&version.source, version.version, because, Utc::now()),
                            None => Ok(()),
                        }
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                    if let Some(supervisor) = supervisor {
                        tracing::info!(source = %version.source, version = version.version, "running the cluster's new version");
                        supervisor.apply(version).await;
                    }
                }
                Change::Stop(source) => {
                    let Some(summary) = summaries.iter().find(|summary| &summary.name == source) else { continue };
                    let deleting = (Arc::clone(store), source.clone());
                    tokio::task::spawn_blocking(move || deleting.0.delete_source(&deleting.1, Utc::now()))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    if let Some(supervisor) = supervisor {
                        tracing::info!(%source, "the cluster deleted the source; stopping it");
                        supervisor.retire(&summary.current).await;
                    }
                }
            }
        }
        Ok(found.len())
    }

    /// Records in the shared definitions that `version` finished (every node stops it at its next poll).
    pub(crate) async fn finish(&self, version: &StoredVersion, because: &str) -> Result<(), ClusterError> {
        self.definitions.finish(&version.source, version.version, because).await.map(drop)
    }

    /// Rewrites this node's row (address, shards held, heartbeat).
    pub(crate) async fn beat(&self, shards_held: u64) -> Result<(), ClusterError> {
        let node = Node {
            id: self.config.node_id.clone(),
            address: self.config.advertise.clone(),
            shards_held,
            heartbeat_at_micros: Utc::now().timestamp_micros(),
            started_at_micros: self.started_at_micros,
            counter: self.beats.fetch_add(1, Ordering::Relaxed) + 1,
        };
        self.nodes.beat(&node).await
    }

    /// How many nodes are live, as last counted (kept up to date by [`run_node`]).
    pub(crate) fn live_nodes(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.live_count)
    }

    /// Lists the nodes and counts the live ones (this one at least).
    pub(crate) async fn count_live_nodes(&self) -> Result<usize, ClusterError> {
        let nodes = self.nodes.list().await?;
        let live = self.live.lock().observe(&nodes, std::time::Instant::now(), Utc::now().timestamp_micros()).max(1);
        self.live_count.store(live, Ordering::Relaxed);
        Ok(live)
    }

    /// Deletes the rows of nodes whose heartbeat stood still for
    /// `forget_nodes_after` (crashed ones never leave); answers how many.
    pub(crate) async fn forget_gone_nodes(&self) -> Result<usize, ClusterError> {
        let gone = self.live.lock().gone_for(self.config.forget_nodes_after, std::time::Instant::now());
        let mut forgotten = 0;
        for (node_id, counter) in gone.iter().filter(|(node_id, _)| *node_id != self.config.node_id) {
            if self.nodes.forget(node_id, *counter).await? {
                tracing::info!(node = %node_id, "forgot a node whose heartbeat stopped long ago");
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// Removes this node's row (a clean shutdown).
    pub(crate) async fn leave(&self) -> Result<(), ClusterError> {
        self.nodes.leave(&self.config.node_id).await
    }

    /// Every node's row.
    pub(crate) async fn nodes(&self) -> Result<Vec<Node>, ClusterError> {
        self.nodes.list().await
    }
}

/// Follows the shared definitions and beats this node's heartbeat until the server stops.
pub(crate) async fn run_node(cluster: Arc<Cluster>, store: Arc<Store>, supervisor: Arc<Supervisor>) {
    let mut poll = tokio::time::interval(cluster.config.poll_every);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heartbeat = tokio::time::interval(cluster.config.heartbeat_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = poll.tick() => {
                if let Err(error) = cluster.follow_definitions(&store, &supervisor).await {
                    tracing::warn!(%error, "reading the cluster's definitions failed; trying again");
                }
            }
            _ = heartbeat.tick() => {
                if let Err(error) = cluster.beat(supervisor.shards_held() as u64).await {
                    tracing::warn!(%error, "writing this node's heartbeat failed");
                }
                if let Err(error) = cluster.count_live_nodes().await {
                    tracing::warn!(%error, "reading the nodes table failed");
                } else if let Err(error) = cluster.forget_gone_nodes().await {
                    tracing::warn!(%error, "deleting a long-gone node's row failed");
                }
            }
        }
    }
}
