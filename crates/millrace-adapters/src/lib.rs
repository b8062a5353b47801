//! Ready sources and sinks for millrace pipelines, each behind a cargo feature.
//!
//! The adapters arrive feature by feature (`fs`, `json`, `http`, `sql`, `redis`, `progress`);
//! today this crate only reserves the names so the facade's features are stable.
