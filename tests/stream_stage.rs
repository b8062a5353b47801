//! `#[stream_stage]`: every form, and the fast path against the general path on the same bodies.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use futures::{StreamExt, stream};
use futures_test::stream::StreamTestExt;
use futures_test::task::noop_context;
use millrace::prelude::*;

#[derive(Debug, Clone, PartialEq)]
struct User {
    name: String,
    complete: bool,
}

fn users(names: &[&str]) -> impl Stream<Item = User> + Send + use<> {
    let v: Vec<User> = names
        .iter()
        .map(|n| User {
            name: (*n).to_owned(),
            complete: false,
        })
        .collect();
    stream::iter(v)
}

// --- The same bodies on the fast path and, with one more (ready) `.await`, the general path. ---

/// Map-like.
#[stream_stage(item = User)]
async fn enrich(users: impl Stream<Item = User> + Send, min_len: usize) {
    #[for_await]
    for mut user in users {
        user.complete = user.name.len() > min_len;
        yield_!(user);
    }
}

#[stream_stage(item = User, name = EnrichGeneral)]
async fn enrich_general(users: impl Stream<Item = User> + Send, min_len: usize) {
    #[for_await]
    for mut user in users {
        std::future::ready(()).await; // an `.await` besides the upstream's: the general path
        user.complete = user.name.len() > min_len;
        yield_!(user);
    }
}

/// Filter with `continue`, state kept in a `mut` parameter, `break` ending the stream, `match`.
#[stream_stage(item = (usize, u32))]
async fn numbered_odds(numbers: impl Stream<Item = u32> + Send, mut seen: usize, stop_at: u32) {
    #[for_await]
    for x in numbers {
        seen += 1;
        if x == stop_at {
            break;
        }
        match x % 2 {
            0 => continue,
            _ => yield_!((seen, x)),
        }
    }
}

#[stream_stage(item = (usize, u32))]
async fn numbered_odds_general(
    numbers: impl Stream<Item = u32> + Send,
    mut seen: usize,
    stop_at: u32,
) {
    #[for_await]
    for x in numbers {
        std::future::ready(()).await; // an `.await` besides the upstream's: the general path
        seen += 1;
        if x == stop_at {
            break;
        }
        match x % 2 {
            0 => continue,
            _ => yield_!((seen, x)),
        }
    }
}

/// Labeled loop, `yield_!` followed by `continue`, `return;`, a config closure (`impl Fn`).
#[stream_stage(item = String)]
async fn labels(
    words: impl Stream<Item = &'static str> + Send,
    keep: impl Fn(&str) -> bool + Send,
) {
    #[for_await]
    'words: for w in words {
        if w == "end" {
            return;
        }
        if keep(w) {
            yield_!(w.to_uppercase());
            continue 'words;
        }
        if w.is_empty() {
            break 'words;
        }
    }
}

#[stream_stage(item = String)]
async fn labels_general(
    words: impl Stream<Item = &'static str> + Send,
    keep: impl Fn(&str) -> bool + Send,
) {
    #[for_await]
    'words: for w in words {
        std::future::ready(()).await; // an `.await` besides the upstream's: the general path
        if w == "end" {
            return;
        }
        if keep(w) {
            yield_!(w.to_uppercase());
            continue 'words;
        }
        if w.is_empty() {
            break 'words;
        }
    }
}

async fn both<T: PartialEq + std::fmt::Debug>(
    fast: impl Stream<Item = T>,
    general: impl Stream<Item = T>,
) -> Vec<T> {
    let a: Vec<T> = fast.collect().await;
    let b: Vec<T> = general.collect().await;
    assert_eq!(a, b, "fast path and general path differ");
    a
}

#[tokio::test]
async fn map_like_stage_marks_users() {
    let out = both(
        enrich(users(&["ada", "grace", "al"]), 2),
        enrich_general(users(&["ada", "grace", "al"]), 2),
    )
    .await;
    assert_eq!(
        out.iter().map(|u| u.complete).collect::<Vec<_>>(),
        [true, true, false]
    );
}

