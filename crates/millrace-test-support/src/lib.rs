//! An in-process catalog service on 127.0.0.1 that fails, drops connections and slows down on
//! purpose, deterministically: for tests, examples and demos of HTTP pipelines.
//!
//! Unpublished (`publish = false`): the millrace workspace's tests, examples and benchmarks use it
//! as a dev-dependency; it is no part of millrace's API. [`TestServer::builder`] configures the catalog size and the
//! [`Faults`]; [`TestServerBuilder::start`] binds `127.0.0.1:0` and serves on the current tokio
//! runtime until the [`TestServer`] is dropped (dropping it closes the listener and every open
//! connection).
//!
//! # Endpoints
//!
//! The catalog holds the books with ids `0..items` ([`Book::new`] makes book `id`).
//!
//! | request | response |
//! |---|---|
//! | `GET /items/{id}` | the [`Book`] as JSON, or `404` for an id outside the catalog |
//! | `GET /pages?page=P&per_page=M` | JSON array of the books of page `P` (from 1; `M` defaults to 10, at most 1000); `[]` past the end |
//! | `GET /cursor?cursor=C&limit=M` | `{"items": [...], "next": "o20"}`; no `cursor` = from the start; `next` is `null` on the last page |
//! | `GET /linked?page=P&per_page=M` | JSON array, plus `Link: <http://…/linked?page=P+1&per_page=M>; rel="next"` while more remain (and a `rel="first"` link) |
//! | `GET /batch?ids=3,1,99` | `{"items": [book 3, book 1], "missing": [99]}`: many lookups in one request (at most 1000 ids) |
//! | `/mirror/…` | the same endpoints, never faulty (a fallback for demos) |
//!
//! # Faults
//!
//! Faults apply to the endpoints outside `/mirror`. Whether a request is faulty depends only on
//! the seed, its path and query (its *key*, e.g. `/items/7` or `/pages?page=2&per_page=10`) and
//! how many times that key was requested before — never on timing or on the order in which
//! concurrent requests arrive — so a run is reproducible under any concurrency. See [`Faults`].
//!
//! ```
//! use millrace_test_support::{Fault, Faults, TestServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let faults = Faults::none().script("/items/1", [Fault::Status(503), Fault::Drop]);
//! let server = TestServer::builder().items(5).faults(faults).start().await.unwrap();
//! let client = reqwest::Client::new();
//!
//! let first = client.get(server.url("/items/1")).send().await.unwrap();
//! assert_eq!(first.status(), 503);
//! assert!(client.get(server.url("/items/1")).send().await.is_err()); // connection dropped
//! let third = client.get(server.url("/items/1")).send().await.unwrap();
//! assert_eq!(third.status(), 200);
//!
//! let stats = server.stats();
//! assert_eq!((stats.item_requests, stats.injected_errors, stats.injected_drops), (3, 1, 1));
//! # }
//! ```

mod book;
mod faults;
mod record;
mod routes;
mod server;

pub use book::Book;
pub use faults::{Fault, Faults};
pub use record::{RequestRecord, max_arrivals_within, max_in_flight};
pub use server::{ServerStats, TestServer, TestServerBuilder};
