#!/usr/bin/env bash
# A CI-sized miri run: the core crate's unit tests plus the facade suites that exercise every
# stage's poll/wake/drop paths (conformance, auto traits, macro stages, fault injection, properties,
# concurrency faults, time), with seed and case counts shrunk under `cfg(miri)`.
#
# millrace has no `unsafe` code today: `[workspace.lints] unsafe_code = "forbid"` rejects it in
# every crate. miri therefore checks the `unsafe` of our dependencies as our stages drive them
# (tokio's task and timer internals, futures' wakers, pin-project-lite projections), leaks
# (every test must end with no task and no allocation left), and data races in the
# multi-threaded paths. If a module with `unsafe` is ever added, its tests belong here.
#
# When the nightly toolchain has no miri, this tries to install it; if that fails too (no
# network, no rustup), it prints `miri: SKIPPED (reason)` and exits 0, so that CI shows the
# skip without failing.
#
# Usage: scripts/miri.sh              # the CI subset (~3 min here; scripts/test.sh runs it)
#        scripts/miri.sh --full       # every suite listed below (~12 min here)
#        scripts/miri.sh --test time  # any other cargo-test arguments replace the subset
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
    printf '\n==> miri: SKIPPED (%s)\n' "$*"
    exit 0
}

if ! command -v rustup >/dev/null 2>&1; then
    skip "rustup is not installed"
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "==> miri is not installed for nightly; trying: rustup component add --toolchain nightly miri rust-src"
    if ! rustup toolchain list | grep -q '^nightly'; then
        rustup toolchain install nightly --profile minimal >/dev/null 2>&1 \
            || skip "no nightly toolchain and it could not be installed"
    fi
    rustup component add --toolchain nightly miri rust-src >/dev/null 2>&1 \
        || skip "the miri component could not be installed for nightly"
    cargo +nightly miri --version >/dev/null 2>&1 \
        || skip "cargo +nightly miri does not run after installing the component"
fi
echo "==> $(cargo +nightly miri --version)"
cargo +nightly miri setup >/dev/null

# - isolation off: tokio reads the clock and the IO driver makes epoll/eventfd calls;
# - paused tokio time keeps the time-based suites exact and quick even under miri;
# - a fixed seed keeps miri's scheduling and the (shrunk) proptest runs reproducible.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation -Zmiri-seed=1}"
# proptest: no regression files written from miri, few cases (the suites shrink too).
export PROPTEST_CASES="${PROPTEST_CASES:-4}"

start=$(date +%s)
if [ "$#" -eq 0 ]; then
    # CI subset: the core unit tests, the exact-time suite (timers, retry schedules, rate
    # limits, deadlines under paused time), the concurrency faults (spawned tasks, blocking
    # threads, panics across tasks, a multi-threaded race) and the auto-trait checks.
    echo "==> miri (CI subset): millrace-core unit tests"
    cargo +nightly miri test -p millrace-core --lib
    echo "==> miri (CI subset): tests/time.rs tests/concurrency_faults.rs tests/auto_traits.rs"
    cargo +nightly miri test -p millrace --test time --test concurrency_faults --test auto_traits
elif [ "$1" != "--full" ]; then
    cargo +nightly miri test -p millrace "$@"
else
    echo "==> miri: millrace-core unit tests"
    cargo +nightly miri test -p millrace-core --lib
    # The conformance suite in full takes ~15 min under miri (run it with
    # `scripts/miri.sh --test conformance`); CI takes the flow and concurrency stages (prefetch,
    # timers, map_concurrent's tasks, map_blocking's threads, rate_limit) plus the no-runtime
    # and stale-waker checks.
    echo "==> miri: tests/conformance.rs (subset)"
    cargo +nightly miri test -p millrace --test conformance -- \
        flow_stages concurrency_stages construct_and_drop counting_wakers
    for suite in auto_traits macro_stages fault_injection properties concurrency_faults time; do
        echo "==> miri: tests/$suite.rs"
        cargo +nightly miri test -p millrace --test "$suite"
    done
fi
echo "==> miri: done in $(( $(date +%s) - start )) s"
