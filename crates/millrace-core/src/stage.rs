//! Reusable pipeline segments: the [`Stage`] trait, [`Stack`] composition and [`StageBuilder`].
//!
//! A [`Stage`] is to a stream what tower's `Layer` is to a service: a value that knows how to
//! wrap an upstream. Build a segment once, apply it to many sources.
//!
//! # Order
//!
//! Stages apply in the order they are added: the first one added sits nearest the source.
//! `a` then `b` is not `b` then `a`:
//!
//! ```
//! use millrace::prelude::*;
//! use millrace::StageBuilder;
//! use millrace::wrappers::BatchStage;
//! use futures::{stream, StreamExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let take3 = stage_fn(|s: stream::Iter<std::ops::Range<u32>>| s.take(3));
//! let batch_then_count = StageBuilder::new().then(take3).then(BatchStage::new(2));
//! let out: Vec<Vec<u32>> = stream::iter(0..10).wrap(batch_then_count).collect().await;
//! assert_eq!(out, vec![vec![0, 1], vec![2]]); // take 3 items, then batch them
//!
//! let out: Vec<Vec<u32>> = stream::iter(0..10).batch(2).take(3).collect().await;
//! assert_eq!(out, vec![vec![0, 1], vec![2, 3], vec![4, 5]]); // batch, then take 3 batches
//! # }
//! ```

use std::fmt;

/// Wraps an upstream stream of type `S`, producing `Self::Output`.
///
/// Implemented by every configured stage (`PrefetchStage`, `BatchStage`, …), by [`Stack`],
/// [`Identity`] and by closures through [`stage_fn`].
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::BatchStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stage = BatchStage::new(2);
/// let out: Vec<Vec<i32>> = stream::iter([1, 2, 3]).wrap(stage).collect().await;
/// assert_eq!(out, vec![vec![1, 2], vec![3]]);
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a stage that can wrap a stream of type `{S}`",
    label = "this stage cannot wrap that upstream",
    note = "check that the upstream's `Item` type is what this stage expects"
)]
pub trait Stage<S> {
    /// The wrapped stream.
    type Output;

    /// Wraps `upstream`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::BatchStage;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let batched = BatchStage::new(2).wrap(stream::iter([1, 2, 3]));
    /// assert_eq!(batched.collect::<Vec<_>>().await, [vec![1, 2], vec![3]]);
    /// # }
    /// ```
    fn wrap(self, upstream: S) -> Self::Output;
}

/// The stage that returns its upstream unchanged; the start of every [`StageBuilder`].
///
/// ```
/// use millrace::prelude::*;
/// use millrace::Identity;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let out: Vec<i32> = stream::iter([1, 2]).wrap(Identity).collect().await;
/// assert_eq!(out, [1, 2]);
/// # }
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Identity;

impl<S> Stage<S> for Identity {
    type Output = S;

    fn wrap(self, upstream: S) -> S {
        upstream
    }
}

/// Two stages applied one after the other: `inner` first (nearest the source), then `outer`.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::Stack;
/// use millrace::wrappers::BatchStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let two_levels = Stack::new(BatchStage::new(2), BatchStage::new(2));
/// let out: Vec<Vec<Vec<i32>>> = stream::iter(1..=5).wrap(two_levels).collect().await;
/// assert_eq!(out, vec![vec![vec![1, 2], vec![3, 4]], vec![vec![5]]]);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Stack<Inner, Outer> {
    inner: Inner,
    outer: Outer,
}

impl<Inner, Outer> Stack<Inner, Outer> {
    /// Applies `inner` first, then `outer`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Stack;
    /// use millrace::wrappers::{BatchStage, PrefetchStage};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let segment = Stack::new(PrefetchStage::new(4), BatchStage::new(2));
    /// let out: Vec<Vec<u8>> = stream::iter(0..3u8).wrap(segment).collect().await;
    /// assert_eq!(out, [vec![0, 1], vec![2]]);
    /// # }
    /// ```
    pub fn new(inner: Inner, outer: Outer) -> Self {
        Stack { inner, outer }
    }
}

