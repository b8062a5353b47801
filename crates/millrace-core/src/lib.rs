//! The core of millrace: composable asynchronous stream wrappers.
//!
//! A *wrapper* takes an upstream [`Stream`] and adds one behaviour: retry, fall back,
//! validate, batch, prefetch, limit rate, bound concurrency, time out, scope a resource,
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
//!
//! # Glossary
//!
//! Each word below means one thing throughout the crates, their docs and their names.
//!
//! - **wrapper**: a struct that pulls from one upstream stream and adds one behaviour
//!   ([`Retry`](wrappers::Retry), [`Batch`](wrappers::Batch), ...). It is a `Stream` +
//!   `FusedStream`, lives in [`wrappers`] in a file named after the method that builds it, and
//!   is built by a [`PipelineExt`] method or a free constructor.
//! - **source**: a stream with no upstream, opened from a factory or a resource
//!   ([`restartable`], [`scoped`], [`paginate`], the adapters' readers).
//! - **sink**: what drains the end of a pipeline and commits its items (the adapters'
//!   writers, or any future that consumes the stream).
//! - **stage**: one step of a pipeline, however it is built: a wrapper, a `#[stream_stage]`
//!   function, a `futures` combinator. Metrics ([`StageMetrics`], `metered("name")`) and
//!   [`ConfigError`] messages name stages (by their method name unless told otherwise).
//! - **[`Stage`] value**: a configured, reusable factory of one wrapper, like tower's
//!   `Layer`: `XStage` builds `X` with [`Stage::wrap`]; [`Stack`] composes them.
//! - **`#[stream_stage]`**: the attribute that turns an `async fn` into a wrapper (a named
//!   `Stream` struct and its constructor function). It writes a stage, not a `Stage` value.
//! - **pipeline**: a source, then stages, then a sink. `pipeline!` writes one top to bottom;
//!   starting it with `_` instead of a source builds a `Stage` value.
//! - **position** and **tracked**: a position says where in its source an item came from (a
//!   byte offset, a page cursor, a stream entry id). A [`Tracked`](positions::Tracked) stream
//!   carries each item's position beside it through every stage, so that a sink commits data
//!   and position together (see [`positions`]).
//! - **checkpoint**: what a source has delivered so far, as a restart or a fallback needs it:
//!   the default [`Checkpoint`] (a count and the last item) or a
//!   [`CustomCheckpoint`](checkpoint::CustomCheckpoint) (your state, built by
//!   [`custom_checkpoint`]). Both implement [`Checkpointer`], which records each delivered
//!   item. [`checkpoint_with`](PipelineExt::checkpoint_with) is the method that records one
//!   on a stream ([`CheckpointWith`](wrappers::CheckpointWith)).
//! - **metered**: a stage whose counters (items, polls, waits, the end, errors) can be read
//!   live. There are two ways in: [`metered(name)`](PipelineExt::metered) (a stage of its own)
//!   and [`metered_in(&metrics, name)`](PipelineExt::metered_in) (registered in a [`Metrics`]
//!   that reports every stage); `pipeline!` meters each of its stages the second way. Timing
//!   and a tracing span are layers of their own ([`Timed`](wrappers::Timed),
//!   [`Traced`](wrappers::Traced)) added by `.with_timing()` and `.traced()`. A wrapper's rare
//!   events are one [`EventCounter`](metrics::EventCounter) each, handed out by the accessor
//!   named after them: `retries()`, `fallbacks()`, `skipped()`.
//! - **`try_` prefix**: the items are `Result`s and the first `Err` ends the work, as in
//!   futures' `TryStreamExt` ([`try_map_concurrent`](PipelineExt::try_map_concurrent),
//!   [`try_batch`](PipelineExt::try_batch), [`try_merge`]). The one other use follows tokio:
//!   [`RateLimiter::try_acquire`](policy::RateLimiter::try_acquire) takes a permit now or
//!   not at all. A `try_` name is never a fallible constructor.
//! - **`checked_` prefix**: the constructor that returns `Result<_, ConfigError>` where its
//!   plain form panics on a value out of range, as `checked_add` does in `std`:
//!   `Batch::checked_new` beside `Batch::new`, `Rate::checked_per_second` beside
//!   `Rate::per_second`. (The old `try_new`-style names remain as deprecated aliases.)
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

#[allow(deprecated)]
pub use crate::checkpoint::checkpoint_with;
pub use crate::checkpoint::{Checkpoint, Checkpointer, custom_checkpoint};
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
    #[allow(deprecated)]
    pub use crate::checkpoint_with;
    pub use crate::policy::{Invalid, RetryPolicy, Supervision};
    pub use crate::policy::{Rate, RateLimiter};
    pub use crate::stage_fn;
    pub use crate::wrappers::TimeoutError;
    pub use crate::wrappers::{Overflow, WindowSpec};
    pub use crate::{Checkpoint, Checkpointer, custom_checkpoint, restartable};
    pub use crate::{FusedStream, PipelineExt, Stage, Stream};
    pub use crate::{Metrics, Page, PagePosition, paginate, paginate_from, scoped};
    pub use crate::{merge_in_order, try_merge};
    pub use tokio_util::sync::CancellationToken;
}
