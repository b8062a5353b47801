//! [`CheckpointWith`]: a pass-through stream recording a custom checkpoint.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::checkpoint::Checkpointer;

use super::Recover;

pin_project! {
    /// Stream for the [`checkpoint_with`](crate::PipelineExt::checkpoint_with) method.
    ///
    /// Passes every item through unchanged and records each `Ok` item in its checkpointer.
    /// Follow it with [`recover_with`](Self::recover_with) so fallbacks receive the custom
    /// checkpoint.
    #[must_use = "streams do nothing unless polled"]
    pub struct CheckpointWith<S, K> {
        #[pin]
        stream: S,
        checkpointer: K,
    }
}

impl<S: fmt::Debug, K: fmt::Debug> fmt::Debug for CheckpointWith<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointWith")
            .field("stream", &self.stream)
            .field("checkpointer", &self.checkpointer)
            .finish()
    }
}

impl<S, K> CheckpointWith<S, K> {
    /// Records the `Ok` items of `stream` into `checkpointer`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::CheckpointWith;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut s = CheckpointWith::new(stream::iter([Ok::<u32, &str>(3), Ok(4)]), Checkpoint::default());
    /// s.next().await;
    /// assert_eq!(s.checkpoint(), &Checkpoint { delivered: 1, last: Some(3) });
    /// # }
    /// ```
    pub fn new(stream: S, checkpointer: K) -> Self {
        CheckpointWith {
            stream,
            checkpointer,
        }
    }

    delegate_access_inner!(stream, S);

    /// The checkpointer.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([Ok::<u32, &str>(3)]).checkpoint_with(0u32, |sum, x| *sum += x);
    /// assert_eq!(*s.checkpointer().get(), 0);
    /// ```
    pub fn checkpointer(&self) -> &K {
        &self.checkpointer
    }
}

impl<S, K, T, E> CheckpointWith<S, K>
where
    S: Stream<Item = Result<T, E>>,
    K: Checkpointer<T>,
{
    /// The checkpoint as of the last `Ok` item.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut s = stream::iter([Ok::<u32, &str>(3), Ok(4)]).checkpoint_with(0u32, |sum, x| *sum += x);
    /// s.next().await;
    /// s.next().await;
    /// assert_eq!(s.checkpoint(), &7);
    /// # }
    /// ```
    pub fn checkpoint(&self) -> &K::Checkpoint {
        self.checkpointer.checkpoint()
    }

    /// Recovers this stream with `f`, which receives the custom checkpoint: on `Err(e)`,
    /// `f(&e, &checkpoint)` returns a fallback that resumes from it, or `None` to yield the
    /// error and end. See [`recover_with`](crate::PipelineExt::recover_with).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // The fallback only needs the id after the last delivered row.
    /// let table = [(1u64, "a"), (2, "b"), (3, "c")];
    /// let rows = stream::iter([Ok((1u64, "a")), Err("primary down")])
    ///     .checkpoint_with(0u64, |next_id, row: &(u64, &str)| *next_id = row.0 + 1)
    ///     .recover_with(move |_, next_id: &u64| {
    ///         let from = *next_id;
    ///         Some(stream::iter(table.into_iter().filter(move |r| r.0 >= from).map(Ok)))
    ///     });
    /// assert_eq!(rows.collect::<Vec<_>>().await, [Ok((1, "a")), Ok((2, "b")), Ok((3, "c"))]);
    /// # }
    /// ```
    pub fn recover_with<F, S2>(self, f: F) -> Recover<S, F, S2, K>
    where
        F: FnMut(&E, &K::Checkpoint) -> Option<S2>,
        S2: Stream<Item = Result<T, E>>,
    {
        Recover::with_checkpointer(self.stream, f, self.checkpointer)
    }
}

impl<S, K, T, E> Stream for CheckpointWith<S, K>
where
    S: Stream<Item = Result<T, E>>,
    K: Checkpointer<T>,
{
    type Item = Result<T, E>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let next = ready!(this.stream.poll_next(cx));
        if let Some(Ok(item)) = &next {
            this.checkpointer.record(item);
        }
        Poll::Ready(next)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, K, T, E> FusedStream for CheckpointWith<S, K>
where
    S: FusedStream<Item = Result<T, E>>,
    K: Checkpointer<T>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
