//! The public wrapper types, one per file, each built by a [`PipelineExt`](crate::PipelineExt)
//! method or a free constructor, and each a `Stream` + `FusedStream`.
//!
//! Configured stages (`XStage`) implement [`Stage`](crate::Stage) so that a pipeline segment
//! can be built once and applied to many sources.

// BEGIN wrappers: errors
// END wrappers: errors

// BEGIN wrappers: concurrency
// END wrappers: concurrency

// BEGIN wrappers: flow
// END wrappers: flow

// BEGIN wrappers: resources
mod metered;
mod paginate;
mod scoped;

pub use self::metered::{CountErrors, ErrorCounting, IgnoreErrors, Metered, MeteredStage};
pub use self::paginate::{Page, PagePosition, Paginate, WithPositions};
pub use self::scoped::Scoped;
// END wrappers: resources
