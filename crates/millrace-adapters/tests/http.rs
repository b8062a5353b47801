//! The HTTP adapter against the real thing: the in-process catalog service on 127.0.0.1:0,
//! real sockets, real HTTP, real (short) time — reqwest and hyper run on the real clock.
#![cfg(feature = "http")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use millrace::adapters::http::{
    FetchStage, HttpError, HttpOptions, PageStyle, fetch_json, fetch_json_as, paginated,
    paginated_from, reqwest,
};
use millrace::prelude::*;
use millrace_test_support::{Book, Fault, Faults, TestServer};

/// Retries fast enough for tests: 1 ms doubling to 20 ms, 4 retries, 2 s per attempt.
fn fast() -> HttpOptions {
    HttpOptions::new()
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
        .retries(4)
        .timeout(Duration::from_secs(2))
}

fn ids(books: &[Book]) -> Vec<u64> {
    books.iter().map(|b| b.id).collect()
}

async fn server(items: u64, faults: Faults) -> TestServer {
    TestServer::builder()
        .items(items)
        .faults(faults)
        .start()
        .await
        .expect("bind 127.0.0.1:0")
}

async fn collect_pages(server: &TestServer, path: &str, style: PageStyle) -> Vec<Book> {
    paginated::<Book>(reqwest::Client::new(), server.url(path), style)
        .options(fast())
        .try_collect()
        .await
        .expect("every page succeeds")
}

// ---------------------------------------------------------------- pagination

#[tokio::test]
async fn page_numbers_yield_every_item_once_in_order() {
    let server = server(23, Faults::none()).await;
    let books = collect_pages(&server, "/pages?per_page=5", PageStyle::page("page", 1)).await;
    assert_eq!(ids(&books), (0..23).collect::<Vec<_>>());
    assert_eq!(books[7], Book::new(7));
    // 5 full-or-partial pages, then the empty page that ends the stream.
    assert_eq!(server.stats().page_requests, 6);
}

#[tokio::test]
async fn cursor_pages_yield_every_item_once_in_order() {
    let server = server(23, Faults::none()).await;
    let books = collect_pages(
        &server,
        "/cursor?limit=5",
        PageStyle::cursor("cursor", "/next", "/items"),
    )
    .await;
    assert_eq!(ids(&books), (0..23).collect::<Vec<_>>());
    // The last page says `next: null`: no extra request.
    assert_eq!(server.stats().cursor_requests, 5);
}

#[tokio::test]
async fn link_header_pages_yield_every_item_once_in_order() {
    let server = server(23, Faults::none()).await;
    let books = collect_pages(&server, "/linked?per_page=5", PageStyle::LinkHeader).await;
    assert_eq!(ids(&books), (0..23).collect::<Vec<_>>());
    assert_eq!(server.stats().linked_requests, 5);
}

#[tokio::test]
async fn empty_catalog_is_an_empty_stream_in_every_style() {
    let server = server(0, Faults::none()).await;
    let styles = [
        ("/pages", PageStyle::page("page", 1)),
        ("/cursor", PageStyle::cursor("cursor", "/next", "/items")),
        ("/linked", PageStyle::LinkHeader),
    ];
    for (path, style) in styles {
        assert_eq!(collect_pages(&server, path, style).await, vec![], "{path}");
    }
}

#[tokio::test]
async fn pagination_retries_injected_5xx_and_drops_and_stays_complete() {
    // Page 2 of each style fails twice (503, then a dropped connection) before it succeeds.
    let faults = Faults::none()
        .script(
            "/pages?per_page=4&page=2",
            [Fault::Status(503), Fault::Drop],
        )
        .script(
            "/cursor?limit=4&cursor=o4",
            [Fault::Drop, Fault::Status(500)],
        )
        .script(
            "/linked?page=2&per_page=4",
            [Fault::Status(502), Fault::Drop],
        );
    let server = server(10, faults).await;
    let expected: Vec<u64> = (0..10).collect();

    let by_page = collect_pages(&server, "/pages?per_page=4", PageStyle::page("page", 1)).await;
    let by_cursor = collect_pages(
        &server,
        "/cursor?limit=4",
        PageStyle::cursor("cursor", "/next", "/items"),
    )
    .await;
    let by_link = collect_pages(&server, "/linked?per_page=4", PageStyle::LinkHeader).await;

    assert_eq!(ids(&by_page), expected);
    assert_eq!(ids(&by_cursor), expected);
    assert_eq!(ids(&by_link), expected);
    let stats = server.stats();
    assert_eq!((stats.injected_errors, stats.injected_drops), (3, 3));
    assert_eq!(stats.page_requests, 4 + 2); // 4 pages (last one empty) + 2 retries
    assert_eq!(stats.cursor_requests, 3 + 2);
    assert_eq!(stats.linked_requests, 3 + 2);
}

