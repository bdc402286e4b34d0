//! The order of requests that publishes one run.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::PublishError;
use super::entities::{
    DatasetTarget, GlueTable, LineageRecord, PipelineRun, ServiceRecord, TopicRecord, quoted_fqn_part, source_hash,
};
use super::status::INGEST_TASK;
use super::transport::{Method, Request, Response, Transport};

/// The pipeline service that holds one pipeline per Tributary source.
pub const PIPELINE_SERVICE: &str = "tributary";
/// The storage service that holds the datasets as containers.
pub const STORAGE_SERVICE: &str = "tributary_datasets";
/// Topics per page when listing a service's topics.
const LIST_PAGE: u32 = 100;

/// A source's pipeline: what it reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePipeline {
    /// The source's name (the pipeline's).
    pub source: String,
    /// The stream it reads.
    pub stream: String,
    /// The dataset it writes.
    pub dataset: String,
}

/// An entity an edge joins.
struct Node {
    id: String,
    kind: &'static str,
    fqn: String,
}

fn custom_connection(kind: &str) -> Value {
    json!({"config": {"type": kind}})
}

/// Which topics may be soft-deleted: those of the service that the listing no
/// longer shows, among the names the workflow's filter admits.
pub struct StaleTopics<'a> {
    /// Every stream the (complete) listing returned, admitted or not.
    pub listed: &'a HashSet<String>,
    /// The workflow's filter.
    pub admits: &'a dyn Fn(&str) -> bool,
}

/// What one publication did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PublishReport {
    /// The server's version, when it could say.
    pub server_version: Option<String>,
    /// Topics created or updated.
    pub published: Vec<String>,
    /// Topics (or their sample data, or lineage) that failed, with why.
    pub failed: Vec<(String, String)>,
    /// Topics soft-deleted as stale.
    pub deleted: Vec<String>,
    /// Lineage edges added.
    pub lineage_edges: usize,
    /// Things a user should know that did not fail the run.
    pub warnings: Vec<String>,
}

/// Publishes a run through a [`Transport`].
#[derive(Debug)]
pub struct Publisher<T: Transport> {
    transport: T,
}

impl<T: Transport> Publisher<T> {
    /// A publisher over `transport`.
    pub fn new(transport: T) -> Publisher<T> {
        Publisher { transport }
    }

    /// The transport, back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Publishes `topics` of `service`, then `lineage`, then deletes stale topics.
    ///
    /// Fails as a whole only when the server or the service cannot be had;
    /// a topic that fails is reported and the others go on.
    pub fn publish(
        &mut self,
        service: &ServiceRecord,
        topics: &[TopicRecord],
        lineage: &[LineageRecord],
        stale: Option<StaleTopics<'_>>,
    ) -> Result<PublishReport, PublishError> {
        let mut report = PublishReport::default();
        if self.transport.reads() {
            report.server_version = self.server_version()?;
        }
        self.ensure_service(service, &mut report)?;
        let mut topic_ids: HashMap<&str, String> = HashMap::new();
        for topic in topics {
            match self.put_topic(service, topic) {
                Ok(id) => {
                    report.published.push(topic.name.clone());
                    topic_ids.insert(&topic.name, id);
                }
                Err(error) => report.failed.push((topic.name.clone(), error.to_string())),
            }
        }
        if !lineage.is_empty() {
            self.put_lineage(service, lineage, &topic_ids, &mut report)?;
        }
        if let Some(stale) = stale {
            if self.transport.reads() {
                self.delete_stale(service, &stale, &mut report)?;
            } else {
                report
                    .warnings
                    .push("markDeletedTopics needs a server to list topics: skipped by the file sink".to_owned());
            }
        }
        Ok(report)
    }

    fn send(&mut self, method: Method, path: String, body: Option<Value>) -> Result<Response, PublishError> {
        self.transport.send(&Request { method, path, body })
    }

    fn put(&mut self, path: &str, body: Value) -> Result<String, PublishError> {
        let response = self.send(Method::Put, path.to_owned(), Some(body))?;
        match response.body.get("id").and_then(Value::as_str) {
            Some(id) if response.status < 300 => Ok(id.to_owned()),
            _ => Err(PublishError::Unexpected {
                path: path.to_owned(),
                detail: format!("HTTP {} without an entity id", response.status),
            }),
        }
    }

