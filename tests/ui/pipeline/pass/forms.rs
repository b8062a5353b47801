//! Every supported form of `pipeline!` in one file (trybuild compiles each file).
use futures::{StreamExt, stream};
use millrace::prelude::*;

#[stream_stage(item = u32)]
async fn add(numbers: impl Stream<Item = u32> + Send, n: u32) {
    #[for_await]
    for x in numbers {
        yield_!(x + n);
    }
}

mod more {
    use millrace::prelude::*;

    pub fn evens<S: Stream<Item = u32>>(s: S) -> impl Stream<Item = u32> {
        futures::StreamExt::filter(s, |x| futures::future::ready(x % 2 == 0))
    }
}

fn main() {
    futures::executor::block_on(async {
        // source => f(args) => path::f => .method(args) => .method::<T>()
        let out: Vec<u32> = pipeline! {
            stream::iter(0..6u32)
            => add(1)
            => more::evens
            => .map(|x| x * 10)
            => .take::<>(2)
        }
        .collect()
        .await;
        assert_eq!(out, [20, 40]);

        // "name": stage (the source too), and a chain of methods in one stage, in parentheses.
        let out: Vec<u32> = pipeline! {
            "numbers": stream::iter(0..6u32)
            => "bigger": (.map(|x| x * 10).filter(|x| futures::future::ready(*x > 10)))
            => r#"raw name"#: add(1)
        }
        .collect()
        .await;
        assert_eq!(out, [21, 31, 41, 51]);

        // `_ => …` is a reusable Stage.
        let segment = pipeline! { _ => add(1) => add(1) };
        let a: Vec<u32> = stream::iter(vec![1u32]).wrap(segment).collect().await;
        let b: Vec<u32> = stream::iter(vec![2u32]).wrap(segment).collect().await;
        assert_eq!((a, b), (vec![3], vec![4]));
    });
}
