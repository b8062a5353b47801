//! The engine of the `map_concurrent` family: the checked [`Limits`] every member is built
//! from, and the spawned-mode bookkeeping ([`Engine`]) shared by [`MapConcurrent`](super::MapConcurrent)
//! and [`TryMapConcurrent`](super::TryMapConcurrent). Local mode keeps its futures in the
//! stream itself (they need not be `Send`) and polls them in its own loop.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use futures_util::task::AtomicWaker;
use tokio::task::{JoinError, JoinSet};
use tokio_util::task::AbortOnDropHandle;

use crate::error::{ConfigError, nonzero};

/// The limits of one member of the family, checked once by its constructors.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Outputs in input order (else in completion order).
    pub(super) ordered: bool,
    /// At most this many futures in flight (`n`).
    pub(super) limit: usize,
    /// At most this many items held: in flight, or completed and not yet yielded (`n + m`).
    pub(super) window: usize,
    /// The method name that errors and panics carry.
    pub(super) stage: &'static str,
}

impl Limits {
    /// `n = limit` in flight, output buffer `m = n`; a [`ConfigError`] if `limit` is 0.
    pub(super) fn new(
        ordered: bool,
        stage: &'static str,
        limit: usize,
    ) -> Result<Self, ConfigError> {
        let limit = nonzero(stage, "limit", limit)?.get();
        Ok(Limits {
            ordered,
            limit,
            window: limit.saturating_mul(2),
            stage,
        })
    }

    /// Sets the output buffer `m`: at most `n + m` items outstanding.
    pub(super) fn set_output_buffer(&mut self, m: usize) {
        self.window = self.limit.saturating_add(m);
    }

    /// The output buffer `m`.
    pub(super) fn output_buffer(&self) -> usize {
        self.window - self.limit
    }
}

/// Tells whether an output is a failure (fail-fast mode only).
pub(super) type FailCheck<O> = fn(&O) -> bool;

/// State shared between the stream and its spawned tasks.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Spawned tasks whose future has completed, panicked or been aborted (monotonic).
    finished: AtomicUsize,
    /// Copy of `Engine::spawned` for the metrics gauges (written by the consumer only, on
    /// the spawn path).
    spawned: AtomicUsize,
    /// Copy of `Engine::held()` for the metrics gauges (written by the consumer only, when
    /// an item is kept or taken back, never on the ready-at-once path); 0 once dropped.
    held: AtomicUsize,
    /// Set by a task whose output is a failure (fail-fast mode only).
    failed: AtomicBool,
    /// The consumer, registered when it waits for a free in-flight slot.
    waker: AtomicWaker,
}

impl Shared {
    /// Futures running on their tasks: spawned and not finished.
    pub(super) fn in_flight(&self) -> usize {
        // `finished` first: every finish we see was preceded by the spawn it finishes.
        let finished = self.finished.load(Ordering::Acquire);
        self.spawned
            .load(Ordering::Acquire)
            .saturating_sub(finished)
    }

    /// Results completed and not yet yielded.
    pub(super) fn buffered(&self) -> usize {
        let in_flight = self.in_flight();
        self.held.load(Ordering::Acquire).saturating_sub(in_flight)
    }
}

/// The future a task runs: the user's future in the box it was first polled in.
///
/// Dropping it (completion, panic or abort) counts the task as finished and wakes the
/// consumer, so a free slot is seen before the task's output is even stored.
struct Task<Fut: Future> {
    fut: Pin<Box<Option<Fut>>>,
    shared: Arc<Shared>,
    fail: Option<FailCheck<Fut::Output>>,
}

impl<Fut: Future> Future for Task<Fut> {
    type Output = Fut::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fut::Output> {
        let this = &mut *self;
        let fut = this
            .fut
            .as_mut()
            .as_pin_mut()
            .expect("task polled after completion");
        let out = ready!(fut.poll(cx));
        this.fut.set(None);
        if let Some(fail) = this.fail
            && fail(&out)
        {
            this.shared.failed.store(true, Ordering::Release);
        }
        Poll::Ready(out)
    }
}

impl<Fut: Future> Drop for Task<Fut> {
    fn drop(&mut self) {
        self.shared.finished.fetch_add(1, Ordering::AcqRel);
        self.shared.waker.wake();
    }
}

