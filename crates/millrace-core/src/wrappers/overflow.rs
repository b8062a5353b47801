//! [`OnOverflow`] and [`FailOnOverflow`]: a bounded buffer in front of a slow consumer, with a
//! choice of what happens when it is full; built by
//! [`on_overflow`](crate::PipelineExt::on_overflow) and
//! [`fail_on_overflow`](crate::PipelineExt::fail_on_overflow).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;

use super::driven::{Driver, Event, Policy};
use crate::error::{ConfigError, nonzero};
use crate::metrics::{Observable, StageMetrics};

/// What [`on_overflow`](crate::PipelineExt::on_overflow) does with an item that arrives while
/// the buffer is full. (To fail instead, use
/// [`fail_on_overflow`](crate::PipelineExt::fail_on_overflow).)
///
/// ```
/// use millrace::wrappers::Overflow;
///
/// assert_ne!(Overflow::DropOldest, Overflow::DropNewest);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Stop pulling until the consumer takes an item (nothing is dropped; what
    /// [`prefetch`](crate::PipelineExt::prefetch) does).
    Backpressure,
    /// Drop the oldest buffered item to make room (a live view wants the recent items).
    DropOldest,
    /// Drop the arriving item (the buffered ones are kept).
    DropNewest,
}

/// The stream overflowed its buffer under
/// [`fail_on_overflow`](crate::PipelineExt::fail_on_overflow).
///
/// ```
/// use millrace::wrappers::Overflowed;
///
/// let e = Overflowed { capacity: 8 };
/// assert_eq!(
///     e.to_string(),
///     "the consumer fell more than 8 items behind the upstream; consume faster, raise the capacity, or choose a dropping `Overflow` strategy"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflowed {
    /// The buffer's capacity.
    pub capacity: usize,
}

impl fmt::Display for Overflowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the consumer fell more than {} items behind the upstream; consume faster, raise the \
             capacity, or choose a dropping `Overflow` strategy",
            self.capacity
        )
    }
}

impl std::error::Error for Overflowed {}

/// A ring of `capacity` items with a full-buffer strategy (`None`: fail).
pub(crate) struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
    strategy: Option<Overflow>,
}

impl<T: Send + 'static> Policy<T> for Ring<T> {
    fn must_wait(&self) -> bool {
        self.strategy == Some(Overflow::Backpressure) && self.items.len() >= self.capacity
    }

    fn push(&mut self, item: T) -> Result<u64, ()> {
        if self.items.len() < self.capacity {
            self.items.push_back(item);
            return Ok(0);
        }
        match self.strategy {
            Some(Overflow::DropOldest) => {
                self.items.pop_front();
                self.items.push_back(item);
                Ok(1)
            }
            Some(Overflow::DropNewest) => Ok(1),
            // Backpressure never pushes into a full buffer; count it if it ever does.
            Some(Overflow::Backpressure) => {
                self.items.push_back(item);
                Ok(0)
            }
            None => Err(()),
        }
    }

    fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

fn ring<T>(
    stage: &'static str,
    capacity: usize,
    strategy: Option<Overflow>,
) -> Result<Ring<T>, ConfigError> {
    let capacity = nonzero(stage, "capacity", capacity)?.get();
    Ok(Ring {
        items: VecDeque::with_capacity(capacity.min(1024)),
        capacity,
        strategy,
    })
}

/// The number of items a stage dropped (or merged away), readable from anywhere.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::Overflow;
/// use futures::stream;
///
/// let s = stream::iter([1]).on_overflow(4, Overflow::DropOldest);
/// assert_eq!(s.drop_counter().get(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct DropCount {
    count: Arc<AtomicU64>,
}

impl DropCount {
    pub(crate) fn new(count: Arc<AtomicU64>) -> Self {
        DropCount { count }
    }

    /// Items dropped so far.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Overflow;
    /// use futures::stream;
    ///
    /// assert_eq!(stream::iter([1]).on_overflow(1, Overflow::DropNewest).drop_counter().get(), 0);
    /// ```
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Stream for the [`on_overflow`](crate::PipelineExt::on_overflow) method.
///
/// A producer task (spawned at the first poll) pulls the upstream as fast as it yields into a
/// buffer of `capacity` items; when the buffer is full the [`Overflow`] strategy applies.
/// Dropped items are counted ([`dropped`](OnOverflow::dropped)). An upstream panic is
/// re-raised in the consumer after every item buffered before it.
///
/// ```
/// use millrace::wrappers::{OnOverflow, Overflow};
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = OnOverflow::checked_new(stream::iter(0..3), 8, Overflow::DropOldest).unwrap();
/// assert_eq!(s.collect::<Vec<_>>().await, [0, 1, 2]);
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct OnOverflow<S: Stream> {
    driver: Driver<S, Ring<S::Item>>,
    capacity: usize,
    strategy: Overflow,
}

// The upstream is never pinned here: it moves onto the producer task at the first poll.
impl<S: Stream> Unpin for OnOverflow<S> {}
impl<S: Stream> Unpin for FailOnOverflow<S> {}

impl<S> OnOverflow<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    /// A buffer of `capacity` items with `strategy`.
    ///
    /// # Errors
    ///
    /// `capacity == 0` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::{OnOverflow, Overflow};
    /// use futures::stream;
    ///
    /// let err = OnOverflow::checked_new(stream::iter([1]), 0, Overflow::DropOldest).unwrap_err();
    /// assert_eq!(err.to_string(), "`on_overflow`: `capacity` must be at least 1, got 0; pass a non-zero value");
    /// ```
    pub fn checked_new(
        upstream: S,
        capacity: usize,
        strategy: Overflow,
    ) -> Result<Self, ConfigError> {
        let ring = ring("on_overflow", capacity, Some(strategy))?;
        Ok(OnOverflow {
            driver: Driver::new(upstream, ring),
            capacity,
            strategy,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(upstream: S, capacity: usize, strategy: Overflow) -> Result<Self, ConfigError> {
        Self::checked_new(upstream, capacity, strategy)
    }
}

impl<S: Stream> OnOverflow<S> {
    /// Items dropped so far.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Overflow;
    /// use futures::stream;
    ///
    /// assert_eq!(stream::iter([1]).on_overflow(2, Overflow::DropOldest).dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.driver.dropped().load(Ordering::Relaxed)
    }

    /// A handle on the drop count that outlives the stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Overflow;
    /// use futures::stream;
    ///
    /// assert_eq!(stream::iter([1]).on_overflow(2, Overflow::DropOldest).drop_counter().get(), 0);
    /// ```
    pub fn drop_counter(&self) -> DropCount {
        DropCount::new(self.driver.dropped())
    }

    /// The buffer's capacity.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Overflow;
    /// use futures::stream;
    ///
    /// assert_eq!(stream::iter([1]).on_overflow(2, Overflow::DropNewest).capacity(), 2);
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The strategy.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Overflow;
    /// use futures::stream;
    ///
    /// assert_eq!(stream::iter([1]).on_overflow(2, Overflow::DropNewest).strategy(), Overflow::DropNewest);
    /// ```
    pub fn strategy(&self) -> Overflow {
        self.strategy
    }
}

impl<S> Stream for OnOverflow<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.get_mut().driver.poll_item("on_overflow", cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.driver.lossy_size_hint()
    }
}

impl<S> FusedStream for OnOverflow<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.driver.is_done()
    }
}

