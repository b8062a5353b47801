//! Spurious `Pending`s before every item: futures-test's `interleave_pending`, re-exported so
//! that the kit does not keep a copy of it.

use futures_core::Stream;
pub use futures_test::stream::{InterleavePending, StreamTestExt};

/// Returns `Pending` (after waking the task) before every poll of `stream` that is passed on,
/// so a stage above it must cope with an upstream that is not always ready.
///
/// ```
/// #![allow(deprecated)]
/// use millrace::testing::{interleave_pending, record};
/// use futures::stream;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let rec = record(interleave_pending(stream::iter([1, 2]))).await;
/// assert_eq!(rec.items, [1, 2]);
/// assert_eq!(rec.pendings, 3);
/// # }
/// ```
#[deprecated(
    since = "0.2.0",
    note = "use `StreamTestExt::interleave_pending` (futures-test's, re-exported as \
            `millrace::testing::StreamTestExt`): `stream.interleave_pending()`"
)]
pub fn interleave_pending<S: Stream>(stream: S) -> InterleavePending<S> {
    stream.interleave_pending()
}
