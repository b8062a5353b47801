//! [`Restartable`]: a source re-opened from a checkpoint by a factory.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::checkpoint::{Checkpoint, Checkpointer, CustomCheckpoint};
use crate::policy::RetryPolicy;

use super::Retry;

/// A source opened by `factory(&checkpoint)`, which can be re-opened after errors with
/// [`.retry(policy)`](Restartable::retry).
///
/// The factory receives the default [`Checkpoint`] (`delivered` count and `last` item) and
/// must return a stream that resumes after it; a source that cannot seek re-opens from the
/// start and uses [`.skip_delivered()`](Restartable::skip_delivered). For a cursor instead of
/// the last item, use [`custom_checkpoint(init, update).restartable(factory)`](crate::checkpoint::CustomCheckpoint::restartable).
///
/// The source is opened lazily, on the first poll. Without `.retry(..)` an `Err` is yielded
/// and ends the stream.
///
/// # Examples
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut opens = 0;
/// let numbers = restartable(move |cp: &Checkpoint<u64>| {
///     opens += 1;
///     let fail_at = if opens == 1 { Some(3) } else { None }; // the first connection drops at #3
///     stream::iter(cp.delivered..5).map(move |i| if Some(i) == fail_at { Err("reset") } else { Ok(i) })
/// })
/// .retry(RetryPolicy::fixed(Duration::from_millis(100), 3));
/// let out: Vec<Result<u64, &str>> = numbers.collect().await;
/// assert_eq!(out, [Ok(0), Ok(1), Ok(2), Ok(3), Ok(4)]);
/// # }
/// ```
///
/// # Panics
///
/// A panic in `factory` propagates to the consumer's poll.
pub fn restartable<F, S, T, E>(factory: F) -> Restartable<F, S, Checkpoint<T>>
where
    F: FnMut(&Checkpoint<T>) -> S,
    S: Stream<Item = Result<T, E>>,
    T: Clone,
{
    Restartable::new(factory)
}

pin_project! {
    /// Stream for the [`restartable`](crate::restartable) constructor: a source opened by
    /// `factory(&checkpoint)`, recording every delivered item in its checkpoint.
    ///
    /// On its own it opens the source lazily on the first poll and does **not** retry: an
    /// `Err` is yielded and the stream ends. Call [`retry`](Self::retry) to re-open the
    /// source after errors.
    ///
    /// There is no `get_ref`/`into_inner`: the source is replaced on every re-open, so it is
    /// exposed as an `Option` by [`source`](Self::source).
    #[must_use = "streams do nothing unless polled"]
    pub struct Restartable<F, S, K> {
        factory: F,
        checkpointer: K,
        #[pin]
        source: Option<S>,
        // Items delivered to the consumer (the checkpointer may not count them).
        delivered: u64,
        // Items the current source must still drop (skip_delivered mode only).
        to_skip: u64,
        skip_delivered: bool,
        opens: u64,
        done: bool,
    }
}

impl<F, S, K: fmt::Debug> fmt::Debug for Restartable<F, S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Restartable")
            .field("checkpointer", &self.checkpointer)
            .field("open", &self.source.is_some())
            .field("delivered", &self.delivered)
            .field("skip_delivered", &self.skip_delivered)
            .field("opens", &self.opens)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<F, S, T> Restartable<F, S, Checkpoint<T>>
where
    F: FnMut(&Checkpoint<T>) -> S,
{
    /// A restartable source with the default [`Checkpoint`]; same as
    /// [`restartable`](crate::restartable).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Restartable;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = Restartable::new(|cp: &Checkpoint<u64>| stream::iter((cp.delivered..3).map(Ok::<_, String>)));
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(0), Ok(1), Ok(2)]);
    /// # }
    /// ```
    pub fn new(factory: F) -> Self {
        Self::with_checkpointer(factory, Checkpoint::default())
    }
}

