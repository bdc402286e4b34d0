//! The cluster's definitions against moto's DynamoDB: commits racing on
//! several nodes give one version each in order, a delete is a version, every
//! change moves the change counter nodes poll, and a node reading the heads
//! sees every change.
#![allow(missing_docs)]

mod support;

use std::collections::HashMap;

use tributary_cluster::{Change, ClusterError, DefinitionsTable, SharedVersion, changes};

fn draft(source: &str, message: &str, deleted: bool) -> SharedVersion {
    SharedVersion {
        source: source.to_owned(),
        version: 0,
        definition: format!("{{\"name\": \"{source}\"}}"),
        stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/s".to_owned(),
        start_at_micros: None,
        committed_at_micros: 1_765_000_000_000_000,
        message: message.to_owned(),
        deleted,
        finished_because: None,
    }
}

#[tokio::test]
async fn racing_commits_get_one_version_each_and_every_node_sees_the_heads() {
    if !support::moto_is_up() {
        return;
    }
    let client = support::client().await;
    let cluster = support::unique("c");
    let name = DefinitionsTable::table_name(&cluster);
    // Three nodes, one table.
    let nodes: Vec<DefinitionsTable> = (0..3).map(|_| DefinitionsTable::new(client.clone(), &name)).collect();
    nodes[0].ensure().await.expect("create");
    nodes[1].ensure().await.expect("an existing table is fine");
    assert_eq!(nodes[2].change_count().await.expect("count"), None, "no change counted yet");

    // Six commits of one source at once, two per node.
    let commits = (0..6).map(|i| {
        let node = &nodes[i % 3];
        async move { node.append(&draft("orders", &format!("commit {i}"), false)).await }
    });
    let results = futures_util::future::join_all(commits).await;
    let mut stored: Vec<u64> = Vec::new();
    for result in &results {
        match result {
            Ok(version) => stored.push(version.version),
            Err(ClusterError::Conflict { .. }) => {}
            Err(other) => panic!("{other}"),
        }
    }
    stored.sort_unstable();
    let expected: Vec<u64> = (1..=stored.len() as u64).collect();
    assert_eq!(stored, expected, "one version each, in order, none lost or doubled: {results:?}");
    assert!(stored.len() >= 2, "at most a few conflicts: {results:?}");
    let history = nodes[2].history("orders").await.expect("history");
    assert_eq!(history.iter().map(|v| v.version).collect::<Vec<_>>(), expected);
    let mut messages: Vec<&str> = history.iter().map(|v| v.message.as_str()).collect();
    messages.sort_unstable();
    messages.dedup();
    assert_eq!(messages.len(), history.len(), "each stored version is a different commit");
    // Every stored version moved the change counter once (a lost race moved nothing).
    let counted = nodes[1].change_count().await.expect("count").expect("counted");
    assert_eq!(counted, stored.len() as u64);

    // Another node polls the heads and learns what to run; then a delete reaches it the same way.
    let head = stored.len() as u64;
    let running: HashMap<String, u64> = HashMap::new();
    let heads = nodes[1].heads().await.expect("heads");
    assert_eq!(changes(&running, &heads), [Change::Run(history[history.len() - 1].clone())]);
    let running = HashMap::from([("orders".to_owned(), head)]);
    assert!(changes(&running, &nodes[1].heads().await.expect("heads")).is_empty());
    // A node that found every shard done records it once; every node reads it with the heads.
    assert!(nodes[2].finish("orders", head, "bounded: no new record for 1s").await.expect("finish"));
    assert!(!nodes[0].finish("orders", head, "another reason").await.expect("finish again"), "the first reason stays");
    assert_eq!(
        nodes[0].change_count().await.expect("count"),
        Some(counted + 1),
        "a finish is a change, a refused one not"
    );
    let finished = nodes[1].heads().await.expect("heads")["orders"].finished_because.clone();
    assert_eq!(finished.as_deref(), Some("bounded: no new record for 1s"));
    assert!(!nodes[0].finish("orders", head + 7, "no such version").await.expect("finish"), "nothing is created");
    let deleted = nodes[0].append(&draft("orders", "delete", true)).await.expect("delete");
    assert_eq!(deleted.version, head + 1);
    assert_eq!(nodes[2].change_count().await.expect("count"), Some(counted + 2));
    assert_eq!(changes(&running, &nodes[2].heads().await.expect("heads")), [Change::Stop("orders".to_owned())]);
    assert_eq!(nodes[1].latest("orders").await.expect("latest").map(|v| v.deleted), Some(true));
}
