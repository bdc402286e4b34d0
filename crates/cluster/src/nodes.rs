//! The cluster's processes, for `tributary cluster`: one row per process in
//! `tributary-{cluster}-nodes` (hash key `nodeId`), rewritten on every
//! heartbeat with its API address and the shards it holds, and deleted on a
//! clean shutdown. The heartbeat time is the writer's wall clock, shown to
//! people only: nothing decides ownership by it (leases do, by counters).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, KeyType, ScalarAttributeType};

use crate::ClusterError;
use tributary_source::dynamodb::{DynamoTable, Item};

const NODE_ID: &str = "nodeId";
const ADDRESS: &str = "address";
const SHARDS_HELD: &str = "shardsHeld";
const HEARTBEAT_AT: &str = "heartbeatAtMicros";
const STARTED_AT: &str = "startedAtMicros";
const HEARTBEAT_COUNTER: &str = "heartbeatCounter";

/// One process of the cluster, as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The process's id (its leases' `leaseOwner`).
    pub id: String,
    /// Where its API answers.
    pub address: String,
    /// How many shards it holds, over every source.
    pub shards_held: u64,
    /// When it last wrote its row (µs since the epoch, its own clock).
    pub heartbeat_at_micros: i64,
    /// When it started (µs since the epoch).
    pub started_at_micros: i64,
    /// One more with every heartbeat: others judge it live by this moving on
    /// their own monotonic clocks, as leases are judged.
    pub counter: u64,
}

impl Node {
    fn to_item(&self) -> Item {
        HashMap::from([
            (NODE_ID.to_owned(), AttributeValue::S(self.id.clone())),
            (ADDRESS.to_owned(), AttributeValue::S(self.address.clone())),
            (SHARDS_HELD.to_owned(), AttributeValue::N(self.shards_held.to_string())),
            (HEARTBEAT_AT.to_owned(), AttributeValue::N(self.heartbeat_at_micros.to_string())),
            (STARTED_AT.to_owned(), AttributeValue::N(self.started_at_micros.to_string())),
            (HEARTBEAT_COUNTER.to_owned(), AttributeValue::N(self.counter.to_string())),
        ])
    }

    fn from_item(item: &Item) -> Result<Node, (String, String)> {
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(text)) => Some(text.clone()),
            _ => None,
        };
        let id = text(NODE_ID).ok_or_else(|| (String::new(), format!("no string `{NODE_ID}`")))?;
        let number = |name: &str| match item.get(name) {
            Some(AttributeValue::N(text)) => {
                text.parse::<i64>().map_err(|_| (id.clone(), format!("`{name}` is not an integer: {text}")))
            }
            _ => Err((id.clone(), format!("no number `{name}`"))),
        };
        Ok(Node {
            address: text(ADDRESS).unwrap_or_default(),
            shards_held: u64::try_from(number(SHARDS_HELD)?).unwrap_or(0),
            heartbeat_at_micros: number(HEARTBEAT_AT)?,
            started_at_micros: number(STARTED_AT)?,
            counter: u64::try_from(number(HEARTBEAT_COUNTER).unwrap_or(0)).unwrap_or(0),
            id,
        })
    }
}

/// Which nodes are live, as one process sees them: a node whose heartbeat
/// counter moved within `stale_after` on this process's monotonic clock (one
/// seen for the first time counts as live until then). For balancing only:
/// leases, not this, decide who reads a shard.
#[derive(Debug)]
pub struct LiveNodes {
    stale_after: Duration,
    seen: HashMap<String, (u64, Instant)>,
}

impl LiveNodes {
    /// Nodes count as live while their counter moved within `stale_after`.
    pub fn new(stale_after: Duration) -> LiveNodes {
        LiveNodes { stale_after, seen: HashMap::new() }
    }

    /// Notes a listing at `now` (`wall_now`: this machine's clock, in µs);
    /// answers how many nodes are live. A row seen for the first time counts
    /// as live unless its own heartbeat time is already older than
    /// `stale_after` by this machine's clock (a node that died before this one
    /// started): wall clocks only discount a first sighting, for balancing.
    pub fn observe(&mut self, nodes: &[Node], now: Instant, wall_now_micros: i64) -> usize {
        self.seen.retain(|id, _| nodes.iter().any(|node| &node.id == id));
        let stale_micros = i64::try_from(self.stale_after.as_micros()).unwrap_or(i64::MAX);
        for node in nodes {
            let first_sight = || {
                let old = wall_now_micros.saturating_sub(node.heartbeat_at_micros) >= stale_micros;
                (node.counter, if old { now.checked_sub(self.stale_after).unwrap_or(now) } else { now })
            };
            let seen = self.seen.entry(node.id.clone()).or_insert_with(first_sight);
            if seen.0 != node.counter {
                *seen = (node.counter, now);
            }
        }
        self.seen.values().filter(|(_, since)| now.saturating_duration_since(*since) < self.stale_after).count()
    }

    /// The nodes whose counter stood still for `after` on this process's
    /// clock (as of the last [`LiveNodes::observe`]), each with that counter:
    /// rows a crash left, to forget only while the counter is still that.
    pub fn gone_for(&self, after: Duration, now: Instant) -> Vec<(String, u64)> {
        let mut gone: Vec<(String, u64)> = self
            .seen
            .iter()
            .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= after)
            .map(|(id, (counter, _))| (id.clone(), *counter))
            .collect();
        gone.sort();
        gone
    }
}