    /// A PUT whose answer needs no entity id, only a success.
    fn put_accepted(&mut self, path: String, body: Value) -> Result<(), PublishError> {
        let response = self.send(Method::Put, path.clone(), Some(body))?;
        if response.status >= 300 {
            return Err(PublishError::Unexpected { path, detail: format!("HTTP {}", response.status) });
        }
        Ok(())
    }

    fn server_version(&mut self) -> Result<Option<String>, PublishError> {
        let response = self.send(Method::Get, "/v1/system/version".to_owned(), None)?;
        if response.status == 404 {
            return Err(PublishError::Unexpected {
                path: "/v1/system/version".to_owned(),
                detail: "not found: is `hostPort` the server's API root (e.g. http://localhost:8585/api)?".to_owned(),
            });
        }
        Ok(response.body.get("version").and_then(Value::as_str).map(str::to_owned))
    }

    fn ensure_service(&mut self, service: &ServiceRecord, report: &mut PublishReport) -> Result<(), PublishError> {
        let path = format!("/v1/services/messagingServices/name/{}?fields=*", encode(&service.name));
        let found = self.send(Method::Get, path, None)?;
        if found.status == 200 {
            let kind = found.body.get("serviceType").and_then(Value::as_str);
            if kind != Some("Kinesis") {
                report.warnings.push(format!(
                    "messaging service `{}` exists with serviceType {kind:?}, not Kinesis",
                    service.name
                ));
            }
            return Ok(());
        }
        let mut body = json!({"name": service.name, "serviceType": "Kinesis"});
        // `storeServiceConnection: false` keeps the connection off the server entirely.
        if !service.connection.is_null() {
            body["connection"] = json!({"config": service.connection});
        }
        self.put("/v1/services/messagingServices", body).map(|_| ())
    }

    fn put_topic(&mut self, service: &ServiceRecord, topic: &TopicRecord) -> Result<String, PublishError> {
        let id = self.put("/v1/topics", topic.create_body(&service.name))?;
        if let Some(messages) = &topic.sample {
            self.put_accepted(format!("/v1/topics/{id}/sampleData"), json!({ "messages": messages }))?;
        }
        Ok(id)
    }

    fn put_lineage(
        &mut self,
        service: &ServiceRecord,
        lineage: &[LineageRecord],
        topic_ids: &HashMap<&str, String>,
        report: &mut PublishReport,
    ) -> Result<(), PublishError> {
        self.ensure_pipeline_service()?;
        if lineage.iter().any(|record| matches!(record.target, DatasetTarget::Container { .. })) {
            self.put(
                "/v1/services/storageServices",
                json!({"name": STORAGE_SERVICE, "serviceType": "CustomStorage", "connection": custom_connection("CustomStorage"),
                       "description": "Datasets written by Tributary"}),
            )?;
        }
        for record in lineage {
            let Some(topic_id) = topic_ids.get(record.stream.as_str()) else {
                report.warnings.push(format!(
                    "source `{}` reads stream `{}`, which was not published in this run: no lineage",
                    record.source, record.stream
                ));
                continue;
            };
            let topic = Node { id: topic_id.clone(), kind: "topic", fqn: topic_fqn(&service.name, &record.stream) };
            if let Err(error) = self.put_source_lineage(record, &topic, report) {
                report.failed.push((record.stream.clone(), format!("lineage of source `{}`: {error}", record.source)));
            }
        }
        Ok(())
    }

    /// Publishes each source's status (with its pipeline, created when missing), as
    /// `tributary serve --openmetadata-status` does every minute.
    pub fn publish_runs(&mut self, runs: &[(SourcePipeline, PipelineRun)]) -> Result<PublishReport, PublishError> {
        let mut report = PublishReport::default();
        self.ensure_pipeline_service()?;
        for (pipeline, run) in runs {
            let outcome =
                self.put_pipeline(pipeline, Some(&run.summary)).and_then(|_| self.put_status(&pipeline.source, run));
            match outcome {
                Ok(()) => report.published.push(pipeline.source.clone()),
                Err(error) => report.failed.push((pipeline.source.clone(), error.to_string())),
            }
        }
        Ok(report)
    }

