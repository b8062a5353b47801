//! `on_error(Supervision)`: Stop, Resume (counted and reported) and Replace.

use futures::{FutureExt, StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, alive_tasks, conformance, consume, scripted};
use millrace::wrappers::SuperviseStage;

fn source() -> millrace::testing::Scripted<Result<i32, String>> {
    scripted([
        Step::ok(1),
        Step::err("bad #1".to_owned()),
        Step::ok(2),
        Step::err("bad #2".to_owned()),
        Step::ok(3),
    ])
}

#[tokio::test(start_paused = true)]
async fn stop_yields_the_error_then_ends() {
    let mut s = Box::pin(source().on_error(Supervision::Stop));
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item);
    }
    assert_eq!(out, [Ok(1), Err("bad #1".to_owned())]);
    assert!(s.is_terminated());
    assert_eq!(s.next().await, None);
    assert_eq!(s.skipped(), 0);
}

#[tokio::test(start_paused = true)]
async fn resume_drops_failed_items_and_counts_them() {
    let s = source().on_error(Supervision::Resume);
    let counter = s.skipped();
    assert_eq!(counter.get(), 0);
    let out = consume(s).await;
    assert_eq!(out, [Ok(1), Ok(2), Ok(3)]);
    assert_eq!(counter.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn replace_turns_errors_into_items() {
    let s = source().on_error(Supervision::replace(|e: String| -(e.len() as i32)));
    assert_eq!(
        s.collect::<Vec<_>>().await,
        [Ok(1), Ok(-6), Ok(2), Ok(-6), Ok(3)]
    );
}

#[tokio::test(start_paused = true)]
async fn stages_apply_the_same_supervision() {
    let out: Vec<_> = source()
        .wrap(SuperviseStage::new(Supervision::Resume))
        .collect()
        .await;
    assert_eq!(out, [Ok(1), Ok(2), Ok(3)]);
}

mod support;
use support::capture;

#[tokio::test(start_paused = true)]
async fn every_skipped_error_is_reported_as_a_warning() {
    let (events, _guard) = capture::capture();
    let out: Vec<_> = source().on_error(Supervision::Resume).collect().await;
    assert_eq!(out, [Ok(1), Ok(2), Ok(3)]);
    let text = events.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("WARN"), "{text}");
    assert!(lines[0].contains("skipped=1"), "{text}");
    assert!(lines[0].contains("error=bad #1"), "{text}");
    assert!(lines[1].contains("skipped=2"), "{text}");
    assert!(lines[1].contains("error=bad #2"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn conformance_in_every_mode() {
    conformance(
        || source().on_error(Supervision::Stop),
        vec![Ok(1), Err("bad #1".to_owned())],
    )
    .await;
    conformance(
        || source().on_error(Supervision::Resume),
        vec![Ok(1), Ok(2), Ok(3)],
    )
    .await;
    conformance(
        || source().on_error(Supervision::replace(|_: String| 0)),
        vec![Ok(1), Ok(0), Ok(2), Ok(0), Ok(3)],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_releases_the_upstream_and_the_replace_closure() {
    let tasks = alive_tasks();
    let counter = DropCounter::new();
    let (t1, t2) = (counter.token(), counter.token());
    let upstream = stream::pending::<Result<u32, String>>().map(move |x| {
        let _held = &t1;
        x
    });
    let mut s = Box::pin(upstream.on_error(Supervision::replace(move |_: String| {
        let _held = &t2;
        0
    })));
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(counter.alive(), 2);
    drop(s);
    tokio::task::yield_now().await;
    assert_eq!(counter.alive(), 0);
    assert_eq!(alive_tasks(), tasks);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn a_panic_in_replace_reaches_the_consumer() {
    let s = source().on_error(Supervision::replace(|_: String| -> i32 { panic!("boom") }));
    consume(s).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_upstream_reaches_the_consumer() {
    let s = scripted([Step::ok(1), Step::Panic("boom upstream")])
        .on_error(Supervision::<i32, String>::Resume);
    let result = std::panic::AssertUnwindSafe(consume(s))
        .catch_unwind()
        .await;
    assert!(result.is_err());
}

#[test]
fn supervise_streams_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&source().on_error(Supervision::Resume));
    assert_send(&source().on_error(Supervision::replace(|_: String| 0)));
    assert_send(&source().on_error(Supervision::Resume).skipped());
}
