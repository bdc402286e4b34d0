//! A replay that lands rejected rows which now decode, exactly once.
//!
//! The source's stored rejected rows (all, or one reason's) are decoded
//! again with its current version, chunk by chunk. Each chunk's landed rows
//! are written to the dataset and its rows marked in the error log together:
//!
//! - a Parquet dataset: one store transaction enters the files in the
//!   manifest and marks the rows (the staged files move into place after it);
//! - an Iceberg dataset: the store remembers the chunk, then one table
//!   commit adds the files and raises the table's replay marker (only from
//!   the marker the chunk began at), then the store marks the rows. A stop in
//!   between is settled by the marker the table holds, at the next replay or
//!   the worker's next start.
//!
//! So a replay run twice, or stopped anywhere and run again, writes each row
//! once. A replayed row (landed, or left out by the rules) stays in the error
//! log marked with when and by which version, and gains a `REPLAYED` row in
//! the rejected table; a row still rejected takes its new reason in both.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::RecordBatch;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tributary_codec::{Decoder, Registries};
use tributary_sink::table::{TableError, TableFiles, TableWriter};
use tributary_sink::{DatasetFiles, DatasetWriter, failpoint};
use tributary_source::{Cdc, DatasetFormat, Source};
use tributary_store::{ReplayChunk, ReplayOutcome, Replayed, ShardCounts, Store, StoredVersion};

use crate::errors::ApiError;
use crate::replay::{Now, decode_again};
use crate::replay_page::{Mark, PAGE_ROWS, RejectedPage, read_rejected_page, unlogged_page};
use crate::worker::{WorkerContext, checkpoint_scope};

/// Payload bytes of one chunk, at most (about: a page may pass it).
const CHUNK_PAYLOAD_BYTES: usize = 64 << 20;

/// Bytes of rejected rows read ahead of the decoding, at most (about: a page may pass it).
const READ_AHEAD_BYTES: usize = 8 << 20;

/// What a stored row holds besides its payload, about (its strings and fields).
const ROW_BYTES: usize = 256;

/// Times a replay opens the dataset's table before giving up.
const OPEN_ATTEMPTS: u32 = 4;

/// How long a replay waits for the dataset's lock before saying another holds it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// One lock per dataset; see [`WorkerContext::replays`].
#[derive(Debug, Default)]
pub(crate) struct ReplayLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl ReplayLocks {
    /// The lock of `dataset`.
    pub(crate) fn of(&self, dataset: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(self.0.lock().entry(dataset.to_owned()).or_default())
    }
}

/// Where a replay writes; each chunk's files are opened from it.
enum Target {
    Files(Arc<DatasetWriter>),
    Table { rows: Arc<TableWriter>, rejected: Arc<TableWriter> },
}

impl Target {
    /// A chunk's files, none written yet.
    fn chunk_files(&self) -> ChunkFiles {
        match self {
            Target::Files(dataset) => ChunkFiles::Files { dataset: Arc::clone(dataset), rows: DatasetFiles::default() },
            Target::Table { rows, rejected } => ChunkFiles::Table {
                rows: (Arc::clone(rows), TableFiles::default()),
                marks: (Arc::clone(rejected), TableFiles::default()),
            },
        }
    }
}

/// A chunk's files, written page by page as its rows are decoded, so that
/// landing a chunk only closes and commits them.
#[derive(Debug)]
enum ChunkFiles {
    /// A Parquet dataset's rows (such a dataset keeps no rejected table).
    Files { dataset: Arc<DatasetWriter>, rows: DatasetFiles },
    /// An Iceberg dataset's rows, and the rejected table's marks.
    Table { rows: (Arc<TableWriter>, TableFiles), marks: (Arc<TableWriter>, TableFiles) },
}

impl ChunkFiles {
    /// Writes a page's rows that land, and its marks where the dataset keeps them.
    fn write(&mut self, landing: &[RecordBatch], marks: &RecordBatch) -> Result<(), ApiError> {
        let writing = |error: &dyn std::fmt::Display| ApiError::internal(format!("writing the dataset: {error}"));
        match self {
            ChunkFiles::Files { dataset, rows } => {
                landing.iter().try_for_each(|batch| dataset.write_into(rows, batch).map_err(|error| writing(&error)))
            }
            ChunkFiles::Table { rows: (table, files), marks: (rejected, marked) } => {
                landing.iter().try_for_each(|batch| table.write_into(files, batch).map_err(|error| writing(&error)))?;
                rejected
                    .write_into(marked, marks)
                    .map_err(|error| ApiError::internal(format!("writing the rejected table: {error}")))
            }
        }
    }
}

