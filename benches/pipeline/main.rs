//! Side-by-side pipeline benchmarks for millrace (see `shared/design/PERFORMANCE.md`).
//!
//! One binary, every variant, selected on the command line so that
//! `valgrind --tool=callgrind` can count one variant at one `N`:
//!
//! ```text
//! pipeline --list                     name<TAB>group<TAB>target, one line per variant
//! pipeline check <N>                  every pipeline variant must give the reference sum
//! pipeline <variant> <N> [reps]       run a pipeline variant; prints the result and ns/item per rep
//! pipeline io <variant> <c>           I/O-bound: 1,000 items x 10 ms sleep at concurrency c (wall-clock)
//! pipeline rss <variant> <N>          memory: run once, print peak RSS (VmHWM) in kB
//! ```
//!
//! `scripts/bench.sh` drives all of this and prints the table. The workload of every
//! pipeline variant is `0..N -> map(x*3) -> filter(even) -> map(x+1) -> sum` over `u64`.
//!
//! To add a variant, add one row to a registry table; millrace variants go in `millrace.rs`.

/// The sink of every `fold` variant: `fold(0, |acc, x| ready(acc + x))`, as a future.
///
/// A macro, not a function, on purpose: each use defines its own closure, so each variant gets
/// its own monomorphized `Fold::poll`. A shared generic instance is called from several
/// variants, LLVM's inliner then decides differently, and *other* rows move (measured: adding a
/// second caller of a shared `async fn fold_sum` took `result_bare` from 7 to 19.5 instr/item).
macro_rules! fold_sum {
    ($stream:expr) => {
        ::futures::StreamExt::fold($stream, 0u64, |acc, x| ::std::future::ready(acc + x))
    };
}

mod async_stream;
mod buffered;
mod channels;
mod combinators;
mod handwritten;
mod io;
mod memory;
mod millrace;
mod registry;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use registry::{Group, Variant};

/// The sum every pipeline variant must produce for `0..n`, by a plain loop.
fn reference(n: u64) -> u64 {
    (0..n)
        .map(|x| x * 3)
        .filter(|x| x % 2 == 0)
        .map(|x| x + 1)
        .sum()
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: pipeline --list | check <N> | <variant> <N> [reps] | io <variant> <c> | rss <variant> <N>"
    );
    ExitCode::from(2)
}

fn parse<T: std::str::FromStr>(arg: Option<&String>) -> Option<T> {
    arg.and_then(|a| a.replace('_', "").parse().ok())
}

fn find(name: &str, group: Group) -> Option<&'static Variant> {
    registry::all().find(|v| v.name == name && v.group == group)
}

fn main() -> ExitCode {
    // `cargo bench` appends `--bench`; ignore it (and any other libtest-style flag).
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("--list") => {
            for v in registry::all() {
                println!("{}\t{}\t{}", v.name, v.group.as_str(), v.target.spec());
            }
            ExitCode::SUCCESS
        }
        Some("check") => {
            let Some(n) = parse::<u64>(args.get(1)) else {
                return usage();
            };
            let want = reference(n);
            let mut ok = true;
            for v in registry::all().filter(|v| v.group == Group::Pipeline) {
                let got = (v.run)(n);
                let verdict = if got == want { "ok" } else { "WRONG" };
                ok &= got == want;
                println!("{:<28} {got:>16} {verdict}", v.name);
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some("io") => {
            let (Some(v), Some(c)) = (
                args.get(1).and_then(|n| find(n, Group::Io)),
                parse::<usize>(args.get(2)).filter(|&c| c > 0),
            ) else {
                return usage();
            };
            io::measure(v, c);
            ExitCode::SUCCESS
        }
        Some("rss") => {
            let (Some(v), Some(n)) = (
                args.get(1).and_then(|n| find(n, Group::Memory)),
                parse::<u64>(args.get(2)),
            ) else {
                return usage();
            };
            let out = (v.run)(black_box(n));
            black_box(out);
            println!("result={out} vmhwm_kb={}", memory::vm_hwm_kb());
            ExitCode::SUCCESS
        }
        Some(name) => {
            let (Some(v), Some(n)) = (find(name, Group::Pipeline), parse::<u64>(args.get(1)))
            else {
                return usage();
            };
            let reps = parse::<usize>(args.get(2)).unwrap_or(1);
            let mut ns = Vec::with_capacity(reps);
            let mut out = 0;
            if reps > 1 {
                black_box((v.run)(black_box(n))); // warm-up, not counted
            }
            for _ in 0..reps {
                let t = Instant::now();
                out = black_box((v.run)(black_box(n)));
                ns.push(per_item(t.elapsed(), n));
            }
            let ns: Vec<String> = ns.iter().map(|x| format!("{x:.3}")).collect();
            println!("result={out} ns_per_item={}", ns.join(","));
            ExitCode::SUCCESS
        }
        None => usage(),
    }
}

fn per_item(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n.max(1) as f64
}
