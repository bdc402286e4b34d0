//! `tributary serve`: the API and one ingest worker per committed source.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tributary_reader::ReaderConfig;
use tributary_server::{
    CatalogChoice, ClusterConfig, CoordinatorConfig, FlushPolicy, Server, ServerConfig, StatusPublishing,
    WorkerSettings,
};
use tributary_sink::table::Maintenance;
use tributary_source::{AwsSettings, ClientFactory};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where the state database and datasets live.
    #[arg(long, env = "TRIBUTARY_DATA_DIR", default_value = "tributary-data")]
    data_dir: PathBuf,
    /// Seconds between maintenance rounds of each Iceberg table (compaction, snapshot expiry, orphan removal).
    #[arg(long, default_value_t = Maintenance::default().every.as_secs())]
    table_maintenance_seconds: u64,
    /// Snapshots older than this many hours expire (the newest --snapshot-min-count are kept).
    #[arg(long, default_value_t = Maintenance::default().snapshot_max_age.as_secs_f64() / 3600.0)]
    snapshot_max_age_hours: f64,
    /// Snapshots always kept, newest first.
    #[arg(long, default_value_t = Maintenance::default().snapshot_min_count as u64, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_min_count: u64,
    /// An Iceberg table's file no snapshot names is deleted only once it is this many hours old
    /// (another writer on the warehouse may be about to commit it).
    #[arg(long, default_value_t = Maintenance::default().orphan_min_age.as_secs_f64() / 3600.0)]
    orphan_min_age_hours: f64,
    /// A day partition is compacted once it holds this many files under 8 MiB.
    #[arg(long, default_value_t = Maintenance::default().compact_min_files)]
    compact_min_files: usize,
    /// Where `format: iceberg` datasets' tables live: a directory, file:// URL or s3://bucket/prefix
    /// [default: DATA_DIR/warehouse].
    #[arg(long, env = "TRIBUTARY_WAREHOUSE")]
    warehouse: Option<String>,
    /// Which catalog records the tables: `embedded` (Tributary's store), `glue` (an AWS Glue
    /// database, for Athena, Spark, Trino and pyiceberg) or `dynamodb` (Iceberg's DynamoDB catalog,
    /// which pyiceberg and Iceberg Java read); the last two need an s3:// warehouse.
    #[arg(long, env = "TRIBUTARY_CATALOG", value_enum, default_value_t = CatalogKind::Embedded)]
    catalog: CatalogKind,
    /// Start even though the warehouse's tables belong to another catalog, making them this one's:
    /// only when that catalog is gone for good (its store was lost).
    #[arg(long)]
    take_over_warehouse: bool,
    /// The DynamoDB table of `--catalog dynamodb` (created if missing).
    #[arg(long, env = "TRIBUTARY_DYNAMODB_CATALOG_TABLE", default_value = tributary_sink::table::DEFAULT_DYNAMODB_CATALOG_TABLE)]
    dynamodb_catalog_table: String,
    /// The namespace of `--catalog dynamodb` the tables are in (created if missing).
    #[arg(long, env = "TRIBUTARY_DYNAMODB_CATALOG_NAMESPACE", default_value = "tributary")]
    dynamodb_catalog_namespace: String,
    /// The Glue database of `--catalog glue` (created if missing).
    #[arg(long, env = "TRIBUTARY_GLUE_DATABASE", default_value = "tributary")]
    glue_database: String,
    /// The account whose Glue Data Catalog holds the tables [default: the caller's].
    #[arg(long, env = "TRIBUTARY_GLUE_CATALOG_ID")]
    glue_catalog_id: Option<String>,
    /// Cluster mode: share every source's shards with the other processes started with this
    /// name, through KCL-compatible DynamoDB lease tables (`tributary-NAME-SOURCE`). Needs an
    /// s3:// --warehouse and --catalog dynamodb.
    #[arg(long, env = "TRIBUTARY_CLUSTER", value_parser = parse_cluster_name)]
    cluster: Option<String>,
    /// Cluster mode: this process's id in the lease tables [default: HOSTNAME-RANDOM, new per start].
    #[arg(long, env = "TRIBUTARY_NODE_ID", requires = "cluster")]
    node_id: Option<String>,
    /// Cluster mode: the address other nodes and operators reach this process's API at
    /// [default: the --listen address, with the host name for 0.0.0.0].
    #[arg(long, env = "TRIBUTARY_ADVERTISE", requires = "cluster")]
    advertise: Option<String>,
    /// Cluster mode: seconds a lease's counter must stand still before another process takes it.
    #[arg(long, default_value_t = 10.0, requires = "cluster")]
    lease_failover_seconds: f64,
    /// Cluster mode: milliseconds between scans of a lease table for leases to take.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(50..=600_000), requires = "cluster")]
    lease_scan_ms: u64,
    /// Cluster mode: milliseconds between reads of the cluster's shared definitions.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(50..=600_000), requires = "cluster")]
    definitions_poll_ms: u64,
    /// Address to listen on; loopback unless you mean otherwise.
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Require `Authorization: Bearer <token>` on every call but /healthz, the token read from
    /// this environment variable (so it stays out of process listings).
    #[arg(long = "token-env", value_name = "VAR", default_value = "TRIBUTARY_TOKEN")]
    token_env: String,
    /// Read the token from this file instead (first line; wins over the variable).
    #[arg(long, env = "TRIBUTARY_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Serve /metrics without the token (for scrapers).
    #[arg(long)]
    open_metrics: bool,
    /// Listen beyond loopback with no token (only behind something that authenticates).
    #[arg(long)]
    insecure_no_auth: bool,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    body_limit: usize,
    /// Seconds a client has to send a request's headers (idle keep-alive connections too).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_connections: u64,
    /// Validate commits statically only (skip assuming the role and probing the stream).
    #[arg(long)]
    no_live_validation: bool,
    /// Default flush policy: rows per batch.
    #[arg(long, default_value_t = FlushPolicy::default().max_rows)]
    flush_rows: usize,
    /// Default flush policy: decoded bytes per batch.
    #[arg(long, default_value_t = FlushPolicy::default().max_bytes)]
    flush_bytes: usize,
    /// Default flush policy: seconds before buffered rows are written.
    #[arg(long, default_value_t = FlushPolicy::default().max_interval.as_secs_f64())]
    flush_seconds: f64,
    /// Rejected rows a replay commits together (one table commit or store transaction per
    /// chunk; the last chunk takes in up to half as many more rather than leave a small one).
    #[arg(long, default_value_t = WorkerSettings::default().replay_chunk_rows as u64, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    replay_chunk_rows: u64,
    /// How soon (ms) a caught-up shard is polled again.
    #[arg(long, default_value_t = 500)]
    idle_poll_ms: u64,
    /// How often (ms) the console's charts sample each source's lag and rates (6 h are kept).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    history_interval_ms: u64,
    /// Longest wait (ms) between polls of a shard that stays idle.
    #[arg(long, default_value_t = 2000)]
    idle_poll_max_ms: u64,
    /// GetRecords calls of one source in flight at once (each answer can hold 10 MiB).
    #[arg(long, default_value_t = ReaderConfig::default().max_concurrent_calls)]
    max_concurrent_reads: usize,
    /// Definitions may name (`{env: VAR}`) only environment variables starting with this.
    #[arg(long, env = "TRIBUTARY_SECRET_ENV_PREFIX", default_value = tributary_source::DEFAULT_SECRET_ENV_PREFIX, value_parser = parse_prefix)]
    secret_env_prefix: String,
    /// Seconds before a worker that failed for a reason retrying cannot fix (access denied,
    /// stream deleted, checkpoint conflict) is tried again; a new commit tries at once.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    failed_retry_seconds: u64,
    /// Publish each source's status to OpenMetadata (`PUT /v1/pipelines/tributary.SOURCE/status`)
    /// every --openmetadata-status-seconds, reaching the server named in this workflow YAML's
    /// `workflowConfig.openMetadataServerConfig` (the file `tributary metadata ingest -c` takes).
    #[arg(long, value_name = "FILE")]
    openmetadata_status: Option<PathBuf>,
    /// Seconds between two publications of --openmetadata-status.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400), requires = "openmetadata_status")]
    openmetadata_status_seconds: u64,
    /// Threads running the API and the workers (file and database writes get their own).
    #[arg(long, default_value_t = 1)]
    worker_threads: usize,
}

