//! Cluster mode end to end, several real `tributary serve` processes on
//! 127.0.0.1 sharing kinesis-local and moto (DynamoDB leases, definitions
//! and the Iceberg DynamoDB catalog, S3 warehouse): every valid record lands
//! exactly once in the table through resharding, `kill -9`, a joining node,
//! a SIGTERM and a paused (zombie) node whose in-flight batch the table
//! commit's fence refuses; the lease table is KCL's; racing commits on two
//! nodes get one version each; hand-over times are measured and printed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::lakehouse::{MALFORMED_EVERY, create_bucket, ids, payload, pyiceberg, valid_ids};
use support::server::ServerProcess;
use support::{
    Emulators, create_stream, kinesis_client, merge_third_and_fourth, put_indexed, split_first_shard, stdout,
    tributary, unique,
};

/// How long a test waits for the cluster to get somewhere (leases spread, a
/// node reach a point): long, as a loaded CI machine runs these processes slowly;
/// what the product promises (the hand-over after `kill -9`) is asserted apart.
const SETTLE: Duration = Duration::from_secs(120);

/// Short, so the test is quick; `TRIBUTARY_TEST_LEASE_FAILOVER_SECONDS=10` measures the default.
fn failover_seconds() -> f64 {
    std::env::var("TRIBUTARY_TEST_LEASE_FAILOVER_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0)
}

fn definition(dir: &Path, source: &str, stream_arn: &str) -> std::path::PathBuf {
    let text = format!(
        "sources:\n  - name: {source}\n    kinesis:\n      stream_arn: {stream_arn}\n      init_position: trim_horizon\n      format: json\n    dataset:\n      name: {source}_rows\n      format: iceberg\n      fields:\n        - {{name: id, type: int64}}\n        - {{name: ts, type: timestamp}}\n        - {{name: name, type: \"optional<string>\"}}\n      timestamp: ts\n"
    );
    let path = dir.join(format!("{source}.yaml"));
    std::fs::write(&path, text).expect("write definition");
    path
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// One cluster's shared settings: its name, warehouse and catalog.
struct ClusterSetup {
    name: String,
    warehouse: String,
    /// `--catalog dynamodb` with this catalog table, or `--catalog glue` with this database.
    catalog: (&'static str, String),
    root: tempfile::TempDir,
}

impl ClusterSetup {
    fn new(emulators: &Emulators) -> ClusterSetup {
        ClusterSetup::with_catalog(emulators, ("dynamodb", unique("iceberg_cluster")))
    }

    fn with_catalog(emulators: &Emulators, catalog: (&'static str, String)) -> ClusterSetup {
        let bucket = create_bucket(emulators);
        ClusterSetup {
            name: unique("c").to_lowercase().replace('_', "-"),
            warehouse: format!("s3://{bucket}/tables"),
            catalog,
            root: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Starts node `id` of the cluster (quick lease timing), with `extra` flags.
    fn node(&self, id: &str, extra: &[&str]) -> ServerProcess {
        self.node_with_env(id, extra, &[])
    }

    fn node_with_env(&self, id: &str, extra: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let data_dir = self.root.path().join(id);
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let failover = failover_seconds().to_string();
        let (kind, name) = (&self.catalog.0, &self.catalog.1);
        let name_flag = if *kind == "glue" { "--glue-database" } else { "--dynamodb-catalog-table" };
        let mut flags = vec![
            "--cluster",
            &self.name,
            "--node-id",
            id,
            "--warehouse",
            &self.warehouse,
            "--catalog",
            kind,
            name_flag,
            name,
            "--lease-failover-seconds",
            &failover,
            "--lease-scan-ms",
            "300",
            "--definitions-poll-ms",
            "300",
            "--no-live-validation",
            // Maintenance often, so it runs amid the hand-overs too (on one node at a time).
            "--table-maintenance-seconds",
            "2",
            "--compact-min-files",
            "4",
        ];
        flags.extend(extra);
        ServerProcess::start_with_env(&data_dir, &flags, env)
    }

    fn table(&self, name: &str) -> String {
        format!("{}:{}/{name}", self.catalog.0, self.catalog.1)
    }
}

/// Each shard's lease as `node`'s status shows it: shard → (owner, checkpoint).
fn leases(node: &ServerProcess, source: &str) -> BTreeMap<String, (Option<String>, Value)> {
    // Not there until the node read the cluster's definitions.
    let Some(status) = node.get_if_found(&format!("/api/v1/sources/{source}/status")) else { return BTreeMap::new() };
    status["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|shard| shard["lease"].is_object())
        .map(|shard| {
            let lease = &shard["lease"];
            let owner = lease["owner"].as_str().map(str::to_owned);
            (shard["shard_id"].as_str().unwrap_or_default().to_owned(), (owner, lease["checkpoint"].clone()))
        })
        .collect()
}

/// Waits until every shard not read to its end is held by one of `live`
/// (the hand-over), and then until evenly (each within one of an equal
/// share); answers how long the hand-over took.
fn until_held_by(node: &ServerProcess, source: &str, live: &[&str], limit: Duration) -> Duration {
    let start = Instant::now();
    let mut handed_over = None;
    loop {
        let leases = leases(node, source);
        let open: Vec<&Option<String>> =
            leases.values().filter(|(_, checkpoint)| *checkpoint != "SHARD_END").map(|(owner, _)| owner).collect();
        let all_live = !open.is_empty() && open.iter().all(|owner| owner.as_deref().is_some_and(|o| live.contains(&o)));
        let share = open.len() / live.len();
        let even = live.iter().all(|node| open.iter().filter(|owner| owner.as_deref() == Some(*node)).count() >= share);
        if all_live {
            handed_over.get_or_insert_with(|| start.elapsed());
        }
        if let (Some(handed_over), true) = (handed_over, even) {
            eprintln!("(held by {live:?} after {handed_over:?}, evenly after {:?})", start.elapsed());
            return handed_over;
        }
        assert!(start.elapsed() < limit, "the shards were not held by {live:?} within {limit:?}: {leases:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until pyiceberg reads every valid record of `0..records` from the table.
fn until_landed(table: &str, records: usize, limit: Duration) -> Value {
    let expected = valid_ids(0..records).len();
    let start = Instant::now();
    loop {
        let read = pyiceberg(table, None).expect("pyiceberg (CI sets its Python)");
        if ids(&read).len() >= expected {
            return read;
        }
        assert!(start.elapsed() < limit, "{} of {expected} rows in the table within {limit:?}", ids(&read).len());
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// The rejected table `table` holds every malformed record of `0..records`,
/// each once (as `shard/sequence/reason`).
fn rejected_once(table: &str, records: usize) -> BTreeSet<String> {
    let read = pyiceberg(table, None).expect("pyiceberg (CI sets its Python)");
    let rows: Vec<String> =
        read["rejected"].as_array().expect("rows").iter().filter_map(|row| row.as_str().map(str::to_owned)).collect();
    let distinct: BTreeSet<String> = rows.iter().cloned().collect();
    assert_eq!(rows.len(), records / MALFORMED_EVERY, "every malformed record in the rejected table");
    assert_eq!(distinct.len(), rows.len(), "each once");
    assert!(rows.iter().all(|row| row.ends_with("/TYPE_MISMATCH")), "{rows:?}");
    distinct
}

/// The lease table as boto3 describes and scans it: key schema, indexes, and each row's attribute types.
fn lease_table_as_boto3_sees_it(emulators: &Emulators, table: &str) -> Value {
    let script = format!(
        "import boto3, json, os\nc = boto3.client('dynamodb', endpoint_url=os.environ['AWS_ENDPOINT_URL_S3'], region_name='us-east-1')\nd = c.describe_table(TableName='{table}')['Table']\nitems = c.scan(TableName='{table}', ConsistentRead=True)['Items']\nprint(json.dumps({{'keys': d['KeySchema'], 'indexes': [(i['IndexName'], i['KeySchema']) for i in d.get('GlobalSecondaryIndexes', [])], 'billing': d.get('BillingModeSummary', {{}}).get('BillingMode'), 'items': items}}))"
    );
    let output = std::process::Command::new(&emulators.moto_python)
        .args(["-c", &script])
        .env("AWS_ENDPOINT_URL_S3", &emulators.moto)
        .output()
        .expect("python");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

#[test]
fn nodes_share_the_shards_through_resharding_kill_9_a_new_node_sigterm_and_a_zombie_and_land_every_record_once() {
    const RECORDS: usize = 30_000;
    let Some(emulators) = Emulators::from_env() else { return };
    let rt = runtime();
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &unique("cluster"), 16, true));
    let cluster = ClusterSetup::new(&emulators);
    // a commits every 5 s (and stops at its commit while `hold` exists: the zombie below).
    let hold = cluster.root.path().join("hold-node-a");
    let hold_file = hold.to_string_lossy().into_owned();
    let hold_env = [("TRIBUTARY_HOLD_AT", "before-table-commit"), ("TRIBUTARY_HOLD_FILE", hold_file.as_str())];
    let a = cluster.node_with_env("node-a", &["--flush-seconds", "5", "--flush-rows", "100000"], &hold_env);
    let b = cluster.node("node-b", &["--flush-rows", "500"]);
    let c = cluster.node("node-c", &["--flush-rows", "500"]);
    let file = definition(cluster.root.path(), "clustered", &stream_arn);
    let committed = tributary(&["commit", &file.to_string_lossy(), "--server", &b.url()], &[]);
    assert!(committed.status.success(), "{}", String::from_utf8_lossy(&committed.stderr));
    let spread = until_held_by(&a, "clustered", &["node-a", "node-b", "node-c"], SETTLE);
    eprintln!("MEASURED commit on b to 16 shards spread over 3 nodes: {spread:?}");

    let client = kinesis_client(&emulators.kinesis);
    let third = RECORDS / 3;
    rt.block_on(put_indexed(&client, &stream_arn, 0..third, payload));

    // kill -9: c's shards move once their counters stood still for the failover time.
    c.crash();
    let after_kill = until_held_by(&a, "clustered", &["node-a", "node-b"], SETTLE);
    eprintln!("MEASURED hand-over after kill -9: {after_kill:?} (failover {} s, scan 300 ms)", failover_seconds());
    assert!(after_kill < Duration::from_secs_f64(failover_seconds() + 10.0), "{after_kill:?}");

    let shards = rt.block_on(split_first_shard(&client, &emulators.kinesis, &stream_arn));
    rt.block_on(put_indexed(&client, &stream_arn, third..2 * third, payload));
    let d = cluster.node("node-d", &["--flush-rows", "500"]);
    until_held_by(&a, "clustered", &["node-a", "node-b", "node-d"], SETTLE);

    // SIGTERM: b commits what it holds and releases its leases; the others take them at their next scan.
    let mut b = b;
    b.signal("TERM");
    let after_sigterm = until_held_by(&a, "clustered", &["node-a", "node-d"], SETTLE);
    assert!(b.wait_exit(Duration::from_secs(30)), "b stopped cleanly: {}", b.log());
    eprintln!("MEASURED hand-over after SIGTERM: {after_sigterm:?} (b commits, releases; the others' next scan)");

    rt.block_on(merge_third_and_fourth(&client, &emulators.kinesis, &stream_arn, &shards));
    // A zombie: paused in the middle of a commit past the failover time, then woken. It
    // learns it lost its shards only after its commit went on: the fence must refuse it.
    std::fs::write(&hold, b"").expect("hold file");
    rt.block_on(put_indexed(&client, &stream_arn, 2 * third..RECORDS, payload));
    let deadline = Instant::now() + SETTLE;
    while !a.log().contains("held at before-table-commit") {
        assert!(Instant::now() < deadline, "a never reached its commit: {}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    a.signal("STOP");
    std::thread::sleep(Duration::from_secs_f64(failover_seconds() + 3.0));
    until_held_by(&d, "clustered", &["node-d"], SETTLE);
    std::fs::remove_file(&hold).expect("release the hold");
    a.signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !a.log().contains("was claimed by a newer owner") {
        assert!(Instant::now() < deadline, "the zombie's batch was not refused by the fence: {}", a.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let read = until_landed(&cluster.table("clustered_rows"), RECORDS, Duration::from_secs(300));
    assert_eq!(ids(&read), valid_ids(0..RECORDS), "every valid record exactly once");
    let rejected = rejected_once(&cluster.table("clustered_rows__rejected"), RECORDS);

    // The rejected table is the error log every node answers from (each node's own log holds only its rejections).
    let errors = d.errors("clustered");
    let listed: BTreeSet<String> = errors
        .iter()
        .map(|e| {
            format!(
                "{}/{}/{}",
                e["shard_id"].as_str().unwrap_or(""),
                e["sequence_number"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!((errors.len(), &listed), (rejected.len(), &rejected), "tributary errors from node d");
    let printed = stdout(&tributary(&["errors", "clustered", "--limit", "5", "--server", &a.url()], &[]));
    assert!(printed.contains("TYPE_MISMATCH"), "{printed}");
    // The console's counts and export read the same shared table, from any node.
    let summary = a.get("/api/v1/sources/clustered/errors/summary");
    assert_eq!(summary["total"].as_u64(), Some(rejected.len() as u64), "{summary:#}");
    let some_shard = errors[0]["shard_id"].as_str().expect("shard").to_owned();
    let of_shard = d.get(&format!("/api/v1/sources/clustered/errors?shard={some_shard}&limit=1000"));
    let expected = errors.iter().filter(|e| e["shard_id"] == some_shard.as_str()).count();
    assert_eq!(of_shard["errors"].as_array().map(Vec::len), Some(expected), "filtered by shard on node d");
    let mut export = ureq::get(&format!("{}/api/v1/sources/clustered/errors/export", d.url())).call().expect("export");
    let exported = export.body_mut().read_to_string().expect("NDJSON");
    assert_eq!(exported.lines().count(), rejected.len(), "the export holds every shared row");
    let page = ureq::get(&format!("{}/", d.url())).call().expect("the console");
    assert!(page.headers().get("content-security-policy").is_some(), "every node serves the console");

    // Status from any node: every shard's owner, address, epoch and checkpoint; the nodes.
    // (a shard taken moments ago shows its owner's address with the owner's next renewal)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = d.get("/api/v1/sources/clustered/status");
        let shards = status["shards"].as_array().expect("shards").clone();
        assert_eq!(shards.len(), 16 + 2 + 1, "16 shards, a split's two children, a merge's child: {status:#}");
        let open: Vec<&Value> = shards.iter().filter(|shard| shard["lease"]["checkpoint"] != "SHARD_END").collect();
        for shard in &open {
            let lease = &shard["lease"];
            assert!(lease["owner"] == "node-a" || lease["owner"] == "node-d", "{shard:#}");
            assert!(lease["epoch"].as_u64() >= Some(1), "{shard:#}");
        }
        if open.iter().all(|shard| shard["lease"]["owner_address"].is_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "owners' addresses never published: {status:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let printed = stdout(&tributary(&["status", "clustered", "--server", &a.url()], &[]));
    assert!(printed.contains("OWNER") && printed.contains("node-d") && printed.contains("EPOCH"), "{printed}");
    let nodes = d.get("/api/v1/cluster");
    let ids_listed: Vec<&str> =
        nodes["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["id"].as_str()).collect();
    assert!(ids_listed.contains(&"node-a") && ids_listed.contains(&"node-d"), "{nodes:#}");
    assert!(!ids_listed.contains(&"node-b"), "a clean stop leaves the nodes table: {nodes:#}");
    for node in nodes["nodes"].as_array().expect("nodes") {
        // c was killed long enough ago (more than three heartbeats) to show as not live.
        let expected_live = node["id"] != "node-c";
        assert_eq!(node["live"] == true, expected_live, "{node:#}");
    }
    let printed = stdout(&tributary(&["cluster", "--server", &d.url()], &[]));
    assert!(printed.contains("node-d") && printed.contains("(this node)"), "{printed}");
    let metrics = a.metrics();
    for counter in ["tributary_leases_taken_total", "tributary_leases_lost_total", "tributary_lease_renewals_total"] {
        assert!(metrics.contains(&format!("{counter}{{source=\"clustered\"}}")), "{counter}: {metrics}");
    }

    // The lease table is KCL 2.x's, and the parents of the split and merge ended naming their children.
    let table = lease_table_as_boto3_sees_it(&emulators, &format!("tributary-{}-clustered", cluster.name));
    assert_eq!(table["keys"], serde_json::json!([{"AttributeName": "leaseKey", "KeyType": "HASH"}]));
    assert_eq!(table["indexes"][0][0], "LeaseOwnerToLeaseKeyIndex");
    assert_eq!(table["billing"], "PAY_PER_REQUEST");
    let items = table["items"].as_array().expect("items");
    assert_eq!(items.len(), 19);
    let kind = |item: &Value, name: &str| item[name].as_object().and_then(|o| o.keys().next().cloned());
    let mut ended = 0;
    for item in items {
        for (name, expected) in [
            ("leaseKey", "S"),
            ("leaseCounter", "N"),
            ("checkpoint", "S"),
            ("checkpointSubSequenceNumber", "N"),
            ("ownerSwitchesSinceCheckpoint", "N"),
            ("startingHashKey", "S"),
            ("endingHashKey", "S"),
        ] {
            assert_eq!(kind(item, name).as_deref(), Some(expected), "{name} of {item}");
        }
        for (name, expected) in [("leaseOwner", "S"), ("parentShardId", "SS"), ("childShardIds", "SS")] {
            assert!(kind(item, name).is_none_or(|found| found == expected), "{name} of {item}");
        }
        if item["checkpoint"]["S"] == "SHARD_END" {
            ended += 1;
            assert_eq!(kind(item, "childShardIds").as_deref(), Some("SS"), "{item}");
        }
    }
    assert_eq!(ended, 3, "the split parent and the two merged parents ended: {items:?}");
    assert!(a.stop() && d.stop());
}

/// Commits of one source racing on two nodes: each gets its own version (or
/// a conflict), never the same one; both nodes run the newest within the
/// polling interval, and a delete on one reaches the other.
#[test]
fn racing_commits_on_two_nodes_get_one_version_each_and_every_node_runs_the_newest() {
    let Some(emulators) = Emulators::from_env() else { return };
    let rt = runtime();
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &unique("race"), 2, true));
    let cluster = ClusterSetup::new(&emulators);
    let x = cluster.node("node-x", &[]);
    let y = cluster.node("node-y", &[]);
    let file = definition(cluster.root.path(), "raced", &stream_arn);
    let commit = |server: &ServerProcess| {
        let (url, file) = (server.url(), file.clone());
        std::thread::spawn(move || tributary(&["commit", &file.to_string_lossy(), "--server", &url], &[]))
    };
    let (on_x, on_y) = (commit(&x), commit(&y));
    let outputs = [on_x.join().expect("x"), on_y.join().expect("y")];
    let mut versions: Vec<u64> = Vec::new();
    for output in &outputs {
        let said = format!("{}{}", stdout(output), String::from_utf8_lossy(&output.stderr));
        match said.split("committed raced v").nth(1) {
            Some(rest) => versions.push(rest.trim().parse().expect("a version")),
            None => assert!(said.contains("at the same time"), "neither a version nor a conflict: {said}"),
        }
    }
    versions.sort_unstable();
    assert!(!versions.is_empty() && versions.windows(2).all(|w| w[0] < w[1]), "one version each: {versions:?}");
    let newest = *versions.last().expect("one");
    let committed = Instant::now();
    for node in [&x, &y] {
        while node.get("/api/v1/sources/raced")["version"].as_u64() != Some(newest) {
            assert!(committed.elapsed() < Duration::from_secs(10), "a node does not run v{newest}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!("MEASURED both nodes at v{newest} {:?} after the commits returned (poll 300 ms)", committed.elapsed());
    let deleted = ureq::delete(&format!("{}/api/v1/sources/raced", y.url())).call().expect("DELETE on y");
    assert_eq!(deleted.status(), 200);
    let removed = Instant::now();
    while x.get("/api/v1/sources/raced")["state"] != "deleted" {
        assert!(removed.elapsed() < Duration::from_secs(10), "x never saw the delete");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("MEASURED a delete on y reached x in {:?}", removed.elapsed());
    assert!(x.stop() && y.stop());
}

/// The Glue catalog in cluster mode, one writer at a time (moto's Glue does not
/// check `VersionId`, so writers racing on it cannot be shown here): a node dies
/// between the rejected table's commit and the rows table's, the next node takes
/// its shards, brings the rejected table in step for them without rolling back
/// anything, and reads the batch again; a third takes over after a SIGTERM.
/// Every record lands once in each table.
#[test]
fn with_glue_one_node_at_a_time_a_crash_between_the_two_commits_repeats_nothing() {
    const RECORDS: usize = 6_000;
    let Some(emulators) = Emulators::from_env() else { return };
    let rt = runtime();
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &unique("clusterglue"), 4, true));
    let cluster = ClusterSetup::with_catalog(&emulators, ("glue", unique("cluster_glue_")));
    let client = kinesis_client(&emulators.kinesis);
    rt.block_on(put_indexed(&client, &stream_arn, 0..RECORDS / 2, payload));
    let file = definition(cluster.root.path(), "glued", &stream_arn);
    let mut a =
        cluster.node_with_env("node-a", &["--flush-rows", "400"], &[("TRIBUTARY_FAILPOINT", "between-table-commits")]);
    let _ = tributary(&["commit", &file.to_string_lossy(), "--server", &a.url()], &[]);
    // Its first batch's rejected commit lands in Glue; then the process dies.
    let deadline = Instant::now() + SETTLE;
    while !a.log().contains("failpoint between-table-commits") {
        assert!(Instant::now() < deadline, "node a never reached the failpoint: {}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!a.wait_exit(Duration::from_secs(30)), "the failpoint aborts");
    let b = cluster.node("node-b", &["--flush-rows", "400"]);
    until_held_by(&b, "glued", &["node-b"], SETTLE);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.log().contains("Forwarded") {
        assert!(Instant::now() < deadline, "b never brought the rejected table in step: {}", b.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let shards = rt.block_on(split_first_shard(&client, &emulators.kinesis, &stream_arn));
    drop(shards);
    rt.block_on(put_indexed(&client, &stream_arn, RECORDS / 2..RECORDS, payload));
    std::thread::sleep(Duration::from_secs(2));
    assert!(b.stop(), "b stopped cleanly");
    let c = cluster.node("node-c", &["--flush-rows", "400"]);
    let read = until_landed(&cluster.table("glued_rows"), RECORDS, Duration::from_secs(240));
    assert_eq!(ids(&read), valid_ids(0..RECORDS), "every valid record exactly once");
    rejected_once(&cluster.table("glued_rows__rejected"), RECORDS);
    assert!(c.stop());
}

/// A node joining a source the others already read takes its share from
/// their leases at once, before its own ListShards answers: listing the
/// shards can take seconds while the stream is read hard, and a node that
/// waits for it leaves its share to the others meanwhile. Here node b's
/// Kinesis endpoint accepts connections and never answers.
#[test]
fn a_node_joining_a_running_source_takes_its_share_before_its_shards_are_listed() {
    let Some(emulators) = Emulators::from_env() else { return };
    let rt = runtime();
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &unique("join"), 4, true));
    let cluster = ClusterSetup::new(&emulators);
    let a = cluster.node("node-a", &[]);
    let file = definition(cluster.root.path(), "joined", &stream_arn);
    let committed = tributary(&["commit", &file.to_string_lossy(), "--server", &a.url()], &[]);
    assert!(committed.status.success(), "{}", String::from_utf8_lossy(&committed.stderr));
    until_held_by(&a, "joined", &["node-a"], SETTLE);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_endpoint = format!("http://{}", silent.local_addr().expect("address"));
    let b = cluster.node_with_env("node-b", &[], &[("AWS_ENDPOINT_URL_KINESIS", silent_endpoint.as_str())]);
    // Two scans of b's (300 ms each) after it follows the definition, with room for a loaded machine.
    until_held_by(&a, "joined", &["node-a", "node-b"], Duration::from_secs(20));
    drop(b);
    assert!(a.stop());
}

/// A bounded source finishes once every shard is done, wherever it is read:
/// each node says so in its leases, and the node that finds every shard done
/// records the finish in the cluster's definitions, which every node follows.
#[test]
fn a_bounded_source_finishes_on_every_node_once_every_shard_is_done() {
    const RECORDS: usize = 400;
    let Some(emulators) = Emulators::from_env() else { return };
    let rt = runtime();
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &unique("bounded"), 4, true));
    rt.block_on(put_indexed(&kinesis_client(&emulators.kinesis), &stream_arn, 0..RECORDS, payload));
    let cluster = ClusterSetup::new(&emulators);
    let (x, y) = (cluster.node("node-x", &[]), cluster.node("node-y", &[]));
    let file = definition(cluster.root.path(), "once", &stream_arn);
    let text = std::fs::read_to_string(&file).expect("definition");
    std::fs::write(&file, text.replace("    dataset:\n", "    bounded: true\n    idleness: 2s\n    dataset:\n"))
        .expect("write");
    let committed = tributary(&["commit", &file.to_string_lossy(), "--server", &x.url()], &[]);
    assert!(committed.status.success(), "{}", String::from_utf8_lossy(&committed.stderr));
    for node in [&x, &y] {
        let status = node.wait_for_state("once", "finished", Duration::from_secs(90));
        assert!(status["finished_because"].as_str().is_some_and(|why| why.contains("bounded")), "{status:#}");
    }
    let read = pyiceberg(cluster.table("once_rows"), None).expect("pyiceberg (CI sets its Python)");
    assert_eq!(ids(&read), valid_ids(0..RECORDS), "every valid record exactly once");
    assert!(x.stop() && y.stop());
}

/// Cluster mode refuses, at start-up and before any AWS call, what other
/// processes could not share: a local warehouse, or the embedded catalog.
#[test]
fn cluster_mode_refuses_a_local_warehouse_or_the_embedded_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_string_lossy().into_owned();
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--data-dir", &data_dir, "--listen", "127.0.0.1:0"];
        args.extend(extra);
        if !extra.contains(&"--cluster") {
            args.extend(["--cluster", "prod"]);
        }
        let output = tributary(&args, &[("AWS_EC2_METADATA_DISABLED", "true")]);
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (ok, said) = serve(&[]);
    assert!(!ok && said.contains("--cluster prod: needs an s3:// --warehouse"), "{said}");
    let (ok, said) = serve(&["--warehouse", "s3://lake/tables"]);
    assert!(!ok && said.contains("needs a catalog every process shares"), "{said}");
    let (ok, said) = serve(&["--warehouse", "s3://lake/tables", "--catalog", "dynamodb", "--cluster", "Not_Valid"]);
    assert!(!ok && said.contains("a-z, 0-9 and `-`"), "{said}");
}
