//! [`fetch_json`]: a stage that turns each upstream item into an HTTP request, at most `n` in
//! flight, and yields the responses decoded as JSON, in input order.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use millrace_core::metrics::EventCounter;
use millrace_core::metrics::Observable;
use millrace_core::wrappers::MapConcurrent;
use millrace_core::{ConfigError, Stage, StageMetrics};
use reqwest::{Client, RequestBuilder};
use serde::de::DeserializeOwned;

use super::request;
use super::{HttpError, HttpOptions};

/// A stage that sends one request per upstream item, at most `concurrency` at a time, and
/// yields each response body decoded as JSON into `T`, **in input order**.
///
/// Built on the core `map_concurrent` (spawned mode): at most `concurrency` requests in flight,
/// each on its own tokio task so it progresses (and its timeout stays honest) while the
/// consumer is busy, plus an output buffer of finished responses waiting for their turn
/// (default `concurrency`, see [`FetchStage::output_buffer`]). [`FetchStage::unordered`]
/// yields responses as they complete instead.
///
/// `make_request(&client, item)` builds the request for an item (e.g.
/// `|c, id: u64| c.get(format!("{base}/items/{id}"))`); it runs on the consumer's task, when
/// a slot is free. Each request runs on its own tokio task with the per-attempt timeout and the
/// retries of [`HttpOptions`] (see [`FetchStage::options`]): transient failures (5xx, 408, 429,
/// timeouts, broken connections) are retried, anything else (a 404, a body that is not a `T`)
/// is yielded as an `Err` item at once and the stream goes on with the next item. A request
/// keeps its place among the `concurrency` while it backs off; the options'
/// [`rate_limiter`](HttpOptions::rate_limiter) and [`max_in_flight`](HttpOptions::max_in_flight)
/// bound every attempt, retries included (see the [module docs](super), "Limits that hold on
/// every attempt"). Metered with `.metered(..).with_events()` (or in `pipeline!`), the stage
/// reports the retries.
///
/// Apply it with [`PipelineExt::wrap`](millrace_core::PipelineExt::wrap), or [`Stage::wrap`].
///
/// # Panics
///
/// `fetch_json(client, 0, f)` panics with the [`ConfigError`] message
/// ``"`fetch_json`: `concurrency` must be at least 1, got 0; pass a non-zero value"``
/// ([`FetchStage::checked_new`] returns it instead). Polling the stage outside a tokio runtime
/// panics; a panic in a request task (e.g. in a `Deserialize` impl) is re-raised on the
/// consumer.
///
/// # Examples
///
/// ```
/// use millrace::prelude::*;
/// use millrace_test_support::{Book, TestServer};
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
    F: FnMut(&Client, I) -> RequestBuilder + Send + 'static,
{
    match FetchStage::checked_new(client, concurrency, make_request) {
        Ok(stage) => stage,
        Err(err) => panic!("{err}"),
    }
}

/// [`fetch_json`] with one type parameter: `fetch_json_as::<T>(client, concurrency)` names the
/// type the responses decode into, and [`.request(make_request)`](FetchJsonAs::request) gives
/// the closure that builds each request (the item type comes from the closure, as in
/// [`fetch_json`]). The same stage as `fetch_json::<T, _, _>(client, concurrency, make_request)`.
///
/// # Panics
///
/// `fetch_json_as::<T>(client, 0)` panics with the [`ConfigError`] message
/// ``"`fetch_json`: `concurrency` must be at least 1, got 0; pass a non-zero value"``
/// ([`FetchStage::checked_new`] returns it instead).
///
/// # Examples
///
/// ```
/// use millrace::prelude::*;
/// use millrace_test_support::{Book, TestServer};
/// use millrace::adapters::http::{fetch_json_as, reqwest};
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = TestServer::builder().items(10).start().await.unwrap();
/// let base = server.base_url();
///
/// let lookups = fetch_json_as::<Book>(reqwest::Client::new(), 4)
///     .request(move |client, id: u64| client.get(format!("{base}/items/{id}")));
/// let out: Vec<_> = stream::iter([3u64, 1]).wrap(lookups).collect().await;
/// assert_eq!(out[0].as_ref().unwrap().id, 3);
/// assert_eq!(out[1].as_ref().unwrap().id, 1);
/// # }
/// ```
pub fn fetch_json_as<T>(client: Client, concurrency: usize) -> FetchJsonAs<T>
where
    T: DeserializeOwned + Send + 'static,
{
    match NonZeroUsize::new(concurrency) {
        Some(concurrency) => FetchJsonAs {
            client,
            concurrency,
            _item: PhantomData,
        },
        None => panic!("{}", ConfigError::zero("fetch_json", "concurrency")),
    }
}

