//! The `Stream` contract, checked the same way for every public stage.
//!
//! One harness ([`reliability::check_stage`]) is applied to every wrapper, to their `XStage`
//! forms and to a long nested pipeline. For each it proves: same output on a spawned,
//! hang-guarded consumer, in place and under spurious `Pending`s; an honest `size_hint`;
//! finished stays finished; every `Pending` followed by a wake of that poll's own waker
//! (counting wakers, paused time auto-advancing only when the task is parked); the pinned
//! upstream never moved (a `!Unpin` probe upstream checks its address); dropping before the
//! first poll, after the first item and after a `Pending` releases every captured token and
//! leaves no task alive. A plain `#[test]` builds and drops every stage outside a runtime.

mod support;
use support::reliability;

use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Flaky, FlakyError, Step, scripted};
use millrace::wrappers::{
    BatchStage, DeadlineStage, IdleTimeoutStage, MeteredStage, PrefetchStage, RecoverStage,
    StopOnStage, SuperviseStage, ValidateOkStage, ValidateStage,
};
use reliability::{Probe, check_stage, probe, src, steps};

const MS: Duration = Duration::from_millis(1);

type R = Result<u32, &'static str>;

/// `Ok(0), Ok(1), Err("e2"), Ok(3), Err("e4"), Ok(5)` with a delay and a `Pending`.
fn res_steps() -> Vec<Step<R>> {
    vec![
        Step::ok(0),
        Step::Delay(10 * MS),
        Step::ok(1),
        Step::err("e2"),
        Step::Pending,
        Step::ok(3),
        Step::err("e4"),
        Step::ok(5),
    ]
}

fn res_src(c: &DropCounter) -> Probe<millrace::testing::Scripted<R>> {
    probe(scripted(res_steps()), c)
}

fn oks(v: impl IntoIterator<Item = u32>) -> Vec<R> {
    v.into_iter().map(Ok).collect()
}

/// The number of stages checked below (printed, and asserted by `count_of_checked_stages`).
const STAGES: usize = 57;

#[tokio::test(start_paused = true)]
async fn flow_stages() {
    check_stage(
        "batch(2)",
        |c| src(c).batch(2),
        vec![vec![0, 1], vec![2, 3], vec![4]],
        1,
    )
    .await;
    check_stage(
        "wrap(BatchStage::new(2))",
        |c| src(c).wrap(BatchStage::new(2)),
        vec![vec![0, 1], vec![2, 3], vec![4]],
        1,
    )
    .await;
    // 0 at t=0 leaves at 5 ms (its timer); 1, 2, 3 at 10 ms fill a batch; 4 is the tail.
    check_stage(
        "batch_within(3, 5ms)",
        |c| src(c).batch_within(3, 5 * MS),
        vec![vec![0], vec![1, 2, 3], vec![4]],
        2,
    )
    .await;
    check_stage(
        "wrap(BatchStage::within(3, 5ms))",
        |c| src(c).wrap(BatchStage::checked_within(3, 5 * MS).unwrap()),
        vec![vec![0], vec![1, 2, 3], vec![4]],
        2,
    )
    .await;
    check_stage("prefetch(2)", |c| src(c).prefetch(2), (0..5).collect(), 1).await;
    check_stage("prefetch(1)", |c| src(c).prefetch(1), (0..5).collect(), 1).await;
    check_stage(
        "wrap(PrefetchStage::new(64))",
        |c| src(c).wrap(PrefetchStage::new(64)),
        (0..5).collect(),
        1,
    )
    .await;
    check_stage(
        "idle_timeout(1s) passing",
        |c| src(c).idle_timeout(Duration::from_secs(1)),
        (0..5).map(Ok).collect(),
        1,
    )
    .await;
    check_stage(
        "idle_timeout(5ms) elapsing",
        |c| src(c).idle_timeout(5 * MS),
        vec![
            Ok(0),
            Err(TimeoutError::Item {
                after: 5 * MS,
                index: 1,
            }),
        ],
        1,
    )
    .await;
    check_stage(
        "wrap(IdleTimeoutStage::new(1s))",
        |c| src(c).wrap(IdleTimeoutStage::new(Duration::from_secs(1))),
        (0..5).map(Ok).collect(),
        1,
    )
    .await;
    check_stage(
        "deadline(1s) passing",
        |c| src(c).deadline(Duration::from_secs(1)),
        (0..5).map(Ok).collect(),
        1,
    )
    .await;
    check_stage(
        "deadline(5ms) elapsing",
        |c| src(c).deadline(5 * MS),
        vec![Ok(0), Err(TimeoutError::Deadline { after: 5 * MS })],
        1,
    )
    .await;
    check_stage(
        "wrap(DeadlineStage::new(1s))",
        |c| src(c).wrap(DeadlineStage::new(Duration::from_secs(1))),
        (0..5).map(Ok).collect(),
        1,
    )
    .await;
    check_stage(
        "stop_on(live token)",
        |c| src(c).stop_on(CancellationToken::new()),
        (0..5).collect(),
        1,
    )
    .await;
    check_stage(
        "stop_on(cancelled token)",
        |c| {
            let token = CancellationToken::new();
            token.cancel();
            src(c).stop_on(token)
        },
        vec![],
        0,
    )
    .await;
    check_stage(
        "wrap(StopOnStage::new(token))",
        |c| src(c).wrap(StopOnStage::new(CancellationToken::new())),
        (0..5).collect(),
        1,
    )
    .await;
}

