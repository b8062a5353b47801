//! The low-water mark of an unordered concurrent stage.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::Positioned;

/// What is in flight between admission and completion: each admitted entry's sequence number
/// with the position of the entry admitted before it.
#[derive(Debug)]
struct Marks<P> {
    next_seq: u64,
    /// In flight: sequence number → position of the entry before it (`None`: none in this run).
    pending: BTreeMap<u64, Option<P>>,
    /// The position of the last entry admitted.
    last: Option<P>,
}

type Shared<P> = Arc<Mutex<Marks<P>>>;

fn lock<P>(marks: &Shared<P>) -> std::sync::MutexGuard<'_, Marks<P>> {
    // The critical sections cannot panic half-way through an update.
    marks.lock().unwrap_or_else(PoisonError::into_inner)
}

pin_project! {
    /// Numbers the entries going into an unordered concurrent stage and remembers, for each,
    /// the position of the entry before it.
    #[must_use = "streams do nothing unless polled"]
    pub(crate) struct Admit<S, P> {
        #[pin]
        upstream: S,
        marks: Shared<P>,
    }
}

impl<S, P, T> Stream for Admit<S, P>
where
    S: Stream<Item = Positioned<P, T>>,
    P: Clone,
{
    type Item = (u64, Positioned<P, T>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let Some(p) = ready!(this.upstream.poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let mut marks = lock(this.marks);
        let seq = marks.next_seq;
        marks.next_seq += 1;
        let before = marks.last.replace(p.position.clone());
        marks.pending.insert(seq, before);
        Poll::Ready(Some((seq, p)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.upstream.size_hint()
    }
}

/// The admission side's handle, turned into a [`LowWaterMark`] around the concurrent stage.
pub(crate) struct MarkHandle<P>(Shared<P>);

impl<P> MarkHandle<P> {
    pub(crate) fn wrap<S>(self, inner: S) -> LowWaterMark<S, P> {
        LowWaterMark {
            inner,
            marks: self.0,
        }
    }
}

/// Starts tracking an unordered stage: number its input with [`Admit`], wrap its output with
/// the returned handle.
pub(crate) fn admit<U, P>(upstream: U) -> (Admit<U, P>, MarkHandle<P>) {
    let marks = Arc::new(Mutex::new(Marks {
        next_seq: 0,
        pending: BTreeMap::new(),
        last: None,
    }));
    (
        Admit {
            upstream,
            marks: Arc::clone(&marks),
        },
        MarkHandle(marks),
    )
}

pin_project! {
    /// The output side of [`Tracked::map_concurrent_unordered`](super::Tracked::map_concurrent_unordered):
    /// each completed entry leaves with the low-water mark as its position (the position of
    /// the last entry of the contiguous done prefix of the input; `P::default()` before any).
    #[must_use = "streams do nothing unless polled"]
    pub struct LowWaterMark<S, P> {
        #[pin]
        inner: S,
        marks: Shared<P>,
    }
}

impl<S, P> LowWaterMark<S, P> {
    /// How many entries are in flight (admitted, not yet yielded).
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::stream;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let t = positions::track(stream::iter([(1u64, 1)])).map_concurrent_unordered(2, |x| async move { x });
    /// assert_eq!(t.get_ref().in_flight(), 0);
    /// # }
    /// ```
    pub fn in_flight(&self) -> usize {
        lock(&self.marks).pending.len()
    }
}

impl<S: fmt::Debug, P> fmt::Debug for LowWaterMark<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LowWaterMark")
            .field("inner", &self.inner)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl<S, P, T> Stream for LowWaterMark<S, P>
where
    S: Stream<Item = (u64, Positioned<P, T>)>,
    P: Clone + Default,
{
    type Item = Positioned<P, T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let Some((seq, p)) = ready!(this.inner.poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let mut marks = lock(this.marks);
        marks.pending.remove(&seq);
        // Everything before the oldest entry still in flight is done; with none in flight,
        // everything admitted is.
        let mark = match marks.pending.first_key_value() {
            Some((_, before)) => before.clone(),
            None => marks.last.clone(),
        };
        Poll::Ready(Some(Positioned {
            position: mark.unwrap_or_default(),
            entry: p.entry,
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S, P, T> FusedStream for LowWaterMark<S, P>
where
    S: FusedStream<Item = (u64, Positioned<P, T>)>,
    P: Clone + Default,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}
