//! A dry run of replaying rejected rows: the rows a source rejected are
//! decoded again with its current definition (or a draft not committed yet)
//! and put through the definition's rules, and the answer says how many would
//! now land, by their old reason, with examples side by side (the rejection,
//! and the row it now gives or why it is still refused). Nothing is written.
//!
//! The rules a replayed row meets are the definition's `where`, `sample` and
//! `since`/`until`, as for any row; never lateness: a replayed row is old by
//! nature, and replaying it is the user's explicit wish. A row whose payload
//! the error log kept only in part cannot be decoded again, and is counted
//! apart. The error log keeps no partition key, so one is empty in a
//! replayed row's `include_metadata` column.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use tributary_codec::{DecodeError, Decoder, RecordMeta, Registries, Rejection, SourceRules};
use tributary_proto::v1::SourceDefinition;
use tributary_source::Source;

use crate::AppState;
use crate::errors::ApiError;
use crate::replay_page::{PAGE_ROWS, RejectedPage, rejected_page};

/// How many examples of each old reason the answer shows.
pub(crate) const EXAMPLES_PER_REASON: usize = 5;

/// Rows decoded before their rules run (and the decoder is emptied).
const DECODE_ROWS_AT_ONCE: usize = 4096;

/// Why a dry run could not answer.
#[derive(Debug)]
pub(crate) enum DryRunError {
    /// The definition does not compile into a decoder.
    Definition(String),
    /// The schema registry did not answer: nothing can be said yet.
    RegistryUnavailable(String),
    /// Decoding or the rules failed inside.
    Internal(String),
}

/// What a row gives now.
pub(crate) enum Now {
    /// Decodes and passes the rules: `row` of the decoded batch.
    Lands(usize),
    /// Decodes, but the rules leave it out.
    Filtered(usize),
    /// Still refused, with the new reason (put in words only for an example).
    Rejected(Rejection),
    /// Only part of its payload was kept.
    Truncated,
}

#[derive(Default)]
struct ReasonTally {
    rows: u64,
    lands: u64,
    filtered: u64,
    rejected: u64,
    truncated: u64,
    examples: Vec<Value>,
}

/// A dry run in progress: fed the stored rows page by page (so memory stays
/// bounded by a page), answered at the end. Runs on a blocking thread
/// (registry look-ups block).
pub(crate) struct DryRun<'a> {
    source: &'a Source,
    decoder: Decoder,
    tallies: BTreeMap<String, ReasonTally>,
}

