//! Tributary's server: the HTTP API of DESIGN.md §7 and the worker
//! supervisor that runs one continuous ingest worker per committed source.
//!
//! [`Server::start`] opens the state database under the data directory,
//! starts a worker for every live source, and [`Server::serve`] answers the
//! API until the shutdown future resolves; then every worker flushes and
//! commits its in-flight batch before the call returns.

mod api;
mod cluster;
mod cluster_api;
mod console;
mod console_api;
mod errors;
mod failure;
mod finish;
mod history;
mod leases;
mod openmetadata_status;
mod pending;
mod prometheus;
mod registries;
mod replay;
mod replay_page;
mod replay_run;
mod status;
mod supervisor;
mod table_output;
mod tables;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tributary_sink::table::{DynamoCatalog, GlueCatalog, TableCatalog, WarehouseClaim};
use tributary_source::ClientFactory;
use tributary_store::Store;

use crate::cluster::Cluster;

pub use api::router;
pub use cluster::ClusterConfig;
pub use openmetadata_status::StatusPublishing;
pub use registries::registries_for;
pub use supervisor::Supervisor;
pub use tributary_cluster::CoordinatorConfig;
pub use worker::{FlushPolicy, WorkerSettings};

/// How the server runs.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where the state database and datasets live.
    pub data_dir: PathBuf,
    /// Where the API listens (loopback unless told otherwise).
    pub listen: SocketAddr,
    /// Bearer token every call but `/healthz` needs, when set.
    pub token: Option<String>,
    /// Serve `/metrics` without the token (for scrapers).
    pub open_metrics: bool,
    /// Listen beyond loopback without a token (refused otherwise).
    pub insecure_no_auth: bool,
    /// Largest request body accepted.
    pub body_limit: usize,
    /// A client must send a request's headers within this (idle keep-alive connections too).
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Run the live AWS checks on commit (as `tributary validate --live` does).
    pub live_validation: bool,
    /// Bound on the live checks of one commit.
    pub live_timeout: Duration,
    /// Worker defaults.
    pub worker: WorkerSettings,
    /// Where `format: iceberg` datasets' tables live: a directory
    /// (`DATA_DIR/warehouse` when unset).
    pub warehouse: Option<String>,
    /// Which catalog records the tables' current metadata.
    pub catalog: CatalogChoice,
    /// Make the warehouse this catalog's even though another catalog claimed
    /// it (that catalog is gone, e.g. a lost store).
    pub take_over_warehouse: bool,
    /// Cluster mode: share the sources' shards with the cluster's other processes.
    pub cluster: Option<ClusterConfig>,
    /// Publish each source's pipeline status to OpenMetadata on an interval.
    pub openmetadata_status: Option<StatusPublishing>,
}

/// Which catalog records the tables' current metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CatalogChoice {
    /// Tributary's store (and each table's `version-hint.text`).
    #[default]
    Embedded,
    /// An AWS Glue database, shared with Athena, Spark, Trino and pyiceberg.
    Glue {
        /// The database (created if missing).
        database: String,
        /// The account whose Data Catalog it is; the caller's when `None`.
        catalog_id: Option<String>,
    },
    /// Iceberg's DynamoDB catalog (the layout pyiceberg's and Iceberg Java's
    /// `DynamoDbCatalog` read), whose conditions DynamoDB enforces.
    DynamoDb {
        /// The DynamoDB table (created if missing; `iceberg` by default).
        table: String,
        /// The namespace the tables are in (created if missing).
        namespace: String,
    },
}

impl std::fmt::Debug for ServerConfig {
    // The token is a credential: only whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("open_metrics", &self.open_metrics)
            .field("insecure_no_auth", &self.insecure_no_auth)
            .field("body_limit", &self.body_limit)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("live_validation", &self.live_validation)
            .field("live_timeout", &self.live_timeout)
            .field("worker", &self.worker)
            .field("warehouse", &self.warehouse)
            .field("catalog", &self.catalog)
            .field("take_over_warehouse", &self.take_over_warehouse)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults for `data_dir`: 127.0.0.1:7878, no token, 4 MiB bodies, live checks on.
    pub fn new(data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            token: None,
            open_metrics: false,
            insecure_no_auth: false,
            body_limit: 4 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 256,
            live_validation: true,
            live_timeout: Duration::from_secs(10),
            worker: WorkerSettings::default(),
            warehouse: None,
            catalog: CatalogChoice::Embedded,
            take_over_warehouse: false,
            cluster: None,
            openmetadata_status: None,
        }
    }
}

