//! [`Paginate`]: pages fetched one cursor at a time, flattened into one stream of items.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

mod cursors;
mod page;
mod with_positions;

use self::cursors::CursorGuard;
pub use self::cursors::{REMEMBERED_CURSORS, RepeatedCursor};
pub use self::page::{Page, PagePosition};
pub use self::with_positions::WithPositions;

/// A finished fetch: the cursor it was started with and what it returned.
type Fetched<C, T, E> = (C, Result<Page<T, C>, E>);

/// Pages fetched one cursor at a time, flattened into one stream of items.
///
/// `fetch_page(first)` is awaited on the first poll; each [`Page`] contributes its items in
/// order (an empty page contributes nothing, it is not an item) and its `next` cursor names
/// the page to fetch after it; a page with `next: None` is the last. A failed fetch is yielded
/// as `Err` and the stream ends.
///
/// **It cannot loop forever**: a page whose `next` names a cursor fetched before (A→A, or
/// A→B→A, among the last [`REMEMBERED_CURSORS`](crate::wrappers::REMEMBERED_CURSORS) = 32
/// cursors; see [`remember_cursors`](Paginate::remember_cursors)) ends the stream after that
/// page's items, with a [`RepeatedCursor`](crate::wrappers::RepeatedCursor) reported as a
/// `tracing` error and kept in [`repeated_cursor`](Paginate::repeated_cursor); add
/// [`on_repeated_cursor(String::from)`](Paginate::on_repeated_cursor) (or your error's
/// conversion) to receive it as the last item, or
/// [`allow_repeated_cursors`](Paginate::allow_repeated_cursors) for an API whose cursors may
/// repeat. This is why the cursor type must be `PartialEq`.
///
/// Fetches run one at a time, when the previous page is delivered; with
/// [`prefetch_next_page`](Paginate::prefetch_next_page) the next page is fetched while the
/// current one is consumed (at most two pages held).
///
/// # Resuming
///
/// [`Paginate::position`] says where the stream stands as a [`PagePosition`] (a page cursor
/// plus how many of its items were delivered); [`paginate_from`] continues from there without
/// loss or duplicates. That is what a restart factory needs: after a failed fetch, rebuild the
/// stream from the last position instead of from `first`. With `retry`, let
/// [`with_positions`](Paginate::with_positions) hand each item's position to a
/// [`custom_checkpoint`](crate::custom_checkpoint):
///
/// ```
/// use millrace::prelude::*;
/// use millrace::{Page, PagePosition};
/// use futures::StreamExt;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // Page 1 answers 503 the first time it is fetched.
/// let flaky = Arc::new(Mutex::new(true));
/// let fetch = move |page: u32| {
///     let flaky = flaky.clone();
///     async move {
///         if page == 1 && std::mem::replace(&mut *flaky.lock().unwrap(), false) {
///             return Err("503");
///         }
///         let items = vec![page * 10, page * 10 + 1];
///         Ok(if page < 2 { Page::next(items, page + 1) } else { Page::last(items) })
///     }
/// };
/// let rows = custom_checkpoint(PagePosition::start(0), |pos, item: &(u32, PagePosition<u32>)| {
///     *pos = item.1
/// })
/// .restartable(move |pos: &PagePosition<u32>| {
///     paginate_from(*pos, fetch.clone()).prefetch_next_page().with_positions()
/// })
/// .retry(RetryPolicy::fixed(Duration::from_millis(100), 3))
/// .map(|r| r.map(|(row, _position)| row));
/// let rows: Vec<Result<u32, &str>> = rows.collect().await;
/// assert_eq!(rows, [Ok(0), Ok(1), Ok(10), Ok(11), Ok(20), Ok(21)]);
/// # }
/// ```
///
/// # Examples
///
/// ```
/// use millrace::prelude::*;
/// use millrace::Page;
/// use futures::TryStreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A "server" with 7 rows served 3 per page; the cursor is the offset of the next row.
/// let fetch = |offset: usize| async move {
///     let rows: Vec<usize> = (offset..7).take(3).collect();
///     let next = offset + 3;
///     Ok::<_, std::io::Error>(if next < 7 { Page::next(rows, next) } else { Page::last(rows) })
/// };
/// let all: Vec<usize> = paginate(0, fetch).try_collect().await.unwrap();
/// assert_eq!(all, [0, 1, 2, 3, 4, 5, 6]);
/// # }
/// ```
pub fn paginate<C, F, Fut, T, E>(first: C, fetch_page: F) -> Paginate<C, F, Fut, T, E>
where
    C: Clone + PartialEq,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Page<T, C>, E>>,
{
    Paginate::new(first, fetch_page)
}

