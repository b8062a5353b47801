//! The public testing kit: what you need to test your own pipelines, and what millrace's own
//! tests use.
//!
//! - [`scripted`]: a source that plays a script of items, delays, spurious `Pending`s, panics
//!   and hangs;
//! - [`Flaky`]: a restartable source that fails at chosen positions or with a seeded
//!   probability, for retry and fallback tests;
//! - [`record`]: consume a stream and record items, virtual timestamps, polls and `Pending`s;
//! - [`consume`]: consume on a spawned task with a hang guard on its `JoinHandle`;
//! - [`conformance`]: the `Stream` contract checks every stage must pass;
//! - [`DropCounter`], [`alive_tasks`]: prove that dropping a stage releases what it captured
//!   and aborts its tasks;
//! - [`StreamTestExt::interleave_pending`] (futures-test's, re-exported): returns `Pending`
//!   (and wakes) before every item.
//!
//! Time-based tests run under paused tokio time (`#[tokio::test(start_paused = true)]`): the
//! runtime jumps the clock forward whenever every task is idle, so delays cost no real time and
//! every instant is exact.
//!
//! ```
//! use millrace::testing::{record, scripted, Step};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let source = scripted([Step::Item(1), Step::Delay(Duration::from_millis(50)), Step::Item(2)]);
//! let rec = record(source).await;
//! assert_eq!(rec.items, [1, 2]);
//! assert_eq!(rec.times, [Duration::ZERO, Duration::from_millis(50)]);
//! # }
//! ```

mod conformance;
mod drop_counter;
mod flaky;
mod interleave;
mod record;
mod scripted;
mod tracked;

pub use self::conformance::{HANG_BOUND, conformance, consume};
pub use self::drop_counter::{DropCounter, DropToken};
pub use self::flaky::{Flaky, FlakyError, FlakyStream};
#[allow(deprecated)]
pub use self::interleave::{InterleavePending, StreamTestExt, interleave_pending};
pub use self::record::{Recording, record};
pub use self::scripted::{Scripted, Step, scripted};
pub use self::tracked::{TrackedSource, tracked_source};

/// The number of tasks alive on the current tokio runtime.
///
/// Take it before building a stage and compare after dropping it (and yielding a few times so
/// aborted tasks are reaped) to prove the stage left no task behind.
///
/// # Panics
///
/// Panics when called outside a tokio runtime.
///
/// ```
/// use millrace::testing::alive_tasks;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let before = alive_tasks();
/// let task = tokio::spawn(std::future::pending::<()>());
/// assert_eq!(alive_tasks(), before + 1);
/// task.abort();
/// let _ = task.await;
/// assert_eq!(alive_tasks(), before);
/// # }
/// ```
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}