impl<F, S, K> Restartable<F, S, K> {
    /// A restartable source recording into `checkpointer`; the factory receives its
    /// checkpoint (see [`CustomCheckpoint::restartable`]).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Restartable;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cursor = custom_checkpoint(0u64, |next, x: &u64| *next = x + 1);
    /// let s = Restartable::with_checkpointer(|next: &u64| stream::iter((*next..3).map(Ok::<_, String>)), cursor);
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(0), Ok(1), Ok(2)]);
    /// # }
    /// ```
    pub fn with_checkpointer(factory: F, checkpointer: K) -> Self {
        Restartable {
            factory,
            checkpointer,
            source: None,
            delivered: 0,
            to_skip: 0,
            skip_delivered: false,
            opens: 0,
            done: false,
        }
    }

    /// For sources that cannot seek: the factory re-opens from the start and this stream
    /// drops the first [`delivered`](Self::delivered) items of every re-opened source itself.
    ///
    /// The source must replay the same items in the same order.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = restartable(|_: &Checkpoint<u8>| stream::iter([Ok::<u8, String>(1), Ok(2)])).skip_delivered();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(2)]);
    /// # }
    /// ```
    pub fn skip_delivered(mut self) -> Self {
        self.skip_delivered = true;
        self
    }

    /// Re-opens the source after errors, waiting per `policy`; see [`Retry`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut failed = false;
    /// let s = restartable(move |cp: &Checkpoint<u64>| {
    ///     let fail = !std::mem::replace(&mut failed, true);
    ///     stream::iter(cp.delivered..4).map(move |i| if fail && i == 2 { Err("flaky") } else { Ok(i) })
    /// })
    /// .retry(RetryPolicy::fixed(Duration::from_millis(10), 3));
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(0), Ok(1), Ok(2), Ok(3)]);
    /// # }
    /// ```
    pub fn retry<B, P>(self, policy: RetryPolicy<B, P>) -> Retry<F, S, K, B, P>
    where
        B: backon::BackoffBuilder + Clone,
    {
        Retry::new(self, policy)
    }

    /// The checkpointer itself.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = custom_checkpoint(0u32, |n, _: &u8| *n += 1)
    ///     .restartable(|_: &u32| stream::iter([Ok::<u8, String>(1)]));
    /// assert_eq!(*s.checkpointer().get(), 0);
    /// ```
    pub fn checkpointer(&self) -> &K {
        &self.checkpointer
    }

    /// How many items were delivered to the consumer.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = restartable(|_: &Checkpoint<u8>| stream::iter([Ok::<u8, String>(1)]));
    /// assert_eq!(s.delivered(), 0);
    /// ```
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// How many times the factory opened a source.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut s = restartable(|_: &Checkpoint<u8>| stream::iter([Ok::<u8, String>(1)]));
    /// assert_eq!(s.opens(), 0); // lazy
    /// s.next().await;
    /// assert_eq!(s.opens(), 1);
    /// # }
    /// ```
    pub fn opens(&self) -> u64 {
        self.opens
    }

    /// The currently open source, if any (none before the first poll, after an error and at
    /// the end).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = restartable(|_: &Checkpoint<u8>| stream::iter([Ok::<u8, String>(1)]));
    /// assert!(s.source().is_none());
    /// ```
    pub fn source(&self) -> Option<&S> {
        self.source.as_ref()
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }
}

impl<F, S, K, T, E> Restartable<F, S, K>
where
    K: Checkpointer<T>,
    S: Stream<Item = Result<T, E>>,
{
    /// The checkpoint as of the last delivered item.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut s = restartable(|_: &Checkpoint<char>| stream::iter([Ok::<char, String>('a'), Ok('b')]));
    /// s.next().await;
    /// assert_eq!(s.checkpoint(), &Checkpoint { delivered: 1, last: Some('a') });
    /// # }
    /// ```
    pub fn checkpoint(&self) -> &K::Checkpoint {
        self.checkpointer.checkpoint()
    }
}

