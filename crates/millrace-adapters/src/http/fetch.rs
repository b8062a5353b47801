//! [`fetch_json`]: a stage that turns each upstream item into an HTTP request, at most `n` in
//! flight, and yields the responses decoded as JSON, in input order.

use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use futures_util::StreamExt;
use futures_util::stream::{Fuse, FuturesOrdered};
use millrace_core::{ConfigError, Stage};
use reqwest::{Client, RequestBuilder};
use serde::de::DeserializeOwned;
use tokio_util::task::AbortOnDropHandle;

use super::request;
use super::{HttpError, HttpOptions};

/// A stage that sends one request per upstream item, at most `concurrency` at a time, and
/// yields each response body decoded as JSON into `T`, **in input order**.
///
/// `concurrency` bounds the requests outstanding: in flight, or finished and waiting for an
/// earlier one to be yielded (so a slow request at the head holds back new ones, and memory
/// stays bounded).
///
/// `make_request(&client, item)` builds the request for an item (e.g.
/// `|c, id: u64| c.get(format!("{base}/items/{id}"))`); it runs on the consumer's task, when
/// a slot is free. Each request runs on its own tokio task with the per-attempt timeout and the
/// retries of [`HttpOptions`] (see [`FetchStage::options`]): transient failures (5xx, 408, 429,
/// timeouts, broken connections) are retried, anything else (a 404, a body that is not a `T`)
/// is yielded as an `Err` item at once and the stream goes on with the next item.
///
/// Apply it with [`PipelineExt::wrap`](millrace_core::PipelineExt::wrap), or [`Stage::wrap`].
///
/// # Panics
///
/// `fetch_json(client, 0, f)` panics with the [`ConfigError`] message
/// ``"`fetch_json`: `concurrency` must be at least 1, got 0; pass a non-zero value"``
/// ([`FetchStage::try_new`] returns it instead). Polling the stage outside a tokio runtime
/// panics; a panic in a request task (e.g. in a `Deserialize` impl) is re-raised on the
/// consumer.
///
/// # Examples
///
/// ```
/// use millrace::prelude::*;
/// use millrace::adapters::http::testserver::{Book, TestServer};
/// use millrace::adapters::http::{fetch_json, reqwest};
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = TestServer::builder().items(10).start().await.unwrap();
/// let base = server.base_url();
///
/// let lookups = fetch_json::<Book, _, _>(reqwest::Client::new(), 4, move |client, id: u64| {
///     client.get(format!("{base}/items/{id}"))
/// });
/// let out: Vec<_> = stream::iter([3u64, 1, 42]).wrap(lookups).collect().await;
///
/// assert_eq!(out[0].as_ref().unwrap().id, 3);
/// assert_eq!(out[1].as_ref().unwrap().id, 1);
/// let err = out[2].as_ref().unwrap_err();
/// assert_eq!(err.status(), Some(reqwest::StatusCode::NOT_FOUND)); // reported, not retried
/// assert_eq!(server.stats().item_requests, 3);
/// # }
/// ```
pub fn fetch_json<T, I, F>(client: Client, concurrency: usize, make_request: F) -> FetchStage<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: FnMut(&Client, I) -> RequestBuilder,
{
    match FetchStage::try_new(client, concurrency, make_request) {
        Ok(stage) => stage,
        Err(err) => panic!("{err}"),
    }
}

/// The configured [`fetch_json`] stage; wraps an upstream into a [`FetchJson`] stream.
#[must_use = "a stage does nothing until it wraps a stream"]
pub struct FetchStage<T, F> {
    client: Client,
    concurrency: NonZeroUsize,
    options: HttpOptions,
    make_request: F,
    _item: PhantomData<fn() -> T>,
}