#[tokio::test]
async fn seeded_random_faults_are_retried_and_reproducible() {
    let run = || async {
        let faults = Faults::seeded(11)
            .errors(0.3)
            .drops(0.2)
            .slow(0.2, Duration::from_millis(5))
            .max_faults_per_key(2);
        let server = server(60, faults).await;
        let books = collect_pages(&server, "/pages?per_page=5", PageStyle::page("page", 1)).await;
        (ids(&books), server.stats())
    };
    let (first, stats) = run().await;
    let (second, again) = run().await;
    assert_eq!(first, (0..60).collect::<Vec<_>>());
    assert_eq!(second, first);
    assert!(
        stats.injected_errors + stats.injected_drops > 0,
        "{stats:?}"
    );
    // The same seed injects the same faults.
    assert_eq!(
        (
            stats.injected_errors,
            stats.injected_drops,
            stats.injected_delays
        ),
        (
            again.injected_errors,
            again.injected_drops,
            again.injected_delays
        )
    );
}

#[tokio::test]
async fn a_page_that_fails_for_good_ends_the_stream_after_its_error() {
    let faults = Faults::none().script("/pages?per_page=3&page=2", [Fault::Status(503); 10]);
    let server = server(9, faults).await;
    let out: Vec<Result<Book, HttpError>> = paginated(
        reqwest::Client::new(),
        server.url("/pages?per_page=3"),
        PageStyle::page("page", 1),
    )
    .options(fast().retries(2))
    .collect()
    .await;
    assert_eq!(out.len(), 4);
    assert_eq!(
        out[..3]
            .iter()
            .map(|r| r.as_ref().unwrap().id)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let err = out[3].as_ref().unwrap_err();
    assert_eq!(err.status(), Some(reqwest::StatusCode::SERVICE_UNAVAILABLE));
    assert!(err.is_transient());
    assert_eq!(server.stats().page_requests, 1 + 3); // page 1, then 3 attempts of page 2
}

#[tokio::test]
async fn a_page_of_the_wrong_shape_is_a_page_error() {
    let server = server(5, Faults::none()).await;
    // `/cursor` answers an object; the Page style expects an array.
    let out: Vec<Result<Book, HttpError>> = paginated(
        reqwest::Client::new(),
        server.url("/cursor"),
        PageStyle::page("page", 1),
    )
    .collect()
    .await;
    assert_eq!(out.len(), 1);
    let err = out[0].as_ref().unwrap_err();
    assert!(matches!(err, HttpError::Page { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(
        err.to_string()
            .contains("the value at \"\" is an object, expected an array of items"),
        "{err}"
    );
}

#[tokio::test]
async fn items_that_do_not_decode_are_error_items_and_the_stream_goes_on() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)] // only decoded
    struct Strict {
        id: u64,
        year: u8, // every year is > 255: each item fails to decode
    }
    let server = server(3, Faults::none()).await;
    let out: Vec<Result<Strict, HttpError>> = paginated(
        reqwest::Client::new(),
        server.url("/linked"),
        PageStyle::LinkHeader,
    )
    .collect()
    .await;
    assert_eq!(out.len(), 3);
    for r in &out {
        let err = r.as_ref().unwrap_err();
        assert!(matches!(err, HttpError::Decode { .. }), "{err:?}");
        assert!(err.to_string().contains("the response from"), "{err}");
    }
}

#[tokio::test]
async fn an_invalid_url_is_one_error_item() {
    let out: Vec<Result<Book, HttpError>> =
        paginated(reqwest::Client::new(), "not a url", PageStyle::LinkHeader)
            .collect()
            .await;
    assert_eq!(out.len(), 1);
    assert!(matches!(out[0], Err(HttpError::InvalidUrl { .. })));
}

#[tokio::test]
async fn paginated_is_fused() {
    let server = server(2, Faults::none()).await;
    let mut s = paginated::<Book>(
        reqwest::Client::new(),
        server.url("/linked"),
        PageStyle::LinkHeader,
    );
    assert!(!s.is_terminated());
    while s.next().await.is_some() {}
    assert!(s.is_terminated());
    assert!(s.next().await.is_none());
    assert_eq!(s.size_hint(), (0, Some(0)));
}

// ---------------------------------------------------------------- fetch stage

fn lookups(
    base: String,
    n: usize,
) -> FetchStage<Book, impl FnMut(&reqwest::Client, u64) -> reqwest::RequestBuilder> {
    fetch_json::<Book, _, _>(reqwest::Client::new(), n, move |c, id: u64| {
        c.get(format!("{base}/items/{id}"))
    })
    .options(fast())
}

#[tokio::test]
async fn fetch_keeps_input_order() {
    let server = server(50, Faults::none()).await;
    let input: Vec<u64> = (0..50).rev().collect();
    let books: Vec<Book> = stream::iter(input.clone())
        .wrap(lookups(server.base_url(), 8))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids(&books), input);
    assert_eq!(server.stats().item_requests, 50);
}

