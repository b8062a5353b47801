//! [`PipelineExt`]: every millrace wrapper as a method on every [`Stream`].
//!
//! This file is the index of the library: each method documents its wrapper (with `# Examples`
//! and, where they apply, `# Errors`, `# Panics` and `# Cancel safety`) and its body is one
//! line that builds the wrapper. Method names never collide with `futures::StreamExt` or
//! `tokio_stream::StreamExt`, so all three can be in scope together.

#[allow(unused_imports)] // each group below uses its own subset
use crate::wrappers::*;
use crate::{Stage, Stream};

/// Extension methods that wrap a stream in a millrace stage. Implemented for every [`Stream`].
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sum: u64 = stream::iter(0..100u64).prefetch(16).fold(0, |a, x| async move { a + x }).await;
/// assert_eq!(sum, 4950);
/// # }
/// ```
pub trait PipelineExt: Stream {
    /// Wraps this stream in a reusable [`Stage`] (a pipeline segment).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::BatchStage;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<Vec<i32>> = stream::iter([1, 2, 3]).wrap(BatchStage::new(2)).collect().await;
    /// assert_eq!(out, vec![vec![1, 2], vec![3]]);
    /// # }
    /// ```
    fn wrap<L>(self, stage: L) -> L::Output
    where
        L: Stage<Self>,
        Self: Sized,
    {
        stage.wrap(self)
    }

    // BEGIN ext: errors (recover_with, checkpoint_with, on_error, validate, validate_ok)
    /// On an error, switches to a fallback stream that resumes from the checkpoint.
    ///
    /// Every `Ok` item is recorded in a [`Checkpoint`](crate::Checkpoint) (`delivered` count and
    /// a clone of the `last` item; see [`checkpoint_with`](PipelineExt::checkpoint_with) for a
    /// custom one). On `Err(e)`, `f(&e, &checkpoint)` decides: `Some(fallback)` replaces the
    /// current stream (which is dropped) and should resume after what was already delivered;
    /// `None` yields the error and ends the stream. An error from the fallback calls `f` again,
    /// so fallbacks chain (`f` may count its calls), and `recover_with` calls nest.
    /// Each switch is counted ([`Recover::fallbacks`]) and reported as a `tracing` warning.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let primary = stream::iter([Ok(1), Ok(2), Err("primary down")]);
    /// let replica = |from: u64| stream::iter((from + 1..=4).map(Ok));
    /// let out: Vec<Result<u64, &str>> = primary
    ///     .recover_with(move |_, cp: &Checkpoint<u64>| Some(replica(cp.delivered)))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Ok(1), Ok(2), Ok(3), Ok(4)]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// A panic in `f` propagates to the consumer's poll.
    fn recover_with<F, S2, T, E>(self, f: F) -> Recover<Self, F, S2, crate::Checkpoint<T>>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
        F: FnMut(&E, &crate::Checkpoint<T>) -> Option<S2>,
        S2: Stream<Item = Result<T, E>>,
        T: Clone,
    {
        Recover::new(self, f)
    }

    /// Records a custom checkpoint of the `Ok` items: `init` is the state before any item and
    /// `update(&mut state, &item)` runs for each one. Memory is whatever the state holds.
    ///
    /// Pass-through on its own; follow it with
    /// [`recover_with`](CheckpointWith::recover_with) so fallbacks receive the state (a
    /// cursor, the last id) instead of the default [`Checkpoint`](crate::Checkpoint).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<Result<u32, &str>> = stream::iter([Ok(10), Err("down")])
    ///     .checkpoint_with(0u32, |next, x: &u32| *next = x + 1)
    ///     .recover_with(|_, next: &u32| Some(stream::iter((*next..13).map(Ok))))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Ok(10), Ok(11), Ok(12)]);
    /// # }
    /// ```
    fn checkpoint_with<C, U, T, E>(
        self,
        init: C,
        update: U,
    ) -> CheckpointWith<Self, crate::checkpoint::CustomCheckpoint<C, U>>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
        U: FnMut(&mut C, &T),
    {
        CheckpointWith::new(self, crate::checkpoint_with(init, update))
    }

