//! One source's continuous ingest worker: read, decode, write, commit.
//!
//! Records are decoded as batches arrive; the decoded rows are written and
//! committed when the flush policy says (rows, bytes or time, whichever comes
//! first). A commit is one Parquet write per event date, then one store
//! transaction with the files, every shard's checkpoint advance and the
//! rejected rows. Nothing is checkpointed that is not written, and nothing
//! written counts until it is committed, so a crash anywhere repeats no row
//! and loses none: on restart, uncommitted files are deleted and reading
//! resumes after the last committed record of each shard.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;
use tributary_cluster::Held;
use tributary_codec::{DecodeError, Decoder, KEYS_METADATA, OutcomeCounts, RecordMeta, SourceRules};
use tributary_reader::{
    ConsumerKind, ReadTarget, Reader, ReaderConfig, ShardAdvance, ShardBatch, ShardCheckpoint, SourceMetrics,
    StartPosition,
};
use tributary_sink::table::{Maintenance, TableCatalog, TableWriter, WrittenFile, already_rejected, rejected_batch};
use tributary_sink::{DatasetWriter, Recovered, WATERMARK_METADATA, error_rows, failpoint, hold_point};
use tributary_source::{Cdc, ClientFactory, Consumer, DatasetFormat, SecretPolicy, Source};
use tributary_store::{BatchCommit, ErrorRetention, ShardCounts, Store, StoredVersion};

use crate::cluster::Cluster;
use crate::failure::WorkerError;
use crate::finish::FinishWatch;
use crate::leases::{Assignment, held_changed};
use crate::pending::Pending;
use crate::status::{Committed, WorkerStatus};
use crate::table_output::{claim_shards, open_table, settle_for_files, table_commit_error};

/// When a worker writes what it has decoded: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Rows (accepted and rejected) per batch.
    pub max_rows: usize,
    /// Decoded bytes held in memory.
    pub max_bytes: usize,
    /// Age of the oldest unwritten record.
    pub max_interval: Duration,
}

impl Default for FlushPolicy {
    fn default() -> FlushPolicy {
        FlushPolicy { max_rows: 100_000, max_bytes: 64 * 1024 * 1024, max_interval: Duration::from_secs(10) }
    }
}

/// Worker defaults (a source's own settings win).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Default flush policy.
    pub flush: FlushPolicy,
    /// Default error-log retention.
    pub error_retention: ErrorRetention,
    /// Reader pacing, batch sizes and backoff.
    pub reader: ReaderConfig,
    /// First wait before restarting a failed worker; doubled up to `restart_backoff_max`.
    pub restart_backoff: Duration,
    /// Longest wait between restarts.
    pub restart_backoff_max: Duration,
    /// Wait before starting again a worker that failed for a reason retrying
    /// cannot fix (a new commit starts it at once).
    pub permanent_failure_retry: Duration,
    /// Which environment variables definitions may name as secrets.
    pub secret_policy: SecretPolicy,
    /// Compaction, snapshot expiry and orphan removal of Iceberg datasets.
    pub maintenance: Maintenance,
    /// How often the console's history samples every worker's lag and rates.
    pub history_interval: Duration,
    /// Rejected rows a replay commits together (fewer when their payloads reach 64 MiB
    /// first; up to half as many more in the last chunk, when the rest is read already).
    pub replay_chunk_rows: usize,
}

impl Default for WorkerSettings {
    fn default() -> WorkerSettings {
        WorkerSettings {
            flush: FlushPolicy::default(),
            error_retention: ErrorRetention::default(),
            reader: ReaderConfig::default(),
            restart_backoff: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(60),
            permanent_failure_retry: Duration::from_secs(300),
            secret_policy: SecretPolicy::default(),
            maintenance: Maintenance::default(),
            history_interval: Duration::from_secs(10),
            replay_chunk_rows: 32_768,
        }
    }
}

/// What every worker shares.
pub(crate) struct WorkerContext {
    pub(crate) store: Arc<Store>,
    pub(crate) data_dir: PathBuf,
    pub(crate) aws: ClientFactory,
    pub(crate) settings: WorkerSettings,
    /// Where `format: iceberg` datasets' tables live.
    pub(crate) catalog: TableCatalog,
    /// The cluster this process is a node of, in cluster mode.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// Per dataset: held by a replay from start to end, and by a worker's
    /// start-up while it settles what a stop left (staged files, a prepared
    /// replay chunk), so neither takes back what the other is writing.
    pub(crate) replays: crate::replay_run::ReplayLocks,
}

