//! An in-process catalog service on 127.0.0.1 that fails, drops connections and slows down on
//! purpose, deterministically: for tests, examples and demos of HTTP pipelines.
//!
//! Feature `http-testserver`. [`TestServer::builder`] configures the catalog size and the
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
//! use millrace::adapters::http::testserver::{Fault, Faults, TestServer};
//! use millrace::adapters::http::reqwest;
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

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;

/// A book of the test catalog; [`Book::new`] makes the same book for the same id, always.
///
/// ```
/// use millrace::adapters::http::testserver::Book;
///
/// let book = Book::new(7);
/// assert_eq!(book.id, 7);
/// assert_eq!(book, Book::new(7));
/// assert_eq!(book.title, "Book #7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Book {
    /// The id, `0..items`.
    pub id: u64,
    /// `"Book #<id>"`.
    pub title: String,
    /// One of a few authors, chosen by id.
    pub author: String,
    /// A year between 1900 and 2019, chosen by id.
    pub year: u16,
}

impl Book {
    /// The catalog's book `id`.
    ///
    /// ```
    /// use millrace::adapters::http::testserver::Book;
    ///
    /// assert_eq!(Book::new(0).year, 1900);
    /// ```
    pub fn new(id: u64) -> Book {
        const AUTHORS: [&str; 5] = [
            "Ursula K. Le Guin",
            "Italo Calvino",
            "Octavia E. Butler",
            "Jorge Luis Borges",
            "Stanisław Lem",
        ];
        Book {
            id,
            title: format!("Book #{id}"),
            author: AUTHORS[(id % AUTHORS.len() as u64) as usize].to_owned(),
            year: 1900 + (id.wrapping_mul(7) % 120) as u16,
        }
    }
}

/// One injected fault.
///
/// ```
/// use std::time::Duration;
/// use millrace::adapters::http::testserver::{Fault, Faults};
///
/// let faults = Faults::none().script(
///     "/items/3",
///     [Fault::Status(500), Fault::Delay(Duration::from_millis(20)), Fault::Drop],
/// );
/// # let _ = faults;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status (e.g. 503) and a short text body instead of the real response.
    Status(u16),
    /// Wait this long (tokio time), then answer normally.
    Delay(Duration),
    /// Close the connection without answering: the client sees the connection closed before
    /// the response was complete.
    Drop,
}

/// The fault plan of a [`TestServer`]: scripted faults for given keys, seeded random faults for
/// the others, and an optional outage window.
///
/// A request's *key* is its path and query exactly as sent (e.g. `/items/7`,
/// `/pages?page=2&per_page=10`).
///
/// - A key with a [`script`](Faults::script): its `k`-th request (from 0) gets the script's
///   `k`-th fault; every request past the script succeeds.
/// - Any other key: each request draws one number from the seed, the key and how many faults
///   in a row that key just had, and becomes a drop, an error or a delay with the configured
///   rates. After [`max_faults_per_key`](Faults::max_faults_per_key) faults in a row the next
///   request succeeds (so a client with that many retries always gets through), and a success
///   starts the count again (a key requested again later may fail again, as in real life).
///
/// So the faults depend only on the sequence of requests per key, never on timing or on how
/// concurrent requests for different keys interleave.
///
/// ```
/// use std::time::Duration;
/// use millrace::adapters::http::testserver::Faults;
///
/// let flaky = Faults::seeded(7)
///     .errors(0.10)                               // 10 % of first attempts get a 503
///     .drops(0.05)                                // 5 % lose their connection
///     .slow(0.10, Duration::from_millis(30))      // 10 % answer after 30 ms
///     .max_faults_per_key(2);
/// # let _ = flaky;
/// ```
#[derive(Debug, Clone)]
pub struct Faults {
    seed: u64,
    error_rate: f64,
    error_status: u16,
    drop_rate: f64,
    slow_rate: f64,
    slow_delay: Duration,
    max_per_key: u32,
    script: HashMap<String, Vec<Fault>>,
    outage: Option<Range<u64>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 0,
            error_rate: 0.0,
            error_status: 503,
            drop_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::ZERO,
            max_per_key: 2,
            script: HashMap::new(),
            outage: None,
        }
    }
}

impl Faults {
    /// No faults at all (rates 0, no script, no outage).
    ///
    /// ```
    /// use millrace::adapters::http::testserver::Faults;
    ///
    /// let healthy = Faults::none();
    /// # let _ = healthy;
    /// ```
    pub fn none() -> Self {
        Self::default()
    }