    fn ensure_pipeline_service(&mut self) -> Result<(), PublishError> {
        self.put(
            "/v1/services/pipelineServices",
            json!({"name": PIPELINE_SERVICE, "serviceType": "CustomPipeline", "connection": custom_connection("CustomPipeline"),
                   "description": "Tributary: Kinesis streams ingested into typed datasets"}),
        )
        .map(|_| ())
    }

    fn put_pipeline(&mut self, pipeline: &SourcePipeline, summary: Option<&str>) -> Result<String, PublishError> {
        let mut task = json!({"name": INGEST_TASK, "taskType": "kinesis-to-dataset"});
        if let Some(summary) = summary {
            task["description"] = Value::String(summary.to_owned());
        }
        let mut body = json!({
            "name": pipeline.source,
            "service": PIPELINE_SERVICE,
            "description": format!("Tributary source `{}`: stream `{}` into dataset `{}`", pipeline.source, pipeline.stream, pipeline.dataset),
            "tasks": [task],
        });
        body["sourceHash"] = Value::String(source_hash(&body));
        self.put("/v1/pipelines", body)
    }

    fn put_status(&mut self, source: &str, run: &PipelineRun) -> Result<(), PublishError> {
        self.put_accepted(format!("/v1/pipelines/{}/status", encode(&pipeline_fqn(source))), run.status.clone())
    }

    fn put_source_lineage(
        &mut self,
        record: &LineageRecord,
        topic: &Node,
        report: &mut PublishReport,
    ) -> Result<(), PublishError> {
        let pipeline = SourcePipeline {
            source: record.source.clone(),
            stream: record.stream.clone(),
            dataset: record.dataset.clone(),
        };
        let pipeline_id = self.put_pipeline(&pipeline, record.run.as_ref().map(|run| run.summary.as_str()))?;
        let dataset = match &record.target {
            DatasetTarget::Container { location } => self.put_container(record, location)?,
            DatasetTarget::GlueTable(table) => self.ensure_table(table, record)?,
        };
        let columns_lineage: Vec<Value> = record
            .column_lineage
            .iter()
            .map(|mapping| {
                let field: Vec<String> = mapping.field.iter().map(|part| quoted_fqn_part(part)).collect();
                json!({
                    "fromColumns": [format!("{}.{}", topic.fqn, field.join("."))],
                    "toColumn": format!("{}.{}", dataset.fqn, quoted_fqn_part(&mapping.column)),
                })
            })
            .collect();
        let edge = json!({"edge": {
            "fromEntity": {"id": topic.id, "type": topic.kind},
            "toEntity": {"id": dataset.id, "type": dataset.kind},
            "lineageDetails": {"pipeline": {"id": pipeline_id, "type": "pipeline"}, "columnsLineage": columns_lineage},
        }});
        self.put_accepted("/v1/lineage".to_owned(), edge)?;
        report.lineage_edges += 1;
        if let Some(run) = &record.run {
            self.put_status(&record.source, run)?;
        }
        Ok(())
    }

    fn put_container(&mut self, record: &LineageRecord, location: &str) -> Result<Node, PublishError> {
        let mut container = json!({
            "name": record.dataset,
            "service": STORAGE_SERVICE,
            "description": format!("Dataset written by Tributary source `{}`", record.source),
            "dataModel": {"isPartitioned": true, "columns": record.columns},
            "fullPath": location,
            "fileFormats": ["parquet"],
        });
        container["sourceHash"] = Value::String(source_hash(&container));
        let id = self.put("/v1/containers", container)?;
        Ok(Node { id, kind: "container", fqn: format!("{STORAGE_SERVICE}.{}", quoted_fqn_part(&record.dataset)) })
    }

