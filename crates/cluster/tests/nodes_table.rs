//! The cluster's nodes table against moto's DynamoDB: a crashed node's row is
//! deleted only while its heartbeat counter is still the one seen standing still.
#![allow(missing_docs)]

mod support;

use tributary_cluster::{Node, NodesTable};

#[tokio::test]
async fn a_gone_nodes_row_is_forgotten_only_while_its_counter_stands_still() {
    if !support::moto_is_up() {
        return;
    }
    let client = support::client().await;
    let table = NodesTable::new(client, NodesTable::table_name(&support::unique("c")));
    table.ensure().await.expect("create");
    let node = Node {
        id: "node-a".into(),
        address: "127.0.0.1:7878".into(),
        shards_held: 3,
        heartbeat_at_micros: 1_780_000_000_000_000,
        started_at_micros: 1_779_999_000_000_000,
        counter: 3,
    };
    table.beat(&node).await.expect("beat");
    assert!(!table.forget("node-a", 2).await.expect("forget"), "it beat since counter 2: kept");
    assert_eq!(table.list().await.expect("list"), std::slice::from_ref(&node));
    assert!(table.forget("node-a", 3).await.expect("forget"), "still at 3: deleted");
    assert!(table.list().await.expect("list").is_empty());
    assert!(!table.forget("node-a", 3).await.expect("forget"), "no row left to delete");
}
