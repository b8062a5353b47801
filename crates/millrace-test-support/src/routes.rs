//! The catalog's endpoints and the two middlewares in front of them: counting (and
//! recording) every request, and injecting the faults.

use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::book::Book;
use crate::faults::Fault;
use crate::record::{RecordLog, RequestRecord};
use crate::server::{Counters, KillSwitch, Shared};

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    /// `""` or `"/mirror"`, for absolute `Link` targets.
    prefix: &'static str,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
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
