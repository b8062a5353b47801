//! # millrace
//!
//! Composable asynchronous stream pipelines for Rust: retry, fall back, validate, batch,
//! prefetch, rate-limit, run concurrently, time out, scope to a resource and measure — each a
//! small wrapper around a `futures::Stream`, nested like onions, as cheap as hand-written
//! `impl Stream` code.
//!
//! Start with the prelude:
//!
//! ```
//! use millrace::prelude::*;
//! use futures::{stream, StreamExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let out: Vec<Vec<u32>> = stream::iter(0..5u32).prefetch(4).batch(2).collect().await;
//! assert_eq!(out, vec![vec![0, 1], vec![2, 3], vec![4]]);
//! # }
//! ```
//!
//! The crates behind this facade: `millrace-core` (wrappers, [`Stage`], [`PipelineExt`],
//! [`testing`]), `millrace-macros` (`#[stream_stage]`, `pipeline!`) and `millrace-adapters`
//! (files, JSON lines, HTTP, SQL, Redis Streams, progress; each behind a cargo feature of the
//! same name, `full` enables all).
#![doc(test(attr(deny(warnings))))]

pub use millrace_core::*;

/// Adapters: ready sources and sinks, each behind a feature of this crate.
pub use millrace_adapters as adapters;

/// Not public API: paths used by the code that millrace's macros generate.
#[doc(hidden)]
pub mod __private {
    pub use millrace_core;
}
