//! One worker per committed source: started at boot and on commit, replaced
//! by a new version without a server restart, stopped on delete, restarted
//! with backoff when it fails.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_kinesis::error::DisplayErrorContext;
use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tributary_cluster::LeaseCheckpoint;
use tributary_proto::v1::SourceDefinition;
use tributary_sink::table::TableCatalog;
use tributary_source::{AssumeRole, ClientFactory, Consumer, SecretPolicy, Source};
use tributary_store::{ErrorRetention, Store, StoreError, StoredVersion};

use crate::cluster::Cluster;
use crate::failure::WorkerError;
use crate::leases::{Assignment, SourceLeases};
use crate::status::WorkerStatus;
use crate::worker::{self, Ended, FlushPolicy, Job, WorkerContext, WorkerSettings};

/// Bound on the call that deregisters a stream consumer no source reads through any more.
const DEREGISTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct RunningWorker {
    stop: watch::Sender<bool>,
    /// Ends `true` once the worker committed what it held, `false` if it could not.
    task: JoinHandle<bool>,
    status: Arc<WorkerStatus>,
    /// The stream consumer it reads through (enhanced fan-out), if any.
    consumer: Option<StreamConsumer>,
}

/// A registered stream consumer and what reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamConsumer {
    stream_arn: String,
    name: String,
    region: String,
    role: Option<AssumeRole>,
}

impl StreamConsumer {
    /// The consumer `version` reads through, when it uses enhanced fan-out.
    fn of(version: &StoredVersion, policy: &SecretPolicy) -> Option<StreamConsumer> {
        let source = stored_source(version, policy).ok()?;
        let Consumer::EnhancedFanOut { consumer_name } = &source.kinesis.consumer else { return None };
        Some(StreamConsumer {
            stream_arn: source.kinesis.stream_arn.to_string(),
            name: consumer_name.clone(),
            region: source.kinesis.stream_arn.region().to_owned(),
            role: source.kinesis.role.clone(),
        })
    }

    /// Same consumer on the same stream: credentials do not make it another one.
    fn is(&self, other: &StreamConsumer) -> bool {
        (&self.stream_arn, &self.name) == (&other.stream_arn, &other.name)
    }
}

/// Runs the workers.
pub struct Supervisor {
    context: Arc<WorkerContext>,
    workers: tokio::sync::Mutex<HashMap<String, RunningWorker>>,
    statuses: parking_lot::Mutex<HashMap<String, Arc<WorkerStatus>>>,
    /// Held from a commit's last checks to its workers' start, so two commits
    /// cannot both pass the one-writer-per-dataset check.
    commits: Arc<tokio::sync::Mutex<()>>,
    /// Cluster mode: each running source's leases on this node.
    leases: LeaseRegistry,
    /// The console's charts: every source's lag and rates over the last hours.
    history: Arc<crate::history::History>,
}

/// Each running source's leases on this node (cluster mode).
type LeaseRegistry = Arc<parking_lot::Mutex<HashMap<String, Arc<SourceLeases>>>>;

/// Reads a stored version back into a validated source, under the server's
/// secret policy (a prefix narrowed since the commit stops the source).
pub(crate) fn stored_source(version: &StoredVersion, policy: &SecretPolicy) -> Result<Source, String> {
    let definition: SourceDefinition = serde_json::from_str(&version.definition)
        .map_err(|error| format!("stored definition does not parse: {error}"))?;
    let mut sources = tributary_source::validate_commit_with(&[definition], Utc::now(), policy)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))?;
    sources.pop().ok_or_else(|| "stored definition holds no source".to_owned())
}

impl Supervisor {
    /// A supervisor with no workers yet.
    pub fn new(
        store: Arc<Store>,
        data_dir: PathBuf,
        aws: ClientFactory,
        settings: WorkerSettings,
        catalog: TableCatalog,
    ) -> Supervisor {
        Supervisor::of_node(store, data_dir, aws, settings, catalog, None)
    }

    /// [`Supervisor::new`], in cluster mode a node of `cluster`.
    pub(crate) fn of_node(
        store: Arc<Store>,
        data_dir: PathBuf,
        aws: ClientFactory,
        settings: WorkerSettings,
        catalog: TableCatalog,
        cluster: Option<Arc<Cluster>>,
    ) -> Supervisor {
        Supervisor {
            history: Arc::new(crate::history::History::new(settings.history_interval)),
            context: Arc::new(WorkerContext {
                store,
                data_dir,
                aws,
                settings,
                catalog,
                cluster,
                replays: Default::default(),
            }),
            workers: tokio::sync::Mutex::new(HashMap::new()),
            statuses: parking_lot::Mutex::new(HashMap::new()),
            commits: Arc::new(tokio::sync::Mutex::new(())),
            leases: LeaseRegistry::default(),
        }
    }

