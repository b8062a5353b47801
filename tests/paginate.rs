//! `paginate(first, fetch_page)`: pages flattened into one stream; next-page prefetch;
//! resumable from a `PagePosition` without loss or duplicates; a repeated cursor (A→A, A→B→A)
//! stops the stream instead of fetching forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use millrace::prelude::*;
use millrace::testing::{DropCounter, conformance, consume};
use millrace::wrappers::{Paginate, RepeatedCursor};
use tokio::time::Instant;

const FETCH: Duration = Duration::from_millis(100);

/// A scripted "server": pages by cursor, each fetch takes `FETCH` of tokio time and is logged;
/// `fail_once` cursors fail the first time they are fetched.
#[derive(Clone)]
struct Server {
    pages: Arc<HashMap<u32, Page<&'static str, u32>>>,
    fail_once: Arc<Mutex<Vec<u32>>>,
    fetches: Arc<Mutex<Vec<u32>>>,
}

impl Server {
    fn new(pages: impl IntoIterator<Item = (u32, Page<&'static str, u32>)>) -> Self {
        Server {
            pages: Arc::new(pages.into_iter().collect()),
            fail_once: Arc::default(),
            fetches: Arc::default(),
        }
    }

    fn failing_once_at(self, cursor: u32) -> Self {
        self.fail_once.lock().unwrap().push(cursor);
        self
    }

    fn fetches(&self) -> Vec<u32> {
        self.fetches.lock().unwrap().clone()
    }

    /// The `fetch_page` function.
    fn fetcher(
        &self,
    ) -> impl FnMut(
        u32,
    )
        -> futures::future::BoxFuture<'static, Result<Page<&'static str, u32>, String>>
    + Send
    + Clone
    + 'static {
        let server = self.clone();
        move |cursor| {
            let server = server.clone();
            async move {
                server.fetches.lock().unwrap().push(cursor);
                tokio::time::sleep(FETCH).await;
                let mut fail = server.fail_once.lock().unwrap();
                if let Some(i) = fail.iter().position(|c| *c == cursor) {
                    fail.remove(i);
                    return Err(format!("page {cursor}: 503"));
                }
                Ok(server.pages[&cursor].clone())
            }
            .boxed()
        }
    }
}

/// Four pages, the third one empty.
fn four_pages() -> Server {
    Server::new([
        (0, Page::next(vec!["a", "b"], 1)),
        (1, Page::next(vec!["c"], 2)),
        (2, Page::next(vec![], 3)),
        (3, Page::last(vec!["d", "e"])),
    ])
}

