//! [`MapConcurrentStage`]: `map_concurrent` as a reusable [`Stage`].

use std::fmt;
use std::future::Future;

use futures_core::Stream;

use super::try_map_concurrent::TryMapConcurrent;
use super::map_concurrent::MapConcurrent;
use crate::Stage;
use crate::error::{ConfigError, nonzero};

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
/// # }
/// ```
#[derive(Clone)]
pub struct MapConcurrentStage<F> {
    f: F,
    limit: usize,
    output_buffer: Option<usize>,
    ordered: bool,
}

impl<F> fmt::Debug for MapConcurrentStage<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapConcurrentStage")
            .field("limit", &self.limit)
            .field("output_buffer", &self.output_buffer)
            .field("ordered", &self.ordered)
            .finish_non_exhaustive()
    }
}

impl<F> MapConcurrentStage<F> {
    /// Ordered, at most `limit` in flight.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (see [`try_new`](Self::try_new)).
    pub fn new(limit: usize, f: F) -> Self {
        crate::error::built(Self::try_new(limit, f))
    }

    /// Ordered, or a [`ConfigError`] if `limit` is 0.
    ///
    /// ```
    /// use millrace::wrappers::MapConcurrentStage;
    ///
    /// let err = MapConcurrentStage::try_new(0, |x: u8| async move { x }).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`map_concurrent`: `limit` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn try_new(limit: usize, f: F) -> Result<Self, ConfigError> {
        let limit = nonzero("map_concurrent", "limit", limit)?.get();
        Ok(MapConcurrentStage {
            f,
            limit,
            output_buffer: None,
            ordered: true,
        })
    }

    /// Unordered (completion order), at most `limit` in flight.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (see [`try_unordered`](Self::try_unordered)).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MapConcurrentStage;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let stage = MapConcurrentStage::unordered(2, |x: u32| async move { x });
    /// let mut out: Vec<u32> = stream::iter(1..=3).wrap(stage).collect().await;
    /// out.sort();
    /// assert_eq!(out, [1, 2, 3]);
    /// # }
    /// ```
    pub fn unordered(limit: usize, f: F) -> Self {
        crate::error::built(Self::try_unordered(limit, f))
    }

    /// Unordered, or a [`ConfigError`] if `limit` is 0.
    ///
    /// ```
    /// use millrace::wrappers::MapConcurrentStage;
    ///
    /// assert!(MapConcurrentStage::try_unordered(0, |x: u8| async move { x }).is_err());
    /// ```
    pub fn try_unordered(limit: usize, f: F) -> Result<Self, ConfigError> {
        let limit = nonzero("map_concurrent_unordered", "limit", limit)?.get();
        Ok(MapConcurrentStage {
            f,
            limit,
            output_buffer: None,
            ordered: false,
        })
    }

    /// Sets the output buffer `m`; see [`MapConcurrent::with_output_buffer`].
    ///
    /// ```
    /// use millrace::wrappers::MapConcurrentStage;
    ///
    /// let _stage = MapConcurrentStage::new(8, |x: u8| async move { x }).output_buffer(0);
    /// ```
    pub fn output_buffer(mut self, m: usize) -> Self {
        self.output_buffer = Some(m);
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
        let stage = if self.ordered {
            "map_concurrent"
        } else {
            "map_concurrent_unordered"
        };
        let s = crate::error::built(MapConcurrent::build(
            upstream,
            self.limit,
            self.f,
            self.ordered,
            stage,
        ));
        match self.output_buffer {
            Some(m) => s.with_output_buffer(m),
            None => s,
        }
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
/// # }
/// ```
#[derive(Clone)]
pub struct TryMapConcurrentStage<F> {
    inner: MapConcurrentStage<F>,
}

impl<F> fmt::Debug for TryMapConcurrentStage<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMapConcurrentStage")
            .field("limit", &self.inner.limit)
            .field("output_buffer", &self.inner.output_buffer)
            .field("ordered", &self.inner.ordered)
            .finish_non_exhaustive()
    }
}

impl<F> TryMapConcurrentStage<F> {
    /// Ordered fail-fast, at most `limit` in flight.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (see [`try_new`](Self::try_new)).
    pub fn new(limit: usize, f: F) -> Self {
        crate::error::built(Self::try_new(limit, f))
    }

    /// Ordered fail-fast, or a [`ConfigError`] if `limit` is 0.
    ///
    /// ```
    /// use millrace::wrappers::TryMapConcurrentStage;
    ///
    /// let err = TryMapConcurrentStage::try_new(0, |x: u8| async move { Ok::<_, ()>(x) });
    /// assert_eq!(
    ///     err.unwrap_err().to_string(),
    ///     "`try_map_concurrent`: `limit` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn try_new(limit: usize, f: F) -> Result<Self, ConfigError> {
        let limit = nonzero("try_map_concurrent", "limit", limit)?.get();
        Ok(TryMapConcurrentStage {
            inner: MapConcurrentStage {
                f,
                limit,
                output_buffer: None,
                ordered: true,
            },
        })
    }

    /// Unordered fail-fast, at most `limit` in flight.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (see [`try_unordered`](Self::try_unordered)).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::TryMapConcurrentStage;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let stage = TryMapConcurrentStage::unordered(2, |x: u32| async move { Ok::<_, ()>(x) });
    /// let n = stream::iter(1..=3).wrap(stage).count().await;
    /// assert_eq!(n, 3);
    /// # }
    /// ```
    pub fn unordered(limit: usize, f: F) -> Self {
        crate::error::built(Self::try_unordered(limit, f))
    }

    /// Unordered fail-fast, or a [`ConfigError`] if `limit` is 0.
    ///
    /// ```
    /// use millrace::wrappers::TryMapConcurrentStage;
    ///
    /// assert!(TryMapConcurrentStage::try_unordered(0, |x: u8| async move { Ok::<_, ()>(x) }).is_err());
    /// ```
    pub fn try_unordered(limit: usize, f: F) -> Result<Self, ConfigError> {
        let mut stage = Self::try_new(limit, f)
            .map_err(|_| ConfigError::zero("try_map_concurrent_unordered", "limit"))?;
        stage.inner.ordered = false;
        Ok(stage)
    }

    /// Sets the output buffer `m`; see [`MapConcurrent::with_output_buffer`].
    ///
    /// ```
    /// use millrace::wrappers::TryMapConcurrentStage;
    ///
    /// let _stage = TryMapConcurrentStage::new(8, |x: u8| async move { Ok::<_, ()>(x) })
    ///     .output_buffer(0);
    /// ```
    pub fn output_buffer(self, m: usize) -> Self {
        TryMapConcurrentStage {
            inner: self.inner.output_buffer(m),
        }
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
        let MapConcurrentStage {
            f,
            limit,
            output_buffer,
            ordered,
        } = self.inner;
        let s = if ordered {
            TryMapConcurrent::new(upstream, limit, f)
        } else {
            TryMapConcurrent::new_unordered(upstream, limit, f)
        };
        match output_buffer {
            Some(m) => s.with_output_buffer(m),
            None => s,
        }
    }
}
