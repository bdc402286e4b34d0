//! One run of the workflow: extract, enrich with Tributary's sources, publish.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use tributary_reader::catalog::{Catalog, CatalogConfig, CatalogError, CatalogErrorKind, SampleSettings};
use tributary_sink::openmetadata::{
    DatasetTarget, EntityStream, FileTransport, GlueTable, LineageRecord, PublishError, PublishReport, Publisher,
    RestTransport, RetryPolicy, ServiceRecord, StaleTopics, TopicRecord, pipeline_run,
};
use tributary_source::glue_schemas::latest_schema_version;
use tributary_source::{ClientFactory, StreamArn};

use crate::config::{SinkKind, WorkflowConfig};
use crate::connection::describe;
use crate::extract::{Progress, extract};
use crate::schema::{column_lineage, container_columns, message_schema};
use crate::tributary::{CommittedSource, committed_sources};

/// Knobs of a run that the workflow YAML does not carry.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Streams described at once.
    pub concurrency: usize,
    /// Sample records per stream (when `generateSampleData`).
    pub sample_size: usize,
    /// `ListStreams` / `ListShards` page size (tests use small pages).
    pub page_size: Option<i32>,
    /// A Tributary server whose sources add schemas and lineage.
    pub tributary_server: Option<String>,
    /// Its bearer token.
    pub tributary_token: Option<String>,
    /// Bound on each AWS call.
    pub call_timeout: Duration,
    /// How the metadata server is retried.
    pub retry: RetryPolicy,
    /// The database service a Glue table of a source's dataset is cataloged under
    /// (the name of the user's OpenMetadata Glue connector service).
    pub database_service: String,
    /// Write the entities as JSON lines on stdout instead of publishing them
    /// (for OpenMetadata's own workflow, which creates them; see `EntityStream`).
    pub emit_entities: bool,
}

/// The database service a Glue table is cataloged under when the run names none.
pub const DEFAULT_DATABASE_SERVICE: &str = "tributaryDatabaseService";

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: 8,
            sample_size: 10,
            page_size: None,
            tributary_server: None,
            tributary_token: None,
            call_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            database_service: DEFAULT_DATABASE_SERVICE.to_owned(),
            emit_entities: false,
        }
    }
}

/// Why a run could not go on at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Listing the streams failed (access denied, unreachable endpoint, throttled throughout).
    #[error("listing streams failed: {0}")]
    Listing(CatalogError),
    /// The Tributary server could not be asked.
    #[error("{0}")]
    Tributary(String),
    /// The metadata server or the sink file could not be had.
    #[error("publishing failed: {0}")]
    Publish(#[from] PublishError),
}

impl RunError {
    /// Whether IAM refused (a clear message, no retry helps).
    pub fn is_access_denied(&self) -> bool {
        matches!(self, RunError::Listing(error) if error.kind == CatalogErrorKind::AccessDenied)
    }
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Streams listed.
    pub listed: usize,
    /// Streams the filter left out.
    pub filtered: usize,
    /// Streams described in full.
    pub described: usize,
    /// Topics published.
    pub published: usize,
    /// Sample messages published.
    pub sample_messages: usize,
    /// Lineage edges added.
    pub lineage_edges: usize,
    /// Stale topics soft-deleted.
    pub deleted: Vec<String>,
    /// What failed, and why.
    pub failed: Vec<(String, String)>,
    /// What a user should know.
    pub warnings: Vec<String>,
}

impl Summary {
    /// The one-line summary printed at the end of a run.
    pub fn line(&self) -> String {
        format!(
            "listed={} filtered={} published={} failed={} deleted={} lineage_edges={} warnings={}",
            self.listed,
            self.filtered,
            self.published,
            self.failed.len(),
            self.deleted.len(),
            self.lineage_edges,
            self.warnings.len()
        )
    }
}

/// The latest schema text of a Glue registry's schema, read with the
/// workflow's own credentials in the registry's region (the stream's when it
/// names none); `None` (with a warning) when it cannot be read.
async fn registered_schema(
    factory: &ClientFactory,
    glue: &tributary_proto::v1::GlueSchemaRegistry,
    stream_arn: &str,
    warnings: &mut Vec<String>,
) -> Option<String> {
    if glue.schema_name.is_empty() {
        return None;
    }
    let region = match glue.region.as_str() {
        "" => stream_region(stream_arn),
        region => region.to_owned(),
    };
    let client = factory.glue_registry(&region, None);
    match latest_schema_version(&client, &glue.registry_name, &glue.schema_name).await {
        Ok(Some(version)) => Some(version.definition),
        Ok(None) => {
            warnings.push(format!(
                "Glue schema `{}` of registry `{}` has no version",
                glue.schema_name, glue.registry_name
            ));
            None
        }
        Err(error) => {
            warnings.push(format!(
                "Glue schema `{}` of registry `{}` could not be read: {error}",
                glue.schema_name, glue.registry_name
            ));
            None
        }
    }
}

