//! API errors: a status and a JSON body `{"error": "..."}` that says what to fix.
//!
//! The status of each kind of failure is chosen here, in one place. A failure
//! inside the server (the state database, a task) is logged in full with an
//! incident number, and the answer names only the number: SQLite's messages
//! and the like carry paths and internals a client has no use for.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An API failure.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The request cannot be understood (400).
    BadRequest(String),
    /// No valid token (401).
    Unauthorized(String),
    /// No such source or endpoint (404).
    NotFound(String),
    /// The body is larger than the server accepts (413).
    TooLarge,
    /// The body is neither JSON nor protobuf (415).
    UnsupportedMediaType(String),
    /// The `Host` is not one this server answers to (421).
    Misdirected,
    /// The state database is busy (another writer holds it): retry shortly (503).
    Busy,
    /// Cluster mode: another node committed the same source at the same time (409).
    Conflict(String),
    /// Cluster mode: the cluster's shared tables did not answer (503).
    Unavailable(String),
    /// A request for something this server does not do yet (501).
    NotImplemented(String),
    /// Anything else inside the server (500); logged, never shown.
    Internal(String),
}

/// Numbers the internal failures, so a client's report finds the log line.
static INCIDENTS: AtomicU64 = AtomicU64::new(1);

impl ApiError {
    pub(crate) fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::NotFound(what.into())
    }

    pub(crate) fn internal(error: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(error.to_string())
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Busy | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<tributary_store::StoreError> for ApiError {
    fn from(error: tributary_store::StoreError) -> ApiError {
        if error.is_busy() { ApiError::Busy } else { ApiError::internal(error) }
    }
}

impl From<tributary_cluster::ClusterError> for ApiError {
    fn from(error: tributary_cluster::ClusterError) -> ApiError {
        match error {
            tributary_cluster::ClusterError::Conflict { .. } => ApiError::Conflict(error.to_string()),
            error if error.is_retryable() => ApiError::Unavailable(format!("the cluster's tables: {error}")),
            error => ApiError::internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match self {
            ApiError::BadRequest(message)
            | ApiError::Unauthorized(message)
            | ApiError::NotFound(message)
            | ApiError::UnsupportedMediaType(message)
            | ApiError::Conflict(message)
            | ApiError::NotImplemented(message)
            | ApiError::Unavailable(message) => message,
            ApiError::TooLarge => "the request body is larger than the server accepts".to_owned(),
            ApiError::Misdirected => "this server answers only to localhost and loopback addresses".to_owned(),
            ApiError::Busy => {
                let body = Json(serde_json::json!({ "error": "the state database is busy; retry in a moment" }));
                return (status, [(header::RETRY_AFTER, "1")], body).into_response();
            }
            ApiError::Internal(detail) => {
                let incident = INCIDENTS.fetch_add(1, Ordering::Relaxed);
                tracing::error!(incident, %detail, "internal error answering a request");
                format!("internal error (incident {incident}); the server's log has the details")
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn answer(error: ApiError) -> (StatusCode, String) {
        let response = error.into_response();
        let status = response.status();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn internal_failures_answer_500_without_their_details() {
        let sqlite = rusqlite::Connection::open_in_memory()
            .expect("sqlite")
            .execute("INSERT INTO no_such_table VALUES (1)", [])
            .expect_err("fails");
        let (status, body) = answer(ApiError::from(tributary_store::StoreError::from(sqlite))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.contains("incident") && !body.contains("no_such_table") && !body.contains("state database"),
            "{body}"
        );

        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        let (status, body) = answer(ApiError::from(tributary_store::StoreError::from(busy))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("busy; retry") && !body.contains("database is locked"), "{body}");
    }
}
