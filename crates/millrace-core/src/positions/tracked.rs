//! [`Tracked`]: a stream of positioned entries whose stages work on the payload.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::stream::{FusedStream, Stream};
use futures_util::future::FutureExt as _;
use futures_util::stream::StreamExt as _;
use pin_project_lite::pin_project;
use tokio_util::sync::CancellationToken;

use super::unordered::{LowWaterMark, admit};
use super::{Accounting, Entry, Positioned, TrackedBatch};
use crate::PipelineExt as _;
use crate::error::built;
use crate::policy::Supervision;
use crate::wrappers::{Batch, MapConcurrent};

pin_project! {
    /// A stream of [`Positioned`] entries together with its run's [`Accounting`]: the
    /// position-carrying form of a pipeline (Akka's `SourceWithContext`). Built by [`track`],
    /// [`Tracked::new`] or a source adapter's `tracked()`.
    ///
    /// Its methods apply a stage to the payload and keep the position beside it; filtered
    /// entries and dead letters stay in the stream as markers, so the commit position passes
    /// over them and they are counted. Items stay in source order except after
    /// [`map_concurrent_unordered`](Self::map_concurrent_unordered). `Tracked` is itself a
    /// `Stream` of `Positioned` entries and is fused.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::positions::{self, Positioned};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<Positioned<u64, String>> = positions::track(stream::iter([(1u64, 2), (2, 3)]))
    ///     .map(|x| x * 2)
    ///     .map_with_position(|at, x| format!("{x}@{at}"))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Positioned::item(1, "4@1".to_owned()), Positioned::item(2, "6@2".to_owned())]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Tracked<S> {
        #[pin]
        inner: S,
        accounting: Accounting,
        done: bool,
    }
}

pin_project! {
    /// The source end of a [`Tracked`] stream: counts every entry read in the run's
    /// [`Accounting`]. Built by [`Tracked::new`].
    #[must_use = "streams do nothing unless polled"]
    pub struct CountRead<S> {
        #[pin]
        inner: S,
        accounting: Accounting,
    }
}

impl<S: fmt::Debug> fmt::Debug for CountRead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountRead")
            .field("inner", &self.inner)
            .field("read", &self.accounting.read())
            .finish()
    }
}

