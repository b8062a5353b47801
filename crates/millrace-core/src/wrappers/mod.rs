//! The public wrapper types, one per file, each built by a [`PipelineExt`](crate::PipelineExt)
//! method or a free constructor, and each a `Stream` + `FusedStream`.
//!
//! Configured stages (`XStage`) implement [`Stage`](crate::Stage) so that a pipeline segment
//! can be built once and applied to many sources.

mod recover;
mod retry;
mod supervise;
pub(crate) mod validate;

pub use self::recover::{CheckpointWith, Recover, RecoverStage};
pub use self::retry::{Restartable, Retry, RetryStats};
pub use self::supervise::{SkipCounter, Supervise, SuperviseStage};
pub use self::validate::{Validate, ValidateOk, ValidateOkStage, ValidateStage};

mod map_blocking;
pub(crate) mod map_concurrent;
mod rate_limit;
pub use self::map_blocking::{MapBlocking, MapBlockingStage};
pub use self::map_concurrent::{
    MapConcurrent, MapConcurrentLocal, MapConcurrentStage, TryMapConcurrent, TryMapConcurrentStage,
};
pub use self::rate_limit::{RateLimit, RateLimitStage};

mod map_retry;
pub use self::map_retry::{MapRetry, MapRetryStage};

mod batch;
mod deadline;
mod prefetch;
mod stop_on;
mod timeout_each;
pub use self::batch::{Batch, BatchStage};
pub use self::deadline::{Deadline, DeadlineStage};
pub use self::prefetch::{Prefetch, PrefetchStage};
pub use self::stop_on::{StopOn, StopOnStage};
pub use self::timeout_each::{TimeoutEach, TimeoutEachStage, TimeoutError};

mod metered;
mod paginate;
mod scoped;

pub use self::metered::{
    ClassifyErrors, CountErrors, Counted, ErrorCounting, IgnoreErrors, MeterMode, Metered,
    MeteredStage, Observed,
};
pub use self::paginate::{Page, PagePosition, Paginate, WithPositions};
pub use self::scoped::Scoped;
