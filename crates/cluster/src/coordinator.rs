//! One process's side of a source's lease table: a task that renews the
//! leases it holds, takes its share of the rest, and hands everything back
//! on a clean shutdown, publishing what it holds (shard → epoch) for the
//! worker to read.
//!
//! Timing follows KCL 2.x, with a faster scan: renewals every third of the
//! failover time, up to 100 leases in one call (a transaction; KCL makes a
//! call per lease); a scan (one consistent `Scan` of the table) every
//! `scan_every`, which is what bounds hand-over after a clean shutdown
//! (released leases are free at once) and adds to the failover time after a
//! crash (a lease is taken once its counter stood still that long).
//!
//! The worker's progress reaches the table with the renewals: a shard's
//! committed checkpoint is mirrored into the lease (for operators; the table
//! commit is the truth), and a shard read to its end gets `SHARD_END` with
//! its children named, then is released, so the children's leases start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::table::TRANSACTION_ITEMS;
use crate::{
    ClusterError, ClusterHint, Lease, LeaseCheckpoint, LeaseObserver, LeaseReport, LeaseTable, Renewal,
    leases_to_take_among,
};

/// How a process paces its lease work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// A lease whose counter stood still this long has lost its owner (KCL's default is 10 s).
    pub failover: Duration,
    /// How often the table is scanned for leases to take.
    pub scan_every: Duration,
    /// Leases taken at most per scan.
    pub move_budget: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> CoordinatorConfig {
        CoordinatorConfig { failover: Duration::from_secs(10), scan_every: Duration::from_secs(2), move_budget: 4 }
    }
}

/// The shards a process holds, each with the epoch its take raised.
pub type Held = BTreeMap<String, u64>;

/// What the worker says of one shard it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardProgress {
    /// Published with the next renewal (lag, rate, address).
    pub report: LeaseReport,
    /// The shard's checkpoint in the last table commit, mirrored into the
    /// lease; `SHARD_END` once the shard was read to its end.
    pub checkpoint: Option<LeaseCheckpoint>,
}

/// What the worker says of each shard it reads.
pub type Reports = BTreeMap<String, ShardProgress>;

/// Lease events of one coordinator, for `/metrics`.
#[derive(Debug, Default)]
pub struct LeaseCounters {
    /// Leases taken (free, expired or stolen by the balancer).
    pub taken: AtomicU64,
    /// Leases found taken by another process.
    pub lost: AtomicU64,
    /// Renewals that went through.
    pub renewed: AtomicU64,
    /// Renewals DynamoDB did not answer (the lease is kept until one says it moved).
    pub renew_failures: AtomicU64,
    /// Scans of the lease table.
    pub scans: AtomicU64,
    /// Checkpoints mirrored into leases (and `SHARD_END`s written).
    pub checkpoints: AtomicU64,
    /// Calls to the lease table (a renewal of many leases together is one).
    pub calls: AtomicU64,
}

/// The lease table as a process last scanned it: each lease, and how long
/// ago this process saw its counter move (the lease's age, on this
/// process's monotonic clock).
#[derive(Debug, Clone, Default)]
pub struct LeaseView {
    /// The leases and their ages.
    pub leases: Vec<(Lease, Duration)>,
}

/// A running coordinator.
#[derive(Debug)]
pub struct Coordinator {
    held: watch::Receiver<Held>,
    view: watch::Receiver<LeaseView>,
    reports: watch::Sender<Reports>,
    counters: Arc<LeaseCounters>,
    stop: watch::Sender<bool>,
    /// Taken by the first shutdown.
    task: std::sync::Mutex<Option<JoinHandle<Result<(), ClusterError>>>>,
}

impl Coordinator {
    /// Starts renewing and taking leases of `table` (which must exist).
    pub fn start(table: LeaseTable, config: CoordinatorConfig) -> Coordinator {
        Coordinator::start_among(table, config, Arc::new(AtomicUsize::new(0)))
    }

