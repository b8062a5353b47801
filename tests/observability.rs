//! Observability across wrappers: adopted retry/fallback/skip counters, errors by kind, the
//! global registry, tracing spans and events, JSON and Prometheus export, the report table.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::Metrics;
use millrace::prelude::*;
use millrace::testing::{Flaky, FlakyError, Step, consume, scripted};

fn fixed(ms: u64, retries: usize) -> RetryPolicy<millrace::policy::ConstantBuilder> {
    RetryPolicy::fixed(Duration::from_millis(ms), retries)
}

#[tokio::test(start_paused = true)]
async fn retries_are_exact_under_a_flaky_source() {
    let metrics = Metrics::new();
    let flaky = Flaky::new(0..6u64).fail_at([2, 4]).fail_times(2);
    let f = flaky.clone();
    let s = restartable(move |cp: &Checkpoint<u64>| f.open(cp.delivered))
        .retry(fixed(10, 3))
        .metered_in(&metrics, "fetch")
        .count_errors()
        .with_events();
    let out = consume(s).await;
    assert_eq!(out, (0..6).map(Ok).collect::<Vec<_>>());
    let snap = &metrics.snapshot()[0];
    assert_eq!(snap.items, 6);
    assert_eq!(
        snap.errors,
        Some(0),
        "retried errors never reach the consumer"
    );
    assert_eq!(
        snap.retries,
        Some(4),
        "two failure points, each failing twice"
    );
    assert_eq!(flaky.failures(), 4);
    assert_eq!((snap.fallbacks, snap.skipped), (None, None));
    assert!(snap.finished);
}

#[tokio::test(start_paused = true)]
async fn a_give_up_is_counted_as_an_error_and_its_retries_as_retries() {
    let metrics = Metrics::new();
    let flaky = Flaky::new(0..5u64).fail_at([1]).fail_times(10);
    let f = flaky.clone();
    let s = restartable(move |cp: &Checkpoint<u64>| f.open(cp.delivered))
        .retry(fixed(10, 2))
        .metered_in(&metrics, "fetch")
        .count_errors()
        .with_events();
    let out = consume(s).await;
    assert_eq!(out.len(), 2);
    let snap = &metrics.snapshot()[0];
    assert_eq!(
        (snap.items, snap.errors, snap.retries),
        (2, Some(1), Some(2))
    );
}

#[tokio::test(start_paused = true)]
async fn fallbacks_are_counted_per_switch() {
    let metrics = Metrics::new();
    let flaky = Flaky::new(0..10u64).fail_at([2, 5, 7]);
    let f = flaky.clone();
    let s = flaky
        .open(0)
        .recover_with(move |_, cp: &Checkpoint<u64>| Some(f.open(cp.delivered)))
        .metered_in(&metrics, "primary")
        .with_events();
    assert_eq!(consume(s).await, (0..10).map(Ok).collect::<Vec<_>>());
    let snap = &metrics.snapshot()[0];
    assert_eq!((snap.items, snap.fallbacks), (10, Some(3)));
}

#[tokio::test(start_paused = true)]
async fn skipped_errors_and_errors_by_kind() {
    let metrics = Metrics::new();
    let rows = scripted([
        Step::ok(1),
        Step::err("timeout"),
        Step::ok(2),
        Step::err("parse"),
        Step::err("timeout"),
        Step::Pending,
        Step::ok(3),
    ]);
    let classified = rows
        .metered_in(&metrics, "raw")
        .count_errors_by(|e: &&str| *e);
    let raw = classified.metrics();
    let s = classified
        .on_error(Supervision::Resume)
        .metered_in(&metrics, "clean")
        .count_errors()
        .with_events();
    s.metrics().fed_by(&raw);
    assert_eq!(consume(s).await, [Ok(1), Ok(2), Ok(3)]);
    let snap = metrics.snapshot();
    assert_eq!(snap[0].items, 6);
    assert_eq!(snap[0].errors, Some(3));
    assert_eq!(
        snap[0].errors_by_kind,
        [("timeout".to_owned(), 2), ("parse".to_owned(), 1)]
    );
    assert_eq!(snap[0].pending_polls, 1);
    assert_eq!(snap[1].items_in, Some(6));
    assert_eq!(
        (snap[1].items, snap[1].errors, snap[1].skipped),
        (3, Some(0), Some(3))
    );
}

