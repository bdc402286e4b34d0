//! A worker's Iceberg side: opening a dataset's tables at start-up (and
//! making the store's checkpoints the table's), the errors of a refused
//! table commit, and maintenance between commits.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use tributary_reader::ShardCheckpoint;
use tributary_sink::table::{Followed, TableCheckpoints, TableError, TableWriter, checkpoints_of};
use tributary_source::{Cdc, Source};

use crate::failure::WorkerError;
use crate::worker::{Output, Worker, WorkerContext, blocking};

/// At start-up of an Iceberg dataset: opens (creates, evolves) the table
/// and makes the store's checkpoints of `scope` the table's, which are the
/// truth. The store is behind after a crash between the two commits, or
/// empty after it was lost; a table without checkpoints for the scope
/// (a source that wrote Parquet before) is seeded from the store.
pub(crate) async fn open_table(
    context: &WorkerContext,
    source: &Source,
    schema: &arrow_schema::Schema,
    scope: &str,
) -> Result<(Arc<TableWriter>, Arc<TableWriter>), WorkerError> {
    let identifier_fields = identifier_fields(source);
    let table = TableWriter::open(
        context.catalog.clone(),
        &source.dataset.name,
        &source.dataset.timestamp,
        schema,
        &identifier_fields,
    )
    .await
    .map_err(|error| match error {
        TableError::Schema(error) => {
            WorkerError::permanent("SCHEMA_INCOMPATIBLE", format!("the dataset's table: {error}"))
        }
        other => WorkerError::Transient(format!("opening the dataset's table: {other}")),
    })?;
    let in_table =
        table.checkpoints(scope).await.map_err(|error| format!("reading the table's checkpoints: {error}"))?;
    let store = Arc::clone(&context.store);
    let owned_scope = scope.to_owned();
    let table_shards = in_table.shards.clone();
    let (in_store, store_max_event, taken_back) = blocking(move || {
        // A batch the store recorded before its table commit: kept if the table holds
        // its checkpoints (the commit landed), taken back otherwise.
        let settled = store.settle_prepared_against(&owned_scope, &table_shards).map_err(|e| e.to_string())?;
        if let Some(landed) = settled {
            tracing::info!(scope = %owned_scope, landed, "settled the batch a stop left between the store and the table");
        }
        let checkpoints = store.checkpoints(&owned_scope).map_err(|e| e.to_string())?;
        let max_event = store.max_event_time(&owned_scope).map_err(|e| e.to_string())?;
        Ok((checkpoints, max_event, settled == Some(false)))
    })
    .await?;
    // What the rows table holds once the two agree: the rejected table follows it.
    let mut agreed = in_table.shards.clone();
    if in_table.shards.is_empty() && !taken_back {
        if !in_store.is_empty() {
            agreed.clone_from(&in_store);
            let seed = TableCheckpoints { shards: in_store, max_event_micros: store_max_event };
            table.seed_checkpoints(scope, &seed).await.map_err(table_commit_error)?;
            tracing::info!(source = %source.name, "the table had no checkpoints for this source: seeded from the store");
        }
    } else if in_table.shards != in_store || in_table.max_event_micros != store_max_event {
        tracing::info!(
            source = %source.name,
            shards = in_table.shards.len(),
            "the store's checkpoints differ from the table's (a crash between commits, or a lost store): taking the table's"
        );
        let store = Arc::clone(&context.store);
        let owned_scope = scope.to_owned();
        blocking(move || {
            store
                .restore_checkpoints(&owned_scope, &in_table.shards, in_table.max_event_micros)
                .map_err(|error| WorkerError::Transient(format!("restoring checkpoints from the table: {error}")))
        })
        .await?;
    }
    let rejected = TableWriter::open_rejected(context.catalog.clone(), &source.dataset.name)
        .await
        .map_err(|error| WorkerError::Transient(format!("opening the dataset's rejected table: {error}")))?;
    // A replay chunk a stop left between the store and the table (none in cluster mode).
    if context.cluster.is_none() {
        let lock = context.replays.of(&source.dataset.name);
        let _held = lock.lock().await;
        crate::replay_run::settle_prepared(&context.store, &source.name, scope, &table, &rejected)
            .await
            .map_err(|error| WorkerError::Transient(format!("settling a replay chunk: {error}")))?;
    }
    // In cluster mode each node brings only the shards it claims in step (`claim_shards`).
    if context.cluster.is_none() {
        follow_rows(&source.name, &rejected, scope, &agreed, None).await?;
    }
    Ok((Arc::new(table), Arc::new(rejected)))
}

/// Brings the rejected table in step with the rows table's checkpoints
/// `agreed` (for the shards of `claimed`, in cluster mode).
async fn follow_rows(
    source: &str,
    rejected: &TableWriter,
    scope: &str,
    agreed: &HashMap<String, ShardCheckpoint>,
    claimed: Option<&HashMap<String, u64>>,
) -> Result<(), WorkerError> {
    match rejected.follow(scope, agreed, claimed).await {
        Ok(Followed::InStep) => Ok(()),
        Ok(followed) => {
            tracing::info!(source, ?followed, "the rejected table now follows the rows table's checkpoints");
            Ok(())
        }
        Err(TableError::Fenced { .. }) => Err(WorkerError::LeaseMoved(
            "bringing the rejected table in step: another process took a shard since".into(),
        )),
        Err(error) => {
            Err(WorkerError::Transient(format!("bringing the rejected table in step with the rows: {error}")))
        }
    }
}