    /// [`Coordinator::start`] in a cluster whose live processes `nodes` counts
    /// (kept up to date by the caller; 0: unknown), so processes starting
    /// together each take their share of the free leases.
    pub fn start_among(table: LeaseTable, config: CoordinatorConfig, nodes: Arc<AtomicUsize>) -> Coordinator {
        let (publish, held) = watch::channel(Held::new());
        let (publish_view, view) = watch::channel(LeaseView::default());
        let (reports, latest_reports) = watch::channel(Reports::new());
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(LeaseCounters::default());
        let lease_task = LeaseTask {
            table,
            config,
            publish,
            publish_view,
            reports: latest_reports,
            counters: Arc::clone(&counters),
            observer: LeaseObserver::new(config.failover),
            held: BTreeMap::new(),
            last_scan: Vec::new(),
            nodes,
        };
        let task = std::sync::Mutex::new(Some(tokio::spawn(lease_task.run(stopped))));
        Coordinator { held, view, reports, counters, stop, task }
    }

    /// Replaces what the next renewals publish of each shard.
    pub fn report(&self, reports: Reports) {
        self.reports.send_replace(reports);
    }

    /// Updates what the next renewals publish of the shards in `progress`.
    pub fn report_some(&self, progress: Reports) {
        self.reports.send_modify(|reports| reports.extend(progress));
    }

    /// Sets `done` in what the next renewals publish of every shard reported.
    pub fn mark_done(&self, done: Option<String>) {
        self.reports.send_modify(|reports| {
            reports.values_mut().for_each(|progress| progress.report.done.clone_from(&done));
        });
    }

    /// What this process holds now, and every change to it.
    pub fn held(&self) -> watch::Receiver<Held> {
        self.held.clone()
    }

    /// The table as last scanned.
    pub fn view(&self) -> LeaseView {
        self.view.borrow().clone()
    }

    /// The view as each scan replaces it, for a task to read without copying.
    pub fn view_watch(&self) -> watch::Receiver<LeaseView> {
        self.view.clone()
    }

    /// Lease events so far.
    pub fn counters(&self) -> &LeaseCounters {
        &self.counters
    }

    /// The counters, for another task that calls the lease table (shard sync) to count into.
    pub fn shared_counters(&self) -> Arc<LeaseCounters> {
        Arc::clone(&self.counters)
    }

    /// Releases every lease this process holds (another process takes them
    /// at its next scan) and stops; later calls find it stopped.
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        let _ = self.stop.send(true);
        let Some(task) = self.task.lock().ok().and_then(|mut task| task.take()) else { return Ok(()) };
        task.await.map_err(|error| ClusterError::Aws {
            call: "lease task",
            table: String::new(),
            detail: error.to_string(),
        })?
    }

    /// Stops at once without releasing anything, as a crash would: the
    /// leases go to other processes after the failover time.
    pub fn abort(self) {
        drop(self);
    }
}

/// A coordinator dropped without [`Coordinator::shutdown`] stops as
/// [`Coordinator::abort`] does: no lease is renewed by a task nobody owns.
impl Drop for Coordinator {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut task| task.take()) {
            task.abort();
        }
    }
}

struct LeaseTask {
    table: LeaseTable,
    config: CoordinatorConfig,
    publish: watch::Sender<Held>,
    publish_view: watch::Sender<LeaseView>,
    reports: watch::Receiver<Reports>,
    counters: Arc<LeaseCounters>,
    observer: LeaseObserver,
    held: BTreeMap<String, Lease>,
    /// The leases of the last scan (for the children of a shard that ended).
    last_scan: Vec<Lease>,
    /// How many processes the cluster has live (0: unknown).
    nodes: Arc<AtomicUsize>,
}