/// Resumes a [`paginate`] stream at `position`: fetches the page at `position.cursor`, skips
/// its first `position.offset` items and continues from there.
///
/// Items are neither lost nor repeated as long as the page at a cursor returns the same items
/// when fetched again (a stable cursor, as most APIs give).
///
/// # Examples
///
/// Resume after a failed fetch, from the position the failed stream reported:
///
/// ```
/// use millrace::prelude::*;
/// use millrace::Page;
/// use futures::StreamExt;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let failed_once = Arc::new(AtomicBool::new(false));
/// let fetch = move |page: u32| {
///     let failed_once = failed_once.clone();
///     async move {
///         if page == 1 && !failed_once.swap(true, Ordering::SeqCst) {
///             return Err("503");
///         }
///         let items = vec![page * 10, page * 10 + 1];
///         Ok(if page < 2 { Page::next(items, page + 1) } else { Page::last(items) })
///     }
/// };
///
/// let mut got = Vec::new();
/// let mut first = std::pin::pin!(paginate(0, fetch.clone()));
/// while let Some(item) = first.next().await {
///     match item {
///         Ok(x) => got.push(x),
///         Err(e) => assert_eq!(e, "503"),
///     }
/// }
/// let resumed: Vec<_> = paginate_from(first.position(), fetch).collect().await;
/// got.extend(resumed.into_iter().map(Result::unwrap));
/// assert_eq!(got, [0, 1, 10, 11, 20, 21]);
/// # }
/// ```
pub fn paginate_from<C, F, Fut, T, E>(
    position: PagePosition<C>,
    fetch_page: F,
) -> Paginate<C, F, Fut, T, E>
where
    C: Clone + PartialEq,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Page<T, C>, E>>,
{
    Paginate::from_position(position, fetch_page)
}

pin_project! {
    /// Stream for the [`paginate`](crate::paginate) and [`paginate_from`](crate::paginate_from)
    /// functions.
    ///
    /// A source, not a wrapper: there is no upstream stream, hence no `get_ref`/`into_inner`.
    /// [`position`](Paginate::position) tells where it stands, for resuming.
    #[must_use = "streams do nothing unless polled"]
    pub struct Paginate<C, F, Fut, T, E> {
        fetch_page: F,
        // The one fetch in flight and the cursor it was started with.
        #[pin]
        fetch: Option<Fut>,
        fetching: Option<C>,
        // A page fetched ahead (prefetch mode) while the current one is still being delivered.
        ready: Option<Fetched<C, T, E>>,
        // The page being delivered: its cursor, its remaining items, how many were delivered.
        current: C,
        items: std::vec::IntoIter<T>,
        offset: usize,
        // The cursor after the current page, when its fetch has not started yet.
        next: Option<C>,
        // Items of the first page to skip (`paginate_from`).
        skip: usize,
        prefetch: bool,
        guard: CursorGuard<C, E>,
        done: bool,
    }
}

impl<C, F, Fut, T, E> fmt::Debug for Paginate<C, F, Fut, T, E>
where
    C: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paginate")
            .field("current", &self.current)
            .field("offset", &self.offset)
            .field("buffered", &self.items.len())
            .field("fetching", &self.fetching)
            .field("prefetch", &self.prefetch)
            .field("remembered_cursors", &self.guard.capacity)
            .field("repeated_cursor", &self.guard.repeated)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<C, F, Fut, T, E> Paginate<C, F, Fut, T, E>
