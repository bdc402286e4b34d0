//! `GetRecords` without the SDK's per-call machinery.
//!
//! A polling reader makes one `GetRecords` call per shard every few hundred
//! milliseconds, and the SDK's orchestrator (runtime-component merging,
//! endpoint resolution, user agent, interceptors, a generic JSON tokenizer
//! that copies every record) costs more CPU per call than the records it
//! brings. So this one call is made here: signed with SigV4 from the SDK's own
//! cached credentials, sent through the SDK's own HTTP connector (same pool and
//! TLS), to the endpoint the SDK resolved; the answer is parsed in one
//! borrowed pass with every payload base64-decoded into one shared buffer.
//!
//! Every other call still goes through the SDK. The first data-plane call of a
//! reader (`GetShardIterator`, which always precedes `GetRecords` and resolves
//! to the same endpoint) teaches us the route through [`LearnRoute`]; until
//! then `GetRecords` goes through the SDK as well.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::auth::AuthSchemeId;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnector, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::{ResolveCachedIdentity, SharedIdentityCache, SharedIdentityResolver};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::{GetIdentityResolver, RuntimeComponents};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::ReaderError;
use crate::cursor::IncomingRecord;
use crate::fault::{Fault, classify, classify_refusal, innermost_cause};
use crate::kpl::HashKeyRange;
use crate::lineage::ShardInfo;
use crate::position::SequenceNumber;
use crate::shard::child_infos;
use crate::signing::{CONTENT_TYPE, GetRecordsSigner, TARGET};

/// Names our calls in AWS' request logs (and tells tests which path made a call).
pub const USER_AGENT: &str = concat!("tributary-reader/", env!("CARGO_PKG_VERSION"));

/// Where a reader's `GetRecords` calls go, once learned.
pub(crate) type RouteCell = Arc<OnceLock<GetRecordsRoute>>;

/// Everything a signed `GetRecords` call needs, taken from an SDK call.
#[derive(Debug)]
pub(crate) struct GetRecordsRoute {
    endpoint: http::Uri,
    signer: GetRecordsSigner,
    connector: SharedHttpConnector,
    identity_resolver: SharedIdentityResolver,
    identity_cache: SharedIdentityCache,
    components: RuntimeComponents,
    /// Credentials from the SDK's cache, asked again after a while (see [`reuse_for`]).
    credentials: Mutex<Option<(Credentials, Instant)>>,
}

/// Learns the route from the first `GetShardIterator` the SDK sends.
#[derive(Debug)]
pub(crate) struct LearnRoute {
    pub(crate) cell: RouteCell,
    pub(crate) region: Option<String>,
}

impl Intercept for LearnRoute {
    fn name(&self) -> &'static str {
        "LearnRoute"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.cell.get().is_some() {
            return Ok(());
        }
        let request = context.request();
        if request.headers().get("x-amz-target") != Some("Kinesis_20131202.GetShardIterator") {
            return Ok(());
        }
        // Any piece missing (no region, no SigV4 identity, no HTTP client): stay with the SDK.
        let (Some(region), Ok(endpoint), Some(identity_resolver), Some(http_client)) = (
            self.region.clone(),
            request.uri().parse::<http::Uri>(),
            runtime_components.identity_resolver(AuthSchemeId::new("sigv4")),
            runtime_components.http_client(),
        ) else {
            return Ok(());
        };
        // Our signer writes the canonical form of `POST /` only; an endpoint with a path stays with the SDK.
        let (Some(authority), "/" | "", None) = (endpoint.authority(), endpoint.path(), endpoint.query()) else {
            return Ok(());
        };
        let signer = GetRecordsSigner::new(region, authority.as_str().to_owned());
        let connector = http_client.http_connector(&HttpConnectorSettings::default(), runtime_components);
        let _ = self.cell.set(GetRecordsRoute {
            endpoint,
            signer,
            connector,
            identity_resolver,
            identity_cache: runtime_components.identity_cache(),
            components: runtime_components.clone(),
            credentials: Mutex::new(None),
        });
        Ok(())
    }
}

/// A `GetRecords` answer.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub(crate) records: Vec<IncomingRecord>,
    /// `None`: the shard is closed and fully read.
    pub(crate) next_shard_iterator: Option<String>,
    pub(crate) millis_behind_latest: Option<i64>,
    pub(crate) children: Vec<ShardInfo>,
}