fn oks(items: &[&'static str]) -> Vec<Result<&'static str, String>> {
    items.iter().map(|s| Ok(*s)).collect()
}

#[tokio::test(start_paused = true)]
async fn flattens_pages_in_order_and_skips_empty_pages() {
    let server = four_pages();
    let out = consume(paginate(0, server.fetcher())).await;
    assert_eq!(out, oks(&["a", "b", "c", "d", "e"]));
    assert_eq!(server.fetches(), [0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_is_yielded_and_ends_the_stream() {
    let server = four_pages().failing_once_at(2);
    let mut s = std::pin::pin!(paginate(0, server.fetcher()));
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item);
    }
    assert_eq!(
        out,
        [Ok("a"), Ok("b"), Ok("c"), Err("page 2: 503".to_owned())]
    );
    assert_eq!(s.next().await, None);
    assert!(s.is_terminated());
    assert_eq!(server.fetches(), [0, 1, 2], "no fetch after the failure");
    assert_eq!(s.position(), PagePosition::start(2));
}

/// Three pages of two items, each fetch 100 ms, the consumer spends 50 ms per item.
async fn item_times(prefetch: bool) -> (Vec<Duration>, Duration) {
    let server = Server::new([
        (0, Page::next(vec!["a", "b"], 1)),
        (1, Page::next(vec!["c", "d"], 2)),
        (2, Page::last(vec!["e", "f"])),
    ]);
    let s = paginate(0, server.fetcher());
    let mut s = if prefetch { s.prefetch_next_page() } else { s };
    let start = Instant::now();
    let mut times = Vec::new();
    let mut items = Vec::new();
    while let Some(item) = s.next().await {
        times.push(start.elapsed());
        items.push(item.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(items, ["a", "b", "c", "d", "e", "f"]);
    (times, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn next_page_prefetch_overlaps_fetching_with_consuming() {
    let ms = |v: &[u64]| {
        v.iter()
            .map(|m| Duration::from_millis(*m))
            .collect::<Vec<_>>()
    };

    let (times, total) = item_times(false).await;
    assert_eq!(times, ms(&[100, 150, 300, 350, 500, 550]));
    assert_eq!(total, Duration::from_millis(600));

    // Page k+1 is fetched from the moment page k arrives: the 100 ms fetch hides behind the
    // consumer's 2 × 50 ms of work on page k.
    let (times, total) = item_times(true).await;
    assert_eq!(times, ms(&[100, 150, 200, 250, 300, 350]));
    assert_eq!(total, Duration::from_millis(400));
}

#[tokio::test(start_paused = true)]
async fn prefetch_holds_at_most_two_pages_and_delivers_a_failed_prefetch_after_the_page() {
    let server = four_pages().failing_once_at(1);
    let mut s = std::pin::pin!(paginate(0, server.fetcher()).prefetch_next_page());
    assert_eq!(s.next().await, Some(Ok("a")));
    assert_eq!(
        server.fetches(),
        [0, 1],
        "page 1 is fetched as soon as page 0 arrived"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.next().await, Some(Ok("b")));
    assert_eq!(server.fetches(), [0, 1], "no third page while two are held");
    assert_eq!(s.next().await, Some(Err("page 1: 503".to_owned())));
    assert_eq!(s.next().await, None);
    assert_eq!(s.position(), PagePosition::start(1));
}

/// Consumes until the end or the first error; returns the delivered items and the position.
async fn run_until_error<F>(
    mut s: std::pin::Pin<&mut Paginate<u32, F, F::Fut, &'static str, String>>,
) -> (Vec<&'static str>, Option<String>, PagePosition<u32>)
where
    F: FnMutFetch,
{
    let mut got = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(x) => got.push(x),
            Err(e) => return (got, Some(e), s.position()),
        }
    }
    (got, None, s.position())
}

/// Names the fetch future type of `Server::fetcher`.
trait FnMutFetch: FnMut(u32) -> Self::Fut {
    type Fut: Future<Output = Result<Page<&'static str, u32>, String>>;
}

impl<F, Fut> FnMutFetch for F
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<Page<&'static str, u32>, String>>,
{
    type Fut = Fut;
}

#[tokio::test(start_paused = true)]
async fn resumes_after_a_failed_fetch_without_loss_or_duplicates() {
    for prefetch in [false, true] {
        // Pages 1 and 3 each fail once: two restarts, each from the position of the failure.
        let server = four_pages().failing_once_at(1).failing_once_at(3);
        let mut position = PagePosition::start(0);
        let mut delivered = Vec::new();
        let mut errors = Vec::new();
        loop {
            let s = paginate_from(position, server.fetcher());
            let s = if prefetch { s.prefetch_next_page() } else { s };
            let (got, err, pos) = run_until_error(std::pin::pin!(s)).await;
            delivered.extend(got);
            position = pos;
            match err {
                Some(e) => errors.push(e),
                None => break,
            }
        }
        assert_eq!(
            delivered,
            ["a", "b", "c", "d", "e"],
            "prefetch = {prefetch}"
        );
        assert_eq!(errors, ["page 1: 503", "page 3: 503"]);
        assert_eq!(server.fetches(), [0, 1, 1, 2, 3, 3]);
    }
}

#[tokio::test(start_paused = true)]
async fn resumes_in_the_middle_of_a_page_by_skipping_the_delivered_items() {
    let server = four_pages();
    let mut s = Box::pin(paginate(0, server.fetcher()));
    assert_eq!(s.next().await, Some(Ok("a")));
    assert_eq!(
        s.position(),
        PagePosition {
            cursor: 0,
            offset: 1
        }
    );
    let position = s.position();
    drop(s);
    let rest = consume(paginate_from(position, server.fetcher())).await;
    assert_eq!(rest, oks(&["b", "c", "d", "e"]));
    assert_eq!(server.fetches(), [0, 0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn position_moves_to_the_next_page_once_a_page_is_delivered() {
    let server = four_pages();
    let mut s = std::pin::pin!(paginate(0, server.fetcher()));
    assert_eq!(s.position(), PagePosition::start(0));
    let mut positions = Vec::new();
    while let Some(item) = s.next().await {
        positions.push((item.unwrap(), s.position()));
    }
    let at = |cursor, offset| PagePosition { cursor, offset };
    assert_eq!(
        positions,
        [
            ("a", at(0, 1)),
            ("b", at(1, 0)),
            ("c", at(2, 0)),
            ("d", at(3, 1)),
            ("e", at(3, 2)),
        ]
    );
    // After the end: resuming would fetch the last page again and yield nothing.
    assert_eq!(s.position(), at(3, 2));
}

#[tokio::test(start_paused = true)]
async fn conformance_paginate() {
    let server = four_pages();
    conformance(
        || paginate(0, server.fetcher()),
        oks(&["a", "b", "c", "d", "e"]),
    )
    .await;
    conformance(
        || paginate(0, server.fetcher()).prefetch_next_page(),
        oks(&["a", "b", "c", "d", "e"]),
    )
    .await;
    conformance(
        || paginate_from(PagePosition::start(1).with_offset(1), server.fetcher()),
        oks(&["d", "e"]),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_releases_the_fetch_function_and_the_fetch_in_flight() {
    let counter = DropCounter::new();
    let token = counter.token();
    let in_flight = counter.token();
    let mut s = Box::pin(paginate(0u32, move |_| {
        let _keep = &token;
        let in_flight = in_flight.clone();
        async move {
            let _keep = in_flight;
            std::future::pending::<Result<Page<u32, u32>, ()>>().await
        }
    }));
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(counter.alive(), 3);
    drop(s);
    assert_eq!(counter.alive(), 0);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn a_panic_in_fetch_page_reaches_the_consumer() {
    let s = paginate(0u32, |_| async {
        panic!("boom") as Result<Page<u32, u32>, ()>
    });
    let _ = consume(s).await;
}

#[test]
fn paginate_and_its_parts_are_send_and_sync() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_sync<T: Sync>(_: &T) {}
    let s = paginate(0, four_pages().fetcher());
    assert_send(&s);
    let p = PagePosition::start(0u32);
    assert_send(&p);
    assert_sync(&p);
}

/// What `custom_checkpoint(start, |pos, (_, p)| *pos = p.clone()).restartable(...)` does, by
/// hand: record the position delivered with every item, re-open from the last one after an
/// error.
#[tokio::test(start_paused = true)]
async fn with_positions_feeds_a_checkpoint_that_resumes_without_loss_or_duplicates() {
    let server = four_pages().failing_once_at(1).failing_once_at(3);
    let mut checkpoint = PagePosition::start(0);
    let mut delivered = Vec::new();
    let mut opens = 0;
    'restart: loop {
        opens += 1;
        let mut s = std::pin::pin!(
            paginate_from(checkpoint, server.fetcher())
                .prefetch_next_page()
                .with_positions()
        );
        while let Some(item) = s.next().await {
            match item {
                Ok((x, position)) => {
                    delivered.push(x);
                    checkpoint = position;
                }
                Err(_) => continue 'restart,
            }
        }
        break;
    }
    assert_eq!(delivered, ["a", "b", "c", "d", "e"]);
    assert_eq!(opens, 3);
    assert_eq!(
        checkpoint,
        PagePosition {
            cursor: 3,
            offset: 2
        }
    );
}

#[tokio::test(start_paused = true)]
async fn conformance_with_positions() {
    let server = four_pages();
    let at = |cursor, offset| PagePosition { cursor, offset };
    conformance(
        || paginate(0, server.fetcher()).with_positions(),
        vec![
            Ok(("a", at(0, 1))),
            Ok(("b", at(1, 0))),
            Ok(("c", at(2, 0))),
            Ok(("d", at(3, 1))),
            Ok(("e", at(3, 2))),
        ],
    )
    .await;
}

/// The real thing: `restartable` + `custom_checkpoint` + `retry`. The checkpoint is the position
/// delivered with each item; every re-open resumes from it.
#[tokio::test(start_paused = true)]
async fn restartable_with_a_page_position_checkpoint_resumes_without_loss_or_duplicates() {
    for prefetch in [false, true] {
        let server = four_pages().failing_once_at(1).failing_once_at(3);
        let fetch = server.fetcher();
        let s = custom_checkpoint(
            PagePosition::start(0),
            |pos, item: &(_, PagePosition<u32>)| *pos = item.1,
        )
        .restartable(move |pos: &PagePosition<u32>| {
            let s = paginate_from(*pos, fetch.clone());
            let s = if prefetch { s.prefetch_next_page() } else { s };
            s.with_positions()
        })
        .retry(RetryPolicy::fixed(Duration::from_millis(10), 3))
        .map(|r| r.map(|(x, _)| x));
        assert_eq!(consume(s).await, oks(&["a", "b", "c", "d", "e"]));
        // The checkpoint moves with items only: the empty page 2 delivered none, so the
        // restart after page 3 failed starts from page 2 again (one extra, empty fetch).
        assert_eq!(
            server.fetches(),
            [0, 1, 1, 2, 3, 2, 3],
            "prefetch = {prefetch}"
        );
    }
}

// ---- a repeated cursor stops the stream: it cannot loop forever ----

/// A buggy server: `links[k]` is the next cursor named by page `k` (`None`: last page); page
/// `k` holds the one item `k * 10`. Counts the fetches.
fn looping(
    links: &'static [Option<u32>],
    fetches: &Arc<AtomicUsize>,
) -> impl FnMut(u32) -> std::future::Ready<Result<Page<u32, u32>, String>> + Clone + use<> {
    let fetches = fetches.clone();
    move |k: u32| {
        fetches.fetch_add(1, Ordering::SeqCst);
        let items = vec![k * 10];
        std::future::ready(Ok(match links[k as usize] {
            Some(next) => Page::next(items, next),
            None => Page::last(items),
        }))
    }
}

#[tokio::test(start_paused = true)]
async fn a_page_naming_itself_stops_after_its_items() {
    // A → A
    let fetches = Arc::new(AtomicUsize::new(0));
    let mut s = Box::pin(paginate(0, looping(&[Some(0)], &fetches)));
    assert_eq!(s.next().await, Some(Ok(0)));
    assert_eq!(s.next().await, None);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(
        s.repeated_cursor(),
        Some(&RepeatedCursor {
            cursor: 0,
            from: 0,
            pages: 1
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_cycle_ends_with_a_typed_error_when_asked() {
    // A → B → C → A, with and without prefetching the next page.
    for prefetch in [false, true] {
        let fetches = Arc::new(AtomicUsize::new(0));
        let s = paginate(0, looping(&[Some(1), Some(2), Some(0)], &fetches))
            .on_repeated_cursor(|stop| format!("stopped: {stop}"));
        let s = if prefetch { s.prefetch_next_page() } else { s };
        let out = consume(s).await;
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[..3], [Ok(0), Ok(10), Ok(20)]);
        assert_eq!(
            out[3],
            Err(format!(
                "stopped: {}",
                RepeatedCursor {
                    cursor: 0,
                    from: 2,
                    pages: 3
                }
            ))
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 3, "prefetch: {prefetch}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_typed_error_converts_into_common_error_types() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let out: Vec<Result<u32, String>> = paginate(0, looping(&[Some(1), Some(0)], &fetches))
        .on_repeated_cursor(String::from)
        .collect()
        .await;
    assert_eq!(out[..2], [Ok(0), Ok(10)]);
    assert_eq!(
        out[2],
        Err(
            "page 1 named 0 as its next page, which was already fetched (after 2 pages): \
             following it would loop forever, so pagination stopped; check how the server \
             builds its cursors, or allow repeats with `allow_repeated_cursors()`"
                .to_string()
        )
    );
    let boxed: Box<dyn std::error::Error + Send + Sync> = RepeatedCursor {
        cursor: 1u32,
        from: 1,
        pages: 1,
    }
    .into();
    assert!(boxed.to_string().starts_with("page 1 named 1"));
}

#[tokio::test(start_paused = true)]
async fn memory_of_cursors_is_bounded_and_configurable() {
    // A cycle through 5 pages: invisible when only 4 cursors are remembered, caught with 5.
    const CYCLE: &[Option<u32>] = &[Some(1), Some(2), Some(3), Some(4), Some(0)];
    let fetches = Arc::new(AtomicUsize::new(0));
    let taken = paginate(0, looping(CYCLE, &fetches))
        .remember_cursors(4)
        .take(12)
        .count()
        .await;
    assert_eq!(taken, 12);
    let fetches = Arc::new(AtomicUsize::new(0));
    let all = consume(paginate(0, looping(CYCLE, &fetches)).remember_cursors(5)).await;
    assert_eq!(all, [Ok(0), Ok(10), Ok(20), Ok(30), Ok(40)]);
    assert_eq!(fetches.load(Ordering::SeqCst), 5);
    // The default remembers 32 cursors.
    assert_eq!(millrace::wrappers::REMEMBERED_CURSORS, 32);
    let fetches = Arc::new(AtomicUsize::new(0));
    assert_eq!(
        consume(paginate(0, looping(CYCLE, &fetches))).await.len(),
        5
    );
}

#[tokio::test(start_paused = true)]
async fn repeats_can_be_allowed_and_distinct_cursors_are_never_stopped() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let taken = paginate(0, looping(&[Some(0)], &fetches))
        .allow_repeated_cursors()
        .take(50)
        .count()
        .await;
    assert_eq!((taken, fetches.load(Ordering::SeqCst)), (50, 50));
    // 100 distinct pages, more than the memory holds: all delivered, no false stop.
    let pages: &'static [Option<u32>] = Box::leak(
        (0..100u32)
            .map(|k| (k < 99).then_some(k + 1))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let fetches = Arc::new(AtomicUsize::new(0));
    let mut s = Box::pin(paginate(0, looping(pages, &fetches)).remember_cursors(3));
    let mut n = 0;
    while let Some(item) = s.next().await {
        assert_eq!(item, Ok(n * 10));
        n += 1;
    }
    assert_eq!(n, 100);
    assert!(s.repeated_cursor().is_none());
}

#[test]
#[should_panic(
    expected = "`paginate`: `remember_cursors` must be at least 1, got 0; pass a non-zero value"
)]
fn remembering_zero_cursors_is_rejected() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let _ = paginate(0, looping(&[None], &fetches)).remember_cursors(0);
}
