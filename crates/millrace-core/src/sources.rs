//! Free constructors of source stages: streams that are built from a factory or a resource
//! rather than from an upstream stream.

use crate::checkpoint::Checkpoint;
use crate::wrappers::Restartable;

/// A source opened by `factory(&checkpoint)`, which can be re-opened after errors with
/// [`.retry(policy)`](Restartable::retry).
///
/// The factory receives the default [`Checkpoint`] (`delivered` count and `last` item) and
/// must return a stream that resumes after it; a source that cannot seek re-opens from the
/// start and uses [`.skip_delivered()`](Restartable::skip_delivered). For a cursor instead of
/// the last item, use [`checkpoint_with(init, update).restartable(factory)`](crate::checkpoint::CustomCheckpoint::restartable).
///
/// The source is opened lazily, on the first poll. Without `.retry(..)` an `Err` is yielded
/// and ends the stream.
///
/// # Examples
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut opens = 0;
/// let numbers = restartable(move |cp: &Checkpoint<u64>| {
///     opens += 1;
///     let fail_at = if opens == 1 { Some(3) } else { None }; // the first connection drops at #3
///     stream::iter(cp.delivered..5).map(move |i| if Some(i) == fail_at { Err("reset") } else { Ok(i) })
/// })
/// .retry(RetryPolicy::fixed(Duration::from_millis(100), 3));
/// let out: Vec<Result<u64, &str>> = numbers.collect().await;
/// assert_eq!(out, [Ok(0), Ok(1), Ok(2), Ok(3), Ok(4)]);
/// # }
/// ```
///
/// # Panics
///
/// A panic in `factory` propagates to the consumer's poll.
pub fn restartable<F, S, T, E>(factory: F) -> Restartable<F, S, Checkpoint<T>>
where
    F: FnMut(&Checkpoint<T>) -> S,
    S: futures_core::Stream<Item = Result<T, E>>,
    T: Clone,
{
    Restartable::new(factory)
}

use crate::wrappers::{Page, PagePosition, Paginate, Scoped};

/// A stream that lives inside a resource's scope: Rust's form of Python's `async with` +
/// `async for`.
///
/// `open` is awaited on the first poll; `body(&resource)` builds the stream (it cannot borrow
/// the resource, so it clones what it needs, e.g. a pool handle); when the body ends,
/// `close(resource)` is awaited **inside `poll_next`, before `None` is returned**.
///
/// - **`close` runs exactly once** whenever `open` succeeded: on completion, on an error from
///   the body and on early drop. The resource and `close` are each moved out once, so a second
///   run is impossible.
/// - **Errors end the scope.** The first `Err` from the body is held back, the body is
///   dropped, `close` is awaited, then the `Err` is yielded and the stream ends — like an
///   exception leaving `async with` after `__aexit__`. A consumer that stops at the first
///   error (`try_collect`, `?`) thus sees the resource already closed.
/// - **An `open` error** is yielded as `Err` and the stream ends; `close` is not called
///   (there is no resource).
/// - **A panic** in `open`, the body or `close` reaches the consumer (it is polled inline).
///   After a panic in the body, dropping the stream still closes the resource (see below).
///
/// # Early exit: close and await
///
/// A consumer that stops early (`break`, `take`) and needs the resource released **before it
/// goes on** awaits [`Scoped::close`] (Python's `aclosing`): it drops the body, runs `close`
/// and waits for it; the drop path then has nothing left to do, so `close` still runs exactly
/// once. Without it, the close runs in the background as described next.
///
/// # Early drop
///
/// The body stream is dropped first, then `close` is called and its future (or the close
/// already in progress) is handed to the tokio runtime of the dropping thread
/// (`Handle::try_current()` + `spawn`); this needs `close`'s future to be `Send + 'static`.
/// **With no runtime** (a plain thread, another executor), the close future runs to
/// completion on a fresh current-thread tokio runtime in a helper thread and the drop
/// **waits** for it, so the resource is released when `drop` returns. A panic in a detached
/// close cannot reach a consumer (there is none); it is logged with `tracing::error!`.
/// A close spawned on a runtime that is shutting down is cancelled with it, and a close that
/// needs the dropping thread itself to make progress (a value only that thread's executor
/// would send) would wait forever on the fallback path: drop such streams inside a runtime.
///
/// # Cancel safety
///
/// Dropping the stream at any point closes the resource as described above. Items the body
/// had produced but not yet yielded are dropped with it, as with any stream.
///
/// # Examples
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
/// use std::sync::{Arc, Mutex};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let (l1, l2) = (log.clone(), log.clone());
/// let rows: Vec<Result<u32, String>> = scoped(
///     async move { l1.lock().unwrap().push("open"); Ok::<_, String>(vec![1u32, 2, 3]) },
///     |table: &Vec<u32>| stream::iter(table.clone()).map(Ok),
///     move |_table| async move { l2.lock().unwrap().push("close") },
/// )
/// .collect()
/// .await;
/// assert_eq!(rows, [Ok(1), Ok(2), Ok(3)]);
/// assert_eq!(*log.lock().unwrap(), ["open", "close"]);
/// # }
/// ```
pub fn scoped<O, R, E, B, S, T, C, F>(open: O, body: B, close: C) -> Scoped<O, R, E, B, S, C, F>
where
    O: Future<Output = Result<R, E>>,
    B: FnOnce(&R) -> S,
    S: futures_core::Stream<Item = Result<T, E>>,
    C: FnOnce(R) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    Scoped::new(open, body, close)
}

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
/// [`checkpoint_with`](crate::checkpoint_with) checkpoint:
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
/// let rows = checkpoint_with(PagePosition::start(0), |pos, item: &(u32, PagePosition<u32>)| {
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