/// The cluster's nodes table.
#[derive(Debug, Clone)]
pub struct NodesTable {
    table: DynamoTable,
}

impl NodesTable {
    /// The nodes table of `cluster`.
    pub fn table_name(cluster: &str) -> String {
        format!("tributary-{cluster}-nodes")
    }

    /// Table `table`.
    pub fn new(client: Client, table: impl Into<String>) -> NodesTable {
        NodesTable { table: DynamoTable::new(client, table) }
    }

    /// Creates the table if it is missing (`PAY_PER_REQUEST`).
    pub async fn ensure(&self) -> Result<(), ClusterError> {
        let table = &self.table;
        let create = table
            .client
            .create_table()
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(table.attribute(NODE_ID, ScalarAttributeType::S)?)
            .key_schema(table.key(NODE_ID, KeyType::Hash)?);
        table.ensure(create).await?;
        Ok(())
    }

    /// Writes `node`'s row (a heartbeat).
    pub async fn beat(&self, node: &Node) -> Result<(), ClusterError> {
        let table = &self.table;
        table
            .client
            .put_item()
            .table_name(&table.name)
            .set_item(Some(node.to_item()))
            .send()
            .await
            .map_err(|error| table.failed("PutItem", &error))?;
        Ok(())
    }

    /// Deletes `node_id`'s row (a clean shutdown).
    pub async fn leave(&self, node_id: &str) -> Result<(), ClusterError> {
        let table = &self.table;
        table
            .client
            .delete_item()
            .table_name(&table.name)
            .key(NODE_ID, AttributeValue::S(node_id.to_owned()))
            .send()
            .await
            .map_err(|error| table.failed("DeleteItem", &error))?;
        Ok(())
    }

    /// Deletes the row of a node that stopped beating without leaving (a
    /// crash), only if its counter is still `counter`: a node that came back
    /// keeps its row. `false` when the row moved or was gone.
    pub async fn forget(&self, node_id: &str, counter: u64) -> Result<bool, ClusterError> {
        let table = &self.table;
        let deleted = table
            .client
            .delete_item()
            .table_name(&table.name)
            .key(NODE_ID, AttributeValue::S(node_id.to_owned()))
            .condition_expression("#counter = :seen")
            .expression_attribute_names("#counter", HEARTBEAT_COUNTER)
            .expression_attribute_values(":seen", AttributeValue::N(counter.to_string()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(false)
            }
            Err(error) => Err(table.failed("DeleteItem", &error).into()),
        }
    }

    /// Every node's row, by id.
    pub async fn list(&self) -> Result<Vec<Node>, ClusterError> {
        let mut nodes = self
            .table
            .scan(None)
            .await?
            .iter()
            .map(|item| Node::from_item(item).map_err(|found| ClusterError::corrupt(&self.table.name, found)))
            .collect::<Result<Vec<_>, _>>()?;
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_live_while_its_counter_moves() {
        let node = |id: &str, counter| Node {
            id: id.into(),
            address: String::new(),
            shards_held: 0,
            heartbeat_at_micros: 0,
            started_at_micros: 0,
            counter,
        };
        let start = Instant::now() + Duration::from_secs(60);
        let wall = 1_780_000_000_000_000;
        let mut live = LiveNodes::new(Duration::from_secs(15));
        let beat_at = |mut node: Node, micros: i64| {
            node.heartbeat_at_micros = micros;
            node
        };
        let (a, b) = (beat_at(node("a", 1), wall), beat_at(node("b", 7), wall - 1_000_000));
        assert_eq!(live.observe(&[a.clone(), b.clone()], start, wall), 2, "first seen, beating lately: live");
        let later = start + Duration::from_secs(16);
        let a2 = beat_at(node("a", 2), wall + 16_000_000);
        assert_eq!(live.observe(&[a2.clone(), b.clone()], later, wall + 16_000_000), 1, "b's counter stood still");
        assert_eq!(live.gone_for(Duration::from_secs(16), later), [("b".to_owned(), 7)], "b stood still for 16 s");
        assert!(live.gone_for(Duration::from_secs(17), later).is_empty());
        assert_eq!(live.observe(std::slice::from_ref(&a2), later, wall + 16_000_000), 1, "a row gone is forgotten");
        assert!(live.gone_for(Duration::ZERO, later).iter().all(|(id, _)| id != "b"));
        // A node that died long before this one started is not live at first sight.
        let mut fresh = LiveNodes::new(Duration::from_secs(15));
        let dead = beat_at(node("c", 3), wall - 60_000_000);
        assert_eq!(fresh.observe(&[a2, dead], later, wall + 16_000_000), 1);
    }

    #[test]
    fn a_node_round_trips_through_its_item() {
        let node = Node {
            id: "ip-10-0-0-5-3f2a".into(),
            address: "10.0.0.5:7878".into(),
            shards_held: 6,
            heartbeat_at_micros: 1_780_000_000_000_000,
            started_at_micros: 1_779_999_000_000_000,
            counter: 12,
        };
        assert_eq!(Node::from_item(&node.to_item()), Ok(node.clone()));
        let mut item = node.to_item();
        item.remove(HEARTBEAT_AT);
        assert!(Node::from_item(&item).expect_err("no heartbeat").1.contains(HEARTBEAT_AT));
    }
}
