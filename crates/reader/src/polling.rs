//! The polling consumer: `GetShardIterator` + `GetRecords` for one shard.

use std::time::Duration;

use crate::ReaderError;
use crate::answer::Answer;
use crate::cursor::{Resume, ShardCursor};
use crate::fault::{Backoff, Fault};
use crate::get_records::get_records;
use crate::lineage::ShardInfo;
use crate::shard::{ShardEnd, ShardTask};
use crate::shard_iterator::get_shard_iterator;

/// Reads the shard until it is finished (or the reader stops).
pub(crate) async fn run(task: ShardTask, mut cursor: ShardCursor) -> Result<ShardEnd, ReaderError> {
    let config = &task.config;
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    let mut iterator: Option<String> = None;
    let mut idle_wait = config.idle_poll_interval;
    // Reading from a checkpoint, and nothing read since: an empty answer a
    // whole retention period behind means the checkpoint's records were trimmed.
    let mut from_checkpoint = false;
    loop {
        let current = match iterator.take() {
            Some(iterator) => iterator,
            None => {
                let resume = cursor.resume();
                match iterator_call(&task, &resume).await {
                    Some(Ok(iterator)) => {
                        from_checkpoint = matches!(resume, Resume::After(_));
                        iterator
                    }
                    None => return Ok(ShardEnd::Stopped),
                    // Emulators refuse a position whose record is gone; don't fail (and restart) on it forever.
                    Some(Err(fault)) if refuses_position(&fault, &resume) && cursor.skip_retention_gap() => continue,
                    Some(Err(fault)) => {
                        wait_out(fault, &mut backoff, &cursor, &task.shard).await?;
                        continue;
                    }
                }
            }
        };
        let outcome = {
            // Held while the answer is read and parsed, not while it is handed on or waited after;
            // waiting for it is not part of the call's time limit.
            let Ok(_permit) = task.call_permits.acquire().await else {
                return Ok(ShardEnd::Stopped);
            };
            let call = get_records(
                &task.client,
                &task.route,
                &task.stream_arn,
                &current,
                config.records_per_call,
                cursor.shard_id(),
            );
            tokio::time::timeout(config.call_timeout, call).await
        };
        let answer = match outcome {
            Ok(Ok(answer)) => answer,
            Ok(Err(fault)) => {
                match &fault {
                    // A throttled call read nothing: the same iterator is still good.
                    Fault::Throttled => iterator = Some(current),
                    Fault::ExpiredIterator => cursor.metrics().iterator_renewed(),
                    _ => {}
                }
                wait_out(fault, &mut backoff, &cursor, &task.shard).await?;
                continue;
            }
            Err(_elapsed) => {
                // Possibly applied: rebuild from the last position; the cursor skips repeats.
                let fault = Fault::Transient(format!("GetRecords took over {:?}", config.call_timeout));
                wait_out(fault, &mut backoff, &cursor, &task.shard).await?;
                continue;
            }
        };
        backoff.reset();
        cursor.metrics().call();
        let Answer { received, next_shard_iterator, millis_behind_latest, children } = answer;
        let closes_shard = next_shard_iterator.is_none();
        let count = received.records.len();
        if from_checkpoint
            && count == 0
            && !closes_shard
            && past_retention(millis_behind_latest, task.retention)
            && cursor.skip_retention_gap()
        {
            from_checkpoint = false;
            continue;
        }
        from_checkpoint &= count == 0;
        if !cursor.hand_on(Ok(received), millis_behind_latest, closes_shard).await? {
            return Ok(ShardEnd::Stopped);
        }
        if closes_shard {
            return Ok(ShardEnd::Finished { children });
        }
        iterator = next_shard_iterator;
        // A full page, or records older than the tip, means more is waiting. (A burst put
        // within one millisecond reads as 0 ms behind, so the page size must be checked too.)
        let behind = count >= config.records_per_call as usize || millis_behind_latest.is_some_and(|millis| millis > 0);
        if behind || count > 0 {
            idle_wait = config.idle_poll_interval;
        }
        if !behind {
            tokio::time::sleep_until(idle_tick(tokio::time::Instant::now() + idle_wait)).await;
            idle_wait = (idle_wait * 2).min(config.idle_poll_max.max(config.idle_poll_interval));
        }
    }
}

