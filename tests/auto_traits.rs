//! Auto traits of every public wrapper: `Send`, `Sync` and `Unpin` follow the inputs.
//!
//! Each wrapper is built from `Send + Sync + Unpin` inputs (a `stream::iter` over a `Vec`,
//! non-capturing closures) and its three auto traits are asserted **exactly** (both ways), so
//! a change that loses one — or gains one by accident — fails here. Then the same wrappers
//! over a `!Send` upstream (an `Rc`) and over a `!Unpin` upstream (`PhantomPinned`) must lose
//! exactly that trait, except where the wrapper documents why not (e.g. `Prefetch` moves its
//! upstream into a task, so it needs `Send` and never inherits `!Unpin`; the fan-out hubs and
//! merges box their upstream and the overflow stages move it to a task, so those stay `Unpin`
//! too).
//!
//! The check is a compile-time fact read at run time: `impls!(value, Trait)` is the autoref
//! trick (an inherent-looking method found on `P<T>` only when `T: Trait`, else on `&P<T>`),
//! so no `static_assertions` dependency is needed.

use std::marker::{PhantomData, PhantomPinned};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::wrappers::{BatchStage, PrefetchStage};

/// `true` when the type of `$v` implements `$tr`.
macro_rules! impls {
    ($v:expr, $tr:path) => {{
        struct P<T>(PhantomData<T>);
        #[allow(dead_code)] // only one of `Yes`/`No` is picked per use
        trait Yes {
            fn get(&self) -> bool {
                true
            }
        }
        impl<T: $tr> Yes for P<T> {}
        #[allow(dead_code)]
        trait No {
            fn get(&self) -> bool {
                false
            }
        }
        impl<T> No for &P<T> {}
        fn of<T>(_: &T) -> P<T> {
            P(PhantomData)
        }
        (&of(&$v)).get()
    }};
}

/// `(Send, Sync, Unpin)` of the value's type.
macro_rules! traits {
    ($v:expr) => {
        (impls!($v, Send), impls!($v, Sync), impls!($v, Unpin))
    };
}

const SSU: (bool, bool, bool) = (true, true, true);

/// `Send + Sync + Unpin` plain items.
fn src() -> stream::Iter<std::vec::IntoIter<u32>> {
    stream::iter(vec![1, 2, 3])
}

type R = Result<u32, String>;

fn res() -> stream::Iter<std::vec::IntoIter<R>> {
    stream::iter(vec![Ok(1), Err("e".to_string())])
}

fn even(x: &u32) -> Result<(), &'static str> {
    if x % 2 == 0 { Ok(()) } else { Err("odd") }
}

fn double(x: u32) -> std::future::Ready<u32> {
    std::future::ready(x * 2)
}

fn try_double(x: u32) -> std::future::Ready<Result<u32, String>> {
    std::future::ready(Ok(x * 2))
}

fn secs(x: &u32) -> Duration {
    Duration::from_secs(u64::from(*x))
}

fn tumbling() -> WindowSpec {
    WindowSpec::tumbling(Duration::from_secs(1))
}

#[derive(Debug)]
struct RowErr;
impl From<Invalid<u32, &'static str>> for RowErr {
    fn from(_: Invalid<u32, &'static str>) -> Self {
        RowErr
    }
}

/// Asserts the exact `(Send, Sync, Unpin)` of each named value.
macro_rules! expect {
    ($( $name:literal : $v:expr => $want:expr ;)*) => {{
        let mut n = 0;
        $(
            let v = $v;
            assert_eq!(traits!(v), $want, "{}: (Send, Sync, Unpin)", $name);
            n += 1;
        )*
        n
    }};
}