#[tokio::test]
async fn filter_with_state_and_break_is_the_same_on_both_paths() {
    let input = || stream::iter(vec![1u32, 2, 3, 4, 5, 99, 7]);
    let out = both(
        numbered_odds(input(), 0, 99),
        numbered_odds_general(input(), 0, 99),
    )
    .await;
    assert_eq!(out, [(1, 1), (3, 3), (5, 5)]);
    // Under interleaved `Pending`s too.
    let out = both(
        numbered_odds(input().interleave_pending(), 10, 5),
        numbered_odds_general(input().interleave_pending(), 10, 5),
    )
    .await;
    assert_eq!(out, [(11, 1), (13, 3)]);
}

#[tokio::test]
async fn labels_continue_return_and_closures() {
    let words = || stream::iter(["a", "bb", "ccc", "", "dd"]);
    let out = both(
        labels(words(), |w| w.len() >= 2),
        labels_general(words(), |w| w.len() >= 2),
    )
    .await;
    assert_eq!(out, ["BB", "CCC"]);
    let words = || stream::iter(["xx", "end", "yy"]);
    let out = both(labels(words(), |_| true), labels_general(words(), |_| true)).await;
    assert_eq!(out, ["XX"]);
}

#[test]
fn fast_path_stores_the_upstream_inline_and_general_path_boxes_once() {
    type Up = stream::Iter<std::array::IntoIter<u64, 8>>;
    let general =
        std::mem::size_of::<NumberedOddsGeneral<stream::Iter<std::array::IntoIter<u32, 8>>>>();
    assert_eq!(
        general,
        std::mem::size_of::<(Box<dyn Stream<Item = u8>>, bool)>()
    );
    let fast = std::mem::size_of::<Enrich<Up>>();
    assert!(
        fast >= std::mem::size_of::<Up>(),
        "fast path holds the upstream: {fast}"
    );
    // The stages claimed to be on the fast path are (they hold the upstream inline) …
    type Up32 = stream::Iter<std::array::IntoIter<u32, 8>>;
    assert!(std::mem::size_of::<NumberedOdds<Up32>>() >= std::mem::size_of::<Up32>());
    type Words = stream::Iter<std::array::IntoIter<&'static str, 8>>;
    assert!(std::mem::size_of::<Labels<Words, fn(&str) -> bool>>() >= std::mem::size_of::<Words>());
    // … and a body with two yields per item is not.
    assert_eq!(std::mem::size_of::<Twice<Up32>>(), general);
}

// --- General-path-only forms. ---

/// Several yields per item: takes the general path automatically.
#[stream_stage(item = u32)]
async fn twice(numbers: impl Stream<Item = u32> + Send) {
    #[for_await]
    for x in numbers {
        yield_!(x);
        yield_!(x * 10);
    }
}

/// Other awaits and `yield_all!`.
#[stream_stage(item = u32)]
async fn with_awaits(numbers: impl Stream<Item = u32> + Send, extra: Vec<u32>) {
    #[for_await]
    for x in numbers {
        tokio::task::yield_now().await;
        yield_!(x);
    }
    yield_all!(stream::iter(extra));
}

/// A source stage (no upstream).
#[stream_stage(item = u64)]
pub(crate) async fn countdown(from: u64) {
    let mut n = from;
    while n > 0 {
        yield_!(n);
        n -= 1;
    }
}

#[derive(Debug, PartialEq)]
struct ParseError(String);

impl From<std::num::ParseIntError> for ParseError {
    fn from(e: std::num::ParseIntError) -> Self {
        ParseError(e.to_string())
    }
}

/// `error = E`: `?` yields the `Err` (through `From`) and ends.
#[stream_stage(item = i64, error = ParseError)]
async fn parse_all(lines: impl Stream<Item = &'static str> + Send) {
    #[for_await]
    for line in lines {
        let n: i64 = line.trim().parse()?;
        yield_!(n);
    }
}

/// `error = E` on the fast path (no `?`): items are wrapped in `Ok`.
#[stream_stage(item = i64, error = ParseError)]
async fn negate(numbers: impl Stream<Item = i64> + Send) {
    #[for_await]
    for n in numbers {
        yield_!(-n);
    }
}

#[tokio::test]
async fn general_path_forms() {
    let out: Vec<u32> = twice(stream::iter([1, 2])).collect().await;
    assert_eq!(out, [1, 10, 2, 20]);
    let out: Vec<u32> = with_awaits(stream::iter([1, 2]), vec![7, 8])
        .collect()
        .await;
    assert_eq!(out, [1, 2, 7, 8]);
    let out: Vec<u64> = countdown(3).collect().await;
    assert_eq!(out, [3, 2, 1]);
}