/// Whether `GetShardIterator` refused the checkpoint's position itself (as
/// emulators do once its record is trimmed).
fn refuses_position(fault: &Fault, resume: &Resume) -> bool {
    matches!(
        (fault, resume),
        (Fault::Fatal(ReaderError::Kinesis { code, .. }), Resume::After(_))
            if code == "ResourceNotFoundException" || code == "InvalidArgumentException"
    )
}

/// Kinesis answers a trimmed position with empty pages a whole retention
/// period behind (it walks the trimmed range slowly rather than refusing it).
fn past_retention(millis_behind_latest: Option<i64>, retention: Option<Duration>) -> bool {
    const SLACK: Duration = Duration::from_secs(300);
    match (millis_behind_latest, retention) {
        (Some(behind), Some(retention)) => {
            let threshold = retention.saturating_sub(SLACK).as_millis();
            u128::try_from(behind).is_ok_and(|behind| behind >= threshold)
        }
        _ => false,
    }
}

/// A `GetShardIterator` call, within the reader's call permits like `GetRecords`
/// (which also bounds the connections a reader opens); `None` when the reader stops.
async fn iterator_call(task: &ShardTask, resume: &Resume) -> Option<Result<String, Fault>> {
    let _permit = task.call_permits.acquire().await.ok()?;
    Some(get_shard_iterator(task, resume).await)
}

/// Idle polls wake on a shared 250 ms grid: the caught-up shards of a reader
/// then poll together, one wake-up of the process for many calls instead of one each.
fn idle_tick(at: tokio::time::Instant) -> tokio::time::Instant {
    static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    const GRID: Duration = Duration::from_millis(250);
    let epoch = *EPOCH.get_or_init(tokio::time::Instant::now);
    let since = at.saturating_duration_since(epoch);
    let ticks = since.as_nanos().div_ceil(GRID.as_nanos());
    epoch + GRID * u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// Waits after a passing fault (counting it), or returns a fatal one.
pub(crate) async fn wait_out(
    fault: Fault,
    backoff: &mut Backoff,
    cursor: &ShardCursor,
    shard: &ShardInfo,
) -> Result<(), ReaderError> {
    let delay: Duration = match fault {
        Fault::Fatal(error) => return Err(error),
        Fault::ExpiredIterator => Duration::ZERO,
        Fault::Throttled => {
            cursor.metrics().throttled();
            backoff.next_delay()
        }
        Fault::Transient(reason) => {
            cursor.metrics().transient_error();
            tracing::debug!(shard = %shard.shard_id, %reason, "retrying after a passing failure");
            backoff.next_delay()
        }
    };
    tokio::time::sleep(delay).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_page_a_retention_period_behind_is_past_retention() {
        let day = Some(Duration::from_secs(86_400));
        assert!(past_retention(Some(86_400_000), day));
        assert!(past_retention(Some(86_400_000 - 60_000), day), "within the slack");
        assert!(!past_retention(Some(3_600_000), day), "an hour behind is just behind");
        assert!(!past_retention(Some(86_400_000), None), "unknown retention: never guessed");
        assert!(!past_retention(None, day));
    }

    #[test]
    fn only_a_refused_checkpoint_position_is_a_gap() {
        let refused = |code: &str| {
            Fault::Fatal(ReaderError::Kinesis {
                operation: "GetShardIterator",
                target: "shardId-0".to_owned(),
                code: code.to_owned(),
                message: String::new(),
            })
        };
        let after = Resume::After(
            crate::position::SequenceNumber::new("49590338271490256608559692538361571095921575989136588898")
                .expect("valid"),
        );
        assert!(refuses_position(&refused("ResourceNotFoundException"), &after));
        assert!(refuses_position(&refused("InvalidArgumentException"), &after));
        assert!(!refuses_position(&refused("AccessDeniedException"), &after));
        let start = Resume::Start(crate::position::StartPosition::TrimHorizon);
        assert!(!refuses_position(&refused("ResourceNotFoundException"), &start), "the stream itself is gone");
    }
}
