//! The public wrapper types, one per file, each built by a [`PipelineExt`](crate::PipelineExt)
//! method or a free constructor, and each a `Stream` + `FusedStream`.
//!
//! Configured stages (`XStage`) implement [`Stage`](crate::Stage) so that a pipeline segment
//! can be built once and applied to many sources.

mod on_error;
mod recover;
mod restartable;
mod retry;
mod skip_errors;
pub(crate) mod validate;

#[allow(deprecated)]
pub use self::on_error::{SkipCounter, Supervise, SuperviseStage};
pub use self::recover::{CheckpointWith, Recover, RecoverStage};
pub use self::restartable::{Restartable, restartable};
#[allow(deprecated)]
pub use self::retry::{Retry, RetryStats};
pub use self::skip_errors::{SkipErrors, SkipErrorsStage};
pub use self::validate::{Validate, ValidateOk, ValidateOkStage, ValidateStage};
pub use crate::metrics::EventCounter;

mod map_blocking;
pub(crate) mod map_concurrent;
mod rate_limit;
mod size_hint;
pub use self::map_blocking::{MapBlocking, MapBlockingStage};
pub use self::map_concurrent::{
    MapConcurrent, MapConcurrentLocal, MapConcurrentStage, TryMapConcurrent, TryMapConcurrentStage,
};
pub use self::rate_limit::{RateLimit, RateLimitStage};

mod map_retry;
pub use self::map_retry::{MapRetry, MapRetryStage};

mod batch;
mod batcher;
mod deadline;
mod idle_timeout;
mod item_timeout;
mod prefetch;
mod stop_on;
mod timeout_each;
mod try_batch;
pub use self::batch::{Batch, BatchStage};
pub use self::deadline::{Deadline, DeadlineStage};
pub use self::idle_timeout::{IdleTimeout, IdleTimeoutStage};
pub use self::item_timeout::{ItemTimeout, ItemTimeoutStage};
pub use self::prefetch::{Prefetch, PrefetchStage};
pub use self::stop_on::{StopOn, StopOnStage};
#[allow(deprecated)]
pub use self::timeout_each::{TimeoutEach, TimeoutEachStage, TimeoutError};
pub use self::try_batch::{TryBatch, TryBatchStage};

mod metered;
mod paginate;
mod scoped;
mod timed;
mod traced;

#[allow(deprecated)]
pub use self::metered::{
    ClassifyErrors, CountErrors, Counted, ErrorCounting, IgnoreErrors, MeterMode, Metered,
    MeteredStage, Observed,
};
pub use self::paginate::{Page, PagePosition, Paginate, WithPositions, paginate, paginate_from};
pub use self::paginate::{REMEMBERED_CURSORS, RepeatedCursor};
pub use self::scoped::{Scoped, scoped};
pub use self::timed::{Timed, TimedStage};
pub use self::traced::{Traced, TracedStage};

mod by_key;
mod conflate;
mod driven;
pub(crate) mod fan;
mod overflow;
mod window;
pub use self::by_key::MapConcurrentByKey;
pub use self::conflate::Conflate;
pub use self::fan::{
    Balance, Broadcast, DEFAULT_FAN_CAPACITY, DiscardCounter, MergeInOrder, Partition, TryMerge,
    merge_in_order, try_merge,
};
pub use self::overflow::{DropCount, FailOnOverflow, OnOverflow, Overflow, Overflowed};
pub use self::window::{
    Aggregate, EventWindow, LateCounter, MAX_WINDOWS_PER_ITEM, Window, WindowEvent, WindowSpec,
};