/// What the API handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The state database.
    pub store: Arc<Store>,
    /// The workers.
    pub supervisor: Arc<Supervisor>,
    /// AWS access for live checks (none: static validation only).
    pub live: Option<(ClientFactory, Duration)>,
    /// Bearer token every call but `/healthz` needs, when set.
    pub token: Option<Arc<str>>,
    /// Whether `/metrics` is served without the token.
    pub open_metrics: bool,
    /// Refuse requests whose `Host` is not a loopback name or address (the
    /// server listens on loopback: anything else is a DNS-rebinding page).
    pub loopback_hosts_only: bool,
    /// Largest accepted body.
    pub body_limit: usize,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory or the listener.
    #[error("{0}")]
    Io(String),
    /// The state database.
    #[error(transparent)]
    Store(#[from] tributary_store::StoreError),
    /// Another server holds the data directory.
    #[error("{dir} is in use by another tributary serve (pid {holder}); stop it or choose another --data-dir")]
    DataDirInUse {
        /// The data directory.
        dir: String,
        /// The holder's process id, as it wrote it (or "unknown").
        holder: String,
    },
    /// The warehouse's tables belong to another catalog.
    #[error("{0}")]
    WarehouseOwned(String),
    /// Listening beyond loopback with no token.
    #[error(
        "refusing to listen on {0} without a token: set TRIBUTARY_TOKEN or --token-file (or pass --insecure-no-auth if something in front of the server authenticates)"
    )]
    Unauthenticated(SocketAddr),
}

/// A started server: workers running, API not yet listening.
pub struct Server {
    state: AppState,
    openmetadata_status: Option<StatusPublishing>,
    /// The data directory's lock, held as long as the server runs.
    _lock: std::fs::File,
    listener: tokio::net::TcpListener,
    limits: ConnectionLimits,
}

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    header_read_timeout: Duration,
    max_connections: usize,
}

/// The tables' catalog over the configured warehouse.
async fn open_catalog(
    config: &ServerConfig,
    store: &Arc<Store>,
    aws: &ClientFactory,
) -> Result<TableCatalog, ServerError> {
    let catalog = open_warehouse(config, store, aws)?;
    match &config.catalog {
        CatalogChoice::Embedded => Ok(catalog.with_owner(format!("embedded:{}", store.identity()?))),
        CatalogChoice::Glue { database, catalog_id } => {
            require_object_store(&catalog, "glue")?;
            let glue = GlueCatalog::new(aws.glue(), database.clone(), catalog_id.clone());
            glue.ensure_database(catalog.warehouse())
                .await
                .map_err(|error| ServerError::Io(format!("--catalog glue, database {database}: {error}")))?;
            let owner = format!("glue:{}:{database}", catalog_id.as_deref().unwrap_or("default"));
            Ok(catalog.with_glue(glue).with_owner(owner))
        }
        CatalogChoice::DynamoDb { table, namespace } => {
            require_object_store(&catalog, "dynamodb")?;
            let dynamo = DynamoCatalog::new(aws.dynamodb(), table.clone(), namespace.clone());
            dynamo
                .ensure()
                .await
                .map_err(|error| ServerError::Io(format!("--catalog dynamodb, table {table}: {error}")))?;
            let owner = format!("dynamodb:{}", dynamo.describe());
            Ok(catalog.with_dynamo(dynamo).with_owner(owner))
        }
    }
}

