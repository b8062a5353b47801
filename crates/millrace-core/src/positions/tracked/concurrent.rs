//! `map_concurrent` on a tracked stream: the futures run as in
//! [`PipelineExt::map_concurrent`](crate::PipelineExt::map_concurrent), markers keep their place.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::stream::Stream;
use futures_util::future::FutureExt as _;
use pin_project_lite::pin_project;

use super::Tracked;
use crate::error::built;
use crate::positions::unordered::{LowWaterMark, admit};
use crate::positions::{Entry, Positioned};
use crate::wrappers::MapConcurrent;

impl<S, P, T> Tracked<S>
where
    S: Stream<Item = Positioned<P, T>>,
{
    /// Applies `f` to every item concurrently, at most `n` futures in flight on tokio tasks,
    /// in input order (see [`PipelineExt::map_concurrent`](crate::PipelineExt::map_concurrent));
    /// markers pass through in their place.
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<_> = positions::track(stream::iter([(1u64, 1), (2, 2)]))
    ///     .map_concurrent(2, |x| async move { x * 10 })
    ///     .collect()
    ///     .await;
    /// assert_eq!((out[1].position, out[1].entry.item()), (2, Some(&20)));
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0; when polled outside a tokio runtime; a panic in `f` is resumed on the
    /// consumer.
    #[track_caller]
    pub fn map_concurrent<U, F, Fut>(
        self,
        n: usize,
        mut f: F,
    ) -> Tracked<impl Stream<Item = Positioned<P, U>>>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = U> + Send + 'static,
        P: Send + 'static,
        U: Send + 'static,
    {
        self.via(|inner| {
            built(MapConcurrent::checked_new(
                inner,
                n,
                move |p: Positioned<P, T>| entry_future(p, &mut f),
            ))
        })
    }

    /// Like [`map_concurrent`](Self::map_concurrent) but yields in completion order; the
    /// position of each entry is the **low-water mark** (every input entry up to it is done),
    /// so a batch after it commits only what is really done. `P::default()` stands for "before
    /// the first entry" and must sort before every position.
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<_> = positions::track(stream::iter([(1u64, 30u64), (2, 10), (3, 20)]))
    ///     .map_concurrent_unordered(3, |ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .collect()
    ///     .await;
    /// let done: Vec<_> = out.iter().map(|p| (*p.entry.item().unwrap(), p.position)).collect();
    /// // 10 and 20 finish first, but position 1 (30 ms) holds the mark back until it is done.
    /// assert_eq!(done, [(10, 0), (20, 0), (30, 3)]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0; when polled outside a tokio runtime; a panic in `f` is resumed on the
    /// consumer.
    #[track_caller]
    #[allow(clippy::type_complexity)] // an `impl Stream` inside the named output type
    pub fn map_concurrent_unordered<U, F, Fut>(
        self,
        n: usize,
        mut f: F,
    ) -> Tracked<LowWaterMark<impl Stream<Item = (u64, Positioned<P, U>)>, P>>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = U> + Send + 'static,
        P: Clone + Default + Send + 'static,
        U: Send + 'static,
    {
        self.via(|inner| {
            let (admit, marks) = admit(inner);
            marks.wrap(built(MapConcurrent::checked_new_unordered(
                admit,
                n,
                move |(seq, p): (u64, Positioned<P, T>)| {
                    entry_future(p, &mut f).map(move |p| (seq, p))
                },
            )))
        })
    }
}

pin_project! {
    /// The future for one entry of a concurrent stage: the user's future for an item, the
    /// marker itself otherwise.
    #[project = EntryFutureProj]
    enum EntryFuture<Fut: Future, P> {
        Item { #[pin] fut: Fut, position: Option<P> },
        Marker { marker: Option<Positioned<P, Fut::Output>> },
    }
}

impl<Fut: Future, P> Future for EntryFuture<Fut, P> {
    type Output = Positioned<P, Fut::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            EntryFutureProj::Item { fut, position } => {
                let out = ready!(fut.poll(cx));
                let position = position
                    .take()
                    .expect("EntryFuture polled after completion");
                Poll::Ready(Positioned::item(position, out))
            }
            EntryFutureProj::Marker { marker } => {
                Poll::Ready(marker.take().expect("EntryFuture polled after completion"))
            }
        }
    }
}

fn entry_future<P, T, F, Fut>(p: Positioned<P, T>, f: &mut F) -> EntryFuture<Fut, P>
where
    F: FnMut(T) -> Fut,
    Fut: Future,
{
    let Positioned { position, entry } = p;
    let marker = match entry {
        Entry::Item(t) => {
            return EntryFuture::Item {
                fut: f(t),
                position: Some(position),
            };
        }
        Entry::Filtered => Positioned::filtered(position),
        Entry::Dead(reason) => Positioned {
            position,
            entry: Entry::Dead(reason),
        },
    };
    EntryFuture::Marker {
        marker: Some(marker),
    }
}
