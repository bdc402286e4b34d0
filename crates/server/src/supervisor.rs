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
use tributary_proto::v1::SourceDefinition;
use tributary_source::{AssumeRole, ClientFactory, Consumer, SecretPolicy, Source};
use tributary_store::{ErrorRetention, Store, StoreError, StoredVersion};

use crate::status::WorkerStatus;
use crate::worker::{self, FlushPolicy, Job, WorkerContext, WorkerSettings};

/// Bound on the call that deregisters a stream consumer no source reads through any more.
const DEREGISTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct RunningWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
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
}

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
    pub fn new(store: Arc<Store>, data_dir: PathBuf, aws: ClientFactory, settings: WorkerSettings) -> Supervisor {
        Supervisor {
            context: Arc::new(WorkerContext { store, data_dir, aws, settings }),
            workers: tokio::sync::Mutex::new(HashMap::new()),
            statuses: parking_lot::Mutex::new(HashMap::new()),
        }
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
            stop_worker(previous).await;
        }
        let status = Arc::new(WorkerStatus::new(version.version));
        self.statuses.lock().insert(name.clone(), Arc::clone(&status));
        let (stop, stopped) = watch::channel(false);
        let task = match stored_source(&version, &self.context.settings.secret_policy) {
            Ok(source) => {
                let settings = &self.context.settings;
                let job = Job {
                    flush: source_flush_policy(&source, settings.flush),
                    retention: source_retention(&source, settings.error_retention),
                    version,
                    source,
                };
                tokio::spawn(supervise(Arc::clone(&self.context), job, Arc::clone(&status), stopped))
            }
            Err(error) => {
                status.failed(error);
                tokio::spawn(async {})
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
            stop_worker(worker).await;
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

    /// Stops every worker, each flushing and committing first.
    pub async fn stop_all(&self) {
        let workers: Vec<RunningWorker> = self.workers.lock().await.drain().map(|(_, worker)| worker).collect();
        for worker in &workers {
            let _ = worker.stop.send(true);
        }
        for worker in workers {
            let _ = worker.task.await;
            worker.status.stopped();
        }
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

async fn stop_worker(worker: RunningWorker) {
    let _ = worker.stop.send(true);
    let _ = worker.task.await;
    worker.status.stopped();
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

/// Runs the worker, restarting it with backoff until it is told to stop.
async fn supervise(context: Arc<WorkerContext>, job: Job, status: Arc<WorkerStatus>, mut stop: watch::Receiver<bool>) {
    let settings = &context.settings;
    let mut backoff = settings.restart_backoff;
    loop {
        let commits_before = status.commits();
        match worker::run(&context, &job, &status, &mut stop).await {
            Ok(()) => {
                status.stopped();
                return;
            }
            Err(error) => {
                tracing::warn!(source = %job.source.name, %error, "worker failed; restarting");
                status.failed(error);
                if status.commits() > commits_before {
                    backoff = settings.restart_backoff;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {
                        status.stopped();
                        return;
                    }
                }
                backoff = (backoff * 2).min(settings.restart_backoff_max);
            }
        }
    }
}