/// A chunk's files, with the last decoded page being written to them on a
/// task of its own while the next page is decoded. One page is written at a
/// time, in order.
enum ChunkWriter {
    Idle(ChunkFiles),
    Writing(PageWrite),
}

impl ChunkWriter {
    /// Starts writing a page's rows and marks, once the page before is written.
    async fn write(self, landing: Vec<RecordBatch>, marks: RecordBatch) -> Result<ChunkWriter, ApiError> {
        let mut files = self.written().await?;
        Ok(ChunkWriter::Writing(PageWrite(tokio::spawn(crate::api::off_runtime(move || {
            files.write(&landing, &marks)?;
            Ok(files)
        })))))
    }

    /// The files, once every page given is written.
    async fn written(self) -> Result<ChunkFiles, ApiError> {
        match self {
            ChunkWriter::Idle(files) => Ok(files),
            ChunkWriter::Writing(mut write) => {
                (&mut write.0).await.map_err(|error| ApiError::internal(format!("writing replayed rows: {error}")))?
            }
        }
    }
}

/// A page being written, stopped if the replay is dropped.
struct PageWrite(tokio::task::JoinHandle<Result<ChunkFiles, ApiError>>);

impl Drop for PageWrite {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a replay did.
#[derive(Debug, Default)]
struct Totals {
    landed: u64,
    filtered: u64,
    still_rejected: u64,
    truncated: u64,
    chunks: u64,
    /// Where the time went: reading the error log, decoding, landing (writes and commits).
    reading: std::time::Duration,
    decoding: std::time::Duration,
    landing: std::time::Duration,
}

impl Totals {
    /// Counts what a chunk's rows gave and makes it the chunk the store and table take.
    fn count_chunk(
        &mut self,
        source: &Source,
        version: &StoredVersion,
        replayed_at: DateTime<Utc>,
        decoded: DecodedPage,
    ) -> ReplayChunk {
        self.truncated += decoded.truncated;
        self.chunks += 1;
        for outcome in &decoded.outcomes {
            match outcome.replayed {
                Replayed::Landed => self.landed += 1,
                Replayed::Filtered => self.filtered += 1,
                Replayed::StillRejected { .. } => self.still_rejected += 1,
            }
        }
        ReplayChunk {
            source: source.name.clone(),
            version: version.version,
            marker: 0,
            replayed_at,
            outcomes: decoded.outcomes,
            counts: decoded
                .counts
                .into_iter()
                .map(|(shard_id, (rows, filtered))| ShardCounts { shard_id, rows, filtered, ..ShardCounts::default() })
                .collect(),
            files: Vec::new(),
        }
    }
}

/// A chunk being landed on a task of its own, stopped if the replay is dropped
/// (as a stop of the server would: the next replay or start settles it).
struct LandingChunk(tokio::task::JoinHandle<Result<std::time::Duration, ApiError>>);

impl LandingChunk {
    fn start(store: Arc<Store>, scope: String, files: ChunkFiles, chunk: ReplayChunk) -> LandingChunk {
        LandingChunk(tokio::spawn(async move {
            let landing_at = std::time::Instant::now();
            match files {
                ChunkFiles::Files { dataset, rows } => land_in_files(&store, dataset, rows, chunk).await?,
                ChunkFiles::Table { rows, marks } => land_in_table(&store, &scope, rows, marks, chunk).await?,
            }
            Ok(landing_at.elapsed())
        }))
    }