/// One `GetRecords` call: ours when the route is known, else the SDK's.
pub(crate) async fn get_records(
    client: &aws_sdk_kinesis::Client,
    route: &RouteCell,
    stream_arn: &str,
    iterator: &str,
    limit: i32,
    shard_id: &str,
) -> Result<Answer, Fault> {
    match route.get() {
        Some(route) => route.call(stream_arn, iterator, limit, shard_id).await,
        None => sdk_get_records(client, stream_arn, iterator, limit, shard_id).await,
    }
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

impl GetRecordsRoute {
    async fn call(&self, stream_arn: &str, iterator: &str, limit: i32, shard_id: &str) -> Result<Answer, Fault> {
        let body = serde_json::to_vec(&Request { shard_iterator: iterator, limit, stream_arn })
            .map_err(|e| Fault::Fatal(ReaderError::Internal(format!("GetRecords request: {e}"))))?;
        let request = self.signed_request(body).await?;
        let response = self
            .connector
            .call(request)
            .await
            .map_err(|error| Fault::Transient(format!("GetRecords: {}", innermost_cause(&error))))?;
        let status = response.status().as_u16();
        let error_type = response.headers().get("x-amzn-errortype").map(str::to_owned);
        let length = response.headers().get("content-length").and_then(|value| value.parse::<usize>().ok());
        let body = read_body(response.into_body(), length)
            .await
            .map_err(|error| Fault::Transient(format!("GetRecords: reading the answer: {error}")))?;
        if status == 200 {
            parse_answer(&body, shard_id)
        } else {
            Err(refusal(status, error_type.as_deref(), &body, shard_id))
        }
    }

    async fn signed_request(&self, body: Vec<u8>) -> Result<HttpRequest, Fault> {
        let credentials = self.credentials().await?;
        let signed = self.signer.sign(&credentials, &body, SystemTime::now());
        let host = self.endpoint.authority().map(|authority| authority.as_str()).unwrap_or_default();
        let mut request = http::Request::builder()
            .method("POST")
            .uri(self.endpoint.clone())
            .header("host", host)
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", TARGET)
            .header("x-amz-date", signed.amz_date)
            .header("authorization", signed.authorization)
            .header("user-agent", USER_AGENT)
            .header("content-length", body.len());
        if let Some(token) = credentials.session_token() {
            request = request.header("x-amz-security-token", token);
        }
        let internal = |error: &dyn std::fmt::Display| {
            Fault::Fatal(ReaderError::Internal(format!("building the GetRecords request: {error}")))
        };
        let request = request.body(SdkBody::from(body)).map_err(|e| internal(&e))?;
        HttpRequest::try_from(request).map_err(|e| internal(&e))
    }

    /// The SDK's cached credentials, kept for a while: asking its cache costs
    /// about as much as the rest of an idle poll.
    async fn credentials(&self) -> Result<Credentials, Fault> {
        if let Some((credentials, until)) = self.credentials.lock().as_ref()
            && Instant::now() < *until
        {
            return Ok(credentials.clone());
        }
        let unavailable = |message: String| {
            Fault::Fatal(ReaderError::Kinesis {
                operation: "GetRecords",
                target: "credentials".to_owned(),
                code: "CredentialsUnavailable".to_owned(),
                message,
            })
        };
        let identity = self
            .identity_cache
            .resolve_cached_identity(self.identity_resolver.clone(), &self.components, &ConfigBag::base())
            .await
            .map_err(|error| unavailable(innermost_cause(error.as_ref())))?;
        let credentials = identity
            .data::<Credentials>()
            .cloned()
            .ok_or_else(|| unavailable("the SigV4 identity holds no AWS credentials".to_owned()))?;
        let until = Instant::now() + reuse_for(identity.expiration(), SystemTime::now());
        *self.credentials.lock() = Some((credentials.clone(), until));
        Ok(credentials)
    }
}

/// How long credentials are reused: a minute at most, and never past half
/// of their remaining life, so the SDK's cache renews them first.
fn reuse_for(expiration: Option<SystemTime>, now: SystemTime) -> Duration {
    let most = Duration::from_secs(60);
    match expiration {
        None => most,
        Some(expiration) => expiration.duration_since(now).map_or(Duration::ZERO, |left| (left / 2).min(most)),
    }
}

async fn read_body(mut body: SdkBody, length: Option<usize>) -> Result<Vec<u8>, BoxError> {
    // Answers run to megabytes: sized once from Content-Length.
    let mut buffer = Vec::with_capacity(length.unwrap_or(0).min(16 * 1024 * 1024));
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer)
}