#[tokio::test]
async fn fetch_retries_5xx_and_dropped_connections_and_is_complete() {
    let faults = Faults::seeded(5)
        .errors(0.25)
        .drops(0.15)
        .max_faults_per_key(2);
    let server = server(40, faults).await;
    let retries = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&retries);
    let base = server.base_url();
    let stage = fetch_json::<Book, _, _>(reqwest::Client::new(), 6, move |c, id: u64| {
        c.get(format!("{base}/items/{id}"))
    })
    .options(fast().on_retry(move |err, _| {
        assert!(err.is_transient(), "retried a permanent error: {err}");
        counter.fetch_add(1, Ordering::SeqCst);
    }));

    let books: Vec<Book> = stream::iter(0..40u64)
        .wrap(stage)
        .try_collect()
        .await
        .unwrap();

    assert_eq!(ids(&books), (0..40).collect::<Vec<_>>());
    let stats = server.stats();
    let injected = stats.injected_errors + stats.injected_drops;
    assert!(
        stats.injected_errors > 0 && stats.injected_drops > 0,
        "{stats:?}"
    );
    assert_eq!(retries.load(Ordering::SeqCst), injected);
    assert_eq!(stats.item_requests, 40 + injected);
}

#[tokio::test]
async fn a_404_is_reported_once_and_never_retried() {
    let server = server(5, Faults::none()).await;
    let retries = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&retries);
    let base = server.base_url();
    let stage = fetch_json::<Book, _, _>(reqwest::Client::new(), 2, move |c, id: u64| {
        c.get(format!("{base}/items/{id}"))
    })
    .options(fast().on_retry(move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));

    let out: Vec<Result<Book, HttpError>> = stream::iter([1u64, 99, 2]).wrap(stage).collect().await;

    assert_eq!(out[0].as_ref().unwrap().id, 1);
    assert_eq!(out[2].as_ref().unwrap().id, 2);
    let err = out[1].as_ref().unwrap_err();
    match err {
        HttpError::Status {
            url,
            status,
            body_snippet,
        } => {
            assert_eq!(*status, reqwest::StatusCode::NOT_FOUND);
            assert_eq!(url.path(), "/items/99");
            assert_eq!(
                body_snippet,
                "no book with id 99; the catalog holds ids 0..5"
            );
        }
        other => panic!("expected a 404 status error, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(err.to_string().contains("a 4xx is never retried"), "{err}");
    assert_eq!(retries.load(Ordering::SeqCst), 0);
    assert_eq!(server.stats().item_requests, 3);
}

#[tokio::test]
async fn a_slow_response_beyond_the_timeout_is_a_timeout_error() {
    // The server waits 2 s on every attempt of item 4; the client gives each attempt 100 ms
    // and retries once.
    let faults = Faults::none().script("/items/4", [Fault::Delay(Duration::from_secs(2)); 5]);
    let server = server(10, faults).await;
    let base = server.base_url();
    let stage = fetch_json::<Book, _, _>(reqwest::Client::new(), 4, move |c, id: u64| {
        c.get(format!("{base}/items/{id}"))
    })
    .options(
        HttpOptions::new()
            .timeout(Duration::from_millis(100))
            .retries(1)
            .backoff(Duration::from_millis(1), Duration::from_millis(1)),
    );

    let started = Instant::now();
    let out: Vec<Result<Book, HttpError>> = stream::iter([3u64, 4, 5]).wrap(stage).collect().await;
    let took = started.elapsed();

    assert_eq!(out[0].as_ref().unwrap().id, 3);
    assert_eq!(out[2].as_ref().unwrap().id, 5);
    match out[1].as_ref().unwrap_err() {
        HttpError::Timeout { url, after } => {
            assert_eq!(url.path(), "/items/4");
            assert_eq!(*after, Duration::from_millis(100));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let stats = server.stats();
    assert_eq!((stats.item_requests, stats.injected_delays), (4, 2)); // 2 attempts of item 4
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "the timeout did not cut the wait: {took:?}"
    );
}

#[tokio::test]
async fn never_more_than_n_requests_in_flight() {
    // Every item is slow, so requests overlap as much as the stage allows.
    let mut faults = Faults::none();
    for id in 0..24 {
        faults = faults.script(
            format!("/items/{id}"),
            [Fault::Delay(Duration::from_millis(40))],
        );
    }
    let server = server(24, faults).await;
    let books: Vec<Book> = stream::iter(0..24u64)
        .wrap(lookups(server.base_url(), 3))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(books.len(), 24);
    let stats = server.stats();
    assert_eq!(stats.max_in_flight, 3, "{stats:?}");
    assert_eq!(stats.in_flight, 0);
}

#[tokio::test]
async fn a_concurrency_of_one_is_sequential() {
    let mut faults = Faults::none();
    for id in 0..5 {
        faults = faults.script(
            format!("/items/{id}"),
            [Fault::Delay(Duration::from_millis(10))],
        );
    }
    let server = server(5, faults).await;
    let n = stream::iter(0..5u64)
        .wrap(lookups(server.base_url(), 1))
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .len();
    assert_eq!(n, 5);
    assert_eq!(server.stats().max_in_flight, 1);
}

#[test]
#[should_panic(
    expected = "`fetch_json`: `concurrency` must be at least 1, got 0; pass a non-zero value"
)]
fn zero_concurrency_is_rejected() {
    let _ = fetch_json::<Book, _, _>(reqwest::Client::new(), 0, |c, url: String| c.get(url));
}

