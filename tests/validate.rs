//! `validate(f)` and `validate_ok(f)`: invalid items are carried in the error with their index.

use futures::{FutureExt, StreamExt, stream};
use millrace::policy::Invalid;
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, alive_tasks, conformance, consume, scripted};
use millrace::wrappers::{ValidateOkStage, ValidateStage};

fn even(x: &u32) -> Result<(), &'static str> {
    if x % 2 == 0 { Ok(()) } else { Err("odd") }
}

#[derive(Debug, Clone, PartialEq)]
enum RowError {
    Upstream(&'static str),
    Invalid(Invalid<u32, &'static str>),
}

impl From<Invalid<u32, &'static str>> for RowError {
    fn from(e: Invalid<u32, &'static str>) -> Self {
        RowError::Invalid(e)
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowError::Upstream(e) => write!(f, "upstream: {e}"),
            RowError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn invalid_items_are_carried_with_their_index() {
    let out: Vec<_> = stream::iter([2u32, 3, 4, 5]).validate(even).collect().await;
    assert_eq!(
        out,
        [
            Ok(2),
            Err(Invalid::new(3, 1, "odd")),
            Ok(4),
            Err(Invalid::new(5, 3, "odd")),
        ]
    );
    assert_eq!(
        out[1].as_ref().unwrap_err().to_string(),
        "item #1 rejected: odd"
    );
}

#[test]
fn invalid_is_an_error_with_the_reason_as_source() {
    use std::error::Error;
    let io = std::io::Error::other("disk on fire");
    let e = Invalid::new("row", 9, io);
    assert_eq!(e.to_string(), "item #9 rejected: disk on fire");
    assert_eq!(e.source().unwrap().to_string(), "disk on fire");
    assert_eq!(e.into_item(), "row");
}

#[tokio::test(start_paused = true)]
async fn validate_ok_passes_upstream_errors_through() {
    let rows = stream::iter([Ok(2u32), Err(RowError::Upstream("eof")), Ok(3), Ok(4)]);
    let out: Vec<_> = rows.validate_ok(even).collect().await;
    assert_eq!(
        out,
        [
            Ok(2),
            Err(RowError::Upstream("eof")),
            Err(RowError::Invalid(Invalid::new(3, 2, "odd"))),
            Ok(4),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn validate_then_resume_differs_from_resume_then_validate() {
    let source = || {
        scripted([
            Step::ok(2u32),
            Step::err(RowError::Upstream("io")),
            Step::ok(3),
            Step::ok(4),
        ])
    };
    let out: Vec<_> = source()
        .validate_ok(even)
        .on_error(Supervision::Resume)
        .collect()
        .await;
    assert_eq!(out, [Ok(2), Ok(4)]);
    let out: Vec<_> = source()
        .on_error(Supervision::Resume)
        .validate_ok(even)
        .collect()
        .await;
    assert_eq!(
        out,
        [
            Ok(2),
            Err(RowError::Invalid(Invalid::new(3, 1, "odd"))),
            Ok(4)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn stages_validate_the_same_way() {
    let out: Vec<_> = stream::iter([1u32, 2])
        .wrap(ValidateStage::new(even))
        .collect()
        .await;
    assert_eq!(out, [Err(Invalid::new(1, 0, "odd")), Ok(2)]);
    let out: Vec<Result<u32, RowError>> = stream::iter([Ok(1u32), Ok(2)])
        .wrap(ValidateOkStage::new(even))
        .collect()
        .await;
    assert_eq!(
        out,
        [Err(RowError::Invalid(Invalid::new(1, 0, "odd"))), Ok(2)]
    );
}

#[tokio::test(start_paused = true)]
async fn conformance_for_both_wrappers() {
    conformance(
        || scripted([Step::Item(1u32), Step::Item(2), Step::Item(3)]).validate(even),
        vec![
            Err(Invalid::new(1, 0, "odd")),
            Ok(2),
            Err(Invalid::new(3, 2, "odd")),
        ],
    )
    .await;
    conformance(
        || {
            scripted([
                Step::ok(1u32),
                Step::err(RowError::Upstream("x")),
                Step::ok(4),
            ])
            .validate_ok(even)
        },
        vec![
            Err(RowError::Invalid(Invalid::new(1, 0, "odd"))),
            Err(RowError::Upstream("x")),
            Ok(4),
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_releases_the_upstream_and_f() {
    let tasks = alive_tasks();
    let counter = DropCounter::new();
    let (t1, t2) = (counter.token(), counter.token());
    let upstream = stream::pending::<u32>().map(move |x| {
        let _held = &t1;
        x
    });
    let mut s = Box::pin(upstream.validate(move |x: &u32| {
        let _held = &t2;
        even(x)
    }));
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(counter.alive(), 2);
    drop(s);
    tokio::task::yield_now().await;
    assert_eq!(counter.alive(), 0);
    assert_eq!(alive_tasks(), tasks);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn a_panic_in_validate_reaches_the_consumer() {
    let s = stream::iter([1u32]).validate(|_: &u32| -> Result<(), &str> { panic!("boom") });
    consume(s).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_validate_ok_reaches_the_consumer() {
    let s = stream::iter([Ok::<u32, RowError>(1)])
        .validate_ok(|_: &u32| -> Result<(), &'static str> { panic!("boom ok") });
    let result = std::panic::AssertUnwindSafe(consume(s))
        .catch_unwind()
        .await;
    assert!(result.is_err());
}

#[test]
fn validate_streams_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&stream::iter([1u32]).validate(even));
    assert_send(&stream::iter([Ok::<u32, RowError>(1)]).validate_ok(even));
}

// ---- `validate_ok` over the common error types (no user `From` impl possible: E0117) ----

#[tokio::test(start_paused = true)]
async fn validate_ok_with_string_errors() {
    let rows: Vec<Result<i32, String>> = vec![Ok(1), Err("io: eof".to_string()), Ok(-2), Ok(3)];
    let out: Vec<Result<i32, String>> = futures::stream::iter(rows)
        .validate_ok(|x: &i32| if *x > 0 { Ok(()) } else { Err("not positive") })
        .collect()
        .await;
    assert_eq!(
        out,
        [
            Ok(1),
            Err("io: eof".to_string()),
            Err("item #2 rejected: not positive".to_string()),
            Ok(3),
        ]
    );
    // A `String` reason works too (any `Display` reason).
    let rows: Vec<Result<i32, String>> = vec![Ok(-7)];
    let out: Vec<Result<i32, String>> = futures::stream::iter(rows)
        .validate_ok(|x: &i32| Err(format!("{x} is out of range")))
        .collect()
        .await;
    assert_eq!(
        out,
        [Err("item #0 rejected: -7 is out of range".to_string())]
    );
}

#[tokio::test(start_paused = true)]
async fn validate_ok_with_str_errors() {
    let rows: Vec<Result<i32, &'static str>> = vec![Ok(1), Err("io: eof"), Ok(-2), Ok(3)];
    let out: Vec<Result<i32, &str>> = futures::stream::iter(rows)
        .validate_ok(|x: &i32| if *x > 0 { Ok(()) } else { Err("not positive") })
        .collect()
        .await;
    assert_eq!(out, [Ok(1), Err("io: eof"), Err("not positive"), Ok(3)]);
    // Then supervision as usual.
    let rows: Vec<Result<i32, &'static str>> = vec![Ok(1), Ok(-2), Ok(3)];
    let kept: Vec<i32> = futures::stream::iter(rows)
        .validate_ok(|x: &i32| if *x > 0 { Ok(()) } else { Err("not positive") })
        .skip_errors()
        .collect()
        .await;
    assert_eq!(kept, [1, 3]);
}