impl<S: Stream> Stream for CountRead<S> {
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let item = ready!(this.inner.poll_next(cx));
        if item.is_some() {
            this.accounting.add_read(1);
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// Tracks a stream of `(position, item)` pairs: every pair becomes a [`Positioned`] item and
/// is counted as read.
///
/// ```
/// use millrace::positions;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let tracked = positions::track(stream::iter([(10u64, 'a'), (20, 'b')]));
/// let accounting = tracked.accounting();
/// assert_eq!(tracked.count().await, 2);
/// assert_eq!(accounting.read(), 2);
/// # }
/// ```
#[allow(clippy::type_complexity)]
pub fn track<S, P, T>(
    pairs: S,
) -> Tracked<CountRead<futures_util::stream::Map<S, fn((P, T)) -> Positioned<P, T>>>>
where
    S: Stream<Item = (P, T)>,
{
    fn pair<P, T>((position, item): (P, T)) -> Positioned<P, T> {
        Positioned::item(position, item)
    }
    Tracked::new(pairs.map(pair as fn((P, T)) -> Positioned<P, T>))
}

impl<S> Tracked<S> {
    /// Tracks a source of [`Positioned`] entries, counting each as read in a new
    /// [`Accounting`].
    ///
    /// ```
    /// use millrace::positions::{Positioned, Tracked};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let t = Tracked::new(stream::iter([Positioned::item(1u64, "x"), Positioned::filtered(2)]));
    /// let a = t.accounting();
    /// t.for_each(|_| async {}).await;
    /// assert_eq!(a.read(), 2);
    /// # }
    /// ```
    pub fn new(source: S) -> Tracked<CountRead<S>> {
        let accounting = Accounting::new();
        Tracked {
            inner: CountRead {
                inner: source,
                accounting: accounting.clone(),
            },
            accounting,
            done: false,
        }
    }

    /// The run's accounting (shared: read it after the run).
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::stream;
    ///
    /// let t = positions::track(stream::iter([(1u64, ())]));
    /// assert_eq!(t.accounting().read(), 0); // nothing polled yet
    /// ```
    pub fn accounting(&self) -> Accounting {
        self.accounting.clone()
    }

    /// Applies any stage that neither drops nor reorders entries (`rate_limit`, `metered_in`,
    /// `inspect`, …) to the positioned stream, keeping it tracked. Dropping entries here makes
    /// the accounting fail: filter with [`filter`](Self::filter) instead.
    ///
    /// ```
    /// use millrace::positions;
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let n = positions::track(stream::iter([(1u64, 'a'), (2, 'b')]))
    ///     .via(|s| s.rate_limit(Rate::per_second(10)))
    ///     .count()
    ///     .await;
    /// assert_eq!(n, 2);
    /// # }
    /// ```
    pub fn via<S2>(self, stage: impl FnOnce(S) -> S2) -> Tracked<S2> {
        Tracked {
            inner: stage(self.inner),
            accounting: self.accounting,
            done: self.done,
        }
    }

    /// The stream inside, without its accounting.
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::stream;
    ///
    /// let _inner = positions::track(stream::iter([(1u64, ())])).into_inner();
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The stream inside.
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::{stream, Stream};
    ///
    /// let t = positions::track(stream::iter([(1u64, ())]));
    /// assert_eq!(t.get_ref().size_hint(), (1, Some(1)));
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The stream inside, mutably (pulling from it bypasses nothing: positions stay with
    /// their entries).
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::stream;
    ///
    /// let mut t = positions::track(stream::iter([(1u64, ())]));
    /// let _inner = t.get_mut();
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S, P, T> Tracked<S>
where
    S: Stream<Item = Positioned<P, T>>,
{
    /// Applies `f` to every item; positions and markers pass through.
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<_> = positions::track(stream::iter([(1u64, 1), (2, 2)])).map(|x| x + 1).collect().await;
    /// assert_eq!(out[1].entry.item(), Some(&3));
    /// # }
    /// ```
    pub fn map<U, F>(self, mut f: F) -> Tracked<impl Stream<Item = Positioned<P, U>>>
    where
        F: FnMut(T) -> U,
    {
        self.via(|s| {
            StreamFns::map(s, move |p: Positioned<P, T>| Positioned {
                position: p.position,
                entry: p.entry.map(&mut f),
            })
        })
    }

    /// Applies `f` to every item and its position.
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<_> = positions::track(stream::iter([(7u64, 'x')]))
    ///     .map_with_position(|at, c| (*at, c))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out[0].entry.item(), Some(&(7, 'x')));
    /// # }
    /// ```
    pub fn map_with_position<U, F>(self, mut f: F) -> Tracked<impl Stream<Item = Positioned<P, U>>>
    where
        F: FnMut(&P, T) -> U,
    {
        self.via(|s| {
            StreamFns::map(s, move |p: Positioned<P, T>| {
                let Positioned { position, entry } = p;
                let entry = entry.map(|t| f(&position, t));
                Positioned { position, entry }
            })
        })
    }

    /// Keeps the items for which `keep` returns `true`; the others become
    /// [`Entry::Filtered`] markers (done, counted, passed over by the commit position).
    ///
    /// ```
    /// use millrace::positions::{self, Entry};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<_> = positions::track(stream::iter([(1u64, 1), (2, 2)])).filter(|x| x % 2 == 0).collect().await;
    /// assert_eq!(out[0].entry, Entry::Filtered);
    /// assert_eq!(out[1].entry, Entry::Item(2));
    /// # }
    /// ```
    pub fn filter<F>(self, mut keep: F) -> Tracked<impl Stream<Item = Positioned<P, T>>>
    where
        F: FnMut(&T) -> bool,
    {
        self.via(|s| {
            StreamFns::map(s, move |mut p: Positioned<P, T>| {
                if let Entry::Item(t) = &p.entry
                    && !keep(t)
                {
                    p.entry = Entry::Filtered;
                }
                p
            })
        })
    }

    /// Maps every item to `Some(u)` (kept) or `None` (filtered, counted).
    ///
    /// ```
    /// use millrace::positions::{self, Entry};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<_> = positions::track(stream::iter([(1u64, "4"), (2, "")]))
    ///     .filter_map(|s| s.parse::<u8>().ok())
    ///     .collect()
    ///     .await;
    /// assert_eq!((out[0].entry.clone(), out[1].entry.clone()), (Entry::Item(4), Entry::Filtered));
    /// # }
    /// ```
    pub fn filter_map<U, F>(self, mut f: F) -> Tracked<impl Stream<Item = Positioned<P, U>>>
    where
        F: FnMut(T) -> Option<U>,
    {
        self.via(|s| {
            StreamFns::map(s, move |p: Positioned<P, T>| Positioned {
                position: p.position,
                entry: match p.entry {
                    Entry::Item(t) => f(t).map_or(Entry::Filtered, Entry::Item),
                    Entry::Filtered => Entry::Filtered,
                    Entry::Dead(reason) => Entry::Dead(reason),
                },
            })
        })
    }

    /// Checks every item with `check`; an item it rejects becomes a dead letter at its
    /// position, with the reason's text.
    ///
    /// ```
    /// use millrace::positions::{self, Entry};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<_> = positions::track(stream::iter([(1u64, -1), (2, 1)]))
    ///     .validate(|x| if *x < 0 { Err("negative") } else { Ok(()) })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out[0].entry, Entry::Dead("negative".into()));
    /// # }
    /// ```
    pub fn validate<F, R>(self, mut check: F) -> Tracked<impl Stream<Item = Positioned<P, T>>>
    where
        F: FnMut(&T) -> Result<(), R>,
        R: fmt::Display,
    {
        self.via(|s| {
            StreamFns::map(s, move |mut p: Positioned<P, T>| {
                if let Entry::Item(t) = &p.entry
                    && let Err(reason) = check(t)
                {
                    p.entry = Entry::Dead(reason.to_string());
                }
                p
            })
        })
    }

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
        let inner = built(MapConcurrent::checked_new(
            self.inner,
            n,
            move |p: Positioned<P, T>| entry_future(p, &mut f),
        ));
        Tracked {
            inner,
            accounting: self.accounting,
            done: self.done,
        }
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
        let (admit, marks) = admit(self.inner);
        let mapped = built(MapConcurrent::checked_new_unordered(
            admit,
            n,
            move |(seq, p): (u64, Positioned<P, T>)| entry_future(p, &mut f).map(move |p| (seq, p)),
        ));
        Tracked {
            inner: marks.wrap(mapped),
            accounting: self.accounting,
            done: self.done,
        }
    }

    /// Gathers entries into [`TrackedBatch`]es of `size` entries (items, dead letters and
    /// filtered markers together; the tail flushed at the end), each carrying the commit
    /// position of its last entry.
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let batches: Vec<_> = positions::track(stream::iter((1..=5u64).map(|n| (n, n))))
    ///     .batch(2)
    ///     .collect()
    ///     .await;
    /// let ends: Vec<u64> = batches.iter().map(|b| *b.position()).collect();
    /// assert_eq!(ends, [2, 4, 5]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `size` is 0.
    #[track_caller]
    pub fn batch(self, size: usize) -> Tracked<impl Stream<Item = TrackedBatch<P, T>>>
    where
        P: Clone,
    {
        let inner = built(Batch::checked_new(self.inner, size)).filter_map(to_batch);
        Tracked {
            inner,
            accounting: self.accounting,
            done: self.done,
        }
    }

    /// Like [`batch`](Self::batch), but a batch is also flushed `within` after its first
    /// entry (size or time, whichever comes first; see
    /// [`PipelineExt::batch_within`](crate::PipelineExt::batch_within)). Batch boundaries
    /// then depend on timing: commits stay exact because they carry positions, not sequence
    /// numbers.
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batches: Vec<_> = positions::track(stream::iter([(1u64, 'a'), (2, 'b')]))
    ///     .batch_within(10, Duration::from_millis(5))
    ///     .collect()
    ///     .await;
    /// assert_eq!(batches[0].items(), ['a', 'b']);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `size` is 0 or `within` is zero.
    #[track_caller]
    pub fn batch_within(
        self,
        size: usize,
        within: Duration,
    ) -> Tracked<impl Stream<Item = TrackedBatch<P, T>>>
    where
        P: Clone,
    {
        let inner = built(Batch::checked_within(self.inner, size, within)).filter_map(to_batch);
        Tracked {
            inner,
            accounting: self.accounting,
            done: self.done,
        }
    }
}

impl<S, P, U, E> Tracked<S>
where
    S: Stream<Item = Positioned<P, Result<U, E>>>,
{
    /// Turns error items into dead letters at their position, with the error's text as the
    /// reason; `Ok` items go on as plain items.
    ///
    /// ```
    /// use millrace::positions::{self, Entry};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<_> = positions::track(stream::iter([(1u64, "7"), (2, "x")]))
    ///     .map(|s| s.parse::<u8>())
    ///     .dead_letter_errors()
    ///     .collect()
    ///     .await;
    /// assert_eq!(out[0].entry, Entry::Item(7));
    /// assert_eq!(out[1].entry, Entry::Dead("invalid digit found in string".into()));
    /// # }
    /// ```
    pub fn dead_letter_errors(self) -> Tracked<impl Stream<Item = Positioned<P, U>>>
    where
        E: fmt::Display,
    {
        self.dead_letter_with(|e| e.to_string())
    }

    /// Supervises error items as [`PipelineExt::on_error`](crate::PipelineExt::on_error) does,
    /// with positions kept: [`Resume`](Supervision::Resume) makes the failed entry a dead
    /// letter at its position (reported, never dropped silently), [`Replace`](Supervision::Replace)
    /// turns the error into an item, and [`Stop`](Supervision::Stop) ends the stream **before**
    /// the failed entry: it is neither committed nor dead-lettered, so the commit position stays
    /// before it and a restart reads it again (the run's accounting then shows it as not done).
    ///
    /// ```
    /// use millrace::positions::{self, Entry};
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let items = || positions::track(stream::iter([(1u64, Ok(1)), (2, Err("bad")), (3, Ok(3))]));
    /// let resumed: Vec<_> = items().on_error(Supervision::Resume).collect().await;
    /// assert_eq!(resumed[1].entry, Entry::Dead("bad".into()));
    /// let stopped = items().on_error(Supervision::Stop);
    /// let accounting = stopped.accounting();
    /// let stopped: Vec<_> = stopped.collect().await;
    /// assert_eq!(stopped.len(), 1); // entry 2 is not passed over
    /// assert_eq!(accounting.read(), 2);
    /// let replaced: Vec<_> = items().on_error(Supervision::replace(|_| 0)).collect().await;
    /// assert_eq!(replaced[1].entry, Entry::Item(0));
    /// # }
    /// ```
    pub fn on_error(
        self,
        supervision: Supervision<U, E>,
    ) -> Tracked<impl Stream<Item = Positioned<P, U>>>
    where
        E: fmt::Display,
    {
        self.via(|s| {
            s.scan(
                supervision,
                |supervision, p: Positioned<P, Result<U, E>>| {
                    let entry = match p.entry {
                        Entry::Item(Ok(u)) => Entry::Item(u),
                        Entry::Item(Err(e)) => match supervision {
                            Supervision::Stop => return ready(None),
                            Supervision::Resume => Entry::Dead(e.to_string()),
                            Supervision::Replace(f) => Entry::Item(f(e)),
                        },
                        Entry::Filtered => Entry::Filtered,
                        Entry::Dead(reason) => Entry::Dead(reason),
                    };
                    ready(Some(Positioned {
                        position: p.position,
                        entry,
                    }))
                },
            )
        })
    }

    /// Like [`dead_letter_errors`](Self::dead_letter_errors), with the reason written by
    /// `reason`.
    ///
    /// ```
    /// use millrace::positions::{self, Entry};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<_> = positions::track(stream::iter([(4u64, Err::<u8, _>(404))]))
    ///     .dead_letter_with(|code| format!("HTTP {code}"))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out[0].entry, Entry::Dead("HTTP 404".into()));
    /// # }
    /// ```
    pub fn dead_letter_with<F>(self, mut reason: F) -> Tracked<impl Stream<Item = Positioned<P, U>>>
    where
        F: FnMut(E) -> String,
    {
        self.via(|s| {
            StreamFns::map(s, move |p: Positioned<P, Result<U, E>>| Positioned {
                position: p.position,
                entry: match p.entry {
                    Entry::Item(Ok(u)) => Entry::Item(u),
                    Entry::Item(Err(e)) => Entry::Dead(reason(e)),
                    Entry::Filtered => Entry::Filtered,
                    Entry::Dead(r) => Entry::Dead(r),
                },
            })
        })
    }
}

impl<S: Stream> Tracked<S> {
    /// Drives the stream on its own task into a buffer of `capacity`, positions included (see
    /// [`PipelineExt::prefetch`](crate::PipelineExt::prefetch)).
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let n = positions::track(stream::iter([(1u64, 'a'), (2, 'b')])).prefetch(4).count().await;
    /// assert_eq!(n, 2);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `capacity` is 0; when polled outside a tokio runtime.
    #[track_caller]
    pub fn prefetch(self, capacity: usize) -> Tracked<crate::wrappers::Prefetch<S>>
    where
        S: Send + 'static,
        S::Item: Send,
    {
        let inner = self.inner.prefetch(capacity);
        Tracked {
            inner,
            accounting: self.accounting,
            done: self.done,
        }
    }

    /// Stops pulling from the source when `token` fires; what was read drains and can commit
    /// (see [`PipelineExt::stop_on`](crate::PipelineExt::stop_on)).
    ///
    /// ```
    /// use millrace::positions;
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let token = CancellationToken::new();
    /// token.cancel();
    /// let n = positions::track(stream::iter([(1u64, 'a')])).stop_on(token).count().await;
    /// assert_eq!(n, 0);
    /// # }
    /// ```
    pub fn stop_on(self, token: CancellationToken) -> Tracked<crate::wrappers::StopOn<S>> {
        let inner = self.inner.stop_on(token);
        Tracked {
            inner,
            accounting: self.accounting,
            done: self.done,
        }
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

fn to_batch<P: Clone, T>(entries: Vec<Positioned<P, T>>) -> Ready<Option<TrackedBatch<P, T>>> {
    // `Batch` never yields an empty batch, so this is always `Some`.
    ready(TrackedBatch::from_entries(entries))
}

/// `futures::StreamExt::map` under a name that cannot be shadowed by `Tracked`'s own `map`.
struct StreamFns;

impl StreamFns {
    #[inline]
    fn map<S: Stream, U, F: FnMut(S::Item) -> U>(s: S, f: F) -> futures_util::stream::Map<S, F> {
        futures_util::stream::StreamExt::map(s, f)
    }
}

impl<S: fmt::Debug> fmt::Debug for Tracked<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("inner", &self.inner)
            .field("accounting", &self.accounting.counts())
            .field("done", &self.done)
            .finish()
    }
}

impl<S: Stream> Stream for Tracked<S> {
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let item = ready!(this.inner.poll_next(cx));
        if item.is_none() {
            *this.done = true;
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            self.inner.size_hint()
        }
    }
}

impl<S: Stream> FusedStream for Tracked<S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