/// The first half of [`fetch_json_as`]: the client, the concurrency and the decoded type,
/// waiting for the closure that builds each request.
#[must_use = "give it the request closure with `.request(..)`"]
pub struct FetchJsonAs<T> {
    client: Client,
    concurrency: NonZeroUsize,
    _item: PhantomData<fn() -> T>,
}

impl<T> FetchJsonAs<T>
where
    T: DeserializeOwned + Send + 'static,
{
    /// The stage: `make_request(&client, item)` builds the request for each item (see
    /// [`fetch_json`]); configure it further with [`FetchStage`]'s methods.
    ///
    /// ```
    /// use millrace::adapters::http::{fetch_json_as, reqwest};
    ///
    /// let stage = fetch_json_as::<u32>(reqwest::Client::new(), 8)
    ///     .request(|c, url: String| c.get(url))
    ///     .unordered();
    /// # drop(stage);
    /// ```
    pub fn request<I, F>(self, make_request: F) -> FetchStage<T, F>
    where
        F: FnMut(&Client, I) -> RequestBuilder + Send + 'static,
    {
        FetchStage {
            client: self.client,
            concurrency: self.concurrency,
            output_buffer: None,
            ordered: true,
            options: HttpOptions::default(),
            make_request,
            _item: PhantomData,
        }
    }
}

impl<T> fmt::Debug for FetchJsonAs<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchJsonAs")
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// The configured [`fetch_json`] stage; wraps an upstream into a [`FetchJson`] stream.
#[must_use = "a stage does nothing until it wraps a stream"]
pub struct FetchStage<T, F> {
    client: Client,
    concurrency: NonZeroUsize,
    output_buffer: Option<usize>,
    ordered: bool,
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
    /// let err = FetchStage::<u32, _>::checked_new(reqwest::Client::new(), 0, |c, url: String| c.get(url))
    ///     .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`fetch_json`: `concurrency` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn checked_new<I>(
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
            output_buffer: None,
            ordered: true,
            options: HttpOptions::default(),
            make_request,
            _item: PhantomData,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new<I>(
        client: Client,
        concurrency: usize,
        make_request: F,
    ) -> Result<Self, ConfigError>
    where
        F: FnMut(&Client, I) -> RequestBuilder,
    {
        Self::checked_new(client, concurrency, make_request)
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

    /// How many finished responses may wait for an earlier, slower one beyond the
    /// `concurrency` in flight (default: `concurrency`; 0 = at most `concurrency` outstanding
    /// in all). See the core `MapConcurrent::with_output_buffer`.
    ///
    /// ```
    /// use millrace::adapters::http::{fetch_json, reqwest};
    ///
    /// let stage = fetch_json::<u32, _, _>(reqwest::Client::new(), 8, |c, url: String| c.get(url))
    ///     .output_buffer(64);
    /// # drop(stage);
    /// ```
    pub fn output_buffer(mut self, m: usize) -> Self {
        self.output_buffer = Some(m);
        self
    }

    /// Yields responses in the order they complete rather than in input order (a slow request
    /// no longer holds back the ones after it).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace_test_support::{Book, Fault, Faults, TestServer};
    /// use millrace::adapters::http::{fetch_json, reqwest};
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let slow = Faults::none().script("/items/0", [Fault::Delay(Duration::from_millis(200))]);
    /// let server = TestServer::builder().faults(slow).start().await.unwrap();
    /// let base = server.base_url();
    /// let stage = fetch_json::<Book, _, _>(reqwest::Client::new(), 4, move |c, id: u64| {
    ///     c.get(format!("{base}/items/{id}"))
    /// })
    /// .unordered();
    /// let ids: Vec<u64> = stream::iter([0u64, 1, 2]).wrap(stage).map(|b| b.unwrap().id).collect().await;
    /// assert_eq!(ids.last(), Some(&0)); // the slow one comes last
    /// # }
    /// ```
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }
}

impl<S, T, F> Stage<S> for FetchStage<T, F>
where
    S: Stream,
    F: FnMut(&Client, S::Item) -> RequestBuilder + Send + 'static,
    T: DeserializeOwned + Send + 'static,
{
    type Output = FetchJson<S, T>;

    fn wrap(self, upstream: S) -> FetchJson<S, T> {
        let FetchStage {
            client,
            concurrency,
            output_buffer,
            ordered,
            options,
            mut make_request,
            _item,
        } = self;
        let stats = options.retry_stats();
        let options = Arc::new(options);
        // Boxed once per stage so that `FetchJson` can be named; the request futures are
        // boxed once per request (next to a request's own allocations, noise).
        let start: StartRequest<S::Item, T> = Box::new(move |item| -> RequestFuture<T> {
            let builder = make_request(&client, item);
            Box::pin(run(client.clone(), builder, Arc::clone(&options)))
        });
        let limit = concurrency.get();
        let inner = if ordered {
            MapConcurrent::new(upstream, limit, start)
        } else {
            MapConcurrent::new_unordered(upstream, limit, start)
        };
        let inner = match output_buffer {
            Some(m) => inner.with_output_buffer(m),
            None => inner,
        };
        FetchJson { inner, stats }
    }
}

