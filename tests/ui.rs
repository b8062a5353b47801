//! Compile-fail and compile-pass cases of `#[stream_stage]` and `pipeline!`, run by trybuild
//! on the pinned toolchain (`rust-toolchain.toml`), so the `.stderr` snapshots do not drift.
//!
//! After an intended change of a message, update the snapshots with
//! `TRYBUILD=overwrite cargo test -p millrace --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/stream_stage/fail/*.rs");
    t.compile_fail("tests/ui/pipeline/fail/*.rs");
    t.pass("tests/ui/stream_stage/pass/*.rs");
    t.pass("tests/ui/pipeline/pass/*.rs");
}