impl<S: Stream> fmt::Debug for OnOverflow<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnOverflow")
            .field("capacity", &self.capacity)
            .field("strategy", &self.strategy)
            .field("driver", &self.driver)
            .finish()
    }
}

/// Reports [`StageSnapshot::buffered`](crate::metrics::StageSnapshot::buffered): the items
/// waiting in the buffer.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::Overflow;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter(0..3).on_overflow(8, Overflow::DropOldest).metered("live").with_events();
/// let m = s.metrics();
/// assert_eq!(s.collect::<Vec<_>>().await, [0, 1, 2]);
/// assert_eq!(m.snapshot().buffered, Some(0));
/// # }
/// ```
impl<S> Observable for OnOverflow<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    fn observe_into(&self, stage: &StageMetrics) {
        self.driver.track_buffered(stage);
    }
}

/// Stream for the [`fail_on_overflow`](crate::PipelineExt::fail_on_overflow) method.
///
/// Like [`OnOverflow`], but an item arriving while the buffer is full ends the stream: the
/// consumer receives every item buffered before it, then `Err(Overflowed)`, then the end; the
/// upstream is dropped at once and the arriving item is counted as dropped.
///
/// ```
/// use millrace::wrappers::FailOnOverflow;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = FailOnOverflow::checked_new(stream::iter(0..2), 4).unwrap();
/// assert_eq!(s.collect::<Vec<_>>().await, [Ok(0), Ok(1)]);
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct FailOnOverflow<S: Stream> {
    driver: Driver<S, Ring<S::Item>>,
    capacity: usize,
}

impl<S> FailOnOverflow<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    /// A buffer of `capacity` items that fails when it overflows.
    ///
    /// # Errors
    ///
    /// `capacity == 0` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::FailOnOverflow;
    /// use futures::stream;
    ///
    /// let err = FailOnOverflow::checked_new(stream::iter([1]), 0).unwrap_err();
    /// assert_eq!(err.to_string(), "`fail_on_overflow`: `capacity` must be at least 1, got 0; pass a non-zero value");
    /// ```
    pub fn checked_new(upstream: S, capacity: usize) -> Result<Self, ConfigError> {
        let ring = ring("fail_on_overflow", capacity, None)?;
        Ok(FailOnOverflow {
            driver: Driver::new(upstream, ring),
            capacity,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(upstream: S, capacity: usize) -> Result<Self, ConfigError> {
        Self::checked_new(upstream, capacity)
    }
}

impl<S: Stream> FailOnOverflow<S> {
    /// Items dropped so far (the one that overflowed, if any).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// assert_eq!(stream::iter([1]).fail_on_overflow(2).dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.driver.dropped().load(Ordering::Relaxed)
    }
}

impl<S> Stream for FailOnOverflow<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    type Item = Result<S::Item, Overflowed>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let capacity = this.capacity;
        match this.driver.poll_event("fail_on_overflow", cx) {
            Poll::Ready(Some(Event::Item(item))) => Poll::Ready(Some(Ok(item))),
            Poll::Ready(Some(Event::Overflowed)) => Poll::Ready(Some(Err(Overflowed { capacity }))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.driver.lossy_size_hint()
    }
}

impl<S> FusedStream for FailOnOverflow<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.driver.is_done()
    }
}

impl<S: Stream> fmt::Debug for FailOnOverflow<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailOnOverflow")
            .field("capacity", &self.capacity)
            .field("driver", &self.driver)
            .finish()
    }
}

/// Reports [`StageSnapshot::buffered`](crate::metrics::StageSnapshot::buffered): the items
/// waiting in the buffer.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter(0..3).fail_on_overflow(8).metered("strict").with_events();
/// let m = s.metrics();
/// assert_eq!(s.collect::<Vec<_>>().await, [Ok(0), Ok(1), Ok(2)]);
/// assert_eq!(m.snapshot().buffered, Some(0));
/// # }
/// ```
impl<S> Observable for FailOnOverflow<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    fn observe_into(&self, stage: &StageMetrics) {
        self.driver.track_buffered(stage);
    }
}
