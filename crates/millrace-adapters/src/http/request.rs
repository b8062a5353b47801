//! One request with a per-attempt timeout and retries of transient failures; the building
//! block of both the paginated source and the fetch stage.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Client, Request, Url};

use super::{HttpError, HttpOptions};
use crate::http::error::snippet;

/// A successful (2xx) response, read whole.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Sends `request`, retrying transient failures per `options`.
///
/// A request whose body cannot be cloned (a streaming body) is tried once.
pub(crate) async fn send(
    client: &Client,
    request: Request,
    options: &HttpOptions,
) -> Result<Fetched, HttpError> {
    let (mut delays, max_total_delay) = options.backoff_delays();
    let mut waited = Duration::ZERO;
    let mut next = Some(request);
    loop {
        let Some(request) = next.take() else {
            unreachable!("a request is prepared before every attempt")
        };
        let retry = request.try_clone();
        let err = match attempt(client, request, options).await {
            Ok(fetched) => return Ok(fetched),
            Err(err) => err,
        };
        let delay = delays
            .next()
            .filter(|d| max_total_delay.is_none_or(|limit| waited + *d <= limit));
        match (err.is_transient(), retry, delay) {
            (true, Some(retry), Some(delay)) => {
                waited += delay;
                options.notify_retry(&err, delay);
                tokio::time::sleep(delay).await;
                next = Some(retry);
            }
            _ => return Err(err),
        }
    }
}

/// One attempt, bounded by the per-attempt timeout from sending to the last body byte.
async fn attempt(
    client: &Client,
    request: Request,
    options: &HttpOptions,
) -> Result<Fetched, HttpError> {
    let url = request.url().clone();
    let timeout = options.get_timeout();
    let exchange = async {
        let response = client.execute(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_elapsed) => Err(HttpError::Timeout {
            url,
            after: timeout,
        }),
        Ok(Err(e)) => Err(HttpError::from_reqwest(&url, e, timeout)),
        Ok(Ok((status, _, body))) if !status.is_success() => Err(HttpError::Status {
            url,
            status,
            body_snippet: snippet(&body),
        }),
        Ok(Ok((_, headers, body))) => Ok(Fetched { url, headers, body }),
    }
}
