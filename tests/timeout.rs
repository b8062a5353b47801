//! `item_timeout(d)` (reports a late item, keeps going), `idle_timeout(d)` (formerly
//! `timeout_each`: ends at the first late item) and `deadline(d)`: exact instants, a typed
//! error, the upstream kept or cancelled as documented; any duration up to `Duration::MAX`.

use std::pin::Pin;
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, conformance, consume, record, scripted};
use millrace::wrappers::{
    Deadline, DeadlineStage, IdleTimeout, IdleTimeoutStage, ItemTimeout, ItemTimeoutStage,
};

const MS: Duration = Duration::from_millis(1);

/// Item 1, then after each gap the next item (item 2 after `gaps[0]`, …).
fn gapped(gaps: &[Duration]) -> Vec<Step<u32>> {
    let mut steps = vec![Step::Item(1)];
    for (i, gap) in (2..).zip(gaps) {
        steps.extend([Step::Delay(*gap), Step::Item(i)]);
    }
    steps
}

/// Consumes `s` taking 500 ms between polls.
async fn slow_consumer<S: Stream + Unpin>(mut s: S) -> Vec<S::Item> {
    let mut got = Vec::new();
    while let Some(x) = s.next().await {
        got.push(x);
        tokio::time::sleep(500 * MS).await;
    }
    got
}

/// The message of a panic payload.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "(not text)".to_owned(), |text| (*text).to_owned()),
    }
}

/// What a limit of zero must say, for the method `method`.
fn zero_limit(method: &str) -> String {
    format!("`{method}`: `limit` must be a non-zero duration, got 0ns; pass a value in that range")
}

/// What `[Item(1), Hang]` yields under an idle timeout of `limit`: the item, then the timeout
/// of the wait for the next one.
fn one_then_idle_for(limit: Duration) -> [Result<u32, TimeoutError>; 2] {
    [
        Ok(1),
        Err(TimeoutError::Item {
            after: limit,
            index: 1,
        }),
    ]
}

