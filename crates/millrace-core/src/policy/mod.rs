//! Policies that configure wrappers: retry backoff, supervision of errors, rates.

// BEGIN policy: errors
// END policy: errors

// BEGIN policy: concurrency
mod rate;
pub use self::rate::{Rate, RateLimiter};
// END policy: concurrency