    /// No faults yet, with `seed` for the random ones added next.
    ///
    /// ```
    /// use millrace::adapters::http::testserver::Faults;
    ///
    /// let f = Faults::seeded(42).errors(0.2);
    /// # let _ = f;
    /// ```
    pub fn seeded(seed: u64) -> Self {
        Faults {
            seed,
            ..Self::default()
        }
    }

    /// The fraction (0.0 to 1.0) of eligible attempts answered with the error status (503
    /// unless changed with [`error_status`](Faults::error_status)).
    ///
    /// ```
    /// use millrace::adapters::http::testserver::Faults;
    ///
    /// let f = Faults::seeded(1).errors(0.5);
    /// # let _ = f;
    /// ```
    pub fn errors(mut self, rate: f64) -> Self {
        self.error_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// The status of random errors and of the outage (default 503).
    ///
    /// ```
    /// use millrace::adapters::http::testserver::Faults;
    ///
    /// let f = Faults::seeded(1).errors(0.5).error_status(500);
    /// # let _ = f;
    /// ```
    pub fn error_status(mut self, status: u16) -> Self {
        self.error_status = status;
        self
    }

    /// The fraction of eligible attempts whose connection is closed without an answer.
    ///
    /// ```
    /// use millrace::adapters::http::testserver::Faults;
    ///
    /// let f = Faults::seeded(1).drops(0.1);
    /// # let _ = f;
    /// ```
    pub fn drops(mut self, rate: f64) -> Self {
        self.drop_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// The fraction of eligible attempts answered after `delay`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::adapters::http::testserver::Faults;
    ///
    /// let f = Faults::seeded(1).slow(0.25, Duration::from_millis(50));
    /// # let _ = f;
    /// ```
    pub fn slow(mut self, rate: f64, delay: Duration) -> Self {
        self.slow_rate = rate.clamp(0.0, 1.0);
        self.slow_delay = delay;
        self
    }

    /// How many random faults in a row one key may get (default 2); the request after them
    /// succeeds.
    ///
    /// ```
    /// use millrace::adapters::http::testserver::Faults;
    ///
    /// let f = Faults::seeded(1).errors(1.0).max_faults_per_key(1); // every key fails exactly once
    /// # let _ = f;
    /// ```
    pub fn max_faults_per_key(mut self, n: u32) -> Self {
        self.max_per_key = n;
        self
    }

    /// Attempt `k` of `key` (path and query, exactly as requested) gets `faults[k]`; attempts
    /// past the end succeed. A scripted key gets no random faults. Calling again for the same
    /// key replaces its script.
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::adapters::http::testserver::{Fault, Faults};
    ///
    /// // Always too slow for a 100 ms client timeout, for the first five attempts.
    /// let f = Faults::none().script("/items/4", [Fault::Delay(Duration::from_secs(2)); 5]);
    /// # let _ = f;
    /// ```
    pub fn script(
        mut self,
        key: impl Into<String>,
        faults: impl IntoIterator<Item = Fault>,
    ) -> Self {
        self.script.insert(key.into(), faults.into_iter().collect());
        self
    }

    /// An outage: the faulty endpoints' requests number `from .. from + len` (counted over all
    /// of them from 0, in arrival order) are all answered with the error status; `/mirror` is
    /// unaffected. Meant for demos of a fallback to the mirror.
    ///
    /// ```
    /// use millrace::adapters::http::testserver::Faults;
    ///
    /// let f = Faults::none().outage(100, u64::MAX); // down for good after 100 requests
    /// # let _ = f;
    /// ```
    pub fn outage(mut self, from: u64, len: u64) -> Self {
        self.outage = Some(from..from.saturating_add(len));
        self
    }

    /// The fault for attempt `attempt` of `key`, if any.
    fn decide(&self, key: &str, attempt: u32) -> Option<Fault> {
        if let Some(script) = self.script.get(key) {
            return script.get(attempt as usize).copied();
        }
        if attempt >= self.max_per_key {
            return None;
        }
        let draw = unit(mix(self.seed
            ^ fnv1a(key.as_bytes())
            ^ mix(u64::from(attempt) + 1)));
        let mut edge = self.drop_rate;
        if draw < edge {
            return Some(Fault::Drop);
        }
        edge += self.error_rate;
        if draw < edge {
            return Some(Fault::Status(self.error_status));
        }
        edge += self.slow_rate;
        if draw < edge {
            return Some(Fault::Delay(self.slow_delay));
        }
        None
    }
}

/// splitmix64's finaliser: a good 64-bit mix.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A number in `[0, 1)` from the top 53 bits.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// What the server did so far: requests per endpoint, injected faults, concurrency.
///
/// ```
/// use millrace::adapters::http::testserver::TestServer;
/// use millrace::adapters::http::reqwest;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = TestServer::builder().start().await.unwrap();
/// reqwest::get(server.url("/pages?page=1")).await.unwrap();
/// let stats = server.stats();
/// assert_eq!((stats.page_requests, stats.total_requests), (1, 1));
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Requests received, all endpoints together (including `/mirror` and unknown paths).
    pub total_requests: u64,
    /// Requests to `/items/{id}`.
    pub item_requests: u64,
    /// Requests to `/pages`.
    pub page_requests: u64,
    /// Requests to `/cursor`.
    pub cursor_requests: u64,
    /// Requests to `/linked`.
    pub linked_requests: u64,
    /// Requests to `/batch`.
    pub batch_requests: u64,
    /// Requests to anything under `/mirror`.
    pub mirror_requests: u64,
    /// Requests answered with an injected error status (including the outage).
    pub injected_errors: u64,
    /// Connections closed without an answer.
    pub injected_drops: u64,
    /// Responses delayed on purpose.
    pub injected_delays: u64,
    /// Requests being handled right now.
    pub in_flight: usize,
    /// The most requests ever handled at the same time.
    pub max_in_flight: usize,
}

#[derive(Default)]
struct Counters {
    total: AtomicU64,
    items: AtomicU64,
    pages: AtomicU64,
    cursor: AtomicU64,
    linked: AtomicU64,
    batch: AtomicU64,
    mirror: AtomicU64,
    faulty_seen: AtomicU64,
    errors: AtomicU64,
    drops: AtomicU64,
    delays: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

struct Shared {
    addr: SocketAddr,
    items: u64,
    faults: Faults,
    attempts: Mutex<HashMap<String, u32>>,
    counters: Counters,
    log: Option<RecordLog>,
}

/// The request log of [`TestServerBuilder::record_requests`].
struct RecordLog {
    start: tokio::time::Instant,
    records: Mutex<Vec<RequestRecord>>,
}

impl RecordLog {
    fn since_start(&self) -> Duration {
        self.start.elapsed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RequestRecord>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One request as the server saw it (see [`TestServerBuilder::record_requests`]).
///
/// ```
/// use millrace::adapters::http::testserver::TestServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = TestServer::builder().items(3).record_requests().start().await.unwrap();
/// reqwest::get(server.url("/items/1")).await.unwrap().text().await.unwrap();
/// let log = server.requests();
/// assert_eq!(log.len(), 1);
/// assert_eq!(log[0].key, "/items/1");
/// assert!(log[0].departed.is_some_and(|d| d >= log[0].arrived));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// The path and query, e.g. `/items/7`.
    pub key: String,
    /// When it arrived, since the server started (tokio's clock).
    pub arrived: Duration,
    /// When the server was done with it (answered, or the connection closed under it);
    /// `None` while it is being handled.
    pub departed: Option<Duration>,
}

/// The most requests that arrived within any window `[t, t + width)`.
///
/// ```
/// use millrace::adapters::http::testserver::max_arrivals_within;
/// use std::time::Duration;
///
/// let ms = Duration::from_millis;
/// assert_eq!(max_arrivals_within(&[ms(0), ms(500), ms(999), ms(1000)], Duration::from_secs(1)), 3);
/// ```
pub fn max_arrivals_within(arrivals: &[Duration], width: Duration) -> usize {
    let mut times = arrivals.to_vec();
    times.sort_unstable();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= width {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// The most requests being handled at one moment, from their arrivals and departures (a
/// departure at the same instant as an arrival counts first).
///
/// ```
/// use millrace::adapters::http::testserver::max_in_flight;
/// use std::time::Duration;
///
/// let ms = Duration::from_millis;
/// assert_eq!(max_in_flight(&[(ms(0), Some(ms(10))), (ms(5), Some(ms(20))), (ms(10), Some(ms(30)))]), 2);
/// ```
pub fn max_in_flight(spans: &[(Duration, Option<Duration>)]) -> usize {
    let mut events: Vec<(Duration, i8)> = Vec::with_capacity(spans.len() * 2);
    for (arrived, departed) in spans {
        events.push((*arrived, 1));
        events.push((departed.unwrap_or(Duration::MAX), -1));
    }
    // Departures (-1) sort before arrivals (+1) at the same instant.
    events.sort_unstable();
    let (mut now, mut best) = (0i64, 0i64);
    for (_, delta) in events {
        now += i64::from(delta);
        best = best.max(now);
    }
    usize::try_from(best).unwrap_or(0)
}

/// Configures a [`TestServer`]: catalog size and faults.
///
/// ```
/// use millrace::adapters::http::testserver::{Faults, TestServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = TestServer::builder()
///     .items(1_000)
///     .faults(Faults::seeded(3).errors(0.1))
///     .start()
///     .await
///     .unwrap();
/// assert!(server.base_url().starts_with("http://127.0.0.1:"));
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "call `.start().await` to run the server"]
pub struct TestServerBuilder {
    items: u64,
    faults: Faults,
    record: bool,
}

impl TestServerBuilder {
    /// The catalog holds books `0..items` (default 100).
    ///
    /// ```
    /// use millrace::adapters::http::testserver::TestServer;
    ///
    /// let builder = TestServer::builder().items(10);
    /// # let _ = builder;
    /// ```
    pub fn items(mut self, items: u64) -> Self {
        self.items = items;
        self
    }

    /// The fault plan (default [`Faults::none`]).
    ///
    /// ```
    /// use millrace::adapters::http::testserver::{Faults, TestServer};
    ///
    /// let builder = TestServer::builder().faults(Faults::seeded(1).drops(0.2));
    /// # let _ = builder;
    /// ```
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Records every request's arrival and departure (off by default: the log grows with
    /// every request): read it with [`TestServer::requests`], e.g. to check that a client
    /// never exceeds a rate or an in-flight bound, retries included.
    ///
    /// ```
    /// use millrace::adapters::http::testserver::TestServer;
    ///
    /// let builder = TestServer::builder().record_requests();
    /// # let _ = builder;
    /// ```
    pub fn record_requests(mut self) -> Self {
        self.record = true;
        self
    }

    /// Binds `127.0.0.1:0` and serves on the current tokio runtime until the returned
    /// [`TestServer`] is dropped.
    ///
    /// # Errors
    ///
    /// The error of binding the listener (e.g. no loopback interface).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// use millrace::adapters::http::testserver::TestServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().start().await.unwrap();
    /// assert!(server.addr().ip().is_loopback());
    /// # }
    /// ```
    pub async fn start(self) -> std::io::Result<TestServer> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            items: self.items,
            faults: self.faults,
            attempts: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            log: self.record.then(|| RecordLog {
                start: tokio::time::Instant::now(),
                records: Mutex::new(Vec::new()),
            }),
        });
        let router = router(Arc::clone(&shared));
        let accept = tokio::spawn(accept_loop(listener, router));
        Ok(TestServer {
            shared,
            _accept: AbortOnDropHandle::new(accept),
        })
    }
}

/// A running catalog service on 127.0.0.1 (see the [module docs](self) for its endpoints and
/// faults). Dropping it stops the server and closes its connections.
///
/// ```
/// use millrace::adapters::http::testserver::{Book, TestServer};
/// use millrace::adapters::http::reqwest;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = TestServer::builder().items(3).start().await.unwrap();
/// let book: Book = reqwest::get(server.url("/items/2")).await.unwrap().json().await.unwrap();
/// assert_eq!(book, Book::new(2));
/// let url = server.url("/items/2");
/// drop(server);
/// tokio::task::yield_now().await;
/// assert!(reqwest::get(url).await.is_err()); // stopped
/// # }
/// ```
pub struct TestServer {
    shared: Arc<Shared>,
    _accept: AbortOnDropHandle<()>,
}

impl TestServer {
    /// A builder with the defaults: 100 books, no faults.
    ///
    /// ```
    /// use millrace::adapters::http::testserver::TestServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().start().await.unwrap();
    /// # drop(server);
    /// # }
    /// ```
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            items: 100,
            faults: Faults::none(),
            record: false,
        }
    }

    /// The address the server listens on (`127.0.0.1` and a free port).
    ///
    /// ```
    /// use millrace::adapters::http::testserver::TestServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().start().await.unwrap();
    /// assert_ne!(server.addr().port(), 0);
    /// # }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    ///
    /// ```
    /// use millrace::adapters::http::testserver::TestServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().start().await.unwrap();
    /// assert_eq!(server.base_url(), format!("http://{}", server.addr()));
    /// # }
    /// ```
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The absolute URL of `path_and_query` (which starts with `/`).
    ///
    /// ```
    /// use millrace::adapters::http::testserver::TestServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().start().await.unwrap();
    /// assert_eq!(server.url("/items/1"), format!("{}/items/1", server.base_url()));
    /// # }
    /// ```
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.shared.addr)
    }

    /// The absolute URL of `path_and_query` on the fault-free mirror (`/mirror` + path).
    ///
    /// ```
    /// use millrace::adapters::http::testserver::TestServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().start().await.unwrap();
    /// assert_eq!(server.mirror_url("/items/1"), format!("{}/mirror/items/1", server.base_url()));
    /// # }
    /// ```
    pub fn mirror_url(&self, path_and_query: &str) -> String {
        format!("http://{}/mirror{path_and_query}", self.shared.addr)
    }

    /// A snapshot of the counters.
    ///
    /// ```
    /// use millrace::adapters::http::testserver::TestServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().start().await.unwrap();
    /// assert_eq!(server.stats().total_requests, 0);
    /// # }
    /// ```
    pub fn stats(&self) -> ServerStats {
        self.stats_now()
    }

    /// Every request so far, in arrival order, if the server was built with
    /// [`record_requests`](TestServerBuilder::record_requests) (empty otherwise).
    ///
    /// ```
    /// use millrace::adapters::http::testserver::TestServer;
    /// use millrace::adapters::http::reqwest;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::builder().record_requests().start().await.unwrap();
    /// reqwest::get(server.url("/items/1")).await.unwrap();
    /// let log = server.requests();
    /// assert_eq!(log.len(), 1);
    /// assert_eq!(log[0].key, "/items/1");
    /// assert!(log[0].departed.unwrap() >= log[0].arrived);
    /// # }
    /// ```
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .as_ref()
            .map(|log| log.lock().clone())
            .unwrap_or_default()
    }

    fn stats_now(&self) -> ServerStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        ServerStats {
            total_requests: get(&c.total),
            item_requests: get(&c.items),
            page_requests: get(&c.pages),
            cursor_requests: get(&c.cursor),
            linked_requests: get(&c.linked),
            batch_requests: get(&c.batch),
            mirror_requests: get(&c.mirror),
            injected_errors: get(&c.errors),
            injected_drops: get(&c.drops),
            injected_delays: get(&c.delays),
            in_flight: c.in_flight.load(Ordering::SeqCst),
            max_in_flight: c.max_in_flight.load(Ordering::SeqCst),
        }
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.shared.addr)
            .field("items", &self.shared.items)
            .field("faults", &self.shared.faults)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Put into every request's extensions by the connection task: notifying it closes the