/// The Fault of a refused call: AWS' error type from the header or the JSON body.
fn refusal(status: u16, error_type: Option<&str>, body: &[u8], shard_id: &str) -> Fault {
    #[derive(Deserialize)]
    struct WireError<'a> {
        #[serde(rename = "__type", borrow, default)]
        kind: Option<Cow<'a, str>>,
        #[serde(alias = "Message", borrow, default)]
        message: Option<Cow<'a, str>>,
    }
    let wire: Option<WireError<'_>> = serde_json::from_slice(body).ok();
    // Both forms may be qualified: "aws.protocol#Code" in the body, "Code:http://..." in the header.
    let code = error_type
        .map(|value| value.split(':').next().unwrap_or(value))
        .or_else(|| wire.as_ref().and_then(|wire| wire.kind.as_deref()))
        .map(|code| code.rsplit('#').next().unwrap_or(code))
        .filter(|code| !code.is_empty());
    let message = wire.as_ref().and_then(|wire| wire.message.as_deref());
    classify_refusal(code, Some(status), message, "GetRecords", shard_id)
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

#[derive(Deserialize)]
struct WireHashKeyRange<'a> {
    #[serde(rename = "StartingHashKey", borrow)]
    starting: Cow<'a, str>,
    #[serde(rename = "EndingHashKey", borrow)]
    ending: Cow<'a, str>,
}

#[derive(Deserialize)]
struct WireChild<'a> {
    #[serde(rename = "ShardId")]
    shard_id: String,
    #[serde(rename = "ParentShards", default)]
    parents: Vec<String>,
    #[serde(rename = "HashKeyRange", borrow, default)]
    hash_range: Option<WireHashKeyRange<'a>>,
}

#[derive(Deserialize)]
struct WireAnswer<'a> {
    // Kinesis may send `null` for an empty list.
    #[serde(rename = "Records", borrow, default)]
    records: Option<Vec<WireRecord<'a>>>,
    #[serde(rename = "NextShardIterator", default)]
    next_shard_iterator: Option<String>,
    #[serde(rename = "MillisBehindLatest", default)]
    millis_behind_latest: Option<i64>,
    #[serde(rename = "ChildShards", borrow, default)]
    child_shards: Option<Vec<WireChild<'a>>>,
}

