//! The core of millrace: composable asynchronous stream wrappers.
//!
//! A *wrapper* (or *stage*) takes an upstream [`Stream`] and adds one behaviour: retry, fall
//! back, validate, batch, prefetch, limit rate, bound concurrency, time out, scope a resource,
//! measure. Wrappers nest like onions and the consumer only ever sees a plain `Stream`.
//!
//! Use the crate through the `millrace` facade: `use millrace::prelude::*;` brings
//! [`PipelineExt`] (every wrapper as a method on every stream), the [`Stage`] trait and the
//! free constructors ([`restartable`], [`scoped`], [`paginate`]).
//!
//! What we do **not** rewrite: `map`, `filter`, `take`, `chunks`, `buffered` and `collect`
//! come from [`futures::StreamExt`](https://docs.rs/futures/latest/futures/stream/trait.StreamExt.html);
//! millrace only adds what those lack.
//!
//! ```
//! use millrace::prelude::*;
//! use futures::{stream, StreamExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let batches: Vec<Vec<u32>> = stream::iter(1..=7)
//!     .map(|x| x * 10)
//!     .batch(3)
//!     .collect()
//!     .await;
//! assert_eq!(batches, vec![vec![10, 20, 30], vec![40, 50, 60], vec![70]]);
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]

#[macro_use]
mod macros;

#[doc(hidden)]
pub mod __private;

pub mod checkpoint;
pub mod error;
mod ext;
pub mod metrics;
pub mod policy;
pub mod positions;
pub mod sources;
pub mod stage;
pub mod testing;
pub mod wrappers;

pub use futures_core::Stream;
pub use futures_core::stream::FusedStream;

pub use crate::checkpoint::{Checkpoint, Checkpointer, checkpoint_with};
pub use crate::error::ConfigError;
pub use crate::ext::PipelineExt;
pub use crate::metrics::{Metrics, StageMetrics, StageSnapshot};
pub use crate::sources::restartable;
pub use crate::sources::{paginate, paginate_from, scoped};
pub use crate::stage::{Identity, Stack, Stage, StageBuilder, stage_fn};
pub use crate::wrappers::{Page, PagePosition};
pub use crate::wrappers::{merge_in_order, try_merge};

/// Everything a pipeline author needs in scope: `use millrace::prelude::*;`.
pub mod prelude {
    pub use crate::policy::{Invalid, RetryPolicy, Supervision};
    pub use crate::policy::{Rate, RateLimiter};
    pub use crate::stage_fn;
    pub use crate::wrappers::TimeoutError;
    pub use crate::wrappers::{Overflow, WindowSpec};
    pub use crate::{Checkpoint, Checkpointer, checkpoint_with, restartable};
    pub use crate::{FusedStream, PipelineExt, Stage, Stream};
    pub use crate::{Metrics, Page, PagePosition, paginate, paginate_from, scoped};
    pub use crate::{merge_in_order, try_merge};
    pub use tokio_util::sync::CancellationToken;
}
