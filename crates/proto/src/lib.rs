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

/// The Kinesis Producer Library's aggregated-record format (`proto/kpl/`).
pub mod kpl {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/kpl.rs"));
}

pub use bytes;
pub use pbjson_types;
pub use prost;
