//! The reader of one source: discovers shards, runs one consumer task per
//! shard in lineage order, and hands their batches out through one bounded
//! channel.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::config::StalledStreamProtectionConfig;
use aws_sdk_kinesis::config::retry::RetryConfig;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use crate::ReaderError;
use crate::batch::ShardBatch;
use crate::catalog::list_all_shards;
use crate::checkpoint::CheckpointStore;
use crate::config::{ConsumerKind, ReaderConfig};
use crate::cursor::{BatchSender, ShardCursor};
use crate::efo::register_consumer;
use crate::fault::{Backoff, Fault};
use crate::lineage::{ShardGraph, ShardInfo};
use crate::metrics::SourceMetrics;
use crate::position::{ShardCheckpoint, StartPosition};
use crate::route::{LearnRoute, RouteCell};
use crate::shard::{self, ShardEnd, ShardTask, shard_info};

/// Reads every shard of one stream for one source.
///
/// Batches come out of [`Reader::next`] per shard in order; batches of
/// different shards interleave. Dropping the reader (or [`Reader::stop`])
/// stops every shard task; nothing is checkpointed by the reader itself: the
/// caller commits each batch's [`ShardBatch::advance`] once its records are
/// safely written.
pub struct Reader {
    batches: mpsc::Receiver<Result<ShardBatch, ReaderError>>,
    metrics: Arc<SourceMetrics>,
    coordinator: JoinHandle<()>,
}

/// What a reader reads.
#[derive(Clone)]
pub struct ReadTarget {
    /// The stream's ARN.
    pub stream_arn: String,
    /// Where shards without a checkpoint start.
    pub start: StartPosition,
    /// The checkpoint scope (one source reading one stream).
    pub scope: String,
}

impl Reader {
    /// Starts reading `target` on the current tokio runtime.
    pub fn start(
        client: aws_sdk_kinesis::Client,
        target: ReadTarget,
        checkpoints: Arc<dyn CheckpointStore>,
        config: ReaderConfig,
    ) -> Reader {
        Reader::start_assigned(client, target, checkpoints, config, None)
    }

    /// [`Reader::start`] reading only the shards of `assigned` (in cluster
    /// mode: the shards whose leases this process holds); `None` reads every
    /// shard. Lineage still holds: an assigned child starts once its parents
    /// are finished, which the checkpoints say for parents read elsewhere.
    /// A new assignment means a new reader.
    pub fn start_assigned(
        client: aws_sdk_kinesis::Client,
        target: ReadTarget,
        checkpoints: Arc<dyn CheckpointStore>,
        config: ReaderConfig,
        assigned: Option<BTreeSet<String>>,
    ) -> Reader {
        // One retry layer only: ours, which counts throttles and rebuilds iterators; and
        // one stall guard: our per-call timeout (the SDK's polls a check per body frame).
        let route = RouteCell::default();
        let config_builder = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .interceptor(LearnRoute {
                cell: Arc::clone(&route),
                region: client.config().region().map(|region| region.to_string()),
            });
        let client = aws_sdk_kinesis::Client::from_conf(config_builder.build());
        let (sender, batches) = mpsc::channel(config.channel_capacity.max(1));
        let metrics = Arc::new(SourceMetrics::default());
        let coordinator = Coordinator {
            client,
            route,
            call_permits: Arc::new(Semaphore::new(config.max_concurrent_calls.max(1))),
            stream_arn: Arc::from(target.stream_arn.as_str()),
            target,
            checkpoints,
            config: Arc::new(config),
            metrics: Arc::clone(&metrics),
            sender,
            assigned,
        };
        Reader { batches, metrics, coordinator: tokio::spawn(coordinator.run()) }
    }

    /// The next batch; an error ends the reader (after it, `None`).
    pub async fn next(&mut self) -> Option<Result<ShardBatch, ReaderError>> {
        self.batches.recv().await
    }

    /// Lag and counters per shard.
    pub fn metrics(&self) -> Arc<SourceMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Stops every shard task and waits until they are gone.
    pub async fn stop(mut self) {
        self.batches.close();
        self.coordinator.abort();
        let _ = (&mut self.coordinator).await;
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.coordinator.abort();
    }
}

struct Coordinator {
    client: aws_sdk_kinesis::Client,
    route: RouteCell,
    call_permits: Arc<Semaphore>,
    stream_arn: Arc<str>,
    target: ReadTarget,
    checkpoints: Arc<dyn CheckpointStore>,
    config: Arc<ReaderConfig>,
    metrics: Arc<SourceMetrics>,
    sender: BatchSender,
    /// The only shards to read, when not all.
    assigned: Option<BTreeSet<String>>,
}