    /// The Glue table's entity: found where OpenMetadata's Glue connector put it, or
    /// created (with its service, database and schema when those are missing too).
    /// What exists is never overwritten: the Glue connector owns it.
    fn ensure_table(&mut self, table: &GlueTable, record: &LineageRecord) -> Result<Node, PublishError> {
        let service = quoted_fqn_part(&table.service);
        let database = format!("{service}.{}", quoted_fqn_part(&table.catalog_id));
        let schema = format!("{database}.{}", quoted_fqn_part(&table.database));
        let fqn = format!("{schema}.{}", quoted_fqn_part(&table.table));
        if let Some(id) = self.find("tables", &fqn)? {
            return Ok(Node { id, kind: "table", fqn });
        }
        if self.find("services/databaseServices", &table.service)?.is_none() {
            self.put(
                "/v1/services/databaseServices",
                json!({"name": table.service, "serviceType": "Glue",
                       "connection": {"config": {"type": "Glue", "awsConfig": {"awsRegion": table.region}}},
                       "description": "Glue Data Catalog holding Tributary's Iceberg tables"}),
            )?;
        }
        if self.find("databases", &database)?.is_none() {
            self.put("/v1/databases", json!({"name": table.catalog_id, "service": table.service}))?;
        }
        if self.find("databaseSchemas", &schema)?.is_none() {
            self.put("/v1/databaseSchemas", json!({"name": table.database, "database": database}))?;
        }
        let mut body = json!({
            "name": table.table,
            "databaseSchema": schema,
            "tableType": "Iceberg",
            "columns": record.columns,
            "locationPath": table.location,
            "description": format!("Iceberg table written by Tributary source `{}`", record.source),
        });
        body["sourceHash"] = Value::String(source_hash(&body));
        let id = self.put("/v1/tables", body)?;
        Ok(Node { id, kind: "table", fqn })
    }

    /// The id of the entity of `kind` named `fqn`, when the server has it.
    fn find(&mut self, kind: &str, fqn: &str) -> Result<Option<String>, PublishError> {
        if !self.transport.reads() {
            return Ok(None);
        }
        let path = format!("/v1/{kind}/name/{}", encode(fqn));
        let response = self.send(Method::Get, path.clone(), None)?;
        match (response.status, response.body.get("id").and_then(Value::as_str)) {
            (404, _) => Ok(None),
            (200, Some(id)) => Ok(Some(id.to_owned())),
            (status, _) => {
                Err(PublishError::Unexpected { path, detail: format!("HTTP {status} without an entity id") })
            }
        }
    }

    fn delete_stale(
        &mut self,
        service: &ServiceRecord,
        stale: &StaleTopics<'_>,
        report: &mut PublishReport,
    ) -> Result<(), PublishError> {
        let mut existing: Vec<(String, String)> = Vec::new();
        let mut after: Option<String> = None;
        let mut cursors_seen: HashSet<String> = HashSet::new();
        loop {
            let mut path = format!("/v1/topics?service={}&limit={LIST_PAGE}", encode(&service.name));
            if let Some(cursor) = &after {
                path.push_str(&format!("&after={}", encode(cursor)));
            }
            let page = self.send(Method::Get, path.clone(), None)?;
            let Some(data) = page.body.get("data").and_then(Value::as_array) else {
                return Err(PublishError::Unexpected { path, detail: format!("HTTP {} without `data`", page.status) });
            };
            for topic in data {
                if let (Some(name), Some(id)) =
                    (topic.get("name").and_then(Value::as_str), topic.get("id").and_then(Value::as_str))
                {
                    existing.push((name.to_owned(), id.to_owned()));
                }
            }
            after = page.body.pointer("/paging/after").and_then(Value::as_str).map(str::to_owned);
            let Some(cursor) = &after else { break };
            if data.is_empty() {
                break;
            }
            // A server that repeats a cursor, or pages without end, would keep this loop (and its memory) going.
            if !cursors_seen.insert(cursor.clone()) {
                return Err(PublishError::Unexpected {
                    path,
                    detail: "the server repeated a paging cursor; the topic listing would never end".to_owned(),
                });
            }
            if existing.len() > MAX_LISTED_TOPICS {
                return Err(PublishError::Unexpected {
                    path,
                    detail: format!("the service lists more than {MAX_LISTED_TOPICS} topics"),
                });
            }
        }
        for (name, id) in existing {
            if stale.listed.contains(&name) || !(stale.admits)(&name) {
                continue;
            }
            let path = format!("/v1/topics/{}?hardDelete=false&recursive=true", encode(&id));
            match self.send(Method::Delete, path, None) {
                Ok(response) if response.status < 300 => report.deleted.push(name),
                Ok(response) => report.failed.push((name, format!("soft delete: HTTP {}", response.status))),
                Err(error) => report.failed.push((name, format!("soft delete: {error}"))),
            }
        }
        Ok(())
    }
}