    /// The lag and rates of every source over the last hours.
    pub(crate) fn history(&self) -> &Arc<crate::history::History> {
        &self.history
    }

    /// What every worker shares.
    pub(crate) fn context(&self) -> &WorkerContext {
        &self.context
    }

    /// The cluster this process is a node of, in cluster mode.
    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.context.cluster.as_ref()
    }

    /// Source `name`'s leases on this node (cluster mode, while it runs here).
    pub(crate) fn leases(&self, name: &str) -> Option<Arc<SourceLeases>> {
        self.leases.lock().get(name).cloned()
    }

    /// Every running source's leases on this node, by source.
    pub(crate) fn all_leases(&self) -> Vec<(String, Arc<SourceLeases>)> {
        let mut all: Vec<_> =
            self.leases.lock().iter().map(|(name, leases)| (name.clone(), Arc::clone(leases))).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Drops what a stopped worker left of its leases: nothing after a clean
    /// stop (it released them), the running lease task after an abandoned one.
    fn forget_leases(&self, name: &str) {
        self.leases.lock().remove(name);
    }

    /// How many shards this node holds, over every source.
    pub(crate) fn shards_held(&self) -> usize {
        self.leases.lock().values().map(|leases| leases.held_count()).sum()
    }

    /// The catalog of the datasets' Iceberg tables.
    pub(crate) fn catalog(&self) -> &TableCatalog {
        &self.context.catalog
    }

    /// The commit lock (see the field); owned, so a spawned task can hold it.
    pub(crate) async fn lock_commits(&self) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(&self.commits).lock_owned().await
    }

    /// Which environment variables definitions may name as secrets.
    pub fn secret_policy(&self) -> &SecretPolicy {
        &self.context.settings.secret_policy
    }

    /// Where dataset `name`'s files are written.
    pub fn dataset_dir(&self, name: &str) -> PathBuf {
        self.context.data_dir.join("datasets").join(name)
    }

    /// Starts a worker for every source that is committed and not deleted.
    pub async fn start_committed(&self) -> Result<(), StoreError> {
        for summary in self.context.store.sources()? {
            if summary.deleted_at.is_none() {
                self.apply(summary.current).await;
            }
        }
        Ok(())
    }

    /// Runs `version` of its source, replacing the worker of an older version
    /// (which first flushes and commits what it holds).
    ///
    /// A stream consumer the older version read through and the new one does
    /// not (polling now, another consumer or another stream) is deregistered.
    pub async fn apply(&self, version: StoredVersion) {
        let name = version.source.clone();
        let consumer = StreamConsumer::of(&version, &self.context.settings.secret_policy);
        let mut workers = self.workers.lock().await;
        let mut abandoned = None;
        if let Some(mut previous) = workers.remove(&name) {
            abandoned = previous.consumer.take().filter(|old| !consumer.as_ref().is_some_and(|new| new.is(old)));
            let _ = stop_worker(previous).await;
            self.forget_leases(&name);
        }
        let status = Arc::new(WorkerStatus::new(version.version));
        self.statuses.lock().insert(name.clone(), Arc::clone(&status));
        let (stop, stopped) = watch::channel(false);
        let task = match stored_source(&version, &self.context.settings.secret_policy) {
            // Finished before a restart: it stays finished (a new version starts it again).
            Ok(_) if version.finished_because.is_some() => {
                status.finished(version.finished_because.clone().unwrap_or_default());
                tokio::spawn(async { true })
            }
            Ok(source) => {
                let settings = &self.context.settings;
                let job = Job {
                    flush: source_flush_policy(&source, settings.flush),
                    retention: source_retention(&source, settings.error_retention),
                    version,
                    source,
                };
                let leases = Arc::clone(&self.leases);
                tokio::spawn(supervise(Arc::clone(&self.context), job, Arc::clone(&status), stopped, leases))
            }
            Err(error) => {
                // Not started again until a new version is committed.
                status.failed(&WorkerError::permanent("INVALID_DEFINITION", error), None);
                tokio::spawn(async { true })
            }
        };
        workers.insert(name.clone(), RunningWorker { stop, task, status, consumer });
        drop(workers);
        if let Some(abandoned) = abandoned {
            self.deregister(&name, &abandoned).await;
        }
    }

    /// Stops a source's worker (it flushes and commits first).
    pub async fn stop(&self, name: &str) {
        let worker = self.workers.lock().await.remove(name);
        if let Some(worker) = worker {
            let _ = stop_worker(worker).await;
            self.forget_leases(name);
        }
    }

    /// Stops a deleted source's worker and deregisters the stream consumer it
    /// read through (enhanced fan-out), which would otherwise stay registered,
    /// and billed, after the source is gone. A failure is logged, not fatal:
    /// the source is deleted either way.
    pub async fn retire(&self, version: &StoredVersion) {
        self.stop(&version.source).await;
        if let Some(consumer) = StreamConsumer::of(version, &self.context.settings.secret_policy) {
            self.deregister(&version.source, &consumer).await;
        }
    }

    /// Deregisters `consumer`, which `source` no longer reads through. A
    /// failure is logged, not fatal: the consumer can be deregistered by hand.
    async fn deregister(&self, source: &str, consumer: &StreamConsumer) {
        let credentials = match &consumer.role {
            Some(role) => Some(self.context.aws.role_credentials(role, &consumer.region).await),
            None => None,
        };
        let client = self.context.aws.kinesis(&consumer.region, credentials);
        let call =
            client.deregister_stream_consumer().stream_arn(&consumer.stream_arn).consumer_name(&consumer.name).send();
        let name = &consumer.name;
        match tokio::time::timeout(DEREGISTER_TIMEOUT, call).await {
            Ok(Ok(_)) => tracing::info!(source, consumer = %name, "deregistered the stream consumer"),
            Ok(Err(error)) => tracing::warn!(
                source,
                consumer = %name,
                error = %DisplayErrorContext(&error),
                "could not deregister the stream consumer; deregister it by hand"
            ),
            Err(_) => tracing::warn!(
                source,
                consumer = %name,
                "deregistering the stream consumer timed out; deregister it by hand"
            ),
        }
    }

    /// Stops every worker, each flushing and committing first; how many could
    /// not (within [`STOP_WITHIN`]): they read it again from their checkpoints.
    pub async fn stop_all(&self) -> usize {
        let workers: Vec<RunningWorker> = self.workers.lock().await.drain().map(|(_, worker)| worker).collect();
        for worker in &workers {
            let _ = worker.stop.send(true);
        }
        // Together, so the bound is the server's, not each worker's in turn.
        let committed = futures_util::future::join_all(workers.into_iter().map(join_stopped)).await;
        self.leases.lock().clear();
        committed.into_iter().filter(|committed| !committed).count()
    }

    pub(crate) fn status(&self, name: &str) -> Option<Arc<WorkerStatus>> {
        self.statuses.lock().get(name).cloned()
    }

    pub(crate) fn statuses(&self) -> Vec<(String, Arc<WorkerStatus>)> {
        let mut all: Vec<_> =
            self.statuses.lock().iter().map(|(name, status)| (name.clone(), Arc::clone(status))).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// Before a worker whose shard moved starts again on what this node still holds.
const LEASE_MOVED_PAUSE: std::time::Duration = std::time::Duration::from_millis(300);

/// How long a worker has to flush and commit what it holds once told to stop.
pub(crate) const STOP_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

async fn stop_worker(worker: RunningWorker) -> bool {
    let _ = worker.stop.send(true);
    join_stopped(worker).await
}

/// Waits for a worker told to stop, at most [`STOP_WITHIN`], then abandons
/// it; `true` when it committed what it held. Whatever it did not is read
/// again from its checkpoints on the next start.
async fn join_stopped(mut worker: RunningWorker) -> bool {
    let committed = match tokio::time::timeout(STOP_WITHIN, &mut worker.task).await {
        Ok(Ok(committed)) => committed,
        Ok(Err(_panicked_or_aborted)) => false,
        Err(_elapsed) => {
            worker.task.abort();
            tracing::warn!(
                "a worker did not stop within {STOP_WITHIN:?}; abandoned (what it held is read again from its checkpoints)"
            );
            false
        }
    };
    worker.status.stopped();
    committed
}

fn source_flush_policy(source: &Source, defaults: FlushPolicy) -> FlushPolicy {
    let ingest = &source.ingest;
    let size = |value: Option<u64>, default: usize| value.map_or(default, |v| usize::try_from(v).unwrap_or(usize::MAX));
    FlushPolicy {
        max_rows: size(ingest.flush_rows, defaults.max_rows),
        max_bytes: size(ingest.flush_bytes, defaults.max_bytes),
        max_interval: ingest.flush_interval.unwrap_or(defaults.max_interval),
    }
}

fn source_retention(source: &Source, defaults: ErrorRetention) -> ErrorRetention {
    ErrorRetention {
        max_rows: source.ingest.error_log_max_rows.unwrap_or(defaults.max_rows),
        max_age: source.ingest.error_log_max_age.unwrap_or(defaults.max_age),
    }
}

/// Runs the worker, restarting it with backoff until it is told to stop;
/// in cluster mode it first joins the source's leases, and releases them
/// once the worker stopped (after its last commit), so another node takes
/// its shards at once.
async fn supervise(
    context: Arc<WorkerContext>,
    job: Job,
    status: Arc<WorkerStatus>,
    stop: watch::Receiver<bool>,
    registry: LeaseRegistry,
) -> bool {
    let mut leases = None;
    let committed = supervise_worker(&context, &job, &status, stop, &mut leases, &registry).await;
    if let Some(leases) = leases {
        registry.lock().remove(&job.source.name);
        leases.release().await;
    }
    committed
}

/// Starts the source's leases on this node.
async fn start_leases(context: &WorkerContext, cluster: &Cluster, job: &Job) -> Result<SourceLeases, WorkerError> {
    let source = &job.source;
    let credentials = match &source.kinesis.role {
        Some(role) => Some(context.aws.role_credentials(role, source.kinesis.stream_arn.region()).await),
        None => None,
    };
    let kinesis = context.aws.kinesis(source.kinesis.stream_arn.region(), credentials);
    let root = match job.version.start_at {
        Some(_) => LeaseCheckpoint::AtTimestamp,
        None => LeaseCheckpoint::TrimHorizon,
    };
    SourceLeases::start(cluster, &source.name, kinesis, source.kinesis.stream_arn.to_string(), root)
        .await
        .map_err(|error| WorkerError::Transient(format!("the source's lease table: {error}")))
}

async fn supervise_worker(
    context: &Arc<WorkerContext>,
    job: &Job,
    status: &Arc<WorkerStatus>,
    mut stop: watch::Receiver<bool>,
    leases: &mut Option<Arc<SourceLeases>>,
    registry: &LeaseRegistry,
) -> bool {
    let settings = &context.settings;
    let mut backoff = settings.restart_backoff;
    loop {
        let commits_before = status.commits();
        let outcome = match (&context.cluster, leases.as_ref()) {
            (Some(cluster), None) => match start_leases(context, cluster, job).await {
                Ok(started) => {
                    let started = Arc::new(started);
                    registry.lock().insert(job.source.name.clone(), Arc::clone(&started));
                    *leases = Some(started);
                    continue;
                }
                Err(error) => Err(error),
            },
            (_, held) => {
                let assignment = held.map_or(Assignment::Every, |held| Assignment::leased(Arc::clone(held)));
                worker::run(context, job, status, &mut stop, assignment).await
            }
        };
        match outcome {
            Ok(Ended::Reassigned) => {}
            Ok(Ended::Stopped) => {
                status.stopped();
                return true;
            }
            Ok(Ended::Finished(reason)) => {
                let store = Arc::clone(&context.store);
                let (source, version, because) = (job.source.name.clone(), job.version.version, reason.clone());
                let recorded =
                    tokio::task::spawn_blocking(move || store.mark_finished(&source, version, &because, Utc::now()))
                        .await;
                if !matches!(recorded, Ok(Ok(()))) {
                    // Still finished now; a restart would run it (and finish it) again.
                    tracing::warn!(source = %job.source.name, "could not record that the source finished");
                }
                status.finished(reason);
                return true;
            }
            // Not a failure: the shard's new owner reads the batch again.
            Err(WorkerError::LeaseMoved(moved)) => {
                tracing::info!(source = %job.source.name, %moved, "a shard moved to another node");
                if *stop.borrow() {
                    status.stopped();
                    return true;
                }
                // Until this node's lease task learns of the move too (its next scan or renewal).
                tokio::select! {
                    () = tokio::time::sleep(LEASE_MOVED_PAUSE) => {}
                    _ = stop.changed() => {
                        status.stopped();
                        return true;
                    }
                }
            }
            Err(error) if *stop.borrow() => {
                // Failed while stopping (a final flush that could not be written): the
                // stop was already seen, so a restarted worker would never see it again.
                // What it held is read again from the checkpoints on the next start.
                tracing::warn!(source = %job.source.name, %error, "worker failed while stopping");
                status.failed(&error, None);
                return false;
            }
            Err(error) => {
                if status.commits() > commits_before {
                    backoff = settings.restart_backoff;
                }
                // A permanent failure waits long (a new commit replaces this task at once).
                let wait = if error.is_retryable() { backoff } else { settings.permanent_failure_retry };
                let retry_at = chrono::Duration::from_std(wait).ok().map(|wait| Utc::now() + wait);
                tracing::warn!(
                    source = %job.source.name,
                    %error,
                    reason = error.code(),
                    retry_in = ?wait,
                    "worker failed; starting it again later"
                );
                status.failed(&error, retry_at);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {
                        status.stopped();
                        return true;
                    }
                }
                backoff = (backoff * 2).min(settings.restart_backoff_max);
            }
        }
    }
}