#[test]
fn every_wrapper_is_send_sync_unpin_over_send_sync_unpin_inputs() {
    let token = CancellationToken::new();
    let n = expect! {
        "Batch": src().batch(2) => SSU;
        "Batch (within)": src().batch_within(2, Duration::from_millis(5)) => SSU;
        "Batch (Stage)": src().wrap(BatchStage::new(2)) => SSU;
        "Prefetch": src().prefetch(2) => SSU;
        "Prefetch (Stage)": src().wrap(PrefetchStage::new(2)) => SSU;
        "IdleTimeout": src().idle_timeout(Duration::from_secs(1)) => SSU;
        "ItemTimeout": src().item_timeout(Duration::from_secs(1)) => SSU;
        "TryBatch": res().try_batch(2) => SSU;
        "TryBatch (within)": res().try_batch_within(2, Duration::from_millis(5)) => SSU;
        "SkipErrors": res().skip_errors() => SSU;
        "Deadline": src().deadline(Duration::from_secs(1)) => SSU;
        "StopOn": src().stop_on(token.clone()) => SSU;
        "Restartable": restartable(|_: &Checkpoint<u32>| res()) => SSU;
        "Retry (fixed)": restartable(|_: &Checkpoint<u32>| res()).retry(RetryPolicy::fixed(Duration::from_millis(1), 3)) => SSU;
        "Retry (exponential)": restartable(|_: &Checkpoint<u32>| res()).retry(RetryPolicy::exponential()) => SSU;
        "Retry (skip_delivered)": restartable(|_: &Checkpoint<u32>| res()).skip_delivered().retry(RetryPolicy::exponential()) => SSU;
        "Recover": res().recover_with(|_, _: &Checkpoint<u32>| Some(res())) => SSU;
        "CheckpointWith": res().checkpoint_with(0u64, |n, _: &u32| *n += 1) => SSU;
        "Recover (custom checkpoint)": res().checkpoint_with(0u64, |n, _: &u32| *n += 1).recover_with(|_, _: &u64| Some(res())) => SSU;
        // `Replace` holds a `Box<dyn FnMut(E) -> T + Send + Sync>`; `Supervision::replace`
        // takes any `Send` closure (kept in a `Mutex` reached through `&mut` only).
        "Supervise (Stop)": res().on_error(Supervision::Stop) => SSU;
        "Supervise (Resume)": res().on_error(Supervision::Resume) => SSU;
        "Supervise (Replace)": res().on_error(Supervision::replace(|_e: String| 0)) => SSU;
        "Supervise (Replace, a !Sync closure)": res().on_error(Supervision::replace({
            let calls = std::cell::Cell::new(0u32);
            move |_e: String| { calls.set(calls.get() + 1); calls.get() }
        })) => SSU;
        "Validate": src().validate(even) => SSU;
        "ValidateOk": res().map(|r| r.map_err(|_| RowErr)).validate_ok(even) => SSU;
        "Scoped": scoped(async { Ok::<_, String>(5u32) }, |n: &u32| stream::iter(vec![Ok::<u32, String>(*n)]), |_n| async {}) => SCOPED;
        "Paginate": paginate(0u32, |_c| async { Ok::<_, String>(Page::<u32, u32>::last(vec![1])) }) => PAGINATE;
        "WithPositions": paginate(0u32, |_c| async { Ok::<_, String>(Page::<u32, u32>::last(vec![1])) }).with_positions() => PAGINATE;
        "Metered": src().metered("m") => SSU;
        "Metered (count_errors)": res().metered("m").count_errors() => SSU;
        "MapConcurrent": src().map_concurrent(2, double) => SSU;
        "MapConcurrent (unordered)": src().map_concurrent_unordered(2, double) => SSU;
        "MapConcurrentLocal": src().map_concurrent_local(2, double) => SSU;
        "MapConcurrentLocal (unordered)": src().map_concurrent_local_unordered(2, double) => SSU;
        "TryMapConcurrent": src().try_map_concurrent(2, try_double) => SSU;
        "MapBlocking": src().map_blocking(2, |x| x + 1) => SSU;
        "RateLimit": src().rate_limit(Rate::per_second(10)) => SSU;
        "Broadcast": src().broadcast(2).remove(0) => SSU;
        "Partition": src().partition(2, |x| *x as usize % 2).remove(0) => SSU;
        "Balance": src().balance(2).remove(0) => SSU;
        "TryMerge": try_merge([res(), res()]) => SSU;
        "MergeInOrder": merge_in_order([src().enumerate(), src().enumerate()]) => SSU;
        "MapConcurrentByKey": src().map_concurrent_by_key(2, |x| *x, double) => SSU;
        "Window": src().window(tumbling(), |x| *x, || 0u32, |n, _| *n += 1) => SSU;
        "EventWindow": src().window_event_time(tumbling(), secs, |x| *x, || 0u32, |n, _| *n += 1) => SSU;
        "OnOverflow": src().on_overflow(2, Overflow::DropOldest) => SSU;
        "FailOnOverflow": src().fail_on_overflow(2) => SSU;
        "Conflate": src().conflate(|a, b| a + b) => SSU;
        "Conflate (latest)": src().latest() => SSU;
    };
    println!("auto traits checked for {n} wrapper configurations");
}

/// `Scoped` holds the `open` future (an `async` block: `!Unpin`), so it is `!Unpin` until
/// pinned; `Send` and `Sync` follow the inputs.
const SCOPED: (bool, bool, bool) = (true, true, false);
/// `Paginate` holds the fetch future of an `async` block, `!Unpin`.
const PAGINATE: (bool, bool, bool) = (true, true, false);

/// A `!Send`, `!Sync` upstream.
fn rc_src() -> impl Stream<Item = u32> {
    let rc = Rc::new(());
    stream::iter(vec![1u32, 2]).map(move |x| {
        let _keep = &rc;
        x
    })
}

/// A `!Unpin` (but `Send + Sync`) upstream.
struct Pinned {
    _pin: PhantomPinned,
}

impl Stream for Pinned {
    type Item = u32;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<u32>> {
        Poll::Ready(None)
    }
}

fn pinned() -> Pinned {
    Pinned {
        _pin: PhantomPinned,
    }
}