/// The most topics a stale-topic listing reads from the server (Kinesis
/// allows 10,000 streams per account and region by default).
const MAX_LISTED_TOPICS: usize = 100_000;

/// A path segment or query value, percent-encoded (RFC 3986 unreserved characters pass),
/// so a name like `../x` or `a?b` stays one part.
fn encode(text: &str) -> String {
    const COMPONENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(text, COMPONENT).to_string()
}

/// The fully qualified name of a source's pipeline.
pub fn pipeline_fqn(source: &str) -> String {
    format!("{PIPELINE_SERVICE}.{}", quoted_fqn_part(source))
}

/// The fully qualified name OpenMetadata gives a topic of `service`.
pub fn topic_fqn(service: &str, topic: &str) -> String {
    format!("{}.{}", quoted_fqn_part(service), quoted_fqn_part(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts_are_encoded() {
        assert_eq!(encode("svc name/x"), "svc%20name%2Fx");
        assert_eq!(encode("dot.ted-ok_~"), "dot.ted-ok_~");
        assert_eq!(topic_fqn("svc", "dot.ted"), "svc.\"dot.ted\"");
    }

    /// A scripted server: every listing answers one page naming `cursor` as the next.
    struct RepeatingServer {
        cursor: &'static str,
        id: &'static str,
        sent: Vec<String>,
    }

    impl Transport for RepeatingServer {
        fn send(&mut self, request: &Request) -> Result<Response, PublishError> {
            self.sent.push(request.path.clone());
            if self.sent.len() > 1000 {
                panic!("the listing did not stop");
            }
            let body = serde_json::json!({
                "data": [{"name": format!("gone-{}", self.sent.len()), "id": self.id}],
                "paging": {"after": self.cursor}
            });
            Ok(Response { status: 200, body })
        }

        fn reads(&self) -> bool {
            true
        }
    }

    fn stale_topics<'a>(listed: &'a HashSet<String>, admits: &'a dyn Fn(&str) -> bool) -> StaleTopics<'a> {
        StaleTopics { listed, admits }
    }

    /// The review's hang: a server answering the same cursor again kept the listing
    /// going forever, its memory growing; and ids went into the DELETE path as sent.
    #[test]
    fn a_repeated_cursor_ends_the_listing_and_ids_are_encoded() {
        let service = ServiceRecord { name: "svc".to_owned(), connection: Value::Null };
        let listed = HashSet::new();
        let admits = |_: &str| true;
        let mut publisher = Publisher::new(RepeatingServer { cursor: "same", id: "x", sent: Vec::new() });
        let error = publisher
            .delete_stale(&service, &stale_topics(&listed, &admits), &mut PublishReport::default())
            .expect_err("a repeated cursor");
        assert!(error.to_string().contains("repeated a paging cursor"), "{error}");
        assert_eq!(publisher.into_transport().sent.len(), 2, "the second page repeated the first's cursor");

        // An id that is not one stays one path segment.
        struct OnePage(Vec<String>);
        impl Transport for OnePage {
            fn send(&mut self, request: &Request) -> Result<Response, PublishError> {
                self.0.push(request.path.clone());
                let body =
                    serde_json::json!({"data": [{"name": "gone", "id": "../../v1/users/admin?x="}], "paging": {}});
                Ok(Response { status: 200, body })
            }
            fn reads(&self) -> bool {
                true
            }
        }
        let mut publisher = Publisher::new(OnePage(Vec::new()));
        let mut report = PublishReport::default();
        publisher.delete_stale(&service, &stale_topics(&listed, &admits), &mut report).expect("listed");
        let sent = publisher.into_transport().0;
        assert_eq!(sent[1], "/v1/topics/..%2F..%2Fv1%2Fusers%2Fadmin%3Fx%3D?hardDelete=false&recursive=true");
    }
}