impl<S, Inner, Outer> Stage<S> for Stack<Inner, Outer>
where
    Inner: Stage<S>,
    Outer: Stage<Inner::Output>,
{
    type Output = Outer::Output;

    fn wrap(self, upstream: S) -> Self::Output {
        self.outer.wrap(self.inner.wrap(upstream))
    }
}

/// Builds a pipeline segment stage by stage, like tower's `ServiceBuilder`.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::StageBuilder;
/// use millrace::wrappers::{BatchStage, PrefetchStage};
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let segment = StageBuilder::new()
///     .then(PrefetchStage::new(8))
///     .then(BatchStage::new(4))
///     .into_stage();
/// let out: Vec<Vec<u8>> = stream::iter(0..6u8).wrap(segment).collect().await;
/// assert_eq!(out, vec![vec![0, 1, 2, 3], vec![4, 5]]);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StageBuilder<L> {
    stage: L,
}

impl StageBuilder<Identity> {
    /// An empty segment: wrapping with it returns the upstream unchanged.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::StageBuilder;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<i32> = stream::iter([1, 2]).wrap(StageBuilder::new()).collect().await;
    /// assert_eq!(out, [1, 2]);
    /// # }
    /// ```
    pub fn new() -> Self {
        StageBuilder { stage: Identity }
    }
}

impl Default for StageBuilder<Identity> {
    fn default() -> Self {
        Self::new()
    }
}

impl<L> StageBuilder<L> {
    /// Adds `next` after the stages already in the segment (further from the source).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::StageBuilder;
    /// use millrace::wrappers::BatchStage;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pairs_of_pairs = StageBuilder::new().then(BatchStage::new(2)).then(BatchStage::new(2));
    /// let out: Vec<Vec<Vec<i32>>> = stream::iter(1..=4).wrap(pairs_of_pairs).collect().await;
    /// assert_eq!(out, [vec![vec![1, 2], vec![3, 4]]]);
    /// # }
    /// ```
    pub fn then<N>(self, next: N) -> StageBuilder<Stack<L, N>> {
        StageBuilder {
            stage: Stack::new(self.stage, next),
        }
    }

    /// Returns the composed stage, e.g. to store it in a struct field.
    ///
    /// ```
    /// use millrace::{Stack, StageBuilder, Identity};
    /// use millrace::wrappers::BatchStage;
    ///
    /// let stage: Stack<Identity, BatchStage> = StageBuilder::new().then(BatchStage::new(8)).into_stage();
    /// # let _ = stage;
    /// ```
    pub fn into_stage(self) -> L {
        self.stage
    }
}

impl<S, L: Stage<S>> Stage<S> for StageBuilder<L> {
    type Output = L::Output;

    fn wrap(self, upstream: S) -> Self::Output {
        self.stage.wrap(upstream)
    }
}

/// A stage made from a closure `FnOnce(S) -> O`; see [`stage_fn`].
///
/// ```
/// use millrace::prelude::*;
/// use millrace::stage::FnStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let evens: FnStage<_> = stage_fn(|s: stream::Iter<std::ops::Range<u8>>| s.filter(|x| std::future::ready(x % 2 == 0)));
/// assert_eq!(stream::iter(0..5u8).wrap(evens).collect::<Vec<_>>().await, [0, 2, 4]);
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct FnStage<F> {
    f: F,
}

impl<F> fmt::Debug for FnStage<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnStage").finish_non_exhaustive()
    }
}

/// Turns a closure into a [`Stage`]; this is what `pipeline!{ _ => … }` builds.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let double = stage_fn(|s: stream::Iter<std::ops::Range<u32>>| s.map(|x| x * 2));
/// let out: Vec<u32> = stream::iter(0..3).wrap(double).collect().await;
/// assert_eq!(out, [0, 2, 4]);
/// # }
/// ```
pub fn stage_fn<F>(f: F) -> FnStage<F> {
    FnStage { f }
}

impl<S, O, F: FnOnce(S) -> O> Stage<S> for FnStage<F> {
    type Output = O;

    fn wrap(self, upstream: S) -> O {
        (self.f)(upstream)
    }
}
