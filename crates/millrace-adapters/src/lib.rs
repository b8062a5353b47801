//! Ready sources and sinks for millrace pipelines, each behind a cargo feature of the same
//! name (re-exported by the `millrace` facade as `millrace::adapters`; `full` enables all).
//!
//! | feature | what |
//! |---|---|
//! | `fs` | async line source with line numbers in errors, atomic line sink |
//! | `json` | newline-delimited JSON decode/encode stages |
//! | `http` | paginated JSON source and concurrent fetch stage on reqwest (rustls) |
//! | `sql` | cursor source and batched-insert sink on sqlx (SQLite embedded, PostgreSQL server) |
//! | `redis` | Redis Streams consumer-group source and XADD sink |
//! | `progress` | live per-stage progress on indicatif |
#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "fs")]
pub mod fs;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "json")]
pub mod json;
#[cfg(feature = "progress")]
pub mod progress;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sql")]
pub mod sql;
