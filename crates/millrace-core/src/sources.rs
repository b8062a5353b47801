//! Free constructors of source stages: streams that are built from a factory or a resource
//! rather than from an upstream stream. Each lives in the file of the wrapper it builds.

pub use crate::wrappers::{paginate, paginate_from, restartable, scoped};
