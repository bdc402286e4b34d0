//! Three processes' lease tasks sharing one lease table on moto's DynamoDB:
//! the shards spread evenly and disjointly, a clean shutdown hands its shards
//! over at the next scan, and a crash hands them over after the failover
//! time. The hand-over times are printed (they are measured, not asserted).
#![allow(missing_docs)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tributary_cluster::{
    Coordinator, CoordinatorConfig, Held, Lease, LeaseCheckpoint, LeaseReport, LeaseTable, ShardProgress,
};

const SHARDS: usize = 8;

fn config() -> CoordinatorConfig {
    CoordinatorConfig { failover: Duration::from_millis(1500), scan_every: Duration::from_millis(200), move_budget: 4 }
}

fn snapshot(nodes: &[&Coordinator]) -> Vec<Held> {
    nodes.iter().map(|node| node.held().borrow().clone()).collect()
}

/// Waits (up to a minute) until `nodes` hold every shard between them, each
/// shard once, within one of an even share; answers how long it took.
async fn until_balanced(nodes: &[&Coordinator]) -> Duration {
    let start = Instant::now();
    let share = SHARDS.div_ceil(nodes.len());
    loop {
        let held = snapshot(nodes);
        let all: Vec<&String> = held.iter().flat_map(|h| h.keys()).collect();
        let distinct: BTreeSet<&String> = all.iter().copied().collect();
        let even = held.iter().all(|h| h.len() <= share && h.len() + 1 >= SHARDS / nodes.len());
        if all.len() == SHARDS && distinct.len() == SHARDS && even {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never balanced: {held:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_spread_evenly_and_move_on_shutdown_and_on_a_crash() {
    if !support::moto_is_up() {
        return;
    }
    let client = support::client().await;
    let name = LeaseTable::table_name(&support::unique("c"), "spread");
    let setup = LeaseTable::new(client.clone(), &name, "setup");
    setup.ensure().await.expect("create");
    for shard in 0..SHARDS {
        setup.create(&Lease::new(&format!("shardId-{shard:012}"), Vec::new(), None)).await.expect("lease");
    }
    let node = |id: &str| Coordinator::start(LeaseTable::new(client.clone(), &name, id), config());
    let (a, b, c) = (node("node-a"), node("node-b"), node("node-c"));
    let spread = until_balanced(&[&a, &b, &c]).await;
    let epochs: Vec<u64> = snapshot(&[&a, &b, &c]).iter().flat_map(|h| h.values().copied()).collect();
    assert!(epochs.iter().all(|epoch| *epoch >= 1), "every take raised the epoch: {epochs:?}");

    // What a's worker says of its shards reaches the table with the next renewals, for every node to read.
    let report =
        LeaseReport { lag_millis: 1200, records_per_second: 850, owner_address: "127.0.0.1:7001".into(), done: None };
    let a_shards: Vec<String> = a.held().borrow().keys().cloned().collect();
    let progress = ShardProgress { report: report.clone(), checkpoint: None };
    a.report(a_shards.iter().map(|shard| (shard.clone(), progress.clone())).collect());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leases = setup.list().await.expect("list");
        let reported: Vec<&Lease> = leases.iter().filter(|l| l.report.as_ref() == Some(&report)).collect();
        if reported.len() == a_shards.len() && reported.iter().all(|l| l.owner.as_deref() == Some("node-a")) {
            break;
        }
        assert!(Instant::now() < deadline, "the reports never reached the table: {leases:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A clean shutdown releases: the others take its shards at their next scan.
    let from_b: Vec<String> = b.held().borrow().keys().cloned().collect();
    let stopped = Instant::now();
    b.shutdown().await.expect("shutdown");
    let after_shutdown = until_balanced(&[&a, &c]).await;
    let shutdown_handover = stopped.elapsed().max(after_shutdown);
    let now = snapshot(&[&a, &c]);
    for shard in &from_b {
        let epoch = now.iter().find_map(|h| h.get(shard)).expect("taken over");
        assert!(*epoch >= 2, "{shard}: a new owner, a new epoch");
    }

    // A crash releases nothing: its shards move once their counters stood still for the failover time.
    let crashed = Instant::now();
    c.abort();
    let alone = until_balanced(&[&a]).await;
    let crash_handover = crashed.elapsed().max(alone);
    assert_eq!(a.held().borrow().len(), SHARDS);
    eprintln!(
        "MEASURED lease spread over 3 nodes: {spread:?}; hand-over after shutdown: {shutdown_handover:?} (scan every {:?}); after a crash: {crash_handover:?} (failover {:?})",
        config().scan_every,
        config().failover
    );
    a.shutdown().await.expect("shutdown");
    let leases = setup.list().await.expect("list");
    assert!(leases.iter().all(|lease| lease.owner.is_none()), "a clean shutdown leaves every lease free: {leases:?}");
}

/// The worker's committed checkpoint is mirrored into the lease with the next
/// renewal; a shard read to its end gets `SHARD_END` with its children named
/// and is released, and the child's lease is then taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_mirrored_and_a_finished_shard_hands_on_to_its_child() {
    if !support::moto_is_up() {
        return;
    }
    let client = support::client().await;
    let name = LeaseTable::table_name(&support::unique("c"), "ends");
    let setup = LeaseTable::new(client.clone(), &name, "setup");
    setup.ensure().await.expect("create");
    let (parent, other, child) = ("shardId-000000000000", "shardId-000000000001", "shardId-000000000002");
    for lease in [Lease::new(parent, Vec::new(), None), Lease::new(other, Vec::new(), None)] {
        setup.create(&lease).await.expect("lease");
    }
    setup.create(&Lease::new(child, vec![parent.to_owned()], None)).await.expect("child lease");
    let a = Coordinator::start(LeaseTable::new(client.clone(), &name, "node-a"), config());
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.held().borrow().len() < 2 {
        assert!(Instant::now() < deadline, "never took the two workable leases");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!a.held().borrow().contains_key(child), "a child waits for its parent's SHARD_END");
    let report =
        LeaseReport { lag_millis: 0, records_per_second: 0, owner_address: "127.0.0.1:7001".into(), done: None };
    let at = LeaseCheckpoint::Sequence {
        sequence_number: "49590338271490256608559692538361571095921575989136588802".into(),
        sub_sequence: 2,
    };
    a.report(
        [
            (other.to_owned(), ShardProgress { report: report.clone(), checkpoint: Some(at.clone()) }),
            (parent.to_owned(), ShardProgress { report, checkpoint: Some(LeaseCheckpoint::ShardEnd) }),
        ]
        .into(),
    );
    loop {
        let leases = setup.list().await.expect("list");
        let get = |key: &str| leases.iter().find(|l| l.key == key).cloned().expect("lease");
        let (ended, mirrored, started) = (get(parent), get(other), get(child));
        if ended.checkpoint == LeaseCheckpoint::ShardEnd
            && mirrored.checkpoint == at
            && started.owner.as_deref() == Some("node-a")
        {
            assert_eq!(ended.child_shard_ids, [child.to_owned()]);
            assert_eq!(ended.owner, None, "a finished shard's lease is released");
            assert_eq!(mirrored.owner_switches_since_checkpoint, 0);
            break;
        }
        assert!(Instant::now() < deadline, "never mirrored or handed on: {leases:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.held().borrow().keys().cloned().collect::<Vec<_>>(), [other.to_owned(), child.to_owned()]);
    let counters = a.counters();
    assert_eq!(counters.taken.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert!(counters.renewed.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert!(a.view().leases.iter().any(|(lease, _)| lease.key == child));
    a.shutdown().await.expect("shutdown");
}

/// A coordinator dropped without shutting down renews nothing more, and the
/// process's next coordinator takes its leases back at once (they are in its
/// name, and nobody else renews them), without waiting for the failover time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_coordinator_stops_and_the_next_one_of_the_process_takes_its_leases_back() {
    if !support::moto_is_up() {
        return;
    }
    let client = support::client().await;
    let name = LeaseTable::table_name(&support::unique("c"), "again");
    let setup = LeaseTable::new(client.clone(), &name, "setup");
    setup.ensure().await.expect("create");
    for shard in 0..3 {
        setup.create(&Lease::new(&format!("shardId-{shard:012}"), Vec::new(), None)).await.expect("lease");
    }
    let slow = CoordinatorConfig { failover: Duration::from_secs(60), ..config() };
    let first = Coordinator::start(LeaseTable::new(client.clone(), &name, "node-a"), slow);
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.held().borrow().len() < 3 {
        assert!(Instant::now() < deadline, "never took the leases");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first);
    let counters: Vec<u64> = setup.list().await.expect("list").iter().map(|lease| lease.counter).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let still: Vec<u64> = setup.list().await.expect("list").iter().map(|lease| lease.counter).collect();
    assert_eq!(counters, still, "a dropped coordinator renews nothing");

    let second = Coordinator::start(LeaseTable::new(client.clone(), &name, "node-a"), slow);
    let started = Instant::now();
    while second.held().borrow().len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(10), "the leases in its name were not taken back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let epochs: Vec<u64> = second.held().borrow().values().copied().collect();
    assert!(epochs.iter().all(|epoch| *epoch >= 2), "taken again, with a new epoch: {epochs:?}");
    second.shutdown().await.expect("shutdown");
}
