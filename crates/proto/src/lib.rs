//! Tributary's canonical API messages.
//!
//! The `.proto` files under `proto/tributary/v1/` are the contract; this crate
//! holds the prost types generated from them and a proto3-JSON mapping (pbjson)
//! with the original snake_case field names, so an API body reads like a
//! definition file:
//!
//! ```
//! use tributary_proto::v1::CommitRequest;
//!
//! let body = r#"{"sources": [{"name": "orders",
//!     "kinesis": {"stream_arn": "arn:aws:kinesis:us-east-1:000000000000:stream/orders",
//!                 "trim_horizon": {}},
//!     "disorder": "3600s"}]}"#;
//! let request: CommitRequest = serde_json::from_str(body).unwrap();
//! assert_eq!(request.sources[0].disorder.as_ref().map(|d| d.seconds), Some(3600));
//! ```

/// Version 1 of the API.
pub mod v1 {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/tributary.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/tributary.v1.serde.rs"));
}

/// Shows which form a secret takes and, for `{env: VAR}`, the variable's name; never an inline value.
impl std::fmt::Debug for v1::Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret").field("value", &self.value).finish()
    }
}

impl std::fmt::Debug for v1::secret::Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            v1::secret::Value::Inline(_) => f.write_str("Inline(***)"),
            v1::secret::Value::Env(var) => f.debug_tuple("Env").field(var).finish(),
        }
    }
}

/// The Kinesis Producer Library's aggregated-record format (`proto/kpl/`).
pub mod kpl {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/kpl.rs"));
}

pub use bytes;
pub use pbjson_types;
pub use prost;

#[cfg(test)]
mod tests {
    use super::v1::{BasicAuth, CommitRequest, Secret, secret};

    #[test]
    fn secrets_never_print() {
        let inline = Secret { value: Some(secret::Value::Inline("hunter2-inline".into())) };
        let request = CommitRequest {
            sources: Vec::new(),
            message: format!("{:?}", BasicAuth { username: "u".into(), password: Some(inline.clone()) }),
        };
        for printed in [format!("{inline:?}"), format!("{inline:#?}"), format!("{request:?}")] {
            assert!(!printed.contains("hunter2"), "{printed}");
            assert!(printed.contains("Inline(***)"), "{printed}");
        }
        let env = Secret { value: Some(secret::Value::Env("TRIBUTARY_SECRET_X".into())) };
        assert_eq!(format!("{env:?}"), "Secret { value: Some(Env(\"TRIBUTARY_SECRET_X\")) }");
    }
}