/// Where a source's accepted rows go.
pub(crate) enum Output {
    /// Hive-layout Parquet files, committed in the store's manifest.
    Files(Arc<DatasetWriter>),
    /// An Iceberg table, which commits the checkpoints with the rows, and
    /// the table of its rejected records, committed with it; `through`: how
    /// far the rejected table already holds each shard's rejections past the
    /// rows table (after a rows commit that failed behind the rejected one).
    Table { rows: Arc<TableWriter>, rejected: Arc<TableWriter>, through: HashMap<String, ShardCheckpoint> },
}

/// A committed version to run.
pub(crate) struct Job {
    pub(crate) version: StoredVersion,
    pub(crate) source: Source,
    pub(crate) flush: FlushPolicy,
    pub(crate) retention: ErrorRetention,
}

/// Checkpoints belong to a source reading one stream: a new version on the
/// same stream continues where the last one stopped; on another stream it starts afresh.
pub(crate) fn checkpoint_scope(source: &str, stream_arn: &str) -> String {
    format!("{source}@{stream_arn}")
}

/// What decoding (part of) a batch gave.
#[derive(Debug, Default)]
struct DecodedRecords {
    accepted: usize,
    rejected: u64,
}

/// Why decoding a batch stopped before its end.
#[derive(Debug)]
enum Halt {
    /// Record `at` needs the registry, which did not answer: retry from there.
    RegistryUnavailable {
        at: usize,
        reason: String,
    },
    Failed(String),
}

/// Decodes `batch.records[from..]` into the decoder's rows, counting into `decoded`.
fn decode_records(
    decoder: &mut Decoder,
    batch: &ShardBatch,
    from: usize,
    decoded: &mut DecodedRecords,
) -> Result<(), Halt> {
    for (at, record) in batch.records.iter().enumerate().skip(from) {
        let meta = RecordMeta {
            shard_id: &batch.shard_id,
            sequence_number: record.sequence_number.as_str(),
            sub_sequence: record.sub_sequence,
            partition_key: &record.partition_key,
            arrival_time_micros: record.arrival_time.timestamp_micros(),
        };
        match decoder.decode(&record.data, &meta) {
            Ok(false) => decoded.rejected += 1,
            Ok(true) => decoded.accepted += 1,
            Err(DecodeError::RegistryUnavailable(reason)) => return Err(Halt::RegistryUnavailable { at, reason }),
            Err(error) => return Err(Halt::Failed(error.to_string())),
        }
    }
    Ok(())
}

pub(crate) struct Worker<'a> {
    pub(crate) context: &'a WorkerContext,
    job: &'a Job,
    status: &'a WorkerStatus,
    scope: String,
    pub(crate) output: Output,
    /// Shared with the blocking thread that decodes when the decoder may block.
    decoder: Arc<Mutex<Decoder>>,
    /// The decoder asks a schema registry (blocking HTTP) for unknown schema ids.
    decoder_may_block: bool,
    rules: SourceRules,
    /// Parquet key-value metadata every file of the dataset carries.
    file_metadata: Vec<(String, String)>,
    pending: Pending,
    /// The shards this worker reads, and the fence its commits carry.
    pub(crate) assignment: Assignment,
    /// The reader's per-shard counters (for what the leases publish).
    metrics: Arc<SourceMetrics>,
    finish: FinishWatch,
    /// When the tables were last maintained (Iceberg datasets).
    pub(crate) maintained_at: Instant,
}

/// How a worker ended without failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Told to stop (delete, new version, shutdown).
    Stopped,
    /// Its source is done (`until` passed, or a bounded source went idle): why.
    Finished(String),
    /// Cluster mode: the shards this process holds changed; it committed
    /// what it held and starts again on the new ones.
    Reassigned,
}