#[test]
fn wrappers_lose_send_sync_over_a_not_send_upstream() {
    let token = CancellationToken::new();
    let not_ss = (false, false, true);
    let n = expect! {
        "Batch": rc_src().batch(2) => not_ss;
        "IdleTimeout": rc_src().idle_timeout(Duration::from_secs(1)) => not_ss;
        "ItemTimeout": rc_src().item_timeout(Duration::from_secs(1)) => not_ss;
        "SkipErrors": rc_src().map(Ok::<u32, String>).skip_errors() => not_ss;
        "TryBatch": rc_src().map(Ok::<u32, String>).try_batch(2) => not_ss;
        "Deadline": rc_src().deadline(Duration::from_secs(1)) => not_ss;
        "StopOn": rc_src().stop_on(token.clone()) => not_ss;
        "Validate": rc_src().validate(even) => not_ss;
        "Supervise": rc_src().map(Ok::<u32, String>).on_error(Supervision::Resume) => not_ss;
        "Recover": rc_src().map(Ok::<u32, String>).recover_with(|_, _: &Checkpoint<u32>| None::<stream::Empty<R>>) => not_ss;
        "Metered": rc_src().metered("m") => not_ss;
        "MapConcurrentLocal": rc_src().map_concurrent_local(2, double) => not_ss;
        "RateLimit": rc_src().rate_limit(Rate::per_second(10)) => not_ss;
        "MapConcurrent (work is Send, upstream is not)": rc_src().map_concurrent(2, double) => not_ss;
        "Broadcast": rc_src().broadcast(2).remove(0) => not_ss;
        "Partition": rc_src().partition(2, |x| *x as usize % 2).remove(0) => not_ss;
        "Balance": rc_src().balance(2).remove(0) => not_ss;
        "MergeInOrder": merge_in_order([rc_src().enumerate()]) => not_ss;
        "MapConcurrentByKey": rc_src().map_concurrent_by_key(2, |x| *x, double) => not_ss;
        "Window": rc_src().window(tumbling(), |x| *x, || 0u32, |n, _| *n += 1) => not_ss;
        "EventWindow": rc_src().window_event_time(tumbling(), secs, |x| *x, || 0u32, |n, _| *n += 1) => not_ss;
    };
    println!("!Send inheritance checked for {n} wrappers");
}

#[test]
fn wrappers_lose_unpin_over_a_not_unpin_upstream() {
    let token = CancellationToken::new();
    let not_unpin = (true, true, false);
    let n = expect! {
        "Batch": pinned().batch(2) => not_unpin;
        "IdleTimeout": pinned().idle_timeout(Duration::from_secs(1)) => not_unpin;
        "ItemTimeout": pinned().item_timeout(Duration::from_secs(1)) => not_unpin;
        "SkipErrors": pinned().map(Ok::<u32, String>).skip_errors() => not_unpin;
        "TryBatch": pinned().map(Ok::<u32, String>).try_batch(2) => not_unpin;
        "Deadline": pinned().deadline(Duration::from_secs(1)) => not_unpin;
        "StopOn": pinned().stop_on(token.clone()) => not_unpin;
        "Validate": pinned().validate(even) => not_unpin;
        "Supervise": pinned().map(Ok::<u32, String>).on_error(Supervision::Resume) => not_unpin;
        "Recover": pinned().map(Ok::<u32, String>).recover_with(|_, _: &Checkpoint<u32>| None::<stream::Empty<R>>) => not_unpin;
        "Metered": pinned().metered("m") => not_unpin;
        "MapConcurrent": pinned().map_concurrent(2, double) => not_unpin;
        "MapConcurrentLocal": pinned().map_concurrent_local(2, double) => not_unpin;
        "RateLimit": pinned().rate_limit(Rate::per_second(10)) => not_unpin;
        // Prefetch never pins its upstream in place: it holds it unpinned until the first
        // poll moves it into the producer task, then keeps only a channel. `Unpin` whatever
        // the upstream (documented in `prefetch.rs`).
        "Prefetch": pinned().prefetch(2) => SSU;
        "MapConcurrentByKey": pinned().map_concurrent_by_key(2, |x| *x, double) => not_unpin;
        "Window": pinned().window(tumbling(), |x| *x, || 0u32, |n, _| *n += 1) => not_unpin;
        "EventWindow": pinned().window_event_time(tumbling(), secs, |x| *x, || 0u32, |n, _| *n += 1) => not_unpin;
        // The hubs box the upstream; the overflow stages move it onto their producer task.
        "Broadcast": pinned().broadcast(2).remove(0) => SSU;
        "Partition": pinned().partition(2, |x| *x as usize % 2).remove(0) => SSU;
        "Balance": pinned().balance(2).remove(0) => SSU;
        "MergeInOrder": merge_in_order([pinned().enumerate()]) => SSU;
        "OnOverflow": pinned().on_overflow(2, Overflow::DropOldest) => SSU;
        "Conflate": pinned().latest() => SSU;
    };
    println!("!Unpin inheritance checked for {n} wrappers");
}
