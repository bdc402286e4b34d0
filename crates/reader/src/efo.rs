//! The enhanced fan-out consumer: a registered stream consumer and
//! `SubscribeToShard`, renewed before its 5-minute limit.
//!
//! Every subscription (first, renewed, or after a failure) starts from the
//! cursor: `AFTER_SEQUENCE_NUMBER` of the last record handed on. That is the
//! continuation point of the previous subscription when it ended cleanly, and
//! never skips a record when it did not (a continuation sequence number that
//! arrived after the last record handed on adds nothing but a shorter scan).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::{ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use aws_smithy_types::DateTime as SmithyDateTime;
use tokio::time::Instant;

use crate::ReaderError;
use crate::cursor::{Received, Resume, ShardCursor};
use crate::fault::{Backoff, Fault, classify};
use crate::polling::wait_out;
use crate::position::StartPosition;
use crate::shard::{ShardEnd, ShardTask, child_infos};

/// Reads the shard through subscriptions until it is finished (or the reader stops).
pub(crate) async fn run(
    task: ShardTask,
    mut cursor: ShardCursor,
    consumer_arn: Arc<str>,
) -> Result<ShardEnd, ReaderError> {
    let config = Arc::clone(&task.config);
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    loop {
        let subscribe = task
            .client
            .subscribe_to_shard()
            .consumer_arn(consumer_arn.as_ref())
            .shard_id(&task.shard.shard_id)
            .starting_position(starting_position(&cursor.resume())?)
            .send();
        let mut subscription = match tokio::time::timeout(config.call_timeout, subscribe).await {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => {
                wait_out(classify(&error, "SubscribeToShard", cursor.shard_id()), &mut backoff, &cursor, &task.shard)
                    .await?;
                continue;
            }
            Err(_elapsed) => {
                let fault = Fault::Transient("SubscribeToShard timed out".to_owned());
                wait_out(fault, &mut backoff, &cursor, &task.shard).await?;
                continue;
            }
        };
        let renew_at = Instant::now() + config.subscription_renewal;
        loop {
            let event = tokio::select! {
                event = tokio::time::timeout(config.call_timeout, subscription.event_stream.recv()) => event,
                _ = tokio::time::sleep_until(renew_at) => break,
            };
            match event {
                Ok(Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)))) => {
                    backoff.reset();
                    cursor.metrics().call();
                    let children = event.child_shards.unwrap_or_default();
                    let closes_shard = !children.is_empty();
                    let records = Received::from_sdk(event.records, cursor.shard_id());
                    if !cursor.hand_on(records, Some(event.millis_behind_latest), closes_shard).await? {
                        return Ok(ShardEnd::Stopped);
                    }
                    if closes_shard {
                        return Ok(ShardEnd::Finished { children: child_infos(children) });
                    }
                }
                Ok(Ok(Some(_))) => {}
                // The service ended the subscription (it does at 5 minutes): renew it.
                Ok(Ok(None)) => break,
                Ok(Err(error)) => {
                    let reason = match (error.code(), error.message()) {
                        (Some(code), Some(message)) => format!("SubscribeToShard event stream: {code}: {message}"),
                        _ => "SubscribeToShard event stream failed".to_owned(),
                    };
                    wait_out(Fault::Transient(reason), &mut backoff, &cursor, &task.shard).await?;
                    break;
                }
                Err(_elapsed) => {
                    let fault = Fault::Transient("no SubscribeToShard event within the call timeout".to_owned());
                    wait_out(fault, &mut backoff, &cursor, &task.shard).await?;
                    break;
                }
            }
        }
        cursor.metrics().iterator_renewed();
    }
}

fn starting_position(resume: &Resume) -> Result<StartingPosition, ReaderError> {
    let builder = StartingPosition::builder();
    let builder = match resume {
        Resume::After(sequence_number) => {
            builder.r#type(ShardIteratorType::AfterSequenceNumber).sequence_number(sequence_number.as_str())
        }
        Resume::Start(StartPosition::TrimHorizon) => builder.r#type(ShardIteratorType::TrimHorizon),
        Resume::Start(StartPosition::AtTimestamp(at)) => {
            builder.r#type(ShardIteratorType::AtTimestamp).timestamp(SmithyDateTime::from_millis(at.timestamp_millis()))
        }
    };
    builder.build().map_err(|error| ReaderError::Internal(format!("SubscribeToShard starting position: {error}")))
}

/// Registers the stream consumer `name` (or reuses it) and waits until it is ACTIVE.
pub(crate) async fn register_consumer(
    client: &aws_sdk_kinesis::Client,
    stream_arn: &str,
    name: &str,
    config: &crate::ReaderConfig,
) -> Result<Arc<str>, ReaderError> {
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let described = client.describe_stream_consumer().stream_arn(stream_arn).consumer_name(name).send().await;
        let fault = match described {
            Ok(output) => match output.consumer_description {
                Some(consumer) if consumer.consumer_status == ConsumerStatus::Active => {
                    return Ok(Arc::from(consumer.consumer_arn));
                }
                // Still CREATING (or being deleted): wait for it.
                _ => Fault::Transient(format!("stream consumer {name} is not ACTIVE yet")),
            },
            Err(error) if error.code() == Some("ResourceNotFoundException") => {
                match client.register_stream_consumer().stream_arn(stream_arn).consumer_name(name).send().await {
                    Ok(_) => continue,
                    Err(error) => classify(&error, "RegisterStreamConsumer", stream_arn),
                }
            }
            Err(error) => classify(&error, "DescribeStreamConsumer", stream_arn),
        };
        match fault {
            Fault::Fatal(error) => return Err(error),
            Fault::Transient(reason) if Instant::now() > deadline => {
                return Err(ReaderError::Kinesis {
                    operation: "RegisterStreamConsumer",
                    target: stream_arn.to_owned(),
                    code: "Timeout".to_owned(),
                    message: reason,
                });
            }
            _ => tokio::time::sleep(backoff.next_delay()).await,
        }
    }
}