impl<T, F> FetchStage<T, F>
where
    T: DeserializeOwned + Send + 'static,
{
    /// Like [`fetch_json`], but returns the error for a `concurrency` of 0 instead of panicking.
    ///
    /// ```
    /// use millrace::adapters::http::{reqwest, FetchStage};
    ///
    /// let err = FetchStage::<u32, _>::try_new(reqwest::Client::new(), 0, |c, url: String| c.get(url))
    ///     .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`fetch_json`: `concurrency` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn try_new<I>(
        client: Client,
        concurrency: usize,
        make_request: F,
    ) -> Result<Self, ConfigError>
    where
        F: FnMut(&Client, I) -> RequestBuilder,
    {
        let concurrency = NonZeroUsize::new(concurrency)
            .ok_or_else(|| ConfigError::zero("fetch_json", "concurrency"))?;
        Ok(FetchStage {
            client,
            concurrency,
            options: HttpOptions::default(),
            make_request,
            _item: PhantomData,
        })
    }

    /// Replaces the request options (timeout, retries, backoff).
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::adapters::http::{fetch_json, reqwest, HttpOptions};
    ///
    /// let stage = fetch_json::<u32, _, _>(reqwest::Client::new(), 8, |c, url: String| c.get(url))
    ///     .options(HttpOptions::new().retries(5).timeout(Duration::from_secs(1)));
    /// # drop(stage);
    /// ```
    pub fn options(mut self, options: HttpOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets only the per-request timeout (see [`HttpOptions::timeout`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::adapters::http::{fetch_json, reqwest};
    ///
    /// let stage = fetch_json::<u32, _, _>(reqwest::Client::new(), 8, |c, url: String| c.get(url))
    ///     .timeout(Duration::from_millis(300));
    /// # drop(stage);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options = self.options.timeout(timeout);
        self
    }
}

impl<S, T, F> Stage<S> for FetchStage<T, F>
where
    S: Stream,
    F: FnMut(&Client, S::Item) -> RequestBuilder,
    T: DeserializeOwned + Send + 'static,
{
    type Output = FetchJson<S, T, F>;

    fn wrap(self, upstream: S) -> FetchJson<S, T, F> {
        FetchJson {
            upstream: upstream.fuse(),
            in_flight: FuturesOrdered::new(),
            client: self.client,
            limit: self.concurrency.get(),
            options: Arc::new(self.options),
            make_request: self.make_request,
        }
    }
}

impl<T, F> fmt::Debug for FetchStage<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchStage")
            .field("concurrency", &self.concurrency)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// Stream for the [`fetch_json`] stage.
    ///
    /// Requests run on tokio tasks, so they make progress (and their timeouts are honest) while
    /// the consumer is busy; dropping the stream aborts every request in flight.
    #[must_use = "streams do nothing unless polled"]
    pub struct FetchJson<S, T, F> {
        #[pin]
        upstream: Fuse<S>,
        // One task per request; the handle aborts the task when dropped.
        in_flight: FuturesOrdered<AbortOnDropHandle<Result<T, HttpError>>>,
        client: Client,
        limit: usize,
        options: Arc<HttpOptions>,
        make_request: F,
    }
}

impl<S, T, F> FetchJson<S, T, F> {
    /// The upstream stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::adapters::http::{fetch_json, reqwest};
    /// use futures::stream;
    ///
    /// let s = stream::iter(["http://127.0.0.1:9/a".to_owned()])
    ///     .wrap(fetch_json::<u32, _, _>(reqwest::Client::new(), 2, |c, url: String| c.get(url)));
    /// assert_eq!(s.get_ref().size_hint(), (1, Some(1)));
    /// ```
    pub fn get_ref(&self) -> &S {
        self.upstream.get_ref()
    }

    /// The upstream stream, mutably. Taking items from it directly skips them here.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::adapters::http::{fetch_json, reqwest};
    /// use futures::stream;
    ///
    /// let mut s = stream::iter(["http://127.0.0.1:9/a".to_owned()])
    ///     .wrap(fetch_json::<u32, _, _>(reqwest::Client::new(), 2, |c, url: String| c.get(url)));
    /// let _upstream = s.get_mut();
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        self.upstream.get_mut()
    }

    /// The number of requests in flight or finished but not yet yielded.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::adapters::http::{fetch_json, reqwest};
    /// use futures::stream;
    ///
    /// let s = stream::iter(["http://127.0.0.1:9/a".to_owned()])
    ///     .wrap(fetch_json::<u32, _, _>(reqwest::Client::new(), 2, |c, url: String| c.get(url)));
    /// assert_eq!(s.in_flight(), 0); // nothing starts before the first poll
    /// ```
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The upstream; requests in flight are aborted.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::adapters::http::{fetch_json, reqwest};
    /// use futures::stream;
    ///
    /// let s = stream::iter(["http://127.0.0.1:9/a".to_owned()])
    ///     .wrap(fetch_json::<u32, _, _>(reqwest::Client::new(), 2, |c, url: String| c.get(url)));
    /// let upstream = s.into_inner();
    /// # drop(upstream);
    /// ```
    pub fn into_inner(self) -> S {
        self.upstream.into_inner()
    }
}

