//! `GetShardIterator`: the reader's own signed call once the route is known
//! (see [`crate::route`]), the SDK's before (the first one teaches the route).

use aws_sdk_kinesis::types::ShardIteratorType;
use aws_smithy_types::DateTime as SmithyDateTime;
use serde::{Deserialize, Serialize};

use crate::ReaderError;
use crate::cursor::Resume;
use crate::fault::{Fault, classify};
use crate::position::StartPosition;
use crate::shard::ShardTask;
use crate::signing::Operation;

/// An iterator for the shard of `task`, starting where `resume` says.
pub(crate) async fn get_shard_iterator(task: &ShardTask, resume: &Resume) -> Result<String, Fault> {
    let call = async {
        match task.route.get() {
            Some(route) => {
                let body = request_body(&task.stream_arn, &task.shard.shard_id, resume)?;
                let answer = route.call(Operation::GetShardIterator, body, &task.shard.shard_id).await?;
                read_answer(&answer, &task.shard.shard_id)
            }
            None => sdk_get_shard_iterator(task, resume).await,
        }
    };
    match tokio::time::timeout(task.config.call_timeout, call).await {
        Ok(outcome) => outcome,
        Err(_elapsed) => Err(Fault::Transient("GetShardIterator timed out".to_owned())),
    }
}

#[derive(Serialize)]
struct Request<'a> {
    #[serde(rename = "StreamARN")]
    stream_arn: &'a str,
    #[serde(rename = "ShardId")]
    shard_id: &'a str,
    #[serde(rename = "ShardIteratorType")]
    iterator_type: &'static str,
    #[serde(rename = "StartingSequenceNumber", skip_serializing_if = "Option::is_none")]
    starting_sequence_number: Option<&'a str>,
    /// Epoch seconds, as the JSON protocol writes timestamps.
    #[serde(rename = "Timestamp", skip_serializing_if = "Option::is_none")]
    timestamp: Option<f64>,
}

fn request_body(stream_arn: &str, shard_id: &str, resume: &Resume) -> Result<Vec<u8>, Fault> {
    let (iterator_type, starting_sequence_number, timestamp) = match resume {
        Resume::After(sequence_number) => ("AFTER_SEQUENCE_NUMBER", Some(sequence_number.as_str()), None),
        Resume::Start(StartPosition::TrimHorizon) => ("TRIM_HORIZON", None, None),
        Resume::Start(StartPosition::AtTimestamp(at)) => {
            ("AT_TIMESTAMP", None, Some(at.timestamp_millis() as f64 / 1000.0))
        }
    };
    let request = Request { stream_arn, shard_id, iterator_type, starting_sequence_number, timestamp };
    serde_json::to_vec(&request)
        .map_err(|e| Fault::Fatal(ReaderError::Internal(format!("GetShardIterator request: {e}"))))
}

fn read_answer(answer: &[u8], shard_id: &str) -> Result<String, Fault> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "ShardIterator")]
        shard_iterator: Option<String>,
    }
    let invalid = |detail: String| Fault::Fatal(ReaderError::InvalidResponse { shard_id: shard_id.to_owned(), detail });
    let answer: Answer = serde_json::from_slice(answer)
        .map_err(|error| invalid(format!("GetShardIterator answered with unreadable JSON: {error}")))?;
    answer.shard_iterator.ok_or_else(|| invalid("GetShardIterator answered without an iterator".to_owned()))
}

async fn sdk_get_shard_iterator(task: &ShardTask, resume: &Resume) -> Result<String, Fault> {
    let mut request =
        task.client.get_shard_iterator().stream_arn(task.stream_arn.as_ref()).shard_id(&task.shard.shard_id);
    request = match resume {
        Resume::After(sequence_number) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(sequence_number.as_str()),
        Resume::Start(StartPosition::TrimHorizon) => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        Resume::Start(StartPosition::AtTimestamp(at)) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(SmithyDateTime::from_millis(at.timestamp_millis())),
    };
    let output = request.send().await.map_err(|error| classify(&error, "GetShardIterator", &task.shard.shard_id))?;
    output.shard_iterator.ok_or_else(|| {
        Fault::Fatal(ReaderError::InvalidResponse {
            shard_id: task.shard.shard_id.clone(),
            detail: "GetShardIterator answered without an iterator".to_owned(),
        })
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::position::SequenceNumber;

    fn body(resume: &Resume) -> serde_json::Value {
        let bytes = request_body("arn:aws:kinesis:us-east-1:1:stream/s", "shardId-000000000002", resume).expect("body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[test]
    fn requests_name_the_iterator_type_and_its_start() {
        let stream = "arn:aws:kinesis:us-east-1:1:stream/s";
        assert_eq!(
            body(&Resume::Start(StartPosition::TrimHorizon)),
            serde_json::json!({"StreamARN": stream, "ShardId": "shardId-000000000002", "ShardIteratorType": "TRIM_HORIZON"})
        );
        let after = SequenceNumber::new("49590338271490256608559692538361571095921575989136588898").expect("valid");
        assert_eq!(
            body(&Resume::After(after)),
            serde_json::json!({"StreamARN": stream, "ShardId": "shardId-000000000002",
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": "49590338271490256608559692538361571095921575989136588898"})
        );
        let at =
            Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).single().expect("time") + chrono::Duration::milliseconds(250);
        assert_eq!(
            body(&Resume::Start(StartPosition::AtTimestamp(at))),
            serde_json::json!({"StreamARN": stream, "ShardId": "shardId-000000000002",
                "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": 1_717_243_200.25})
        );
    }

    #[test]
    fn answers_without_an_iterator_are_invalid() {
        assert_eq!(read_answer(br#"{"ShardIterator":"AAAA"}"#, "s").ok().as_deref(), Some("AAAA"));
        for answer in [&br#"{}"#[..], br#"{"ShardIterator":null}"#, b"<html>"] {
            assert!(matches!(read_answer(answer, "s"), Err(Fault::Fatal(ReaderError::InvalidResponse { .. }))));
        }
    }
}