/// One type parameter names the decoded type: the same stage, same answers, as the
/// three-parameter `fetch_json::<Book, _, _>`.
#[tokio::test]
async fn fetch_json_as_takes_one_type_parameter() {
    let server = server(10, Faults::none()).await;
    let base = server.base_url();
    let stage = fetch_json_as::<Book>(reqwest::Client::new(), 2)
        .request(move |c, id: u64| c.get(format!("{base}/items/{id}")))
        .options(fast());
    let out: Vec<Result<Book, HttpError>> = stream::iter([4u64, 2, 42]).wrap(stage).collect().await;
    assert_eq!(out[0].as_ref().unwrap(), &Book::new(4));
    assert_eq!(out[1].as_ref().unwrap(), &Book::new(2));
    assert_eq!(
        out[2].as_ref().unwrap_err().status(),
        Some(reqwest::StatusCode::NOT_FOUND)
    );
    assert_eq!(server.stats().item_requests, 3);
}

#[test]
#[should_panic(
    expected = "`fetch_json`: `concurrency` must be at least 1, got 0; pass a non-zero value"
)]
fn fetch_json_as_rejects_zero_concurrency() {
    let _ = fetch_json_as::<Book>(reqwest::Client::new(), 0);
}

#[test]
fn try_new_returns_the_config_error() {
    let err =
        FetchStage::<Book, _>::checked_new(reqwest::Client::new(), 0, |c, url: String| c.get(url))
            .unwrap_err();
    assert_eq!(
        err,
        millrace::ConfigError::zero("fetch_json", "concurrency")
    );
}