impl<'a> DryRun<'a> {
    /// A dry run with `source` and the schema registries it reads.
    pub(crate) fn new(source: &'a Source, registries: Registries) -> Result<DryRun<'a>, DryRunError> {
        let decoder = Decoder::with_registries(source, registries)
            .map_err(|error| DryRunError::Definition(format!("compiling: {error}")))?;
        Ok(DryRun { source, decoder, tallies: BTreeMap::new() })
    }

    /// Decodes `rejected` and tallies what each row gives now.
    pub(crate) fn add(&mut self, rejected: &RejectedPage) -> Result<(), DryRunError> {
        let tallies = &mut self.tallies;
        decode_again(self.source, &mut self.decoder, rejected, &mut |row, now, batch| {
            tally(tallies, rejected, row, now, batch);
        })?;
        Ok(())
    }

    /// The totals, and per old reason the counts and examples.
    pub(crate) fn answer(self) -> Value {
        let mut totals = ReasonTally::default();
        let by_reason: Vec<Value> = self
            .tallies
            .into_iter()
            .map(|(reason, tally)| {
                totals.rows += tally.rows;
                totals.lands += tally.lands;
                totals.filtered += tally.filtered;
                totals.rejected += tally.rejected;
                totals.truncated += tally.truncated;
                json!({
                    "reason": reason,
                    "rows": tally.rows,
                    "would_land": tally.lands,
                    "filtered": tally.filtered,
                    "still_rejected": tally.rejected,
                    "truncated": tally.truncated,
                    "examples": tally.examples,
                })
            })
            .collect();
        json!({
            "dry_run": true,
            "examined": totals.rows,
            "would_land": totals.lands,
            "filtered": totals.filtered,
            "still_rejected": totals.rejected,
            "truncated": totals.truncated,
            "by_reason": by_reason,
        })
    }
}

/// Decodes `rejected` again with `source` and puts the rows through its
/// rules (never judging lateness), telling `each` what every row (by index)
/// gives now (with the decoded batch its row index points into). Returns the
/// batches of the rows that land, in order.
pub(crate) fn decode_again(
    source: &Source,
    decoder: &mut Decoder,
    rejected: &RejectedPage,
    each: &mut dyn FnMut(usize, Now, Option<&RecordBatch>),
) -> Result<Vec<RecordBatch>, DryRunError> {
    let mut landing = Vec::new();
    let mut chunk: Vec<usize> = Vec::with_capacity(DECODE_ROWS_AT_ONCE.min(rejected.len()));
    for row in 0..rejected.len() {
        if rejected.truncated(row) {
            each(row, Now::Truncated, None);
            continue;
        }
        if chunk.len() >= DECODE_ROWS_AT_ONCE || !decoder.has_room_for(rejected.payload(row).len()) {
            settle(source, decoder, rejected, &chunk, each, &mut landing)?;
            chunk.clear();
        }
        chunk.push(row);
    }
    settle(source, decoder, rejected, &chunk, each, &mut landing)?;
    Ok(landing)
}

/// Decodes the rows `chunk` of `rejected` and tells `each` what every row
/// gives. When the decoded rows do not line up one to one with the accepted
/// records (a CDC source's deletes are merged apart), each record is decoded
/// on its own instead.
fn settle(
    source: &Source,
    decoder: &mut Decoder,
    rejected: &RejectedPage,
    chunk: &[usize],
    each: &mut dyn FnMut(usize, Now, Option<&RecordBatch>),
    landing: &mut Vec<RecordBatch>,
) -> Result<(), DryRunError> {
    if chunk.is_empty() {
        return Ok(());
    }
    let mut accepted = Vec::with_capacity(chunk.len());
    for &row in chunk {
        let meta = RecordMeta {
            shard_id: rejected.shard_id(row),
            sequence_number: rejected.sequence_number(row),
            sub_sequence: rejected.sub_sequence(row),
            partition_key: "",
            arrival_time_micros: rejected.arrival_time_micros(row),
        };
        match decoder.decode(rejected.payload(row), &meta) {
            Ok(is_accepted) => accepted.push(is_accepted),
            Err(DecodeError::RegistryUnavailable(reason)) => return Err(DryRunError::RegistryUnavailable(reason)),
            Err(error) => return Err(DryRunError::Internal(error.to_string())),
        }
    }
    let decoded = decoder.flush().map_err(|error| DryRunError::Internal(error.to_string()))?;
    let accepted_count = accepted.iter().filter(|accepted| **accepted).count();
    if decoded.batch.num_rows() != accepted_count && chunk.len() > 1 {
        for row in chunk {
            settle(source, decoder, rejected, std::slice::from_ref(row), each, landing)?;
        }
        return Ok(());
    }
    let applied = SourceRules::new(source, None)
        .without_lateness()
        .apply(&decoded.batch)
        .map_err(|error| DryRunError::Internal(format!("the definition's rules: {error}")))?;
    let (mut next_row, mut rejections) = (0, decoded.rejections.into_iter());
    for (&row, is_accepted) in chunk.iter().zip(accepted) {
        let now = if is_accepted {
            let decoded_row = next_row;
            next_row += 1;
            match applied.outcomes.get(decoded_row) {
                Some(outcome) if outcome.is_written() => Now::Lands(decoded_row),
                _ => Now::Filtered(decoded_row),
            }
        } else {
            match rejections.next() {
                Some(rejection) => Now::Rejected(rejection),
                None => return Err(DryRunError::Internal("a rejected record gave no rejection".to_owned())),
            }
        };
        each(row, now, Some(&decoded.batch));
    }
    if applied.batch.num_rows() > 0 {
        landing.push(applied.batch);
    }
    Ok(())
}

fn tally(
    tallies: &mut BTreeMap<String, ReasonTally>,
    rejected: &RejectedPage,
    row: usize,
    now: Now,
    batch: Option<&RecordBatch>,
) {
    let reason = rejected.reason(row);
    if !tallies.contains_key(reason) {
        tallies.insert(reason.to_owned(), ReasonTally::default());
    }
    let Some(tally) = tallies.get_mut(reason) else { return };
    tally.rows += 1;
    match &now {
        Now::Lands(_) => tally.lands += 1,
        Now::Filtered(_) => tally.filtered += 1,
        Now::Rejected(_) => tally.rejected += 1,
        Now::Truncated => tally.truncated += 1,
    }
    if tally.examples.len() < EXAMPLES_PER_REASON {
        tally.examples.push(example(rejected, row, &now, batch));
    }
}

/// One row side by side: how it was rejected, and what it gives now.
fn example(rejected: &RejectedPage, row: usize, now: &Now, batch: Option<&RecordBatch>) -> Value {
    let (payload, encoding) = crate::api::readable_payload(rejected.payload(row));
    let decoded_row = |index: usize| batch.and_then(|batch| row_json(batch, index)).unwrap_or(Value::Null);
    let now = match now {
        Now::Lands(index) => json!({ "outcome": "lands", "row": decoded_row(*index) }),
        Now::Filtered(index) => json!({ "outcome": "filtered", "row": decoded_row(*index) }),
        Now::Rejected(rejection) => json!({
            "outcome": "rejected",
            "reason": rejection.code().as_str(),
            "field": rejection.field.as_ref(),
            "message": rejection.message(),
        }),
        Now::Truncated => json!({
            "outcome": "truncated",
            "message": format!(
                "the error log kept {} of its {} bytes",
                rejected.payload(row).len(),
                rejected.payload_length(row)
            ),
        }),
    };
    json!({
        "id": rejected.id(row),
        "version": rejected.version(row),
        "shard_id": rejected.shard_id(row),
        "sequence_number": rejected.sequence_number(row),
        "sub_sequence": rejected.sub_sequence(row),
        "payload": payload,
        "payload_encoding": encoding,
        "was": { "reason": rejected.reason(row), "field": rejected.field(row), "message": rejected.message(row) },
        "now": now,
    })
}

/// Row `index` of `batch` as a JSON object (Arrow's JSON writer: timestamps as text).
fn row_json(batch: &RecordBatch, index: usize) -> Option<Value> {
    let mut writer = arrow_json::ArrayWriter::new(Vec::new());
    writer.write(&batch.slice(index, 1)).ok()?;
    writer.finish().ok()?;
    let rows: Vec<Value> = serde_json::from_slice(&writer.into_inner()).ok()?;
    rows.into_iter().next()
}

/// `POST /api/v1/sources/{name}/replay`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    /// Only say what a replay would do.
    #[serde(default)]
    dry_run: bool,
    /// Only the rows rejected for this reason code.
    reason: Option<String>,
    /// A definition not committed yet (a commit's source), instead of the current version.
    draft: Option<SourceDefinition>,
}

