//! `map_concurrent` and its variants: bounded concurrent mapping of items to futures.
//!
//! * [`MapConcurrent`] — spawned mode (`Send + 'static` work on tokio tasks), ordered or
//!   unordered;
//! * [`MapConcurrentLocal`] — local mode (work polled inside the stream, `!Send` allowed);
//! * [`TryMapConcurrent`] — spawned, fail-fast on the first `Err`;
//! * [`MapConcurrentStage`], [`TryMapConcurrentStage`] — the spawned modes as reusable
//!   [`Stage`](crate::Stage)s.

mod fail_fast;
mod local;
mod spawned;
mod stage;

pub use self::fail_fast::TryMapConcurrent;
pub use self::local::MapConcurrentLocal;
pub use self::spawned::MapConcurrent;
pub(crate) use self::spawned::unwrap_join;
pub use self::stage::{MapConcurrentStage, TryMapConcurrentStage};
