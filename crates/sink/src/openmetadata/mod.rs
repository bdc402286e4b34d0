//! The metadata sink: what Tributary knows about streams, published to
//! OpenMetadata the way its own Kinesis connector publishes it.
//!
//! A [`Publisher`] turns a run's findings ([`TopicRecord`]s, [`LineageRecord`]s)
//! into OpenMetadata's create-or-update requests, in the connector's order:
//! server version, messaging service (get, or create **without** AWS secrets),
//! topics (`PUT /v1/topics`), each topic's sample data (on the first run too),
//! then lineage (pipeline service `tributary`, one pipeline per source with
//! its status, the dataset as the Glue `table` OpenMetadata's Glue connector
//! catalogs or else a container of a storage service, and one edge from the
//! topic to the dataset carrying the pipeline and the column lineage), then
//! the soft deletion of stale topics. Requests go through a [`Transport`]:
//! [`RestTransport`] speaks to a server (Bearer JWT, timeouts, retries on 429
//! and 5xx), [`FileTransport`] writes each request as a JSON line instead.

mod entities;
mod entity_stream;
mod publisher;
mod status;
mod transport;

pub use entities::{
    ColumnLineage, ContainerColumn, DatasetTarget, GlueTable, LineageRecord, MessageSchema, PipelineRun, SchemaField,
    SchemaKind, ServiceRecord, TopicRecord, quoted_fqn_part,
};
pub use entity_stream::EntityStream;
pub use publisher::{
    PIPELINE_SERVICE, PublishReport, Publisher, STORAGE_SERVICE, SourcePipeline, StaleTopics, pipeline_fqn, topic_fqn,
};
pub use status::{INGEST_TASK, pipeline_run};
pub use transport::{FileTransport, Method, Request, Response, RestTransport, RetryPolicy, Transport};

/// Why a request to the metadata server failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The server could not be reached, or kept failing (429 / 5xx) after every retry.
    #[error("{method} {path}: {detail}")]
    Unreachable {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// What went wrong last.
        detail: String,
    },
    /// The server refused the request (4xx other than 429).
    #[error("{method} {path}: HTTP {status}: {detail}")]
    Refused {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The server's message.
        detail: String,
    },
    /// The server's answer lacks what the next request needs (an entity id).
    #[error("{path}: unexpected answer: {detail}")]
    Unexpected {
        /// The request's path.
        path: String,
        /// What was missing.
        detail: String,
    },
    /// The file sink could not write.
    #[error("writing {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}
