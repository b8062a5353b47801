//! Property tests: random pipelines of wrappers that have a list model produce exactly what
//! the model produces on a `Vec`.
//!
//! A pipeline is a random source (`u8` values) validated into `Result<i64, E>`, followed by up
//! to 8 random operations: `map`, `filter`, `take` (futures), `batch` (summarised per batch),
//! `validate_ok`, `on_error(Stop | Resume | Replace)`, `recover_with` (a one-item fallback
//! resuming from the checkpoint), `prefetch` and spurious `Pending`s (identity in the model).
//! The stream version runs under a paused current-thread tokio runtime, consumed on a spawned
//! hang-guarded task.

mod support;
use support::reliability;

use std::pin::Pin;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{StreamTestExt, consume};
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum E {
    Invalid(i64),
}

impl std::fmt::Display for E {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl From<Invalid<i64, ()>> for E {
    fn from(e: Invalid<i64, ()>) -> Self {
        E::Invalid(e.item)
    }
}

type Item = Result<i64, E>;
type Boxed = Pin<Box<dyn Stream<Item = Item> + Send>>;

#[derive(Debug, Clone)]
enum Op {
    MapAdd(i64),
    FilterNotMultiple(i64),
    Take(usize),
    /// Batch of `n`, each batch becomes `Ok(sum)` or its first error.
    BatchSum(usize),
    /// `Ok(x)` with `x % m == r` becomes `Err(Invalid(x))`.
    ValidateOk(i64, i64),
    Stop,
    Resume,
    /// Errors become `Ok(-1)`.
    Replace,
    /// On an error, continue with one item `Ok(1000 + delivered)`.
    Recover,
    Prefetch(usize),
    Interleave,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (-5i64..5).prop_map(Op::MapAdd),
        (2i64..5).prop_map(Op::FilterNotMultiple),
        (0usize..30).prop_map(Op::Take),
        (1usize..5).prop_map(Op::BatchSum),
        ((2i64..6), (0i64..6)).prop_map(|(m, r)| Op::ValidateOk(m, r % m)),
        Just(Op::Stop),
        Just(Op::Resume),
        Just(Op::Replace),
        Just(Op::Recover),
        (1usize..6).prop_map(Op::Prefetch),
        Just(Op::Interleave),
    ]
}

/// The source stage: values divisible by 7 are invalid.
fn source_model(v: &[u8]) -> Vec<Item> {
    v.iter()
        .map(|&x| {
            let x = i64::from(x);
            if x % 7 == 0 {
                Err(E::Invalid(x))
            } else {
                Ok(x)
            }
        })
        .collect()
}

fn source_stream(v: Vec<u8>) -> Boxed {
    Box::pin(
        stream::iter(v.into_iter().map(i64::from))
            .validate(|x: &i64| if x % 7 == 0 { Err(()) } else { Ok(()) })
            .map(|r| r.map_err(E::from)),
    )
}

fn model(op: &Op, v: Vec<Item>) -> Vec<Item> {
    match *op {
        Op::MapAdd(k) => v.into_iter().map(|r| r.map(|x| x + k)).collect(),
        Op::FilterNotMultiple(m) => v
            .into_iter()
            .filter(|r| !matches!(r, Ok(x) if x % m == 0))
            .collect(),
        Op::Take(n) => v.into_iter().take(n).collect(),
        Op::BatchSum(n) => v.chunks(n).map(summarise).collect(),
        Op::ValidateOk(m, r) => v
            .into_iter()
            .map(|it| match it {
                Ok(x) if x.rem_euclid(m) == r => Err(E::Invalid(x)),
                other => other,
            })
            .collect(),
        Op::Stop => {
            let cut = v.iter().position(Result::is_err).map_or(v.len(), |k| k + 1);
            v[..cut].to_vec()
        }
        Op::Resume => v.into_iter().filter(Result::is_ok).collect(),
        Op::Replace => v.into_iter().map(|r| r.or(Ok(-1))).collect(),
        Op::Recover => match v.iter().position(Result::is_err) {
            None => v,
            Some(k) => {
                let mut out = v[..k].to_vec();
                out.push(Ok(1000 + k as i64));
                out
            }
        },
        Op::Prefetch(_) | Op::Interleave => v,
    }
}

fn summarise(batch: &[Item]) -> Item {
    match batch.iter().find(|r| r.is_err()) {
        Some(e) => e.clone(),
        None => Ok(batch.iter().map(|r| *r.as_ref().unwrap()).sum()),
    }
}

fn apply(op: &Op, s: Boxed) -> Boxed {
    match *op {
        Op::MapAdd(k) => Box::pin(s.map(move |r| r.map(|x| x + k))),
        Op::FilterNotMultiple(m) => {
            Box::pin(s.filter(move |r| std::future::ready(!matches!(r, Ok(x) if x % m == 0))))
        }
        Op::Take(n) => Box::pin(s.take(n)),
        Op::BatchSum(n) => Box::pin(s.batch(n).map(|b| summarise(&b))),
        Op::ValidateOk(m, r) => Box::pin(s.validate_ok(move |x: &i64| {
            if x.rem_euclid(m) == r {
                Err(())
            } else {
                Ok(())
            }
        })),
        Op::Stop => Box::pin(s.on_error(Supervision::Stop)),
        Op::Resume => Box::pin(s.on_error(Supervision::Resume)),
        Op::Replace => Box::pin(s.on_error(Supervision::replace(|_e: E| -1))),
        Op::Recover => Box::pin(s.recover_with(|_e, cp: &Checkpoint<i64>| {
            Some(stream::iter([Ok(1000 + cp.delivered as i64)]))
        })),
        Op::Prefetch(n) => Box::pin(s.prefetch(n)),
        Op::Interleave => Box::pin(s.interleave_pending()),
    }
}

fn run(source: Vec<u8>, ops: &[Op]) -> Vec<Item> {
    let mut s = source_stream(source);
    for op in ops {
        s = apply(op, s);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(consume(s))
}

fn cases() -> u32 {
    reliability::scaled(256, 4) as u32
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_pipelines_match_the_list_model(
        source in prop::collection::vec(any::<u8>(), 0..40),
        ops in prop::collection::vec(op(), 0..8),
    ) {
        let mut expected = source_model(&source);
        for op in &ops {
            expected = model(op, expected);
        }
        prop_assert_eq!(run(source, &ops), expected);
    }

    /// `Stage` values wrap exactly like the methods (tower's `Layer` shape).
    #[test]
    fn stage_values_match_methods(source in prop::collection::vec(any::<u8>(), 0..40), n in 1usize..6) {
        use millrace::wrappers::{BatchStage, SuperviseStage};
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let by_method: Vec<Vec<Item>> = rt.block_on(consume(source_stream(source.clone()).on_error(Supervision::Resume).batch(n)));
        let by_stage: Vec<Vec<Item>> = rt.block_on(consume(
            source_stream(source).wrap(SuperviseStage::new(Supervision::Resume)).wrap(BatchStage::new(n)),
        ));
        prop_assert_eq!(by_method, by_stage);
    }
}
