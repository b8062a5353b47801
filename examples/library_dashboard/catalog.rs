//! The catalog service and its two uses: the popular books, loaded up front through the
//! paginated source (retries, restarts from the checkpoint, fallback to the mirror), and the
//! other books, looked up per batch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, future};
use millrace::PagePosition;
use millrace::adapters::fs::LinePosition;
use millrace::adapters::http::reqwest::{self, Url};
use millrace::adapters::http::{
    HttpError, HttpOptions, PageStyle, paginated, paginated_from, request_json,
};
use millrace::adapters::json::Decoded;
use millrace::policy::ExponentialBuilder;
use millrace::positions::TrackedBatch;
use millrace::prelude::*;
use millrace_test_support::{Book, Faults, TestServer};
use serde::Deserialize;

use super::activity_log::{CATALOG_BOOKS, POPULAR_BOOKS};
use super::error::RunError;
use super::input::{Event, Skip, SkipReason, Skips};
use super::sqlite::Row;

/// The catalog service (in-process, on 127.0.0.1), its client and the counters of the HTTP
/// side.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub(crate) server: TestServer,
    client: reqwest::Client,
    pub(crate) counters: Arc<HttpCounters>,
}

impl Catalog {
    /// Starts the service with the demo's faults.
    pub(crate) async fn start() -> Result<Self, RunError> {
        let server = TestServer::builder()
            .items(CATALOG_BOOKS)
            .faults(Faults::main_job())
            .start()
            .await
            .map_err(|source| RunError::Io {
                action: "start the catalog service on",
                path: PathBuf::from("127.0.0.1"),
                source,
            })?;
        Ok(Catalog {
            server,
            client: reqwest::Client::new(),
            counters: Arc::default(),
        })
    }

    /// Loads the popular books (metered as the `catalog` stage) and returns the lookup of the
    /// others; skipped lines (books the catalog lacks) go to `skips`.
    pub(crate) async fn lookup(&self, metrics: &Metrics, skips: Skips) -> Result<Lookup, RunError> {
        let popular = load_popular(&self.client, &self.server, metrics, &self.counters)
            .await
            .map_err(RunError::Catalog)?;
        Ok(Lookup {
            client: self.client.clone(),
            primary: self.server.base_url(),
            mirror: self.server.mirror_url(""),
            options: http_options(&self.counters),
            popular,
            counters: Arc::clone(&self.counters),
            skips,
        })
    }
}

/// Counters of the HTTP side, for the report.
#[derive(Debug, Default)]
pub(crate) struct HttpCounters {
    /// Requests retried inside `HttpOptions` (5xx, dropped connections, timeouts).
    pub(crate) request_retries: AtomicU64,
    /// Catalog source re-opens from the checkpoint (`restartable(..).retry(..)`).
    pub(crate) catalog_restarts: AtomicU64,
    /// Switches of the catalog source to the mirror (`recover_with`).
    pub(crate) catalog_fallbacks: AtomicU64,
    /// Batch lookups answered by the mirror after the primary gave up.
    pub(crate) lookup_fallbacks: AtomicU64,
    /// Batch lookups sent.
    pub(crate) lookups: AtomicU64,
}

/// The request options of every catalog request: short timeouts and backoff, one retry, then
/// the caller's own recovery (source restart, mirror).
fn http_options(counters: &Arc<HttpCounters>) -> HttpOptions {
    let counters = Arc::clone(counters);
    HttpOptions::new()
        .timeout(Duration::from_secs(2))
        .retries(1)
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
        .on_retry(move |_err, _delay| {
            counters.request_retries.fetch_add(1, Ordering::Relaxed);
        })
}

