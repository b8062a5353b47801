//! [`paginated`]: a source that walks the pages of a JSON API and yields their items.

mod page;
mod positions;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use millrace_core::metrics::EventCounter;
use millrace_core::metrics::Observable;
use millrace_core::wrappers::Paginate;
use millrace_core::{Page, PagePosition, StageMetrics, paginate_from};
use reqwest::{Client, Url};
use serde::de::DeserializeOwned;

pub use self::page::PageStyle;
use self::page::{Fetcher, with_param};
pub use self::positions::PaginatedWithPositions;
use super::{HttpError, HttpOptions};

/// A source of every item of a paginated JSON API, page after page, decoded as `T`.
///
/// `url` is the first page (query parameters such as `per_page=100` are kept on every page);
/// `style` says how to find the next page. Each page is one request with the per-request
/// timeout and the retries of [`HttpOptions`] (set with [`Paginated::options`]): transient
/// failures (5xx, timeouts, broken connections) are retried, so the output is complete and
/// in order as long as each page eventually succeeds.
///
/// Items are decoded one by one: an item that does not match `T` becomes an
/// [`HttpError::Decode`] item and the stream goes on with the next one (skip it with the core
/// `on_error(Resume)` stage). A page that fails after its retries, or whose body does not have
/// the shape of the style, becomes one error item and ends the stream; its
/// [`position`](Paginated::position) then names that page, and [`paginated_from`] resumes there
/// (on the same service or, with the URL rebased, on a mirror).
///
/// Built on the core [`paginate`](millrace_core::paginate) with the page URL as the cursor.
/// Pages are fetched one at a time, when the consumer has taken every item of the previous
/// page, unless [`prefetch_next_page`](Paginated::prefetch_next_page) is set.
///
/// # Panics
///
/// Polling the stream outside a tokio runtime panics (reqwest needs one).
///
/// # Examples
///
/// ```
/// use millrace_test_support::{Book, TestServer};
/// use millrace::adapters::http::{paginated, reqwest, PageStyle};
/// use futures::TryStreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = TestServer::builder().items(25).start().await.unwrap();
/// let client = reqwest::Client::new();
///
/// let books: Vec<Book> =
///     paginated(client, server.url("/pages?per_page=10"), PageStyle::page("page", 1))
///         .try_collect()
///         .await
///         .unwrap();
/// assert_eq!(books.len(), 25);
/// assert_eq!(books[24].id, 24);
/// # }
/// ```
pub fn paginated<T>(client: Client, url: impl AsRef<str>, style: PageStyle) -> Paginated<T>
where
    T: DeserializeOwned + Send + 'static,
{
    let url = url.as_ref();
    let start = Url::parse(url)
        .map(|first| {
            PagePosition::start(match &style {
                PageStyle::Page { param, start } => with_param(&first, param, &start.to_string()),
                PageStyle::Cursor { .. } | PageStyle::LinkHeader => first,
            })
        })
        .map_err(|source| HttpError::InvalidUrl {
            url: url.to_owned(),
            source,
        });
    Paginated::configure(client, start, style)
}

/// Resumes a [`paginated`] source at `position` (from [`Paginated::position`]): fetches the
/// page at `position.cursor` (a full page URL), skips its first `position.offset` items and
/// goes on from there, so no item is lost or repeated as long as the service returns the same
/// page for the same URL.
///
/// # Examples
///
/// A source that failed for good on page 2 resumes there, on the fault-free mirror:
///
/// ```
/// use millrace_test_support::{Book, Fault, Faults, TestServer};
/// use millrace::adapters::http::{paginated, paginated_from, reqwest, HttpOptions, PageStyle};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let faults = Faults::none().script("/pages?per_page=3&page=2", [Fault::Status(503); 9]);
/// let server = TestServer::builder().items(7).faults(faults).start().await.unwrap();
/// let client = reqwest::Client::new();
/// let style = PageStyle::page("page", 1);
///
/// let mut primary = paginated::<Book>(client.clone(), server.url("/pages?per_page=3"), style.clone())
///     .options(HttpOptions::new().retries(0));
/// let mut ids = Vec::new();
/// while let Some(item) = primary.next().await {
///     match item {
///         Ok(book) => ids.push(book.id),
///         Err(err) => assert!(err.is_transient()), // page 2 answered 503
///     }
/// }
/// let mut position = primary.position().unwrap();
/// position.cursor.set_path("/mirror/pages");
/// let rest: Vec<_> = paginated_from::<Book>(client, position, style).collect().await;
/// ids.extend(rest.into_iter().map(|r| r.unwrap().id));
/// assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6]);
/// # }
/// ```
pub fn paginated_from<T>(
    client: Client,
    position: PagePosition<Url>,
    style: PageStyle,
) -> Paginated<T>
where
    T: DeserializeOwned + Send + 'static,
{
    Paginated::configure(client, Ok(position), style)
}

