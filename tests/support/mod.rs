//! Helpers shared by the facade's integration tests; each test file includes this folder with
//! `mod support;` and uses the part it needs (`use support::capture;`,
//! `use support::reliability;`).
//!
//! Not a test target of its own. No test file uses every helper, hence the `dead_code`
//! allowance on each module.

#[allow(dead_code)]
pub(crate) mod capture;
#[allow(dead_code)]
pub(crate) mod reliability;
