//! HTTP sources and stages on [`reqwest`] (rustls, no OpenSSL), failing with a typed
//! [`HttpError`]:
//!
//! - [`paginated`]: every item of a paginated JSON API ([`PageStyle`]: page numbers, cursors or
//!   `Link` headers), built on the core `paginate`; [`Paginated::position`],
//!   [`Paginated::with_positions`] and [`paginated_from`] resume it after a failure, on the
//!   same service or a mirror (with the core `restartable(..).retry(..)` / `recover_with`).
//! - [`fetch_json`]: a stage that turns each item into a request, at most `n` in flight on the
//!   core `map_concurrent`; put the core `rate_limit` before it to bound requests per second.
//! - [`request_json`]: one request, for your own stages.
//!
//! Every request has a per-attempt timeout and retries transient failures (5xx, 408, 429,
//! timeouts, broken connections) with backoff, per [`HttpOptions`] (which also takes a core
//! `RetryPolicy`); a 404 or a body that does not decode is reported at once, never retried.
//!
//! With the `http-testserver` feature, [`testserver`] starts an in-process catalog service on
//! 127.0.0.1 that fails, drops connections and slows down on purpose: the examples below use
//! it, and so can your tests.
//!
//! ```
//! use millrace::prelude::*;
//! use millrace::adapters::http::testserver::{Book, Fault, Faults, TestServer};
//! use millrace::adapters::http::{fetch_json, paginated, reqwest, HttpOptions, PageStyle};
//! use futures::{StreamExt, TryStreamExt};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A catalog of 30 books whose first request for page 2 fails with a 503.
//! let faults = Faults::none().script("/cursor?limit=10&cursor=o10", [Fault::Status(503)]);
//! let server = TestServer::builder().items(30).faults(faults).start().await.unwrap();
//! let client = reqwest::Client::new();
//! let fast_retries = HttpOptions::new().backoff(Duration::from_millis(1), Duration::from_millis(10));
//!
//! // Walk every page of ids, then look each book up again, 8 requests at a time.
//! let base = server.base_url();
//! let books: Vec<Book> = paginated::<Book>(
//!         client.clone(),
//!         server.url("/cursor?limit=10"),
//!         PageStyle::cursor("cursor", "/next", "/items"),
//!     )
//!     .options(fast_retries.clone())
//!     .map_ok(|book| book.id)
//!     .map(Result::unwrap)
//!     .wrap(
//!         fetch_json::<Book, _, _>(client, 8, move |c, id: u64| c.get(format!("{base}/items/{id}")))
//!             .options(fast_retries),
//!     )
//!     .try_collect()
//!     .await
//!     .unwrap();
//!
//! assert_eq!(books.len(), 30);
//! assert!(books.iter().enumerate().all(|(i, b)| b.id == i as u64));
//! assert_eq!(server.stats().injected_errors, 1); // the 503 was retried
//! # }
//! ```
//!
//! Re-exported here: [`reqwest`], so that the `Client` you pass is the one this module was
//! built with.

mod error;
mod fetch;
mod options;
mod paginated;
mod request;
#[cfg(feature = "http-testserver")]
pub mod testserver;

pub use reqwest;

pub use self::error::HttpError;
pub use self::fetch::{FetchJson, FetchStage, fetch_json, request_json};
pub use self::options::HttpOptions;
pub use self::paginated::{
    PageStyle, Paginated, PaginatedWithPositions, paginated, paginated_from,
};