#[tokio::test]
async fn error_with_question_mark_yields_err_then_ends() {
    let out: Vec<Result<i64, ParseError>> = parse_all(stream::iter(["1", " 2", "x", "4"]))
        .collect()
        .await;
    assert_eq!(
        out,
        [
            Ok(1),
            Ok(2),
            Err(ParseError("invalid digit found in string".into()))
        ]
    );
    let out: Vec<Result<i64, ParseError>> = negate(stream::iter([1, 2])).collect().await;
    assert_eq!(out, [Ok(-1), Ok(-2)]);
}

// --- Generics, where clauses, lifetimes. ---

/// A named generic upstream with a `where` clause and a generic configuration value.
#[stream_stage(item = T)]
async fn scale<S, T>(numbers: S, factor: T)
where
    S: Stream<Item = T> + Send,
    T: std::ops::Mul<Output = T> + Copy + Send,
{
    #[for_await]
    for x in numbers {
        yield_!(x * factor);
    }
}

/// A lifetime: borrowing configuration (fast path) …
#[stream_stage(item = String)]
async fn prefix<'a>(words: impl Stream<Item = &'a str> + Send, pre: &'a str) {
    #[for_await]
    for w in words {
        yield_!(format!("{}{w}", pre.len()));
    }
}

/// … and on the general path.
#[stream_stage(item = String)]
async fn prefix_slow<'a>(words: impl Stream<Item = &'a str> + Send + 'a, pre: &'a str) {
    #[for_await]
    for w in words {
        tokio::task::yield_now().await;
        yield_!(format!("{pre}{w}"));
    }
}

#[tokio::test]
async fn generics_where_clauses_and_lifetimes() {
    let out: Vec<f64> = scale(stream::iter([1.0, 2.5]), 2.0).collect().await;
    assert_eq!(out, [2.0, 5.0]);
    let pre = String::from("pre-");
    let out: Vec<String> = prefix(stream::iter(["a", "b"]), &pre).collect().await;
    assert_eq!(out, ["4a", "4b"]);
    let out: Vec<String> = prefix_slow(stream::iter(["a", "b"]), &pre).collect().await;
    assert_eq!(out, ["pre-a", "pre-b"]);
}

// --- Stream contract. ---

#[test]
fn fused_after_the_end_on_both_paths() {
    let mut cx = noop_context();
    let mut fast = Box::pin(numbered_odds(stream::iter([1u32]), 0, 9));
    let mut general = Box::pin(numbered_odds_general(stream::iter([1u32]), 0, 9));
    assert!(!fast.is_terminated() && !general.is_terminated());
    assert_eq!(fast.as_mut().poll_next(&mut cx), Poll::Ready(Some((1, 1))));
    assert_eq!(
        general.as_mut().poll_next(&mut cx),
        Poll::Ready(Some((1, 1)))
    );
    for _ in 0..3 {
        assert_eq!(fast.as_mut().poll_next(&mut cx), Poll::Ready(None));
        assert_eq!(general.as_mut().poll_next(&mut cx), Poll::Ready(None));
    }
    assert!(fast.is_terminated() && general.is_terminated());
    assert_eq!(fast.size_hint(), (0, Some(0)));
    assert_eq!(general.size_hint(), (0, Some(0)));
}

#[test]
fn size_hint_is_honest_on_the_fast_path() {
    let s = enrich(users(&["a", "b", "c"]), 0);
    assert_eq!(s.size_hint(), (0, Some(3)));
}

#[test]
fn debug_names_the_struct() {
    let s = enrich(users(&["a"]), 0);
    assert_eq!(format!("{s:?}"), "Enrich { finished: false, .. }");
    let s = twice(stream::iter([1]));
    assert_eq!(format!("{s:?}"), "Twice { finished: false, .. }");
}