/// connection at once, without an answer.
#[derive(Clone)]
struct KillSwitch(Arc<Notify>);

/// Accepts connections until aborted; dropping the `JoinSet` aborts every connection task.
async fn accept_loop(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                connections.spawn(serve_connection(tcp, router.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one HTTP/1.1 connection with `router`, or closes it when a handler pulls the
/// [`KillSwitch`]. (axum's own `serve` has no per-connection hook, hence this small loop on
/// hyper directly.)
async fn serve_connection(tcp: tokio::net::TcpStream, router: Router) {
    let kill = Arc::new(Notify::new());
    let switch = KillSwitch(Arc::clone(&kill));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(switch.clone());
        let mut router = router.clone();
        // `Router` is always ready, so `call` without `poll_ready` is allowed.
        async move { tower_service::Service::call(&mut router, request).await }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service);
    tokio::select! {
        _ = connection => {}
        () = kill.notified() => {} // drops the connection: the socket closes, no answer
    }
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    /// `""` or `"/mirror"`, for absolute `Link` targets.
    prefix: &'static str,
}

fn router(shared: Arc<Shared>) -> Router {
    let catalog = |prefix: &'static str| {
        Router::new()
            .route("/items/{id}", get(item))
            .route("/pages", get(pages))
            .route("/cursor", get(cursor))
            .route("/linked", get(linked))
            .route("/batch", get(batch))
            .with_state(Ctx {
                shared: Arc::clone(&shared),
                prefix,
            })
    };
    let faulty = catalog("").layer(middleware::from_fn_with_state(
        Arc::clone(&shared),
        inject_faults,
    ));
    Router::new()
        .merge(faulty)
        .nest("/mirror", catalog("/mirror"))
        .layer(middleware::from_fn_with_state(shared, count))
}

/// Decrements the in-flight counter when the request ends, however it ends.
struct InFlight<'a>(&'a Counters);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn count(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let c = &shared.counters;
    c.total.fetch_add(1, Ordering::SeqCst);
    let path = request.uri().path();
    let endpoint = if path.starts_with("/mirror/") {
        Some(&c.mirror)
    } else if path.starts_with("/items/") {
        Some(&c.items)
    } else {
        match path {
            "/pages" => Some(&c.pages),
            "/cursor" => Some(&c.cursor),
            "/linked" => Some(&c.linked),
            "/batch" => Some(&c.batch),
            _ => None,
        }
    };
    if let Some(counter) = endpoint {
        counter.fetch_add(1, Ordering::SeqCst);
    }
    let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    c.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _guard = InFlight(c);
    let _record = shared.log.as_ref().map(|log| {
        let key = request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |pq| pq.as_str().to_owned(),
        );
        let mut records = log.lock();
        records.push(RequestRecord {
            key,
            arrived: log.since_start(),
            departed: None,
        });
        Departure {
            log,
            index: records.len() - 1,
        }
    });
    next.run(request).await
}