/// Cluster mode needs a catalog whose compare-and-swap the service enforces
/// for every writer, and a warehouse every process reaches.
fn require_cluster_catalog(config: &ServerConfig) -> Result<(), ServerError> {
    let Some(cluster) = &config.cluster else { return Ok(()) };
    let refuse = |why: &str| Err(ServerError::Io(format!("--cluster {}: {why}", cluster.name)));
    if !config.warehouse.as_deref().is_some_and(|warehouse| warehouse.starts_with("s3://")) {
        return refuse("needs an s3:// --warehouse that every process of the cluster reaches");
    }
    match config.catalog {
        CatalogChoice::DynamoDb { .. } | CatalogChoice::Glue { .. } => Ok(()),
        CatalogChoice::Embedded => refuse(
            "needs a catalog every process shares: --catalog dynamodb or --catalog glue (the embedded catalog is one process's store)",
        ),
    }
}

/// A catalog other processes and engines share needs a warehouse they can reach.
fn require_object_store(catalog: &TableCatalog, kind: &str) -> Result<(), ServerError> {
    if catalog.warehouse().starts_with("s3://") {
        return Ok(());
    }
    Err(ServerError::Io(format!(
        "--catalog {kind} needs an s3:// --warehouse: the other readers and writers of the catalog cannot reach {}",
        catalog.warehouse()
    )))
}

/// Where the tables' files live.
fn open_warehouse(config: &ServerConfig, store: &Arc<Store>, aws: &ClientFactory) -> Result<TableCatalog, ServerError> {
    let warehouse = match config.warehouse.as_deref() {
        None => config.data_dir.join("warehouse"),
        Some(location) if location.starts_with("s3://") => {
            // Data files wait here (written, synced) until they are uploaded.
            let spool = config.data_dir.join("spool");
            create_private_dir(&spool).map_err(|error| ServerError::Io(format!("{}: {error}", spool.display())))?;
            // Left by a stop before its upload: the table never named it, and the batch is read again.
            for entry in
                std::fs::read_dir(&spool).map_err(|error| ServerError::Io(format!("{}: {error}", spool.display())))?
            {
                let path = entry.map_err(|error| ServerError::Io(format!("{}: {error}", spool.display())))?.path();
                if path.is_file() {
                    std::fs::remove_file(&path)
                        .map_err(|error| ServerError::Io(format!("{}: {error}", path.display())))?;
                }
            }
            return TableCatalog::s3(Arc::clone(store), aws.s3(), location, spool)
                .map_err(|error| ServerError::Io(format!("--warehouse {location}: {error}")));
        }
        Some(location) if location.contains("://") && !location.starts_with("file://") => {
            return Err(ServerError::Io(format!(
                "--warehouse {location}: a local directory, file:// or s3://bucket/prefix"
            )));
        }
        Some(location) => PathBuf::from(location.strip_prefix("file://").unwrap_or(location)),
    };
    TableCatalog::local(Arc::clone(store), &warehouse)
        .map_err(|error| ServerError::Io(format!("warehouse {}: {error}", warehouse.display())))
}