#[tokio::test(start_paused = true)]
async fn gauges_and_expected_totals_are_read_at_snapshot_time() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let metrics = Metrics::new();
    let depth = Arc::new(AtomicU64::new(0));
    let d = depth.clone();
    let s = stream::iter(0..8u32).metered_in(&metrics, "src");
    s.metrics()
        .track_buffered(move || d.load(Ordering::Relaxed))
        .track_in_flight(|| 2)
        .track_in_flight(|| 3);
    assert_eq!(metrics.snapshot()[0].expected, Some(8));
    depth.store(5, Ordering::Relaxed);
    let snap = &metrics.snapshot()[0];
    assert_eq!((snap.buffered, snap.in_flight), (Some(5), Some(5)));
    drop(s);
}

#[tokio::test(start_paused = true)]
async fn timed_stages_report_latency_and_own_time() {
    let metrics = Metrics::new();
    let s = scripted((0..300u64).map(Step::Item))
        .metered_in(&metrics, "cheap")
        .with_timing()
        .map(|x| (0..20_000u64).fold(x, |a, b| std::hint::black_box(a ^ b)))
        .metered_in(&metrics, "expensive")
        .with_timing();
    let _ = consume(s).await;
    let snap = metrics.snapshot();
    let (cheap, expensive) = (&snap[0], &snap[1]);
    assert_eq!(cheap.latency.unwrap().count, 300);
    assert_eq!(expensive.latency.unwrap().count, 300);
    let busy = expensive.busy.unwrap();
    let own = expensive.self_busy.unwrap();
    assert!(own <= busy);
    assert_eq!(
        cheap.busy, cheap.self_busy,
        "nothing timed is nested inside the source"
    );
    assert!(
        own > cheap.self_busy.unwrap(),
        "the map is the slow stage: {own:?} vs {:?}",
        cheap.self_busy
    );
    assert_eq!(metrics.report().slowest().unwrap().name, "expensive");
    let l = expensive.latency.unwrap();
    assert!(l.p50 <= l.p99 && l.p99 <= l.max && l.max > Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_report_is_an_aligned_table() {
    let metrics = Metrics::new();
    let flaky = Flaky::new(0..4u64).fail_at([1]);
    let f = flaky.clone();
    let s = restartable(move |cp: &Checkpoint<u64>| f.open(cp.delivered))
        .retry(fixed(10, 3))
        .metered_in(&metrics, "fetch")
        .with_events()
        .map(|r| r.map_err(|e: FlakyError| e.to_string()))
        .map(|r| if r == Ok(2) { Err("bad".to_owned()) } else { r })
        .metered_in(&metrics, "validate")
        .count_errors();
    let _ = consume(s).await;
    assert_eq!(
        metrics.report().to_string(),
        "stage     items  errors  retries  skipped  fallbacks  p50  p99  time\n\
         fetch         4       -        1        -          -    -    -     -\n\
         validate      4       1        -        -          -    -    -     -\n"
    );
}

#[test]
fn the_global_registry_prunes_dead_stages() {
    let name = "observability test: global prune";
    let count = || {
        Metrics::global()
            .snapshot()
            .iter()
            .filter(|s| s.name == name)
            .count()
    };
    for _ in 0..100 {
        let s = stream::iter([1]).metered_in(Metrics::global(), name);
        assert_eq!(count(), 1);
        drop(s);
    }
    assert_eq!(count(), 0);
    let s = stream::iter([1]).metered_in(Metrics::global(), name);
    let handle = s.metrics();
    drop(s);
    assert_eq!(count(), 1, "a live handle keeps the stage listed");
    drop(handle);
    assert_eq!(count(), 0);
}

/// What `pipeline!` expands a metered stage to (see `millrace::__private`): registered, its
/// events adopted and its error counting chosen from its own type, then metered.
macro_rules! stage {
    ($name:literal, $e:expr) => {{
        #[allow(unused_imports)]
        use millrace::__private::{
            AdoptEvents as _, CountsErrors as _, IgnoresErrors as _, NoEvents as _,
        };
        let value = $e;
        let counters = millrace::__private::register_stage(Metrics::global(), $name, None);
        (&millrace::__private::StageProbe(&value)).adopt_events(&counters);
        let counting = (&millrace::__private::StageProbe(&value)).error_counting();
        millrace::__private::meter(
            millrace::__private::checked_stage(value),
            &counters,
            counting,
        )
    }};
}

#[tokio::test(start_paused = true)]
async fn the_pipeline_hook_meters_globally_and_adopts_events() {
    let flaky = Flaky::new(0..4u64).fail_at([1]);
    let f = flaky.clone();
    let s = stage!(
        "hook: fetch",
        restartable(move |cp: &Checkpoint<u64>| f.open(cp.delivered)).retry(fixed(10, 3))
    );
    let s = stage!("hook: plain", s.map(|r| r.map(|x| x * 2)));
    let s = stage!("hook: skip", s.on_error(Supervision::Resume));
    let (fetch, plain, skip) = (
        s.get_ref().get_ref().get_ref().get_ref().metrics(),
        s.get_ref().get_ref().metrics(),
        s.metrics(),
    );
    assert_eq!(consume(s).await, [Ok(0), Ok(2), Ok(4), Ok(6)]);
    assert_eq!(
        (fetch.snapshot().items, fetch.snapshot().retries),
        (4, Some(1))
    );
    assert_eq!(plain.snapshot().retries, None);
    assert_eq!(skip.snapshot().skipped, Some(0));
    // Stages of `Result`s count their `Err` items (none got through here).
    assert_eq!(
        (fetch.snapshot().errors, skip.snapshot().errors),
        (Some(0), Some(0))
    );
}

/// A small parser for the Prometheus text format: `(family types, samples)`, where a sample
/// is `(metric name, labels, value)`. Panics on anything malformed.
type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

fn parse_prometheus(text: &str) -> (BTreeMap<String, String>, Samples) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "one TYPE per family"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let (name, rest) = line.split_at(line.find('{').expect("labels"));
        let mut labels = BTreeMap::new();
        let mut chars = rest[1..].chars().peekable();
        loop {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert_eq!(chars.next(), Some('"'));
            let mut value = String::new();
            loop {
                match chars.next().expect("closing quote") {
                    '\\' => match chars.next().unwrap() {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => panic!("bad escape \\{c}"),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.insert(key, value);
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                c => panic!("unexpected {c:?} in {line:?}"),
            }
        }
        let value: String = chars.collect();
        let value = value.strip_prefix(' ').expect("space before value");
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| types.contains_key(*f))
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample {name} before its TYPE line"
        );
        samples.push((name.to_owned(), labels, value.parse().expect("a number")));
    }
    (types, samples)
}

