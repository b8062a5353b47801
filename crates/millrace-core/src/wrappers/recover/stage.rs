//! [`RecoverStage`]: `recover_with` as a reusable [`Stage`](crate::Stage).

use std::fmt;

use futures_core::stream::Stream;

use crate::Stage;
use crate::checkpoint::Checkpoint;

use super::Recover;

/// A [`Stage`] that applies [`recover_with(f)`](crate::PipelineExt::recover_with) with the
/// default [`Checkpoint`].
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::RecoverStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stage = RecoverStage::new(|_: &&str, cp: &Checkpoint<u32>| {
///     Some(stream::iter((cp.delivered as u32..3).map(Ok)))
/// });
/// let out: Vec<_> = stream::iter([Ok(0), Err("down")]).wrap(stage).collect().await;
/// assert_eq!(out, [Ok(0), Ok(1), Ok(2)]);
/// # }
/// ```
#[derive(Clone)]
pub struct RecoverStage<F> {
    f: F,
}

impl<F> fmt::Debug for RecoverStage<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoverStage").finish_non_exhaustive()
    }
}

impl<F> RecoverStage<F> {
    /// A stage recovering with `f(&error, &checkpoint) -> Option<fallback>`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::RecoverStage;
    /// use futures::stream;
    ///
    /// let _stage = RecoverStage::new(|_: &String, _: &Checkpoint<u8>| None::<stream::Empty<Result<u8, String>>>);
    /// ```
    pub fn new(f: F) -> Self {
        RecoverStage { f }
    }
}

impl<S, F, S2, T, E> Stage<S> for RecoverStage<F>
where
    S: Stream<Item = Result<T, E>>,
    S2: Stream<Item = Result<T, E>>,
    F: FnMut(&E, &Checkpoint<T>) -> Option<S2>,
    T: Clone,
{
    type Output = Recover<S, F, S2, Checkpoint<T>>;

    fn wrap(self, upstream: S) -> Self::Output {
        Recover::new(upstream, self.f)
    }
}
