//! Every supported form of `#[stream_stage]` in one file (trybuild compiles each file).
use std::cell::Cell;
use std::rc::Rc;

use futures::{StreamExt, stream};
use millrace::prelude::*;

/// Fast path, `impl Stream` upstream.
#[stream_stage(item = u32)]
pub async fn add(numbers: impl Stream<Item = u32> + Send, n: u32) {
    #[for_await]
    for x in numbers {
        yield_!(x + n);
    }
}

/// Named generic upstream, `where` clause, struct renamed, crate path given.
#[stream_stage(item = T, name = Scaled, crate = ::millrace)]
pub(crate) async fn scale<S, T>(numbers: S, k: T)
where
    S: Stream<Item = T> + Send,
    T: std::ops::Mul<Output = T> + Copy,
{
    #[for_await]
    for x in numbers {
        yield_!(x * k);
    }
}

/// Source stage with a lifetime and `error = E`.
#[stream_stage(item = &'a str, error = String)]
async fn words<'a>(text: &'a str) {
    for w in text.split(' ') {
        if w.is_empty() {
            Err(format!("empty word in {text:?}"))?;
        }
        yield_!(w);
    }
}

/// `local` with `!Send` configuration, general path (`yield_all!`).
#[stream_stage(item = u32, local)]
async fn counted(numbers: impl Stream<Item = u32>, count: Rc<Cell<u32>>) {
    #[for_await]
    for x in numbers {
        count.set(count.get() + 1);
        yield_all!(stream::iter([x, x]));
    }
}

fn main() {
    futures::executor::block_on(async {
        let a: Vec<u32> = add(stream::iter([1, 2]), 1).collect().await;
        assert_eq!(a, [2, 3]);
        let s: Scaled<_, u32> = scale(stream::iter([1u32, 2]), 3);
        assert_eq!(s.collect::<Vec<_>>().await, [3, 6]);
        let w: Vec<Result<&str, String>> = words("a  b").collect().await;
        assert_eq!(w, [Ok("a"), Err("empty word in \"a  b\"".to_owned())]);
        let count = Rc::new(Cell::new(0));
        let c: Vec<u32> = counted(stream::iter([7]), count.clone()).collect().await;
        assert_eq!((c, count.get()), (vec![7, 7], 1));
    });
}