/// Reusable pinned storage for a future's inline first poll, shared by both modes: a future
/// that is ready at once costs no allocation; a pending one leaves in the box it was pinned
/// in (a task's storage in spawned mode, a `FuturesUnordered` entry in local mode), and the
/// next item allocates a fresh box.
pub(super) struct FirstPoll<Fut> {
    cache: Option<Pin<Box<Option<Fut>>>>,
}

impl<Fut: Future> FirstPoll<Fut> {
    pub(super) fn new() -> Self {
        FirstPoll { cache: None }
    }

    /// Polls `fut` once where it is pinned: its output, or the box holding it if pending.
    #[inline]
    pub(super) fn poll(
        &mut self,
        fut: Fut,
        cx: &mut Context<'_>,
    ) -> Result<Fut::Output, Pin<Box<Option<Fut>>>> {
        let cell = self.cache.get_or_insert_with(|| Box::pin(None));
        cell.set(Some(fut));
        let polled = cell
            .as_mut()
            .as_pin_mut()
            .expect("future was just stored")
            .poll(cx);
        match polled {
            Poll::Ready(out) => {
                cell.set(None);
                Ok(out)
            }
            Poll::Pending => Err(self.cache.take().expect("cache was just filled")),
        }
    }
}

/// One position of the ordered output window.
enum Slot<O> {
    Running(AbortOnDropHandle<O>),
    Done(O),
}

/// Re-raises a task's panic on the consumer; a cancelled task is a bug or a runtime shutdown.
pub(crate) fn unwrap_join<O>(stage: &str, result: Result<O, JoinError>) -> O {
    match result {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!(
            "`{stage}`: a task was cancelled before it finished ({e}); \
             is the tokio runtime shutting down while the stream is polled?"
        ),
    }
}

/// The bookkeeping of spawned mode, independent of the upstream and the closure.
pub(super) struct Engine<Fut: Future> {
    pub(super) limits: Limits,
    /// Tasks spawned so far; `spawned - shared.finished` are in flight.
    spawned: usize,
    pub(super) shared: Arc<Shared>,
    /// Ordered mode: the output window, oldest first.
    ring: VecDeque<Slot<Fut::Output>>,
    /// Unordered mode: the running tasks, joined in completion order.
    set: JoinSet<Fut::Output>,
    /// The inline first poll (on a current-thread runtime).
    first_poll: FirstPoll<Fut>,
    /// Whether futures are polled once inline before being spawned: only on a current-thread
    /// runtime, where it costs no parallelism (decided at the first item).
    inline: Option<bool>,
    fail: Option<FailCheck<Fut::Output>>,
}

impl<Fut: Future> fmt::Debug for Engine<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.limits)
            .field("in_flight", &self.running())
            .field("held", &self.held())
            .finish()
    }
}

impl<Fut: Future> Engine<Fut> {
    pub(super) fn new(limits: Limits) -> Self {
        Engine {
            limits,
            spawned: 0,
            shared: Arc::new(Shared::default()),
            ring: VecDeque::new(),
            set: JoinSet::new(),
            first_poll: FirstPoll::new(),
            inline: None,
            fail: None,
        }
    }

    pub(super) fn set_fail_check(&mut self, fail: FailCheck<Fut::Output>) {
        self.fail = Some(fail);
    }

    fn running(&self) -> usize {
        self.spawned
            .saturating_sub(self.shared.finished.load(Ordering::Acquire))
    }

    pub(super) fn held(&self) -> usize {
        if self.limits.ordered {
            self.ring.len()
        } else {
            self.set.len()
        }
    }

    /// Publishes `held()` for the gauges (after the ring or the join set changed).
    fn publish_held(&self) {
        self.shared.held.store(self.held(), Ordering::Release);
    }

    /// Whether a new item may be started; registers the consumer for a free slot if not.
    pub(super) fn has_room(&self, cx: &mut Context<'_>) -> bool {
        if self.held() >= self.limits.window {
            // The head (ordered) or the join set (unordered) wakes us when it moves.
            return false;
        }
        if self.fail.is_some() && self.shared.failed.load(Ordering::Acquire) {
            // Fail-fast: a failure is waiting to be yielded; pull nothing more.
            return false;
        }
        if self.running() < self.limits.limit {
            return true;
        }
        self.shared.waker.register(cx.waker());
        self.running() < self.limits.limit
    }

    /// Aborts every task and drops every held result.
    pub(super) fn abort_all(&mut self) {
        self.ring.clear();
        drop(std::mem::take(&mut self.set));
        self.publish_held();
    }
}

