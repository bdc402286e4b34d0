//! The lease table against moto's DynamoDB (which enforces conditions): KCL's
//! schema and attribute types, and every conditional write of the protocol
//! between two processes.
#![allow(missing_docs)]

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use tributary_cluster::{ClusterError, Lease, LeaseCheckpoint, LeaseObserver, LeaseReport, LeaseTable, Renewal};

#[tokio::test]
async fn the_table_has_kcls_schema_and_rows_kcls_attribute_types() {
    if !support::moto_is_up() {
        return;
    }
    let client = support::client().await;
    let name = LeaseTable::table_name(&support::unique("c"), "orders");
    let table = LeaseTable::new(client.clone(), &name, "node-a");
    table.ensure().await.expect("create");
    table.ensure().await.expect("an existing table is fine");

    let described = client.describe_table().table_name(&name).send().await.expect("DescribeTable");
    let described = described.table().expect("a table");
    let keys: Vec<(&str, &str)> =
        described.key_schema().iter().map(|k| (k.attribute_name(), k.key_type().as_str())).collect();
    assert_eq!(keys, [("leaseKey", "HASH")]);
    let billing = described.billing_mode_summary().and_then(|b| b.billing_mode()).map(|m| m.as_str().to_owned());
    assert_eq!(billing.as_deref(), Some("PAY_PER_REQUEST"));
    let index = described.global_secondary_indexes().first().expect("the owner index");
    assert_eq!(index.index_name(), Some("LeaseOwnerToLeaseKeyIndex"));
    let index_keys: Vec<(&str, &str)> =
        index.key_schema().iter().map(|k| (k.attribute_name(), k.key_type().as_str())).collect();
    assert_eq!(index_keys, [("leaseOwner", "HASH"), ("leaseKey", "RANGE")]);
    assert_eq!(index.projection().and_then(|p| p.projection_type()).map(|t| t.as_str()), Some("KEYS_ONLY"));

    // A child of a merge: two parents, a hash range; then taken and checkpointed.
    let parents = vec!["shardId-000000000000".to_owned(), "shardId-000000000001".to_owned()];
    let lease = Lease::new(
        "shardId-000000000002",
        parents.clone(),
        Some(("0".into(), "340282366920938463463374607431768211455".into())),
    );
    table.create(&lease).await.expect("create");
    let taken = table.take(&lease).await.expect("take");
    table
        .checkpoint(
            &taken,
            &LeaseCheckpoint::Sequence {
                sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
                sub_sequence: 2,
            },
        )
        .await
        .expect("checkpoint");
    table.create(&Lease::new("shardId-000000000003", Vec::new(), None)).await.expect("a root lease");

    let row = client
        .get_item()
        .table_name(&name)
        .key("leaseKey", AttributeValue::S("shardId-000000000002".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    let row: HashMap<String, AttributeValue> = row.item().cloned().expect("the row");
    let kind = |name: &str| match row.get(name) {
        Some(AttributeValue::S(_)) => "S",
        Some(AttributeValue::N(_)) => "N",
        Some(AttributeValue::Ss(_)) => "SS",
        Some(_) => "other",
        None => "absent",
    };
    for (attribute, expected) in [
        ("leaseKey", "S"),
        ("leaseOwner", "S"),
        ("leaseCounter", "N"),
        ("checkpoint", "S"),
        ("checkpointSubSequenceNumber", "N"),
        ("ownerSwitchesSinceCheckpoint", "N"),
        ("parentShardId", "SS"),
        ("startingHashKey", "S"),
        ("endingHashKey", "S"),
        ("tributaryEpoch", "N"),
    ] {
        assert_eq!(kind(attribute), expected, "{attribute}: {row:?}");
    }
    assert_eq!(row.get("checkpointSubSequenceNumber"), Some(&AttributeValue::N("2".into())));
    assert_eq!(row.get("ownerSwitchesSinceCheckpoint"), Some(&AttributeValue::N("0".into())), "a checkpoint resets it");
    let mut stored_parents = match row.get("parentShardId") {
        Some(AttributeValue::Ss(set)) => set.clone(),
        other => panic!("{other:?}"),
    };
    stored_parents.sort();
    assert_eq!(stored_parents, parents);
    let root = client
        .get_item()
        .table_name(&name)
        .key("leaseKey", AttributeValue::S("shardId-000000000003".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    let root = root.item().cloned().expect("the row");
    assert!(!root.contains_key("parentShardId"), "no empty string set: {root:?}");
    assert!(!root.contains_key("leaseOwner"), "a new lease is unowned: {root:?}");
    assert_eq!(root.get("checkpoint"), Some(&AttributeValue::S("TRIM_HORIZON".into())));

    // The owner index answers the way KCL 3.x queries it.
    let mine = client
        .query()
        .table_name(&name)
        .index_name("LeaseOwnerToLeaseKeyIndex")
        .key_condition_expression("leaseOwner = :me")
        .expression_attribute_values(":me", AttributeValue::S("node-a".into()))
        .send()
        .await
        .expect("Query");
    assert_eq!(mine.items().len(), 1);
}

#[tokio::test]
async fn every_write_is_conditional_the_way_kcls_are() {
    if !support::moto_is_up() {
        return;
    }
    let client = support::client().await;
    let name = LeaseTable::table_name(&support::unique("c"), "clicks");
    let a = LeaseTable::new(client.clone(), &name, "node-a");
    let b = LeaseTable::new(client.clone(), &name, "node-b");
    a.ensure().await.expect("create");
    let shard = "shardId-000000000000";
    a.create(&Lease::new(shard, Vec::new(), None)).await.expect("create on absence");
    assert_eq!(b.create(&Lease::new(shard, Vec::new(), None)).await, Err(ClusterError::Exists { key: shard.into() }));

    // Both see it unowned; the first take wins, the second (on the same observation) is refused.
    let seen = a.list().await.expect("list");
    assert_eq!(seen.len(), 1);
    let held = a.take(&seen[0]).await.expect("a takes");
    assert_eq!(
        (held.owner.as_deref(), held.counter, held.epoch, held.owner_switches_since_checkpoint),
        (Some("node-a"), 1, 1, 1)
    );
    assert_eq!(b.take(&seen[0]).await, Err(ClusterError::Lost { key: shard.into() }));

    // Renewals move the counter; only the holder may renew or checkpoint.
    let held = a.renew(&held).await.expect("renew");
    assert_eq!(held.counter, 2);
    assert!(matches!(b.renew(&held).await, Err(ClusterError::Lost { .. })), "b does not hold it");
    let checkpoint = LeaseCheckpoint::Sequence { sequence_number: "100".into(), sub_sequence: 0 };
    assert!(matches!(b.checkpoint(&held, &checkpoint).await, Err(ClusterError::Lost { .. })));
    let held = a.checkpoint(&held, &checkpoint).await.expect("checkpoint");
    assert_eq!((held.counter, held.owner_switches_since_checkpoint), (3, 0));
    // A renewal retried after it landed (its answer lost) is a success, not a loss.
    let before = held.clone();
    let held = a.renew(&held).await.expect("renew");
    assert_eq!(a.renew(&before).await.expect("the retried renewal"), held);
    // A renewal may publish how the shard's reading goes (attributes KCL ignores).
    let report =
        LeaseReport { lag_millis: 40, records_per_second: 1000, owner_address: "127.0.0.1:7001".into(), done: None };
    let held = a.renew_reporting(&held, Some(&report)).await.expect("renew with a report");
    assert_eq!(held.report.as_ref(), Some(&report));

    // b judges expiry on its own monotonic clock: not before the failover time.
    let mut observer = LeaseObserver::new(Duration::from_millis(300));
    let start = Instant::now();
    observer.observe(&b.list().await.expect("list"), start);
    let seen_by_b = b.get(shard).await.expect("get").expect("the lease");
    assert!(!observer.is_expired(&seen_by_b, Instant::now()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    observer.observe(&b.list().await.expect("list"), Instant::now());
    assert!(observer.is_expired(&seen_by_b, Instant::now()), "a stood still for the failover time");
    let stolen = b.take(&seen_by_b).await.expect("b takes the expired lease");
    assert_eq!((stolen.owner.as_deref(), stolen.epoch, stolen.owner_switches_since_checkpoint), (Some("node-b"), 2, 1));
    assert_eq!(stolen.checkpoint, checkpoint, "the checkpoint goes with the lease");
    assert_eq!(stolen.report, None, "the last owner's report does not");

    // The old owner finds out on its next renewal, and cannot checkpoint or release.
    assert!(matches!(a.renew(&held).await, Err(ClusterError::Lost { .. })));
    assert!(matches!(a.checkpoint(&held, &checkpoint).await, Err(ClusterError::Lost { .. })));
    assert!(matches!(a.release(&held).await, Err(ClusterError::Lost { .. })));

    // A clean shutdown releases: the lease is free at once, for anyone.
    let released = b.release(&stolen).await.expect("release");
    assert_eq!(released.owner, None);
    let observer = LeaseObserver::new(Duration::from_secs(3600));
    assert!(observer.is_expired(&released, Instant::now()), "an unowned lease needs no failover time");
    let back = a.take(&released).await.expect("a takes it again");
    assert_eq!((back.owner.as_deref(), back.epoch), (Some("node-a"), 3));
}

#[tokio::test]
async fn a_table_the_java_kcl_3_manages_is_refused() {
    if !support::moto_is_up() {
        return;
    }
    let client = support::client().await;
    let name = LeaseTable::table_name(&support::unique("c"), "kcl3");
    let table = LeaseTable::new(client.clone(), &name, "node-a");
    table.ensure().await.expect("create");
    client
        .put_item()
        .table_name(&name)
        .item("leaseKey", AttributeValue::S("Leader".into()))
        .item("entityType", AttributeValue::S("LEADER".into()))
        .send()
        .await
        .expect("a KCL 3.x leader row");
    assert_eq!(table.ensure().await, Err(ClusterError::ForeignTable { table: name.clone(), entity: "LEADER".into() }));
    // Its rows are not leases: a listing leaves them out rather than failing on them.
    assert!(table.list().await.expect("list").is_empty());
}

/// KCL's shard sync and shard end: leases for new shards (roots at the
/// source's start, children at `TRIM_HORIZON`), created once whoever syncs;
/// a child becomes workable once every parent recorded `SHARD_END`.
#[tokio::test]
async fn shard_sync_creates_each_lease_once_and_children_wait_for_shard_end() {
    use tributary_cluster::{ShardSpec, leases_to_take};
    if !support::moto_is_up() {
        return;
    }
    let client = support::client().await;
    let name = LeaseTable::table_name(&support::unique("c"), "sync");
    let a = LeaseTable::new(client.clone(), &name, "node-a");
    let b = LeaseTable::new(client.clone(), &name, "node-b");
    a.ensure().await.expect("create");
    let spec = |id: &str, parents: &[&str]| ShardSpec {
        shard_id: id.to_owned(),
        parent_shard_ids: parents.iter().map(|p| (*p).to_owned()).collect(),
        hash_key_range: Some(("0".to_owned(), "100".to_owned())),
    };
    let shards = [spec("shard-0", &[]), spec("shard-1", &[]), spec("shard-2", &["shard-0", "shard-1"])];
    let start = LeaseCheckpoint::AtTimestamp;
    assert_eq!(a.sync(&shards, &start).await.expect("sync"), (3, 2), "a scan, then one transaction creates all three");
    assert_eq!(b.sync(&shards, &start).await.expect("sync again"), (0, 1), "each lease is created once");
    // A sync against a stale view (it misses shard-0's lease) is refused whole, scans, then creates the rest.
    let wider = [spec("shard-0", &[]), spec("shard-9", &[])];
    let stale = std::collections::HashSet::new();
    assert_eq!(b.sync_against(&wider, &start, &stale).await.expect("sync"), (1, 3), "refused, a scan, shard-9");
    assert_eq!(b.sync_against(&wider, &start, &stale).await.expect("sync"), (0, 2), "refused, a scan, nothing left");
    let leases = a.list().await.expect("list");
    let checkpoints: Vec<(&str, &LeaseCheckpoint)> = leases.iter().map(|l| (l.key.as_str(), &l.checkpoint)).collect();
    assert_eq!(
        checkpoints,
        [("shard-0", &start), ("shard-1", &start), ("shard-2", &LeaseCheckpoint::TrimHorizon), ("shard-9", &start)],
        "roots at the source's start, the child from its beginning"
    );
    let never_expired = |_: &Lease| false;
    let taken = leases_to_take(&leases, "node-a", &never_expired, 10);
    assert_eq!(
        taken.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(),
        ["shard-0", "shard-1", "shard-9"],
        "not the child yet"
    );
    // Taken together in one call: each as a take leaves it, as the table has it.
    let (outcomes, calls) = a.take_together(&taken[..2]).await;
    assert_eq!(calls, 1);
    let held: Vec<Lease> = outcomes.into_iter().map(|outcome| outcome.expect("taken")).collect();
    for lease in &held {
        assert_eq!(Some(lease), a.get(&lease.key).await.expect("get").as_ref(), "the take's result is the row");
        assert_eq!((lease.owner.as_deref(), lease.epoch, lease.counter), (Some("node-a"), 1, 1));
    }
    // A take of a lease that moved since it was observed is refused; the transaction falls back and the rest are taken.
    let (outcomes, calls) = b.take_together(&[taken[0].clone(), taken[2].clone()]).await;
    assert_eq!(calls, 3, "the refused transaction, then one take each");
    assert!(matches!(outcomes[0], Err(ClusterError::Lost { .. })), "{outcomes:?}");
    assert_eq!(outcomes[1].as_ref().expect("taken").owner.as_deref(), Some("node-b"));
    let ended = a.end_shard(&held[0], &["shard-2".to_owned()]).await.expect("shard end");
    assert_eq!(ended.checkpoint, LeaseCheckpoint::ShardEnd);
    assert_eq!(ended.child_shard_ids, ["shard-2"]);
    assert!(matches!(b.end_shard(&held[1], &[]).await, Err(ClusterError::Lost { .. })), "only the owner ends a shard");
    let leases = b.list().await.expect("list");
    assert!(
        leases_to_take(&leases, "node-b", &never_expired, 10).iter().all(|l| l.key != "shard-2"),
        "one parent is still open"
    );
    a.end_shard(&held[1], &["shard-2".to_owned()]).await.expect("shard end");
    let leases = b.list().await.expect("list");
    let taken = leases_to_take(&leases, "node-b", &never_expired, 10);
    assert_eq!(taken.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(), ["shard-2"], "both parents ended");
}

/// Renewals of many leases go in one transaction (a call per 100 leases, not
/// per lease), mirroring moved checkpoints; a transaction with a lease that
/// moved is refused whole, and nothing of it is written.
#[tokio::test]
async fn many_leases_are_renewed_in_one_call_and_a_moved_one_refuses_the_call() {
    if !support::moto_is_up() {
        return;
    }
    let client = support::client().await;
    let name = LeaseTable::table_name(&support::unique("c"), "together");
    let (a, b) = (LeaseTable::new(client.clone(), &name, "node-a"), LeaseTable::new(client.clone(), &name, "node-b"));
    a.ensure().await.expect("create");
    let mut held = Vec::new();
    for shard in 0..3 {
        let lease = Lease::new(&format!("shardId-00000000000{shard}"), Vec::new(), None);
        a.create(&lease).await.expect("lease");
        held.push(a.take(&lease).await.expect("take"));
    }
    let report =
        LeaseReport { lag_millis: 7, records_per_second: 70, owner_address: "127.0.0.1:7001".into(), done: None };
    let moved = LeaseCheckpoint::Sequence { sequence_number: "4959".into(), sub_sequence: 0 };
    let renewals: Vec<Renewal<'_>> = held
        .iter()
        .enumerate()
        .map(|(i, lease)| Renewal { lease, report: Some(&report), checkpoint: (i == 0).then_some(&moved) })
        .collect();
    let renewed = a.renew_together(&renewals).await.expect("renew").pop().flatten().expect("one call, all renewed");
    let stored = a.list().await.expect("list");
    assert_eq!(stored, renewed, "what the renewal says it wrote is what the table holds");
    assert_eq!(stored[0].checkpoint, moved);
    assert!(stored.iter().all(|lease| lease.counter == 2 && lease.report.as_ref() == Some(&report)));

    // b steals one; a's next renewal of all three is refused whole.
    b.take(&stored[2]).await.expect("steal");
    let renewals: Vec<Renewal<'_>> =
        renewed.iter().map(|lease| Renewal { lease, report: None, checkpoint: None }).collect();
    assert_eq!(a.renew_together(&renewals).await.expect("answered"), [None]);
    let after = a.list().await.expect("list");
    assert_eq!((after[0].counter, after[1].counter), (2, 2), "nothing of a refused transaction is written");
    assert_eq!(after[2].owner.as_deref(), Some("node-b"));
}

/// Processes starting a new source together all sync its shards against an
/// empty view: the ones that lose the race scan once and create what is
/// still missing in one transaction, not one refused write per shard (128
/// calls for 64 shards and three processes, as it was).
#[tokio::test]
async fn a_shard_sync_that_loses_the_race_for_a_wide_stream_costs_a_scan_not_a_call_per_shard() {
    use tributary_cluster::ShardSpec;
    if !support::moto_is_up() {
        return;
    }
    let client = support::client().await;
    let name = LeaseTable::table_name(&support::unique("c"), "race");
    let first = LeaseTable::new(client.clone(), &name, "node-a");
    let late = LeaseTable::new(client.clone(), &name, "node-b");
    first.ensure().await.expect("create");
    let spec = |i: usize| ShardSpec {
        shard_id: format!("shardId-{i:012}"),
        parent_shard_ids: Vec::new(),
        hash_key_range: None,
    };
    let shards: Vec<ShardSpec> = (0..64).map(spec).collect();
    let start = LeaseCheckpoint::TrimHorizon;
    let nothing_seen = std::collections::HashSet::new();
    // The first process created 40 of them (its listing was older), the second syncs all 64 from an empty view.
    assert_eq!(first.sync(&shards[..40], &start).await.expect("sync"), (40, 2));
    assert_eq!(
        late.sync_against(&shards, &start, &nothing_seen).await.expect("sync"),
        (24, 3),
        "refused, one scan, one transaction of the 24 still missing"
    );
    assert_eq!(late.sync_against(&shards, &start, &nothing_seen).await.expect("sync"), (0, 2), "refused, one scan");
    let keys: Vec<String> = first.list().await.expect("list").into_iter().map(|lease| lease.key).collect();
    assert_eq!(keys, shards.iter().map(|shard| shard.shard_id.clone()).collect::<Vec<_>>(), "each lease once");
}
