//! Newline-delimited JSON (JSON Lines): decode a stream of [`Line`](crate::fs::Line)s into values, encode values
//! into lines. Feature `json` (which enables `fs`).
//!
//! Both come as a function that wraps a stream ([`decode_lines`], [`encode_items`]) and as a
//! [`Stage`](millrace_core::Stage) value ([`decode`], [`encode`]) for `.wrap(…)` and reusable pipeline segments. The
//! wrapper types are plain `map`-like streams with no buffering of their own.
//!
//! ```
//! use millrace::prelude::*;
//! use millrace::adapters::{fs, json};
//! use futures::StreamExt;
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize, PartialEq)]
//! struct Checkout { book: u32, member: String }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("log.jsonl");
//! std::fs::write(&path, "{\"book\":1,\"member\":\"ada\"}\n{\"book\":\n{\"book\":2,\"member\":\"bo\"}\n").unwrap();
//!
//! let (good, bad): (Vec<_>, Vec<_>) = fs::lines(&path)
//!     .wrap(json::decode::<Checkout>())
//!     .collect::<Vec<_>>()
//!     .await
//!     .into_iter()
//!     .partition(Result::is_ok);
//! assert_eq!(good.len(), 2);
//! assert_eq!(bad[0].as_ref().unwrap_err().line(), Some(2));
//! # }
//! ```

mod decode;
mod encode;

pub use self::decode::{
    Decode, DecodeStage, Decoded, JsonLineError, SNIPPET_CHARS, decode, decode_line, decode_lines,
    decode_tracked,
};
pub use self::encode::{Encode, EncodeError, EncodeStage, encode, encode_items};
