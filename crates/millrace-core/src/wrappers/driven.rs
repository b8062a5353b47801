//! The engine shared by [`OnOverflow`](super::OnOverflow), [`FailOnOverflow`](super::FailOnOverflow)
//! and [`Conflate`](super::Conflate): a producer task pulls the upstream as fast as it gives
//! and pushes into a bounded buffer whose policy decides what happens when it is full; the
//! consumer pops.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::task::AtomicWaker;
use tokio_util::task::AbortOnDropHandle;

use super::fan::lock;
use crate::metrics::StageMetrics;

/// What a full buffer does with one more item.
pub(crate) trait Policy<T>: Send + 'static {
    /// Whether the producer must wait before pulling another item (backpressure).
    fn must_wait(&self) -> bool;
    /// Stores `item`; returns how many items were dropped (or merged away) to make room, and
    /// whether the stream must fail (`Err` ends the producer).
    fn push(&mut self, item: T) -> Result<u64, ()>;
    fn pop(&mut self) -> Option<T>;
    fn len(&self) -> usize;
}

/// The state both sides share.
pub(crate) struct Shared<T, P> {
    pub(crate) state: Mutex<State<P>>,
    consumer: AtomicWaker,
    producer: AtomicWaker,
    /// Items dropped (or merged away) so far: read by the counters, written under the lock.
    pub(crate) dropped: Arc<AtomicU64>,
    _item: std::marker::PhantomData<fn(T) -> T>,
}

pub(crate) struct State<P> {
    pub(crate) buf: P,
    /// The producer stopped: the upstream ended, panicked, or the buffer overflowed (`failed`).
    ended: bool,
    failed: bool,
}

/// What the consumer receives.
pub(crate) enum Event<T> {
    Item(T),
    /// The buffer overflowed (fail policy): every item before it was delivered.
    Overflowed,
}

enum Run<S> {
    Idle(S),
    Running(AbortOnDropHandle<()>),
    Done,
}

/// The consumer side: starts the producer at the first poll.
pub(crate) struct Driver<S: Stream, P> {
    shared: Arc<Shared<S::Item, P>>,
    run: Run<S>,
}

impl<S, P> Driver<S, P>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
    P: Policy<S::Item>,
{
    pub(crate) fn new(upstream: S, policy: P) -> Self {
        Driver {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    buf: policy,
                    ended: false,
                    failed: false,
                }),
                consumer: AtomicWaker::new(),
                producer: AtomicWaker::new(),
                dropped: Arc::new(AtomicU64::new(0)),
                _item: std::marker::PhantomData,
            }),
            run: Run::Idle(upstream),
        }
    }
}

impl<S: Stream, P> Driver<S, P> {
    pub(crate) fn dropped(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.shared.dropped)
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.run, Run::Done)
    }
}

impl<S, P> Driver<S, P>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
    P: Policy<S::Item>,
{
    /// Upstream hint while idle; afterwards, what is buffered as the lower bound.
    pub(crate) fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.run {
            Run::Idle(s) => {
                let (_, hi) = s.size_hint();
                (0, hi.map(|h| h.saturating_add(1)))
            }
            Run::Running(_) => (lock(&self.shared.state).buf.len(), None),
            Run::Done => (0, Some(0)),
        }
    }

    /// The hint of a stream that may drop (or merge) items: only something, if anything is
    /// left, is certain.
    pub(crate) fn lossy_size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.size_hint();
        (lo.min(1), hi)
    }

    /// The next item, for the policies whose overflow only drops (or merges) items.
    pub(crate) fn poll_item(&mut self, stage: &str, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        match self.poll_event(stage, cx) {
            Poll::Ready(Some(Event::Item(item))) => Poll::Ready(Some(item)),
            Poll::Ready(Some(Event::Overflowed) | None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Reports the buffer's length as `stage`'s
    /// [`buffered`](crate::metrics::StageSnapshot::buffered) gauge (0 once the stream is gone).
    pub(crate) fn track_buffered(&self, stage: &StageMetrics) {
        let shared = Arc::downgrade(&self.shared);
        stage.track_buffered(move || {
            shared
                .upgrade()
                .map_or(0, |s| lock(&s.state).buf.len() as u64)
        });
    }

    pub(crate) fn poll_event(
        &mut self,
        stage: &str,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Event<S::Item>>> {
        if let Run::Idle(_) = self.run {
            let Run::Idle(upstream) = std::mem::replace(&mut self.run, Run::Done) else {
                unreachable!("checked above")
            };
            let task = tokio::spawn(produce(upstream, Arc::clone(&self.shared)));
            self.run = Run::Running(AbortOnDropHandle::new(task));
        }
        let Run::Running(task) = &mut self.run else {
            return Poll::Ready(None);
        };
        // Registered before looking, so a push from now on wakes us.
        self.shared.consumer.register(cx.waker());
        let mut st = lock(&self.shared.state);
        let was_full = st.buf.must_wait();
        if let Some(item) = st.buf.pop() {
            drop(st);
            if was_full {
                self.shared.producer.wake();
            }
            return Poll::Ready(Some(Event::Item(item)));
        }
        if !st.ended {
            return Poll::Pending;
        }
        let failed = st.failed;
        drop(st);
        if failed {
            self.run = Run::Done;
            return Poll::Ready(Some(Event::Overflowed));
        }
        // Every item was delivered; now learn how the producer ended.
        let result = match Pin::new(task).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        self.run = Run::Done;
        match result {
            Ok(()) => Poll::Ready(None),
            Err(e) => crate::wrappers::map_concurrent::unwrap_join(stage, Err(e)),
        }
    }
}

impl<S: Stream, P> fmt::Debug for Driver<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = match self.run {
            Run::Idle(_) => "idle",
            Run::Running(_) => "running",
            Run::Done => "done",
        };
        f.debug_struct("Driver")
            .field("state", &run)
            .field("dropped", &self.shared.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Marks the producer ended on every exit (end, overflow, panic, abort) and wakes the consumer.
struct EndGuard<'a, T, P>(&'a Shared<T, P>);

impl<T, P> Drop for EndGuard<'_, T, P> {
    fn drop(&mut self) {
        lock(&self.0.state).ended = true;
        self.0.consumer.wake();
    }
}

async fn produce<S, P>(upstream: S, shared: Arc<Shared<S::Item, P>>)
where
    S: Stream,
    P: Policy<S::Item>,
{
    let _guard = EndGuard(&shared);
    let mut upstream = pin!(upstream);
    loop {
        // Backpressure: wait for room before pulling.
        poll_fn(|cx| {
            if !lock(&shared.state).buf.must_wait() {
                return Poll::Ready(());
            }
            shared.producer.register(cx.waker());
            if lock(&shared.state).buf.must_wait() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        let Some(item) = poll_fn(|cx| upstream.as_mut().poll_next(cx)).await else {
            return;
        };
        let mut st = lock(&shared.state);
        let pushed = st.buf.push(item);
        match pushed {
            Ok(dropped) => {
                if dropped > 0 {
                    let now = shared.dropped.load(Ordering::Relaxed) + dropped;
                    shared.dropped.store(now, Ordering::Relaxed);
                }
            }
            Err(()) => {
                let now = shared.dropped.load(Ordering::Relaxed) + 1;
                shared.dropped.store(now, Ordering::Relaxed);
                st.failed = true;
                drop(st);
                return; // the guard marks the end; the upstream is dropped here
            }
        }
        drop(st);
        shared.consumer.wake();
    }
}
