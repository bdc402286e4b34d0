//! `GetRecords`: the reader's own signed call once the route is known
//! (see [`crate::route`]), the SDK's before.

use serde::Serialize;

use crate::ReaderError;
use crate::answer::{Answer, parse_answer};
use crate::cursor::Received;
use crate::fault::{Fault, classify};
use crate::route::RouteCell;
use crate::shard::child_infos;
use crate::signing::Operation;

/// One `GetRecords` call: ours when the route is known, else the SDK's.
pub(crate) async fn get_records(
    client: &aws_sdk_kinesis::Client,
    route: &RouteCell,
    stream_arn: &str,
    iterator: &str,
    limit: i32,
    shard_id: &str,
) -> Result<Answer, Fault> {
    let Some(route) = route.get() else {
        return sdk_get_records(client, stream_arn, iterator, limit, shard_id).await;
    };
    let body = serde_json::to_vec(&Request { shard_iterator: iterator, limit, stream_arn })
        .map_err(|e| Fault::Fatal(ReaderError::Internal(format!("GetRecords request: {e}"))))?;
    let answer = route.call(Operation::GetRecords, body, shard_id).await?;
    parse_answer(&answer, shard_id)
}

#[derive(Serialize)]
struct Request<'a> {
    #[serde(rename = "ShardIterator")]
    shard_iterator: &'a str,
    #[serde(rename = "Limit")]
    limit: i32,
    #[serde(rename = "StreamARN")]
    stream_arn: &'a str,
}

/// The SDK's `GetRecords`, for the calls made before the route is known.
async fn sdk_get_records(
    client: &aws_sdk_kinesis::Client,
    stream_arn: &str,
    iterator: &str,
    limit: i32,
    shard_id: &str,
) -> Result<Answer, Fault> {
    let output = client
        .get_records()
        .stream_arn(stream_arn)
        .shard_iterator(iterator)
        .limit(limit)
        .send()
        .await
        .map_err(|error| classify(&error, "GetRecords", shard_id))?;
    let records = Received::from_sdk(output.records, shard_id).map_err(|error| match error {
        crate::cursor::DeliveryError::Fatal(error) => Fault::Fatal(error),
        crate::cursor::DeliveryError::Stopped => Fault::Transient("stopped".to_owned()),
    })?;
    Ok(Answer {
        received: records,
        next_shard_iterator: output.next_shard_iterator,
        millis_behind_latest: output.millis_behind_latest,
        children: child_infos(output.child_shards.unwrap_or_default()),
    })
}