/// `POST /api/v1/sources/{name}/replay`: with `dry_run`, how many of the
/// source's rejected rows (all, or one reason's) would now land, decoded with
/// the current version or a draft; without, lands them (see `replay_run`).
pub(crate) async fn replay_source(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    if crate::api::body_encoding(&headers)? {
        return Err(ApiError::UnsupportedMediaType("a replay request is JSON (Content-Type: application/json)".into()));
    }
    let body = crate::api::body_bytes(body)?;
    let request: ReplayRequest = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("the body is not a JSON replay request: {error}")))?;
    if !request.dry_run && request.draft.is_some() {
        return Err(ApiError::BadRequest(
            "a replay lands rows with the committed version: commit the draft first (a draft serves dry runs)".into(),
        ));
    }
    if !request.dry_run && state.supervisor.cluster().is_some() {
        return Err(ApiError::NotImplemented(
            "a replay that lands rows runs on a single-process server; in cluster mode only dry runs are available"
                .into(),
        ));
    }
    let reading = state.clone();
    let looked_up = name.clone();
    let summary = crate::api::off_runtime(move || Ok(reading.store.source(&looked_up)?)).await?;
    let Some(summary) = summary.filter(|summary| summary.deleted_at.is_none()) else {
        return Err(ApiError::not_found(format!("no source named `{name}`")));
    };
    let policy = state.supervisor.secret_policy();
    let (source, decoded_with) = match request.draft {
        Some(draft) => {
            let source = tributary_source::validate_commit_with(&[draft], Utc::now(), policy)
                .map_err(|errors| {
                    let described: Vec<String> = errors
                        .iter()
                        .map(|error| format!("{} {}: {}", error.code, error.field, error.message))
                        .collect();
                    ApiError::BadRequest(format!("the draft is not a valid definition: {}", described.join("; ")))
                })?
                .pop()
                .ok_or_else(|| ApiError::BadRequest("the draft holds no source".into()))?;
            if source.name != name {
                return Err(ApiError::BadRequest(format!("the draft is of source `{}`, not `{name}`", source.name)));
            }
            (source, json!("draft"))
        }
        None => {
            let source = crate::supervisor::stored_source(&summary.current, policy)
                .map_err(|error| ApiError::BadRequest(format!("the source's definition: {error}")))?;
            (source, json!(summary.current.version))
        }
    };
    let registries = crate::registries::registries_for(&state.supervisor.context().aws, &source)
        .await
        .map_err(|error| ApiError::BadRequest(format!("schema registry: {error}")))?;
    if !request.dry_run {
        let mut answer = crate::replay_run::replay(
            state.supervisor.context(),
            &summary.current,
            &source,
            registries,
            request.reason,
        )
        .await?;
        answer["decoded_with"] = decoded_with;
        return Ok(Json(answer));
    }
    // In cluster mode the rejected table is the error log every node shares.
    let shared = match state.supervisor.cluster() {
        Some(_) => Some(crate::cluster_api::rejected_rows_of(&state, &summary.current, request.reason.clone()).await?),
        None => None,
    };
    let store = Arc::clone(&state.store);
    let reason = request.reason;
    let mut answer = crate::api::off_runtime(move || {
        let mut run = DryRun::new(&source, registries).map_err(api_error)?;
        match shared {
            Some(rows) => run.add(&rows).map_err(api_error)?,
            None => {
                let mut before = None;
                loop {
                    let (page, next) = rejected_page(&store, &source.name, reason.as_deref(), before, PAGE_ROWS)?;
                    run.add(&page).map_err(api_error)?;
                    if next.is_none() {
                        break;
                    }
                    before = next;
                }
            }
        }
        Ok(run.answer())
    })
    .await?;
    answer["source"] = json!(name);
    answer["decoded_with"] = decoded_with;
    Ok(Json(answer))
}

pub(crate) fn api_error(error: DryRunError) -> ApiError {
    match error {
        DryRunError::Definition(message) => ApiError::BadRequest(format!("the definition: {message}")),
        DryRunError::RegistryUnavailable(reason) => {
            ApiError::Unavailable(format!("the schema registry did not answer: {reason}"))
        }
        DryRunError::Internal(detail) => ApiError::internal(detail),
    }
}
