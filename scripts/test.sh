#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh machine: installs what it needs, then
# fmt check, clippy (-D warnings), every test (unit, integration, doc, trybuild) and docs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "test services (installed from apt when missing, on free 127.0.0.1 ports)"
# shellcheck source=services.sh
source scripts/services.sh
trap services_stop EXIT
start_postgres
start_redis

step "cargo test (all features, including doc tests and trybuild)"
cargo test --workspace --all-features

step "miri (CI subset; visibly skipped when nightly miri cannot be had)"
bash scripts/miri.sh

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps

step "done"
