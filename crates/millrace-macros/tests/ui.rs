//! Compile-fail and compile-pass cases of `#[stream_stage]` and `pipeline!` (the cases live in
//! the workspace's `tests/ui/`), run by trybuild on the pinned toolchain
//! (`rust-toolchain.toml`) so the `.stderr` snapshots do not drift.
//!
//! The runner lives in this crate rather than in the facade because trybuild builds every case
//! against the dev-dependencies of the crate that runs it: here that is only `millrace`,
//! `tokio` and `futures`, not the facade's heavy adapter dev-dependencies (sqlx, reqwest, axum),
//! which made the suite several minutes slower and made rustc's type-name trimming in the
//! snapshots depend on what else was linked.
//!
//! Because the cases sit outside this crate, trybuild prints their paths as `$WORKSPACE/...`
//! without line numbers; the snapshots still show the source line and the carets under the
//! exact tokens each error is spanned on.
//!
//! After an intended change of a message, update the snapshots with
//! `TRYBUILD=overwrite cargo test -p millrace-macros --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("../../tests/ui/stream_stage/fail/*.rs");
    t.compile_fail("../../tests/ui/pipeline/fail/*.rs");
    t.pass("../../tests/ui/stream_stage/pass/*.rs");
    t.pass("../../tests/ui/pipeline/pass/*.rs");
}
