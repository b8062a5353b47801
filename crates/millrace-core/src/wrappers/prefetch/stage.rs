//! [`PrefetchStage`]: `prefetch` as a reusable [`Stage`].

use std::num::NonZeroUsize;

use futures_core::Stream;

use super::{Prefetch, checked_capacity};
use crate::error::ConfigError;
use crate::stage::Stage;

/// A [`Stage`] that wraps its upstream in a [`Prefetch`]; see
/// [`prefetch`](crate::PipelineExt::prefetch).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::PrefetchStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let out: Vec<u8> = stream::iter(0..4u8).wrap(PrefetchStage::new(2)).collect().await;
/// assert_eq!(out, [0, 1, 2, 3]);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PrefetchStage {
    capacity: NonZeroUsize,
}

impl PrefetchStage {
    /// Prefetch up to `capacity` items.
    ///
    /// # Panics
    ///
    /// If `capacity == 0`, with the [`ConfigError`] message; [`PrefetchStage::checked_new`]
    /// returns it.
    #[track_caller]
    pub fn new(capacity: usize) -> Self {
        crate::error::built(Self::checked_new(capacity))
    }

    /// Prefetch up to `capacity` items, or `Err` if `capacity == 0`.
    pub fn checked_new(capacity: usize) -> Result<Self, ConfigError> {
        Ok(PrefetchStage {
            capacity: checked_capacity(capacity)?,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(capacity: usize) -> Result<Self, ConfigError> {
        Self::checked_new(capacity)
    }
}

impl<S> Stage<S> for PrefetchStage
where
    S: Stream + Send + 'static,
    S::Item: Send,
{
    type Output = Prefetch<S>;

    fn wrap(self, upstream: S) -> Prefetch<S> {
        Prefetch::idle(upstream, self.capacity)
    }
}
