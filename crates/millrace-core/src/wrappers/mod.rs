//! The public wrapper types, one per file, each built by a [`PipelineExt`](crate::PipelineExt)
//! method or a free constructor, and each a `Stream` + `FusedStream`.
//!
//! Configured stages (`XStage`) implement [`Stage`](crate::Stage) so that a pipeline segment
//! can be built once and applied to many sources.

// BEGIN wrappers: errors
mod recover;
mod retry;
mod supervise;
pub(crate) mod validate;

pub use self::recover::{CheckpointWith, Recover, RecoverStage};
pub use self::retry::{Restartable, Retry, RetryStats};
pub use self::supervise::{SkipCounter, Supervise, SuperviseStage};
pub use self::validate::{Validate, ValidateOk, ValidateOkStage, ValidateStage};
// END wrappers: errors

// BEGIN wrappers: concurrency
// END wrappers: concurrency

// BEGIN wrappers: flow
// END wrappers: flow

// BEGIN wrappers: resources
// END wrappers: resources
