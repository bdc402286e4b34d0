//! [`DescribeStreamSummary`](https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeStreamSummary.html):
//! a stream's status, retention and age without listing its shards.

use super::{Catalog, CatalogError, Failure};

/// What a catalog shows of a stream besides its shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// The stream's name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// `ACTIVE`, `CREATING`, `UPDATING` or `DELETING`.
    pub status: String,
    /// How long records stay readable, in hours.
    pub retention_hours: i32,
    /// When the stream was created.
    pub created: Option<std::time::SystemTime>,
}

impl Catalog {
    /// Describes the stream named `name`.
    pub async fn describe_summary(&self, name: &str) -> Result<StreamSummary, CatalogError> {
        let answer = self
            .retrying("DescribeStreamSummary", name, || {
                let request = self.client.describe_stream_summary().stream_name(name);
                async move { request.send().await.map_err(|e| Failure::of(&e, "DescribeStreamSummary", name)) }
            })
            .await?;
        let Some(summary) = answer.stream_description_summary() else {
            return Err(CatalogError {
                operation: "DescribeStreamSummary",
                target: name.to_owned(),
                kind: super::CatalogErrorKind::Refused,
                detail: "the answer has no StreamDescriptionSummary".to_owned(),
            });
        };
        Ok(StreamSummary {
            name: summary.stream_name().to_owned(),
            arn: summary.stream_arn().to_owned(),
            status: summary.stream_status().as_str().to_owned(),
            retention_hours: summary.retention_period_hours(),
            created: std::time::SystemTime::try_from(*summary.stream_creation_timestamp()).ok(),
        })
    }
}
