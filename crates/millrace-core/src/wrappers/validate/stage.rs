//! [`ValidateStage`] and [`ValidateOkStage`]: validation as reusable [`Stage`](crate::Stage)s.

use std::fmt;

use futures_core::stream::Stream;

use crate::Stage;

use super::{Invalid, Validate, ValidateOk};

/// A [`Stage`] that applies [`validate(f)`](crate::PipelineExt::validate).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::ValidateStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stage = ValidateStage::new(|s: &&str| if s.is_empty() { Err("empty") } else { Ok(()) });
/// let out: Vec<_> = stream::iter(["a", ""]).wrap(stage).collect().await;
/// assert_eq!(out, [Ok("a"), Err(Invalid::new("", 1, "empty"))]);
/// # }
/// ```
#[derive(Clone)]
pub struct ValidateStage<F> {
    f: F,
}

impl<F> fmt::Debug for ValidateStage<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateStage").finish_non_exhaustive()
    }
}

impl<F> ValidateStage<F> {
    /// A stage validating every item with `f`.
    ///
    /// ```
    /// use millrace::wrappers::ValidateStage;
    ///
    /// let _stage = ValidateStage::new(|x: &u8| if *x < 10 { Ok(()) } else { Err("too big") });
    /// ```
    pub fn new(f: F) -> Self {
        ValidateStage { f }
    }
}

impl<S, F, R> Stage<S> for ValidateStage<F>
where
    S: Stream,
    F: FnMut(&S::Item) -> Result<(), R>,
{
    type Output = Validate<S, F>;

    fn wrap(self, upstream: S) -> Self::Output {
        Validate::new(upstream, self.f)
    }
}

/// A [`Stage`] that applies [`validate_ok(f)`](crate::PipelineExt::validate_ok).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::ValidateOkStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stage = ValidateOkStage::new(|x: &u8| if *x < 10 { Ok(()) } else { Err("too big") });
/// let out: Vec<Result<u8, Invalid<u8, &str>>> = stream::iter([Ok(1), Ok(20)]).wrap(stage).collect().await;
/// assert_eq!(out, [Ok(1), Err(Invalid::new(20, 1, "too big"))]);
/// # }
/// ```
#[derive(Clone)]
pub struct ValidateOkStage<F> {
    f: F,
}

impl<F> fmt::Debug for ValidateOkStage<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateOkStage").finish_non_exhaustive()
    }
}

impl<F> ValidateOkStage<F> {
    /// A stage validating every `Ok` item with `f`.
    ///
    /// ```
    /// use millrace::wrappers::ValidateOkStage;
    ///
    /// let _stage = ValidateOkStage::new(|x: &u8| if *x < 10 { Ok(()) } else { Err("too big") });
    /// ```
    pub fn new(f: F) -> Self {
        ValidateOkStage { f }
    }
}

impl<S, F, T, E, R> Stage<S> for ValidateOkStage<F>
where
    S: Stream<Item = Result<T, E>>,
    F: FnMut(&T) -> Result<(), R>,
    E: From<Invalid<T, R>>,
{
    type Output = ValidateOk<S, F>;

    fn wrap(self, upstream: S) -> Self::Output {
        ValidateOk::new(upstream, self.f)
    }
}
