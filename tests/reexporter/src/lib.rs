//! Re-exports millrace as `engine` and defines stages through the re-export only: proves that
//! `pipeline!` (through `$crate`) and `#[stream_stage(crate = …)]` never name `millrace` itself.

/// millrace under another name.
pub use millrace as engine;

/// Stages defined against the re-export.
pub mod stages {
    use crate::engine::prelude::*;

    /// Doubles every item (fast path).
    #[stream_stage(item = u32, crate = crate::engine)]
    pub async fn double(numbers: impl Stream<Item = u32> + Send) {
        #[for_await]
        for x in numbers {
            yield_!(x * 2);
        }
    }

    /// Repeats every item (general path).
    #[stream_stage(item = u32, crate = crate::engine)]
    pub async fn repeat(numbers: impl Stream<Item = u32> + Send, times: usize) {
        #[for_await]
        for x in numbers {
            for _ in 0..times {
                yield_!(x);
            }
        }
    }

    /// A pipeline built through the re-exported `pipeline!`.
    pub fn doubled_then_repeated(input: Vec<u32>) -> impl Stream<Item = u32> + Send {
        crate::engine::pipeline! {
            futures::stream::iter(input)
            => double
            => repeat(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    #[tokio::test]
    async fn macros_work_through_a_reexport() {
        let out: Vec<u32> = super::stages::doubled_then_repeated(vec![1, 2])
            .collect()
            .await;
        assert_eq!(out, [2, 2, 4, 4]);
    }
}
