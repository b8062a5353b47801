//! The server itself: its builder, its handle, its counters and the connection loop.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;

use crate::faults::Faults;
use crate::record::{RecordLog, RequestRecord};
use crate::routes::router;

/// What the server did so far: requests per endpoint, injected faults, concurrency.
///
/// ```
/// use millrace_test_support::TestServer;
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
pub(crate) struct Counters {
    pub(crate) total: AtomicU64,
    pub(crate) items: AtomicU64,
    pub(crate) pages: AtomicU64,
    pub(crate) cursor: AtomicU64,
    pub(crate) linked: AtomicU64,
    pub(crate) batch: AtomicU64,
    pub(crate) mirror: AtomicU64,
    pub(crate) faulty_seen: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) drops: AtomicU64,
    pub(crate) delays: AtomicU64,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) max_in_flight: AtomicUsize,
}

pub(crate) struct Shared {
    pub(crate) addr: SocketAddr,
    pub(crate) items: u64,
    pub(crate) faults: Faults,
    pub(crate) attempts: Mutex<HashMap<String, u32>>,
    pub(crate) counters: Counters,
    pub(crate) log: Option<RecordLog>,
}

/// Configures a [`TestServer`]: catalog size and faults.
///
/// ```
/// use millrace_test_support::{Faults, TestServer};
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
    /// use millrace_test_support::TestServer;
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
    /// use millrace_test_support::{Faults, TestServer};
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
    /// use millrace_test_support::TestServer;
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
    /// use millrace_test_support::TestServer;
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
            log: self.record.then(RecordLog::new),
        });
        let router = router(Arc::clone(&shared));
        let accept = tokio::spawn(accept_loop(listener, router));
        Ok(TestServer {
            shared,
            _accept: AbortOnDropHandle::new(accept),
        })
    }
}

/// A running catalog service on 127.0.0.1 (see the [crate docs](crate) for its endpoints and
/// faults). Dropping it stops the server and closes its connections.
///
/// ```
/// use millrace_test_support::{Book, TestServer};
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
    /// use millrace_test_support::TestServer;
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
    /// use millrace_test_support::TestServer;
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
    /// use millrace_test_support::TestServer;
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
    /// use millrace_test_support::TestServer;
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
    /// use millrace_test_support::TestServer;
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
    /// use millrace_test_support::TestServer;
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
    /// use millrace_test_support::TestServer;
    /// use reqwest;
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
pub(crate) struct KillSwitch(pub(crate) Arc<Notify>);

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
