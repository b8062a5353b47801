//! How a [`Metered`](super::Metered) stage tells errors from items: [`ErrorCounting`] and its
//! three choices.

use std::fmt;

use crate::metrics::StageMetrics;

/// How a [`Metered`](super::Metered) stage classifies items as errors.
///
/// [`IgnoreErrors`] (the default, works for every item type and costs nothing),
/// [`CountErrors`] (for `Result` items, chosen by [`Metered::count_errors`](super::Metered::count_errors)) or
/// [`ClassifyErrors`] (errors counted per kind, chosen by [`Metered::count_errors_by`](super::Metered::count_errors_by)).
/// The choice is a type parameter because Rust has no specialisation: only a stage over
/// `Result`s can count errors.
pub trait ErrorCounting<I> {
    /// Whether this choice counts errors at all (shown as `Some` in the snapshot).
    const COUNTS: bool;

    /// Whether `item` is an error (the stage counts it); a classifying choice also records
    /// the error's kind in `stage`.
    fn is_error(&self, item: &I, stage: &StageMetrics) -> bool;
}

/// Items are never counted as errors (the default of [`Metered`](super::Metered)).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::{IgnoreErrors, Metered};
/// use futures::stream;
///
/// let _s: Metered<_, IgnoreErrors> = stream::iter([Err::<u8, u8>(1)]).metered("plain");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct IgnoreErrors;

/// `Err` items are counted as errors (see [`Metered::count_errors`](super::Metered::count_errors)).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::{CountErrors, Metered};
/// use futures::stream;
///
/// let _s: Metered<_, CountErrors> = stream::iter([Err::<u8, u8>(1)]).metered("r").count_errors();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CountErrors;

/// `Err` items are counted, and counted per kind by a classifier (see
/// [`Metered::count_errors_by`](super::Metered::count_errors_by)).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::{ClassifyErrors, Metered};
/// use futures::stream;
///
/// let _s: Metered<_, ClassifyErrors<_>> = stream::iter([Err::<u8, u8>(1)])
///     .metered("r")
///     .count_errors_by(|e: &u8| if *e > 0 { "positive" } else { "zero" });
/// ```
#[derive(Clone, Copy)]
pub struct ClassifyErrors<F> {
    pub(super) classify: F,
}

impl<F> fmt::Debug for ClassifyErrors<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifyErrors").finish_non_exhaustive()
    }
}

impl<I> ErrorCounting<I> for IgnoreErrors {
    const COUNTS: bool = false;

    #[inline]
    fn is_error(&self, _: &I, _: &StageMetrics) -> bool {
        false
    }
}

impl<T, E> ErrorCounting<Result<T, E>> for CountErrors {
    const COUNTS: bool = true;

    #[inline]
    fn is_error(&self, item: &Result<T, E>, _: &StageMetrics) -> bool {
        item.is_err()
    }
}

impl<T, E, F, R> ErrorCounting<Result<T, E>> for ClassifyErrors<F>
where
    F: Fn(&E) -> R,
    R: AsRef<str>,
{
    const COUNTS: bool = true;

    #[inline]
    fn is_error(&self, item: &Result<T, E>, stage: &StageMetrics) -> bool {
        match item {
            Ok(_) => false,
            Err(e) => {
                stage.on_error_kind((self.classify)(e).as_ref());
                true
            }
        }
    }
}
