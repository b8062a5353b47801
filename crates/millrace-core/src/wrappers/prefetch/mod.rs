//! [`Prefetch`]: drives the upstream on its own tokio task into a bounded buffer; built by
//! [`prefetch`](crate::PipelineExt::prefetch).
//!
//! # Design
//!
//! The producer task pulls items while the upstream is `Ready` into a `Vec` *chunk* and hands
//! the whole chunk over when it is full or when the upstream returns `Pending`, so the
//! cross-task cost (one channel send, one receive, one semaphore release) is paid per chunk,
//! not per item; per item the consumer only steps a `vec::IntoIter`.
//!
//! The bound is kept by a [`Semaphore`] holding one permit per item of capacity: the producer
//! holds a permit for every item it has pulled and not yet seen yielded, and the consumer gives
//! a chunk's permits back when it yields that chunk's last item. Chunks travel over an
//! *unbounded* mpsc channel whose length is nevertheless bounded by the permits (every chunk
//! holds at least one item), so there is exactly one limit to reason about: `capacity`.
//!
//! Per item, both sides keep their loop state in registers, which takes two rules (LLVM
//! gives up on keeping a future's state in registers as soon as a pointer into it reaches a
//! call it cannot inline):
//! - consumer: the fast path, inlined into the sink's loop, is one `vec::IntoIter::next` on
//!   the chunk in hand plus a test for its last item. Everything else sits in a `Box` made by
//!   the constructor, and the out-of-line calls (receive a chunk, start the task, end, give
//!   a chunk's permits back) get only that heap pointer and values, never `&mut self`;
//! - producer: `fill` runs once per chunk, out of line, with the upstream as a `noalias`
//!   argument, and pushes into a local `Vec` that provably never grows.
//!
//! What that buys, measured, is in `benches/RESULTS.md` ("Design notes moved from the rustdoc",
//! `prefetch`).

use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio_util::task::AbortOnDropHandle;

use crate::error::{ConfigError, nonzero};
use crate::metrics::{Observable, StageMetrics};

mod producer;
mod stage;

use self::producer::produce;
pub use self::stage::PrefetchStage;

/// The largest chunk the producer hands over at once. Larger chunks amortise the hand-over
/// further but hold more items back from a fast consumer; 128 puts the per-chunk cost
/// (a few hundred instructions) at a few instructions per item.
const MAX_CHUNK: usize = 128;

/// Stream for the [`prefetch`](crate::PipelineExt::prefetch) method.
///
/// There are no `get_ref`/`into_inner` accessors: the upstream moves onto the producer task at
/// the first poll, so the wrapper no longer owns it.
///
/// ```
/// use millrace::wrappers::Prefetch;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ahead = Prefetch::checked_new(stream::iter(0..5), 2).unwrap();
/// assert_eq!(ahead.collect::<Vec<_>>().await, [0, 1, 2, 3, 4]);
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Prefetch<S: Stream> {
    /// The chunk being yielded. It lives here, not behind the box, so that the fast path is
    /// one `vec::IntoIter::next` whose cursor LLVM can keep in a register in the consumer's loop.
    chunk: std::vec::IntoIter<S::Item>,
    /// Everything else, boxed (one allocation per stream, made by the constructor) so that the
    /// out-of-line slow path receives only this heap pointer, never a pointer into the
    /// consumer's future: a pointer that escapes into a call makes LLVM keep the whole
    /// pipeline's state in memory (benches/RESULTS.md, "prefetch").
    inner: Box<Inner<S>>,
}

struct Inner<S: Stream> {
    state: State<S>,
    capacity: NonZeroUsize,
    /// Made by the constructor, so a metrics gauge can hold it before the first poll.
    counts: Arc<Counts>,
}

/// Live counts for the `buffered` gauge, touched once per chunk (never per item).
#[derive(Debug, Default)]
struct Counts {
    /// Items the producer handed over (written by the producer only).
    sent: AtomicU64,
    /// Items whose permits the consumer gave back: every item of the chunks it finished
    /// (written by the consumer only).
    released: AtomicU64,
    /// The stream was dropped: nothing is buffered any more.
    closed: AtomicBool,
}

impl Counts {
    /// Items handed over and not given back: counted per chunk, so the items already
    /// yielded from the chunk in hand still count until its last one is yielded.
    fn held(&self) -> u64 {
        if self.closed.load(Ordering::Acquire) {
            return 0;
        }
        // `released` first: every release we see was preceded by the send it releases.
        let released = self.released.load(Ordering::Acquire);
        self.sent.load(Ordering::Acquire).saturating_sub(released)
    }

    /// Adds `n` to a single-writer counter.
    fn add(counter: &AtomicU64, n: usize) {
        let now = counter.load(Ordering::Relaxed).wrapping_add(n as u64);
        counter.store(now, Ordering::Release);
    }
}

enum State<S: Stream> {
    /// Not polled yet: the upstream is still here (never pinned in place, it is moved out).
    Idle(S),
    Running(Running<S::Item>),
    Done,
}