/// Cluster mode, at start-up: records this process's epoch of each shard
/// it holds in the tables (the fence: no older owner's commit lands from
/// now on), and makes the store's checkpoints of `scope` the ones in that
/// same snapshot, where reading starts. Parents finished by other
/// processes are finished there too, so their children may start.
pub(crate) async fn claim_shards(
    context: &WorkerContext,
    source: &str,
    (rows, rejected): (&TableWriter, &TableWriter),
    scope: &str,
    fence: &HashMap<String, u64>,
) -> Result<TableCheckpoints, WorkerError> {
    if fence.is_empty() {
        return Ok(TableCheckpoints::default());
    }
    let claimed = rows.claim_shards(scope, fence, Some(rejected)).await.map_err(|error| match error {
        TableError::Fenced { .. } => {
            WorkerError::LeaseMoved(format!("claiming the shards: {error}; another process took one since"))
        }
        other => WorkerError::Transient(format!("claiming the shards in the table: {other}")),
    })?;
    let store = Arc::clone(&context.store);
    let owned_scope = scope.to_owned();
    let restored = claimed.clone();
    blocking(move || {
        store
            .restore_checkpoints(&owned_scope, &restored.shards, restored.max_event_micros)
            .map_err(|error| WorkerError::Transient(format!("taking the table's checkpoints: {error}")))
    })
    .await?;
    follow_rows(source, rejected, scope, &claimed.shards, Some(fence)).await?;
    tracing::info!(scope, shards = fence.len(), "claimed the shards in the table");
    Ok(claimed)
}

/// At start-up of a source that now writes Parquet files: a batch the last
/// run prepared for the dataset's Iceberg table is settled against that
/// table as [`open_table`] would, so switching outputs loses nothing: kept
/// if the table holds it, otherwise taken back, and the store's checkpoints
/// and event time become the table's (the truth of what that run committed).
pub(crate) async fn settle_for_files(context: &WorkerContext, dataset: &str, scope: &str) -> Result<(), WorkerError> {
    let store = Arc::clone(&context.store);
    let owned_scope = scope.to_owned();
    let prepared = blocking(move || Ok(store.has_prepared_batch(&owned_scope).map_err(|e| e.to_string())?)).await?;
    if !prepared {
        return Ok(());
    }
    let in_table = checkpoints_of(&context.catalog, dataset, scope)
        .await
        .map_err(|error| WorkerError::Transient(format!("reading the dataset's earlier table: {error}")))?
        .unwrap_or_default();
    let store = Arc::clone(&context.store);
    let owned_scope = scope.to_owned();
    let landed = blocking(move || {
        let settled = store.settle_prepared_against(&owned_scope, &in_table.shards).map_err(|e| e.to_string())?;
        if settled == Some(false) {
            store
                .restore_checkpoints(&owned_scope, &in_table.shards, in_table.max_event_micros)
                .map_err(|e| e.to_string())?;
        }
        Ok(settled)
    })
    .await?;
    tracing::info!(scope, ?landed, "settled the batch the last run left for the dataset's table");
    Ok(())
}

/// A cdc source's keys identify its table's rows (Iceberg's identifier fields).
pub(crate) fn identifier_fields(source: &Source) -> Vec<String> {
    match source.cdc {
        Cdc::Append => Vec::new(),
        Cdc::Upsert | Cdc::Debezium => source.dataset.keys.clone(),
    }
}

/// A refused table commit drops the batch: the worker starts again from the
/// table's checkpoints and reads it again (or, if another writer took the
/// shard, reads after what that writer committed).
pub(crate) fn table_commit_error(error: TableError) -> WorkerError {
    match error {
        TableError::Fenced { .. } => WorkerError::LeaseMoved(format!(
            "committing to the table: {error}; the batch is dropped, and the shard's new owner reads it again"
        )),
        TableError::CheckpointConflict { .. } => {
            WorkerError::Transient(format!("committing to the table: {error}; the batch is dropped and read again"))
        }
        other => WorkerError::Transient(format!("committing to the table: {other}")),
    }
}

