//! Extraction: list every stream, filter, then describe, list shards and
//! sample the admitted streams, a bounded number at a time.
//!
//! The filter runs on the listing, before any per-stream call, so excluded
//! streams cost nothing. A failure on one stream is recorded and the others
//! go on; only a failed listing (which would make "stale" meaningless) fails
//! the extraction.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tributary_reader::catalog::{Catalog, CatalogError, ListedShard, SampleSettings, StreamSummary};

use crate::filter::TopicFilter;
use crate::payload::sample_text;

/// What one stream turned out to be.
#[derive(Debug, Clone)]
pub struct StreamFindings {
    /// `DescribeStreamSummary`'s answer.
    pub summary: StreamSummary,
    /// Every listed shard.
    pub shards: Vec<ListedShard>,
    /// Sample messages, decoded once, when sampling was asked for.
    pub sample: Option<Vec<String>>,
}

impl StreamFindings {
    /// Shards that still take records: a topic's partitions.
    pub fn open_shards(&self) -> usize {
        self.shards.iter().filter(|shard| shard.open).count()
    }
}

/// The outcome of a whole extraction.
#[derive(Debug, Default)]
pub struct Extraction {
    /// Every stream the account lists.
    pub listed: Vec<String>,
    /// Streams the filter admitted, in listing order.
    pub admitted: Vec<String>,
    /// Streams described in full, in listing order.
    pub streams: Vec<StreamFindings>,
    /// Streams that failed, with why.
    pub failed: Vec<(String, CatalogError)>,
}

/// Progress as streams finish.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Streams done (described or failed).
    pub done: usize,
    /// Streams admitted by the filter.
    pub total: usize,
}

/// Runs the extraction; `on_progress` is called after each stream.
pub(crate) async fn extract(
    catalog: &Catalog,
    filter: &TopicFilter,
    concurrency: usize,
    sample: Option<SampleSettings>,
    on_progress: &(dyn Fn(Progress) + Sync),
) -> Result<Extraction, CatalogError> {
    let listed = catalog.list_streams().await?;
    let admitted: Vec<_> = listed.iter().filter(|stream| filter.admits(&stream.name)).cloned().collect();
    let total = admitted.len();
    on_progress(Progress { done: 0, total });

    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let sample = sample.map(Arc::new);
    let mut tasks = JoinSet::new();
    for (index, stream) in admitted.iter().enumerate() {
        let (catalog, permits, sample, stream) =
            (catalog.clone(), Arc::clone(&permits), sample.clone(), stream.clone());
        tasks.spawn(async move {
            // Never closed: a permit is always granted in turn.
            let _permit = permits.acquire_owned().await.ok();
            (index, describe(&catalog, &stream.name, stream.arn.as_deref(), sample.as_deref()).await)
        });
    }
    let mut done = 0;
    let mut outcomes: Vec<Option<Result<StreamFindings, CatalogError>>> = (0..total).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let Ok((index, outcome)) = joined else { continue };
        outcomes[index] = Some(outcome);
        done += 1;
        on_progress(Progress { done, total });
    }
    let mut extraction = Extraction {
        listed: listed.iter().map(|stream| stream.name.clone()).collect(),
        admitted: admitted.iter().map(|stream| stream.name.clone()).collect(),
        ..Extraction::default()
    };
    for (stream, outcome) in admitted.iter().zip(outcomes) {
        match outcome {
            Some(Ok(findings)) => extraction.streams.push(findings),
            Some(Err(error)) => extraction.failed.push((stream.name.clone(), error)),
            None => extraction.failed.push((
                stream.name.clone(),
                CatalogError {
                    operation: "DescribeStreamSummary",
                    target: stream.name.clone(),
                    kind: tributary_reader::catalog::CatalogErrorKind::Refused,
                    detail: "the task describing it ended unexpectedly".to_owned(),
                },
            )),
        }
    }
    Ok(extraction)
}

/// Describes one stream: summary and shards at once, then the sample.
async fn describe(
    catalog: &Catalog,
    name: &str,
    listed_arn: Option<&str>,
    sample: Option<&SampleSettings>,
) -> Result<StreamFindings, CatalogError> {
    let (summary, shards) = match listed_arn {
        Some(arn) => {
            let (summary, shards) = tokio::join!(catalog.describe_summary(name), catalog.list_shards(arn));
            (summary?, shards?)
        }
        None => {
            let summary = catalog.describe_summary(name).await?;
            let shards = catalog.list_shards(&summary.arn).await?;
            (summary, shards)
        }
    };
    let sample = match sample {
        Some(settings) => {
            // In hash-key order, so that the sampler's waves spread over the range.
            let mut open: Vec<(u128, String)> = shards
                .iter()
                .filter(|shard| shard.open)
                .map(|shard| {
                    let start = shard.hash_key_range.as_ref().and_then(|(start, _)| start.parse().ok());
                    (start.unwrap_or(u128::MAX), shard.shard_id.clone())
                })
                .collect();
            open.sort();
            let open: Vec<String> = open.into_iter().map(|(_, shard_id)| shard_id).collect();
            let records = catalog.sample(&summary.arn, &open, settings, summary.created).await?;
            Some(records.iter().map(|record| sample_text(&record.data)).collect())
        }
        None => None,
    };
    Ok(StreamFindings { summary, shards, sample })
}