/// The values of `--catalog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CatalogKind {
    Embedded,
    Glue,
    Dynamodb,
}

/// The server's configuration from the command line; `Err` says which value is wrong.
pub(crate) fn server_config(args: &ServeArgs) -> Result<ServerConfig, String> {
    let Ok(flush_interval) = Duration::try_from_secs_f64(args.flush_seconds) else {
        return Err(format!("--flush-seconds must be a non-negative number, got {}", args.flush_seconds));
    };
    if args.flush_bytes as u64 > tributary_source::MAX_FLUSH_BYTES {
        return Err(format!(
            "--flush-bytes may be at most {} (512 MiB): a batch must fit the decoder's 1 GiB limit",
            tributary_source::MAX_FLUSH_BYTES
        ));
    }
    let mut config = ServerConfig::new(args.data_dir.clone());
    config.listen = args.listen;
    config.warehouse = args.warehouse.clone();
    config.take_over_warehouse = args.take_over_warehouse;
    config.catalog = match args.catalog {
        CatalogKind::Embedded => CatalogChoice::Embedded,
        CatalogKind::Glue => {
            CatalogChoice::Glue { database: args.glue_database.clone(), catalog_id: args.glue_catalog_id.clone() }
        }
        CatalogKind::Dynamodb => CatalogChoice::DynamoDb {
            table: args.dynamodb_catalog_table.clone(),
            namespace: args.dynamodb_catalog_namespace.clone(),
        },
    };
    if let Some(name) = &args.cluster {
        let Some(failover) =
            Duration::try_from_secs_f64(args.lease_failover_seconds).ok().filter(|f| *f >= Duration::from_millis(300))
        else {
            return Err(format!("--lease-failover-seconds must be at least 0.3, got {}", args.lease_failover_seconds));
        };
        let node_id = args.node_id.clone().unwrap_or_else(default_node_id);
        let advertise = args.advertise.clone().unwrap_or_else(|| default_advertise(args.listen));
        let mut cluster = ClusterConfig::new(name.clone(), node_id, advertise);
        cluster.leases = CoordinatorConfig {
            failover,
            scan_every: Duration::from_millis(args.lease_scan_ms),
            ..CoordinatorConfig::default()
        };
        cluster.poll_every = Duration::from_millis(args.definitions_poll_ms);
        config.cluster = Some(cluster);
    }
    let Ok(snapshot_max_age) = Duration::try_from_secs_f64(args.snapshot_max_age_hours * 3600.0) else {
        return Err(format!(
            "--snapshot-max-age-hours must be a non-negative number, got {}",
            args.snapshot_max_age_hours
        ));
    };
    let Ok(orphan_min_age) = Duration::try_from_secs_f64(args.orphan_min_age_hours * 3600.0) else {
        return Err(format!("--orphan-min-age-hours must be a non-negative number, got {}", args.orphan_min_age_hours));
    };
    config.worker.maintenance = Maintenance {
        orphan_min_age,
        every: Duration::from_secs(args.table_maintenance_seconds),
        snapshot_max_age,
        snapshot_min_count: usize::try_from(args.snapshot_min_count).unwrap_or(usize::MAX),
        compact_min_files: args.compact_min_files.max(2),
        ..Maintenance::default()
    };
    config.token = match &args.token_file {
        Some(path) => match read_token_file(path) {
            Ok(token) => Some(token),
            Err(message) => return Err(message),
        },
        None => std::env::var(&args.token_env).ok().filter(|token| !token.is_empty()),
    };
    config.open_metrics = args.open_metrics;
    config.insecure_no_auth = args.insecure_no_auth;
    config.body_limit = args.body_limit;
    config.header_read_timeout = Duration::from_secs(args.header_timeout);
    config.max_connections = usize::try_from(args.max_connections).unwrap_or(usize::MAX);
    config.live_validation = !args.no_live_validation;
    config.worker.flush = FlushPolicy {
        max_rows: args.flush_rows.max(1),
        max_bytes: args.flush_bytes.max(1),
        max_interval: flush_interval,
    };
    config.worker.reader.idle_poll_interval = Duration::from_millis(args.idle_poll_ms);
    config.worker.history_interval = Duration::from_millis(args.history_interval_ms);
    config.worker.replay_chunk_rows = usize::try_from(args.replay_chunk_rows).unwrap_or(usize::MAX);
    config.worker.reader.idle_poll_max = Duration::from_millis(args.idle_poll_max_ms.max(args.idle_poll_ms));
    config.worker.reader.max_concurrent_calls = args.max_concurrent_reads.max(1);
    config.worker.permanent_failure_retry = Duration::from_secs(args.failed_retry_seconds);
    config.worker.secret_policy = tributary_source::SecretPolicy { env_prefix: args.secret_env_prefix.clone() };
    if let Some(path) = &args.openmetadata_status {
        let workflow = tributary_metadata::WorkflowConfig::load(path)
            .map_err(|error| format!("--openmetadata-status: invalid workflow: {error}"))?;
        config.openmetadata_status = Some(StatusPublishing {
            host_port: workflow.host_port.clone(),
            jwt_token: workflow.jwt_token.clone(),
            extra_headers: workflow.extra_headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            every: Duration::from_secs(args.openmetadata_status_seconds),
        });
    }

    Ok(config)
}