/// Runs the worker until `stop` says so (then flushes and commits what it
/// holds and returns `Ok`), or until it fails.
pub(crate) async fn run(
    context: &WorkerContext,
    job: &Job,
    status: &WorkerStatus,
    stop: &mut watch::Receiver<bool>,
    mut assignment: Assignment,
) -> Result<Ended, WorkerError> {
    let source = &job.source;
    let stream_arn = source.kinesis.stream_arn.to_string();
    let registries = crate::registries::registries_for(&context.aws, source)
        .await
        .map_err(|error| WorkerError::permanent("INVALID_DEFINITION", format!("schema registry: {error}")))?;
    let decoder_may_block = source.kinesis.format.asks_a_registry();
    let mut decoder = Decoder::with_registries(source, registries)
        .map_err(|error| WorkerError::permanent("INVALID_DEFINITION", format!("compiling the decoder: {error}")))?;
    decoder.expect_rows(job.flush.max_rows);
    let decoder = Arc::new(Mutex::new(decoder));
    let credentials = match &source.kinesis.role {
        Some(role) => Some(context.aws.role_credentials(role, source.kinesis.stream_arn.region()).await),
        None => None,
    };
    let client = context.aws.kinesis(source.kinesis.stream_arn.region(), credentials);
    let scope = checkpoint_scope(&source.name, &stream_arn);
    let schema = decoder.lock().schema();
    let output = match source.dataset.format {
        DatasetFormat::Parquet if assignment.fence().is_some() => {
            return Err(WorkerError::permanent(
                "INVALID_DEFINITION",
                "cluster mode lands datasets in Iceberg tables only (their commits fence the shards); commit the source with `format: iceberg`",
            ));
        }
        DatasetFormat::Parquet => {
            settle_for_files(context, &source.dataset.name, &scope).await?;
            Output::Files(recover_files(context, source).await?)
        }
        DatasetFormat::Iceberg => {
            let (rows, rejected) = open_table(context, source, &schema, &scope).await?;
            if let Some(fence) = assignment.fence() {
                let claimed = claim_shards(context, &source.name, (&rows, &rejected), &scope, fence).await?;
                assignment.claimed(&claimed.shards);
            }
            let through = rejected
                .rejected_through(&scope)
                .await
                .map_err(|error| WorkerError::Transient(format!("reading the rejected table: {error}")))?;
            Output::Table { rows, rejected, through }
        }
    };
    let start = match job.version.start_at {
        Some(at) => StartPosition::AtTimestamp(at),
        None => StartPosition::TrimHorizon,
    };
    // The watermark goes on from the last commit (before the reader starts, which a failure here would leave running).
    let store = Arc::clone(&context.store);
    let event_scope = scope.clone();
    let max_event_time = blocking(move || Ok(store.max_event_time(&event_scope).map_err(|e| e.to_string())?)).await?;
    let rules = SourceRules::new(source, max_event_time);
    status.watermark(rules.watermark());
    let target = ReadTarget { stream_arn, start, scope: scope.clone() };
    let mut reader_config = context.settings.reader.clone();
    if let Consumer::EnhancedFanOut { consumer_name } = &source.kinesis.consumer {
        reader_config.consumer = ConsumerKind::EnhancedFanOut { consumer_name: consumer_name.clone() };
    }
    let mut reader = Reader::start_assigned(client, target, context.store.clone(), reader_config, assignment.shards());
    status.running(reader.metrics());
    let mut held = assignment.watch();

    let mut worker = Worker {
        context,
        job,
        status,
        scope,
        output,
        decoder,
        decoder_may_block,
        rules,
        file_metadata: file_metadata(source),
        pending: Pending::default(),
        assignment,
        metrics: reader.metrics(),
        finish: FinishWatch::new(source),
        maintained_at: Instant::now(),
    };
    let outcome = worker.pump(&mut reader, stop, &mut held).await;
    reader.stop().await;
    outcome
}

