//! [`ListStreams`](https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListStreams.html):
//! every stream of the account and region, page by page.

use super::{Catalog, CatalogError, Failure};

/// A stream as `ListStreams` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedStream {
    /// The stream's name.
    pub name: String,
    /// Its ARN, when the answer carried `StreamSummaries` (current Kinesis does).
    pub arn: Option<String>,
}

impl Catalog {
    /// Every stream, in the order Kinesis lists them. Later pages follow
    /// `NextToken`, or `ExclusiveStartStreamName` from servers that only say
    /// `HasMoreStreams`.
    pub async fn list_streams(&self) -> Result<Vec<ListedStream>, CatalogError> {
        let mut streams: Vec<ListedStream> = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let after = streams.last().map(|stream| stream.name.clone());
            let page = self
                .retrying("ListStreams", "the account", || {
                    let mut request = self.client.list_streams().limit(self.config.streams_page_size);
                    request = match (&next_token, &after) {
                        (Some(token), _) => request.next_token(token),
                        (None, Some(name)) => request.exclusive_start_stream_name(name),
                        (None, None) => request,
                    };
                    async move { request.send().await.map_err(|e| Failure::of(&e, "ListStreams", "the account")) }
                })
                .await?;
            let before = streams.len();
            if page.stream_summaries().is_empty() {
                streams.extend(page.stream_names().iter().map(|name| ListedStream { name: name.clone(), arn: None }));
            } else {
                streams.extend(page.stream_summaries().iter().map(|summary| ListedStream {
                    name: summary.stream_name().to_owned(),
                    arn: Some(summary.stream_arn().to_owned()),
                }));
            }
            let more = page.has_more_streams() && streams.len() > before;
            next_token = page.next_token().filter(|token| !token.is_empty()).map(str::to_owned);
            if !more {
                return Ok(streams);
            }
        }
    }
}