/// A fresh flaky source per build (the failure plan is shared by the clones of one `Flaky`).
fn flaky(fail_at: &[u64], times: u32) -> Flaky<u32> {
    Flaky::new(0..5u32)
        .fail_at(fail_at.iter().copied())
        .fail_times(times)
        .delay_per_item(MS)
}

#[tokio::test(start_paused = true)]
async fn error_stages() {
    check_stage(
        "restartable (no retry)",
        |c| {
            let f = flaky(&[3], 1);
            let (t, c2) = (c.token(), c.clone());
            restartable(move |cp: &Checkpoint<u32>| {
                let _keep = &t;
                probe(f.open(cp.delivered), &c2)
            })
        },
        vec![
            Ok(0),
            Ok(1),
            Ok(2),
            Err(FlakyError {
                position: 3,
                attempt: 1,
            }),
        ],
        1,
    )
    .await;
    check_stage(
        "restartable.retry(fixed)",
        |c| {
            let f = flaky(&[1, 3], 1);
            let c2 = c.clone();
            restartable(move |cp: &Checkpoint<u32>| probe(f.open(cp.delivered), &c2))
                .retry(RetryPolicy::fixed(10 * MS, 2))
        },
        (0..5).map(Ok).collect::<Vec<Result<u32, FlakyError>>>(),
        2,
    )
    .await;
    check_stage(
        "restartable.skip_delivered.retry(exponential+jitter)",
        |c| {
            let f = flaky(&[0, 4], 2);
            let c2 = c.clone();
            restartable(move |_: &Checkpoint<u32>| probe(f.open(0), &c2))
                .skip_delivered()
                .retry(RetryPolicy::exponential())
        },
        (0..5).map(Ok).collect::<Vec<Result<u32, FlakyError>>>(),
        2,
    )
    .await;
    check_stage(
        "retry exhausted",
        |c| {
            let f = flaky(&[1], 9);
            let c2 = c.clone();
            restartable(move |cp: &Checkpoint<u32>| probe(f.open(cp.delivered), &c2))
                .retry(RetryPolicy::fixed(10 * MS, 2))
        },
        vec![
            Ok(0),
            Err(FlakyError {
                position: 1,
                attempt: 3,
            }),
        ],
        2,
    )
    .await;
    check_stage(
        "recover_with",
        |c| {
            let c2 = c.clone();
            res_src(c).recover_with(move |_e, cp: &Checkpoint<u32>| {
                Some(
                    probe(scripted(steps(7)), &c2)
                        .skip(cp.delivered as usize)
                        .map(Ok),
                )
            })
        },
        // Fallback after Ok(1): 2..7 (it skips what was delivered); `steps(7)` has its own delay and `Pending`.
        oks(0..7),
        1,
    )
    .await;
    check_stage(
        "wrap(RecoverStage::new(f)) chained twice",
        |c| {
            let c2 = c.clone();
            let mut calls = 0u32;
            res_src(c).wrap(RecoverStage::new(move |_e: &&str, cp: &Checkpoint<u32>| {
                calls += 1;
                // The first fallback fails again after one item; the second one completes.
                let from = cp.delivered as u32;
                let steps: Vec<Step<R>> = if calls == 1 {
                    vec![Step::ok(from), Step::Delay(MS), Step::err("again")]
                } else {
                    (from..6).map(Step::ok).collect()
                };
                Some(probe(scripted(steps), &c2))
            }))
        },
        oks(0..6),
        1,
    )
    .await;
    check_stage(
        "checkpoint_with (pass-through)",
        |c| res_src(c).checkpoint_with(0u32, |n, _x: &u32| *n += 1),
        res_steps()
            .into_iter()
            .filter_map(|s| match s {
                Step::Item(r) => Some(r),
                _ => None,
            })
            .collect(),
        1,
    )
    .await;
    check_stage(
        "checkpoint_with.recover_with",
        |c| {
            let c2 = c.clone();
            res_src(c)
                .checkpoint_with(0u32, |next, x: &u32| *next = x + 1)
                .recover_with(move |_e, next: &u32| {
                    Some(probe(
                        scripted((*next..4).map(Step::ok).collect::<Vec<_>>()),
                        &c2,
                    ))
                })
        },
        oks(0..4),
        1,
    )
    .await;
    check_stage(
        "on_error(Stop)",
        |c| res_src(c).on_error(Supervision::Stop),
        vec![Ok(0), Ok(1), Err("e2")],
        1,
    )
    .await;
    check_stage(
        "on_error(Resume)",
        |c| res_src(c).on_error(Supervision::Resume),
        oks([0, 1, 3, 5]),
        1,
    )
    .await;
    check_stage(
        "on_error(Replace)",
        |c| {
            let t = c.token();
            res_src(c).on_error(Supervision::replace(move |e: &str| {
                let _keep = &t;
                100 + e.len() as u32
            }))
        },
        oks([0, 1, 102, 3, 102, 5]),
        1,
    )
    .await;
    check_stage(
        "wrap(SuperviseStage::new(Resume))",
        |c| res_src(c).wrap(SuperviseStage::new(Supervision::Resume)),
        oks([0, 1, 3, 5]),
        1,
    )
    .await;
    let odd = |x: &u32| if x % 2 == 1 { Err("odd") } else { Ok(()) };
    let validated: Vec<Result<u32, Invalid<u32, &str>>> = (0..5u32)
        .map(|x| {
            if x % 2 == 1 {
                Err(Invalid::new(x, u64::from(x), "odd"))
            } else {
                Ok(x)
            }
        })
        .collect();
    check_stage(
        "validate",
        |c| {
            let t = c.token();
            src(c).validate(move |x: &u32| {
                let _keep = &t;
                odd(x)
            })
        },
        validated.clone(),
        1,
    )
    .await;
    check_stage(
        "wrap(ValidateStage::new(f))",
        |c| src(c).wrap(ValidateStage::new(odd)),
        validated,
        1,
    )
    .await;

    #[derive(Debug, Clone, PartialEq)]
    enum RowError {
        Src(&'static str),
        Invalid(Invalid<u32, &'static str>),
    }
    impl From<Invalid<u32, &'static str>> for RowError {
        fn from(e: Invalid<u32, &'static str>) -> Self {
            RowError::Invalid(e)
        }
    }
    let rows = |c: &DropCounter| res_src(c).map(|r| r.map_err(RowError::Src));
    let expected = vec![
        Ok(0),
        Err(RowError::Invalid(Invalid::new(1, 1, "odd"))),
        Err(RowError::Src("e2")),
        Err(RowError::Invalid(Invalid::new(3, 3, "odd"))),
        Err(RowError::Src("e4")),
        Err(RowError::Invalid(Invalid::new(5, 5, "odd"))),
    ];
    check_stage(
        "validate_ok",
        |c| rows(c).validate_ok(odd),
        expected.clone(),
        1,
    )
    .await;
    check_stage(
        "wrap(ValidateOkStage::new(f))",
        |c| rows(c).wrap(ValidateOkStage::new(odd)),
        expected,
        1,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn resource_stages() {
    check_stage(
        "scoped",
        |c| {
            let (to, tb, tc) = (c.token(), c.token(), c.token());
            let c2 = c.clone();
            scoped(
                async move {
                    tokio::time::sleep(MS).await;
                    Ok::<_, &'static str>(to)
                },
                move |_res| {
                    let _keep = &tb;
                    probe(scripted(res_steps()), &c2).take(2)
                },
                move |res| async move {
                    tokio::time::sleep(5 * MS).await;
                    drop((res, tc));
                },
            )
        },
        oks([0, 1]),
        2,
    )
    .await;
    check_stage(
        "scoped with a body error",
        |c| {
            let c2 = c.clone();
            scoped(
                async { Ok::<_, &'static str>(()) },
                move |_res: &()| probe(scripted(res_steps()), &c2),
                |_res| async { tokio::time::sleep(5 * MS).await },
            )
        },
        vec![Ok(0), Ok(1), Err("e2")],
        2,
    )
    .await;

    type PageFut =
        std::pin::Pin<Box<dyn Future<Output = Result<Page<u32, u32>, &'static str>> + Send>>;
    fn fetch(c: &DropCounter) -> impl FnMut(u32) -> PageFut + Send + 'static + use<> {
        let t = c.token();
        move |page: u32| {
            let t = t.clone();
            Box::pin(async move {
                let _keep = t;
                tokio::time::sleep(10 * MS).await;
                let items = vec![page * 10, page * 10 + 1];
                Ok(match page {
                    0 => Page::next(items, 1),
                    1 => Page::next(vec![], 2), // an empty page contributes nothing
                    2 => Page::next(items, 3),
                    _ => Page::last(items),
                })
            })
        }
    }
    let pages = oks([0, 1, 20, 21, 30, 31]);
    check_stage("paginate", |c| paginate(0, fetch(c)), pages.clone(), 3).await;
    check_stage(
        "paginate.prefetch_next_page",
        |c| paginate(0, fetch(c)).prefetch_next_page(),
        pages.clone(),
        3,
    )
    .await;
    check_stage(
        "paginate.with_positions (items)",
        |c| {
            paginate(0, fetch(c))
                .with_positions()
                .map(|r| r.map(|(x, _pos)| x))
        },
        pages,
        3,
    )
    .await;
    check_stage("metered", |c| src(c).metered("src"), (0..5).collect(), 1).await;
    check_stage(
        "metered.count_errors.with_timing",
        |c| res_src(c).metered("rows").count_errors().with_timing(),
        res_steps()
            .into_iter()
            .filter_map(|s| match s {
                Step::Item(r) => Some(r),
                _ => None,
            })
            .collect(),
        1,
    )
    .await;
    check_stage(
        "wrap(MeteredStage::new(name))",
        |c| src(c).wrap(MeteredStage::new("src")),
        (0..5).collect(),
        1,
    )
    .await;
}

#[derive(Debug, Clone, PartialEq)]
struct NestErr(String);

impl std::fmt::Display for NestErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Invalid<u32, ()>> for NestErr {
    fn from(e: Invalid<u32, ()>) -> Self {
        NestErr(format!("invalid #{}", e.index))
    }
}

/// Work that takes `[7, 5, 1, 9, 2][x]` ms (so completions overtake each other) and holds a
/// token until it is done or dropped.
fn work(c: &DropCounter) -> impl FnMut(u32) -> WorkFut + Send + 'static + use<> {
    let t = c.token();
    move |x| {
        let t = t.clone();
        Box::pin(async move {
            tokio::time::sleep(MS * [7, 5, 1, 9, 2][x as usize % 5]).await;
            drop(t);
            x * 10
        })
    }
}

type WorkFut = std::pin::Pin<Box<dyn Future<Output = u32> + Send>>;

#[tokio::test(start_paused = true)]
async fn concurrency_stages() {
    use millrace::wrappers::{
        MapBlockingStage, MapConcurrentStage, RateLimitStage, TryMapConcurrentStage,
    };
    let tens: Vec<u32> = (0..5).map(|x| x * 10).collect();
    check_stage(
        "map_concurrent(2)",
        |c| src(c).map_concurrent(2, work(c)),
        tens.clone(),
        1,
    )
    .await;
    check_stage(
        "map_concurrent(1)",
        |c| src(c).map_concurrent(1, work(c)),
        tens.clone(),
        1,
    )
    .await;
    check_stage(
        "map_concurrent(3).with_output_buffer(1)",
        |c| src(c).map_concurrent(3, work(c)).with_output_buffer(1),
        tens.clone(),
        1,
    )
    .await;
    // Completion order: 0 (t=0, 7 ms) ends at 7; 1 (t=10, 5 ms) and 2 (t=10, 1 ms) fill the
    // two slots; 2 ends at 11 and 3 starts (9 ms → 20); 1 ends at 15 and 4 starts (2 ms → 17).
    check_stage(
        "map_concurrent_unordered(2)",
        |c| src(c).map_concurrent_unordered(2, work(c)),
        vec![0, 20, 10, 40, 30],
        1,
    )
    .await;
    check_stage(
        "map_concurrent_local(2)",
        |c| src(c).map_concurrent_local(2, work(c)),
        tens.clone(),
        1,
    )
    .await;
    check_stage(
        "map_concurrent_local_unordered(2)",
        |c| src(c).map_concurrent_local_unordered(2, work(c)),
        vec![0, 20, 10, 40, 30],
        1,
    )
    .await;
    check_stage(
        "wrap(MapConcurrentStage::new(2, f))",
        |c| src(c).wrap(MapConcurrentStage::new(2, work(c))),
        tens.clone(),
        1,
    )
    .await;
    let fallible = |c: &DropCounter| {
        let mut w = work(c);
        move |x: u32| {
            let fut = w(x);
            async move {
                let y = fut.await;
                if y == 30 { Err("thirty") } else { Ok(y) }
            }
        }
    };
    check_stage(
        "try_map_concurrent(2) fail-fast",
        |c| src(c).try_map_concurrent(2, fallible(c)),
        vec![Ok(0), Ok(10), Ok(20), Err("thirty")],
        1,
    )
    .await;
    check_stage(
        "wrap(TryMapConcurrentStage::new(2, f))",
        |c| src(c).wrap(TryMapConcurrentStage::new(2, fallible(c))),
        vec![Ok(0), Ok(10), Ok(20), Err("thirty")],
        1,
    )
    .await;
    check_stage(
        "map_blocking(2)",
        |c| {
            let t = c.token();
            src(c).map_blocking(2, move |x| {
                let _keep = &t;
                x + 1
            })
        },
        (1..6).collect(),
        1,
    )
    .await;
    check_stage(
        "wrap(MapBlockingStage::new(2, f))",
        |c| src(c).wrap(MapBlockingStage::new(2, |x: u32| x + 1)),
        (1..6).collect(),
        1,
    )
    .await;
    check_stage(
        "rate_limit(per_second(100))",
        |c| src(c).rate_limit(Rate::per_second(100)),
        (0..5).collect(),
        2,
    )
    .await;
    check_stage(
        "rate_limit(per_second(10).burst(3))",
        |c| src(c).rate_limit(Rate::per_second(10).burst(3)),
        (0..5).collect(),
        2,
    )
    .await;
    check_stage(
        "wrap(RateLimitStage::new(rate))",
        |c| src(c).wrap(RateLimitStage::new(Rate::per_second(50))),
        (0..5).collect(),
        2,
    )
    .await;
    check_stage(
        "rate_limit → map_concurrent → prefetch",
        |c| {
            src(c)
                .rate_limit(Rate::per_second(1000))
                .map_concurrent(2, work(c))
                .prefetch(2)
        },
        tens,
        1,
    )
    .await;
}

/// Every stage at once: the contract must survive composition too.
#[tokio::test(start_paused = true)]
async fn nested_pipelines() {
    check_stage(
        "retry → prefetch → validate_ok → on_error → batch_within → deadline",
        |c| {
            let f = Flaky::new(0..20u32)
                .fail_at([3, 7, 8, 15])
                .delay_per_item(MS);
            let c2 = c.clone();
            restartable(move |cp: &Checkpoint<u32>| probe(f.open(cp.delivered), &c2))
                .retry(RetryPolicy::fixed(2 * MS, 3))
                .map(|r| r.map_err(|e| NestErr(e.to_string())))
                .prefetch(4)
                .validate_ok(|x: &u32| if x % 5 == 4 { Err(()) } else { Ok(()) })
                .on_error(Supervision::Resume)
                .metered("nested")
                .batch_within(4, 100 * MS)
                .deadline(Duration::from_secs(10))
        },
        {
            // 20 items (1 ms each) and 4 retries (2 ms each) all land inside one 100 ms window.
            let kept: Vec<u32> = (0..20).filter(|x| x % 5 != 4).collect();
            kept.chunks(4)
                .map(|c| {
                    Ok(c.iter()
                        .map(|x| Ok(*x))
                        .collect::<Vec<Result<u32, NestErr>>>())
                })
                .collect::<Vec<Result<_, TimeoutError>>>()
        },
        3,
    )
    .await;
    check_stage(
        "scoped body: stop_on → idle_timeout → recover_with → prefetch",
        |c| {
            let c2 = c.clone();
            scoped(
                async { Ok::<_, TimeoutError>(()) },
                move |_: &()| {
                    let c3 = c2.clone();
                    probe(scripted(steps(6)), &c2)
                        .stop_on(CancellationToken::new())
                        .idle_timeout(Duration::from_secs(1))
                        .recover_with(move |_e, cp: &Checkpoint<u32>| {
                            Some(
                                probe(scripted(steps(6)), &c3)
                                    .skip(cp.delivered as usize)
                                    .map(Ok),
                            )
                        })
                        .prefetch(3)
                },
                |_| async {},
            )
        },
        (0..6).map(Ok).collect(),
        1,
    )
    .await;
}

/// A plain thread, no runtime: building and dropping every stage (unpolled) is safe and
/// releases what it captured; a `scoped` stream dropped mid-stream outside any runtime still
/// runs its close (the documented helper-thread fallback).
#[test]
fn construct_and_drop_outside_a_runtime() {
    let c = DropCounter::new();
    let f = flaky(&[1], 1);
    drop(src(&c).batch(2));
    drop(src(&c).batch_within(2, MS));
    drop(src(&c).prefetch(2));
    drop(src(&c).idle_timeout(MS));
    drop(src(&c).deadline(MS));
    drop(src(&c).stop_on(CancellationToken::new()));
    drop(
        restartable(move |cp: &Checkpoint<u32>| f.open(cp.delivered))
            .retry(RetryPolicy::exponential()),
    );
    drop(res_src(&c).recover_with(|_, _: &Checkpoint<u32>| None::<stream::Empty<R>>));
    drop(res_src(&c).checkpoint_with(0u32, |n, _: &u32| *n += 1));
    drop(res_src(&c).on_error(Supervision::Resume));
    drop(src(&c).validate(|_: &u32| Ok::<(), ()>(())));
    drop(src(&c).metered("x"));
    let t = c.token();
    drop(paginate(0u32, move |_| {
        let _keep = &t;
        async { Ok::<Page<u32, u32>, ()>(Page::last(vec![])) }
    }));
    let (to, tc) = (c.token(), c.token());
    drop(scoped(
        async move { Ok::<_, ()>(to) },
        |_| stream::iter([Ok::<u32, ()>(1)]),
        move |r| async move { drop((r, tc)) },
    ));
    assert_eq!(c.alive(), 0, "an unpolled stage leaked captured state");

    // Poll a scoped stream to its first item on a runtime, shut the runtime down, then drop
    // the stream on this plain thread: close must still run, exactly once.
    let closes = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let closes2 = closes.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut s = Box::pin(scoped(
        async { Ok::<_, ()>(()) },
        |_| stream::iter([Ok::<u32, ()>(1), Ok(2)]),
        move |_| async move {
            closes2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        },
    ));
    assert_eq!(rt.block_on(s.next()), Some(Ok(1)));
    drop(rt);
    drop(s);
    assert_eq!(closes.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn count_of_checked_stages() {
    // Keep in step with the `check_stage` calls above (grep -c 'check_stage(' minus the import).
    let source = include_str!("conformance.rs");
    let calls =
        source.matches("    check_stage(\n").count() + source.matches("    check_stage(\"").count();
    assert_eq!(
        calls, STAGES,
        "update STAGES to the number of stages checked"
    );
    println!("conformance suite covers {STAGES} stage configurations");
}

/// The harness can fail: a stream that, after its second `Pending`, wakes only the waker of
/// its first poll (a stale one) is reported as a hang instead of passing.
#[tokio::test(start_paused = true)]
#[should_panic(expected = "lost wake-up")]
async fn counting_wakers_catch_a_stale_wake_up() {
    struct Stale {
        first: Option<std::task::Waker>,
        polls: u32,
    }
    impl Stream for Stale {
        type Item = u32;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<u32>> {
            self.polls += 1;
            match self.polls {
                1 => {
                    self.first = Some(cx.waker().clone());
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
                2 => {
                    // Wakes the stale waker of poll 1, not this poll's.
                    self.first.as_ref().unwrap().wake_by_ref();
                    std::task::Poll::Pending
                }
                _ => std::task::Poll::Ready(None),
            }
        }
    }
    impl FusedStream for Stale {
        fn is_terminated(&self) -> bool {
            self.polls > 2
        }
    }
    let report = reliability::spawn_guarded(
        "stale waker",
        reliability::poll_with_counting_wakers(Stale {
            first: None,
            polls: 0,
        }),
    )
    .await;
    println!("{report:?}");
}