#[tokio::test]
async fn configuration_is_dropped_when_the_stream_ends_on_both_paths() {
    let token = Arc::new(());
    let keep = {
        let token = Arc::clone(&token);
        move |_: &str| {
            let _ = &token;
            true
        }
    };
    let mut fast = labels(stream::iter(["a"]), keep.clone());
    let mut general = labels_general(stream::iter(["a"]), keep);
    assert_eq!(Arc::strong_count(&token), 3);
    assert_eq!(fast.next().await.as_deref(), Some("A"));
    assert_eq!(general.next().await.as_deref(), Some("A"));
    assert_eq!(fast.next().await, None);
    assert_eq!(general.next().await, None);
    // Both streams are still alive but have released their configuration.
    assert_eq!(Arc::strong_count(&token), 1);
    drop((fast, general));
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn send_follows_the_inputs() {
    assert_send(&enrich(users(&[]), 1));
    assert_send(&enrich_general(users(&[]), 1));
    assert_send(&countdown(1));
    assert_send(&parse_all(stream::iter(["1"])));
}

/// `local`: a `!Send` upstream and `!Send` configuration.
#[stream_stage(item = u32, local)]
async fn count_local(numbers: impl Stream<Item = Rc<u32>>, counter: Rc<Cell<u32>>) {
    #[for_await]
    for x in numbers {
        counter.set(counter.get() + 1);
        yield_!(*x);
    }
}

#[stream_stage(item = u32, local)]
async fn count_local_general(numbers: impl Stream<Item = Rc<u32>>, counter: Rc<Cell<u32>>) {
    #[for_await]
    for x in numbers {
        counter.set(counter.get() + 1);
        tokio::task::yield_now().await;
        yield_!(*x);
    }
}

#[tokio::test]
async fn local_stages_accept_non_send_inputs() {
    let counter = Rc::new(Cell::new(0));
    let input = || stream::iter(vec![Rc::new(1u32), Rc::new(2)]);
    let out: Vec<u32> = count_local(input(), Rc::clone(&counter)).collect().await;
    assert_eq!(out, [1, 2]);
    let out: Vec<u32> = count_local_general(input(), Rc::clone(&counter))
        .collect()
        .await;
    assert_eq!(out, [1, 2]);
    assert_eq!(counter.get(), 4);
}

#[tokio::test]
async fn panics_in_the_body_reach_the_consumer() {
    #[stream_stage(item = u32)]
    async fn explode(numbers: impl Stream<Item = u32> + Send) {
        #[for_await]
        for x in numbers {
            assert!(x < 2, "boom at {x}");
            yield_!(x);
        }
    }
    let handle = tokio::spawn(explode(stream::iter([1, 2, 3])).collect::<Vec<u32>>());
    let err = handle.await.expect_err("the consumer panics");
    let msg = err.into_panic();
    assert_eq!(
        msg.downcast_ref::<String>().map(String::as_str),
        Some("boom at 2")
    );
}

// --- The testing kit's contract checks. ---

mod kit {
    use std::time::Duration;

    use futures::StreamExt;
    use millrace::testing::{self, DropCounter, Step};

    use super::{labels, labels_general, numbered_odds, numbered_odds_general, twice};

    fn input() -> testing::Scripted<u32> {
        testing::scripted([
            Step::Item(1),
            Step::Pending,
            Step::Item(2),
            Step::Delay(Duration::from_millis(5)),
            Step::Item(3),
            Step::Item(4),
        ])
    }

    #[tokio::test(start_paused = true)]
    async fn conformance_on_both_paths() {
        let expected = vec![(1, 1), (3, 3)];
        testing::conformance(|| numbered_odds(input(), 0, 99), expected.clone()).await;
        testing::conformance(|| numbered_odds_general(input(), 0, 99), expected).await;
        testing::conformance(|| twice(input()), vec![1, 10, 2, 20, 3, 30, 4, 40]).await;
    }

    #[tokio::test]
    async fn dropping_a_stage_early_releases_captured_state() {
        let counter = DropCounter::new();
        let (a, b) = (counter.token(), counter.token());
        let mut fast = labels(futures::stream::iter(["aa", "bb"]), move |_| {
            let _ = &a;
            true
        });
        let mut general = labels_general(futures::stream::iter(["aa", "bb"]), move |_| {
            let _ = &b;
            true
        });
        assert_eq!(fast.next().await.as_deref(), Some("AA"));
        assert_eq!(general.next().await.as_deref(), Some("AA"));
        assert_eq!(counter.alive(), 2);
        drop(fast);
        drop(general);
        assert_eq!(counter.alive(), 0);
    }
}