    /// How long the landing took, once it is done.
    async fn landed(mut self) -> Result<std::time::Duration, ApiError> {
        (&mut self.0).await.map_err(|error| ApiError::internal(format!("landing a replayed chunk: {error}")))?
    }
}

impl Drop for LandingChunk {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Replays `source`'s rejected rows (only `reason`'s, when given) with its
/// committed `version`. One replay per dataset at a time.
pub(crate) async fn replay(
    context: &WorkerContext,
    version: &StoredVersion,
    source: &Source,
    registries: Registries,
    reason: Option<String>,
) -> Result<Value, ApiError> {
    if source.cdc != Cdc::Append {
        return Err(ApiError::BadRequest(
            "a CDC source's rejected changes cannot be replayed: landing an old change now would apply it after \
             newer changes of its key (a dry run still shows what they give)"
                .into(),
        ));
    }
    // A worker's start-up holds the lock briefly; another replay of the dataset may hold it longer.
    let lock = context.replays.of(&source.dataset.name);
    let Ok(_held) = tokio::time::timeout(LOCK_WAIT, lock.lock_owned()).await else {
        return Err(ApiError::Conflict(format!("a replay into dataset `{}` is running already", source.dataset.name)));
    };
    let decoder = Decoder::with_registries(source, registries)
        .map_err(|error| ApiError::BadRequest(format!("the definition: compiling: {error}")))?;
    let scope = checkpoint_scope(&source.name, &source.kinesis.stream_arn.to_string());
    let target = match source.dataset.format {
        DatasetFormat::Parquet => Target::Files(Arc::new(DatasetWriter::new(
            &context.data_dir,
            &source.dataset.name,
            &source.dataset.timestamp,
        ))),
        DatasetFormat::Iceberg => {
            let (rows, rejected) = open_tables(context, source, &decoder.schema()).await?;
            settle_prepared(&context.store, &source.name, &scope, &rows, &rejected)
                .await
                .map_err(ApiError::internal)?;
            Target::Table { rows: Arc::new(rows), rejected: Arc::new(rejected) }
        }
    };
    let decoder = Arc::new(Mutex::new(decoder));
    let replayed_at = Utc::now();
    let mut totals = Totals::default();
    // Rows committed together (one chunk), unless their payloads reach CHUNK_PAYLOAD_BYTES first.
    let chunk_rows = context.settings.replay_chunk_rows.max(1);
    let mut pending = DecodedPage::for_chunk(chunk_rows);
    let mut writer = ChunkWriter::Idle(target.chunk_files());
    // A chunk lands while the next is decoded; chunks land one at a time, in order.
    let mut landing: Option<LandingChunk> = None;
    // Pages no larger than a chunk, so a chunk holds no more rows than asked.
    let page_rows = u32::try_from(chunk_rows).unwrap_or(u32::MAX).min(PAGE_ROWS);
    let (mut pages, reader) = read_ahead(Arc::clone(&context.store), source.name.clone(), reason, page_rows);
    let decoded_all = async {
        loop {
            let page = pages.recv().await.transpose()?;
            let exhausted = page.is_none();
            // The page's share of the read-ahead budget is given back once it is decoded.
            if let Some((page, _held)) = page {
                pending.payload_bytes += page.payload_bytes();
                let decoding_at = std::time::Instant::now();
                let (decoded, landed) = decode_page(Arc::clone(&decoder), source.clone(), page, replayed_at).await?;
                totals.decoding += decoding_at.elapsed();
                pending.absorb(decoded);
                // Written while the next page is decoded.
                writer = writer.write(landed.rows, landed.marks).await?;
            }
            // Pages gather into chunks, each one commit: fewer, larger table commits. The last
            // pages, when read already and few, join the chunk rather than pay a commit of their own.
            let last_pages_join = pages.is_closed() && pages.len() * page_rows as usize <= chunk_rows / 2;
            let full = (pending.outcomes.len() >= chunk_rows && !last_pages_join)
                || pending.payload_bytes >= CHUNK_PAYLOAD_BYTES;
            if (full || exhausted) && !pending.outcomes.is_empty() {
                let decoded = std::mem::replace(&mut pending, DecodedPage::for_chunk(chunk_rows));
                let written = std::mem::replace(&mut writer, ChunkWriter::Idle(target.chunk_files())).written().await?;
                let chunk = totals.count_chunk(source, version, replayed_at, decoded);
                if let Some(previous) = landing.take() {
                    totals.landing += previous.landed().await?;
                }
                landing = Some(LandingChunk::start(Arc::clone(&context.store), scope.clone(), written, chunk));
            }
            if exhausted {
                return Ok::<_, ApiError>(());
            }
        }
    }
    .await;
    // Even when decoding failed, the chunk already landing finishes (or fails) first.
    if let Some(last) = landing.take() {
        totals.landing += last.landed().await?;
    }
    decoded_all?;
    totals.reading = reader.await.map_err(ApiError::internal)?;
    totals.truncated += pending.truncated;
    tracing::info!(
        source = %source.name,
        version = version.version,
        landed = totals.landed,
        filtered = totals.filtered,
        still_rejected = totals.still_rejected,
        reading_ms = totals.reading.as_millis() as u64,
        decoding_ms = totals.decoding.as_millis() as u64,
        landing_ms = totals.landing.as_millis() as u64,
        "replayed the source's rejected rows"
    );
    Ok(json!({
        "dry_run": false,
        "source": source.name,
        "version": version.version,
        "replayed_at": crate::api::time(replayed_at),
        "landed": totals.landed,
        "filtered": totals.filtered,
        "still_rejected": totals.still_rejected,
        "truncated": totals.truncated,
        "chunks": totals.chunks,
        "took_ms": {
            "reading": totals.reading.as_millis() as u64,
            "decoding": totals.decoding.as_millis() as u64,
            "landing": totals.landing.as_millis() as u64,
        },
    }))
}

/// A page of rejected rows read ahead, holding its share of the read-ahead budget until decoded.
type PageAhead = (RejectedPage, tokio::sync::OwnedSemaphorePermit);

/// Threads reading the error log side by side: reading a page from SQLite
/// costs more than decoding it, so one reader left the decoding waiting.
const READERS: usize = 2;

/// Pages of the source's rejected rows (only `reason`'s when given), newest
/// first, read ahead on [`READERS`] threads of their own (up to
/// [`READ_AHEAD_BYTES`]): reading the log then overlaps decoding and landing.
/// The readers end with the time they spent reading, summed.
fn read_ahead(
    store: Arc<Store>,
    source: String,
    reason: Option<String>,
    page_rows: u32,
) -> (tokio::sync::mpsc::UnboundedReceiver<Result<PageAhead, ApiError>>, tokio::task::JoinHandle<std::time::Duration>) {
    let (pages, receiver) = tokio::sync::mpsc::unbounded_channel();
    let reading = PageReading {
        store,
        source,
        reason,
        page_rows,
        pages,
        budget: Arc::new(tokio::sync::Semaphore::new(READ_AHEAD_BYTES)),
        runtime: tokio::runtime::Handle::current(),
        cursor: Mutex::new(Cursor::default()),
        turn: parking_lot::Condvar::new(),
    };
    let readers = tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..READERS).map(|_| scope.spawn(|| reading.read())).collect();
            let mine = reading.read();
            others.into_iter().map(|other| other.join().unwrap_or_default()).fold(mine, |total, spent| total + spent)
        })
    });
    (receiver, readers)
}