where
    C: Clone + PartialEq,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Page<T, C>, E>>,
{
    /// Starts at the first page, `first`; see [`paginate`](crate::paginate).
    pub fn new(first: C, fetch_page: F) -> Self {
        Self::from_position(PagePosition::start(first), fetch_page)
    }

    /// Resumes at `position`; see [`paginate_from`](crate::paginate_from).
    pub fn from_position(position: PagePosition<C>, fetch_page: F) -> Self {
        Paginate {
            fetch_page,
            fetch: None,
            fetching: None,
            ready: None,
            current: position.cursor.clone(),
            items: Vec::new().into_iter(),
            offset: position.offset,
            next: Some(position.cursor),
            skip: position.offset,
            prefetch: false,
            guard: CursorGuard {
                seen: VecDeque::new(),
                capacity: REMEMBERED_CURSORS,
                pages: 0,
                to_error: None,
                repeated: None,
                pending: false,
            },
            done: false,
        }
    }

    /// Ends the stream with an error item when a page names an already fetched cursor (see
    /// [`RepeatedCursor`]): `to_error` converts the stop into the stream's error type, e.g.
    /// `String::from`, `Into::into` for a `Box<dyn Error + Send + Sync>`, or a variant of your
    /// error enum.
    ///
    /// Without it the stream still stops (it can never loop forever), but ends without an
    /// error item: the stop is reported as a `tracing` error and kept in
    /// [`repeated_cursor`](Self::repeated_cursor). (The stop cannot be yielded by default
    /// because a stream's error type is the fetch's: it need not be able to hold it.)
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Page;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // A buggy server: page 0 → page 1 → page 0 → …
    /// let fetch = |k: u32| async move { Ok::<_, String>(Page::next(vec![k], 1 - k)) };
    /// let out: Vec<Result<u32, String>> =
    ///     paginate(0, fetch).on_repeated_cursor(String::from).collect().await;
    /// assert_eq!(out.len(), 3);
    /// assert_eq!(out[..2], [Ok(0), Ok(1)]);
    /// assert!(out[2].as_ref().unwrap_err().starts_with("page 1 named 0 as its next page"));
    /// # }
    /// ```
    pub fn on_repeated_cursor(mut self, to_error: fn(RepeatedCursor<C>) -> E) -> Self {
        self.guard.to_error = Some(to_error);
        self
    }

    /// How many of the most recently fetched cursors are remembered to detect a repeat
    /// (default [`REMEMBERED_CURSORS`], 32): a loop through more distinct pages than that
    /// (A→B→…→A over more than `n` pages) is not detected. Memory: `n` cursors; each page costs
    /// one cursor clone and at most `n` comparisons.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Page;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // A loop through 3 pages: 0 → 1 → 2 → 0 → …; remembering 2 cursors cannot see it,
    /// // remembering 3 can.
    /// let fetch = |k: u32| async move { Ok::<_, ()>(Page::next(vec![k], (k + 1) % 3)) };
    /// let short = paginate(0, fetch).remember_cursors(2).take(10).count().await;
    /// assert_eq!(short, 10); // still going
    /// let enough = paginate(0, fetch).remember_cursors(3).count().await;
    /// assert_eq!(enough, 3); // stopped after page 2
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n == 0`: "`paginate`: `remember_cursors` must be at least 1, got 0; pass a
    /// non-zero value" (to turn detection off, use
    /// [`allow_repeated_cursors`](Self::allow_repeated_cursors)).
    #[track_caller]
    pub fn remember_cursors(mut self, n: usize) -> Self {
        let n = crate::error::built(crate::error::nonzero("paginate", "remember_cursors", n));
        self.guard.capacity = n.get();
        self
    }

    /// Turns repeated-cursor detection off, for an API whose cursors legitimately repeat
    /// (the stream then ends only at a page with `next: None`).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Page;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // The cursor is a "poll again" token; the page says when there is no more.
    /// let fetch = |n: u32| async move {
    ///     let _ = n;
    ///     Ok::<_, ()>(Page::next(vec![1], 0u32))
    /// };
    /// let taken = paginate(0, fetch).allow_repeated_cursors().take(5).count().await;
    /// assert_eq!(taken, 5);
    /// # }
    /// ```
    pub fn allow_repeated_cursors(mut self) -> Self {
        self.guard.capacity = 0;
        self.guard.seen = VecDeque::new();
        self
    }

    /// The repeated cursor that stopped the stream, if one did.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Page;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut pages = std::pin::pin!(paginate(7u32, |k| async move {
    ///     Ok::<_, ()>(Page::next(vec![k], 7)) // always "next: 7"
    /// }));
    /// assert_eq!(pages.next().await, Some(Ok(7)));
    /// assert_eq!(pages.next().await, None); // stopped, not looping
    /// let stop = pages.repeated_cursor().unwrap();
    /// assert_eq!((stop.cursor, stop.from, stop.pages), (7, 7, 1));
    /// # }
    /// ```
    pub fn repeated_cursor(&self) -> Option<&RepeatedCursor<C>> {
        self.guard.repeated.as_ref()
    }

    /// Starts fetching page `k + 1` as soon as page `k` arrives, so that the fetch overlaps
    /// the consumer's work on page `k`.
    ///
    /// Memory: at most two pages are held (the one being delivered and the one fetched
    /// ahead); the fetch of page `k + 2` starts only when page `k + 1` becomes current. The
    /// fetch ahead is driven by the consumer's polls (no task is spawned): it overlaps waiting
    /// (I/O, timers), not CPU work; put a [`prefetch`](crate::PipelineExt) stage after this
    /// one for that. An error from the page fetched ahead is yielded after the items of the
    /// current page, in order.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Page;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let items: Vec<Result<u32, ()>> = paginate(0u32, |k| async move {
    ///     Ok(if k < 2 { Page::next(vec![k], k + 1) } else { Page::last(vec![k]) })
    /// })
    /// .prefetch_next_page()
    /// .collect()
    /// .await;
    /// assert_eq!(items, [Ok(0), Ok(1), Ok(2)]);
    /// # }
    /// ```
    pub fn prefetch_next_page(mut self) -> Self {
        self.prefetch = true;
        self
    }

    /// Yields each item with the position right after it: `Ok((item, position))`.
    ///
    /// This is what a checkpoint needs to resume a retried pagination: record the position of
    /// every delivered item, and re-open with [`paginate_from`](crate::paginate_from) from the
    /// last one recorded. It clones the cursor once per item.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::{Page, PagePosition};
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let items: Vec<Result<(char, PagePosition<u8>), ()>> = paginate(0u8, |k| async move {
    ///     Ok(if k == 0 { Page::next(vec!['a', 'b'], 1) } else { Page::last(vec!['c']) })
    /// })
    /// .with_positions()
    /// .collect()
    /// .await;
    /// let at = |cursor, offset| PagePosition { cursor, offset };
    /// assert_eq!(items, [Ok(('a', at(0, 1))), Ok(('b', at(1, 0))), Ok(('c', at(1, 1)))]);
    /// # }
    /// ```
    pub fn with_positions(self) -> WithPositions<C, F, Fut, T, E> {
        WithPositions::new(self)
    }

    /// Where this stream stands: resuming from it with
    /// [`paginate_from`](crate::paginate_from) continues right after the last item delivered.
    ///
    /// After a failed fetch this is the start of the page that failed; after the end it is
    /// the end of the last page (resuming fetches that page again and yields nothing).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::{Page, PagePosition};
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut pages = std::pin::pin!(paginate(0u32, |k| async move {
    ///     Ok::<_, ()>(if k == 0 { Page::next(vec!["a", "b"], 1) } else { Page::last(vec!["c"]) })
    /// }));
    /// assert_eq!(pages.next().await, Some(Ok("a")));
    /// assert_eq!(pages.position(), PagePosition { cursor: 0, offset: 1 });
    /// assert_eq!(pages.next().await, Some(Ok("b")));
    /// assert_eq!(pages.position(), PagePosition { cursor: 1, offset: 0 });
    /// # }
    /// ```
    pub fn position(&self) -> PagePosition<C> {
        if self.items.len() == 0 {
            // The current page is delivered: the resume point is the start of the next one.
            let successor = match (&self.ready, &self.fetching, &self.next) {
                (Some((c, _)), _, _) | (None, Some(c), _) | (None, None, Some(c)) => Some(c),
                (None, None, None) => None,
            };
            if let Some(c) = successor {
                return PagePosition {
                    cursor: c.clone(),
                    offset: self.skip,
                };
            }
        }
        PagePosition {
            cursor: self.current.clone(),
            offset: self.offset,
        }
    }
}

impl<C, F, Fut, T, E> Stream for Paginate<C, F, Fut, T, E>
where
    C: Clone + PartialEq,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Page<T, C>, E>>,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        // Drive the page fetched ahead while the current one is delivered. Its waker is
        // registered, so a completed fetch wakes the consumer (at worst one spurious wake-up).
        if this.ready.is_none() && this.items.len() > 0 {
            poll_ahead(this.fetch.as_mut(), this.fetching, this.ready, cx);
        }
        loop {
            if let Some(item) = this.items.next() {
                *this.offset += 1;
                return Poll::Ready(Some(Ok(item)));
            }
            let (cursor, res) = if let Some(arrived) = this.ready.take() {
                arrived
            } else if let Some(fut) = this.fetch.as_mut().as_pin_mut() {
                let res = ready!(fut.poll(cx));
                this.fetch.set(None);
                let c = this
                    .fetching
                    .take()
                    .expect("a fetch in flight has its cursor");
                (c, res)
            } else if let Some(c) = this.next.take() {
                this.guard.fetching(&c);
                this.fetch.set(Some((this.fetch_page)(c.clone())));
                *this.fetching = Some(c);
                continue;
            } else {
                *this.done = true;
                return Poll::Ready(this.guard.take_error().map(Err));
            };
            // A page arrived: it becomes the current page.
            *this.current = cursor;
            *this.offset = 0;
            match res {
                Err(e) => {
                    *this.done = true;
                    *this.skip = 0;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(page) => {
                    *this.items = page.items.into_iter();
                    let skip = std::mem::take(this.skip);
                    if skip > 0 {
                        let skip = skip.min(this.items.len());
                        this.items.nth(skip - 1);
                        *this.offset = skip;
                    }
                    *this.next = page.next;
                    if let Some(next) = this.next.as_ref()
                        && !this.guard.allows(next, this.current)
                    {
                        // A repeat: deliver this page's items, then stop.
                        *this.next = None;
                    }
                    if *this.prefetch
                        && let Some(c) = this.next.take()
                    {
                        // Start the fetch ahead now and poll it once, so its I/O (or timer)
                        // begins while the consumer works on this page.
                        this.guard.fetching(&c);
                        this.fetch.set(Some((this.fetch_page)(c.clone())));
                        *this.fetching = Some(c);
                        if this.items.len() > 0 {
                            poll_ahead(this.fetch.as_mut(), this.fetching, this.ready, cx);
                        }
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let buffered = self.items.len();
        let more_pages = self.next.is_some() || self.fetching.is_some() || self.ready.is_some();
        let stop = usize::from(self.guard.pending);
        (
            buffered + stop,
            if more_pages {
                None
            } else {
                Some(buffered + stop)
            },
        )
    }
}

/// Polls the fetch of the page after the current one; a finished fetch moves to `ready`.
fn poll_ahead<C, Fut, T, E>(
    mut fetch: Pin<&mut Option<Fut>>,
    fetching: &mut Option<C>,
    ready: &mut Option<Fetched<C, T, E>>,
    cx: &mut Context<'_>,
) where
    Fut: Future<Output = Result<Page<T, C>, E>>,
{
    if let Some(fut) = fetch.as_mut().as_pin_mut()
        && let Poll::Ready(res) = fut.poll(cx)
    {
        fetch.set(None);
        let c = fetching.take().expect("a fetch in flight has its cursor");
        *ready = Some((c, res));
    }
}

impl<C, F, Fut, T, E> FusedStream for Paginate<C, F, Fut, T, E>
where
    C: Clone + PartialEq,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Page<T, C>, E>>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}
