//! Depends on `millrace-core` and `millrace-macros` only (no `millrace` facade): proves that
//! `#[stream_stage(crate = millrace_core)]` finds everything its generated code needs in
//! `millrace_core::__private`, on both lowerings, and that the stages compose with the core's
//! wrappers.

/// Stages defined against the core.
pub mod stages {
    use millrace_core::prelude::*;
    use millrace_macros::stream_stage;

    /// Doubles every item (fast path: one `#[for_await]` loop, one `yield_!` per item).
    #[stream_stage(item = u32, crate = millrace_core)]
    pub async fn double(numbers: impl Stream<Item = u32> + Send) {
        #[for_await]
        for x in numbers {
            yield_!(x * 2);
        }
    }

    /// Repeats every item (general path: several `yield_!` per item).
    #[stream_stage(item = u32, crate = millrace_core)]
    pub async fn repeat(numbers: impl Stream<Item = u32> + Send, times: usize) {
        #[for_await]
        for x in numbers {
            for _ in 0..times {
                yield_!(x);
            }
        }
    }

    /// A source stage with an error type (`?` yields the `Err` and ends the stream).
    #[stream_stage(item = u32, error = String, crate = millrace_core)]
    pub async fn countdown(from: u32) {
        for n in (0..=from).rev() {
            let checked = if n == 1 {
                Err(format!("stopped at {n}"))
            } else {
                Ok(n)
            };
            yield_!(checked?);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::{StreamExt, stream};
    use millrace_core::prelude::*;

    use super::stages::{countdown, double, repeat};

    #[tokio::test]
    async fn stream_stage_works_with_the_core_and_the_macros_alone() {
        let out: Vec<Vec<u32>> = repeat(double(stream::iter(vec![1u32, 2])), 2)
            .batch(3)
            .collect()
            .await;
        assert_eq!(out, [vec![2, 2, 4], vec![4]]);
    }

    #[tokio::test]
    async fn a_source_stage_with_an_error_type() {
        let out: Vec<Result<u32, String>> = countdown(3).collect().await;
        assert_eq!(out, [Ok(3), Ok(2), Err("stopped at 1".to_owned())]);
    }
}