impl Coordinator {
    async fn run(self) {
        // Shard tasks live in this set: when the coordinator ends or is aborted, they go with it.
        let mut tasks = JoinSet::new();
        if let Err(error) = self.coordinate(&mut tasks).await {
            let _ = self.sender.send(Err(error)).await;
        }
    }

    async fn coordinate(
        &self,
        tasks: &mut JoinSet<(String, Result<ShardEnd, ReaderError>)>,
    ) -> Result<(), ReaderError> {
        let checkpoints = self.checkpoints.load(&self.target.scope).await?;
        let consumer_arn = match &self.config.consumer {
            ConsumerKind::Polling => None,
            ConsumerKind::EnhancedFanOut { consumer_name } => {
                Some(register_consumer(&self.client, &self.stream_arn, consumer_name, &self.config).await?)
            }
        };
        let retention = self.retention().await;
        let mut graph = ShardGraph::default();
        for (shard_id, checkpoint) in &checkpoints {
            if checkpoint.finished {
                graph.finish(shard_id);
            }
        }
        for info in self.list_shards_retrying().await? {
            graph.add(info);
        }
        let mut rediscovery = tokio::time::interval(self.config.rediscovery_interval);
        rediscovery.set_missed_tick_behavior(MissedTickBehavior::Delay);
        rediscovery.tick().await;
        loop {
            for info in graph.take_ready() {
                if self.assigned.as_ref().is_none_or(|assigned| assigned.contains(&info.shard_id)) {
                    self.spawn_shard(tasks, info, &checkpoints, consumer_arn.clone(), retention);
                }
            }
            tokio::select! {
                Some(joined) = tasks.join_next() => {
                    let (shard_id, outcome) = joined.map_err(|error| ReaderError::Internal(format!("shard task: {error}")))?;
                    match outcome? {
                        ShardEnd::Finished { children } => {
                            graph.finish(&shard_id);
                            children.into_iter().for_each(|child| graph.add(child));
                        }
                        ShardEnd::Stopped => return Ok(()),
                    }
                }
                _ = rediscovery.tick() => match self.list_shards().await {
                    Ok(shards) => shards.into_iter().for_each(|info| graph.add(info)),
                    Err(Fault::Fatal(error)) => return Err(error),
                    // Passing failures: the next tick tries again.
                    Err(_) => {}
                },
                () = self.sender.closed() => return Ok(()),
            }
        }
    }

    fn spawn_shard(
        &self,
        tasks: &mut JoinSet<(String, Result<ShardEnd, ReaderError>)>,
        info: ShardInfo,
        checkpoints: &HashMap<String, ShardCheckpoint>,
        consumer_arn: Option<Arc<str>>,
        retention: Option<Duration>,
    ) {
        let checkpoint = checkpoints.get(&info.shard_id).cloned().unwrap_or_default();
        let cursor = ShardCursor::new(
            Arc::from(info.shard_id.as_str()),
            info.hash_range,
            self.target.start,
            checkpoint,
            self.config.max_batch_records,
            self.config.max_in_flight_batches_per_shard,
            self.metrics.register(&info.shard_id),
            self.sender.clone(),
        );
        let task = ShardTask {
            client: self.client.clone(),
            stream_arn: Arc::clone(&self.stream_arn),
            shard: info,
            config: Arc::clone(&self.config),
            consumer_arn,
            route: Arc::clone(&self.route),
            call_permits: Arc::clone(&self.call_permits),
            retention,
        };
        tasks.spawn(shard::run(task, cursor));
    }

    /// How long the stream keeps records, to recognise a checkpoint past it
    /// (see [`crate::polling`]); `None` when it cannot be learned (then only an
    /// outright refused position counts as one).
    async fn retention(&self) -> Option<Duration> {
        let call = self.client.describe_stream_summary().stream_arn(self.stream_arn.as_ref()).send();
        match tokio::time::timeout(self.config.call_timeout, call).await {
            Ok(Ok(answer)) => {
                let hours = answer.stream_description_summary()?.retention_period_hours();
                Some(Duration::from_secs(u64::try_from(hours).ok()? * 3600))
            }
            Ok(Err(error)) => {
                tracing::debug!(error = %aws_sdk_kinesis::error::DisplayErrorContext(&error), "retention unknown");
                None
            }
            Err(_elapsed) => None,
        }
    }

    async fn list_shards_retrying(&self) -> Result<Vec<ShardInfo>, ReaderError> {
        let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
        loop {
            match self.list_shards().await {
                Ok(shards) => return Ok(shards),
                Err(Fault::Fatal(error)) => return Err(error),
                Err(_) => tokio::time::sleep(backoff.next_delay()).await,
            }
        }
    }

    /// Every shard Kinesis still lists (open, and closed within retention).
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, Fault> {
        let shards = list_all_shards(&self.client, &self.stream_arn, 1000, self.config.call_timeout).await?;
        Ok(shards.iter().map(shard_info).collect())
    }
}
