//! The public testing kit behaves as documented: it is what every other test trusts.

use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::testing::{
    DropCounter, Flaky, FlakyError, Step, StreamTestExt, alive_tasks, conformance, consume, record,
    scripted,
};

#[tokio::test(start_paused = true)]
async fn scripted_plays_items_delays_and_pendings_in_order() {
    let rec = record(scripted([
        Step::Item(1),
        Step::Delay(Duration::from_millis(30)),
        Step::Pending,
        Step::Item(2),
        Step::Delay(Duration::from_millis(5)),
        Step::Item(3),
    ]))
    .await;
    assert_eq!(rec.items, [1, 2, 3]);
    assert_eq!(
        rec.times,
        [
            Duration::ZERO,
            Duration::from_millis(30),
            Duration::from_millis(35)
        ]
    );
    // One Pending for each delay and one for the explicit Pending step.
    assert_eq!(rec.pendings, 3);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "scripted boom")]
async fn scripted_panic_reaches_the_consumer() {
    let _ = scripted([Step::Item(1), Step::Panic("scripted boom")])
        .collect::<Vec<_>>()
        .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "stream hung")]
async fn consume_reports_a_hang_instead_of_hanging() {
    let _ = consume(scripted([Step::Item(1), Step::Hang])).await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "consumer boom")]
async fn consume_reraises_a_panic_of_the_stream() {
    let _ = consume(scripted([Step::<u8>::Panic("consumer boom")])).await;
}

#[tokio::test(start_paused = true)]
async fn flaky_fails_once_per_point_and_resumes_from_any_index() {
    let flaky = Flaky::new(0..6u32).fail_at([1, 4]);
    let a: Vec<_> = flaky.open(0).collect().await;
    assert_eq!(
        a,
        [
            Ok(0),
            Err(FlakyError {
                position: 1,
                attempt: 1
            })
        ]
    );
    let b: Vec<_> = flaky.clone().open(1).collect().await;
    assert_eq!(
        b,
        [
            Ok(1),
            Ok(2),
            Ok(3),
            Err(FlakyError {
                position: 4,
                attempt: 1
            })
        ]
    );
    let c: Vec<_> = flaky.open(4).collect().await;
    assert_eq!(c, [Ok(4), Ok(5)]);
    assert_eq!((flaky.opens(), flaky.failures()), (3, 2));
}

#[tokio::test(start_paused = true)]
async fn flaky_fail_times_and_delay() {
    let flaky = Flaky::new(['x'])
        .fail_at([0])
        .fail_times(2)
        .delay_per_item(Duration::from_millis(10));
    let rec = record(flaky.open(0)).await;
    assert_eq!(rec.times, [Duration::from_millis(10)]);
    assert_eq!(
        rec.items,
        [Err(FlakyError {
            position: 0,
            attempt: 1
        })]
    );
    let second: Vec<_> = flaky.open(0).collect().await;
    assert_eq!(
        second,
        [Err(FlakyError {
            position: 0,
            attempt: 2
        })]
    );
    let third: Vec<_> = flaky.open(0).collect().await;
    assert_eq!(third, [Ok('x')]);
}

#[test]
fn flaky_probability_is_reproducible_per_seed() {
    let plan = |seed| {
        Flaky::new(0..1000u32)
            .fail_with_probability(0.1, seed)
            .failure_positions()
    };
    assert_eq!(plan(7), plan(7));
    assert_ne!(plan(7), plan(8));
    let n = plan(7).len();
    assert!((50..150).contains(&n), "about 10% of 1000 fail, got {n}");
    assert!(
        Flaky::new(0..10u32)
            .fail_with_probability(0.0, 1)
            .failure_positions()
            .is_empty()
    );
    assert_eq!(
        Flaky::new(0..10u32)
            .fail_with_probability(1.0, 1)
            .failure_positions()
            .len(),
        10
    );
}

#[tokio::test]
async fn drop_counter_and_alive_tasks_track_release() {
    let counter = DropCounter::new();
    let before = alive_tasks();
    let token = counter.token();
    let task = tokio::spawn(async move {
        let _t = token;
        std::future::pending::<()>().await;
    });
    tokio::task::yield_now().await;
    assert_eq!((counter.alive(), alive_tasks()), (1, before + 1));
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!((counter.alive(), alive_tasks()), (0, before));
}

#[tokio::test]
async fn interleave_pending_returns_pending_before_each_item() {
    let rec = record(stream::iter(0..3).interleave_pending()).await;
    assert_eq!(rec.items, [0, 1, 2]);
    assert_eq!(rec.pendings, 4); // before each item and before the end
}

#[tokio::test]
#[allow(deprecated)]
async fn deprecated_interleave_pending_fn_still_interleaves() {
    let rec = record(millrace::testing::interleave_pending(stream::iter(0..3))).await;
    assert_eq!(rec.items, [0, 1, 2]);
    assert_eq!(rec.pendings, 4);
}

#[tokio::test(start_paused = true)]
async fn conformance_accepts_a_well_behaved_stream() {
    conformance(
        || {
            scripted([
                Step::Item(1),
                Step::Delay(Duration::from_secs(1)),
                Step::Item(2),
            ])
            .fuse()
        },
        vec![1, 2],
    )
    .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "conformance: output of a spawned consumer")]
async fn conformance_rejects_wrong_output() {
    conformance(|| scripted([Step::Item(1)]), vec![2]).await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "yielded an item after it returned `None`")]
async fn conformance_rejects_a_stream_that_restarts_after_none() {
    /// A broken stream: after `None` it starts over (claims to be fused).
    struct Restarts(u8);
    impl futures::Stream for Restarts {
        type Item = u8;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<u8>> {
            self.0 += 1;
            std::task::Poll::Ready(if self.0 % 2 == 1 { Some(7) } else { None })
        }
    }
    impl futures::stream::FusedStream for Restarts {
        fn is_terminated(&self) -> bool {
            self.0 % 2 == 0
        }
    }
    conformance(|| Restarts(0), vec![7]).await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "stream hung")]
async fn conformance_catches_a_lost_wake_up() {
    /// A broken stream: returns Pending once without waking anyone.
    struct LosesWake(u8);
    impl futures::Stream for LosesWake {
        type Item = u8;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<u8>> {
            self.0 += 1;
            match self.0 {
                1 => std::task::Poll::Pending,
                2 => std::task::Poll::Ready(Some(1)),
                _ => std::task::Poll::Ready(None),
            }
        }
    }
    impl futures::stream::FusedStream for LosesWake {
        fn is_terminated(&self) -> bool {
            self.0 >= 3
        }
    }
    conformance(|| LosesWake(0), vec![1]).await;
}
