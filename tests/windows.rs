//! Windows: exact boundaries under paused time (processing time), watermark and lateness
//! (event time), per-key aggregates, sliding windows, late items counted and routed.

use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{Step, consume, scripted};
use millrace::wrappers::{Aggregate, WindowEvent, WindowSpec};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

/// Items `(at, key)`: each yielded at tokio time `at` from the start.
fn at_times(items: &[(u64, &'static str)]) -> impl Stream<Item = &'static str> + Send + 'static {
    let mut steps = Vec::new();
    let mut now = 0;
    for &(at, key) in items {
        if at > now {
            steps.push(Step::Delay(MS * (at - now) as u32));
            now = at;
        }
        steps.push(Step::Item(key));
    }
    scripted(steps)
}

#[tokio::test(start_paused = true)]
async fn tumbling_processing_windows_have_exact_boundaries() {
    let start = Instant::now();
    // 999 ms is in [0, 1 s); 1000 ms is in [1 s, 2 s).
    let src = at_times(&[
        (0, "a"),
        (999, "a"),
        (1000, "a"),
        (1000, "b"),
        (1999, "b"),
        (2000, "a"),
    ]);
    let w = src.window(
        WindowSpec::tumbling(1000 * MS),
        |k| *k,
        || 0u32,
        |n, _| *n += 1,
    );
    let out: Vec<(Duration, Aggregate<&str, u32, Instant>)> =
        consume(w.map(move |a| (Instant::now() - start, a))).await;
    let rel = |a: &Aggregate<&'static str, u32, Instant>| {
        (a.key, a.start - start, a.end - start, a.value)
    };
    let got: Vec<_> = out.iter().map(|(t, a)| (*t, rel(a))).collect();
    assert_eq!(
        got,
        [
            // [0, 1 s) closes at exactly 1 s.
            (1000 * MS, ("a", Duration::ZERO, 1000 * MS, 2)),
            (2000 * MS, ("a", 1000 * MS, 2000 * MS, 1)),
            (2000 * MS, ("b", 1000 * MS, 2000 * MS, 2)),
            // The upstream ends at 2 s: the open window is flushed then, with its bounds.
            (2000 * MS, ("a", 2000 * MS, 3000 * MS, 1)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_window_closes_on_time_while_the_upstream_is_idle() {
    let start = Instant::now();
    let src = scripted([
        Step::Item(1u32),
        Step::Delay(Duration::from_secs(10)),
        Step::Item(2),
    ]);
    let mut w = Box::pin(src.window(
        WindowSpec::tumbling(Duration::from_secs(1)),
        |_| (),
        || 0,
        |s, x| *s += x,
    ));
    let first = w.next().await.unwrap();
    assert_eq!((first.value, start.elapsed()), (1, Duration::from_secs(1)));
    let second = w.next().await.unwrap();
    assert_eq!(
        (second.value, second.start - start),
        (2, Duration::from_secs(10))
    );
    assert_eq!(w.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn sliding_processing_windows_count_each_item_in_every_window_it_falls_into() {
    let start = Instant::now();
    // size 2 s, slide 1 s: an item at 1.5 s is in [0, 2) and [1, 3).
    let src = at_times(&[(500, "x"), (1500, "x"), (2500, "x")]);
    let w = src.window(
        WindowSpec::sliding(2000 * MS, 1000 * MS),
        |k| *k,
        || 0u32,
        |n, _| *n += 1,
    );
    let out: Vec<(Duration, Duration, u32)> =
        consume(w.map(move |a| (a.start - start, a.end - start, a.value))).await;
    assert_eq!(
        out,
        [
            (Duration::ZERO, 2000 * MS, 2),
            (1000 * MS, 3000 * MS, 2),
            (2000 * MS, 4000 * MS, 1),
        ]
    );
}

fn secs(s: &(u64, &'static str)) -> Duration {
    Duration::from_secs(s.0)
}

#[tokio::test(start_paused = true)]
async fn event_time_windows_close_on_the_watermark_and_route_late_items() {
    let events = vec![
        (0, "north"),
        (59, "south"),
        (60, "north"),
        (61, "north"),
        (30, "south"),
        (125, "north"),
    ];
    let w = stream::iter(events).window_event_time(
        WindowSpec::tumbling(Duration::from_secs(60)),
        secs,
        |e| e.1,
        || 0u32,
        |n, _| *n += 1,
    );
    let late = w.late_counter();
    let out = consume(w).await;
    let minute = |m: u64| {
        (
            Duration::from_secs(60 * m),
            Duration::from_secs(60 * (m + 1)),
        )
    };
    let closed = |key, m, value| {
        let (start, end) = minute(m);
        WindowEvent::Closed(Aggregate {
            key,
            start,
            end,
            value,
        })
    };
    assert_eq!(
        out,
        [
            // 60 s exactly reaches the end of [0, 60): it closes, per key in first-seen order.
            closed("north", 0, 1),
            closed("south", 0, 1),
            WindowEvent::Late((30, "south")),
            closed("north", 1, 2),
            closed("north", 2, 1), // flushed at the end
        ]
    );
    assert_eq!(late.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn allowed_lateness_keeps_windows_open_that_long() {
    let events = vec![(5u64, "k"), (62, "k"), (50, "k"), (75, "k"), (40, "k")];
    let w = stream::iter(events)
        .window_event_time(
            WindowSpec::tumbling(Duration::from_secs(60)),
            |e| Duration::from_secs(e.0),
            |e| e.1,
            || 0u32,
            |n, _| *n += 1,
        )
        .allowed_lateness(Duration::from_secs(10));
    let late = w.late_counter();
    let out: Vec<_> = consume(w).await;
    // 62 - 10 = 52: [0, 60) still open, so 50 counts; 75 - 10 = 65 closes it; 40 is late.
    assert!(
        matches!(&out[0], WindowEvent::Closed(a) if a.value == 2 && a.end == Duration::from_secs(60))
    );
    assert_eq!(out[1], WindowEvent::Late((40, "k")));
    assert!(
        matches!(&out[2], WindowEvent::Closed(a) if a.value == 2 && a.start == Duration::from_secs(60))
    );
    assert_eq!(out.len(), 3);
    assert_eq!(late.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn sliding_event_time_windows_and_partial_lateness() {
    // size 10, slide 5: t = 7 is in [0, 10) and [5, 15).
    let events = vec![(7u64, "k"), (12, "k"), (8, "k")];
    let w = stream::iter(events).window_event_time(
        WindowSpec::sliding(Duration::from_secs(10), Duration::from_secs(5)),
        |e| Duration::from_secs(e.0),
        |e| e.1,
        || 0u32,
        |n, _| *n += 1,
    );
    let out: Vec<_> = consume(w).await;
    let spans: Vec<_> = out
        .iter()
        .map(|e| match e {
            WindowEvent::Closed(a) => (a.start.as_secs(), a.end.as_secs(), a.value),
            WindowEvent::Late(t) => (t.0, 0, 0),
        })
        .collect();
    // 12 closes [0, 10) (just 7); 8's earliest window [0, 10) is closed: late, folded nowhere,
    // although [5, 15) is still open.
    assert_eq!(spans, [(0, 10, 1), (8, 0, 0), (5, 15, 2), (10, 20, 1)]);
}

#[tokio::test(start_paused = true)]
async fn late_items_can_be_routed_to_their_own_sink() {
    let events = vec![(100u64, "a"), (1, "a"), (2, "b"), (101, "a")];
    let w = stream::iter(events).window_event_time(
        WindowSpec::tumbling(Duration::from_secs(60)),
        |e| Duration::from_secs(e.0),
        |e| e.1,
        || 0u32,
        |n, _| *n += 1,
    );
    let [windows, late] =
        <[_; 2]>::try_from(w.partition(2, |e| usize::from(matches!(e, WindowEvent::Late(_)))))
            .unwrap();
    let (windows, late) = futures::join!(
        windows
            .filter_map(|e| async move { e.closed() })
            .map(|a| a.value)
            .collect::<Vec<_>>(),
        late.filter_map(|e| async move { e.late() })
            .collect::<Vec<_>>(),
    );
    assert_eq!(windows, [2]);
    assert_eq!(late, [(1, "a"), (2, "b")]);
}

#[test]
fn invalid_window_shapes_are_rejected() {
    let e = WindowSpec::checked_sliding(Duration::from_secs(10), Duration::ZERO).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`window`: `slide` must be a non-zero duration, got 0ns; pass a value in that range"
    );
    let e =
        WindowSpec::checked_sliding(Duration::from_secs(10), Duration::from_nanos(1)).unwrap_err();
    assert!(e.to_string().contains("4096 windows per item"), "{e}");
}
