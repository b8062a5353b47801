//! The type-level modes `Metered` had before timing and tracing became layers of their own.

/// The mode of a [`Metered`](super::Metered) stage that only counts.
///
/// ```
/// # #![allow(deprecated)]
/// use millrace::wrappers::Counted;
///
/// let _ = Counted;
/// ```
#[deprecated(
    since = "0.2.0",
    note = "`Metered` only counts now: it has no mode parameter (`Metered<S, K>`)"
)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Counted;

/// The mode of a timed or traced [`Metered`](super::Metered) stage.
///
/// ```
/// # #![allow(deprecated)]
/// use millrace::wrappers::Observed;
///
/// let _ = Observed;
/// ```
#[deprecated(
    since = "0.2.0",
    note = "timing and tracing are layers now: `with_timing()` makes a `Metered<Timed<S>, K>`, `traced()` a `Metered<Traced<S>, K>`"
)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed;

/// The mode of a [`Metered`](super::Metered) stage: [`Counted`] or [`Observed`].
///
/// ```
/// # #![allow(deprecated)]
/// use millrace::wrappers::{Counted, MeterMode};
///
/// assert!(!<Counted as MeterMode>::OBSERVED);
/// ```
#[deprecated(
    since = "0.2.0",
    note = "`Metered` has no mode parameter any more; timing and tracing are the `Timed` and `Traced` layers"
)]
pub trait MeterMode {
    /// Whether the mode times and traces.
    const OBSERVED: bool;
}

#[allow(deprecated)]
impl MeterMode for Counted {
    const OBSERVED: bool = false;
}

#[allow(deprecated)]
impl MeterMode for Observed {
    const OBSERVED: bool = true;
}