    /// Decides what happens to `Err` items, per [`Supervision`](crate::policy::Supervision):
    /// `Stop` yields the error and ends, `Resume` drops it and continues, `Replace(f)` turns it
    /// into an item.
    ///
    /// Skipped errors are never silently lost: each is counted ([`Supervise::skipped`],
    /// [`Supervise::skip_counter`]) and reported as a `tracing` warning with the error.
    /// `Ok` items pass straight through. See [the `# Order` section](crate::wrappers::Validate)
    /// of the validation module for how this combines with `validate_ok`.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([Ok(1), Err("bad row"), Ok(3)]).on_error(Supervision::Resume);
    /// let skipped = s.skip_counter();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(3)]);
    /// assert_eq!(skipped.get(), 1);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// A panic in a `Replace` closure propagates to the consumer's poll.
    fn on_error<T, E>(self, supervision: crate::policy::Supervision<T, E>) -> Supervise<Self, T, E>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
    {
        Supervise::new(self, supervision)
    }

    /// Checks every item with `f`: passing items become `Ok(item)`, rejected ones
    /// `Err(Invalid { item, reason, index })`, so the invalid item is carried, never lost.
    ///
    /// The stream continues after an invalid item; put
    /// [`on_error`](PipelineExt::on_error) after it to decide what happens to them.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let isbn = |s: &&str| if s.len() == 13 { Ok(()) } else { Err("wrong length") };
    /// let out: Vec<_> = stream::iter(["9780306406157", "123"]).validate(isbn).collect().await;
    /// assert_eq!(out, [Ok("9780306406157"), Err(Invalid::new("123", 1, "wrong length"))]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// A panic in `f` propagates to the consumer's poll.
    fn validate<F, R>(self, f: F) -> Validate<Self, F>
    where
        Self: Sized,
        F: FnMut(&Self::Item) -> Result<(), R>,
    {
        Validate::new(self, f)
    }

    /// Checks the `Ok` items of a fallible stream with `f`; rejected items become
    /// `Err(E::from(Invalid { item, reason, index }))` and upstream errors pass through.
    ///
    /// `index` counts every upstream item, errors included.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// #[derive(Debug, PartialEq)]
    /// enum RowError {
    ///     Io(&'static str),
    ///     Invalid(Invalid<i32, &'static str>),
    /// }
    /// impl From<Invalid<i32, &'static str>> for RowError {
    ///     fn from(e: Invalid<i32, &'static str>) -> Self {
    ///         RowError::Invalid(e)
    ///     }
    /// }
    /// let rows = stream::iter([Ok(1), Err(RowError::Io("eof")), Ok(-1)]);
    /// let out: Vec<_> = rows.validate_ok(|x: &i32| if *x > 0 { Ok(()) } else { Err("not positive") }).collect().await;
    /// assert_eq!(
    ///     out,
    ///     [Ok(1), Err(RowError::Io("eof")), Err(RowError::Invalid(Invalid::new(-1, 2, "not positive")))]
    /// );
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// A panic in `f` propagates to the consumer's poll.
    fn validate_ok<F, T, E, R>(self, f: F) -> ValidateOk<Self, F>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
        F: FnMut(&T) -> Result<(), R>,
        E: From<crate::policy::Invalid<T, R>>,
    {
        ValidateOk::new(self, f)
    }
    // END ext: errors

    // BEGIN ext: concurrency (map_concurrent*, try_map_concurrent, map_blocking, rate_limit)
    // END ext: concurrency

    // BEGIN ext: flow (batch, batch_within, prefetch, timeout_each, deadline, stop_on)
    // END ext: flow

    // BEGIN ext: resources (metered)
    // END ext: resources
}

impl<S: Stream + ?Sized> PipelineExt for S {}
