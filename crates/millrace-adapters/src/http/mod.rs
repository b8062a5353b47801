//! HTTP sources and stages on [`reqwest`] (rustls, no OpenSSL), failing with a typed
//! [`HttpError`]:
//!
//! - [`paginated`]: every item of a paginated JSON API ([`PageStyle`]: page numbers, cursors or
//!   `Link` headers), built on the core `paginate`; [`Paginated::position`],
//!   [`Paginated::with_positions`] and [`paginated_from`] resume it after a failure, on the
//!   same service or a mirror (with the core `restartable(..).retry(..)` / `recover_with`).
//! - [`fetch_json`]: a stage that turns each item into a request, at most `n` in flight, on
//!   the core `map_concurrent`.
//! - [`request_json`]: one request, for your own stages.
//!
//! Every request has a per-attempt timeout and retries transient failures (5xx, 408, 429,
//! timeouts, broken connections) with backoff, per [`HttpOptions`] (which also takes a core
//! `RetryPolicy`); a 404 or a body that does not decode is reported at once, never retried.
//! The retries run on the core per-attempt retry, so they are **counted**
//! ([`HttpOptions::retry_stats`]; a metered stage shows them as `retries`).
//!
//! # Limits that hold on every attempt
//!
//! To protect a service, put its limits **in the options**: [`HttpOptions::rate_limiter`]
//! and [`HttpOptions::max_in_flight`] (or one shared core `Throttle`,
//! [`HttpOptions::throttle`]). Every attempt takes them — first tries, retries, page requests
//! — through every clone of the options, so the source and the fetch stage below share one
//! budget. A `rate_limit` stage in front of `fetch_json` is **not** enough: it limits the
//! items, and the retries made inside each request pass it unchecked (a server limited to 50
//! requests per second saw 64 in its busiest second that way).
//!
//! The examples run against the workspace's unpublished `millrace-test-support` crate: an
//! in-process catalog service on 127.0.0.1 that fails, drops connections and slows down on
//! purpose, and can record every request it receives. The example below checks the limits
//! against the server's own log.
//!
//! ```
//! use millrace::prelude::*;
//! use millrace_test_support::{Book, Faults, TestServer, max_arrivals_within, max_in_flight};
//! use millrace::adapters::http::{fetch_json, paginated, reqwest, HttpOptions, PageStyle};
//! use futures::{StreamExt, TryStreamExt};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A catalog of 60 books; 10 % of the requests answer 503.
//! let server = TestServer::builder()
//!     .items(60)
//!     .faults(Faults::seeded(1).errors(0.1))
//!     .record_requests()
//!     .start()
//!     .await
//!     .unwrap();
//! let client = reqwest::Client::new();
//! // One budget for every request of the pipeline: 100 per second, 4 at a time.
//! let options = HttpOptions::new()
//!     .rate_limiter(Rate::per_second(100))
//!     .max_in_flight(4)
//!     .backoff(Duration::from_millis(1), Duration::from_millis(10));
//!
//! // Walk every page of ids, then look each book up again, 8 items in progress at a time.
//! let base = server.base_url();
//! let books: Vec<Book> = paginated::<Book>(
//!         client.clone(),
//!         server.url("/cursor?limit=10"),
//!         PageStyle::cursor("cursor", "/next", "/items"),
//!     )
//!     .options(options.clone())
//!     .map_ok(|book| book.id)
//!     .map(Result::unwrap)
//!     .wrap(
//!         fetch_json::<Book, _, _>(client, 8, move |c, id: u64| c.get(format!("{base}/items/{id}")))
//!             .options(options.clone()),
//!     )
//!     .try_collect()
//!     .await
//!     .unwrap();
//!
//! assert_eq!(books.len(), 60);
//! assert!(books.iter().enumerate().all(|(i, b)| b.id == i as u64));
//! // The server's own record: retries included, never more than the limits.
//! let log = server.requests();
//! let arrivals: Vec<Duration> = log.iter().map(|r| r.arrived).collect();
//! let spans: Vec<_> = log.iter().map(|r| (r.arrived, r.departed)).collect();
//! assert_eq!(options.retry_stats().get(), server.stats().injected_errors);
//! assert!(max_arrivals_within(&arrivals, Duration::from_secs(1)) <= 101);
//! assert!(max_in_flight(&spans) <= 4);
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
mod tracked;

pub use reqwest;

pub use self::error::HttpError;
pub use self::fetch::{
    FetchJson, FetchJsonAs, FetchStage, fetch_json, fetch_json_as, request_json,
};
pub use self::options::HttpOptions;
pub use self::paginated::{
    PageStyle, Paginated, PaginatedWithPositions, paginated, paginated_from,
};
pub use self::tracked::{PageCursor, TrackedPages, paginated_after};
