//! How a worker gets its shards: every shard of the stream (one process),
//! or in cluster mode the shards whose leases this process holds, each
//! fenced in the table commit by the epoch its take raised. The worker sees
//! one seam, [`Assignment`], whichever it is.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tributary_cluster::{
    Coordinator, Held, LeaseCheckpoint, LeaseCounters, LeaseReport, LeaseTable, LeaseView, ShardProgress, ShardSpec,
};
use tributary_reader::catalog::{Catalog, CatalogConfig};
use tributary_reader::{ShardAdvance, ShardCheckpoint, SourceMetrics};

use crate::cluster::Cluster;

/// How often each node lists the stream's shards for leases to create
/// (KCL's shard sync, every 60 s by default). New shards come from a reshard,
/// which ends their parents; a node syncs at once when a shard it reads
/// ends, so this interval only bounds how late an unread parent's children
/// appear.
const SHARD_SYNC_EVERY: Duration = Duration::from_secs(30);

/// One source's leases on this node: the lease task, and the task that
/// creates leases for new shards. Lives as long as the source runs here,
/// across worker restarts, so a failing worker does not drop its leases.
pub(crate) struct SourceLeases {
    coordinator: Coordinator,
    shard_sync: JoinHandle<()>,
    /// Wakes the shard sync: a shard this node reads ended, so its children are listed now.
    shard_ended: Arc<Notify>,
    advertise: String,
}

impl SourceLeases {
    /// Creates the source's lease table if missing, and starts taking leases.
    pub(crate) async fn start(
        cluster: &Cluster,
        source: &str,
        kinesis: aws_sdk_kinesis::Client,
        stream_arn: String,
        root: LeaseCheckpoint,
    ) -> Result<SourceLeases, String> {
        let table = cluster.lease_table(source);
        table.ensure().await.map_err(|error| error.to_string())?;
        // The first node creates the leases before its first scan, so it does not wait a
        // round. A node joining a source others already read starts from their leases at
        // once and lists the shards in the background: ListShards can take seconds while
        // the stream is read hard, and a share left unowned for the failover time is taken
        // by the others (and then stolen back, its rows read twice).
        let existing: HashSet<String> =
            table.list().await.map_err(|error| error.to_string())?.into_iter().map(|lease| lease.key).collect();
        let mut calls = 1;
        if existing.is_empty() {
            let specs = list_shards(&kinesis, &stream_arn).await?;
            let (_, created_in) = table
                .sync_against(&specs, &root, &existing)
                .await
                .map_err(|error| format!("creating the shards' leases: {error}"))?;
            calls += created_in;
        }
        // The nodes as they are now, so a cluster starting together spreads without stealing.
        if let Err(error) = cluster.count_live_nodes().await {
            tracing::warn!(%error, "reading the nodes table failed; balancing by lease owners only");
        }
        let coordinator = Coordinator::start_among(table.clone(), cluster.config.leases, cluster.live_nodes());
        let counters = coordinator.shared_counters();
        counters.calls.fetch_add(calls, Ordering::Relaxed);
        let shard_ended = Arc::new(Notify::new());
        let sync = ShardSync { table, kinesis, stream_arn, root, view: coordinator.view_watch(), counters };
        let shard_sync = tokio::spawn(sync.run(Arc::clone(&shard_ended)));
        if !existing.is_empty() {
            // Shards new since the others' last sync get leases now, not in a sync interval.
            shard_ended.notify_one();
        }
        Ok(SourceLeases { coordinator, shard_sync, shard_ended, advertise: cluster.config.advertise.clone() })
    }

    /// The lease table as this node last scanned it.
    pub(crate) fn view(&self) -> LeaseView {
        self.coordinator.view()
    }

    /// Lease events so far.
    pub(crate) fn counters(&self) -> &LeaseCounters {
        self.coordinator.counters()
    }

    /// How many shards this node holds.
    pub(crate) fn held_count(&self) -> usize {
        self.coordinator.held().borrow().len()
    }

    /// Releases every lease (others take them at their next scan) and stops.
    pub(crate) async fn release(&self) {
        self.shard_sync.abort();
        if let Err(error) = self.coordinator.shutdown().await {
            tracing::warn!(%error, "releasing the leases failed; they move after the failover time");
        }
    }
}

/// Dropped without [`SourceLeases::release`] (its worker was abandoned): both
/// tasks stop, and the leases expire, or this node's next task takes them back.
impl Drop for SourceLeases {
    fn drop(&mut self) {
        self.shard_sync.abort();
    }
}

async fn list_shards(kinesis: &aws_sdk_kinesis::Client, stream_arn: &str) -> Result<Vec<ShardSpec>, String> {
    let catalog = Catalog::new(kinesis.clone(), CatalogConfig { attempts: 2, ..CatalogConfig::default() });
    let listed = catalog.list_shards(stream_arn).await.map_err(|error| format!("listing the shards: {error}"))?;
    Ok(listed
        .into_iter()
        .map(|shard| ShardSpec {
            shard_id: shard.shard_id,
            parent_shard_ids: shard.parents,
            hash_key_range: shard.hash_key_range,
        })
        .collect())
}

