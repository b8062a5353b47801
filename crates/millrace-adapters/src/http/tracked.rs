//! Paginated sources with positions for exactly-once delivery: [`PageCursor`],
//! [`Paginated::tracked`] and [`paginated_after`].

use std::cmp::Ordering;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::stream::{FusedStream, Stream};
use millrace_core::PagePosition;
use millrace_core::positions::{CountRead, Position, Positioned, Tracked};
use reqwest::{Client, Url};
use serde::de::DeserializeOwned;

use super::{HttpError, PageStyle, Paginated, paginated, paginated_from};

/// Where an item of a paginated source sits, in a form a sink can store and order: the number
/// of pages since the pipeline first started (`page`), and the [`PagePosition`] after the item
/// (the page's URL and how many of its items are done). Resuming refetches that page and
/// skips the done items, so the page must list the same items when fetched again (true of
/// cursor pagination over stable data; with `page=N` pagination over data that changes, items
/// can shift between pages).
///
/// ```
/// use millrace::adapters::http::PageCursor;
/// use millrace::adapters::http::reqwest::Url;
/// use millrace::positions::Position;
/// use millrace::PagePosition;
///
/// let at = PageCursor {
///     page: 3,
///     at: PagePosition { cursor: Url::parse("http://127.0.0.1/p?c=x:y").unwrap(), offset: 2 },
/// };
/// assert_eq!(at.to_text(), "3:2:http://127.0.0.1/p?c=x:y");
/// assert_eq!(PageCursor::from_text(&at.to_text()), Some(at.clone()));
/// let later = PageCursor { page: 4, at: PagePosition { offset: 0, ..at.at.clone() } };
/// assert!(later > at);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    /// Pages fetched since the pipeline first started (0: the first page).
    pub page: u64,
    /// The page's URL and the number of its items done.
    pub at: PagePosition<Url>,
}

impl PartialOrd for PageCursor {
    /// Ordered by page, then by items done in it; positions that agree on both but name other
    /// URLs are not comparable.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.page, self.at.offset).cmp(&(other.page, other.at.offset)) {
            Ordering::Equal if self.at.cursor != other.at.cursor => None,
            ordering => Some(ordering),
        }
    }
}

impl fmt::Display for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "page {} ({}), {} items done",
            self.page, self.at.cursor, self.at.offset
        )
    }
}

impl Position for PageCursor {
    fn to_text(&self) -> String {
        format!("{}:{}:{}", self.page, self.at.offset, self.at.cursor)
    }

    fn from_text(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ':');
        let page = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        let cursor = Url::parse(parts.next()?).ok()?;
        Some(PageCursor {
            page,
            at: PagePosition { cursor, offset },
        })
    }
}

/// A paginated source that starts at `url`, or resumes after `after` (a position committed by
/// an earlier run; see [`Paginated::tracked`]), tracked: every item beside its [`PageCursor`].
///
/// ```
/// use millrace_test_support::{Book, TestServer};
/// use millrace::adapters::http::{paginated_after, reqwest, PageStyle};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = TestServer::builder().items(7).start().await.unwrap();
/// let style = || PageStyle::cursor("cursor", "/next", "/items");
/// let url = server.url("/cursor?limit=3");
/// let client = reqwest::Client::new();
///
/// // A first run stops after 4 books (as a crash would); its 4th position is what a sink
/// // committed.
/// let first: Vec<_> = paginated_after::<Book>(client.clone(), &url, style(), None).take(4).collect().await;
/// let committed = first[3].position.clone();
/// assert_eq!(committed.page, 1);
///
/// // The next run resumes after it: books 4, 5, 6 and nothing twice.
/// let rest: Vec<_> = paginated_after::<Book>(client, &url, style(), Some(committed)).collect().await;
/// let ids: Vec<u64> = rest.iter().map(|p| p.entry.item().unwrap().as_ref().unwrap().id).collect();
/// assert_eq!(ids, [4, 5, 6]);
/// # }
/// ```
pub fn paginated_after<T>(
    client: Client,
    url: impl AsRef<str>,
    style: PageStyle,
    after: Option<PageCursor>,
) -> Tracked<CountRead<TrackedPages<T>>>
where
    T: DeserializeOwned + Send + 'static,
{
    match after {
        Some(after) => {
            let source = paginated_from(client, after.at.clone(), style);
            Tracked::new(TrackedPages {
                last: Some(after),
                source,
            })
        }
        None => paginated(client, url, style).tracked(),
    }
}

impl<T> Paginated<T>
where
    T: DeserializeOwned + Send + 'static,
{
    /// Tracks the source from its start: every item (and every error) beside its
    /// [`PageCursor`], for a sink that commits positions with its data. Resume with
    /// [`paginated_after`].
    ///
    /// ```
    /// use millrace_test_support::{Book, TestServer};
    /// use millrace::adapters::http::{paginated, reqwest, PageStyle};
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().items(5).start().await.unwrap();
    /// let source = paginated::<Book>(reqwest::Client::new(), server.url("/pages?per_page=2"), PageStyle::page("page", 1));
    /// let out: Vec<_> = source.tracked().collect().await;
    /// let at: Vec<(u64, usize)> = out.iter().map(|p| (p.position.page, p.position.at.offset)).collect();
    /// // Positions are where to resume: after a page's last item, the next page, nothing done.
    /// assert_eq!(at, [(0, 1), (1, 0), (1, 1), (2, 0), (3, 0)]);
    /// # }
    /// ```
    pub fn tracked(self) -> Tracked<CountRead<TrackedPages<T>>> {
        let last = self.position().map(|at| PageCursor { page: 0, at });
        Tracked::new(TrackedPages { last, source: self })
    }
}

/// The stream inside [`Paginated::tracked`] and [`paginated_after`]: items beside their
/// [`PageCursor`]. An error (the start URL, or a page that failed for good) comes with the
/// position before it, so committing it skips nothing.
#[must_use = "streams do nothing unless polled"]
pub struct TrackedPages<T> {
    source: Paginated<T>,
    /// The position after the last item (the start position before the first).
    last: Option<PageCursor>,
}

impl<T> fmt::Debug for TrackedPages<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedPages")
            .field("source", &self.source)
            .field("last", &self.last)
            .finish()
    }
}

impl<T> Stream for TrackedPages<T>
where
    T: DeserializeOwned + Send + 'static,
{
    type Item = Positioned<PageCursor, Result<T, HttpError>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(item) = ready!(Pin::new(&mut this.source).poll_next(cx)) else {
            return Poll::Ready(None);
        };
        if item.is_ok()
            && let Some(at) = this.source.position()
        {
            let page = match &this.last {
                Some(last) if last.at.cursor == at.cursor => last.page,
                Some(last) => last.page + 1,
                None => 0,
            };
            this.last = Some(PageCursor { page, at });
        }
        let position = match &this.last {
            Some(last) => last.clone(),
            // Only an invalid start URL has no position at all: its error stands at page 0.
            None => PageCursor {
                page: 0,
                at: PagePosition::start(Url::parse("invalid:").expect("a constant URL")),
            },
        };
        Poll::Ready(Some(Positioned::item(position, item)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.source.size_hint()
    }
}

impl<T> FusedStream for TrackedPages<T>
where
    T: DeserializeOwned + Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.source.is_terminated()
    }
}