/// The region of a stream's ARN (empty if it is not one; the listing's are).
fn stream_region(arn: &str) -> String {
    arn.parse::<StreamArn>().map(|arn| arn.region().to_owned()).unwrap_or_default()
}

/// A source's lineage (to `target`, or to a container where it has none) and its status.
fn lineage_record(
    source: &CommittedSource,
    dataset: &tributary_proto::v1::Dataset,
    stream: &str,
    target: Option<GlueTable>,
    now: SystemTime,
) -> LineageRecord {
    LineageRecord {
        source: source.name.clone(),
        stream: stream.to_owned(),
        dataset: source.dataset_name.clone(),
        target: match target {
            Some(table) => DatasetTarget::GlueTable(table),
            None => DatasetTarget::Container { location: source.location.clone() },
        },
        columns: container_columns(dataset),
        column_lineage: column_lineage(dataset, &source.definition.preproc),
        run: pipeline_run(&source.status, Some(&source.status_url), now),
    }
}

/// The account of the workflow's credentials: the Glue catalog id of a server
/// that names none (its tables are in its own account, usually this one).
async fn caller_account(factory: &ClientFactory, region: &str, cache: &mut Option<String>) -> Result<String, String> {
    if let Some(account) = cache {
        return Ok(account.clone());
    }
    let identity = factory.sts(region, None).get_caller_identity().send().await.map_err(|error| describe(&error))?;
    let account = identity.account().ok_or("GetCallerIdentity named no account")?.to_owned();
    *cache = Some(account.clone());
    Ok(account)
}

