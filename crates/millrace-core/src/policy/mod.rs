//! Policies that configure wrappers: retry backoff, supervision of errors, rates.

pub(crate) mod retry;
mod supervision;

pub use self::retry::{RetryAll, RetryIf, RetryPolicy};
pub use self::supervision::Supervision;
pub use crate::wrappers::validate::Invalid;
/// The [backon](https://docs.rs/backon) backoff builders that [`RetryPolicy::new`] accepts.
pub use backon::{BackoffBuilder, ConstantBuilder, ExponentialBuilder, FibonacciBuilder};

mod rate;
pub use self::rate::{Rate, RateLimiter};

mod backoff;
mod throttle;
pub use self::backoff::{Backoff, BackoffIter};
pub use self::throttle::{Throttle, ThrottlePermit};