async fn sync_shards(
    table: &LeaseTable,
    kinesis: &aws_sdk_kinesis::Client,
    stream_arn: &str,
    root: &LeaseCheckpoint,
) -> Result<(usize, u64), String> {
    let specs = list_shards(kinesis, stream_arn).await?;
    table.sync(&specs, root).await.map_err(|error| format!("creating the new shards' leases: {error}"))
}

/// Keeps a lease for every shard of the stream, against the coordinator's
/// last scan (so a sync costs a ListShards, plus a transaction creating the new shards' leases).
struct ShardSync {
    table: LeaseTable,
    kinesis: aws_sdk_kinesis::Client,
    stream_arn: String,
    root: LeaseCheckpoint,
    view: watch::Receiver<LeaseView>,
    counters: Arc<LeaseCounters>,
}

impl ShardSync {
    async fn run(self, shard_ended: Arc<Notify>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(SHARD_SYNC_EVERY) => {}
                () = shard_ended.notified() => {}
            }
            match self.sync().await {
                Ok(0) => {}
                Ok(created) => tracing::info!(created, "created leases for the stream's new shards"),
                Err(error) => tracing::warn!(%error, "shard sync failed; trying again"),
            }
        }
    }

    async fn sync(&self) -> Result<usize, String> {
        let existing: HashSet<String> = self.view.borrow().leases.iter().map(|(lease, _)| lease.key.clone()).collect();
        let (created, calls) = if existing.is_empty() {
            // No scan yet: one of its own, rather than a refused create per shard.
            sync_shards(&self.table, &self.kinesis, &self.stream_arn, &self.root).await?
        } else {
            let specs = list_shards(&self.kinesis, &self.stream_arn).await?;
            self.table
                .sync_against(&specs, &self.root, &existing)
                .await
                .map_err(|error| format!("creating the new shards' leases: {error}"))?
        };
        self.counters.calls.fetch_add(calls, Ordering::Relaxed);
        Ok(created)
    }
}

/// The shards a worker reads and the fence its commits carry.
pub(crate) enum Assignment {
    /// One process: every shard, no fence.
    Every,
    /// Cluster mode: the shards this node held when the worker started, and
    /// the epoch of each; a change to what it holds restarts the worker.
    Leased {
        leases: Arc<SourceLeases>,
        held: watch::Receiver<Held>,
        epochs: HashMap<String, u64>,
        /// Each shard's record count at the last commit, for its rate.
        read_at: HashMap<String, (u64, Instant)>,
        /// Why this worker has read all it will of its shards, if it has.
        done: Option<String>,
    },
}

impl Assignment {
    /// Reads what `leases` holds now (and clears reports of shards it held before).
    pub(crate) fn leased(leases: Arc<SourceLeases>) -> Assignment {
        let mut held = leases.coordinator.held();
        let epochs: HashMap<String, u64> =
            held.borrow_and_update().iter().map(|(shard, epoch)| (shard.clone(), *epoch)).collect();
        leases.coordinator.report(Default::default());
        Assignment::Leased { leases, held, epochs, read_at: HashMap::new(), done: None }
    }

    /// The shards to read: `None` for every shard.
    pub(crate) fn shards(&self) -> Option<BTreeSet<String>> {
        match self {
            Assignment::Every => None,
            Assignment::Leased { epochs, .. } => Some(epochs.keys().cloned().collect()),
        }
    }

    /// What each commit must still hold in the table: `None` for no fence.
    pub(crate) fn fence(&self) -> Option<&HashMap<String, u64>> {
        match self {
            Assignment::Every => None,
            Assignment::Leased { epochs, .. } => Some(epochs),
        }
    }

    /// What this node holds, as it changes (`None` for [`Assignment::Every`]);
    /// the worker waits on it with [`held_changed`].
    pub(crate) fn watch(&self) -> Option<watch::Receiver<Held>> {
        match self {
            Assignment::Every => None,
            Assignment::Leased { held, .. } => Some(held.clone()),
        }
    }

    /// Whether this worker maintains the source's tables: in cluster mode only
    /// the holder of the first open shard does, so one node at a time
    /// compacts and expires (a second one's commit would be refused anyway).
    pub(crate) fn maintains(&self) -> bool {
        match self {
            Assignment::Every => true,
            Assignment::Leased { leases, epochs, .. } => leases
                .view()
                .leases
                .iter()
                .find(|(lease, _)| lease.checkpoint != LeaseCheckpoint::ShardEnd)
                .is_some_and(|(lease, _)| epochs.contains_key(&lease.key)),
        }
    }