/// Where the readers of a replay are: each takes the next page, reads it,
/// and sends it in its turn, so pages arrive in the order of the log.
struct PageReading {
    store: Arc<Store>,
    source: String,
    reason: Option<String>,
    page_rows: u32,
    pages: tokio::sync::mpsc::UnboundedSender<Result<PageAhead, ApiError>>,
    budget: Arc<tokio::sync::Semaphore>,
    runtime: tokio::runtime::Handle,
    cursor: Mutex<Cursor>,
    /// Signalled when a page was sent, or the reading stopped.
    turn: parking_lot::Condvar,
}

#[derive(Debug, Default)]
struct Cursor {
    /// Where the next page to take begins: `None` until the first is taken (the newest rows).
    before: Option<i64>,
    /// Pages taken so far; the next page's turn.
    taken: usize,
    /// Pages sent (or found empty) so far, in order.
    sent: usize,
    /// No page is left to take.
    exhausted: bool,
    /// A reader failed, or the replay stopped: every reader ends.
    stopped: bool,
}

impl PageReading {
    /// One reader: pages until none is left, or the reading stops. Returns the time it spent reading.
    fn read(&self) -> std::time::Duration {
        let _stops_the_others_if_it_panics = StopOnPanic(self);
        let mut spent = std::time::Duration::ZERO;
        let reader = match self.store.error_log_reader() {
            Ok(reader) => reader,
            Err(error) => {
                self.stop(Some(ApiError::from(error)));
                return spent;
            }
        };
        loop {
            let started = std::time::Instant::now();
            // Taking a page is a short look at the source's index; reading it is the long part.
            let (turn, page) = {
                let mut cursor = self.cursor.lock();
                if cursor.exhausted || cursor.stopped {
                    return spent;
                }
                let page = match reader.find_page(&self.source, cursor.before, self.page_rows) {
                    Ok(page) => page,
                    Err(error) => {
                        drop(cursor);
                        self.stop(Some(ApiError::from(error)));
                        return spent;
                    }
                };
                let Some(page) = page else {
                    cursor.exhausted = true;
                    return spent;
                };
                cursor.before = page.next();
                cursor.exhausted = cursor.before.is_none();
                cursor.taken += 1;
                (cursor.taken - 1, page)
            };
            let read = read_rejected_page(&reader, &self.source, self.reason.as_deref(), &page, self.page_rows);
            spent += started.elapsed();
            let page = match read {
                Ok(page) => page,
                Err(error) => {
                    self.stop(Some(ApiError::from(error)));
                    return spent;
                }
            };
            {
                let mut cursor = self.cursor.lock();
                while cursor.sent != turn && !cursor.stopped {
                    self.turn.wait(&mut cursor);
                }
                if cursor.stopped {
                    return spent;
                }
            }
            // In its turn, no other reader sends: the budget is taken in the order pages are decoded.
            if !page.is_empty() {
                let held = page.payload_bytes() + page.len() * ROW_BYTES;
                let budget = Arc::clone(&self.budget).acquire_many_owned(held.min(READ_AHEAD_BYTES) as u32);
                let Ok(permit) = self.runtime.block_on(budget) else {
                    self.stop(None);
                    return spent;
                };
                // A replay that stopped (its receiver gone) stops the reading too.
                if self.pages.send(Ok((page, permit))).is_err() {
                    self.stop(None);
                    return spent;
                }
            }
            self.cursor.lock().sent += 1;
            self.turn.notify_all();
        }
    }

