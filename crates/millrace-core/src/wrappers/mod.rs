//! The public wrapper types, one per file, each built by a [`PipelineExt`](crate::PipelineExt)
//! method or a free constructor, and each a `Stream` + `FusedStream`.
//!
//! Configured stages (`XStage`) implement [`Stage`](crate::Stage) so that a pipeline segment
//! can be built once and applied to many sources.

// BEGIN wrappers: errors
// END wrappers: errors

// BEGIN wrappers: concurrency
mod map_blocking;
pub(crate) mod map_concurrent;
mod rate_limit;
pub use self::map_blocking::{MapBlocking, MapBlockingStage};
pub use self::map_concurrent::{
    MapConcurrent, MapConcurrentLocal, MapConcurrentStage, TryMapConcurrent, TryMapConcurrentStage,
};
pub use self::rate_limit::{RateLimit, RateLimitStage};
// END wrappers: concurrency

// BEGIN wrappers: flow
// END wrappers: flow

// BEGIN wrappers: resources
// END wrappers: resources