/// What the slow path returns: the first item of a new chunk with the rest of it, the end, or
/// `Pending`.
type Refill<T> = Poll<Option<(T, std::vec::IntoIter<T>)>>;

struct Running<T> {
    chunks: UnboundedReceiver<Vec<T>>,
    permits: Arc<Semaphore>,
    /// The original length of the chunk in hand (the permits to give back).
    chunk_len: usize,
    /// Items received from the producer so far (yielded = received - chunk.len()), for
    /// `size_hint`.
    received: usize,
    /// The upstream's `size_hint` when it moved onto the task.
    upstream_hint: (usize, Option<usize>),
    task: AbortOnDropHandle<()>,
}

// The upstream is never pinned inside `Prefetch` (it is moved onto the task before it is first
// polled), and nothing else in it is address-sensitive.
impl<S: Stream> Unpin for Prefetch<S> {}

impl<S> Prefetch<S>
where
    S: Stream + Send + 'static,
    S::Item: Send,
{
    /// Prefetches up to `capacity` items ahead of the consumer.
    ///
    /// # Errors
    ///
    /// `capacity == 0` (or above [`Semaphore::MAX_PERMITS`]) is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::Prefetch;
    /// use futures::stream;
    ///
    /// let err = Prefetch::checked_new(stream::iter([1]), 0).unwrap_err();
    /// assert_eq!(err.to_string(), "`prefetch`: `capacity` must be at least 1, got 0; pass a non-zero value");
    /// ```
    pub fn checked_new(stream: S, capacity: usize) -> Result<Self, ConfigError> {
        Ok(Prefetch::idle(stream, checked_capacity(capacity)?))
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(stream: S, capacity: usize) -> Result<Self, ConfigError> {
        Self::checked_new(stream, capacity)
    }

    /// The configured capacity: the most items ever pulled from the upstream and not yet
    /// yielded.
    pub fn capacity(&self) -> usize {
        self.inner.capacity.get()
    }

    fn idle(stream: S, capacity: NonZeroUsize) -> Self {
        Prefetch {
            chunk: Vec::new().into_iter(),
            inner: Box::new(Inner {
                state: State::Idle(stream),
                capacity,
                counts: Arc::new(Counts::default()),
            }),
        }
    }
}

impl<S: Stream> Prefetch<S> {
    /// Items produced ahead and not yet yielded: pulled from the upstream by the producer
    /// task, waiting in the buffer (at most [`capacity`](Prefetch::capacity)). Exact as seen
    /// by the consumer; 0 before the first poll and after the end.
    ///
    /// (Not called `buffered`: with `futures::StreamExt` in scope, `s.buffered()` would resolve
    /// to `StreamExt::buffered(self, n)`, which takes `self` by value and so wins.)
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut s = stream::iter(0..100).prefetch(8);
    /// assert_eq!(s.buffered_len(), 0); // not started yet
    /// assert_eq!(s.next().await, Some(0)); // starts the producer
    /// tokio::task::yield_now().await; // lets it fill the buffer
    /// // Items 1..=7 wait: item 0's chunk keeps its slot until the chunk is yielded.
    /// assert_eq!(s.buffered_len(), 7);
    /// # }
    /// ```
    pub fn buffered_len(&self) -> usize {
        let State::Running(run) = &self.inner.state else {
            return 0;
        };
        let held = usize::try_from(self.inner.counts.held()).unwrap_or(usize::MAX);
        let in_hand = self.chunk.len();
        // The chunk in hand keeps its permits (counted in `held`) until its last item is
        // yielded; its items already yielded are not buffered.
        let yielded_in_hand = if in_hand > 0 {
            run.chunk_len - in_hand
        } else {
            0
        };
        held.saturating_sub(yielded_in_hand)
    }
}

/// Reports [`StageSnapshot::buffered`](crate::metrics::StageSnapshot::buffered): items the
/// producer handed over and the consumer has not released, counted per chunk (a chunk is
/// released when its last item is yielded, so the gauge can be up to one chunk,
/// `min(capacity / 2, 128)` items, above [`Prefetch::buffered_len`] while the consumer is in
/// the middle of a chunk). It reads two atomics the stream updates once per chunk: the hot
/// path does not change. Drops to 0 when the stream is dropped.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut s = stream::iter(0..100).prefetch(8).metered("ahead").with_events();
/// let m = s.metrics();
/// assert_eq!(m.snapshot().buffered, Some(0));
/// for _ in 0..4 {
///     s.next().await; // one whole chunk of 4
/// }
/// tokio::task::yield_now().await;
/// assert_eq!(m.snapshot().buffered, Some(8));
/// drop(s);
/// assert_eq!(m.snapshot().buffered, Some(0));
/// # }
/// ```
impl<S: Stream> Observable for Prefetch<S> {
    fn observe_into(&self, stage: &StageMetrics) {
        let counts = Arc::clone(&self.inner.counts);
        stage.track_buffered(move || counts.held());
    }
}

impl<S: Stream> Drop for Inner<S> {
    fn drop(&mut self) {
        self.counts.closed.store(true, Ordering::Release);
    }
}

impl<S> Inner<S>
where
    S: Stream + Send + 'static,
    S::Item: Send,
{
    /// The chunk in hand was yielded to its last item: its permits go back to the producer.
    #[cold]
    #[inline(never)]
    fn chunk_done(&self) {
        if let State::Running(run) = &self.state {
            Counts::add(&self.counts.released, run.chunk_len);
            run.permits.add_permits(run.chunk_len);
        }
    }

    /// The chunk in hand (`spent`, handed over by value) is empty: starts the producer, or
    /// receives the next chunk and returns its first item with the rest, or learns how the
    /// producer ended. Sees only the heap state and values, never the consumer's future.
    #[inline(never)]
    fn poll_chunk(
        &mut self,
        spent: std::vec::IntoIter<S::Item>,
        cx: &mut Context<'_>,
    ) -> Refill<S::Item> {
        drop(spent);
        if let State::Idle(_) = self.state {
            self.start();
        }
        let State::Running(run) = &mut self.state else {
            return Poll::Ready(None);
        };
        match run.chunks.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                run.chunk_len = chunk.len();
                run.received += chunk.len();
                let mut rest = chunk.into_iter();
                // Chunks are never empty.
                let Some(first) = rest.next() else {
                    unreachable!("`prefetch`: the producer sent an empty chunk")
                };
                if rest.len() == 0 {
                    Counts::add(&self.counts.released, run.chunk_len);
                    run.permits.add_permits(run.chunk_len);
                }
                Poll::Ready(Some((first, rest)))
            }
            // Every chunk was delivered; now learn how the producer ended.
            Poll::Ready(None) => {
                let result = match Pin::new(&mut run.task).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(result) => result,
                };
                self.state = State::Done;
                match result {
                    Ok(()) => Poll::Ready(None),
                    Err(err) if err.is_panic() => resume_unwind(err.into_panic()),
                    Err(_) => panic!(
                        "`prefetch`: the producer task was cancelled before the upstream ended \
                         (is the tokio runtime shutting down?)"
                    ),
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn start(&mut self) {
        let State::Idle(stream) = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        let capacity = self.capacity.get();
        let chunk_max = (capacity / 2).clamp(1, MAX_CHUNK);
        let permits = Arc::new(Semaphore::new(capacity));
        let (tx, rx) = unbounded_channel();
        let upstream_hint = stream.size_hint();
        let task = tokio::spawn(produce(
            stream,
            tx,
            Arc::clone(&permits),
            Arc::clone(&self.counts),
            chunk_max,
        ));
        self.state = State::Running(Running {
            chunks: rx,
            permits,
            chunk_len: 0,
            received: 0,
            upstream_hint,
            task: AbortOnDropHandle::new(task),
        });
    }
}

fn checked_capacity(capacity: usize) -> Result<NonZeroUsize, ConfigError> {
    let capacity = nonzero("prefetch", "capacity", capacity)?;
    if capacity.get() > Semaphore::MAX_PERMITS {
        return Err(ConfigError::out_of_range(
            "prefetch",
            "capacity",
            capacity,
            "at most `tokio::sync::Semaphore::MAX_PERMITS`",
        ));
    }
    Ok(capacity)
}

impl<S> Stream for Prefetch<S>
where
    S: Stream + Send + 'static,
    S::Item: Send,
{
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        // Fast path, a few instructions per item: the next item of the chunk in hand.
        if let Some(item) = this.chunk.next() {
            if this.chunk.len() == 0 {
                // The chunk's last item: its permits go back to the producer now, so a
                // consumer that stalls here leaves the producer exactly `capacity` ahead.
                this.inner.chunk_done();
            }
            return Poll::Ready(Some(item));
        }
        // Slow path: it gets the heap state and the spent chunk by value, never `this`.
        let spent = std::mem::replace(&mut this.chunk, Vec::new().into_iter());
        match this.inner.poll_chunk(spent, cx) {
            Poll::Ready(Some((item, rest))) => {
                this.chunk = rest;
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner.state {
            State::Idle(stream) => stream.size_hint(),
            State::Running(run) => {
                let (lo, hi) = run.upstream_hint;
                let in_hand = self.chunk.len();
                let yielded = run.received - in_hand;
                let lower = lo.saturating_sub(yielded).max(in_hand);
                let upper = hi.map(|hi| hi.saturating_sub(yielded).max(in_hand));
                (lower, upper)
            }
            State::Done => (0, Some(0)),
        }
    }
}

impl<S> FusedStream for Prefetch<S>
where
    S: Stream + Send + 'static,
    S::Item: Send,
{
    fn is_terminated(&self) -> bool {
        matches!(self.inner.state, State::Done)
    }
}

impl<S: Stream> fmt::Debug for Prefetch<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (state, buffered) = match &self.inner.state {
            State::Idle(_) => ("idle", 0),
            State::Running(_) => ("running", self.chunk.len()),
            State::Done => ("done", 0),
        };
        f.debug_struct("Prefetch")
            .field("capacity", &self.inner.capacity)
            .field("state", &state)
            .field("in_hand", &buffered)
            .finish_non_exhaustive()
    }
}