#[tokio::test]
async fn dropping_the_stage_aborts_requests_in_flight() {
    // Item 0 fails once with a 503; its task then waits 300 ms before the retry. Dropping the
    // stage during that wait must abort the task: the retry never reaches the server.
    let faults = Faults::none().script("/items/0", [Fault::Status(503)]);
    let server = server(3, faults).await;
    let base = server.base_url();
    let stage = fetch_json::<Book, _, _>(reqwest::Client::new(), 3, move |c, id: u64| {
        c.get(format!("{base}/items/{id}"))
    })
    .options(
        HttpOptions::new()
            .backoff(Duration::from_millis(300), Duration::from_millis(300))
            .jitter(false),
    );
    let mut s = stream::iter(0..3u64).wrap(stage);
    // All three requests start; item 0 holds the ordered output back.
    tokio::time::timeout(Duration::from_millis(100), s.next())
        .await
        .unwrap_err();
    let stats = server.stats();
    assert_eq!((stats.item_requests, stats.injected_errors), (3, 1));
    drop(s);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        server.stats().item_requests,
        3,
        "an aborted request was retried"
    );
}

#[tokio::test]
async fn fetch_is_fused_and_send() {
    fn assert_send<T: Send>(_: &T) {}
    let server = server(2, Faults::none()).await;
    let mut s = stream::iter(0..2u64).wrap(lookups(server.base_url(), 2));
    assert_send(&s);
    assert!(!s.is_terminated());
    while s.next().await.is_some() {}
    assert!(s.is_terminated());
    assert!(s.next().await.is_none());

    let p = paginated::<Book>(
        reqwest::Client::new(),
        server.url("/linked"),
        PageStyle::LinkHeader,
    );
    assert_send(&p);
}

#[tokio::test]
async fn mirror_is_never_faulty() {
    let server = server(5, Faults::seeded(1).errors(1.0).max_faults_per_key(100)).await;
    let books: Vec<Book> = paginated(
        reqwest::Client::new(),
        server.mirror_url("/linked?per_page=2"),
        PageStyle::LinkHeader,
    )
    .try_collect()
    .await
    .unwrap();
    assert_eq!(ids(&books), [0, 1, 2, 3, 4]);
    let stats = server.stats();
    assert_eq!((stats.mirror_requests, stats.injected_errors), (3, 0));
}

