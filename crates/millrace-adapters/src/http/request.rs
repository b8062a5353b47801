//! One request with a per-attempt timeout and retries of transient failures; the building
//! block of both the paginated source and the fetch stage.

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

/// Sends `request`, retrying transient failures per `options` on the core per-attempt retry
/// (counted in the options' retry stats); every attempt takes the options' throttle (rate
/// permit and in-flight slot).
///
/// A request whose body cannot be cloned (a streaming body) is tried once.
pub(crate) async fn send(
    client: &Client,
    request: Request,
    options: &HttpOptions,
) -> Result<Fetched, HttpError> {
    let throttle = options.get_throttle();
    if request.try_clone().is_none() {
        return throttle.run(attempt(client, request, options)).await;
    }
    options
        .policy()
        .retry_notify(
            || {
                let request = request
                    .try_clone()
                    .expect("a request that cloned once clones again");
                throttle.run(attempt(client, request, options))
            },
            |err, delay| options.notify_retry(err, delay),
        )
        .await
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