    /// Cluster mode: says (with the next renewals) whether this worker has read
    /// all it will of its shards (`done`: why); `true` once every shard of the
    /// source is done, wherever it is read, so the source is finished.
    pub(crate) fn done_everywhere(&mut self, now_done: Option<String>) -> bool {
        let Assignment::Leased { leases, done, .. } = self else { return now_done.is_some() };
        if *done != now_done {
            leases.coordinator.mark_done(now_done.clone());
            *done = now_done;
        }
        // Not done here: not done everywhere (a node holding nothing learns of
        // the end from the definitions). This runs per batch; the view is a copy.
        if done.is_none() {
            return false;
        }
        let view = leases.view();
        let open: Vec<_> =
            view.leases.iter().filter(|(lease, _)| lease.checkpoint != LeaseCheckpoint::ShardEnd).collect();
        !open.is_empty()
            && open
                .iter()
                .all(|(lease, _)| lease.owner.is_some() && lease.report.as_ref().is_some_and(|r| r.done.is_some()))
    }

    /// Whether what `held` says now is not what the worker started with.
    pub(crate) fn moved(&self, held: &Option<watch::Receiver<Held>>) -> bool {
        match (self, held) {
            (Assignment::Leased { epochs, .. }, Some(held)) => {
                let now = held.borrow();
                now.len() != epochs.len() || now.iter().any(|(shard, epoch)| epochs.get(shard) != Some(epoch))
            }
            _ => false,
        }
    }

    /// The shards the worker started with that `held` no longer holds in the same epoch.
    pub(crate) fn lost(&self, held: &Option<watch::Receiver<Held>>) -> BTreeSet<String> {
        match (self, held) {
            (Assignment::Leased { epochs, .. }, Some(held)) => {
                let now = held.borrow();
                epochs
                    .iter()
                    .filter(|(shard, epoch)| now.get(*shard) != Some(*epoch))
                    .map(|(shard, _)| shard.clone())
                    .collect()
            }
            _ => BTreeSet::new(),
        }
    }

    /// After the claim: each held shard's checkpoint in the table, and this
    /// node's address, go to the lease table with the next renewals.
    pub(crate) fn claimed(&mut self, checkpoints: &HashMap<String, ShardCheckpoint>) {
        let Assignment::Leased { leases, epochs, done, .. } = self else { return };
        let progress = epochs
            .keys()
            .map(|shard| {
                let report = LeaseReport {
                    lag_millis: 0,
                    records_per_second: 0,
                    owner_address: leases.advertise.clone(),
                    done: done.clone(),
                };
                let checkpoint = checkpoints.get(shard).and_then(lease_checkpoint);
                (shard.clone(), ShardProgress { report, checkpoint })
            })
            .collect();
        leases.coordinator.report_some(progress);
    }

    /// After a commit: the committed checkpoints and the shards' lag go to
    /// the lease table with the next renewals.
    pub(crate) fn committed(&mut self, advances: &[ShardAdvance], metrics: &SourceMetrics) {
        let Assignment::Leased { leases, read_at, done, .. } = self else { return };
        if advances.iter().any(|advance| advance.to.finished) {
            leases.shard_ended.notify_one();
        }
        let shards = metrics.snapshot();
        let now = Instant::now();
        let progress = advances
            .iter()
            .map(|advance| {
                let shard = shards.get(advance.shard_id.as_str());
                let records = shard.map_or(0, |shard| shard.records);
                let rate = match read_at.insert(advance.shard_id.clone(), (records, now)) {
                    Some((before, at)) if now > at => {
                        (records.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64()) as u64
                    }
                    _ => 0,
                };
                let report = LeaseReport {
                    lag_millis: shard.map_or(0, |shard| u64::try_from(shard.millis_behind_latest).unwrap_or(0)),
                    records_per_second: rate,
                    owner_address: leases.advertise.clone(),
                    done: done.clone(),
                };
                let progress = ShardProgress { report, checkpoint: lease_checkpoint(&advance.to) };
                (advance.shard_id.clone(), progress)
            })
            .collect();
        leases.coordinator.report_some(progress);
    }
}

/// Resolves when `held` changes; never when there is nothing to watch.
pub(crate) async fn held_changed(held: &mut Option<watch::Receiver<Held>>) {
    let closed = match held {
        Some(receiver) => receiver.changed().await.is_err(),
        None => true,
    };
    if closed {
        std::future::pending::<()>().await;
    }
}

/// The table's checkpoint of a shard as KCL writes it in the lease.
fn lease_checkpoint(checkpoint: &ShardCheckpoint) -> Option<LeaseCheckpoint> {
    if checkpoint.finished {
        return Some(LeaseCheckpoint::ShardEnd);
    }
    checkpoint.position.as_ref().map(|position| LeaseCheckpoint::Sequence {
        sequence_number: position.sequence_number.to_string(),
        sub_sequence: position.sub_sequence.unwrap_or(0),
    })
}