#[tokio::test]
async fn a_refused_connection_is_a_transient_connect_error() {
    let server = server(1, Faults::none()).await;
    let url = server.url("/items/0");
    drop(server);
    tokio::task::yield_now().await;
    let stage = fetch_json::<Book, _, _>(reqwest::Client::new(), 1, |c, url: String| c.get(url))
        .options(fast().retries(1));
    let out: Vec<_> = stream::iter([url]).wrap(stage).collect().await;
    let err = out[0].as_ref().unwrap_err();
    assert!(matches!(err, HttpError::Connect { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(std::error::Error::source(err).is_some());
}

#[tokio::test]
async fn a_dropped_connection_is_a_transient_transport_error() {
    let faults = Faults::none().script("/items/0", [Fault::Drop]);
    let server = server(1, faults).await;
    let base = server.base_url();
    let stage = fetch_json::<Book, _, _>(reqwest::Client::new(), 1, move |c, id: u64| {
        c.get(format!("{base}/items/{id}"))
    })
    .options(fast().retries(0));
    let out: Vec<_> = stream::iter([0u64]).wrap(stage).collect().await;
    let err = out[0].as_ref().unwrap_err();
    assert!(matches!(err, HttpError::Transport { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(
        err.to_string()
            .contains("broke before the response was complete"),
        "{err}"
    );
    assert_eq!(server.stats().injected_drops, 1);
}

#[tokio::test]
async fn a_core_retry_policy_sets_the_schedule() {
    use millrace::policy::ConstantBuilder;
    let faults = Faults::none()
        .script("/items/0", [Fault::Status(503), Fault::Status(503)])
        .script("/items/1", [Fault::Status(503), Fault::Status(503)]);
    let server = server(2, faults).await;
    let get = |policy: RetryPolicy<ConstantBuilder>| {
        let base = server.base_url();
        fetch_json::<Book, _, _>(reqwest::Client::new(), 1, move |c, id: u64| {
            c.get(format!("{base}/items/{id}"))
        })
        .options(HttpOptions::new().retry_policy(policy))
    };

    // One retry is not enough for two 503s in a row...
    let out: Vec<_> = stream::iter([0u64])
        .wrap(get(RetryPolicy::fixed(Duration::from_millis(1), 1)))
        .collect()
        .await;
    assert_eq!(
        out[0].as_ref().unwrap_err().status(),
        Some(reqwest::StatusCode::SERVICE_UNAVAILABLE)
    );
    // ...and neither is a total-delay budget that covers only one wait of 30 ms...
    let out: Vec<_> = stream::iter([1u64])
        .wrap(get(RetryPolicy::fixed(Duration::from_millis(30), 5)
            .max_total_delay(Duration::from_millis(50))))
        .collect()
        .await;
    assert!(out[0].is_err());
    // ...two retries are (item 0's third attempt and item 1's third attempt succeed).
    let out: Vec<Book> = stream::iter([0u64, 1])
        .wrap(get(RetryPolicy::fixed(Duration::from_millis(1), 2)))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids(&out), [0, 1]);
    assert_eq!(server.stats().item_requests, 2 + 2 + 2);
}

// ---------------------------------------------------------------- resuming

#[tokio::test]
async fn a_failed_source_resumes_on_the_mirror_without_loss_or_duplicates_in_every_style() {
    let faults = Faults::none()
        .script("/pages?per_page=4&page=2", [Fault::Status(503); 9])
        .script("/cursor?limit=4&cursor=o4", [Fault::Drop; 9])
        .script("/linked?page=2&per_page=4", [Fault::Status(500); 9]);
    let server = server(10, faults).await;
    let client = reqwest::Client::new();
    let cases = [
        (
            "/pages?per_page=4",
            "/mirror/pages",
            PageStyle::page("page", 1),
        ),
        (
            "/cursor?limit=4",
            "/mirror/cursor",
            PageStyle::cursor("cursor", "/next", "/items"),
        ),
        (
            "/linked?per_page=4",
            "/mirror/linked",
            PageStyle::LinkHeader,
        ),
    ];
    for (path, mirror_path, style) in cases {
        let mut primary = paginated::<Book>(client.clone(), server.url(path), style.clone())
            .options(fast().retries(1));
        let mut got = Vec::new();
        let mut errors = 0;
        while let Some(item) = primary.next().await {
            match item {
                Ok(book) => got.push(book.id),
                Err(err) => {
                    assert!(err.is_transient(), "{err}");
                    errors += 1;
                }
            }
        }
        assert_eq!((got.len(), errors), (4, 1), "{path}");
        let mut position = primary.position().unwrap();
        assert_eq!(position.offset, 0, "{path}");
        position.cursor.set_path(mirror_path);
        let rest: Vec<Book> = paginated_from(client.clone(), position, style)
            .try_collect()
            .await
            .unwrap();
        got.extend(ids(&rest));
        assert_eq!(got, (0..10).collect::<Vec<_>>(), "{path}");
    }
}

#[tokio::test]
async fn resuming_mid_page_skips_the_delivered_items() {
    let server = server(10, Faults::none()).await;
    let client = reqwest::Client::new();
    let style = PageStyle::cursor("cursor", "/next", "/items");
    let mut first = paginated::<Book>(client.clone(), server.url("/cursor?limit=4"), style.clone());
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(first.next().await.unwrap().unwrap().id);
    }
    let position = first.position().unwrap();
    assert_eq!(position.offset, 2);
    assert_eq!(
        position.cursor.as_str(),
        server.url("/cursor?limit=4&cursor=o4")
    );
    drop(first);
    let rest: Vec<Book> = paginated_from(client, position, style)
        .try_collect()
        .await
        .unwrap();
    got.extend(ids(&rest));
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn prefetching_the_next_page_keeps_order_and_completeness() {
    let faults = Faults::seeded(3)
        .errors(0.3)
        .slow(0.3, Duration::from_millis(5));
    let server = server(37, faults).await;
    let books: Vec<Book> = paginated(
        reqwest::Client::new(),
        server.url("/linked?per_page=5"),
        PageStyle::LinkHeader,
    )
    .options(fast())
    .prefetch_next_page()
    .try_collect()
    .await
    .unwrap();
    assert_eq!(ids(&books), (0..37).collect::<Vec<_>>());
}

#[tokio::test]
async fn core_retry_reopens_from_the_checkpointed_position() {
    use millrace::PagePosition;
    use reqwest::Url;
    // Page 2 fails three times; the source itself does not retry, the core `retry` re-opens it
    // at the last delivered position, so page 1 is never fetched again.
    let faults = Faults::none().script("/cursor?limit=4&cursor=o4", [Fault::Status(503); 3]);
    let server = server(10, faults).await;
    let client = reqwest::Client::new();
    let style = PageStyle::cursor("cursor", "/next", "/items");
    let start = paginated::<Book>(client.clone(), server.url("/cursor?limit=4"), style.clone())
        .position()
        .unwrap();

    let books: Vec<Book> =
        custom_checkpoint(start, |at, (_, after): &(Book, PagePosition<Url>)| {
            *at = after.clone()
        })
        .restartable(move |at: &PagePosition<Url>| {
            paginated_from::<Book>(client.clone(), at.clone(), style.clone())
                .options(fast().retries(0))
                .with_positions()
        })
        .retry(RetryPolicy::fixed(Duration::from_millis(1), 5))
        .map_ok(|(book, _)| book)
        .try_collect()
        .await
        .unwrap();

    assert_eq!(ids(&books), (0..10).collect::<Vec<_>>());
    let stats = server.stats();
    assert_eq!(
        (stats.cursor_requests, stats.injected_errors),
        (1 + 4 + 1, 3)
    );
}

#[tokio::test]
async fn batch_lookups_answer_found_and_missing_ids() {
    #[derive(Debug, serde::Deserialize)]
    struct Batch {
        items: Vec<Book>,
        missing: Vec<u64>,
    }
    let server = server(10, Faults::none()).await;
    let client = reqwest::Client::new();
    let batch: Batch = millrace::adapters::http::request_json(
        &client,
        client.get(server.url("/batch?ids=3,1,99,9")),
        &fast(),
    )
    .await
    .unwrap();
    assert_eq!(ids(&batch.items), [3, 1, 9]);
    assert_eq!(batch.missing, [99]);
    let err = millrace::adapters::http::request_json::<Batch>(
        &client,
        client.get(server.url("/batch?ids=x")),
        &fast(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), Some(reqwest::StatusCode::BAD_REQUEST));
    assert_eq!(server.stats().batch_requests, 2);
}

#[tokio::test]
async fn unordered_yields_in_completion_order() {
    let faults = Faults::none().script("/items/0", [Fault::Delay(Duration::from_millis(150))]);
    let server = server(4, faults).await;
    let books: Vec<Book> = stream::iter(0..4u64)
        .wrap(lookups(server.base_url(), 4).unordered())
        .try_collect()
        .await
        .unwrap();
    let mut got = ids(&books);
    assert_eq!(got.last(), Some(&0));
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 3]);
}

#[tokio::test]
#[should_panic(expected = "boom")]
async fn a_panic_while_decoding_reaches_the_consumer() {
    struct Boom;
    impl<'de> serde::Deserialize<'de> for Boom {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            panic!("boom")
        }
    }
    let server = server(2, Faults::none()).await;
    let base = server.base_url();
    let stage = fetch_json::<Boom, _, _>(reqwest::Client::new(), 2, move |c, id: u64| {
        c.get(format!("{base}/items/{id}"))
    });
    let _ = stream::iter(0..2u64).wrap(stage).collect::<Vec<_>>().await;
}

#[tokio::test]
async fn a_rate_limit_before_the_fetch_bounds_requests_per_second() {
    let server = server(10, Faults::none()).await;
    let started = Instant::now();
    let books: Vec<Book> = stream::iter(0..10u64)
        .rate_limit(Rate::per_second(50).burst(1))
        .wrap(lookups(server.base_url(), 8))
        .try_collect()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(ids(&books), (0..10).collect::<Vec<_>>());
    // One request at once, then one every 20 ms: the 10th starts 180 ms in.
    assert!(took >= Duration::from_millis(180), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}