impl<T, F> fmt::Debug for FetchStage<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchStage")
            .field("concurrency", &self.concurrency)
            .field("output_buffer", &self.output_buffer)
            .field("ordered", &self.ordered)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One request in flight.
type RequestFuture<T> = Pin<Box<dyn Future<Output = Result<T, HttpError>> + Send>>;
/// Turns an upstream item into its request future.
type StartRequest<I, T> = Box<dyn FnMut(I) -> RequestFuture<T> + Send>;

pin_project_lite::pin_project! {
    /// Stream for the [`fetch_json`] stage.
    ///
    /// Requests run on tokio tasks (the core `MapConcurrent` underneath), so they make progress
    /// while the consumer is busy; dropping the stream aborts every request in flight.
    ///
    /// `get_ref`, `get_mut`, `get_pin_mut` and `into_inner` reach the upstream:
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::adapters::http::{fetch_json, reqwest};
    /// use futures::stream;
    ///
    /// let mut s = stream::iter(["http://127.0.0.1:9/a".to_owned()])
    ///     .wrap(fetch_json::<u32, _, _>(reqwest::Client::new(), 2, |c, url: String| c.get(url)));
    /// assert_eq!(s.get_ref().size_hint(), (1, Some(1)));
    /// assert_eq!(s.get_mut().size_hint(), (1, Some(1)));
    /// assert_eq!(s.into_inner().size_hint(), (1, Some(1)));
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct FetchJson<S, T>
    where
        S: Stream,
    {
        #[pin]
        inner: MapConcurrent<S, StartRequest<S::Item, T>, RequestFuture<T>>,
        stats: EventCounter,
    }
}

/// Reports the retries of every request (the options' [`HttpOptions::retry_stats`]) and the
/// requests in flight and buffered, so that `.metered(..).with_events()` (or `pipeline!`)
/// shows them.
///
/// ```
/// use millrace::prelude::*;
/// use millrace_test_support::{Book, Fault, Faults, TestServer};
/// use millrace::adapters::http::{fetch_json, reqwest, HttpOptions};
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let faults = Faults::none().script("/items/1", [Fault::Status(503), Fault::Status(503)]);
/// let server = TestServer::builder().faults(faults).start().await.unwrap();
/// let base = server.base_url();
/// let s = stream::iter([0u64, 1, 2])
///     .wrap(
///         fetch_json::<Book, _, _>(reqwest::Client::new(), 2, move |c, id: u64| c.get(format!("{base}/items/{id}")))
///             .options(HttpOptions::new().backoff(Duration::from_millis(1), Duration::from_millis(5))),
///     )
///     .metered("fetch")
///     .with_events();
/// let m = s.metrics();
/// assert_eq!(s.filter(|r| std::future::ready(r.is_ok())).count().await, 3);
/// assert_eq!(m.snapshot().retries, Some(2));
/// # }
/// ```
impl<S: Stream, T> Observable for FetchJson<S, T> {
    fn observe_into(&self, stage: &StageMetrics) {
        stage.track_retries(&self.stats);
        self.inner.observe_into(stage);
    }
}

impl<S: Stream, T> FetchJson<S, T> {
    millrace_core::__private::delegate_access_inner!(via inner, S);
}

impl<S, T> Stream for FetchJson<S, T>
where
    S: Stream,
    T: Send + 'static,
{
    type Item = Result<T, HttpError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().inner.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S, T> FusedStream for FetchJson<S, T>
where
    S: Stream,
    T: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl<S, T> fmt::Debug for FetchJson<S, T>
where
    S: Stream + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchJson")
            .field("inner", &self.inner)
            .finish()
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
/// `map_concurrent`); every attempt takes the options' [`rate_limiter`](HttpOptions::rate_limiter) and
/// [`max_in_flight`](HttpOptions::max_in_flight) limits.
///
/// # Errors
///
/// The [`HttpError`] of the last attempt: transient failures are retried first, permanent ones
/// (a 4xx, a body that is not a `T`) are returned at once.
///
/// # Examples
///
/// ```
/// use millrace_test_support::{Book, Fault, Faults, TestServer};
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
