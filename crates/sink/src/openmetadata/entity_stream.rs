//! The entities of a run as JSON lines for a workflow that creates them itself.
//!
//! OpenMetadata's own Python workflow (run from its UI) has its sink, its
//! authentication and its run status; Tributary's connector there only yields
//! OpenMetadata's request objects. This transport turns what the [`Publisher`](super::Publisher)
//! would send into one line per entity, naming other entities by fully
//! qualified name (ids are the server's to give):
//!
//! - `{"entity": "topics", "fqn": FQN, "request": {createTopic}}`, likewise `pipelineServices`,
//!   `pipelines`, `storageServices`, `containers`, `databaseServices`, `databases`,
//!   `databaseSchemas`, `tables` and `messagingServices`;
//! - `{"entity": "topicSampleData", "topic": FQN, "messages": [...]}`;
//! - `{"entity": "lineage", "edge": {"fromEntity": {"type", "fqn"}, "toEntity": {..},
//!   "lineageDetails": {"pipeline": {"type", "fqn"}, "columnsLineage": [...]}}}`;
//! - `{"entity": "pipelineStatus", "pipeline": FQN, "status": {pipelineStatus}}`.

use std::collections::HashMap;
use std::io::Write;

use serde_json::{Value, json};

use super::PublishError;
use super::transport::{Method, Request, Response, Transport, created};

/// Writes entity lines to `out`.
pub struct EntityStream<W: Write + Send> {
    out: W,
    /// Entities created so far: id → fully qualified name.
    names: HashMap<String, String>,
}

impl<W: Write + Send> std::fmt::Debug for EntityStream<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityStream").field("entities", &self.names.len()).finish_non_exhaustive()
    }
}

impl<W: Write + Send> EntityStream<W> {
    /// A stream of entity lines into `out`.
    pub fn new(out: W) -> EntityStream<W> {
        EntityStream { out, names: HashMap::new() }
    }

    fn write_line(&mut self, line: &Value) -> Result<(), PublishError> {
        writeln!(self.out, "{line}").map_err(|source| PublishError::File { path: "<entity stream>".to_owned(), source })
    }

    /// Flushes, and gives the writer back.
    pub fn finish(mut self) -> Result<W, PublishError> {
        self.out.flush().map_err(|source| PublishError::File { path: "<entity stream>".to_owned(), source })?;
        Ok(self.out)
    }

    /// `reference` (`{"id", "type"}`) by name instead of id.
    fn by_name(&self, reference: Option<&Value>) -> Value {
        let id = reference.and_then(|r| r.get("id")).and_then(Value::as_str).unwrap_or_default();
        json!({
            "type": reference.and_then(|r| r.get("type")).cloned().unwrap_or(Value::Null),
            "fqn": self.names.get(id).cloned().unwrap_or_default(),
        })
    }
}

impl<W: Write + Send> Transport for EntityStream<W> {
    fn send(&mut self, request: &Request) -> Result<Response, PublishError> {
        if request.method != Method::Put {
            return Ok(Response { status: 404, body: Value::Null });
        }
        let body = request.body.clone().unwrap_or(Value::Null);
        let path = request.path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
        let line = match parts.as_slice() {
            ["topics", id, "sampleData"] => json!({
                "entity": "topicSampleData",
                "topic": self.names.get(*id).cloned().unwrap_or_default(),
                "messages": body.get("messages").cloned().unwrap_or(Value::Null),
            }),
            ["pipelines", fqn, "status"] => json!({
                "entity": "pipelineStatus",
                "pipeline": percent_encoding::percent_decode_str(fqn).decode_utf8_lossy(),
                "status": body,
            }),
            ["lineage"] => {
                let edge = body.get("edge");
                let mut details = edge.and_then(|e| e.get("lineageDetails")).cloned().unwrap_or_else(|| json!({}));
                if let Some(pipeline) = details.get("pipeline").cloned() {
                    details["pipeline"] = self.by_name(Some(&pipeline));
                }
                json!({"entity": "lineage", "edge": {
                    "fromEntity": self.by_name(edge.and_then(|e| e.get("fromEntity"))),
                    "toEntity": self.by_name(edge.and_then(|e| e.get("toEntity"))),
                    "lineageDetails": details,
                }})
            }
            [.., collection] => {
                let response = created(request);
                let id = response.body["id"].as_str().unwrap_or_default().to_owned();
                let fqn = response.body["fullyQualifiedName"].as_str().unwrap_or_default().to_owned();
                self.write_line(&json!({"entity": collection, "fqn": fqn, "request": body}))?;
                self.names.insert(id, fqn);
                return Ok(response);
            }
            [] => return Ok(Response { status: 404, body: Value::Null }),
        };
        self.write_line(&line)?;
        Ok(Response { status: 200, body: json!({}) })
    }

    fn reads(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(path: &str, body: Value) -> Request {
        Request { method: Method::Put, path: path.to_owned(), body: Some(body) }
    }

    #[test]
    fn entities_name_each_other_by_fully_qualified_name() {
        let mut stream = EntityStream::new(Vec::new());
        let topic = stream.send(&put("/v1/topics", json!({"name": "a.b", "service": "svc"}))).expect("topic");
        let topic_id = topic.body["id"].as_str().expect("id").to_owned();
        let pipeline = stream.send(&put("/v1/pipelines", json!({"name": "src", "service": "tributary"}))).expect("p");
        let table = stream
            .send(&put("/v1/tables", json!({"name": "t", "databaseSchema": "glue.123.db", "columns": []})))
            .expect("table");
        stream.send(&put(&format!("/v1/topics/{topic_id}/sampleData"), json!({"messages": ["m"]}))).expect("sample");
        let edge = json!({"edge": {
            "fromEntity": {"id": topic_id, "type": "topic"},
            "toEntity": {"id": table.body["id"], "type": "table"},
            "lineageDetails": {"pipeline": {"id": pipeline.body["id"], "type": "pipeline"}, "columnsLineage": []},
        }});
        stream.send(&put("/v1/lineage", edge)).expect("lineage");
        stream.send(&put("/v1/pipelines/tributary.%22s.x%22/status", json!({"timestamp": 1}))).expect("status");
        let text = String::from_utf8(stream.finish().expect("flush")).expect("utf-8");
        let lines: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).expect("json")).collect();
        assert_eq!(
            lines[0],
            json!({"entity": "topics", "fqn": "svc.\"a.b\"", "request": {"name": "a.b", "service": "svc"}})
        );
        assert_eq!(lines[3], json!({"entity": "topicSampleData", "topic": "svc.\"a.b\"", "messages": ["m"]}));
        assert_eq!(lines[4]["edge"]["fromEntity"], json!({"type": "topic", "fqn": "svc.\"a.b\""}));
        assert_eq!(lines[4]["edge"]["toEntity"], json!({"type": "table", "fqn": "glue.123.db.t"}));
        assert_eq!(lines[4]["edge"]["lineageDetails"]["pipeline"], json!({"type": "pipeline", "fqn": "tributary.src"}));
        assert_eq!(
            lines[5],
            json!({"entity": "pipelineStatus", "pipeline": "tributary.\"s.x\"", "status": {"timestamp": 1}})
        );
    }
}
