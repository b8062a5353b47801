//! Shared helpers of the reliability suites (`tests/conformance.rs`, `tests/fault_injection.rs`,
//! `tests/properties.rs`, `tests/concurrency_faults.rs`, `tests/time.rs`, …), which include it
//! with `mod support;` + `use support::reliability;`.

use std::fmt::Debug;
use std::future::poll_fn;
use std::marker::PhantomPinned;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures::StreamExt;
use millrace::prelude::*;
use millrace::testing::{
    DropCounter, DropToken, HANG_BOUND, Scripted, Step, alive_tasks, conformance, scripted,
};

/// `full` normally, `small` under miri (which runs a few thousand times slower).
pub(crate) fn scaled(full: u64, small: u64) -> u64 {
    if cfg!(miri) { small } else { full }
}

/// Lets the runtime reap aborted tasks and run spawned clean-ups: yields, then lets one
/// second of (paused, free) tokio time pass for clean-ups that wait on timers, then yields.
pub(crate) async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// 0..n, with a 10 ms delay before item 1 and a spurious `Pending` before item 2.
pub(crate) fn steps(n: u32) -> Vec<Step<u32>> {
    let mut v = Vec::new();
    for i in 0..n {
        if i == 1 {
            v.push(Step::Delay(std::time::Duration::from_millis(10)));
        }
        if i == 2 {
            v.push(Step::Pending);
        }
        v.push(Step::Item(i));
    }
    v
}

/// The usual upstream of a conformance check: [`steps`]`(5)` in a [`Probe`] counted by `c`.
pub(crate) fn src(c: &DropCounter) -> Probe<Scripted<u32>> {
    probe(scripted(steps(5)), c)
}

// ---------------------------------------------------------------------------------------------
// A probe upstream: counted while alive, `!Unpin`, and checking it is never moved once pinned.
// ---------------------------------------------------------------------------------------------

/// Wraps an `Unpin` stream; panics if it is polled or dropped at a different address than the
/// one it was first polled at (a stage that moved its pinned upstream), and holds a
/// [`DropToken`] so that a stage that leaks its upstream is caught.
///
/// No `unsafe` and no pin projection: the inner stream sits behind a `Mutex`, reached through
/// `Pin::get_ref`, and the `PhantomPinned` makes the probe `!Unpin` so a stage can only move it
/// before the first poll.
pub(crate) struct Probe<S> {
    inner: Mutex<S>,
    addr: AtomicUsize,
    _token: DropToken,
    _pinned: PhantomPinned,
}

impl<S> Debug for Probe<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Probe")
    }
}

/// A [`Probe`] around `inner`, counted by `counter`.
pub(crate) fn probe<S>(inner: S, counter: &DropCounter) -> Probe<S> {
    Probe {
        inner: Mutex::new(inner),
        addr: AtomicUsize::new(0),
        _token: counter.token(),
        _pinned: PhantomPinned,
    }
}

impl<S> Probe<S> {
    fn check_place(&self, at: &str) {
        let here = self as *const Self as usize;
        match self
            .addr
            .compare_exchange(0, here, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {}
            Err(first) => assert_eq!(
                first, here,
                "upstream moved after pinning (seen at {at}): first polled at {first:#x}, now at {here:#x}"
            ),
        }
    }
}

impl<S: Stream + Unpin> Stream for Probe<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = Pin::get_ref(self.as_ref());
        this.check_place("poll_next");
        this.inner.lock().expect("probe lock").poll_next_unpin(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.lock().expect("probe lock").size_hint()
    }
}

impl<S: FusedStream + Unpin> FusedStream for Probe<S> {
    fn is_terminated(&self) -> bool {
        self.inner.lock().expect("probe lock").is_terminated()
    }
}