/// The future of one page fetch: `Page<item, next page URL>`.
// One allocation per page (the fetch is an `async` state machine whose type cannot be
// named); items are not boxed.
type PageFuture<T> =
    Pin<Box<dyn Future<Output = Result<Page<Result<T, HttpError>, Url>, HttpError>> + Send>>;
/// The page fetcher handed to the core `paginate`, boxed so that its type can be named.
type FetchPage<T> = Box<dyn FnMut(Url) -> PageFuture<T> + Send>;
/// The core stream underneath; the page URL is its cursor.
type Pages<T> = Paginate<Url, FetchPage<T>, PageFuture<T>, Result<T, HttpError>, HttpError>;

struct Config {
    client: Client,
    start: Result<PagePosition<Url>, HttpError>,
    style: PageStyle,
    options: HttpOptions,
    prefetch: bool,
}

// `Running` is the state that lives while items flow; boxing it instead would add an
// indirection to every poll to save memory in the short-lived other states.
#[allow(clippy::large_enum_variant)]
enum State<T> {
    /// Built but not yet polled: options may still change.
    Configuring(Box<Config>),
    /// Walking the pages.
    Running(Pages<T>),
    /// The start URL was invalid: yield its error once, then end.
    Invalid(Option<HttpError>),
}

/// Stream for [`paginated`] and [`paginated_from`].
///
/// A source, not a wrapper: there is no upstream, hence no `get_ref`/`into_inner`;
/// [`position`](Paginated::position) tells where it stands.
#[must_use = "streams do nothing unless polled"]
pub struct Paginated<T> {
    state: State<T>,
    stats: EventCounter,
}

/// Reports the retries of every page request (the options' [`HttpOptions::retry_stats`]),
/// so that `.metered(..).with_events()` (or `pipeline!`) shows them.
///
/// ```
/// use millrace::prelude::*;
/// use millrace_test_support::{Book, Fault, Faults, TestServer};
/// use millrace::adapters::http::{paginated, reqwest, HttpOptions, PageStyle};
/// use futures::StreamExt;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let faults = Faults::none().script("/pages?per_page=5&page=2", [Fault::Status(503)]);
/// let server = TestServer::builder().items(12).faults(faults).start().await.unwrap();
/// let s = paginated::<Book>(reqwest::Client::new(), server.url("/pages?per_page=5"), PageStyle::page("page", 1))
///     .options(HttpOptions::new().backoff(Duration::from_millis(1), Duration::from_millis(5)))
///     .metered("pages")
///     .with_events();
/// let m = s.metrics();
/// assert_eq!(s.count().await, 12);
/// assert_eq!(m.snapshot().retries, Some(1));
/// # }
/// ```
impl<T> Observable for Paginated<T> {
    fn observe_into(&self, stage: &StageMetrics) {
        stage.track_retries(&self.stats);
    }
}

