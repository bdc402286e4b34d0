//! Cluster mode's shared state: several `tributary serve` processes share a
//! source's shards through one DynamoDB table per source, in the lease schema
//! of the Kinesis Client Library 2.x, so operators read it with the tools
//! they already use for KCL applications (DESIGN.md §10).
//!
//! - [`Lease`] is one row: a shard, its owner, its counter (heartbeat and
//!   optimistic lock), its checkpoint, its parents and hash-key range, and
//!   our ownership epoch (`tributaryEpoch`, an attribute KCL ignores), raised
//!   by the same conditional write that takes the lease.
//! - [`LeaseTable`] makes every write conditional the way KCL's are: create on
//!   absence, renew on the counter the holder last wrote, take on the counter
//!   the taker observed, checkpoint and release only by the owner.
//! - [`LeaseObserver`] judges expiry as KCL does: a lease whose counter did not
//!   move for the failover time on this process's monotonic clock has lost its
//!   owner; no wall clock is compared across machines.
//!
//! - [`leases_to_take`] is one balancing round: free leases first, then the
//!   surplus of the most loaded process, within a move budget; children only
//!   after their parents reached `SHARD_END`.
//! - [`Coordinator`] is a process's lease task: renewals every third of the
//!   failover time, a balancing scan every `scan_every`, every lease released
//!   on a clean shutdown so others take it at once; it publishes what it holds.
//! - [`DefinitionsTable`] holds the cluster's committed source versions, one
//!   item per version written only where none exists, so racing commits on
//!   two nodes get one version each; nodes poll it for [`changes`].
//!
//! - [`NodesTable`] lists the cluster's processes (address, shards held,
//!   last heartbeat) for `tributary cluster`.
//!
//! A lease is not a fence: a paused process may still believe it holds one.
//! What fences a stale writer is the table commit, which requires the shard's
//! epoch in the table to be the writer's.
//!
//! ```
//! use tributary_cluster::{Lease, LeaseCheckpoint, LeaseTable};
//!
//! assert_eq!(LeaseTable::table_name("prod", "orders"), "tributary-prod-orders");
//! let lease = Lease::new("shardId-000000000001", vec!["shardId-000000000000".into()], None);
//! assert_eq!(lease.checkpoint, LeaseCheckpoint::TrimHorizon);
//! assert_eq!((lease.owner, lease.counter, lease.epoch), (None, 0, 0));
//! ```

mod balance;
mod coordinator;
mod definitions;
mod error;
mod expiry;
mod lease;
mod nodes;
mod table;

pub use balance::{ClusterHint, leases_to_take, leases_to_take_among};
pub use coordinator::{Coordinator, CoordinatorConfig, Held, LeaseCounters, LeaseView, Reports, ShardProgress};
pub use definitions::{Change, DefinitionsTable, SharedVersion, changes};
pub use error::ClusterError;
pub use expiry::LeaseObserver;
pub use lease::{Lease, LeaseCheckpoint, LeaseReport, ShardSpec};
pub use nodes::{LiveNodes, Node, NodesTable};
pub use table::{LeaseTable, Renewal};
