//! Positions carried through stages (`millrace::positions`): the low-water mark of unordered
//! concurrency as a property under random delays, the stream contract of every tracked stage,
//! and the accounting catching a stage that loses entries.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use millrace::positions::{self, Entry, Positioned, TrackedBatch};
use millrace::testing::{conformance, consume, tracked_source};
use proptest::prelude::*;

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Unordered concurrency with random delays: every emitted position `p` means every input
    /// entry at or before `p` has already come out; positions never move backwards; the last
    /// one is the end of the input; filtered and dead entries count like items.
    #[test]
    fn the_unordered_low_water_mark_never_passes_an_unfinished_entry(
        delays in prop::collection::vec(0u64..50, 1..60),
        n in 1usize..8,
        filter_every in 2u64..6,
    ) {
        let len = delays.len() as u64;
        let out = paused_runtime().block_on(async move {
            let tracked = tracked_source(delays, None)
                .map_with_position(|at, delay| (*at, delay))
                .filter(move |(at, _)| at % filter_every != 0)
                .map_concurrent_unordered(n, |(at, delay)| async move {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    at
                });
            consume(tracked).await
        });
        prop_assert_eq!(out.len() as u64, len);
        let mut done = BTreeSet::new();
        let mut last_mark = 0;
        for Positioned { position, entry } in &out {
            match entry {
                Entry::Item(at) => { done.insert(*at); }
                // A filtered entry's own position is not in the payload: the mark covers it.
                Entry::Filtered | Entry::Dead(_) => {}
            }
            prop_assert!(*position >= last_mark, "the mark moved back: {} after {}", position, last_mark);
            last_mark = *position;
            for at in 1..=*position {
                prop_assert!(
                    done.contains(&at) || at % filter_every == 0,
                    "mark {} passed entry {} which had not come out", position, at
                );
            }
        }
        prop_assert_eq!(last_mark, len);
    }
}

#[tokio::test(start_paused = true)]
async fn every_tracked_stage_honours_the_stream_contract() {
    let expected = |items: &[(u64, Entry<i64>)]| -> Vec<Positioned<u64, i64>> {
        items
            .iter()
            .map(|(position, entry)| Positioned {
                position: *position,
                entry: entry.clone(),
            })
            .collect()
    };
    let source = || tracked_source(vec![1_i64, 2, 3, 4, 5, 6], None);
    let plain = expected(&[
        (1, Entry::Dead("one".into())),
        (2, Entry::Item(20)),
        (3, Entry::Filtered),
        (4, Entry::Item(40)),
        (5, Entry::Filtered),
        (6, Entry::Item(60)),
    ]);
    conformance(
        || {
            source()
                .validate(|x| if *x == 1 { Err("one") } else { Ok(()) })
                .filter(|x| x % 2 == 0)
                .map(|x| x * 10)
        },
        plain.clone(),
    )
    .await;
    conformance(
        || {
            source()
                .validate(|x| if *x == 1 { Err("one") } else { Ok(()) })
                .filter(|x| x % 2 == 0)
                .map_concurrent(3, |x| async move {
                    tokio::time::sleep(Duration::from_millis(10 - x as u64)).await;
                    x * 10
                })
        },
        plain.clone(),
    )
    .await;
    // One in flight: the unordered stage's order and marks are the input's.
    conformance(
        || {
            source()
                .validate(|x| if *x == 1 { Err("one") } else { Ok(()) })
                .filter(|x| x % 2 == 0)
                .map_concurrent_unordered(1, |x| async move { x * 10 })
        },
        plain.clone(),
    )
    .await;
    conformance(
        || source().map(|x| x * 10).prefetch(2),
        (1..=6)
            .map(|x| Positioned::item(x, x as i64 * 10))
            .collect(),
    )
    .await;
    let batches = |size: usize| {
        move || {
            source()
                .filter(|x| x % 3 != 0)
                .batch_within(size, Duration::from_millis(5))
        }
    };
    let from = |entries: Vec<Positioned<u64, i64>>| TrackedBatch::from_entries(entries).unwrap();
    conformance(
        batches(4),
        vec![
            from(vec![
                Positioned::item(1, 1),
                Positioned::item(2, 2),
                Positioned::filtered(3),
                Positioned::item(4, 4),
            ]),
            from(vec![Positioned::item(5, 5), Positioned::filtered(6)]),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_accounting_catches_a_stage_that_drops_entries() {
    // Filtering through `Tracked::filter` keeps the markers: it balances.
    let tracked = tracked_source((1..=10).collect::<Vec<u32>>(), None).filter(|x| x % 2 == 0);
    let accounting = tracked.accounting();
    for batch in tracked.batch(3).collect::<Vec<_>>().await {
        accounting.record_commit(&batch);
    }
    assert_eq!(
        accounting.check().unwrap().to_string(),
        "read 10 = committed 5 + dead-lettered 0 + filtered 5"
    );

    // Dropping entries with a plain `filter` through `via` loses them: it does not balance.
    let tracked = tracked_source((1..=10).collect::<Vec<u32>>(), None)
        .via(|s| s.filter(|p| std::future::ready(p.position % 2 == 0)));
    let accounting = tracked.accounting();
    for batch in tracked.batch(3).collect::<Vec<_>>().await {
        accounting.record_commit(&batch);
    }
    let err = accounting.check().unwrap_err();
    assert_eq!(err.missing(), 5);
    assert!(err.to_string().contains("(5 entries not done)"), "{err}");
}

#[tokio::test]
async fn positions_resume_exactly_after_the_commit() {
    // A sink that commits only the first batch, then a restart from its position.
    let items: Vec<u32> = (1..=7).collect();
    let first: Vec<_> = tracked_source(items.clone(), None)
        .batch(3)
        .take(1)
        .collect()
        .await;
    let committed = *first[0].position();
    let rest: Vec<_> = positions::track(futures::stream::iter(
        items
            .iter()
            .zip(1u64..)
            .filter(|(_, at)| *at > committed)
            .map(|(x, at)| (at, *x)),
    ))
    .batch(10)
    .collect()
    .await;
    let mut all: Vec<u32> = first[0].items().to_vec();
    all.extend(rest[0].items());
    assert_eq!(all, items);
}