impl<T> Paginated<T>
where
    T: DeserializeOwned + Send + 'static,
{
    fn configure(
        client: Client,
        start: Result<PagePosition<Url>, HttpError>,
        style: PageStyle,
    ) -> Self {
        let options = HttpOptions::default();
        Paginated {
            stats: options.retry_stats(),
            state: State::Configuring(Box::new(Config {
                client,
                start,
                style,
                options,
                prefetch: false,
            })),
        }
    }

    /// Replaces the request options (timeout, retries, backoff). Call before the first poll;
    /// later calls have no effect.
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace_test_support::{Book, TestServer};
    /// use millrace::adapters::http::{paginated, reqwest, HttpOptions, PageStyle};
    /// use futures::TryStreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().items(3).start().await.unwrap();
    /// let books: Vec<Book> = paginated(reqwest::Client::new(), server.url("/linked"), PageStyle::LinkHeader)
    ///     .options(HttpOptions::new().timeout(Duration::from_secs(2)).retries(5))
    ///     .try_collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(books.len(), 3);
    /// # }
    /// ```
    pub fn options(mut self, options: HttpOptions) -> Self {
        if let State::Configuring(config) = &mut self.state {
            self.stats = options.retry_stats();
            config.options = options;
        }
        self
    }

    /// Sets only the per-request timeout (see [`HttpOptions::timeout`]). Call before the first
    /// poll.
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::adapters::http::{paginated, reqwest, PageStyle};
    ///
    /// let source = paginated::<u32>(reqwest::Client::new(), "http://127.0.0.1:9/pages", PageStyle::page("page", 0))
    ///     .timeout(Duration::from_millis(500));
    /// # drop(source);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if let State::Configuring(config) = &mut self.state {
            config.options = config.options.clone().timeout(timeout);
        }
        self
    }

    /// Fetches the next page while the consumer works on the current one (at most two pages
    /// held); see the core `Paginate::prefetch_next_page`. Call before the first poll.
    ///
    /// The next page's request is driven when this stream is polled; its per-request timeout
    /// runs on the real clock meanwhile, so a consumer that holds on to one item longer than the
    /// timeout turns the page fetched ahead into a (retried) timeout.
    ///
    /// ```
    /// use millrace_test_support::{Book, TestServer};
    /// use millrace::adapters::http::{paginated, reqwest, PageStyle};
    /// use futures::TryStreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().items(30).start().await.unwrap();
    /// let books: Vec<Book> =
    ///     paginated(reqwest::Client::new(), server.url("/linked"), PageStyle::LinkHeader)
    ///         .prefetch_next_page()
    ///         .try_collect()
    ///         .await
    ///         .unwrap();
    /// assert_eq!(books.len(), 30);
    /// # }
    /// ```
    pub fn prefetch_next_page(mut self) -> Self {
        if let State::Configuring(config) = &mut self.state {
            config.prefetch = true;
        }
        self
    }

    /// Where the stream stands: the URL of the page being delivered (or the next one) and how
    /// many of its items were delivered; `None` when the start URL was invalid. After a page
    /// failed for good it names that page, ready for [`paginated_from`].
    ///
    /// ```
    /// use millrace::adapters::http::{paginated, reqwest, PageStyle};
    ///
    /// let source = paginated::<u32>(reqwest::Client::new(), "http://127.0.0.1:9/p?n=5", PageStyle::page("page", 1));
    /// let start = source.position().unwrap();
    /// assert_eq!(start.cursor.as_str(), "http://127.0.0.1:9/p?n=5&page=1");
    /// assert_eq!(start.offset, 0);
    /// ```
    pub fn position(&self) -> Option<PagePosition<Url>> {
        match &self.state {
            State::Configuring(config) => config.start.as_ref().ok().cloned(),
            State::Running(pages) => Some(pages.position()),
            State::Invalid(_) => None,
        }
    }

    /// Yields each item with the position right after it, `Ok((item, position))`: what a
    /// checkpoint records so that a retry or a fallback resumes exactly there (see the core
    /// `checkpoint_with`, `restartable(..).retry(..)` and `recover_with`). It clones the page
    /// URL once per item.
    ///
    /// # Examples
    ///
    /// The primary service goes down for good on page 2; the pipeline falls back to the mirror
    /// and resumes from the last delivered position: no book lost, none twice.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::PagePosition;
    /// use millrace_test_support::{Book, Faults, TestServer};
    /// use millrace::adapters::http::{paginated, paginated_from, reqwest, HttpOptions, PageStyle};
    /// use millrace::adapters::http::reqwest::Url;
    /// use futures::TryStreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().items(9).faults(Faults::none().outage(1, u64::MAX)).start().await.unwrap();
    /// let client = reqwest::Client::new();
    /// let style = PageStyle::cursor("cursor", "/next", "/items");
    ///
    /// let primary = paginated::<Book>(client.clone(), server.url("/cursor?limit=4"), style.clone())
    ///     .options(HttpOptions::new().retries(0))
    ///     .with_positions();
    /// let start = primary.get_ref().position().unwrap();
    /// let books: Vec<Book> = primary
    ///     .checkpoint_with(start, |at, (_book, after): &(Book, PagePosition<Url>)| *at = after.clone())
    ///     .recover_with(move |_err, at: &PagePosition<Url>| {
    ///         let mut at = at.clone();
    ///         at.cursor.set_path("/mirror/cursor");
    ///         Some(paginated_from(client.clone(), at, style.clone()).with_positions())
    ///     })
    ///     .map_ok(|(book, _)| book)
    ///     .try_collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(books.iter().map(|b| b.id).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    /// assert_eq!(server.stats().mirror_requests, 2);
    /// # }
    /// ```
    pub fn with_positions(self) -> PaginatedWithPositions<T> {
        PaginatedWithPositions { inner: self }
    }

    fn start(config: Config) -> State<T> {
        let position = match config.start {
            Ok(position) => position,
            Err(err) => return State::Invalid(Some(err)),
        };
        let fetcher = Arc::new(Fetcher {
            client: config.client,
            style: config.style,
            options: config.options,
        });
        let fetch_page: FetchPage<T> = Box::new(move |url: Url| -> PageFuture<T> {
            let fetcher = Arc::clone(&fetcher);
            Box::pin(async move { fetcher.fetch_page(url).await })
        });
        let pages = paginate_from(position, fetch_page);
        State::Running(if config.prefetch {
            pages.prefetch_next_page()
        } else {
            pages
        })
    }
}