async fn exported_pipeline() -> Metrics {
    let metrics = Metrics::new();
    let flaky = Flaky::new(0..5u64).fail_at([3]);
    let f = flaky.clone();
    let s = restartable(move |cp: &Checkpoint<u64>| f.open(cp.delivered))
        .retry(fixed(10, 3))
        .metered_in(&metrics, "fetch \"primary\"\n\\")
        .count_errors()
        .with_events()
        .map(|r| match r {
            Ok(1) => Err("too small"),
            Ok(x) => Ok(x),
            Err(_) => Err("fetch"),
        })
        .metered_in(&metrics, "check")
        .count_errors_by(|e: &&str| *e)
        .with_timing()
        .on_error(Supervision::Resume)
        .metered_in(&metrics, "check")
        .with_events();
    assert_eq!(consume(s).await, [Ok(0), Ok(2), Ok(3), Ok(4)]);
    metrics
}

#[tokio::test(start_paused = true)]
async fn prometheus_output_parses_back_to_the_counters() {
    let metrics = exported_pipeline().await;
    let (types, samples) = parse_prometheus(&metrics.to_prometheus());
    assert_eq!(types["millrace_stage_items_total"], "counter");
    assert_eq!(types["millrace_stage_latency_seconds"], "summary");
    assert_eq!(types["millrace_stage_finished"], "gauge");
    let get = |name: &str, stage: &str| -> Vec<f64> {
        samples
            .iter()
            .filter(|(n, l, _)| n == name && l["stage"] == stage)
            .map(|(_, _, v)| *v)
            .collect()
    };
    let fetch = "fetch \"primary\"\n\\";
    assert_eq!(get("millrace_stage_items_total", fetch), [5.0]);
    assert_eq!(get("millrace_stage_retries_total", fetch), [1.0]);
    assert_eq!(get("millrace_stage_errors_total", fetch), [0.0]);
    assert_eq!(get("millrace_stage_items_total", "check"), [5.0]);
    assert_eq!(get("millrace_stage_errors_total", "check"), [1.0]);
    assert_eq!(
        get("millrace_stage_items_total", "check#2"),
        [4.0],
        "repeated names are told apart"
    );
    assert_eq!(get("millrace_stage_skipped_total", "check#2"), [1.0]);
    assert_eq!(get("millrace_stage_finished", "check#2"), [1.0]);
    let kinds: Vec<(String, f64)> = samples
        .iter()
        .filter(|(n, _, _)| n == "millrace_stage_errors_by_kind_total")
        .map(|(_, l, v)| (l["kind"].clone(), *v))
        .collect();
    assert_eq!(kinds, [("too small".to_owned(), 1.0)]);
    assert_eq!(get("millrace_stage_latency_seconds_count", "check"), [5.0]);
    let quantiles: Vec<String> = samples
        .iter()
        .filter(|(n, _, _)| n == "millrace_stage_latency_seconds")
        .map(|(_, l, _)| l["quantile"].clone())
        .collect();
    assert_eq!(quantiles, ["0.5", "0.9", "0.99"]);
    assert!(get("millrace_stage_busy_seconds_total", fetch).is_empty());
}

