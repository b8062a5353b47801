//! Auto traits of the issue-13 wrappers (fan-out, fan-in, keyed concurrency, windows,
//! overflow, conflate), asserted exactly as in `tests/auto_traits.rs`: `Send + Sync + Unpin`
//! over such inputs; `!Send`/`!Sync` over an `Rc` upstream; `!Unpin` only where the upstream
//! is pinned in place (the fan-out hubs and merges box it, the overflow stages move it to a
//! task, so those stay `Unpin`).

use std::marker::{PhantomData, PhantomPinned};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;

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

fn src() -> stream::Iter<std::vec::IntoIter<u32>> {
    stream::iter(vec![1, 2, 3])
}

fn res() -> stream::Iter<std::vec::IntoIter<Result<u32, String>>> {
    stream::iter(vec![Ok(1), Err("e".to_string())])
}

fn double(x: u32) -> std::future::Ready<u32> {
    std::future::ready(x * 2)
}

fn secs(x: &u32) -> Duration {
    Duration::from_secs(u64::from(*x))
}

fn tumbling() -> WindowSpec {
    WindowSpec::tumbling(Duration::from_secs(1))
}

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
fn new_wrappers_are_send_sync_unpin_over_send_sync_unpin_inputs() {
    let n = expect! {
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

#[test]
fn new_wrappers_lose_send_sync_over_a_not_send_upstream() {
    let not_ss = (false, false, true);
    let n = expect! {
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
fn new_wrappers_lose_unpin_only_where_the_upstream_is_pinned_in_place() {
    let not_unpin = (true, true, false);
    let n = expect! {
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