pub(crate) fn run(args: ServeArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIBUTARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let config = match server_config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    keep_freed_memory();
    // One worker thread: a current-thread runtime (fewest wake-ups); more: a multi-thread one.
    let mut builder = if args.worker_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(args.worker_threads);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        let aws = ClientFactory::load(AwsSettings::default(), config.live_timeout).await;
        let authenticated = config.token.is_some();
        let server = Server::start(config, aws).await?;
        if let Some(address) = server.local_addr() {
            eprintln!(
                "tributary: serving http://{address} (data in {}, {})",
                args.data_dir.display(),
                if authenticated { "token required" } else { "no token" }
            );
        }
        Ok::<usize, tributary_server::ServerError>(server.serve(shutdown_signal()).await)
    });
    match served {
        Ok(0) => {
            eprintln!("tributary: stopped; every worker committed what it held");
            ExitCode::SUCCESS
        }
        Ok(uncommitted) => {
            eprintln!(
                "tributary: stopped; {uncommitted} worker(s) could not commit what they held (see the log above); it is read again from their checkpoints on the next start"
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Keeps freed blocks in the allocator instead of handing them back to the OS.
///
/// Every `GetRecords` answer (up to 10 MiB) and every batch's column buffers are
/// large allocations; glibc maps each one fresh and unmaps it when freed, so the
/// next one page-faults all its memory in again (7-8% of the server's CPU in a
/// profile of an ingest). Above these thresholds behaviour is unchanged.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn keep_freed_memory() {
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;
    const TRIM_THRESHOLD: libc::c_int = 64 << 20;
    // SAFETY: mallopt only adjusts allocator tunables; called before the runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// A secret prefix must narrow the environment: an empty one would let definitions read everything.
/// A cluster name goes into DynamoDB table names (`tributary-NAME-…`): 3 to 64 of a-z, 0-9 and `-`.
fn parse_cluster_name(text: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !(3..=64).contains(&text.len()) || !text.chars().all(allowed) {
        return Err(format!("`{text}`: use 3 to 64 of a-z, 0-9 and `-` (it names DynamoDB tables)"));
    }
    Ok(text.to_owned())
}

/// A process id unique per start: the host's name and a random suffix, so a
/// restarted process never mistakes a lease of its last life for its own.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "tributary".to_owned());
    format!("{host}-{:08x}", fastrand::u32(..))
}

/// The API address to publish: the listen address, with the host's name for an unspecified IP.
fn default_advertise(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host = host.trim();
        if !host.is_empty() {
            return format!("{host}:{}", listen.port());
        }
    }
    listen.to_string()
}

pub(crate) fn parse_prefix(text: &str) -> Result<String, String> {
    if text.len() < 3 || !text.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
        return Err(format!("`{text}`: use at least 3 of A-Z, 0-9 and `_`, e.g. TRIBUTARY_SECRET_"));
    }
    Ok(text.to_owned())
}

