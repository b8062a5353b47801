use std::cell::Cell;
use std::fmt::Debug;
use std::pin::pin;
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use futures_util::StreamExt;

/// How long (in tokio time) [`consume`] and [`conformance`] wait for a spawned consumer before
/// declaring the stream hung. Under paused time a hang costs no real time: the runtime jumps
/// the clock to this bound as soon as every task is idle.
pub const HANG_BOUND: Duration = Duration::from_secs(3600);

thread_local! {
    static INTERLEAVE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the kit's sources should return a spurious `Pending` before each item (set by
/// [`conformance`] during its second pass).
pub(crate) fn interleave_sources() -> bool {
    INTERLEAVE.with(Cell::get)
}

struct InterleaveGuard;

impl InterleaveGuard {
    fn on() -> Self {
        INTERLEAVE.with(|c| c.set(true));
        InterleaveGuard
    }
}

impl Drop for InterleaveGuard {
    fn drop(&mut self) {
        INTERLEAVE.with(|c| c.set(false));
    }
}

/// Consumes `stream` on a spawned task and returns its items, bounding the task's `JoinHandle`
/// by [`HANG_BOUND`].
///
/// A stage that returns `Pending` without arranging a wake-up leaves the consumer task asleep
/// forever; under paused time the bound then elapses at once and this panics with
/// "stream hung". The stream under test is never wrapped in a timeout itself (that would hide
/// the lost wake-up). A panic inside the consumer (from the stream) is re-raised here.
///
/// # Panics
///
/// When the stream hangs, or when polling it panicked.
///
/// ```
/// use millrace::testing::consume;
/// use futures::stream;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// assert_eq!(consume(stream::iter([1, 2, 3])).await, [1, 2, 3]);
/// # }
/// ```
pub async fn consume<S>(stream: S) -> Vec<S::Item>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    let handle = tokio::spawn(stream.collect::<Vec<_>>());
    match tokio::time::timeout(HANG_BOUND, handle).await {
        Ok(Ok(items)) => items,
        Ok(Err(join_error)) => match join_error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the consumer task was cancelled: {e}"),
        },
        Err(_) => panic!(
            "stream hung: the consumer waited {HANG_BOUND:?} of tokio time for an item; \
             a `Pending` was returned without arranging a wake-up"
        ),
    }
}

/// Checks the `Stream` contract every millrace stage promises, on streams built by `make`:
///
/// 1. consumed on a spawned task whose `JoinHandle` is bounded by [`HANG_BOUND`], it yields
///    exactly `expected` (a lost wake-up is reported as a hang; this runs first so a broken
///    stage cannot stall the test itself);
/// 2. collected in place, it yields exactly `expected`, and its `size_hint` was honest at
///    the start (`lower <= len <= upper`);
/// 3. the same when the kit's sources ([`scripted`](super::scripted),
///    [`Flaky`](super::Flaky)) inside it return a spurious `Pending` (with a wake-up) before
///    every item — what `futures-test`'s `interleave_pending` does to an upstream;
/// 4. finished stays finished: after `None`, two more polls return `None` and
///    `is_terminated()` is true.
///
/// Run it under paused time (`#[tokio::test(start_paused = true)]`) so that time-based stages
/// cost no real time.
///
/// # Panics
///
/// With a message naming the check that failed.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::testing::{conformance, scripted, Step};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// conformance(
///     || scripted([Step::Item(1), Step::Item(2), Step::Item(3)]).batch(2),
///     vec![vec![1, 2], vec![3]],
/// )
/// .await;
/// # }
/// ```
pub async fn conformance<S, F>(make: F, expected: Vec<S::Item>)
where
    F: Fn() -> S,
    S: FusedStream + Send + 'static,
    S::Item: PartialEq + Debug + Send + 'static,
{
    // 1. A spawned, hang-guarded consumer. A lost wake-up in the passes below would stall
    // the test's own task with no bound, so it must be caught here before they run.
    let got = consume(make()).await;
    assert_eq!(got, expected, "conformance: output of a spawned consumer");

    // 2. In place, with an honest size hint.
    let stream = make();
    let (lower, upper) = stream.size_hint();
    assert!(
        lower <= expected.len() && upper.is_none_or(|u| expected.len() <= u),
        "conformance: dishonest size_hint ({lower}, {upper:?}) for a stream of {} items",
        expected.len()
    );
    let mut stream = pin!(stream);
    let mut got = Vec::new();
    while let Some(item) = stream.next().await {
        got.push(item);
    }
    assert_eq!(got, expected, "conformance: output collected in place");

    // 4. Finished stays finished.
    assert!(
        stream.is_terminated(),
        "conformance: `is_terminated()` is false after the stream returned `None`"
    );
    for _ in 0..2 {
        assert!(
            stream.next().await.is_none(),
            "conformance: the stream yielded an item after it returned `None`"
        );
    }

    // 3. Spurious `Pending`s from the kit's sources.
    {
        let _guard = InterleaveGuard::on();
        let got: Vec<_> = make().collect().await;
        assert_eq!(
            got, expected,
            "conformance: output with a `Pending` before every upstream item"
        );
    }
}