/// `steps` with a `DropToken` of `counter` held by the stream itself.
fn guarded(
    steps: Vec<Step<u32>>,
    counter: &DropCounter,
) -> impl Stream<Item = u32> + Send + Unpin + 'static {
    let token = counter.token();
    scripted(steps).map(move |x| {
        let _keep = &token;
        x
    })
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_exact_instants_and_upstream_dropped() {
    let counter = DropCounter::new();
    let source = guarded(gapped(&[50 * MS, 99 * MS, 200 * MS]), &counter);
    let mut s = Box::pin(source.idle_timeout(100 * MS));
    let start = tokio::time::Instant::now();
    let mut times = Vec::new();
    let mut items = Vec::new();
    while let Some(x) = s.next().await {
        times.push(start.elapsed());
        items.push(x);
        if items.len() == 4 {
            // The timeout dropped the upstream before the stream ended.
            assert_eq!(counter.alive(), 0);
        }
    }
    assert_eq!(
        items,
        [
            Ok(1),
            Ok(2),
            Ok(3),
            Err(TimeoutError::Item {
                after: 100 * MS,
                index: 3
            })
        ]
    );
    // The clock restarts for each item: 3 arrives 99 ms after 2 (in time), the wait for 4
    // times out 100 ms after 3.
    assert_eq!(times, [Duration::ZERO, 50 * MS, 149 * MS, 249 * MS]);
    assert!(s.is_terminated());
    assert!(s.next().await.is_none());
    assert!(s.get_ref().is_none());
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_waits_on_end_of_stream_too() {
    let rec = record(scripted([Step::Item(1), Step::Hang]).idle_timeout(30 * MS)).await;
    assert_eq!(rec.items, one_then_idle_for(30 * MS));
    assert_eq!(rec.times, [Duration::ZERO, 30 * MS]);
}

#[tokio::test(start_paused = true)]
async fn idle_and_item_timeouts_do_not_charge_the_consumer_time() {
    // The consumer takes 500 ms between polls; the upstream is always ready: no timeout.
    let idle = slow_consumer(stream::iter(0..3).idle_timeout(10 * MS)).await;
    assert_eq!(idle, [Ok(0), Ok(1), Ok(2)]);
    let item = slow_consumer(stream::iter(0..3).item_timeout(10 * MS)).await;
    assert_eq!(item, [Ok(0), Ok(1), Ok(2)]);
}

#[tokio::test(start_paused = true)]
async fn deadline_exact_instant_and_upstream_dropped() {
    let counter = DropCounter::new();
    let source = guarded(gapped(&[40 * MS, 40 * MS, 40 * MS]), &counter);
    let rec = record(source.deadline(100 * MS)).await;
    assert_eq!(
        rec.items,
        [
            Ok(1),
            Ok(2),
            Ok(3),
            Err(TimeoutError::Deadline { after: 100 * MS })
        ]
    );
    assert_eq!(rec.times, [Duration::ZERO, 40 * MS, 80 * MS, 100 * MS]);
    assert_eq!(counter.alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn deadline_clock_starts_at_first_poll() {
    let s = stream::iter([1, 2]).deadline(10 * MS);
    tokio::time::sleep(Duration::from_secs(5)).await; // built long before it is polled
    assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(2)]);
}

#[tokio::test(start_paused = true)]
async fn deadline_cuts_off_an_always_ready_upstream() {
    // A consumer that is slow makes an always-ready upstream miss the deadline.
    let mut s = Box::pin(stream::iter(0..).deadline(25 * MS));
    let mut got = Vec::new();
    while let Some(x) = s.next().await {
        got.push(x);
        tokio::time::sleep(10 * MS).await;
    }
    assert_eq!(
        got,
        [
            Ok(0),
            Ok(1),
            Ok(2),
            Err(TimeoutError::Deadline { after: 25 * MS })
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn conformance_of_both() {
    let steps = || scripted(gapped(&[20 * MS, 80 * MS]));
    conformance(
        move || steps().idle_timeout(50 * MS),
        vec![
            Ok(1),
            Ok(2),
            Err(TimeoutError::Item {
                after: 50 * MS,
                index: 2,
            }),
        ],
    )
    .await;
    conformance(
        move || steps().deadline(60 * MS),
        vec![Ok(1), Ok(2), Err(TimeoutError::Deadline { after: 60 * MS })],
    )
    .await;
    conformance(
        move || steps().deadline(Duration::from_secs(1)),
        vec![Ok(1), Ok(2), Ok(3)],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn stages_match_methods() {
    let out = consume(stream::iter([1, 2]).wrap(IdleTimeoutStage::new(MS))).await;
    assert_eq!(out, [Ok(1), Ok(2)]);
    let out = consume(stream::iter([1, 2]).wrap(DeadlineStage::new(MS))).await;
    assert_eq!(out, [Ok(1), Ok(2)]);
}

#[tokio::test(start_paused = true)]
async fn upstream_panic_reaches_consumer() {
    let panicking = || scripted([Step::Item(1), Step::Panic("boom")]);
    let consumers = [
        (
            "idle_timeout",
            tokio::spawn(consume(panicking().idle_timeout(MS))),
        ),
        (
            "item_timeout",
            tokio::spawn(consume(panicking().item_timeout(MS))),
        ),
    ];
    for (method, consumer) in consumers {
        let panic = consumer.await.expect_err(method).into_panic();
        assert_eq!(panic_text(panic), "boom", "{method}");
    }
}

#[test]
fn error_display_says_what_elapsed_and_what_to_do() {
    let e = TimeoutError::Item {
        after: 100 * MS,
        index: 3,
    };
    assert_eq!(
        e.to_string(),
        "no item #3 within 100ms, so the upstream was cancelled; raise the limit, or re-open the \
         source with `restartable(..).retry(..)`"
    );
    let e = TimeoutError::Deadline {
        after: Duration::from_secs(2),
    };
    assert_eq!(
        e.to_string(),
        "the stream did not finish within its deadline of 2s, so the upstream was cancelled; \
         raise the deadline, or resume from a checkpoint"
    );
    let _: &dyn std::error::Error = &e;
}

#[test]
#[allow(deprecated)]
fn zero_limits_panic_naming_the_method() {
    let zero = Duration::ZERO;
    type Build = fn(Duration);
    let builds: [(&str, Build); 3] = [
        ("idle_timeout", |d| drop(stream::iter([1]).idle_timeout(d))),
        ("deadline", |d| drop(stream::iter([1]).deadline(d))),
        // The deprecated name panics with its own name.
        ("timeout_each", |d| drop(stream::iter([1]).timeout_each(d))),
    ];
    for (method, build) in builds {
        let panic = std::panic::catch_unwind(|| build(zero)).expect_err(method);
        assert_eq!(panic_text(panic), zero_limit(method));
    }
}

#[test]
fn try_constructors_return_the_error() {
    let zero = Duration::ZERO;
    let errors = [
        (
            "idle_timeout",
            IdleTimeout::checked_new(stream::iter([1]), zero).map(drop),
        ),
        (
            "item_timeout",
            ItemTimeout::checked_new(stream::iter([1]), zero).map(drop),
        ),
        (
            "deadline",
            Deadline::checked_new(stream::iter([1]), zero).map(drop),
        ),
    ];
    for (method, error) in errors {
        assert_eq!(error.unwrap_err().to_string(), zero_limit(method));
    }
    assert!(IdleTimeoutStage::checked_new(zero).is_err());
    assert!(ItemTimeoutStage::checked_new(zero).is_err());
    assert!(DeadlineStage::checked_new(zero).is_err());
}

/// `Send`/`Sync`/`Unpin` of the three wrappers are asserted in `tests/auto_traits.rs`.
#[test]
fn size_hints() {
    // Each item (and the end) may be preceded by one error (`item_timeout`), or the stream may
    // end early on one error (`idle_timeout`, `deadline`).
    assert_eq!(
        stream::iter(0..3).idle_timeout(MS).size_hint(),
        (1, Some(4))
    );
    assert_eq!(stream::iter(0..3).deadline(MS).size_hint(), (1, Some(4)));
    assert_eq!(
        stream::iter(0..3).item_timeout(MS).size_hint(),
        (3, Some(7))
    );
}

// ---- item_timeout: a late item is reported, the stream goes on ----

#[tokio::test(start_paused = true)]
async fn item_timeout_reports_a_late_item_and_keeps_the_upstream() {
    let counter = DropCounter::new();
    // Item 2 is late (one error at 100 ms, then the item at 250 ms), item 3 is in time, and
    // the end is late again.
    let mut steps = gapped(&[250 * MS, 99 * MS]);
    steps.push(Step::Delay(150 * MS));
    let source = guarded(steps, &counter);
    let rec = record(source.item_timeout(100 * MS)).await;
    assert_eq!(
        rec.items,
        [
            Ok(1),
            Err(TimeoutError::Elapsed {
                after: 100 * MS,
                index: 1
            }),
            Ok(2),
            Ok(3),
            Err(TimeoutError::Elapsed {
                after: 100 * MS,
                index: 3
            }),
        ]
    );
    // Exact instants: the error 100 ms into each wait, the late item when it comes.
    assert_eq!(
        rec.times,
        [Duration::ZERO, 100 * MS, 250 * MS, 349 * MS, 449 * MS]
    );
    // The upstream was polled to its end (not cancelled), then dropped with the stream.
    assert_eq!(counter.alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn item_timeout_reports_once_per_wait_then_waits() {
    // A stalled upstream: one error, then the stream waits (it does not end, and does not
    // repeat the error) until the consumer gives up.
    let mut s = Box::pin(scripted([Step::Item(1), Step::Hang]).item_timeout(10 * MS));
    assert_eq!(s.next().await, Some(Ok(1)));
    assert_eq!(
        s.next().await,
        Some(Err(TimeoutError::Elapsed {
            after: 10 * MS,
            index: 1
        }))
    );
    assert!(!s.is_terminated());
    let waited = tokio::time::timeout(Duration::from_secs(3600), s.next()).await;
    assert!(waited.is_err(), "no second error and no end: {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn item_timeout_conformance_and_stage() {
    let steps = || {
        scripted([
            Step::Item(1),
            Step::Delay(80 * MS),
            Step::Item(2),
            Step::Item(3),
        ])
    };
    let expected = vec![
        Ok(1),
        Err(TimeoutError::Elapsed {
            after: 50 * MS,
            index: 1,
        }),
        Ok(2),
        Ok(3),
    ];
    conformance(move || steps().item_timeout(50 * MS), expected.clone()).await;
    conformance(
        move || steps().wrap(ItemTimeoutStage::new(50 * MS)),
        expected,
    )
    .await;
}

#[test]
fn elapsed_display_says_the_stream_goes_on() {
    let e = TimeoutError::Elapsed {
        after: 100 * MS,
        index: 3,
    };
    assert_eq!(
        e.to_string(),
        "no item #3 within 100ms; the stream keeps waiting for it. To give up on a slow item, \
         bound its work instead (`tokio::time::timeout` inside `map_concurrent`)"
    );
}

// ---- the deprecated name keeps the old (ending) behaviour ----

#[tokio::test(start_paused = true)]
#[allow(deprecated)]
async fn timeout_each_is_a_deprecated_alias_of_idle_timeout() {
    let s: millrace::wrappers::TimeoutEach<_> =
        scripted([Step::Item(1), Step::Hang]).timeout_each(30 * MS);
    let s: IdleTimeout<_> = s; // the same type
    let rec = record(s).await;
    assert_eq!(rec.items, one_then_idle_for(30 * MS));
    let _: IdleTimeoutStage = millrace::wrappers::TimeoutEachStage::new(MS);
}

// ---- any duration works: `Duration::MAX` saturates (issue 14, bad input) ----

#[tokio::test(start_paused = true)]
async fn duration_max_is_a_valid_limit() {
    type Limited = Pin<Box<dyn Stream<Item = Result<u32, TimeoutError>> + Send>>;
    let slow = || scripted(gapped(&[Duration::from_secs(1800)]));
    let max = Duration::MAX;
    #[allow(deprecated)]
    let limited: [(&str, Limited); 4] = [
        ("idle_timeout", Box::pin(slow().idle_timeout(max))),
        ("item_timeout", Box::pin(slow().item_timeout(max))),
        ("deadline", Box::pin(slow().deadline(max))),
        ("timeout_each", Box::pin(slow().timeout_each(max))),
    ];
    // Used to panic with "overflow when adding duration to instant" once the timer was armed.
    for (method, stream) in limited {
        assert_eq!(consume(stream).await, [Ok(1), Ok(2)], "{method}");
    }
}