impl<F, S, K, T, E> Restartable<F, S, K>
where
    K: Checkpointer<T>,
    F: FnMut(&K::Checkpoint) -> S,
    S: Stream<Item = Result<T, E>>,
{
    /// Polls one attempt: opens the source if needed, skips replayed items, records
    /// delivered ones. On `Err` the source is dropped (the next call re-opens it) but the
    /// stream is not marked done; on `None` it is.
    ///
    /// Inlined into the caller and loop-free unless replayed items are skipped: opening calls
    /// the factory in place (a call out of line would get pointers into this stream, which
    /// makes LLVM keep the consumer's whole pipeline in memory; see `benches/RESULTS.md`,
    /// `retry_ok`).
    #[inline]
    pub(crate) fn poll_attempt(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<T, E>>> {
        let mut this = self.project();
        if this.source.is_none() {
            if *this.done {
                return Poll::Ready(None);
            }
            let source = (this.factory)(this.checkpointer.checkpoint());
            *this.opens += 1;
            *this.to_skip = if *this.skip_delivered {
                *this.delivered
            } else {
                0
            };
            this.source.set(Some(source));
        }
        let Some(mut source) = this.source.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match ready!(source.as_mut().poll_next(cx)) {
                Some(Ok(item)) => {
                    if *this.to_skip != 0 {
                        // A replayed item the consumer already has.
                        *this.to_skip = skipped_one(*this.to_skip);
                        continue;
                    }
                    *this.delivered += 1;
                    this.checkpointer.record(&item);
                    return Poll::Ready(Some(Ok(item)));
                }
                Some(Err(e)) => {
                    this.source.set(None);
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    this.source.set(None);
                    *this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
    }

    pub(crate) fn finish(self: Pin<&mut Self>) {
        let mut this = self.project();
        this.source.set(None);
        *this.done = true;
    }

    pub(crate) fn source_hint(&self) -> (usize, Option<usize>) {
        match &self.source {
            Some(s) if self.to_skip == 0 => s.size_hint(),
            _ => (0, None),
        }
    }
}

/// `to_skip - 1`, out of line: the skip loop then stays a loop with a call in it, which
/// LLVM leaves alone instead of unrolling it into the hot path.
#[cold]
#[inline(never)]
fn skipped_one(to_skip: u64) -> u64 {
    to_skip - 1
}

impl<F, S, K, T, E> Stream for Restartable<F, S, K>
where
    K: Checkpointer<T>,
    F: FnMut(&K::Checkpoint) -> S,
    S: Stream<Item = Result<T, E>>,
{
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = ready!(self.as_mut().poll_attempt(cx));
        if let Some(Err(_)) = next {
            // No retry policy: an error ends the stream.
            self.finish();
        }
        Poll::Ready(next)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            self.source_hint()
        }
    }
}

impl<F, S, K, T, E> FusedStream for Restartable<F, S, K>
where
    K: Checkpointer<T>,
    F: FnMut(&K::Checkpoint) -> S,
    S: Stream<Item = Result<T, E>>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<C, U> CustomCheckpoint<C, U> {
    /// A restartable source whose factory receives this custom checkpoint's state.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // Resume from the id after the last delivered row.
    /// let mut first = true;
    /// let rows = custom_checkpoint(0u64, |next_id, row: &(u64, &str)| *next_id = row.0 + 1)
    ///     .restartable(move |next_id: &u64| {
    ///         let fail = std::mem::take(&mut first);
    ///         let rows = [(0, "a"), (1, "b"), (2, "c")];
    ///         stream::iter(rows.into_iter().skip(*next_id as usize))
    ///             .map(move |row| if fail && row.0 == 1 { Err("lost connection") } else { Ok(row) })
    ///     })
    ///     .retry(RetryPolicy::fixed(Duration::from_millis(5), 1));
    /// let out: Vec<_> = rows.collect().await;
    /// assert_eq!(out, [Ok((0, "a")), Ok((1, "b")), Ok((2, "c"))]);
    /// # }
    /// ```
    pub fn restartable<F, S>(self, factory: F) -> Restartable<F, S, Self>
    where
        F: FnMut(&C) -> S,
    {
        Restartable::with_checkpointer(factory, self)
    }
}