    /// Stops every reader, telling the replay why when one failed.
    fn stop(&self, failure: Option<ApiError>) {
        if let Some(error) = failure {
            let _ = self.pages.send(Err(error));
        }
        self.cursor.lock().stopped = true;
        self.turn.notify_all();
    }
}

/// A reader that panicked stops the others (they would wait for its turn
/// forever) and fails the replay, rather than let it end as if the log did.
struct StopOnPanic<'a>(&'a PageReading);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop(Some(ApiError::internal("a reader of the error log failed")));
        }
    }
}

/// Pages decoded again: what each row gave.
#[derive(Default)]
struct DecodedPage {
    outcomes: Vec<ReplayOutcome>,
    /// Rows landed and filtered, by shard.
    counts: BTreeMap<String, (u64, u64)>,
    truncated: u64,
    payload_bytes: usize,
}

impl DecodedPage {
    /// Pages gathering into a chunk, with room for a chunk's outcomes.
    fn for_chunk(rows: usize) -> DecodedPage {
        DecodedPage { outcomes: Vec::with_capacity(rows), ..DecodedPage::default() }
    }

    fn absorb(&mut self, page: DecodedPage) {
        self.outcomes.extend(page.outcomes);
        for (shard_id, (rows, filtered)) in page.counts {
            let kept = self.counts.entry(shard_id).or_default();
            kept.0 += rows;
            kept.1 += filtered;
        }
        self.truncated += page.truncated;
    }
}

/// What a page decoded again writes: the rows that land, and the rejected
/// table's rows saying what each row gave.
struct PageLanding {
    rows: Vec<RecordBatch>,
    marks: RecordBatch,
}

/// Decodes `page` again: what each row gave, and what the page writes.
async fn decode_page(
    decoder: Arc<Mutex<Decoder>>,
    source: Source,
    page: RejectedPage,
    replayed_at: DateTime<Utc>,
) -> Result<(DecodedPage, PageLanding), ApiError> {
    crate::api::off_runtime(move || {
        let mut decoded = DecodedPage::default();
        let mut marks = Vec::new();
        // Counted by shard as the page holds it, made owned once per shard.
        let mut counts: HashMap<&str, (u64, u64)> = HashMap::new();
        let mut decoder = decoder.lock();
        let landing = decode_again(&source, &mut decoder, &page, &mut |row, now, _| {
            let Some(error_id) = page.id(row) else { return };
            let replayed = match now {
                Now::Truncated => {
                    decoded.truncated += 1;
                    return;
                }
                Now::Lands(_) => Replayed::Landed,
                Now::Filtered(_) => Replayed::Filtered,
                Now::Rejected(rejection) => Replayed::StillRejected {
                    reason: rejection.code().as_str().to_owned(),
                    field: rejection.field.to_string(),
                    message: rejection.message(),
                },
            };
            if let Some(mark) = mark(&page, row, &replayed) {
                marks.push((row, mark));
            }
            let shard = counts.entry(page.shard_id(row)).or_default();
            match replayed {
                Replayed::Landed => shard.0 += 1,
                Replayed::Filtered => shard.1 += 1,
                Replayed::StillRejected { .. } => {}
            }
            decoded.outcomes.push(ReplayOutcome { error_id, replayed });
        })
        .map_err(crate::replay::api_error)?;
        decoded.counts = counts.into_iter().map(|(shard_id, counted)| (shard_id.to_owned(), counted)).collect();
        let marks = page.marks(&marks, replayed_at).map_err(|error| ApiError::internal(format!("marks: {error}")))?;
        Ok((decoded, PageLanding { rows: landing, marks }))
    })
    .await
}

