//! `metadata test-connection`: the steps OpenMetadata's test connection runs
//! for Kinesis, each reported on its own.

use std::time::Duration;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use tributary_reader::catalog::{Catalog, CatalogConfig};
use tributary_source::{AwsSettings, ClientFactory};

use crate::config::WorkflowConfig;

/// One step and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStep {
    /// The step's name (`ListStreams`, ...).
    pub name: &'static str,
    /// `None`: skipped (nothing to try it on); `Some(Ok)`: passed, with a detail.
    pub outcome: Option<Result<String, String>>,
}

/// Runs every step; a step after a failed one that needs it is skipped.
pub async fn test_connection(config: &WorkflowConfig, timeout: Duration) -> Vec<ConnectionStep> {
    let mut steps = Vec::new();
    let region = config.aws.aws_region.clone().unwrap_or_default();
    let factory = ClientFactory::load(config.aws.clone(), timeout).await;
    if let Some(role_arn) = &config.aws.assume_role_arn {
        // The identity before the role assumes it, as OpenMetadata's step does.
        let unassumed = AwsSettings { assume_role_arn: None, ..config.aws.clone() };
        let sts = ClientFactory::load(unassumed, timeout).await.sts(&region, None);
        // The base chain's own credentials assume the role, as OpenMetadata's does.
        let mut request = sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(config.aws.assume_role_session_name.clone().unwrap_or_default());
        if let Some(identity) = &config.aws.assume_role_source_identity {
            request = request.source_identity(identity);
        }
        let outcome = match request.send().await {
            Ok(_) => Ok(format!("assumed {role_arn}")),
            Err(error) => Err(describe(&error)),
        };
        let failed = outcome.is_err();
        steps.push(ConnectionStep { name: "AssumeRole", outcome: Some(outcome) });
        if failed {
            return skip_rest(
                steps,
                &["ListStreams", "DescribeStreamSummary", "ListShards", "GetShardIterator", "GetRecords"],
            );
        }
    }
    let client = factory.kinesis(&region, None);
    let catalog = Catalog::new(
        aws_sdk_kinesis::Client::from_conf(Catalog::client_config(client.config())),
        CatalogConfig { call_timeout: timeout, attempts: 2, ..CatalogConfig::default() },
    );
    let streams = match catalog.list_streams().await {
        Ok(streams) => streams,
        Err(error) => {
            steps.push(ConnectionStep { name: "ListStreams", outcome: Some(Err(error.to_string())) });
            return skip_rest(steps, &["DescribeStreamSummary", "ListShards", "GetShardIterator", "GetRecords"]);
        }
    };
    steps.push(ConnectionStep { name: "ListStreams", outcome: Some(Ok(format!("{} streams", streams.len()))) });
    let Some(stream) = streams.iter().find(|stream| config.filter.admits(&stream.name)).or(streams.first()) else {
        return skip_rest(steps, &["DescribeStreamSummary", "ListShards", "GetShardIterator", "GetRecords"]);
    };
    let summary = match catalog.describe_summary(&stream.name).await {
        Ok(summary) => summary,
        Err(error) => {
            steps.push(ConnectionStep { name: "DescribeStreamSummary", outcome: Some(Err(error.to_string())) });
            return skip_rest(steps, &["ListShards", "GetShardIterator", "GetRecords"]);
        }
    };
    steps.push(ConnectionStep {
        name: "DescribeStreamSummary",
        outcome: Some(Ok(format!("stream `{}`", summary.name))),
    });
    let shards = match catalog.list_shards(&summary.arn).await {
        Ok(shards) => shards,
        Err(error) => {
            steps.push(ConnectionStep { name: "ListShards", outcome: Some(Err(error.to_string())) });
            return skip_rest(steps, &["GetShardIterator", "GetRecords"]);
        }
    };
    steps.push(ConnectionStep { name: "ListShards", outcome: Some(Ok(format!("{} shards", shards.len()))) });
    let Some(shard) = shards.iter().find(|shard| shard.open).or(shards.first()) else {
        return skip_rest(steps, &["GetShardIterator", "GetRecords"]);
    };
    let iterator = catalog
        .client()
        .get_shard_iterator()
        .stream_arn(&summary.arn)
        .shard_id(&shard.shard_id)
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await;
    let iterator = match iterator {
        Ok(answer) => answer.shard_iterator,
        Err(error) => {
            steps.push(ConnectionStep { name: "GetShardIterator", outcome: Some(Err(describe(&error))) });
            return skip_rest(steps, &["GetRecords"]);
        }
    };
    steps.push(ConnectionStep { name: "GetShardIterator", outcome: Some(Ok(format!("shard {}", shard.shard_id))) });
    let Some(iterator) = iterator else {
        steps.push(ConnectionStep {
            name: "GetRecords",
            outcome: Some(Err("GetShardIterator answered without an iterator".into())),
        });
        return steps;
    };
    let outcome =
        match catalog.client().get_records().shard_iterator(iterator).stream_arn(&summary.arn).limit(1).send().await {
            Ok(_) => Ok("read".to_owned()),
            Err(error) => Err(describe(&error)),
        };
    steps.push(ConnectionStep { name: "GetRecords", outcome: Some(outcome) });
    steps
}

fn skip_rest(mut steps: Vec<ConnectionStep>, names: &[&'static str]) -> Vec<ConnectionStep> {
    steps.extend(names.iter().map(|name| ConnectionStep { name, outcome: None }));
    steps
}

/// An AWS failure in one line: status, code and message (from an XML body when
/// the SDK could not read one), or the connection's own error.
pub(crate) fn describe<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let Some(response) = error.raw_response() else {
        return format!("{}", DisplayErrorContext(error));
    };
    let body = response.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
    let between =
        |open: &str, close: &str| body.split(open).nth(1).and_then(|rest| rest.split(close).next()).map(str::to_owned);
    let code = error.code().map(str::to_owned).or_else(|| between("<Code>", "</Code>")).unwrap_or_default();
    let message = error.message().map(str::to_owned).or_else(|| between("<Message>", "</Message>")).unwrap_or_default();
    let line = format!("HTTP {}: {code}: {message}", response.status().as_u16());
    line.chars().take(500).collect()
}