impl<T> Stream for Paginated<T>
where
    T: DeserializeOwned + Send + 'static,
{
    type Item = Result<T, HttpError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let State::Configuring(_) = this.state {
            let State::Configuring(config) =
                std::mem::replace(&mut this.state, State::Invalid(None))
            else {
                unreachable!("matched just above")
            };
            this.state = Self::start(*config);
        }
        match &mut this.state {
            State::Running(pages) => {
                // The core yields `Ok(item)` per item, where an item is itself `Ok(T)` or a
                // decode error, and `Err` for a failed page.
                let item = std::task::ready!(Pin::new(pages).poll_next(cx));
                Poll::Ready(item.map(|page_item| page_item.and_then(|item| item)))
            }
            State::Invalid(err) => Poll::Ready(err.take().map(Err)),
            State::Configuring(_) => unreachable!("started above"),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.state {
            State::Running(pages) => pages.size_hint(),
            State::Invalid(err) => (usize::from(err.is_some()), Some(usize::from(err.is_some()))),
            // The number of pages is unknown until the last one.
            State::Configuring(_) => (0, None),
        }
    }
}

impl<T> FusedStream for Paginated<T>
where
    T: DeserializeOwned + Send + 'static,
{
    fn is_terminated(&self) -> bool {
        match &self.state {
            State::Running(pages) => pages.is_terminated(),
            State::Invalid(err) => err.is_none(),
            State::Configuring(_) => false,
        }
    }
}

impl<T> fmt::Debug for Paginated<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Configuring(config) => f
                .debug_struct("Paginated")
                .field("start", &config.start.as_ref().map(|p| p.cursor.as_str()))
                .field("style", &config.style)
                .field("options", &config.options)
                .field("prefetch", &config.prefetch)
                .finish(),
            State::Running(pages) => f.debug_struct("Paginated").field("pages", pages).finish(),
            State::Invalid(err) => f.debug_struct("Paginated").field("invalid", err).finish(),
        }
    }
}