impl Worker<'_> {
    /// Between commits, so it never races this worker's own appends: compacts,
    /// expires snapshots and removes orphans. A failure is logged, not fatal:
    /// the rows are committed, and the next round tries again.
    pub(crate) async fn maintain_when_due(&mut self) {
        let settings = self.context.settings.maintenance;
        if self.maintained_at.elapsed() < settings.every || !self.assignment.maintains() {
            return;
        }
        self.maintained_at = Instant::now();
        let Output::Table { rows, rejected, .. } = &self.output else { return };
        // Compaction decodes and encodes up to 64 MiB of Parquet, and a local
        // warehouse is walked with blocking calls: on a blocking thread, so the
        // API and the other sources keep their runtime threads meanwhile.
        let tables = [Arc::clone(rows), Arc::clone(rejected)];
        let runtime = tokio::runtime::Handle::current();
        let rounds = tokio::task::spawn_blocking(move || {
            tables.map(|table| {
                let done = runtime.block_on(table.maintain(&settings));
                (table.location(), done)
            })
        })
        .await;
        let rounds = match rounds {
            Ok(rounds) => rounds,
            Err(error) => {
                tracing::warn!(%error, "maintaining the tables failed");
                return;
            }
        };
        for (table, outcome) in rounds {
            match outcome {
                Ok(done) if done != Default::default() => tracing::info!(%table, ?done, "maintained the table"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%table, %error, "maintaining the table failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    use tributary_reader::{SequenceNumber, ShardAdvance, ShardCheckpoint};
    use tributary_sink::table::TableCatalog;
    use tributary_source::{AwsSettings, ClientFactory};
    use tributary_store::{BatchCommit, ErrorRetention, ManifestFile, ShardCounts, Store};

    use super::*;
    use crate::worker::WorkerSettings;

    const SCOPE: &str = "orders@arn:aws:kinesis:us-east-1:000000000000:stream/orders";
    const MAX_EVENT: i64 = 1_717_243_200_000_000;

    async fn context(dir: &std::path::Path) -> WorkerContext {
        let store = Arc::new(Store::open_in_memory().expect("store"));
        let catalog = TableCatalog::local(Arc::clone(&store), &dir.join("warehouse")).expect("warehouse");
        let aws = ClientFactory::load(AwsSettings::default(), Duration::from_secs(1)).await;
        WorkerContext {
            store,
            data_dir: dir.to_owned(),
            aws,
            settings: WorkerSettings::default(),
            catalog,
            cluster: None,
            replays: Default::default(),
        }
    }

    /// The first run wrote to a table: it created it, then a batch was prepared in the store.
    async fn prepare_a_table_batch(context: &WorkerContext) -> (TableWriter, [ShardAdvance; 1]) {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        ]);
        let table = TableWriter::open(context.catalog.clone(), "orders", "ts", &schema, &[]).await.expect("table");
        let to = ShardCheckpoint::after(SequenceNumber::new("300").expect("digits"));
        let advances = [ShardAdvance { shard_id: "shard-0".into(), from: ShardCheckpoint::default(), to }];
        let files =
            [ManifestFile { dataset: "orders".into(), path: "file:///w/orders/a.parquet".into(), rows: 300, bytes: 9 }];
        let counts = [ShardCounts { shard_id: "shard-0".into(), rows: 300, ..ShardCounts::default() }];
        let batch = BatchCommit {
            source: "orders",
            version: 1,
            scope: SCOPE,
            files: &files,
            advances: &advances,
            rejected: &[],
            counts: &counts,
            retention: ErrorRetention::default(),
            max_event_micros: Some(MAX_EVENT),
        };
        context.store.prepare_batch(&batch, chrono::Utc::now()).expect("prepare");
        (table, advances)
    }

    /// The review's loss: the upload failed after the store's prepare, then the
    /// source was committed with `format: parquet`; the Parquet start-up never
    /// settled the batch, resumed after it, and status counted its 300 rows.
    #[tokio::test]
    async fn a_batch_prepared_for_a_table_is_taken_back_when_the_source_now_writes_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path()).await;
        prepare_a_table_batch(&context).await;
        let store = &context.store;
        assert_eq!(store.dataset_totals("orders").expect("totals"), (0, 0), "status counts only committed rows");

        settle_for_files(&context, "orders", SCOPE).await.expect("settle");
        assert!(!store.has_prepared_batch(SCOPE).expect("read"), "settled");
        assert!(store.checkpoints(SCOPE).expect("read").is_empty(), "reading starts again where the table was");
        assert_eq!(store.max_event_time(SCOPE).expect("read"), None);
        assert_eq!(store.dataset_totals("orders").expect("totals"), (0, 0));
        assert!(store.shard_counts("orders").expect("counts").is_empty());
    }

    #[tokio::test]
    async fn a_batch_whose_table_commit_landed_is_kept_when_the_source_now_writes_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path()).await;
        let (table, advances) = prepare_a_table_batch(&context).await;
        // The table commit landed (then the process stopped before settling).
        let landed = TableCheckpoints {
            shards: [("shard-0".to_owned(), advances[0].to.clone())].into_iter().collect(),
            max_event_micros: Some(MAX_EVENT),
        };
        table.seed_checkpoints(SCOPE, &landed).await.expect("commit");

        settle_for_files(&context, "orders", SCOPE).await.expect("settle");
        let store = &context.store;
        assert!(!store.has_prepared_batch(SCOPE).expect("read"));
        assert_eq!(store.checkpoints(SCOPE).expect("read"), landed.shards, "reading goes on after the batch");
        assert_eq!(store.max_event_time(SCOPE).expect("read"), Some(MAX_EVENT));
        assert_eq!(store.shard_counts("orders").expect("counts")[0].rows, 300);
    }
}