impl<S> Drop for Probe<S> {
    fn drop(&mut self) {
        let first = self.addr.load(Ordering::SeqCst);
        let here = self as *const Self as usize;
        if first != 0 && !std::thread::panicking() {
            assert_eq!(first, here, "upstream moved after pinning (seen at drop)");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Counting wakers: every `Pending` must be followed by a wake-up of the waker of *that* poll.
// ---------------------------------------------------------------------------------------------

/// A waker given to exactly one `poll_next`; counts its wakes and forwards them to the task.
struct CountingWaker {
    wakes: AtomicU64,
    task: Mutex<Option<Waker>>,
}

impl CountingWaker {
    fn new(task: &Waker) -> Arc<Self> {
        Arc::new(CountingWaker {
            wakes: AtomicU64::new(0),
            task: Mutex::new(Some(task.clone())),
        })
    }

    fn set_task(&self, task: &Waker) {
        *self.task.lock().expect("waker lock") = Some(task.clone());
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        if let Some(task) = self.task.lock().expect("waker lock").as_ref() {
            task.wake_by_ref();
        }
    }
}

/// What [`poll_with_counting_wakers`] saw.
#[derive(Debug)]
pub(crate) struct WakeReport<T> {
    pub(crate) items: Vec<T>,
    /// Before every poll: (items yielded so far, `size_hint()`, `is_terminated()`).
    pub(crate) hints: Vec<(usize, (usize, Option<usize>), bool)>,
    /// `Pending`s returned, each followed by a wake of that poll's own waker.
    pub(crate) pendings: u64,
    /// Wakes of wakers from older polls (allowed, but they alone never resumed the stream).
    pub(crate) stale_wakes: u64,
}

/// Polls `stream` to its end by hand, giving every `poll_next` a fresh counting waker, and
/// after each `Pending` waits until **that** waker was woken before polling again. A stage
/// that forgets to arrange a wake-up (or only wakes a stale waker) leaves this future asleep;
/// callers bound it with [`spawn_guarded`].
pub(crate) async fn poll_with_counting_wakers<S: FusedStream>(stream: S) -> WakeReport<S::Item> {
    let mut stream = pin!(stream);
    let mut report = WakeReport {
        items: Vec::new(),
        hints: Vec::new(),
        pendings: 0,
        stale_wakes: 0,
    };
    let mut old: Vec<Arc<CountingWaker>> = Vec::new();
    loop {
        report.hints.push((
            report.items.len(),
            stream.size_hint(),
            stream.is_terminated(),
        ));
        let (polled, current) = poll_fn(|cx| {
            let current = CountingWaker::new(cx.waker());
            let waker = Waker::from(Arc::clone(&current));
            let mut inner = Context::from_waker(&waker);
            Poll::Ready((stream.as_mut().poll_next(&mut inner), current))
        })
        .await;
        match polled {
            Poll::Ready(Some(item)) => report.items.push(item),
            Poll::Ready(None) => break,
            Poll::Pending => {
                report.pendings += 1;
                poll_fn(|cx| {
                    current.set_task(cx.waker());
                    if current.wakes.load(Ordering::SeqCst) > 0 {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            }
        }
        // Wakers of finished polls must not resume the task any more.
        *current.task.lock().expect("waker lock") = None;
        old.push(current);
    }
    let total: u64 = old.iter().map(|w| w.wakes.load(Ordering::SeqCst)).sum();
    report.stale_wakes = total.saturating_sub(report.pendings);
    report
}

/// Runs `fut` on a spawned task and bounds its `JoinHandle` by [`HANG_BOUND`] of tokio time,
/// re-raising a panic of the task; `what` names the hang in the message.
pub(crate) async fn spawn_guarded<F>(what: &str, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = tokio::spawn(fut);
    match tokio::time::timeout(HANG_BOUND, handle).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("{what}: task cancelled: {e}"),
        },
        Err(_) => panic!("{what}: hung for {HANG_BOUND:?} of tokio time (a lost wake-up)"),
    }
}

// ---------------------------------------------------------------------------------------------
// The conformance harness.
// ---------------------------------------------------------------------------------------------

/// How a stage was checked; printed by the suite so the report can count stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    pub(crate) pendings: u64,
}

/// Applies every contract check to the stage built by `make` (which must build its upstream
/// and closures with tokens of the given counter, and probes where it has a pinned upstream):
///
/// 1. the kit's [`conformance`]: spawned hang-guarded consumer, in-place output, honest
///    `size_hint`, spurious `Pending`s before every upstream item, finished stays finished;
/// 2. every `Pending` is followed by a wake of the waker of that very poll (counting wakers),
///    at least `min_pendings` of them;
/// 3. drop before the first poll, after the first item and after the first `Pending` each
///    release every token and leave no task alive;
/// 4. nothing captured survives the checks.
pub(crate) async fn check_stage<S, F>(
    name: &str,
    make: F,
    expected: Vec<S::Item>,
    min_pendings: u64,
) where
    F: Fn(&DropCounter) -> S,
    S: FusedStream + Send + 'static,
    S::Item: PartialEq + Debug + Clone + Send + 'static,
{
    let counter = DropCounter::new();
    let tasks_before = alive_tasks();

    // 1.
    conformance(|| make(&counter), expected.clone()).await;
    settle().await;
    assert_eq!(
        counter.alive(),
        0,
        "{name}: conformance runs leaked captured state"
    );

    // 2.
    let report = spawn_guarded(
        &format!("{name}: counting-waker consumer"),
        poll_with_counting_wakers(make(&counter)),
    )
    .await;
    assert_eq!(
        report.items, expected,
        "{name}: output with counting wakers"
    );
    assert!(
        report.pendings >= min_pendings,
        "{name}: expected at least {min_pendings} `Pending`s to check, saw {}",
        report.pendings
    );

    // 3. Drop at three points.
    drop(make(&counter));
    settle().await;
    assert_eq!(
        counter.alive(),
        0,
        "{name}: drop before the first poll leaked"
    );

    if !expected.is_empty() {
        let mut s = Box::pin(make(&counter));
        let first = s.next().await;
        assert_eq!(first.as_ref(), expected.first(), "{name}: first item");
        drop(s);
        settle().await;
        assert_eq!(
            counter.alive(),
            0,
            "{name}: drop after the first item leaked"
        );
        assert_eq!(
            alive_tasks(),
            tasks_before,
            "{name}: drop after the first item left a task alive"
        );
    }

    let mut s = Box::pin(make(&counter));
    let noop = Waker::noop();
    let mut cx = Context::from_waker(noop);
    // Poll until the first `Pending` (or the end), then drop there.
    for _ in 0..1000 {
        match s.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(_)) => continue,
            Poll::Ready(None) | Poll::Pending => break,
        }
    }
    drop(s);
    settle().await;
    assert_eq!(counter.alive(), 0, "{name}: drop after a `Pending` leaked");
    assert_eq!(
        alive_tasks(),
        tasks_before,
        "{name}: drop after a `Pending` left a task alive"
    );

    println!(
        "conformance: {name}: ok ({} pendings checked)",
        report.pendings
    );
}