/// Stamps a recorded request's departure when the request ends, however it ends.
struct Departure<'a> {
    log: &'a RecordLog,
    index: usize,
}

impl Drop for Departure<'_> {
    fn drop(&mut self) {
        let at = self.log.since_start();
        if let Some(record) = self.log.lock().get_mut(self.index) {
            record.departed = Some(at);
        }
    }
}

async fn inject_faults(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let c = &shared.counters;
    let faults = &shared.faults;
    let seen = c.faulty_seen.fetch_add(1, Ordering::SeqCst);
    if faults.outage.as_ref().is_some_and(|o| o.contains(&seen)) {
        c.errors.fetch_add(1, Ordering::SeqCst);
        return injected_status(faults.error_status, "outage");
    }
    let key = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    // Scripted keys count every request; other keys only their current run of faults, so
    // the table holds just the keys in trouble right now (a long demo run stays small).
    let (attempt, fault) = {
        let mut attempts = shared
            .attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let attempt = attempts.get(&key).copied().unwrap_or(0);
        let fault = faults.decide(&key, attempt);
        if fault.is_some() || faults.script.contains_key(&key) {
            attempts.insert(key.clone(), attempt + 1);
        } else if attempt > 0 {
            attempts.remove(&key);
        }
        (attempt, fault)
    };
    match fault {
        None => next.run(request).await,
        Some(Fault::Status(status)) => {
            c.errors.fetch_add(1, Ordering::SeqCst);
            injected_status(status, &format!("attempt {attempt} of {key}"))
        }
        Some(Fault::Delay(delay)) => {
            c.delays.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Some(Fault::Drop) => {
            c.drops.fetch_add(1, Ordering::SeqCst);
            match request.extensions().get::<KillSwitch>() {
                Some(KillSwitch(kill)) => {
                    kill.notify_one();
                    // The connection task drops this future with the connection.
                    std::future::pending::<Response>().await
                }
                // Not served through `serve_connection` (cannot happen): answer 500 instead.
                None => injected_status(500, "drop without a connection"),
            }
        }
    }
}

fn injected_status(status: u16, what: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, format!("injected fault ({what})")).into_response()
}