/// What the rejected table says of row `row` of `page` replayed: `REPLAYED`,
/// or its new reason (nothing when the reason did not change).
fn mark(page: &RejectedPage, row: usize, replayed: &Replayed) -> Option<Mark> {
    match replayed {
        Replayed::Landed => Some(Mark::Replayed { landed: true }),
        Replayed::Filtered => Some(Mark::Replayed { landed: false }),
        Replayed::StillRejected { reason, field, message } => {
            let unchanged = reason == page.reason(row) && field == page.field(row) && message == page.message(row);
            (!unchanged).then(|| Mark::Reason {
                reason: reason.clone(),
                field: field.clone(),
                message: message.clone(),
            })
        }
    }
}

/// A Parquet dataset: files closed in staging, then one store transaction, then the files moved into place.
async fn land_in_files(
    store: &Arc<Store>,
    dataset: Arc<DatasetWriter>,
    rows: DatasetFiles,
    mut chunk: ReplayChunk,
) -> Result<(), ApiError> {
    let closing = Arc::clone(&dataset);
    let files = crate::api::off_runtime(move || {
        closing.close(rows, &[]).map_err(|error| ApiError::internal(format!("writing the dataset: {error}")))
    })
    .await?;
    chunk.files.clone_from(&files);
    let store = Arc::clone(store);
    crate::api::off_runtime(move || Ok(store.commit_replay(&chunk)?)).await?;
    failpoint("replay-after-commit");
    // Committed: a failure from here on is finished by the worker's next start.
    dataset.publish(&files).map_err(|error| ApiError::internal(format!("publishing replayed files: {error}")))
}

/// An Iceberg dataset: the store remembers the chunk, the table commit decides, the store settles.
async fn land_in_table(
    store: &Arc<Store>,
    scope: &str,
    (rows, files): (Arc<TableWriter>, TableFiles),
    (rejected, marks): (Arc<TableWriter>, TableFiles),
    mut chunk: ReplayChunk,
) -> Result<(), ApiError> {
    let table_error = |what: &str| {
        let what = what.to_owned();
        move |error: tributary_sink::table::TableError| ApiError::internal(format!("{what}: {error}"))
    };
    chunk.marker = rows.replay_marker(&chunk.source).await.map_err(table_error("reading the replay marker"))? + 1;
    let closing = (Arc::clone(&rows), Arc::clone(&rejected));
    let (written, marks_written) = crate::api::off_runtime(move || {
        let (rows, rejected) = closing;
        // Each close writes what its file still buffers and syncs it: two files, two cores.
        std::thread::scope(|scope| {
            let marks_written =
                scope.spawn(|| rejected.close(marks, &[]).map_err(table_error("writing the rejected table")));
            let written = rows.close(files, &[]).map_err(table_error("writing the table"))?;
            let marks_written = marks_written
                .join()
                .map_err(|_| ApiError::internal("writing the rejected table's marks panicked"))??;
            Ok::<_, ApiError>((written, marks_written))
        })
    })
    .await?;
    chunk.files = written.iter().map(|file| file.manifest.clone()).collect();
    let chunk = Arc::new(chunk);
    let (owned, prepared) = (Arc::clone(store), Arc::clone(&chunk));
    crate::api::off_runtime(move || Ok(owned.prepare_replay(&prepared)?)).await?;
    rows.upload(&written).await.map_err(table_error("uploading the replayed files"))?;
    rejected.upload(&marks_written).await.map_err(table_error("uploading the rejected table's files"))?;
    failpoint("replay-before-table-commit");
    let files = written.into_iter().map(|file| file.data_file).collect();
    let mark_files = marks_written.into_iter().map(|file| file.data_file).collect();
    match rows.commit_replay(scope, &chunk.source, chunk.marker, files, &rejected, mark_files).await {
        Ok(()) => {}
        Err(error) => {
            // Whether it landed is the table's to say: settle by the marker now, or at the next start.
            let landed = settle_prepared(store, &chunk.source, scope, &rows, &rejected).await;
            return match landed {
                Ok(Some(true)) => Ok(()),
                _ => Err(ApiError::Unavailable(format!("committing replayed rows to the table: {error}"))),
            };
        }
    }
    failpoint("replay-after-table-commit");
    let owned = Arc::clone(store);
    crate::api::off_runtime(move || Ok(owned.settle_replay_landed(&chunk)?)).await?;
    Ok(())
}

