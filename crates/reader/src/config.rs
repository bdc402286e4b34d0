//! How a reader reads: consumer kind, batch sizes, pacing, backoff, bounds.

use std::time::Duration;

/// How shards are consumed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConsumerKind {
    /// `GetRecords` polling (shares the shard's 2 MB/s read limit with other readers).
    #[default]
    Polling,
    /// Enhanced fan-out: a registered stream consumer with its own 2 MB/s per shard,
    /// records pushed through `SubscribeToShard`.
    EnhancedFanOut {
        /// The stream consumer's name (registered when missing, reused when present).
        consumer_name: String,
    },
}

/// Reader settings; [`ReaderConfig::default`] suits production streams.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// Polling or enhanced fan-out.
    pub consumer: ConsumerKind,
    /// `Limit` of each `GetRecords` call (Kinesis' maximum is 10,000; a call
    /// also stops at 10 MiB on its own).
    pub records_per_call: i32,
    /// Larger responses are handed on in batches of at most this many records.
    pub max_batch_records: usize,
    /// Wait between calls once a shard is caught up (while behind, the next call
    /// is made at once). 500 ms keeps a caught-up shard at 2 calls per second,
    /// leaving room under Kinesis' 5 per second for other readers.
    pub idle_poll_interval: Duration,
    /// A shard that stays idle waits longer after each empty answer, up to
    /// this; the first record brings it back to `idle_poll_interval`.
    pub idle_poll_max: Duration,
    /// How often `ListShards` looks for new shards (children also arrive in
    /// `ChildShards` as soon as a parent closes).
    pub rediscovery_interval: Duration,
    /// First wait after a throttle or a passing failure; doubled per retry.
    pub backoff_initial: Duration,
    /// Longest wait between retries.
    pub backoff_max: Duration,
    /// Bound on each call; a call that takes longer is treated as possibly
    /// applied and retried from the last position. Generous: an answer may
    /// carry 10 MiB, and a retried one is read (and paid for) again.
    pub call_timeout: Duration,
    /// `GetRecords` calls of one reader in flight at once. Each answer may
    /// carry up to 10 MiB, so this bounds the memory of a many-shard reader,
    /// and it keeps a slow endpoint from answering every shard at once only
    /// after the call timeout.
    pub max_concurrent_calls: usize,
    /// Batches of one shard handed on and not yet dropped; reading that shard
    /// pauses while this many are held.
    pub max_in_flight_batches_per_shard: usize,
    /// Batches of the whole source waiting in the reader's channel.
    pub channel_capacity: usize,
    /// Enhanced fan-out subscriptions last at most 5 minutes; they are renewed
    /// from the last position after this long.
    pub subscription_renewal: Duration,
}

impl Default for ReaderConfig {
    fn default() -> ReaderConfig {
        ReaderConfig {
            consumer: ConsumerKind::Polling,
            records_per_call: 10_000,
            max_batch_records: 10_000,
            idle_poll_interval: Duration::from_millis(500),
            idle_poll_max: Duration::from_secs(2),
            rediscovery_interval: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
            max_concurrent_calls: 8,
            max_in_flight_batches_per_shard: 2,
            channel_capacity: 16,
            subscription_renewal: Duration::from_secs(300),
        }
    }
}
