//! [`Conflate`]: while the consumer is busy, items are merged into one; built by
//! [`conflate`](crate::PipelineExt::conflate) and [`latest`](crate::PipelineExt::latest).

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;

use super::driven::{Driver, Policy};
use super::overflow::DropCount;
use crate::metrics::{Observable, StageMetrics};

/// One pending value, merged with each arriving item.
pub(crate) struct Slot<T, F> {
    value: Option<T>,
    merge: F,
}

impl<T, F> Policy<T> for Slot<T, F>
where
    T: Send + 'static,
    F: FnMut(T, T) -> T + Send + 'static,
{
    fn must_wait(&self) -> bool {
        false
    }

    fn push(&mut self, item: T) -> Result<u64, ()> {
        match self.value.take() {
            None => {
                self.value = Some(item);
                Ok(0)
            }
            Some(pending) => {
                self.value = Some((self.merge)(pending, item));
                Ok(1)
            }
        }
    }

    fn pop(&mut self) -> Option<T> {
        self.value.take()
    }

    fn len(&self) -> usize {
        usize::from(self.value.is_some())
    }
}

/// Stream for the [`conflate`](crate::PipelineExt::conflate) and
/// [`latest`](crate::PipelineExt::latest) methods.
///
/// A producer task (spawned at the first poll) pulls the upstream as fast as it yields; an
/// item arriving while the previous one still waits for the consumer is merged into it with
/// `merge(pending, new)`. At most one item waits. Merges are counted
/// ([`conflated`](Conflate::conflated)). An upstream panic is re-raised in the consumer after
/// the pending item. A panic in `merge` is re-raised in the consumer too (the two items it
/// was merging go with it).
///
/// ```
/// use millrace::wrappers::Conflate;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = Conflate::new(stream::iter([1, 2, 3]), |a, b| a + b);
/// let total: i32 = s.collect::<Vec<_>>().await.iter().sum();
/// assert_eq!(total, 6); // however the items were grouped, nothing is lost in a sum
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Conflate<S: Stream, F> {
    driver: Driver<S, Slot<S::Item, F>>,
}

// The upstream is never pinned here: it moves onto the producer task at the first poll.
impl<S: Stream, F> Unpin for Conflate<S, F> {}

impl<S, F> Conflate<S, F>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
    F: FnMut(S::Item, S::Item) -> S::Item + Send + 'static,
{
    /// Merges the items that arrive while the consumer is busy with `merge`.
    pub fn new(upstream: S, merge: F) -> Self {
        Conflate {
            driver: Driver::new(upstream, Slot { value: None, merge }),
        }
    }
}

impl<S: Stream, F> Conflate<S, F> {
    /// Items merged into a pending one so far (for [`latest`](crate::PipelineExt::latest):
    /// items dropped because a newer one arrived).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// assert_eq!(stream::iter([1]).latest().conflated(), 0);
    /// ```
    pub fn conflated(&self) -> u64 {
        self.driver.dropped().load(Ordering::Relaxed)
    }

    /// A handle on [`conflated`](Self::conflated) that outlives the stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// assert_eq!(stream::iter([1]).latest().drop_counter().get(), 0);
    /// ```
    pub fn drop_counter(&self) -> DropCount {
        DropCount::new(self.driver.dropped())
    }
}

impl<S, F> Stream for Conflate<S, F>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
    F: FnMut(S::Item, S::Item) -> S::Item + Send + 'static,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.get_mut().driver.poll_item("conflate", cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.driver.lossy_size_hint()
    }
}

impl<S, F> FusedStream for Conflate<S, F>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
    F: FnMut(S::Item, S::Item) -> S::Item + Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.driver.is_done()
    }
}

impl<S: Stream, F> fmt::Debug for Conflate<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conflate")
            .field("driver", &self.driver)
            .finish()
    }
}

/// Reports [`StageSnapshot::buffered`](crate::metrics::StageSnapshot::buffered): 1 while a
/// merged item waits for the consumer, else 0.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter(0..3).latest().metered("view").with_events();
/// let m = s.metrics();
/// let _ = s.collect::<Vec<_>>().await;
/// assert_eq!(m.snapshot().buffered, Some(0));
/// # }
/// ```
impl<S, F> Observable for Conflate<S, F>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
    F: FnMut(S::Item, S::Item) -> S::Item + Send + 'static,
{
    fn observe_into(&self, stage: &StageMetrics) {
        self.driver.track_buffered(stage);
    }
}