/// Loads the popular books (`0..POPULAR_BOOKS`) page by page: each page is retried per
/// `HttpOptions`; a page that still fails ends the source, which is re-opened from its
/// checkpoint (the position after the last delivered book) twice; after that the mirror takes
/// over from the same checkpoint.
async fn load_popular(
    client: &reqwest::Client,
    server: &TestServer,
    metrics: &Metrics,
    counters: &Arc<HttpCounters>,
) -> Result<HashMap<u64, Book>, HttpError> {
    let style = PageStyle::cursor("cursor", "/next", "/items");
    let first = paginated::<Book>(
        client.clone(),
        server.url("/cursor?limit=500"),
        style.clone(),
    );
    let start = first.position().expect("the catalog URL is valid");
    let options = http_options(counters);

    let (c, s, o) = (client.clone(), style.clone(), options.clone());
    let primary = custom_checkpoint(
        start.clone(),
        |at: &mut PagePosition<Url>, (_book, after): &(Book, PagePosition<Url>)| {
            at.clone_from(after)
        },
    )
    .restartable(move |at: &PagePosition<Url>| {
        paginated_from::<Book>(c.clone(), at.clone(), s.clone())
            .options(o.clone())
            .with_positions()
    })
    // Two restarts, 20 ms then about 40 ms apart (exponential, with jitter).
    .retry(RetryPolicy::new(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(200))
            .with_max_times(2)
            .with_jitter(),
    ));
    let restarts = primary.retries();

    let (c, fallback_counters) = (client.clone(), Arc::clone(counters));
    let recovered =
        primary.recover_with(move |_err, cp: &Checkpoint<(Book, PagePosition<Url>)>| {
            let n = fallback_counters
                .catalog_fallbacks
                .fetch_add(1, Ordering::Relaxed);
            if n >= 3 {
                return None; // the mirror failed too, three times: give up
            }
            let mut at = cp
                .last
                .as_ref()
                .map_or_else(|| start.clone(), |(_, after)| after.clone());
            at.cursor.set_path("/mirror/cursor");
            Some(
                paginated_from::<Book>(c.clone(), at, style.clone())
                    .options(options.clone())
                    .with_positions(),
            )
        });
    // The catalog stage shows the retries and fallbacks of the wrappers inside it.
    let fallbacks = recovered.fallbacks();
    let catalog = recovered
        .take(POPULAR_BOOKS as usize)
        .metered_in(metrics, "catalog")
        .count_errors()
        .with_timing();
    catalog
        .metrics()
        .track_retries(&restarts)
        .track_fallbacks(&fallbacks);
    let books = catalog
        .try_fold(HashMap::new(), |mut books, (book, _)| {
            books.insert(book.id, book);
            future::ready(Ok(books))
        })
        .await;
    counters
        .catalog_restarts
        .store(restarts.get(), Ordering::Relaxed);
    books
}

/// The answer of `/batch?ids=…`.
#[derive(Debug, Deserialize)]
struct BatchReply {
    items: Vec<Book>,
}

/// What the enrichment tasks share.
#[derive(Debug)]
pub(crate) struct Lookup {
    client: reqwest::Client,
    primary: String,
    mirror: String,
    options: HttpOptions,
    popular: HashMap<u64, Book>,
    counters: Arc<HttpCounters>,
    skips: Skips,
}

impl Lookup {
    /// The books `ids` (sorted, distinct): from the primary, or from the mirror once the
    /// primary's retries are spent on a transient failure.
    async fn books(&self, ids: &[u64]) -> Result<Vec<Book>, HttpError> {
        let mut query = String::with_capacity(ids.len() * 6);
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                query.push(',');
            }
            query.push_str(&id.to_string());
        }
        self.counters.lookups.fetch_add(1, Ordering::Relaxed);
        let get = |base: &str| self.client.get(format!("{base}/batch?ids={query}"));
        match request_json::<BatchReply>(&self.client, get(&self.primary), &self.options).await {
            Ok(reply) => Ok(reply.items),
            Err(e) if e.is_transient() => {
                self.counters
                    .lookup_fallbacks
                    .fetch_add(1, Ordering::Relaxed);
                let reply: BatchReply =
                    request_json(&self.client, get(&self.mirror), &self.options).await?;
                Ok(reply.items)
            }
            Err(e) => Err(e),
        }
    }

    /// Enriches one batch: popular books from memory, the others with one lookup for the
    /// batch. Events whose book the catalog lacks become dead letters.
    pub(crate) async fn enrich(
        &self,
        batch: TrackedBatch<LinePosition, Decoded<Event>>,
    ) -> Result<TrackedBatch<LinePosition, Row>, HttpError> {
        let mut missing: Vec<u64> = batch
            .items()
            .iter()
            .map(|d| d.value.book)
            .filter(|id| !self.popular.contains_key(id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let fetched: HashMap<u64, Book> = if missing.is_empty() {
            HashMap::new()
        } else {
            self.books(&missing)
                .await?
                .into_iter()
                .map(|b| (b.id, b))
                .collect()
        };
        Ok(batch.map_or_dead_letter(|Decoded { line, value: e }| {
            match self.popular.get(&e.book).or_else(|| fetched.get(&e.book)) {
                Some(book) => Ok(Row {
                    line: line as i64,
                    ts: e.ts,
                    member: e.member,
                    book: e.book as i64,
                    action: e.action,
                    title: book.title.clone(),
                    year: i64::from(book.year),
                }),
                None => {
                    let detail = format!(
                        "line {line}: book {} is not in the catalog (ids 0..{CATALOG_BOOKS})",
                        e.book
                    );
                    self.skips.push(Skip {
                        line,
                        reason: SkipReason::UnknownBook,
                        detail: detail.clone(),
                    });
                    Err(detail)
                }
            }
        }))
    }
}
