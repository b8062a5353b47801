//! Free constructors of source stages: streams that are built from a factory or a resource
//! rather than from an upstream stream.

// BEGIN sources: errors

use crate::checkpoint::Checkpoint;
use crate::wrappers::Restartable;

/// A source opened by `factory(&checkpoint)`, which can be re-opened after errors with
/// [`.retry(policy)`](Restartable::retry).
///
/// The factory receives the default [`Checkpoint`] (`delivered` count and `last` item) and
/// must return a stream that resumes after it; a source that cannot seek re-opens from the
/// start and uses [`.skip_delivered()`](Restartable::skip_delivered). For a cursor instead of
/// the last item, use [`checkpoint_with(init, update).restartable(factory)`](crate::checkpoint::CustomCheckpoint::restartable).
///
/// The source is opened lazily, on the first poll. Without `.retry(..)` an `Err` is yielded
/// and ends the stream.
///
/// # Examples
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut opens = 0;
/// let numbers = restartable(move |cp: &Checkpoint<u64>| {
///     opens += 1;
///     let fail_at = if opens == 1 { Some(3) } else { None }; // the first connection drops at #3
///     stream::iter(cp.delivered..5).map(move |i| if Some(i) == fail_at { Err("reset") } else { Ok(i) })
/// })
/// .retry(RetryPolicy::fixed(Duration::from_millis(100), 3));
/// let out: Vec<Result<u64, &str>> = numbers.collect().await;
/// assert_eq!(out, [Ok(0), Ok(1), Ok(2), Ok(3), Ok(4)]);
/// # }
/// ```
///
/// # Panics
///
/// A panic in `factory` propagates to the consumer's poll.
pub fn restartable<F, S, T, E>(factory: F) -> Restartable<F, S, Checkpoint<T>>
where
    F: FnMut(&Checkpoint<T>) -> S,
    S: futures_core::Stream<Item = Result<T, E>>,
    T: Clone,
{
    Restartable::new(factory)
}
// END sources: errors

// BEGIN sources: resources
// END sources: resources
