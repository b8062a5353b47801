//! Fan-in that `futures` lacks: [`TryMerge`] (ends on the first error) and [`MergeInOrder`]
//! (indexed branches back into index order).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use futures_util::stream::{SelectAll, StreamExt};

/// Merges fallible streams as they produce, and **ends on the first error**: the error is
/// yielded and every stream is dropped at once (`futures`' `select_all` would go on).
///
/// # Order
///
/// Items arrive in the order the streams produce them (round-robin among the ready ones, as
/// `select_all`); the order within one stream is kept.
///
/// # Cancel safety
///
/// Dropping the merge drops every stream. After the error nothing more is polled.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let a = stream::iter([Ok(1), Err("disk full"), Ok(3)]);
/// let b = stream::iter([Ok(10), Ok(20), Ok(30)]);
/// let out: Vec<Result<i32, &str>> = try_merge([a, b]).collect().await;
/// assert_eq!(out.last(), Some(&Err("disk full")));
/// assert!(!out.contains(&Ok(3)));
/// # }
/// ```
pub fn try_merge<I, S, T, E>(streams: I) -> TryMerge<S>
where
    I: IntoIterator<Item = S>,
    S: Stream<Item = Result<T, E>> + Unpin,
{
    TryMerge {
        inner: futures_util::stream::select_all(streams),
        done: false,
    }
}

/// Stream for [`try_merge`].
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::TryMerge;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let merged: TryMerge<_> = try_merge([stream::iter([Ok::<_, ()>(1)])]);
/// assert_eq!(merged.collect::<Vec<_>>().await, [Ok(1)]);
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct TryMerge<S> {
    inner: SelectAll<S>,
    done: bool,
}

impl<S, T, E> Stream for TryMerge<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(item))) => Poll::Ready(Some(Ok(item))),
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                this.inner.clear();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            // An error may end it at once.
            (0, self.inner.size_hint().1)
        }
    }
}

impl<S, T, E> FusedStream for TryMerge<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S: Stream + Unpin> fmt::Debug for TryMerge<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMerge")
            .field("streams", &self.inner.len())
            .field("done", &self.done)
            .finish()
    }
}

/// Merges streams of `(index, item)` pairs, each ascending in `index`, into one stream in
/// ascending `index` order: the fan-in for branches that came from one
/// [`partition`](crate::PipelineExt::partition) of an `enumerate()`d stream.
///
/// # Order
///
/// The item with the next index (the last yielded plus one) is yielded as soon as it arrives;
/// otherwise the smallest head is yielded once every unfinished stream has a head, so gaps
/// (items filtered out in a branch) cost a wait, never a hang. Ties keep the streams' order.
/// A stream whose indices go down is not reordered: its items come out where they are found.
///
/// # Bound
///
/// One item held per stream.
///
/// # Cancel safety
///
/// Dropping the merge drops every stream and the held items.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let parts = stream::iter(["a", "bb", "c", "dd"]).enumerate().partition(2, |(_, s)| s.len() - 1);
/// let lens = parts.into_iter().map(|p| p.map(|(i, s)| (i, s.len())));
/// let out: Vec<(usize, usize)> = merge_in_order(lens).collect().await;
/// assert_eq!(out, [(0, 1), (1, 2), (2, 1), (3, 2)]);
/// # }
/// ```
pub fn merge_in_order<I, S, T>(streams: I) -> MergeInOrder<S, T>
where
    I: IntoIterator<Item = S>,
    S: Stream<Item = (usize, T)>,
{
    MergeInOrder {
        streams: streams
            .into_iter()
            .map(|s| Input {
                stream: Box::pin(s),
                head: None,
                done: false,
            })
            .collect(),
        next: 0,
        done: false,
    }
}

/// Stream for [`merge_in_order`].
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::MergeInOrder;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let m: MergeInOrder<_, char> =
///     merge_in_order([stream::iter(vec![(1, 'b')]), stream::iter(vec![(0, 'a'), (2, 'c')])]);
/// assert_eq!(m.map(|(_, c)| c).collect::<String>().await, "abc");
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct MergeInOrder<S, T> {
    streams: Vec<Input<S, T>>,
    /// The index expected next (the last yielded plus one).
    next: usize,
    done: bool,
}

struct Input<S, T> {
    stream: Pin<Box<S>>,
    head: Option<(usize, T)>,
    done: bool,
}

// The streams are boxed; the held items are never pinned.
impl<S, T> Unpin for MergeInOrder<S, T> {}

impl<S, T> Stream for MergeInOrder<S, T>
where
    S: Stream<Item = (usize, T)>,
{
    type Item = (usize, T);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut waiting = false;
        for input in &mut this.streams {
            if input.head.is_none() && !input.done {
                match input.stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => input.head = Some(item),
                    Poll::Ready(None) => input.done = true,
                    Poll::Pending => waiting = true,
                }
            }
            if input.head.as_ref().is_some_and(|(i, _)| *i == this.next) {
                break; // the next index: no need to look further
            }
        }
        let expected = this
            .streams
            .iter()
            .position(|s| s.head.as_ref().is_some_and(|(i, _)| *i == this.next));
        let pick = match expected {
            Some(at) => Some(at),
            None if waiting => return Poll::Pending,
            None => this
                .streams
                .iter()
                .enumerate()
                .filter_map(|(at, s)| s.head.as_ref().map(|(i, _)| (*i, at)))
                .min()
                .map(|(_, at)| at),
        };
        match pick.and_then(|at| this.streams[at].head.take()) {
            Some((i, item)) => {
                this.next = i.wrapping_add(1);
                Poll::Ready(Some((i, item)))
            }
            None => {
                this.done = true;
                this.streams.clear();
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.streams.iter().fold((0, Some(0)), |(lo, hi), s| {
            let held = usize::from(s.head.is_some());
            let (slo, shi) = if s.done {
                (0, Some(0))
            } else {
                s.stream.size_hint()
            };
            (
                lo.saturating_add(slo).saturating_add(held),
                hi.zip(shi)
                    .and_then(|(h, sh)| h.checked_add(sh)?.checked_add(held)),
            )
        })
    }
}

impl<S, T> FusedStream for MergeInOrder<S, T>
where
    S: Stream<Item = (usize, T)>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S, T> fmt::Debug for MergeInOrder<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MergeInOrder")
            .field("streams", &self.streams.len())
            .field("next", &self.next)
            .field("done", &self.done)
            .finish()
    }
}