impl Server {
    /// Opens the state, starts the workers of every live source, binds the listener.
    pub async fn start(config: ServerConfig, aws: ClientFactory) -> Result<Server, ServerError> {
        if config.token.is_none() && !config.listen.ip().is_loopback() && !config.insecure_no_auth {
            return Err(ServerError::Unauthenticated(config.listen));
        }
        create_private_dir(&config.data_dir)
            .map_err(|error| ServerError::Io(format!("{}: {error}", config.data_dir.display())))?;
        // Before anything reads or cleans the directory: a second server would
        // delete the first one's files in flight.
        let lock = lock_data_dir(&config.data_dir)?;
        // Before any worker starts: a server that cannot listen must not ingest.
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|error| ServerError::Io(format!("listen on {}: {error}", config.listen)))?;
        let store = Arc::new(Store::open(&config.data_dir.join("tributary.db"))?);
        require_cluster_catalog(&config)?;
        let catalog = open_catalog(&config, &store, &aws).await?;
        match catalog.claim_warehouse(config.take_over_warehouse).await {
            Ok(WarehouseClaim::TakenOver { from }) => {
                tracing::warn!(warehouse = catalog.warehouse(), %from, "took the warehouse over from another catalog");
            }
            Ok(_) => {}
            Err(error) => return Err(ServerError::WarehouseOwned(error.message().to_owned())),
        }
        let cluster = match &config.cluster {
            Some(cluster) => {
                let mut cluster = cluster.clone();
                // Listening on port 0: publish the port the listener got.
                if let (Some(host), Ok(bound)) = (cluster.advertise.strip_suffix(":0"), listener.local_addr()) {
                    cluster.advertise = format!("{host}:{}", bound.port());
                }
                Some(Arc::new(Cluster::join(cluster, &aws).await?))
            }
            None => None,
        };
        let supervisor = Arc::new(Supervisor::of_node(
            Arc::clone(&store),
            config.data_dir.clone(),
            aws.clone(),
            config.worker.clone(),
            catalog,
            cluster.clone(),
        ));
        if let Some(cluster) = &cluster {
            // The cluster's definitions are the truth; the store is their cache.
            cluster
                .adopt_definitions(&store)
                .await
                .map_err(|error| ServerError::Io(format!("--cluster {}: {error}", cluster.config.name)))?;
        }
        supervisor.start_committed().await?;
        let state = AppState {
            store,
            supervisor,
            live: config.live_validation.then_some((aws, config.live_timeout)),
            token: config.token.map(Arc::from),
            open_metrics: config.open_metrics,
            loopback_hosts_only: config.listen.ip().is_loopback(),
            body_limit: config.body_limit,
        };
        let limits = ConnectionLimits {
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections.max(1),
        };
        Ok(Server { state, openmetadata_status: config.openmetadata_status, _lock: lock, listener, limits })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves the API until `shutdown` resolves, then stops every worker
    /// (each flushes and commits what it holds, within a bound); how many
    /// workers could not commit what they held.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> usize {
        let supervisor = Arc::clone(&self.state.supervisor);
        let node = supervisor.cluster().map(|cluster| {
            tokio::spawn(cluster::run_node(Arc::clone(cluster), Arc::clone(&self.state.store), Arc::clone(&supervisor)))
        });
        let history = tokio::spawn(history::sample_forever(
            Arc::clone(supervisor.history()),
            Arc::clone(&self.state.store),
            Arc::clone(&supervisor),
        ));
        let statuses = match (self.openmetadata_status, self.listener.local_addr()) {
            (Some(publishing), Ok(address)) => Some(tokio::spawn(openmetadata_status::publish_forever(
                self.state.clone(),
                publishing,
                format!("http://{address}"),
            ))),
            _ => None,
        };
        let app = router(self.state);
        serve_connections(self.listener, app, self.limits, shutdown).await;
        if let Some(node) = node {
            node.abort();
        }
        history.abort();
        if let Some(statuses) = statuses {
            statuses.abort();
        }
        // Each worker commits what it holds, then its leases are released.
        let uncommitted = supervisor.stop_all().await;
        if let Some(cluster) = supervisor.cluster()
            && let Err(error) = cluster.leave().await
        {
            tracing::warn!(%error, "removing this node from the nodes table failed");
        }
        uncommitted
    }
}

/// Takes the data directory's exclusive lock (released by the kernel when
/// the process ends, however it ends) and writes our PID into the lock file.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, ServerError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("tributary.lock");
    let io = |error: std::io::Error| ServerError::Io(format!("{}: {error}", path.display()));
    let mut file =
        std::fs::File::options().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(ServerError::DataDirInUse {
                dir: dir.display().to_string(),
                holder: if holder.is_empty() { "unknown".to_owned() } else { holder.to_owned() },
            });
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

/// The data directory, owner-only (`0700`): it holds the state database and the datasets.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Accepts connections while fewer than `max_connections` are open (the rest
/// wait in the kernel's backlog) and closes any that does not send its request
/// headers within the timeout, so slow or idle clients cannot hold the server.
/// On `shutdown`, stops accepting and lets requests in flight finish (bounded).
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: passing; do not spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {}
    }
}
