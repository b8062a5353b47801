//! `map_concurrent` and its variants: bounded concurrent mapping of items to futures.
//!
//! * [`MapConcurrent`] — spawned mode (`Send + 'static` work on tokio tasks), ordered or
//!   unordered;
//! * [`MapConcurrentLocal`] — local mode (work polled inside the stream, `!Send` allowed);
//! * [`TryMapConcurrent`] — spawned, fail-fast on the first `Err`;
//! * [`MapConcurrentStage`], [`TryMapConcurrentStage`] — the spawned modes as reusable
//!   [`Stage`](crate::Stage)s.

// Each file is named after the method that builds its wrapper, `map_concurrent` included.
#[allow(clippy::module_inception)]
mod map_concurrent;
mod map_concurrent_local;
mod stage;
mod try_map_concurrent;

pub use self::map_concurrent::MapConcurrent;
pub(crate) use self::map_concurrent::unwrap_join;
pub use self::map_concurrent_local::MapConcurrentLocal;
pub use self::try_map_concurrent::TryMapConcurrent;
pub use self::stage::{MapConcurrentStage, TryMapConcurrentStage};
