//! A lighter `GetRecords` answer.
//!
//! The SDK turns every record of a `GetRecords` answer into owned strings and
//! a byte vector through a generic JSON tokenizer, which costs more CPU per
//! record than decoding the record afterwards. An interceptor on each
//! `GetRecords` call diverts the answer's body: it parses the `Records` array
//! itself (borrowed strings, every payload base64-decoded into one shared
//! buffer) and hands the SDK the rest of the answer (`NextShardIterator`,
//! `MillisBehindLatest`, `ChildShards`) verbatim, without the records. An
//! answer it cannot parse goes to the SDK untouched, which then reads (or
//! refuses) it as usual.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body::{Body, Frame};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::cursor::IncomingRecord;
use crate::position::SequenceNumber;

/// Where a diverted answer's records wait for the consumer that made the call.
pub(crate) type RecordSlot = Arc<Mutex<Option<Vec<IncomingRecord>>>>;

tokio::task_local! {
    /// The slot of the `GetRecords` call being made in this task. The SDK runs
    /// a call (interceptors, body reads) inside the caller's future, so one
    /// interceptor registered on the client finds each call's slot here, with
    /// no per-call plugin to merge.
    pub(crate) static RECORD_SLOT: RecordSlot;
}

/// Diverts the records of `GetRecords` answers into the calling task's [`RECORD_SLOT`].
#[derive(Debug)]
pub(crate) struct DivertRecords;

impl Intercept for DivertRecords {
    fn name(&self) -> &'static str {
        "DivertRecords"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response_mut();
        let Ok(slot) = RECORD_SLOT.try_with(Arc::clone) else {
            return Ok(());
        };
        if !response.status().is_success() {
            return Ok(());
        }
        // Sized once from Content-Length: answers run to megabytes.
        let length = response.headers().get("content-length").and_then(|value| value.parse::<usize>().ok());
        let buffer = Vec::with_capacity(length.unwrap_or(0).min(16 * 1024 * 1024));
        let inner = std::mem::replace(response.body_mut(), SdkBody::taken());
        *response.body_mut() = SdkBody::from_body_1_x(Diverting { inner, buffer, slot, done: false });
        Ok(())
    }
}

/// Collects the whole answer, then yields it without its records.
struct Diverting {
    inner: SdkBody,
    buffer: Vec<u8>,
    slot: RecordSlot,
    done: bool,
}

impl Body for Diverting {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Poll::Ready(None) => {
                    self.done = true;
                    let body = std::mem::take(&mut self.buffer);
                    let passed_on = match split_records(&body) {
                        Ok((records, rest)) => {
                            *self.slot.lock() = Some(records);
                            rest
                        }
                        Err(_) => body,
                    };
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(passed_on)))));
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct WireRecord<'a> {
    #[serde(rename = "SequenceNumber", borrow)]
    sequence_number: Cow<'a, str>,
    #[serde(rename = "PartitionKey", borrow)]
    partition_key: Cow<'a, str>,
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
    #[serde(rename = "ApproximateArrivalTimestamp", default)]
    arrival: Option<f64>,
}

/// A `GetRecords` answer: the records parsed, everything the SDK still needs kept verbatim.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<WireRecord<'a>>,
    #[serde(rename = "NextShardIterator", borrow, default)]
    next_shard_iterator: Option<&'a RawValue>,
    #[serde(rename = "MillisBehindLatest", borrow, default)]
    millis_behind_latest: Option<&'a RawValue>,
    #[serde(rename = "ChildShards", borrow, default)]
    child_shards: Option<&'a RawValue>,
}

/// The records of a `GetRecords` answer, and the answer without them (one pass).
pub(crate) fn split_records(body: &[u8]) -> Result<(Vec<IncomingRecord>, Vec<u8>), String> {
    let answer: Answer<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut rest = Vec::with_capacity(256);
    rest.push(b'{');
    for (key, value) in [
        ("NextShardIterator", answer.next_shard_iterator),
        ("MillisBehindLatest", answer.millis_behind_latest),
        ("ChildShards", answer.child_shards),
    ] {
        if let Some(value) = value {
            if rest.len() > 1 {
                rest.push(b',');
            }
            rest.extend_from_slice(format!("\"{key}\":").as_bytes());
            rest.extend_from_slice(value.get().as_bytes());
        }
    }
    rest.push(b'}');
    Ok((parse_records(answer.records)?, rest))
}

fn parse_records(wire: Vec<WireRecord<'_>>) -> Result<Vec<IncomingRecord>, String> {
    // Every payload decoded into one buffer: one allocation per answer, not per record.
    let mut payloads = Vec::with_capacity(wire.iter().map(|r| r.data.len() / 4 * 3 + 3).sum());
    let mut ends = Vec::with_capacity(wire.len());
    for record in &wire {
        base64::engine::general_purpose::STANDARD
            .decode_vec(record.data.as_bytes(), &mut payloads)
            .map_err(|e| format!("record {}: Data is not base64: {e}", record.sequence_number))?;
        ends.push(payloads.len());
    }
    let payloads = Bytes::from(payloads);
    let mut start = 0;
    let mut records = Vec::with_capacity(wire.len());
    for (record, end) in wire.into_iter().zip(ends) {
        records.push(IncomingRecord {
            sequence_number: SequenceNumber::new(&record.sequence_number).map_err(|e| e.to_string())?,
            partition_key: Arc::from(record.partition_key.as_ref()),
            arrival_time: record
                .arrival
                .and_then(|seconds| DateTime::<Utc>::from_timestamp_micros((seconds * 1e6).round() as i64)),
            data: payloads.slice(start..end),
        });
        start = end;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_split_from_the_rest_of_the_answer() {
        let body = br#"{"MillisBehindLatest":0,"NextShardIterator":"AAA=","Records":[
            {"SequenceNumber":"4959","ApproximateArrivalTimestamp":1.717243200123E9,"Data":"eyJpZCI6MX0=","PartitionKey":"k\"1"},
            {"SequenceNumber":"4960","Data":"","PartitionKey":"k2","EncryptionType":"NONE"}],
            "ChildShards":[{"ShardId":"shardId-1","ParentShards":["shardId-0"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"}}]}"#;
        let (records, rest) = split_records(body).expect("splits");
        assert_eq!(records.len(), 2);
        assert_eq!(
            (records[0].sequence_number.as_str(), &*records[0].partition_key, &records[0].data[..]),
            ("4959", "k\"1", &b"{\"id\":1}"[..])
        );
        assert_eq!(records[0].arrival_time.map(|t| t.timestamp_micros()), Some(1_717_243_200_123_000));
        assert!(records[1].data.is_empty() && records[1].arrival_time.is_none());
        let rest: serde_json::Value = serde_json::from_slice(&rest).expect("still JSON");
        assert_eq!(rest["NextShardIterator"], "AAA=");
        assert_eq!(rest["ChildShards"][0]["ParentShards"][0], "shardId-0");
        assert!(rest.get("Records").is_none());
    }

    #[test]
    fn answers_that_do_not_parse_are_refused() {
        assert!(
            split_records(b"{\"Records\": [{\"SequenceNumber\": \"x\", \"Data\": \"\", \"PartitionKey\": \"k\"}]}")
                .is_err()
        );
        assert!(
            split_records(b"{\"Records\": [{\"SequenceNumber\": \"1\", \"Data\": \"!!\", \"PartitionKey\": \"k\"}]}")
                .is_err()
        );
        assert!(split_records(b"not json").is_err());
    }
}