impl<S, T, F> Stream for FetchJson<S, T, F>
where
    S: Stream,
    F: FnMut(&Client, S::Item) -> RequestBuilder,
    T: DeserializeOwned + Send + 'static,
{
    type Item = Result<T, HttpError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        // Fill the free slots first, so requests start as early as possible.
        while this.in_flight.len() < *this.limit {
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let builder = (this.make_request)(this.client, item);
                    let task =
                        tokio::spawn(run(this.client.clone(), builder, Arc::clone(this.options)));
                    this.in_flight.push_back(AbortOnDropHandle::new(task));
                }
                // Upstream done, or pending with our waker registered.
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        match this.in_flight.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(result))) => Poll::Ready(Some(result)),
            Poll::Ready(Some(Err(join_error))) => match join_error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(join_error) => panic!(
                    "a fetch_json request task was cancelled ({join_error}); the tokio runtime \
                     is shutting down while the stream is still polled"
                ),
            },
            // Nothing in flight: done if the upstream is, else it registered our waker.
            Poll::Ready(None) if this.upstream.is_terminated() => Poll::Ready(None),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lower, upper) = self.upstream.size_hint();
        let n = self.in_flight.len();
        (
            lower.saturating_add(n),
            upper.and_then(|u| u.checked_add(n)),
        )
    }
}

impl<S, T, F> FusedStream for FetchJson<S, T, F>
where
    S: Stream,
    F: FnMut(&Client, S::Item) -> RequestBuilder,
    T: DeserializeOwned + Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.upstream.is_terminated() && self.in_flight.is_empty()
    }
}

impl<S: fmt::Debug, T, F> fmt::Debug for FetchJson<S, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchJson")
            .field("upstream", &self.upstream)
            .field("in_flight", &self.in_flight.len())
            .field("limit", &self.limit)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One request: build, send with retries, decode.
async fn run<T: DeserializeOwned>(
    client: Client,
    builder: RequestBuilder,
    options: Arc<HttpOptions>,
) -> Result<T, HttpError> {
    request_json(&client, builder, &options).await
}

/// Sends one request with the timeout and retries of `options` and decodes the body as JSON:
/// the building block of [`fetch_json`], for use inside your own stages (e.g. the core
/// `map_concurrent`, or after a `rate_limit`).
///
/// # Errors
///
/// The [`HttpError`] of the last attempt: transient failures are retried first, permanent ones
/// (a 4xx, a body that is not a `T`) are returned at once.
///
/// # Examples
///
/// ```
/// use millrace::adapters::http::testserver::{Book, Fault, Faults, TestServer};
/// use millrace::adapters::http::{reqwest, request_json, HttpOptions};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let faults = Faults::none().script("/items/5", [Fault::Drop]);
/// let server = TestServer::builder().faults(faults).start().await.unwrap();
/// let client = reqwest::Client::new();
/// let options = HttpOptions::new().backoff(Duration::from_millis(1), Duration::from_millis(5));
///
/// let book: Book = request_json(&client, client.get(server.url("/items/5")), &options).await.unwrap();
/// assert_eq!(book, Book::new(5)); // the dropped connection was retried
/// # }
/// ```
pub async fn request_json<T: DeserializeOwned>(
    client: &Client,
    request: RequestBuilder,
    options: &HttpOptions,
) -> Result<T, HttpError> {
    let request = request
        .build()
        .map_err(|source| HttpError::Build { source })?;
    let fetched = request::send(client, request, options).await?;
    serde_json::from_slice(&fetched.body)
        .map_err(|e| HttpError::decode(&fetched.url, &fetched.body, e))
}