#[tokio::test(start_paused = true)]
async fn json_output_parses_back_to_the_snapshot() {
    let metrics = exported_pipeline().await;
    let json: serde_json::Value = serde_json::from_str(&metrics.to_json()).expect("valid JSON");
    let stages = json["stages"].as_array().unwrap();
    let snaps = metrics.snapshot();
    assert_eq!(stages.len(), 3);
    for (j, s) in stages.iter().zip(&snaps) {
        assert_eq!(j["name"], s.name.as_str());
        assert_eq!(j["items"], s.items);
        assert_eq!(j["polls"], s.polls);
        assert_eq!(j["finished"], s.finished);
    }
    assert_eq!(stages[0]["name"], "fetch \"primary\"\n\\");
    assert_eq!(stages[0]["retries"], 1);
    assert_eq!(stages[0]["errors"], 0);
    assert_eq!(stages[0]["latency_seconds"], serde_json::Value::Null);
    assert_eq!(stages[0]["expected"], serde_json::Value::Null);
    assert_eq!(
        stages[1]["errors_by_kind"],
        serde_json::json!({"too small": 1})
    );
    assert_eq!(stages[1]["latency_seconds"]["count"], 5);
    assert!(stages[1]["busy_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(stages[2]["skipped"], 1);
    assert_eq!(stages[2]["retries"], serde_json::Value::Null);
}

mod support;
use support::capture;

#[tokio::test(start_paused = true)]
async fn events_carry_the_stage_span_and_structured_fields() {
    use tracing_subscriber::filter::LevelFilter;
    let (events, _guard) = capture::capture_at(LevelFilter::TRACE);
    let flaky = Flaky::new(0..4u64).fail_at([1]).fail_times(10);
    let f = flaky.clone();
    let s = restartable(move |cp: &Checkpoint<u64>| f.open(cp.delivered))
        .retry(fixed(10, 2))
        .metered("fetch")
        .traced();
    // Drive it here (not on a spawned task) so the thread-local subscriber sees it.
    let out: Vec<_> = s.collect().await;
    assert_eq!(out.len(), 2);
    let text = events.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in &lines {
        assert!(line.contains("WARN"), "{text}");
        assert!(line.contains("stage{stage=fetch}:"), "{text}");
    }
    assert!(lines[0].contains("attempt=1"), "{text}");
    assert!(lines[0].contains("delay_ms=10"), "{text}");
    assert!(
        lines[0].contains("error=injected failure before item #1 (attempt 1)"),
        "{text}"
    );
    assert!(lines[1].contains("attempt=2"), "{text}");
    assert!(lines[2].contains("giving up"), "{text}");
    assert!(lines[2].contains("attempts=3"), "{text}");
    assert!(lines[2].contains("retries=2"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn fallback_and_skip_events_name_their_stage() {
    use tracing_subscriber::filter::LevelFilter;
    let (events, _guard) = capture::capture_at(LevelFilter::TRACE);
    let mut calls = 0;
    let s = stream::iter([Ok(1), Err("down")])
        .recover_with(move |_, _: &Checkpoint<i32>| {
            calls += 1;
            (calls == 1).then(|| stream::iter([Ok(2), Err("bad")]))
        })
        .metered("mirror")
        .traced()
        .on_error(Supervision::Resume)
        .metered("tolerant")
        .traced();
    assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(2)]);
    let text = events.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        // The innermost stage's span: spans take their parent when built, not when entered.
        lines[0].contains("stage{stage=mirror}: ")
            && lines[0].contains("fallback=1")
            && lines[0].contains("error=down"),
        "{text}"
    );
    assert!(
        lines[1].contains("stage{stage=mirror}: ")
            && lines[1].contains("no fallback")
            && lines[1].contains("error=bad"),
        "{text}"
    );
    assert!(
        lines[2].contains("stage{stage=tolerant}: ")
            && lines[2].contains("skipped=1")
            && lines[2].contains("error=bad"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_trace_subscriber_events_have_no_stage_span() {
    use tracing_subscriber::filter::LevelFilter;
    let (events, _guard) = capture::capture_with_max_level(LevelFilter::WARN);
    let s = stream::iter([Ok(1), Err("bad")])
        .on_error(Supervision::Resume)
        .metered("quiet")
        .traced();
    assert_eq!(s.collect::<Vec<_>>().await, [Ok(1)]);
    let text = events.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!text.contains("stage{"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn pipeline_tracing_on_puts_every_stage_in_its_span() {
    use tracing_subscriber::filter::LevelFilter;
    let (events, _guard) = capture::capture_at(LevelFilter::TRACE);
    let metrics = Metrics::new();
    let s = pipeline! {
        metrics = &metrics;
        tracing = on;
        stream::iter([Ok(1), Err("bad"), Ok(3)])
        => .on_error(Supervision::Resume)
        => .map(|r: Result<u32, &str>| r.map(|x| x * 2))
    };
    assert_eq!(s.collect::<Vec<_>>().await, [Ok(2), Ok(6)]);
    let text = events.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    // The skip is logged inside the `on_error` stage's span (spans take their parent when
    // built, so the innermost stage names the event).
    assert!(
        lines[0].contains("stage{stage=on_error}: ") && lines[0].contains("skipped=1"),
        "{text}"
    );
    // Tracing alone does not time the stages.
    assert!(metrics.snapshot().iter().all(|s| s.latency.is_none()));
}

#[tokio::test(start_paused = true)]
async fn pipeline_timing_on_times_every_stage_and_feeds_items_in() {
    let metrics = Metrics::new();
    let s = pipeline! {
        metrics = &metrics;
        timing = on;
        scripted([
            Step::Item(1u32),
            Step::Delay(Duration::from_millis(5)),
            Step::Item(2),
            Step::Item(3),
            Step::Item(4),
        ])
        => .filter(|x| std::future::ready(x % 2 == 0))
        => .batch(2)
    };
    assert_eq!(s.collect::<Vec<_>>().await, [vec![2, 4]]);
    let snaps = metrics.snapshot();
    let got: Vec<_> = snaps
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.items_in,
                s.items,
                s.latency.map(|l| l.count),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("scripted", None, 4, Some(4)),
            ("filter", Some(4), 2, Some(2)),
            ("batch", Some(2), 1, Some(1)),
        ]
    );
    assert!(snaps.iter().all(|s| s.self_busy.is_some()));
}
