//! `scoped(open, body, close)`: a stream inside a resource's scope; `close` runs exactly once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, conformance, consume, scripted};

/// A shared log of events, so tests can assert their order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn count(&self, s: &str) -> usize {
        self.events().iter().filter(|e| *e == s).count()
    }
}

/// The resource: a "connection" whose rows the body streams (it clones them: it cannot borrow).
struct Conn {
    rows: Vec<Step<Result<u32, String>>>,
}

type Rows = Vec<Step<Result<u32, String>>>;

fn logged_scope(
    log: &Log,
    rows: Rows,
) -> impl FusedStream<Item = Result<u32, String>> + Send + 'static {
    let (lo, lb, lc) = (log.clone(), log.clone(), log.clone());
    scoped(
        async move {
            lo.push("open");
            Ok::<_, String>(Conn { rows })
        },
        move |conn: &Conn| {
            let lb = lb.clone();
            scripted(conn.rows.clone()).inspect(move |r| lb.push(format!("item {r:?}")))
        },
        move |_conn: Conn| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            lc.push("close");
        },
    )
}

#[tokio::test(start_paused = true)]
async fn close_runs_once_on_completion_before_none() {
    let log = Log::default();
    let out = consume(logged_scope(&log, vec![Step::ok(1), Step::ok(2)])).await;
    assert_eq!(out, [Ok(1), Ok(2)]);
    assert_eq!(
        log.events(),
        ["open", "item Ok(1)", "item Ok(2)", "close"],
        "close is awaited before the stream returns None"
    );
}

#[tokio::test(start_paused = true)]
async fn an_error_from_the_body_closes_then_is_yielded_and_ends() {
    let log = Log::default();
    let rows = vec![
        Step::ok(1),
        Step::err("broken pipe".to_owned()),
        Step::ok(3),
    ];
    let mut s = Box::pin(logged_scope(&log, rows));
    assert_eq!(s.next().await, Some(Ok(1)));
    assert_eq!(s.next().await, Some(Err("broken pipe".to_owned())));
    // The resource was closed before the error reached the consumer.
    assert_eq!(log.count("close"), 1);
    assert_eq!(s.next().await, None);
    assert_eq!(s.next().await, None);
    assert!(s.is_terminated());
    drop(s);
    tokio::task::yield_now().await;
    assert_eq!(log.count("close"), 1);
    assert_eq!(
        log.events(),
        ["open", "item Ok(1)", "item Err(\"broken pipe\")", "close"]
    );
}