/// Opens a dataset's table and its rejected table for a replay.
async fn open_tables(
    context: &WorkerContext,
    source: &Source,
    schema: &arrow_schema::Schema,
) -> Result<(TableWriter, TableWriter), ApiError> {
    // The worker of a version just committed may be evolving the table's schema at the same
    // moment: one of the two commits loses the race, and opening again finds the schema evolved.
    let mut attempt = 0;
    let rows = loop {
        let opened = TableWriter::open(
            context.catalog.clone(),
            &source.dataset.name,
            &source.dataset.timestamp,
            schema,
            &crate::table_output::identifier_fields(source),
        )
        .await;
        match opened {
            Ok(rows) => break rows,
            Err(error) if attempt < OPEN_ATTEMPTS && !matches!(error, TableError::Schema(_)) => {
                attempt += 1;
                tracing::debug!(%error, attempt, "opening the dataset's table again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(error) => return Err(ApiError::Unavailable(format!("opening the dataset's table: {error}"))),
        }
    };
    let rejected = TableWriter::open_rejected(context.catalog.clone(), &source.dataset.name)
        .await
        .map_err(|error| ApiError::Unavailable(format!("opening the dataset's rejected table: {error}")))?;
    Ok((rows, rejected))
}

/// Settles a replay chunk a stop left between the store and the table:
/// landed when the table holds its marker (the rejected table then gets its
/// marks if a catalog moving one table at a time stopped before them).
/// `None` when there was none, else whether it landed. The caller holds the
/// dataset's replay lock.
pub(crate) async fn settle_prepared(
    store: &Arc<Store>,
    source: &str,
    scope: &str,
    rows: &TableWriter,
    rejected: &TableWriter,
) -> Result<Option<bool>, String> {
    let owned = (Arc::clone(store), source.to_owned());
    let prepared = crate::api::off_runtime(move || Ok(owned.0.prepared_replay(&owned.1)?))
        .await
        .map_err(|error| format!("{error:?}"))?;
    let Some(chunk) = prepared else { return Ok(None) };
    let table_marker =
        rows.replay_marker(source).await.map_err(|error| format!("reading the replay marker: {error}"))?;
    let landed = table_marker >= chunk.marker;
    if landed {
        let rejected_marker =
            rejected.replay_marker(source).await.map_err(|error| format!("reading the replay marker: {error}"))?;
        if rejected_marker < chunk.marker {
            let ids: Vec<i64> = chunk.outcomes.iter().map(|outcome| outcome.error_id).collect();
            let owned = (Arc::clone(store), source.to_owned());
            let logged = crate::api::off_runtime(move || Ok(owned.0.errors_by_id(&owned.1, &ids)?))
                .await
                .map_err(|error| format!("{error:?}"))?;
            let outcomes: HashMap<i64, &Replayed> =
                chunk.outcomes.iter().map(|outcome| (outcome.error_id, &outcome.replayed)).collect();
            let page = unlogged_page(logged.iter().map(|error| &error.row));
            let marks: Vec<(usize, Mark)> = logged
                .iter()
                .enumerate()
                .filter_map(|(row, error)| Some((row, mark(&page, row, outcomes.get(&error.id)?)?)))
                .collect();
            let marks = page.marks(&marks, chunk.replayed_at).map_err(|error| format!("marks: {error}"))?;
            let written =
                rejected.write(&marks, &[]).map_err(|error| format!("writing the rejected table: {error}"))?;
            rejected.upload(&written).await.map_err(|error| error.to_string())?;
            let files = written.into_iter().map(|file| file.data_file).collect();
            rejected
                .commit_replay_marks(scope, source, chunk.marker, files)
                .await
                .map_err(|error| error.to_string())?;
        }
    }
    let owned = (Arc::clone(store), source.to_owned());
    crate::api::off_runtime(move || Ok(owned.0.settle_replay(&owned.1, landed)?))
        .await
        .map_err(|error| format!("{error:?}"))?;
    tracing::info!(source, landed, "settled the replay chunk a stop left between the store and the table");
    Ok(Some(landed))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use tributary_store::{BatchCommit, ErrorRetention, NewErrorRow};

    use super::*;

    /// Logs one rejected row of `source` per sequence number, each with `reason`.
    fn log_rejections(store: &Store, source: &str, reason: &str, sequence_numbers: std::ops::Range<u32>) {
        let rows: Vec<NewErrorRow> = sequence_numbers
            .map(|sequence_number| {
                let payload = format!("{{\"n\":{sequence_number}}}").into_bytes();
                NewErrorRow {
                    shard_id: "shardId-000000000000".into(),
                    sequence_number: sequence_number.to_string(),
                    sub_sequence: None,
                    arrival_time: Utc::now(),
                    reason: reason.into(),
                    field: "user".into(),
                    message: "not a string".into(),
                    payload_length: payload.len() as u64,
                    payload,
                }
            })
            .collect();
        let scope = format!("{source}@stream");
        let batch = BatchCommit {
            source,
            version: 1,
            scope: &scope,
            files: &[],
            advances: &[],
            rejected: &rows,
            counts: &[],
            retention: ErrorRetention { max_rows: 1_000_000, ..ErrorRetention::default() },
            max_event_micros: None,
        };
        store.commit_batch(&batch, Utc::now()).expect("commit");
    }

    /// The sequence numbers of every page `read_ahead` gives, in the order given.
    async fn read_all(store: Arc<Store>, source: &str, reason: Option<&str>, page_rows: u32) -> (Vec<u32>, usize) {
        let (mut pages, reader) = read_ahead(store, source.to_owned(), reason.map(str::to_owned), page_rows);
        let (mut read, mut count) = (Vec::new(), 0);
        while let Some(page) = pages.recv().await {
            let (page, _held) = page.expect("page");
            assert!(page.len() <= page_rows as usize, "a page of {} rows, asked {page_rows}", page.len());
            read.extend((0..page.len()).map(|row| page.sequence_number(row).parse::<u32>().expect("number")));
            count += 1;
        }
        reader.await.expect("readers");
        (read, count)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_side_by_side_give_every_row_of_the_source_once_newest_first() {
        let directory = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&directory.path().join("tributary.db")).expect("store"));
        // Two sources' rows interleave in the log, and `a` has rows of two reasons.
        for round in 0..10 {
            log_rejections(&store, "a", "TYPE_MISMATCH", round * 100..round * 100 + 70);
            log_rejections(&store, "b", "TYPE_MISMATCH", round * 100..round * 100 + 40);
            log_rejections(&store, "a", "PARSE_ERROR", round * 100 + 70..round * 100 + 100);
        }
        let newest_first = |numbers: &mut dyn Iterator<Item = u32>| {
            let mut numbers: Vec<u32> = numbers.collect();
            numbers.sort_unstable_by(|left, right| right.cmp(left));
            numbers
        };
        let (every_a, pages) = read_all(Arc::clone(&store), "a", None, 64).await;
        assert_eq!(every_a, newest_first(&mut (0..1000)));
        assert!(pages >= 1000 / 64, "{pages} pages of at most 64 rows");
        let (type_mismatches, _) = read_all(Arc::clone(&store), "a", Some("TYPE_MISMATCH"), 64).await;
        assert_eq!(type_mismatches, newest_first(&mut (0..1000).filter(|n| n % 100 < 70)));
        let (every_b, _) = read_all(Arc::clone(&store), "b", None, 7).await;
        assert_eq!(every_b, newest_first(&mut (0..1000).filter(|n| n % 100 < 40)));
        let (none, pages) = read_all(store, "c", None, 64).await;
        assert!(none.is_empty() && pages == 0, "a source with no rows gives no page");
    }
}