/// The first line of a token file; an empty or unreadable one is an error, never "no token".
pub(crate) fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("token file {}: {error}", path.display()))?;
    match text.lines().next().map(str::trim) {
        Some(token) if !token.is_empty() => Ok(token.to_owned()),
        _ => Err(format!("token file {} is empty", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tributary_server::CatalogChoice;

    use crate::{Cli, Command};

    /// The command of the Kubernetes example's container, as the pod runs it.
    fn example_command() -> Vec<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/kubernetes/tributary-cluster.yaml");
        let text = std::fs::read_to_string(path).expect("the example");
        for document in serde_norway::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(document).expect("YAML");
            if value["kind"] == "Deployment" {
                let command = &value["spec"]["template"]["spec"]["containers"][0]["command"];
                let command: Vec<String> = serde_json::from_value(command.clone()).expect("a list of strings");
                return command;
            }
        }
        panic!("no Deployment in {path}");
    }

    #[test]
    fn the_kubernetes_examples_command_line_is_a_cluster_node_the_cli_accepts() {
        let command = example_command();
        let cli = Cli::try_parse_from(&command).unwrap_or_else(|error| panic!("{command:?}: {error}"));
        let Command::Serve(mut args) = cli.command else { panic!("not `tributary serve`: {command:?}") };
        // The pod's token file is a mounted secret; here, a file of our own.
        let token = tempfile::NamedTempFile::new().expect("token file");
        std::fs::write(token.path(), "not-a-real-token\n").expect("write");
        assert_eq!(args.token_file.as_deref(), Some(std::path::Path::new("/etc/tributary/token")));
        args.token_file = Some(token.path().to_owned());
        let config = super::server_config(&args).expect("a valid configuration");
        let cluster = config.cluster.as_ref().expect("cluster mode");
        assert_eq!(cluster.name, "prod");
        assert_eq!(cluster.leases.failover, std::time::Duration::from_secs(10));
        assert!(config.warehouse.as_deref().is_some_and(|warehouse| warehouse.starts_with("s3://")));
        assert!(matches!(&config.catalog, CatalogChoice::DynamoDb { table, .. } if table == "iceberg"));
        assert!(config.token.is_some() && config.open_metrics && !config.listen.ip().is_loopback());
    }

    #[test]
    fn cluster_flags_are_checked() {
        let parse = |extra: &[&str]| {
            let mut command = vec!["tributary", "serve"];
            command.extend(extra);
            Cli::try_parse_from(command)
        };
        assert!(parse(&["--cluster", "Prod_1"]).is_err(), "names DynamoDB tables: a-z, 0-9, -");
        assert!(parse(&["--node-id", "n1"]).is_err(), "only with --cluster");
        let Ok(Cli { command: Command::Serve(args) }) =
            parse(&["--cluster", "prod", "--lease-failover-seconds", "0.1"])
        else {
            panic!("parses")
        };
        let refused = super::server_config(&args).expect_err("too short a failover");
        assert!(refused.contains("--lease-failover-seconds"), "{refused}");
    }
}