/// Parses a `GetRecords` answer body in one pass.
pub(crate) fn parse_answer(body: &[u8], shard_id: &str) -> Result<Answer, Fault> {
    // A 200 whose body does not parse was cut short or garbled in transit: try again.
    let answer: WireAnswer<'_> = serde_json::from_slice(body)
        .map_err(|error| Fault::Transient(format!("GetRecords: unreadable answer: {error}")))?;
    let wire_records = answer.records.unwrap_or_default();
    let invalid = |detail: String| Fault::Fatal(ReaderError::InvalidResponse { shard_id: shard_id.to_owned(), detail });
    // Every payload decoded into one buffer: one allocation per answer, not per record.
    let mut payloads = Vec::with_capacity(wire_records.iter().map(|r| r.data.len() / 4 * 3 + 3).sum());
    let mut ends = Vec::with_capacity(wire_records.len());
    for record in &wire_records {
        // SIMD: payloads are most of an answer's bytes.
        base64_simd::STANDARD
            .decode_append(record.data.as_bytes(), &mut payloads)
            .map_err(|e| invalid(format!("record {}: Data is not base64: {e}", record.sequence_number)))?;
        ends.push(payloads.len());
    }
    let payloads = Bytes::from(payloads);
    let mut start = 0;
    let mut records = Vec::with_capacity(wire_records.len());
    for (record, end) in wire_records.into_iter().zip(ends) {
        records.push(IncomingRecord {
            sequence_number: SequenceNumber::new(&record.sequence_number).map_err(|e| invalid(e.to_string()))?,
            partition_key: Arc::from(record.partition_key.as_ref()),
            arrival_time: record
                .arrival
                .and_then(|seconds| DateTime::<Utc>::from_timestamp_micros((seconds * 1e6).round() as i64)),
            data: payloads.slice(start..end),
        });
        start = end;
    }
    let children = answer
        .child_shards
        .unwrap_or_default()
        .into_iter()
        .map(|child| ShardInfo {
            hash_range: child
                .hash_range
                .and_then(|range| HashKeyRange::parse(&range.starting, &range.ending))
                .unwrap_or(HashKeyRange::ALL),
            shard_id: child.shard_id,
            parents: child.parents,
        })
        .collect();
    Ok(Answer {
        records,
        next_shard_iterator: answer.next_shard_iterator,
        millis_behind_latest: answer.millis_behind_latest,
        children,
    })
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
    let records = output
        .records
        .into_iter()
        .map(|record| IncomingRecord::from_sdk(record, shard_id))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| match error {
            crate::cursor::DeliveryError::Fatal(error) => Fault::Fatal(error),
            crate::cursor::DeliveryError::Stopped => Fault::Transient("stopped".to_owned()),
        })?;
    Ok(Answer {
        records,
        next_shard_iterator: output.next_shard_iterator,
        millis_behind_latest: output.millis_behind_latest,
        children: child_infos(output.child_shards.unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_in_one_pass() {
        let body = br#"{"MillisBehindLatest":0,"NextShardIterator":"AAA=","Records":[
            {"SequenceNumber":"4959","ApproximateArrivalTimestamp":1.717243200123E9,"Data":"eyJpZCI6MX0=","PartitionKey":"k\"1"},
            {"SequenceNumber":"4960","Data":"","PartitionKey":"k2","EncryptionType":"NONE"}],
            "ChildShards":[{"ShardId":"shardId-1","ParentShards":["shardId-0"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"}}]}"#;
        let answer = parse_answer(body, "shardId-0").expect("parses");
        let records = &answer.records;
        assert_eq!(records.len(), 2);
        assert_eq!(
            (records[0].sequence_number.as_str(), &*records[0].partition_key, &records[0].data[..]),
            ("4959", "k\"1", &b"{\"id\":1}"[..])
        );
        assert_eq!(records[0].arrival_time.map(|t| t.timestamp_micros()), Some(1_717_243_200_123_000));
        assert!(records[1].data.is_empty() && records[1].arrival_time.is_none());
        assert_eq!(answer.next_shard_iterator.as_deref(), Some("AAA="));
        assert_eq!(answer.millis_behind_latest, Some(0));
        assert_eq!(answer.children.len(), 1);
        assert_eq!(answer.children[0].shard_id, "shardId-1");
        assert_eq!(answer.children[0].parents, ["shardId-0"]);
        assert_eq!(answer.children[0].hash_range, HashKeyRange::parse("0", "9").expect("a range"));
    }

    #[test]
    fn credentials_are_reused_for_a_minute_or_half_their_remaining_life() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(reuse_for(None, now), Duration::from_secs(60));
        assert_eq!(reuse_for(Some(now + Duration::from_secs(3600)), now), Duration::from_secs(60));
        assert_eq!(reuse_for(Some(now + Duration::from_secs(30)), now), Duration::from_secs(15));
        assert_eq!(reuse_for(Some(now - Duration::from_secs(1)), now), Duration::ZERO);
    }

    #[test]
    fn a_closed_shard_has_no_next_iterator() {
        let answer =
            parse_answer(br#"{"Records":null,"MillisBehindLatest":0,"ChildShards":null}"#, "s").expect("parses");
        assert!(answer.next_shard_iterator.is_none() && answer.records.is_empty());
    }

    #[test]
    fn garbled_answers_are_transient_and_impossible_records_fatal() {
        assert!(matches!(parse_answer(b"{\"Records\": [", "s"), Err(Fault::Transient(_))));
        let bad_sequence = br#"{"Records": [{"SequenceNumber": "x", "Data": "", "PartitionKey": "k"}]}"#;
        assert!(matches!(parse_answer(bad_sequence, "s"), Err(Fault::Fatal(ReaderError::InvalidResponse { .. }))));
        let bad_base64 = br#"{"Records": [{"SequenceNumber": "1", "Data": "!!", "PartitionKey": "k"}]}"#;
        assert!(matches!(parse_answer(bad_base64, "s"), Err(Fault::Fatal(ReaderError::InvalidResponse { .. }))));
    }

    #[test]
    fn refusals_are_classified_by_their_error_type() {
        let throttled = br#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}"#;
        assert!(matches!(refusal(400, None, throttled, "s"), Fault::Throttled));
        let qualified = br#"{"__type":"com.amazonaws.kinesis.v20131202#ExpiredIteratorException","Message":"old"}"#;
        assert!(matches!(refusal(400, None, qualified, "s"), Fault::ExpiredIterator));
        assert!(matches!(
            refusal(400, Some("ExpiredIteratorException:http://internal.amazon.com/"), b"", "s"),
            Fault::ExpiredIterator
        ));
        assert!(matches!(refusal(503, None, b"<html>", "s"), Fault::Transient(_)));
        match refusal(400, None, br#"{"__type":"AccessDeniedException","message":"no"}"#, "shardId-7") {
            Fault::Fatal(ReaderError::Kinesis { operation, target, code, message }) => {
                assert_eq!(
                    (operation, target.as_str(), code.as_str(), message.as_str()),
                    ("GetRecords", "shardId-7", "AccessDeniedException", "no")
                );
            }
            other => panic!("expected a fatal refusal, got {other:?}"),
        }
    }
}