impl<Fut: Future> Drop for Engine<Fut> {
    fn drop(&mut self) {
        // Held results are dropped with the engine; aborted tasks count themselves finished.
        self.shared.held.store(0, Ordering::Release);
    }
}

impl<Fut> Engine<Fut>
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    /// Whether to poll futures once inline before spawning them: on a current-thread runtime
    /// (every task runs on the consumer's thread anyway, so a future that is ready at once
    /// loses nothing by running there, and costs no task). On a multi-threaded runtime every
    /// future goes to its own task at once, so CPU work before its first `.await` runs in
    /// parallel on the workers. Outside a runtime: inline (a pending future then fails to
    /// spawn, with tokio's message).
    fn inline_first_poll(&mut self) -> bool {
        *self.inline.get_or_insert_with(|| {
            tokio::runtime::Handle::try_current().map_or(true, |h| {
                h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
            })
        })
    }

    /// Starts `fut`. On a current-thread runtime it is polled once inline first: returns its
    /// output if it may be yielded right now; otherwise keeps it (ready, behind earlier items)
    /// or spawns it (pending). On a multi-threaded runtime it is spawned at once.
    pub(super) fn start(&mut self, fut: Fut, cx: &mut Context<'_>) -> Option<Fut::Output> {
        if !self.inline_first_poll() {
            self.spawn(Box::pin(Some(fut)));
            return None;
        }
        match self.first_poll.poll(fut, cx) {
            Ok(out) => {
                if self.limits.ordered && !self.ring.is_empty() {
                    if let Some(fail) = self.fail
                        && fail(&out)
                    {
                        self.shared.failed.store(true, Ordering::Release);
                    }
                    self.ring.push_back(Slot::Done(out));
                    self.publish_held();
                    None
                } else {
                    Some(out)
                }
            }
            Err(pinned) => {
                // Slow path: the box becomes the task's storage.
                self.spawn(pinned);
                None
            }
        }
    }

    /// Runs `fut` (pinned in its box) on a new task, in the window.
    fn spawn(&mut self, fut: Pin<Box<Option<Fut>>>) {
        let task = Task {
            fut,
            shared: Arc::clone(&self.shared),
            fail: self.fail,
        };
        self.spawned += 1;
        // Published before the task can finish (see `Shared::in_flight`).
        self.shared.spawned.store(self.spawned, Ordering::Release);
        if self.limits.ordered {
            let handle = AbortOnDropHandle::new(tokio::spawn(task));
            self.ring.push_back(Slot::Running(handle));
        } else {
            self.set.spawn(task);
        }
        self.publish_held();
    }

    /// The next output: `Ready(None)` when nothing is held.
    pub(super) fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let stage = self.limits.stage;
        if !self.limits.ordered {
            return match self.set.poll_join_next(cx) {
                Poll::Ready(Some(r)) => {
                    self.publish_held();
                    Poll::Ready(Some(unwrap_join(stage, r)))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
        if self.fail.is_some()
            && self.shared.failed.load(Ordering::Acquire)
            && let Some(out) = self.take_failure(cx)
        {
            return Poll::Ready(Some(out));
        }
        match self.ring.front_mut() {
            None => Poll::Ready(None),
            Some(Slot::Done(_)) => match self.ring.pop_front() {
                Some(Slot::Done(out)) => {
                    self.publish_held();
                    Poll::Ready(Some(out))
                }
                _ => unreachable!("front slot was done"),
            },
            Some(Slot::Running(handle)) => {
                let r = ready!(Pin::new(handle).poll(cx));
                self.ring.pop_front();
                self.publish_held();
                Poll::Ready(Some(unwrap_join(stage, r)))
            }
        }
    }

    /// Fail-fast, ordered: finds a failed output anywhere in the window (not only at the head).
    fn take_failure(&mut self, cx: &mut Context<'_>) -> Option<Fut::Output> {
        let stage = self.limits.stage;
        let fail = self.fail?;
        for i in 0..self.ring.len() {
            let slot = &mut self.ring[i];
            if let Slot::Running(handle) = slot
                && let Poll::Ready(r) = Pin::new(handle).poll(cx)
            {
                *slot = Slot::Done(unwrap_join(stage, r));
            }
            if let Slot::Done(out) = slot
                && fail(out)
            {
                self.shared.failed.store(false, Ordering::Release);
                let removed = self.ring.remove(i);
                self.publish_held();
                return match removed {
                    Some(Slot::Done(out)) => Some(out),
                    _ => unreachable!("slot was done"),
                };
            }
        }
        None
    }
}