#[tokio::test(start_paused = true)]
async fn early_drop_inside_a_runtime_spawns_close_once() {
    let log = Log::default();
    let mut s = Box::pin(logged_scope(
        &log,
        vec![Step::ok(1), Step::ok(2), Step::ok(3)],
    ));
    assert_eq!(s.next().await, Some(Ok(1)));
    drop(s);
    assert_eq!(
        log.count("close"),
        0,
        "close is handed to the runtime, not run inline"
    );
    // Let the spawned close run (it sleeps 10 ms of paused time).
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(log.events(), ["open", "item Ok(1)", "close"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(log.count("close"), 1);
}

#[tokio::test(start_paused = true)]
async fn drop_while_closing_finishes_that_close_without_starting_another() {
    let log = Log::default();
    let mut s = Box::pin(logged_scope(&log, vec![Step::ok(1)]));
    assert_eq!(s.next().await, Some(Ok(1)));
    // The next poll ends the body and starts the close, which is now sleeping.
    assert!(futures::poll!(s.next()).is_pending());
    drop(s);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(log.events(), ["open", "item Ok(1)", "close"]);
}

/// With no runtime at drop time, the documented fallback runs `close` to completion on a fresh
/// current-thread runtime in a helper thread, and `drop` waits for it.
#[test]
fn early_drop_without_a_runtime_runs_close_on_a_helper_thread_before_drop_returns() {
    let log = Log::default();
    let (lo, lc) = (log.clone(), log.clone());
    let mut s = Box::pin(scoped(
        async move {
            lo.push("open");
            Ok::<_, ()>(vec![1, 2, 3])
        },
        |rows: &Vec<i32>| stream::iter(rows.clone()).map(Ok),
        move |_rows| async move {
            // Tokio time works: the helper's runtime has the time driver.
            tokio::time::sleep(Duration::from_millis(1)).await;
            lc.push(format!("close on {:?}", std::thread::current().name()));
        },
    ));
    assert!(tokio::runtime::Handle::try_current().is_err());
    assert_eq!(futures::executor::block_on(s.next()), Some(Ok(1)));
    drop(s);
    assert_eq!(
        log.events(),
        ["open", "close on Some(\"millrace-scoped-close\")"]
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_error_is_yielded_and_close_is_not_called() {
    let log = Log::default();
    let lc = log.clone();
    let out = consume(scoped(
        async { Err::<Vec<u32>, _>("connection refused") },
        |rows: &Vec<u32>| stream::iter(rows.clone()).map(Ok),
        move |_| async move { lc.push("close") },
    ))
    .await;
    assert_eq!(out, [Err("connection refused")]);
    tokio::task::yield_now().await;
    assert_eq!(log.count("close"), 0);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn a_panic_in_close_reaches_the_consumer() {
    let s = scoped(
        async { Ok::<_, ()>(()) },
        |_: &()| stream::iter([Ok(1)]),
        |_| async { panic!("boom") },
    );
    let _ = consume(s).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_close_is_not_a_normal_end_and_close_is_not_retried() {
    let log = Log::default();
    let lc = log.clone();
    let mut s = Box::pin(scoped(
        async { Ok::<_, ()>(()) },
        |_: &()| stream::iter([Ok(1)]),
        move |_| async move {
            lc.push("close");
            panic!("boom");
        },
    ));
    assert_eq!(s.next().await, Some(Ok(1)));
    let caught = std::panic::AssertUnwindSafe(s.next()).catch_unwind().await;
    assert!(caught.is_err(), "the panic reached the consumer");
    drop(s);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(log.count("close"), 1, "a panicked close is not handed on");
}

#[tokio::test(start_paused = true)]
async fn the_body_is_dropped_before_close_runs() {
    for early_drop in [false, true] {
        let body_tokens = DropCounter::new();
        let seen_at_close = Arc::new(Mutex::new(None));
        let (bt, seen) = (body_tokens.clone(), seen_at_close.clone());
        let token = body_tokens.token();
        let counter_for_close = body_tokens.clone();
        let mut s = Box::pin(scoped(
            async { Ok::<_, ()>(()) },
            move |_: &()| {
                stream::iter([Ok(1), Ok(2)]).map(move |x| {
                    let _keep = &token;
                    x
                })
            },
            move |_| async move {
                *seen.lock().unwrap() = Some(counter_for_close.alive());
            },
        ));
        assert_eq!(s.next().await, Some(Ok(1)));
        assert_eq!(bt.alive(), 1, "the body stream holds the token");
        if early_drop {
            drop(s);
            tokio::task::yield_now().await;
        } else {
            assert_eq!(s.next().await, Some(Ok(2)));
            assert_eq!(s.next().await, None);
            drop(s);
        }
        assert_eq!(
            *seen_at_close.lock().unwrap(),
            Some(0),
            "early_drop = {early_drop}"
        );
        assert_eq!(body_tokens.alive(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn conformance_scoped() {
    conformance(
        || {
            scoped(
                async { Ok::<_, String>(3u32) },
                |n: &u32| {
                    let n = *n;
                    scripted((0..n).map(Step::ok))
                },
                |_| async {},
            )
        },
        vec![Ok(0), Ok(1), Ok(2)],
    )
    .await;
    conformance(
        || {
            scoped(
                async { Ok::<_, String>(()) },
                |_: &()| scripted([Step::ok(1), Step::err("e".to_owned()), Step::ok(2)]),
                |_| async {},
            )
        },
        vec![Ok(1), Err("e".to_owned())],
    )
    .await;
}

#[test]
fn scoped_is_send_when_its_parts_are() {
    fn assert_send<T: Send>(_: &T) {}
    let s = scoped(
        async { Ok::<_, ()>(vec![1u8]) },
        |v: &Vec<u8>| stream::iter(v.clone()).map(Ok),
        |_| async {},
    );
    assert_send(&s);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_body_reaches_the_consumer_and_dropping_still_closes() {
    let log = Log::default();
    let mut s = Box::pin(logged_scope(&log, vec![Step::ok(1), Step::Panic("boom")]));
    assert_eq!(s.next().await, Some(Ok(1)));
    let caught = std::panic::AssertUnwindSafe(s.next()).catch_unwind().await;
    let panic = caught.expect_err("the body's panic reaches the consumer");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
    assert_eq!(message.as_deref(), Some("boom"));
    drop(s);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(log.events(), ["open", "item Ok(1)", "close"]);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_body_fn_reaches_the_consumer_and_the_resource_is_still_closed() {
    let log = Log::default();
    let (lo, lc) = (log.clone(), log.clone());
    let mut s = Box::pin(scoped(
        async move {
            lo.push("open");
            Ok::<_, ()>(())
        },
        |_: &()| -> futures::stream::Iter<std::vec::IntoIter<Result<u8, ()>>> { panic!("boom") },
        move |_| async move { lc.push("close") },
    ));
    let caught = std::panic::AssertUnwindSafe(s.next()).catch_unwind().await;
    assert!(caught.is_err());
    drop(s);
    tokio::task::yield_now().await;
    assert_eq!(log.events(), ["open", "close"]);
}

// ---- `Scoped::close`: an awaitable close after an early exit (Python's `aclosing`) ----

/// `logged_scope` as its concrete type, so that `close` can be called on it.
macro_rules! logged_scoped {
    ($log:expr, $rows:expr) => {{
        let log: &Log = $log;
        let rows: Rows = $rows;
        let (lo, lb, lc) = (log.clone(), log.clone(), log.clone());
        scoped(
            async move {
                lo.push("open");
                Ok::<_, String>(Conn { rows })
            },
            move |conn: &Conn| {
                let lb = lb.clone();
                scripted(conn.rows.clone()).inspect(move |r| lb.push(format!("item {r:?}")))
            },
            move |_conn: Conn| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                lc.push("close");
            },
        )
    }};
}

#[tokio::test(start_paused = true)]
async fn close_after_an_early_exit_is_awaited_and_runs_exactly_once() {
    let log = Log::default();
    let tasks_before = millrace::testing::alive_tasks();
    let mut s = Box::pin(logged_scoped!(
        &log,
        vec![Step::ok(1), Step::ok(2), Step::ok(3)]
    ));
    assert_eq!(s.next().await, Some(Ok(1)));
    // Early exit: the resource is open, the close has not started.
    assert_eq!(log.count("close"), 0);
    assert_eq!(s.as_mut().close().await, None);
    // Awaited: the close (which takes 10 ms) has finished when `close()` returns.
    assert_eq!(log.count("close"), 1);
    assert_eq!(log.events(), ["open", "item Ok(1)", "close"]);
    assert!(s.is_terminated());
    assert_eq!(s.next().await, None);
    // Idempotent with itself and with the drop path: nothing more runs, nothing is spawned.
    assert_eq!(s.as_mut().close().await, None);
    assert_eq!(millrace::testing::alive_tasks(), tasks_before);
    drop(s);
    assert_eq!(millrace::testing::alive_tasks(), tasks_before);
    tokio::task::yield_now().await;
    assert_eq!(log.count("close"), 1);
}

#[tokio::test(start_paused = true)]
async fn close_after_the_natural_end_does_nothing_more() {
    let log = Log::default();
    let mut s = std::pin::pin!(logged_scoped!(&log, vec![Step::ok(1)]));
    assert_eq!(s.next().await, Some(Ok(1)));
    assert_eq!(s.next().await, None); // closed inside poll_next
    assert_eq!(log.count("close"), 1);
    assert_eq!(s.as_mut().close().await, None);
    assert_eq!(log.count("close"), 1);
}

#[tokio::test(start_paused = true)]
async fn close_before_the_first_poll_opens_nothing_and_closes_nothing() {
    let log = Log::default();
    let mut s = std::pin::pin!(logged_scoped!(&log, vec![Step::ok(1)]));
    assert_eq!(s.as_mut().close().await, None);
    assert!(log.events().is_empty());
    assert_eq!(s.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn close_hands_back_the_body_error_held_during_the_close() {
    let log = Log::default();
    let mut s = std::pin::pin!(logged_scoped!(
        &log,
        vec![Step::ok(1), Step::err("broken".to_string()), Step::ok(2)]
    ));
    assert_eq!(s.next().await, Some(Ok(1)));
    // The error arrives; the close starts and is pending (10 ms): the error is held.
    assert!(s.next().now_or_never().is_none());
    assert_eq!(log.count("close"), 0);
    // The consumer gives up on `next` and closes: the held error is not lost.
    assert_eq!(s.as_mut().close().await, Some("broken".to_string()));
    assert_eq!(log.count("close"), 1);
    assert_eq!(s.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn a_close_future_dropped_midway_is_finished_by_the_drop_path_once() {
    let log = Log::default();
    let mut s = Box::pin(logged_scoped!(&log, vec![Step::ok(1), Step::ok(2)]));
    assert_eq!(s.next().await, Some(Ok(1)));
    // Start the close and abandon it while it is pending.
    assert!(s.as_mut().close().now_or_never().is_none());
    assert_eq!(log.count("close"), 0);
    // Dropping the stream hands the close in progress to the runtime (not a second close).
    drop(s);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(log.count("close"), 1);
}
