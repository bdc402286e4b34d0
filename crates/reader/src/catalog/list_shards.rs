//! [`ListShards`](https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListShards.html):
//! every shard Kinesis still lists, open and closed.
//!
//! The first page names the stream; later pages carry **only** `NextToken`
//! (Kinesis refuses a stream name or ARN beside it). A shard is open while its
//! `SequenceNumberRange` has no `EndingSequenceNumber`; a split or merged
//! parent stays listed, closed, until it ages out of retention.

use std::time::Duration;

use aws_sdk_kinesis::types::Shard;

use super::{Catalog, CatalogError, Failure};
use crate::fault::{Fault, classify};
use crate::shard::shard_info;

/// A shard as `ListShards` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedShard {
    /// Its id.
    pub shard_id: String,
    /// Its parent and adjacent parent, if any.
    pub parents: Vec<String>,
    /// Whether it still takes new records.
    pub open: bool,
    /// Its hash-key range (decimal strings), as Kinesis listed it.
    pub hash_key_range: Option<(String, String)>,
}

/// Every shard of `stream_arn`, page by page (shared with the reader's discovery).
pub(crate) async fn list_all_shards(
    client: &aws_sdk_kinesis::Client,
    stream_arn: &str,
    page_size: i32,
    timeout: Duration,
) -> Result<Vec<Shard>, Fault> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let request = match &next_token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_arn(stream_arn),
        };
        let page = match tokio::time::timeout(timeout, request.max_results(page_size).send()).await {
            Ok(Ok(page)) => page,
            Ok(Err(error)) => return Err(classify(&error, "ListShards", stream_arn)),
            Err(_elapsed) => return Err(Fault::Transient("ListShards timed out".to_owned())),
        };
        shards.extend(page.shards.unwrap_or_default());
        match page.next_token {
            Some(token) if !token.is_empty() => next_token = Some(token),
            _ => return Ok(shards),
        }
    }
}

impl Catalog {
    /// Every shard of the stream `stream_arn`, open and closed.
    pub async fn list_shards(&self, stream_arn: &str) -> Result<Vec<ListedShard>, CatalogError> {
        let shards = self
            .retrying("ListShards", stream_arn, || async {
                list_all_shards(&self.client, stream_arn, self.config.shards_page_size, self.config.call_timeout)
                    .await
                    .map_err(Failure::from_fault)
            })
            .await?;
        Ok(shards
            .iter()
            .map(|shard| {
                let info = shard_info(shard);
                ListedShard {
                    shard_id: info.shard_id,
                    parents: info.parents,
                    open: shard.sequence_number_range().is_none_or(|range| range.ending_sequence_number().is_none()),
                    hash_key_range: shard
                        .hash_key_range()
                        .map(|range| (range.starting_hash_key().to_owned(), range.ending_hash_key().to_owned())),
                }
            })
            .collect())
    }
}