/// Runs the workflow once.
pub async fn run(
    config: &WorkflowConfig,
    options: &RunOptions,
    on_progress: &(dyn Fn(Progress) + Sync),
) -> Result<Summary, RunError> {
    let region = config.aws.aws_region.clone().unwrap_or_default();
    let factory = ClientFactory::load(config.aws.clone(), options.call_timeout).await;
    let client = factory.kinesis(&region, None);
    let client = aws_sdk_kinesis::Client::from_conf(Catalog::client_config(client.config()));
    let mut catalog_config = CatalogConfig { call_timeout: options.call_timeout, ..CatalogConfig::default() };
    if let Some(page_size) = options.page_size {
        catalog_config.streams_page_size = page_size;
        catalog_config.shards_page_size = page_size;
    }
    let catalog = Catalog::new(client, catalog_config);
    let sample = config
        .generate_sample_data
        .then(|| SampleSettings { records: options.sample_size, ..SampleSettings::default() });
    let extraction =
        extract(&catalog, &config.filter, options.concurrency, sample, on_progress).await.map_err(RunError::Listing)?;

    let sources = match &options.tributary_server {
        Some(server) => {
            let (server, token) = (server.clone(), options.tributary_token.clone());
            tokio::task::spawn_blocking(move || committed_sources(&server, token.as_deref()))
                .await
                .map_err(|error| RunError::Tributary(error.to_string()))?
                .map_err(RunError::Tributary)?
        }
        None => Vec::new(),
    };

    let mut summary = Summary {
        listed: extraction.listed.len(),
        filtered: extraction.listed.len() - extraction.admitted.len(),
        described: extraction.streams.len(),
        failed: extraction.failed.iter().map(|(name, error)| (name.clone(), error.to_string())).collect(),
        ..Summary::default()
    };
    let mut topics = Vec::with_capacity(extraction.streams.len());
    let mut lineage = Vec::new();
    let mut account_cache: Option<String> = None;
    for findings in &extraction.streams {
        let stream = &findings.summary;
        let readers: Vec<&CommittedSource> = sources.iter().filter(|source| source.stream_arn == stream.arn).collect();
        if readers.len() > 1 {
            summary.warnings.push(format!(
                "stream `{}` is read by {} sources; its messageSchema is source `{}`'s",
                stream.name,
                readers.len(),
                readers[0].name
            ));
        }
        let message_schema = match readers.first() {
            Some(source) => match &source.definition.dataset {
                Some(dataset) => {
                    let (kind, inline) = source.format();
                    let registered = match source.glue_registry() {
                        Some(glue) => registered_schema(&factory, glue, &stream.arn, &mut summary.warnings).await,
                        None => None,
                    };
                    let fields = column_lineage(dataset, &source.definition.preproc);
                    Some(message_schema(dataset, &fields, kind, registered.as_deref().or(inline)))
                }
                None => None,
            },
            None => None,
        };
        let now = SystemTime::now();
        for source in &readers {
            let Some(dataset) = &source.definition.dataset else { continue };
            let target = match &source.glue {
                Some((database, catalog_id)) => {
                    let region = stream_region(&stream.arn);
                    let catalog_id = match catalog_id {
                        Some(id) => id.clone(),
                        None => match caller_account(&factory, &region, &mut account_cache).await {
                            Ok(account) => account,
                            Err(error) => {
                                summary.warnings.push(format!(
                                    "source `{}`: the Glue catalog id is the server's account, which could not be read ({error}): lineage to a container instead",
                                    source.name
                                ));
                                lineage.push(lineage_record(source, dataset, &stream.name, None, now));
                                continue;
                            }
                        },
                    };
                    Some(GlueTable {
                        service: options.database_service.clone(),
                        catalog_id,
                        database: database.clone(),
                        table: source.dataset_name.clone(),
                        region,
                        location: source.location.clone(),
                    })
                }
                None => None,
            };
            lineage.push(lineage_record(source, dataset, &stream.name, target, now));
        }
        let open = findings.open_shards();
        if open == 0 {
            summary.warnings.push(format!(
                "stream `{}` has no open shard ({}): published with 1 partition",
                stream.name, stream.status
            ));
        }
        summary.sample_messages += findings.sample.as_ref().map_or(0, Vec::len);
        topics.push(TopicRecord {
            name: stream.name.clone(),
            partitions: u32::try_from(open.max(1)).unwrap_or(u32::MAX),
            retention_ms: u64::try_from(stream.retention_hours).unwrap_or(0) * 3_600_000,
            source_url: format!(
                "https://{region}.console.aws.amazon.com/kinesis/home?region={region}#/streams/details/{}/monitoring",
                stream.name
            ),
            message_schema,
            sample: findings.sample.clone(),
        });
    }

    let service = ServiceRecord {
        name: config.service_name.clone(),
        connection: if config.store_connection { config.stored_connection.clone() } else { serde_json::Value::Null },
    };
    let listed: HashSet<String> = extraction.listed.iter().cloned().collect();
    let (config, retry, emit) = (config.clone(), options.retry.clone(), options.emit_entities);
    let report = tokio::task::spawn_blocking(move || {
        if emit {
            let mut publisher = Publisher::new(EntityStream::new(std::io::BufWriter::new(std::io::stdout())));
            let report = publisher.publish(&service, &topics, &lineage, None)?;
            publisher.into_transport().finish()?;
            return Ok(report);
        }
        publish(&config, retry, &service, &topics, &lineage, &listed)
    })
    .await
    .map_err(|error| RunError::Tributary(format!("publishing stopped: {error}")))??;
    summary.published = report.published.len();
    summary.deleted = report.deleted;
    summary.lineage_edges = report.lineage_edges;
    summary.failed.extend(report.failed);
    summary.warnings.extend(report.warnings);
    Ok(summary)
}

fn publish(
    config: &WorkflowConfig,
    retry: RetryPolicy,
    service: &ServiceRecord,
    topics: &[TopicRecord],
    lineage: &[LineageRecord],
    listed: &HashSet<String>,
) -> Result<PublishReport, PublishError> {
    let admits = |name: &str| config.filter.admits(name);
    let stale = config.mark_deleted_topics.then_some(StaleTopics { listed, admits: &admits });
    match &config.sink {
        SinkKind::MetadataRest => {
            let headers = config.extra_headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let transport =
                RestTransport::new(&config.host_port, config.jwt_token.clone(), retry).with_headers(headers);
            Publisher::new(transport).publish(service, topics, lineage, stale)
        }
        SinkKind::File(path) => {
            let mut publisher = Publisher::new(FileTransport::create(path)?);
            let report = publisher.publish(service, topics, lineage, stale)?;
            publisher.into_transport().finish()?;
            Ok(report)
        }
    }
}
