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
    // END ext: errors

    // BEGIN ext: concurrency (map_concurrent*, try_map_concurrent, map_blocking, rate_limit)
    // END ext: concurrency

    // BEGIN ext: flow (batch, batch_within, prefetch, timeout_each, deadline, stop_on)
    // END ext: flow

    // BEGIN ext: resources (metered)
    /// Counts what passes through this point of the pipeline: items, polls, `Pending` polls,
    /// the end of the stream, and optionally errors
    /// ([`count_errors`](crate::wrappers::Metered::count_errors)) and time spent upstream
    /// ([`with_timing`](crate::wrappers::Metered::with_timing)).
    ///
    /// The counters are read live through [`Metered::metrics`](crate::wrappers::Metered::metrics);
    /// to gather many stages in one place use [`metered_in`](PipelineExt::metered_in). Counting
    /// costs a few plain instructions per item (no lock, no atomic read-modify-write: each
    /// stage has one writer). Items pass through unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter(0..5).metered("source");
    /// let m = s.metrics();
    /// let out: Vec<i32> = s.collect().await;
    /// assert_eq!(out, [0, 1, 2, 3, 4]);
    /// let snap = m.snapshot();
    /// assert_eq!((snap.items, snap.pending_polls, snap.finished), (5, 0, true));
    /// # }
    /// ```
    fn metered(self, name: impl Into<String>) -> Metered<Self>
    where
        Self: Sized,
    {
        Metered::new(self, name)
    }

    /// Like [`metered`](PipelineExt::metered), registering the stage in `metrics` so that
    /// [`Metrics::snapshot`](crate::Metrics::snapshot) lists it (in insertion order).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let _: Vec<u8> = stream::iter([1u8, 2, 3]).metered_in(&metrics, "bytes").collect().await;
    /// assert_eq!(metrics.snapshot()[0].items, 3);
    /// # }
    /// ```
    fn metered_in(self, metrics: &crate::Metrics, name: impl Into<String>) -> Metered<Self>
    where
        Self: Sized,
    {
        Metered::new_in(self, metrics, name)
    }
    // END ext: resources
}

impl<S: Stream + ?Sized> PipelineExt for S {}