impl LeaseTask {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) -> Result<(), ClusterError> {
        let renew_every = self.config.failover / 3;
        let mut next_renew = Instant::now() + renew_every;
        let mut next_scan = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = stopped.changed() => {
                    self.release_all().await;
                    return Ok(());
                }
                () = tokio::time::sleep_until(next_renew) => {
                    next_renew = Instant::now() + renew_every;
                    self.renew_all().await;
                }
                () = tokio::time::sleep_until(next_scan) => {
                    next_scan = Instant::now() + self.config.scan_every;
                    self.scan().await;
                }
            }
            self.publish_held();
        }
    }

    fn publish_held(&self) {
        let now: Held = self.held.iter().map(|(shard, lease)| (shard.clone(), lease.epoch)).collect();
        self.publish.send_if_modified(|current| {
            let changed = *current != now;
            if changed {
                *current = now;
            }
            changed
        });
    }

    async fn release_all(&mut self) {
        for lease in std::mem::take(&mut self.held).into_values() {
            // A lease lost meanwhile is no longer ours to release.
            match self.table.release(&lease).await {
                Ok(_) | Err(ClusterError::Lost { .. }) => {}
                Err(error) => tracing::warn!(shard = %lease.key, %error, "releasing the lease failed"),
            }
        }
        self.publish_held();
    }

    async fn renew_all(&mut self) {
        let reports = self.reports.borrow().clone();
        let held = std::mem::take(&mut self.held);
        // A shard read to its end is written and released on its own; the rest are renewed together.
        let (ending, renewing): (Vec<_>, Vec<_>) = held.into_iter().partition(|(shard, _)| {
            reports.get(shard).and_then(|progress| progress.checkpoint.as_ref()) == Some(&LeaseCheckpoint::ShardEnd)
        });
        for (shard, lease) in ending {
            let outcome = self.end(&lease).await;
            self.settle(shard, lease, outcome);
        }
        if renewing.is_empty() {
            return;
        }
        let renewals: Vec<Renewal<'_>> = renewing
            .iter()
            .map(|(shard, lease)| {
                let progress = reports.get(shard);
                let checkpoint = progress.and_then(|p| p.checkpoint.as_ref()).filter(|c| **c != lease.checkpoint);
                Renewal { lease, report: progress.map(|p| &p.report), checkpoint }
            })
            .collect();
        let moved = renewals.iter().filter(|renewal| renewal.checkpoint.is_some()).count();
        self.counters.checkpoints.fetch_add(moved as u64, Ordering::Relaxed);
        self.counters.calls.fetch_add(renewals.len().div_ceil(TRANSACTION_ITEMS) as u64, Ordering::Relaxed);
        let together = self.table.renew_together(&renewals).await;
        drop(renewals);
        match together {
            Ok(outcomes) => {
                for (chunk, outcome) in renewing.chunks(TRANSACTION_ITEMS).zip(outcomes) {
                    match outcome {
                        Some(renewed) => {
                            self.counters.renewed.fetch_add(renewed.len() as u64, Ordering::Relaxed);
                            for lease in renewed {
                                self.held.insert(lease.key.clone(), lease);
                            }
                        }
                        // Some lease of the chunk moved: one by one, to learn which.
                        None => {
                            for (shard, lease) in chunk {
                                let outcome = self.renew_one(lease, reports.get(shard)).await.map(Some);
                                self.settle(shard.clone(), lease.clone(), outcome);
                            }
                        }
                    }
                }
            }
            Err(error) => {
                // DynamoDB did not answer: keep believing until a renewal says otherwise.
                tracing::warn!(%error, leases = renewing.len(), "renewing the leases failed");
                self.counters.renew_failures.fetch_add(renewing.len() as u64, Ordering::Relaxed);
                self.held.extend(renewing);
            }
        }
    }

    /// Records what one lease's renewal (or end) came to.
    fn settle(&mut self, shard: String, lease: Lease, outcome: Result<Option<Lease>, ClusterError>) {
        match outcome {
            Ok(Some(renewed)) => {
                self.counters.renewed.fetch_add(1, Ordering::Relaxed);
                self.held.insert(shard, renewed);
            }
            // Read to its end and released: its children's leases may start.
            Ok(None) => tracing::info!(%shard, "the shard was read to its end; released its lease"),
            Err(ClusterError::Lost { .. }) => {
                self.counters.lost.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%shard, "lost the lease to another process");
            }
            // DynamoDB did not answer: keep believing until the next renewal says otherwise.
            Err(error) => {
                self.counters.renew_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%shard, %error, "renewing the lease failed");
                self.held.insert(shard, lease);
            }
        }
    }

    /// One lease's renewal (with its report, and a checkpoint that moved), on its own.
    async fn renew_one(&self, lease: &Lease, progress: Option<&ShardProgress>) -> Result<Lease, ClusterError> {
        let checkpoint = progress.and_then(|p| p.checkpoint.as_ref()).filter(|c| **c != lease.checkpoint);
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let renewal = Renewal { lease, report: progress.map(|p| &p.report), checkpoint };
        match self.table.renew_together(std::slice::from_ref(&renewal)).await?.pop().flatten() {
            Some(mut renewed) => Ok(renewed.pop().unwrap_or_else(|| lease.clone())),
            None => Err(ClusterError::Lost { key: lease.key.clone() }),
        }
    }

    /// A shard read to its end: `SHARD_END` naming its children, then released
    /// (`None`); only renewed while no scan has shown the children's leases yet.
    async fn end(&self, lease: &Lease) -> Result<Option<Lease>, ClusterError> {
        let children: Vec<String> = self
            .last_scan
            .iter()
            .filter(|child| child.parent_shard_ids.contains(&lease.key))
            .map(|child| child.key.clone())
            .collect();
        // A shard closes by a reshard, whose children the shard sync soon gives leases:
        // until a scan shows them, the lease is only renewed, so SHARD_END names them.
        if children.is_empty() {
            self.counters.calls.fetch_add(1, Ordering::Relaxed);
            return self.table.renew(lease).await.map(Some);
        }
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.counters.calls.fetch_add(2, Ordering::Relaxed);
        let ended = self.table.end_shard(lease, &children).await?;
        self.table.release(&ended).await?;
        Ok(None)
    }

    async fn scan(&mut self) {
        self.counters.scans.fetch_add(1, Ordering::Relaxed);
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let leases = match self.table.list().await {
            Ok(leases) => leases,
            Err(error) => {
                tracing::warn!(%error, "scanning the lease table failed");
                return;
            }
        };
        let now = Instant::now().into_std();
        self.observer.observe(&leases, now);
        let me = self.table.worker().to_owned();
        // Leases the table says another process holds now are not ours, whatever we thought.
        let before = self.held.len();
        self.held.retain(|shard, _| leases.iter().any(|l| &l.key == shard && l.owner.as_deref() == Some(me.as_str())));
        self.counters.lost.fetch_add((before - self.held.len()) as u64, Ordering::Relaxed);
        // Leases in this process's name that this task does not hold: an earlier
        // task's of this process (stopped without releasing), or a take whose
        // answer was lost. Nobody else renews them; taken back at once.
        let orphans: Vec<Lease> = leases
            .iter()
            .filter(|lease| lease.owner.as_deref() == Some(me.as_str()) && !self.held.contains_key(&lease.key))
            .filter(|lease| lease.checkpoint != LeaseCheckpoint::ShardEnd)
            .cloned()
            .collect();
        let observer = &self.observer;
        let expired = |lease: &Lease| observer.is_expired(lease, now);
        // Free for a whole failover time: a process counted live is not coming for it.
        let long_free = |lease: &Lease| observer.age(lease, now) >= self.config.failover;
        let hint = ClusterHint { nodes: self.nodes.load(Ordering::Relaxed), long_free: &long_free };
        let balanced = leases_to_take_among(&leases, &me, &expired, self.config.move_budget, hint);
        let candidates: Vec<Lease> = orphans.into_iter().chain(balanced).collect();
        let (outcomes, calls) = self.table.take_together(&candidates).await;
        self.counters.calls.fetch_add(calls, Ordering::Relaxed);
        for (candidate, outcome) in candidates.iter().zip(outcomes) {
            match outcome {
                Ok(taken) => {
                    self.counters.taken.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(shard = %taken.key, epoch = taken.epoch, from = ?candidate.owner, "took the lease");
                    self.held.insert(taken.key.clone(), taken);
                }
                Err(ClusterError::Lost { .. }) => {}
                Err(error) => tracing::warn!(shard = %candidate.key, %error, "taking the lease failed"),
            }
        }
        let view = leases.iter().map(|lease| (lease.clone(), self.observer.age(lease, now))).collect();
        self.publish_view.send_replace(LeaseView { leases: view });
        self.last_scan = leases;
    }
}
