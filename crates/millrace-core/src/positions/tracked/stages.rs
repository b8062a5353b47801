//! The stages that work on a tracked stream's payload one entry at a time: map, filter,
//! validate and batch, positions passing through.

use std::fmt;
use std::future::{Ready, ready};
use std::time::Duration;

use futures_core::stream::Stream;
use futures_util::stream::StreamExt as _;

use super::{StreamFns, Tracked};
use crate::error::built;
use crate::positions::{Entry, Positioned, TrackedBatch};
use crate::wrappers::Batch;

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
        self.via(|inner| built(Batch::checked_new(inner, size)).filter_map(to_batch))
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
        self.via(|inner| built(Batch::checked_within(inner, size, within)).filter_map(to_batch))
    }
}

fn to_batch<P: Clone, T>(entries: Vec<Positioned<P, T>>) -> Ready<Option<TrackedBatch<P, T>>> {
    // `Batch` never yields an empty batch, so this is always `Some`.
    ready(TrackedBatch::from_entries(entries))
}