fn not_found(id: u64, items: u64) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no book with id {id}; the catalog holds ids 0..{items}"),
    )
        .into_response()
}

async fn item(State(ctx): State<Ctx>, Path(id): Path<u64>) -> Response {
    if id < ctx.shared.items {
        Json(Book::new(id)).into_response()
    } else {
        not_found(id, ctx.shared.items)
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u64>,
    per_page: Option<u64>,
}

const DEFAULT_PER_PAGE: u64 = 10;
const MAX_PER_PAGE: u64 = 1000;

/// The books `from..from + n` that exist.
fn books(items: u64, from: u64, n: u64) -> Vec<Book> {
    (from.min(items)..from.saturating_add(n).min(items))
        .map(Book::new)
        .collect()
}

/// `(page, per_page, first id)`, or a 400 message.
fn page_range(q: &PageQuery) -> Result<(u64, u64, u64), String> {
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if page == 0 || per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(format!(
            "pages start at 1 and per_page is 1..={MAX_PER_PAGE}; got page={page}, per_page={per_page}"
        ));
    }
    Ok((page, per_page, (page - 1).saturating_mul(per_page)))
}

async fn pages(State(ctx): State<Ctx>, Query(q): Query<PageQuery>) -> Response {
    match page_range(&q) {
        Ok((_, per_page, from)) => Json(books(ctx.shared.items, from, per_page)).into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

async fn linked(State(ctx): State<Ctx>, Query(q): Query<PageQuery>) -> Response {
    let (page, per_page, from) = match page_range(&q) {
        Ok(range) => range,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let items = ctx.shared.items;
    let base = format!("http://{}{}/linked", ctx.shared.addr, ctx.prefix);
    let mut link = format!("<{base}?page=1&per_page={per_page}>; rel=\"first\"");
    if from.saturating_add(per_page) < items {
        link.push_str(&format!(
            ", <{base}?page={}&per_page={per_page}>; rel=\"next\"",
            page + 1
        ));
    }
    let mut response = Json(books(items, from, per_page)).into_response();
    if let Ok(value) = HeaderValue::from_str(&link) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

#[derive(Deserialize)]
struct BatchQuery {
    ids: String,
}

#[derive(Serialize)]
struct BatchPage {
    items: Vec<Book>,
    missing: Vec<u64>,
}

async fn batch(State(ctx): State<Ctx>, Query(q): Query<BatchQuery>) -> Response {
    let ids: Result<Vec<u64>, _> = q
        .ids
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::parse::<u64>)
        .collect();
    let ids = match ids {
        Ok(ids) if ids.len() <= MAX_PER_PAGE as usize => ids,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "ids must be at most {MAX_PER_PAGE} comma-separated numbers; got {:?}",
                    q.ids
                ),
            )
                .into_response();
        }
    };
    let items = ctx.shared.items;
    let (found, missing): (Vec<u64>, Vec<u64>) = ids.into_iter().partition(|&id| id < items);
    Json(BatchPage {
        items: found.into_iter().map(Book::new).collect(),
        missing,
    })
    .into_response()
}

