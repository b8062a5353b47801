//! [`MapConcurrentStage`] and [`TryMapConcurrentStage`]: the spawned members of the family as
//! reusable [`Stage`]s.

use std::fmt;
use std::future::Future;

use futures_core::Stream;

use super::engine::Limits;
use super::map_concurrent::MapConcurrent;
use super::try_map_concurrent::TryMapConcurrent;
use crate::Stage;

/// A [`Stage`] that wraps its upstream in [`MapConcurrent`] (spawned mode); the closure is
/// part of the stage.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::MapConcurrentStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let double = MapConcurrentStage::new(4, |x: u32| async move { x * 2 }).output_buffer(2);
/// let out: Vec<u32> = stream::iter(1..=3).wrap(double).collect().await;
/// assert_eq!(out, [2, 4, 6]);
///
/// let stage = MapConcurrentStage::unordered(2, |x: u32| async move { x });
/// let mut out: Vec<u32> = stream::iter(1..=3).wrap(stage).collect().await;
/// out.sort();
/// assert_eq!(out, [1, 2, 3]);
/// # }
/// ```
#[derive(Clone)]
pub struct MapConcurrentStage<F> {
    f: F,
    limits: Limits,
}

impl<F> fmt::Debug for MapConcurrentStage<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapConcurrentStage")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<F> MapConcurrentStage<F> {
    family_constructors! {
        type: "MapConcurrentStage",
        names: ("map_concurrent", "map_concurrent_unordered"),
        unordered: (unordered, checked_unordered, try_unordered),
        params: (),
        example: ("", "0, |x: u8| async move { x }")
    }

    fn from_limits(f: F, limits: Limits) -> Self {
        MapConcurrentStage { f, limits }
    }

    /// Sets the output buffer `m`; see [`MapConcurrent::with_output_buffer`].
    ///
    /// ```
    /// use millrace::wrappers::MapConcurrentStage;
    ///
    /// let _stage = MapConcurrentStage::new(8, |x: u8| async move { x }).output_buffer(0);
    /// ```
    pub fn output_buffer(mut self, m: usize) -> Self {
        self.limits.set_output_buffer(m);
        self
    }
}

impl<S, F, Fut> Stage<S> for MapConcurrentStage<F>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Output = MapConcurrent<S, F, Fut>;

    fn wrap(self, upstream: S) -> Self::Output {
        MapConcurrent::from_limits(upstream, self.f, self.limits)
    }
}

/// A [`Stage`] that wraps its upstream in [`TryMapConcurrent`] (fail-fast, spawned mode);
/// the closure is part of it.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::TryMapConcurrentStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let parse = TryMapConcurrentStage::new(4, |s: &'static str| async move { s.parse::<u8>() });
/// let out: Vec<_> = stream::iter(["1", "x", "3"]).wrap(parse).collect().await;
/// assert_eq!(out.len(), 2); // Ok(1), then the error ends the stream
/// assert!(out[1].is_err());
///
/// let stage = TryMapConcurrentStage::unordered(2, |x: u32| async move { Ok::<_, ()>(x) });
/// let n = stream::iter(1..=3).wrap(stage).count().await;
/// assert_eq!(n, 3);
/// # }
/// ```
#[derive(Clone)]
pub struct TryMapConcurrentStage<F> {
    f: F,
    limits: Limits,
}

impl<F> fmt::Debug for TryMapConcurrentStage<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMapConcurrentStage")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<F> TryMapConcurrentStage<F> {
    family_constructors! {
        type: "TryMapConcurrentStage",
        names: ("try_map_concurrent", "try_map_concurrent_unordered"),
        unordered: (unordered, checked_unordered, try_unordered),
        params: (),
        example: ("", "0, |x: u8| async move { Ok::<_, ()>(x) }")
    }

    fn from_limits(f: F, limits: Limits) -> Self {
        TryMapConcurrentStage { f, limits }
    }

    /// Sets the output buffer `m`; see [`MapConcurrent::with_output_buffer`].
    ///
    /// ```
    /// use millrace::wrappers::TryMapConcurrentStage;
    ///
    /// let _stage = TryMapConcurrentStage::new(8, |x: u8| async move { Ok::<_, ()>(x) })
    ///     .output_buffer(0);
    /// ```
    pub fn output_buffer(mut self, m: usize) -> Self {
        self.limits.set_output_buffer(m);
        self
    }
}

impl<S, F, Fut, U, E> Stage<S> for TryMapConcurrentStage<F>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
{
    type Output = TryMapConcurrent<S, F, Fut>;

    fn wrap(self, upstream: S) -> Self::Output {
        TryMapConcurrent::from_limits(upstream, self.f, self.limits)
    }
}
