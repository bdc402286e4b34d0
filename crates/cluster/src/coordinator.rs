//! One process's side of a source's lease table: a task that renews the
//! leases it holds, takes its share of the rest, and hands everything back
//! on a clean shutdown, publishing what it holds (shard → epoch) for the
//! worker to read.
//!
//! Timing follows KCL 2.x, with a faster scan: renewals every third of the
//! failover time; a scan (one consistent `Scan` of the table) every
//! `scan_every`, which is what bounds hand-over after a clean shutdown
//! (released leases are free at once) and adds to the failover time after a
//! crash (a lease is taken once its counter stood still that long).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{ClusterError, Lease, LeaseObserver, LeaseReport, LeaseTable, leases_to_take};

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

/// What the worker says of each shard it reads, published with the next renewal.
pub type Reports = BTreeMap<String, LeaseReport>;

/// A running coordinator.
#[derive(Debug)]
pub struct Coordinator {
    held: watch::Receiver<Held>,
    reports: watch::Sender<Reports>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ClusterError>>,
}

impl Coordinator {
    /// Starts renewing and taking leases of `table` (which must exist).
    pub fn start(table: LeaseTable, config: CoordinatorConfig) -> Coordinator {
        let (publish, held) = watch::channel(Held::new());
        let (reports, latest_reports) = watch::channel(Reports::new());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(table, config, publish, latest_reports, stopped));
        Coordinator { held, reports, stop, task }
    }

    /// Replaces what the next renewals publish of each shard (lag, rate, address).
    pub fn report(&self, reports: Reports) {
        self.reports.send_replace(reports);
    }

    /// What this process holds now, and every change to it.
    pub fn held(&self) -> watch::Receiver<Held> {
        self.held.clone()
    }

    /// Releases every lease this process holds (another process takes them
    /// at its next scan) and stops.
    pub async fn shutdown(self) -> Result<(), ClusterError> {
        let _ = self.stop.send(true);
        self.task.await.map_err(|error| ClusterError::Aws {
            call: "lease task",
            table: String::new(),
            detail: error.to_string(),
        })?
    }

    /// Stops at once without releasing anything, as a crash would: the
    /// leases go to other processes after the failover time.
    pub fn abort(self) {
        self.task.abort();
    }
}

fn publish_held(publish: &watch::Sender<Held>, held: &BTreeMap<String, Lease>) {
    let now: Held = held.iter().map(|(shard, lease)| (shard.clone(), lease.epoch)).collect();
    publish.send_if_modified(|current| {
        let changed = *current != now;
        if changed {
            *current = now;
        }
        changed
    });
}

async fn run(
    table: LeaseTable,
    config: CoordinatorConfig,
    publish: watch::Sender<Held>,
    reports: watch::Receiver<Reports>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), ClusterError> {
    let renew_every = config.failover / 3;
    let mut observer = LeaseObserver::new(config.failover);
    let mut held: BTreeMap<String, Lease> = BTreeMap::new();
    let mut next_renew = Instant::now() + renew_every;
    let mut next_scan = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = stopped.changed() => {
                for lease in std::mem::take(&mut held).into_values() {
                    // A lease lost meanwhile is no longer ours to release.
                    match table.release(&lease).await {
                        Ok(_) | Err(ClusterError::Lost { .. }) => {}
                        Err(error) => tracing::warn!(shard = %lease.key, %error, "releasing the lease failed"),
                    }
                }
                publish_held(&publish, &held);
                return Ok(());
            }
            () = tokio::time::sleep_until(next_renew) => {
                next_renew = Instant::now() + renew_every;
                let mut kept = BTreeMap::new();
                let reports = reports.borrow().clone();
                for (shard, lease) in std::mem::take(&mut held) {
                    match table.renew_reporting(&lease, reports.get(&shard)).await {
                        Ok(renewed) => { kept.insert(shard, renewed); }
                        Err(ClusterError::Lost { .. }) => tracing::info!(%shard, "lost the lease to another process"),
                        // DynamoDB did not answer: keep believing until the next renewal says otherwise.
                        Err(error) => {
                            tracing::warn!(%shard, %error, "renewing the lease failed");
                            kept.insert(shard, lease);
                        }
                    }
                }
                held = kept;
                publish_held(&publish, &held);
            }
            () = tokio::time::sleep_until(next_scan) => {
                next_scan = Instant::now() + config.scan_every;
                let leases = match table.list().await {
                    Ok(leases) => leases,
                    Err(error) => {
                        tracing::warn!(%error, "scanning the lease table failed");
                        continue;
                    }
                };
                let now = Instant::now().into_std();
                observer.observe(&leases, now);
                // Leases the table says another process holds now are not ours, whatever we thought.
                held.retain(|shard, _| leases.iter().any(|l| &l.key == shard && l.owner.as_deref() == Some(table.worker())));
                let expired = |lease: &Lease| observer.is_expired(lease, now);
                for candidate in leases_to_take(&leases, table.worker(), &expired, config.move_budget) {
                    match table.take(&candidate).await {
                        Ok(taken) => { held.insert(taken.key.clone(), taken); }
                        Err(ClusterError::Lost { .. }) => {}
                        Err(error) => tracing::warn!(shard = %candidate.key, %error, "taking the lease failed"),
                    }
                }
                publish_held(&publish, &held);
            }
        }
    }
}
