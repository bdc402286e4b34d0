//! The order of requests that publishes one run.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::PublishError;
use super::entities::{LineageRecord, ServiceRecord, TopicRecord, quoted_fqn_part, source_hash};
use super::transport::{Method, Request, Response, Transport};

/// The pipeline service that holds one pipeline per Tributary source.
pub const PIPELINE_SERVICE: &str = "tributary";
/// The storage service that holds the datasets as containers.
pub const STORAGE_SERVICE: &str = "tributary_datasets";
/// Topics per page when listing a service's topics.
const LIST_PAGE: u32 = 100;

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
            self.put_lineage(lineage, &topic_ids, &mut report)?;
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
            let path = format!("/v1/topics/{id}/sampleData");
            let response = self.send(Method::Put, path.clone(), Some(json!({ "messages": messages })))?;
            if response.status >= 300 {
                return Err(PublishError::Unexpected { path, detail: format!("HTTP {}", response.status) });
            }
        }
        Ok(id)
    }

    fn put_lineage(
        &mut self,
        lineage: &[LineageRecord],
        topic_ids: &HashMap<&str, String>,
        report: &mut PublishReport,
    ) -> Result<(), PublishError> {
        let custom = |kind: &str| json!({"config": {"type": kind}});
        self.put(
            "/v1/services/pipelineServices",
            json!({"name": PIPELINE_SERVICE, "serviceType": "CustomPipeline", "connection": custom("CustomPipeline"),
                   "description": "Tributary: Kinesis streams ingested into typed datasets"}),
        )?;
        self.put(
            "/v1/services/storageServices",
            json!({"name": STORAGE_SERVICE, "serviceType": "CustomStorage", "connection": custom("CustomStorage"),
                   "description": "Datasets written by Tributary"}),
        )?;
        for record in lineage {
            let Some(topic_id) = topic_ids.get(record.stream.as_str()) else {
                report.warnings.push(format!(
                    "source `{}` reads stream `{}`, which was not published in this run: no lineage",
                    record.source, record.stream
                ));
                continue;
            };
            if let Err(error) = self.put_source_lineage(record, topic_id, report) {
                report.failed.push((record.stream.clone(), format!("lineage of source `{}`: {error}", record.source)));
            }
        }
        Ok(())
    }

    fn put_source_lineage(
        &mut self,
        record: &LineageRecord,
        topic_id: &str,
        report: &mut PublishReport,
    ) -> Result<(), PublishError> {
        let mut pipeline = json!({
            "name": record.source,
            "service": PIPELINE_SERVICE,
            "description": format!("Tributary source `{}`: stream `{}` into dataset `{}`", record.source, record.stream, record.dataset),
            "tasks": [{"name": "ingest", "taskType": "kinesis-to-dataset"}],
        });
        pipeline["sourceHash"] = Value::String(source_hash(&pipeline));
        let pipeline_id = self.put("/v1/pipelines", pipeline)?;
        let mut container = json!({
            "name": record.dataset,
            "service": STORAGE_SERVICE,
            "description": format!("Dataset written by Tributary source `{}`", record.source),
            "dataModel": {"isPartitioned": true, "columns": record.columns},
            "fullPath": record.location,
            "fileFormats": ["parquet"],
        });
        container["sourceHash"] = Value::String(source_hash(&container));
        let container_id = self.put("/v1/containers", container)?;
        for (from, from_type, to, to_type) in [
            (topic_id, "topic", pipeline_id.as_str(), "pipeline"),
            (pipeline_id.as_str(), "pipeline", container_id.as_str(), "container"),
        ] {
            let edge = json!({"edge": {"fromEntity": {"id": from, "type": from_type}, "toEntity": {"id": to, "type": to_type}}});
            let response = self.send(Method::Put, "/v1/lineage".to_owned(), Some(edge))?;
            if response.status >= 300 {
                return Err(PublishError::Unexpected {
                    path: "/v1/lineage".to_owned(),
                    detail: format!("HTTP {}", response.status),
                });
            }
            report.lineage_edges += 1;
        }
        Ok(())
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
