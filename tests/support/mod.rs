//! Helpers shared by several facade test files.

pub(crate) mod capture;