#[derive(Deserialize)]
struct CursorQuery {
    cursor: Option<String>,
    limit: Option<u64>,
}

#[derive(Serialize)]
struct CursorPage {
    items: Vec<Book>,
    next: Option<String>,
}

async fn cursor(State(ctx): State<Ctx>, Query(q): Query<CursorQuery>) -> Response {
    let limit = q.limit.unwrap_or(DEFAULT_PER_PAGE);
    let from = match q.cursor.as_deref() {
        None => Ok(0),
        Some(c) => c
            .strip_prefix('o')
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or(c),
    };
    let from = match from {
        Ok(from) if (1..=MAX_PER_PAGE).contains(&limit) => from,
        Ok(_) | Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "cursor must be a value from a previous page's `next` and limit 1..={MAX_PER_PAGE}; got cursor={:?}, limit={limit}",
                    q.cursor
                ),
            )
                .into_response();
        }
    };
    let items = ctx.shared.items;
    let page = CursorPage {
        items: books(items, from, limit),
        next: (from.saturating_add(limit) < items).then(|| format!("o{}", from + limit)),
    };
    Json(page).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_deterministic_and_bounded() {
        let f = Faults::seeded(9).errors(0.5).max_faults_per_key(1);
        let first: Vec<_> = (0..100)
            .map(|i| f.decide(&format!("/items/{i}"), 0))
            .collect();
        let again: Vec<_> = (0..100)
            .map(|i| f.decide(&format!("/items/{i}"), 0))
            .collect();
        assert_eq!(first, again);
        let failures = first.iter().filter(|d| d.is_some()).count();
        assert!(
            (30..=70).contains(&failures),
            "{failures} of 100 at rate 0.5"
        );
        assert!((0..100).all(|i| f.decide(&format!("/items/{i}"), 1).is_none()));
    }

    #[test]
    fn script_wins_and_ends() {
        let f = Faults::seeded(1).errors(1.0).script("/a", [Fault::Drop]);
        assert_eq!(f.decide("/a", 0), Some(Fault::Drop));
        assert_eq!(f.decide("/a", 1), None);
        assert_eq!(f.decide("/b", 0), Some(Fault::Status(503)));
    }
}
