//! `skip_errors()`: the `Err` items are dropped, counted and traced; the consumer gets plain
//! `T`; metered stages (and `pipeline!`) see the skip count like `on_error(Resume)`'s.

use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, conformance, consume, scripted};
use millrace::wrappers::{SkipErrors, SkipErrorsStage};

const MS: Duration = Duration::from_millis(1);

type R = Result<u32, &'static str>;

#[tokio::test(start_paused = true)]
async fn yields_plain_items_and_counts_every_skipped_error() {
    let rows: Vec<R> = vec![Err("a"), Ok(1), Err("b"), Err("c"), Ok(2), Err("d")];
    let s = stream::iter(rows).skip_errors();
    let counter = s.skipped();
    let out: Vec<u32> = s.collect().await;
    assert_eq!(out, [1, 2]);
    assert_eq!(counter.get(), 4);
}

#[tokio::test(start_paused = true)]
async fn count_is_live_while_consuming() {
    let rows: Vec<R> = vec![Ok(1), Err("x"), Ok(2), Err("y"), Err("z")];
    let mut s = stream::iter(rows).skip_errors();
    assert_eq!((s.next().await, s.skipped().get()), (Some(1), 0));
    assert_eq!((s.next().await, s.skipped().get()), (Some(2), 1));
    assert_eq!((s.next().await, s.skipped().get()), (None, 3));
    assert!(s.is_terminated());
    assert_eq!(s.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn conformance_with_delays_and_stage() {
    let steps = || {
        scripted([
            Step::ok(1),
            Step::err("bad"),
            Step::Delay(10 * MS),
            Step::ok(2),
            Step::err("worse"),
        ])
    };
    conformance(move || steps().skip_errors(), vec![1, 2]).await;
    conformance(move || steps().wrap(SkipErrorsStage), vec![1, 2]).await;
    assert_eq!(consume(SkipErrors::new(steps())).await, [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_metered_stage_adopts_the_skip_count() {
    let rows: Vec<R> = vec![Ok(1), Err("bad"), Ok(3), Err("worse")];
    let s = stream::iter(rows)
        .skip_errors()
        .metered("rows")
        .with_events();
    let m = s.metrics();
    assert_eq!(s.collect::<Vec<u32>>().await, [1, 3]);
    let snap = m.snapshot();
    assert_eq!((snap.items, snap.skipped), (2, Some(2)));
}

#[tokio::test(start_paused = true)]
async fn pipeline_reports_the_skips_like_on_error_resume() {
    let metrics = Metrics::new();
    let rows: Vec<R> = vec![Ok(1), Err("bad"), Ok(3), Err("worse"), Err("worst")];
    let out: Vec<u32> = millrace::pipeline! {
        metrics = &metrics;
        stream::iter(rows) => .skip_errors()
    }
    .collect()
    .await;
    assert_eq!(out, [1, 3]);
    let snap = metrics.snapshot();
    let stage = snap
        .iter()
        .find(|s| s.name == "skip_errors")
        .expect("stage listed");
    assert_eq!((stage.items, stage.skipped), (2, Some(3)));
}

#[tokio::test(start_paused = true)]
async fn drop_releases_the_upstream() {
    let counter = DropCounter::new();
    let token = counter.token();
    let rows: Vec<R> = vec![Ok(1), Err("x")];
    let s = stream::iter(rows)
        .map(move |r| {
            let _keep = &token;
            r
        })
        .skip_errors();
    assert_eq!(counter.alive(), 1);
    drop(s);
    assert_eq!(counter.alive(), 0);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn upstream_panic_reaches_consumer() {
    let _ = consume(scripted::<R>([Step::ok(1), Step::Panic("boom")]).skip_errors()).await;
}

#[test]
fn size_hint_allows_every_item_to_be_skipped() {
    let rows: Vec<R> = vec![Ok(1), Err("x")];
    let s = stream::iter(rows).skip_errors();
    assert_eq!(s.size_hint(), (0, Some(2)));
}

mod support;
use support::capture;

#[tokio::test(start_paused = true)]
async fn each_skipped_error_is_traced_with_its_count_and_message() {
    use tracing_subscriber::filter::LevelFilter;
    let (events, _guard) = capture::capture_with_max_level(LevelFilter::WARN);
    let rows: Vec<R> = vec![Ok(1), Err("bad row"), Err("worse row")];
    assert_eq!(
        stream::iter(rows).skip_errors().collect::<Vec<u32>>().await,
        [1]
    );
    let text = events.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("skip_errors"),
        "{text}"
    );
    assert!(
        lines[0].contains("skipped=1") && lines[0].contains("error=bad row"),
        "{text}"
    );
    assert!(
        lines[1].contains("skipped=2") && lines[1].contains("error=worse row"),
        "{text}"
    );
}
