//! The metadata sink: what Tributary knows about streams, published to
//! OpenMetadata the way its own Kinesis connector publishes it.
//!
//! A [`Publisher`] turns a run's findings ([`TopicRecord`]s, [`LineageRecord`]s)
//! into OpenMetadata's create-or-update requests, in the connector's order:
//! server version, messaging service (get, or create **without** AWS secrets),
//! topics (`PUT /v1/topics`), each topic's sample data (on the first run too),
//! then lineage (pipeline service `tributary`, one pipeline per source, the
//! dataset as a container of a storage service, and the two edges), then the
//! soft deletion of stale topics. Requests go through a [`Transport`]:
//! [`RestTransport`] speaks to a server (Bearer JWT, timeouts, retries on 429
//! and 5xx), [`FileTransport`] writes each request as a JSON line instead.

mod entities;
mod publisher;
mod transport;

pub use entities::{
    ContainerColumn, LineageRecord, MessageSchema, SchemaField, SchemaKind, ServiceRecord, TopicRecord, quoted_fqn_part,
};
pub use publisher::{PIPELINE_SERVICE, PublishReport, Publisher, STORAGE_SERVICE, StaleTopics, topic_fqn};
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