impl Worker<'_> {
    async fn pump(
        &mut self,
        reader: &mut Reader,
        stop: &mut watch::Receiver<bool>,
        held: &mut Option<watch::Receiver<Held>>,
    ) -> Result<Ended, WorkerError> {
        loop {
            // Only for a source with an end: the shard snapshot is not free, and this runs per batch.
            if self.finish.has_end() {
                let done_here = self.finish.finished(&reader.metrics().snapshot(), Utc::now());
                // In cluster mode, finished once every shard is done wherever it is read.
                if self.assignment.done_everywhere(done_here.clone()) {
                    let reason = done_here.unwrap_or_else(|| "every shard of the source is done".to_owned());
                    self.flush().await?;
                    if let Some(cluster) = &self.context.cluster {
                        cluster.finish(&self.job.version, &reason).await.map_err(|error| {
                            WorkerError::Transient(format!(
                                "recording in the cluster that the source finished: {error}"
                            ))
                        })?;
                    }
                    tracing::info!(source = %self.job.source.name, %reason, "the source is finished");
                    return Ok(Ended::Finished(reason));
                }
            }
            let deadline = self.pending.since.map(|since| since + self.job.flush.max_interval);
            let check_at = self.finish.next_check();
            tokio::select! {
                biased;
                _ = stop.changed() => return self.flush().await.map(|()| Ended::Stopped),
                () = held_changed(held) => {
                    if self.assignment.moved(held) {
                        // A lost shard's rows are left to its new owner; the others land.
                        let lost = self.assignment.lost(held);
                        self.flush_without(&lost).await?;
                        return Ok(Ended::Reassigned);
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => self.flush().await?,
                () = sleep_until(check_at), if check_at.is_some() => {}
                next = reader.next() => {
                    let batch = match next {
                        Some(Ok(batch)) => batch,
                        Some(Err(error)) => return Err(WorkerError::reading(error)),
                        None => return Err(WorkerError::Transient("the reader stopped".to_owned())),
                    };
                    self.finish.saw(&batch);
                    if !self.decode(batch, stop).await? {
                        // Stopped during a registry outage: nothing of the batch is committed, it is read again later.
                        return Ok(Ended::Stopped);
                    }
                    let policy = self.job.flush;
                    if self.pending.rows >= policy.max_rows || self.decoder.lock().buffered_bytes() >= policy.max_bytes {
                        self.flush().await?;
                    }
                }
            }
        }
    }

    /// Decodes every record of `batch`; `false` when told to stop while the
    /// schema registry was unreachable.
    ///
    /// A decoder that may ask a registry (blocking HTTP, up to its timeout)
    /// runs on a blocking thread, so a slow registry stalls this source only,
    /// not every worker and the API sharing the runtime.
    async fn decode(&mut self, batch: ShardBatch, stop: &mut watch::Receiver<bool>) -> Result<bool, WorkerError> {
        // A batch is decoded whole or not at all (its checkpoint covers all of it):
        // when it might not fit, the rows held so far are committed first. Flushes
        // keep a batch under MAX_FLUSH_BYTES, far below the decoder's limit, so the
        // records are summed only past it, not on every batch.
        let past_flush_limit = self.decoder.lock().buffered_bytes() as u64 >= tributary_source::MAX_FLUSH_BYTES;
        if past_flush_limit {
            let payload_bytes = batch.records.iter().map(|record| record.data.len()).sum();
            if !self.decoder.lock().has_room_for(payload_bytes) {
                self.flush().await?;
            }
        }
        let batch = Arc::new(batch);
        let mut decoded = DecodedRecords::default();
        let mut from = 0;
        let mut wait = Duration::from_millis(500);
        loop {
            let outcome = if self.decoder_may_block {
                let (decoder, records) = (Arc::clone(&self.decoder), Arc::clone(&batch));
                let mut part = std::mem::take(&mut decoded);
                let (part, outcome) = blocking(move || {
                    let outcome = decode_records(&mut decoder.lock(), &records, from, &mut part);
                    Ok((part, outcome))
                })
                .await?;
                decoded = part;
                outcome
            } else {
                decode_records(&mut self.decoder.lock(), &batch, from, &mut decoded)
            };
            match outcome {
                Ok(()) => break,
                Err(Halt::Failed(error)) => return Err(WorkerError::Transient(format!("decoding: {error}"))),
                Err(Halt::RegistryUnavailable { at, reason }) => {
                    tracing::warn!(source = %self.job.source.name, %reason, "schema registry unavailable; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        // Nothing of the batch is committed: it is read again later.
                        _ = stop.changed() => return Ok(false),
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                    from = at;
                }
            }
        }
        let shard_id = &batch.shard_id;
        if decoded.accepted > 0 {
            self.pending.accepted.push((Arc::clone(shard_id), decoded.accepted));
        }
        // Counted per batch, not per record.
        self.pending.rows += batch.records.len();
        self.pending.counts(shard_id).rejected += decoded.rejected;
        self.pending.add(&batch);
        Ok(true)
    }

    /// Writes the decoded rows and commits files, checkpoints and rejections together.
    async fn flush(&mut self) -> Result<(), WorkerError> {
        self.flush_without(&BTreeSet::new()).await
    }

    /// [`Worker::flush`], leaving out what was read from the shards in `lost`.
    async fn flush_without(&mut self, lost: &BTreeSet<String>) -> Result<(), WorkerError> {
        if self.pending.advances.is_empty() {
            return Ok(());
        }
        let mut decoded = self.decoder.lock().flush().map_err(|error| format!("finishing the batch: {error}"))?;
        let mut pending = std::mem::take(&mut self.pending);
        pending.drop_shards(lost, &mut decoded).map_err(|error| format!("leaving out the lost shards: {error}"))?;
        if pending.advances.is_empty() {
            return Ok(());
        }
        let applied =
            self.rules.apply(&decoded.batch).map_err(|error| format!("applying the source's rules: {error}"))?;
        let mut outcomes = applied.outcomes.iter();
        let mut late = 0;
        for (shard_id, rows) in std::mem::take(&mut pending.accepted) {
            let mut shard = OutcomeCounts::default();
            outcomes.by_ref().take(rows).for_each(|outcome| shard.add(*outcome));
            let counts = pending.counts(&shard_id);
            counts.rows += shard.rows;
            counts.filtered += shard.filtered;
            counts.late += shard.late;
            late += shard.late;
        }
        decoded.batch = applied.batch;
        let max_event_micros = self.rules.max_event_time();
        let watermark_micros = self.rules.watermark();
        let mut key_values = self.file_metadata.clone();
        if let Some(watermark) = watermark_micros {
            key_values.push((WATERMARK_METADATA.to_owned(), micros_text(watermark)));
        }
        let store = Arc::clone(&self.context.store);
        let source = self.job.source.name.clone();
        let version = self.job.version.version;
        let scope = self.scope.clone();
        let retention = self.job.retention;
        let rows = decoded.batch.num_rows() as u64;
        let rejected = error_rows(&decoded.rejections);
        let rejected_count = rejected.len() as u64;
        let now = Utc::now();
        // The rejected table's rows, built before the error-log rows move into the commit.
        let rejected_rows = match &self.output {
            Output::Table { through, .. } => {
                let batch = if through.is_empty() {
                    rejected_batch(&rejected, now)
                } else {
                    // Already in the rejected table: a batch read again after its rows commit failed.
                    let new: Vec<_> = rejected
                        .iter()
                        .filter(|row| {
                            !through
                                .get(&row.shard_id)
                                .is_some_and(|mark| already_rejected(mark, &row.sequence_number, row.sub_sequence))
                        })
                        .cloned()
                        .collect();
                    rejected_batch(&new, now)
                };
                Some(batch.map_err(|e| format!("the rejected rows: {e}"))?)
            }
            Output::Files(_) => None,
        };
        let advances: Vec<ShardAdvance> = pending.advances.into_values().collect();
        let table_advances = advances.clone();
        let counts: Vec<ShardCounts> = pending.counts.into_values().collect();
        let batch_commit = move |files: &[tributary_store::ManifestFile], prepare: bool| {
            let commit = BatchCommit {
                source: &source,
                version,
                scope: &scope,
                files,
                advances: &advances,
                rejected: &rejected,
                counts: &counts,
                retention,
                max_event_micros,
            };
            if prepare { store.prepare_batch(&commit, now) } else { store.commit_batch(&commit, now) }
                .map_err(WorkerError::committing)
        };
        match &self.output {
            Output::Files(dataset) => {
                let dataset = Arc::clone(dataset);
                blocking(move || {
                    let files = dataset
                        .write_with_metadata(&decoded.batch, &key_values)
                        .map_err(|error| format!("writing the dataset: {error}"))?;
                    batch_commit(&files, false)?;
                    failpoint("after-commit");
                    // Committed: a failure from here on is finished by the next start's recovery.
                    dataset
                        .publish(&files)
                        .map_err(|error| WorkerError::from(format!("publishing committed files: {error}")))
                })
                .await?;
            }
            Output::Table { rows: table, rejected: rejected_table, .. } => {
                // The store records the batch first, remembering what to take back; the table
                // commit decides whether it happened (the next start settles a crash in between).
                let (writer, rejected_writer) = (Arc::clone(table), Arc::clone(rejected_table));
                let (written, rejected_written) = blocking(move || {
                    let written = writer
                        .write(&decoded.batch, &key_values)
                        .map_err(|error| WorkerError::from(format!("writing the table: {error}")))?;
                    let manifest: Vec<_> = written.iter().map(|file: &WrittenFile| file.manifest.clone()).collect();
                    let rejected_written = match &rejected_rows {
                        Some(rows) => rejected_writer
                            .write(rows, &[])
                            .map_err(|error| WorkerError::from(format!("writing the rejected table: {error}")))?,
                        None => Vec::new(),
                    };
                    batch_commit(&manifest, true)?;
                    Ok((written, rejected_written))
                })
                .await?;
                // An object-store warehouse: the files go up before the commit names them.
                for (writer, files) in [(table, &written), (rejected_table, &rejected_written)] {
                    writer.upload(files).await.map_err(|error| format!("uploading the batch's files: {error}"))?;
                }
                let data_files = written.into_iter().map(|file| file.data_file).collect();
                let rejected_files = rejected_written.into_iter().map(|file| file.data_file).collect();
                failpoint("before-table-commit");
                hold_point("before-table-commit").await;
                table
                    .commit_fenced(
                        &self.scope,
                        data_files,
                        &table_advances,
                        self.assignment.fence(),
                        max_event_micros,
                        Some((rejected_table.as_ref(), rejected_files)),
                    )
                    .await
                    .map_err(table_commit_error)?;
                failpoint("after-table-commit");
                let store = Arc::clone(&self.context.store);
                let scope = self.scope.clone();
                blocking(move || {
                    store
                        .settle_prepared(&scope, true)
                        .map(drop)
                        .map_err(|error| WorkerError::Transient(format!("settling the committed batch: {error}")))
                })
                .await?;
                self.assignment.committed(&table_advances, &self.metrics);
                self.maintain_when_due().await;
            }
        }
        self.status.committed(Committed { rows, rejected: rejected_count, late, watermark_micros }, now);
        Ok(())
    }
}

/// At start-up of a Parquet dataset: finishes the moves of committed staged
/// files and deletes the uncommitted ones.
async fn recover_files(context: &WorkerContext, source: &Source) -> Result<Arc<DatasetWriter>, WorkerError> {
    let dataset = Arc::new(DatasetWriter::new(&context.data_dir, &source.dataset.name, &source.dataset.timestamp));
    // A running replay's staged files are not a stop's leftovers.
    let lock = context.replays.of(&source.dataset.name);
    let _held = lock.lock().await;
    let store = Arc::clone(&context.store);
    let cleanup = Arc::clone(&dataset);
    let dataset_name = source.dataset.name.clone();
    let recovered = blocking(move || {
        let committed = store.manifest_paths(&dataset_name).map_err(|e| e.to_string())?;
        cleanup.recover(&committed).map_err(|e| WorkerError::from(e.to_string()))
    })
    .await?;
    if recovered != Recovered::default() {
        tracing::info!(
            source = %source.name,
            published = recovered.published,
            discarded = recovered.discarded,
            "finished the staged files a stop left: committed ones moved into place, the rest deleted"
        );
    }
    Ok(dataset)
}

fn micros_text(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map_or_else(|| micros.to_string(), |at| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// What every file of `source`'s dataset says about itself: a cdc source's
/// keys and mode, so a reader can order the changes of one key.
fn file_metadata(source: &Source) -> Vec<(String, String)> {
    let mode = match source.cdc {
        Cdc::Append => return Vec::new(),
        Cdc::Upsert => "upsert",
        Cdc::Debezium => "debezium",
    };
    vec![(KEYS_METADATA.to_owned(), source.dataset.keys.join(",")), ("tributary.cdc".to_owned(), mode.to_owned())]
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Runs file and database work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, WorkerError> + Send + 'static,
) -> Result<T, WorkerError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| WorkerError::Transient(format!("worker task: {error}")))?
}
