//! `serve --openmetadata-status`: every source's health as its pipeline's
//! status in OpenMetadata, published by the server on a fixed interval, so the
//! catalog shows whether a dataset is fresh between metadata workflow runs.

use std::time::{Duration, SystemTime};

use tributary_sink::openmetadata::{PipelineRun, Publisher, RestTransport, RetryPolicy, SourcePipeline, pipeline_run};

use crate::AppState;

/// Where and how often statuses go.
#[derive(Clone)]
pub struct StatusPublishing {
    /// OpenMetadata's API root (`http://host:8585/api`).
    pub host_port: String,
    /// The ingestion bot's JWT.
    pub jwt_token: Option<String>,
    /// Headers sent with every request.
    pub extra_headers: Vec<(String, String)>,
    /// Time between publications (the first is at start-up).
    pub every: Duration,
}

impl std::fmt::Debug for StatusPublishing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusPublishing")
            .field("host_port", &self.host_port)
            .field("jwt_token", &self.jwt_token.as_ref().map(|_| "***"))
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// Publishes every `config.every` until aborted; `api_base` (the server's own
/// address) makes each task's log link.
pub(crate) async fn publish_forever(state: AppState, config: StatusPublishing, api_base: String) {
    let mut ticks = tokio::time::interval(config.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (state, config, api_base) = (state.clone(), config.clone(), api_base.clone());
        match tokio::task::spawn_blocking(move || publish_once(&state, &config, &api_base)).await {
            Ok(Ok((published, failed))) => {
                tracing::debug!(published, "pipeline statuses published to OpenMetadata");
                for (source, error) in failed {
                    tracing::warn!(source, %error, "publishing the pipeline status to OpenMetadata failed");
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "publishing pipeline statuses to OpenMetadata failed"),
            Err(error) => tracing::warn!(%error, "publishing pipeline statuses stopped"),
        }
    }
}

/// One round: how many sources' statuses were published, and which failed.
fn publish_once(
    state: &AppState,
    config: &StatusPublishing,
    api_base: &str,
) -> Result<(usize, Vec<(String, String)>), String> {
    let now = SystemTime::now();
    let mut runs: Vec<(SourcePipeline, PipelineRun)> = Vec::new();
    for summary in state.store.sources().map_err(|error| error.to_string())? {
        if summary.deleted_at.is_some() {
            continue;
        }
        let name = summary.name.clone();
        let status = match crate::api::source_status_now(state.clone(), name.clone()) {
            Ok(axum::Json(status)) => status,
            Err(error) => {
                tracing::warn!(source = name, error = ?error, "reading the source's status failed");
                continue;
            }
        };
        let link = format!("{api_base}/api/v1/sources/{name}/status");
        let Some(run) = pipeline_run(&status, Some(&link), now) else { continue };
        let stream = summary.current.stream_arn.rsplit('/').next().unwrap_or_default().to_owned();
        let dataset = status.pointer("/dataset/name").and_then(|d| d.as_str()).unwrap_or(&name).to_owned();
        runs.push((SourcePipeline { source: name, stream, dataset }, run));
    }
    if runs.is_empty() {
        return Ok((0, Vec::new()));
    }
    let transport = RestTransport::new(&config.host_port, config.jwt_token.clone(), RetryPolicy::default())
        .with_headers(config.extra_headers.clone());
    let report = Publisher::new(transport).publish_runs(&runs).map_err(|error| error.to_string())?;
    Ok((report.published.len(), report.failed))
}
