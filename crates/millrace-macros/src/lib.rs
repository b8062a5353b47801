//! Procedural macros of millrace: `#[stream_stage]` and the engine of `pipeline!`.
//!
//! Users depend on the `millrace` crate, which re-exports them; generated code refers to
//! `::millrace::__private` only (or to the path given with `crate = path`), never to this crate
//! or to a dependency by its own name.
//!
//! Layout, by pass: `stream_stage/{args, signature, body, expand}.rs`,
//! `pipeline/{parse, expand}.rs`, and `error.rs` (the shared `parse_value`/`set_once` helpers,
//! keywords, and the one place where errors become `compile_error!`). Set
//! `MILLRACE_MACROS_DEBUG=1` while compiling to print every expansion to stderr.
#![doc(test(attr(deny(warnings))))]

mod error;
mod pipeline;
mod stream_stage;

use proc_macro::TokenStream;

/// Turns an `async fn` written like a generator into a named `Stream` struct.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// #[derive(Debug, PartialEq)]
/// struct User { name: String, complete: bool }
///
/// /// Marks users whose name is longer than `min_len`.
/// #[stream_stage(item = User)]
/// async fn enrich(users: impl Stream<Item = User> + Send, min_len: usize) {
///     #[for_await]
///     for mut user in users {
///         user.complete = user.name.len() > min_len;
///         yield_!(user);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let users = stream::iter(["ada", "grace"]).map(|n| User { name: n.into(), complete: false });
/// let out: Vec<bool> = enrich(users, 3).map(|u| u.complete).collect().await;
/// assert_eq!(out, [false, true]);
/// # }
/// ```
///
/// The attribute generates `pub struct Enrich<S>` (UpperCamelCase of the function name; the
/// visibility follows the function) implementing `Stream<Item = User>`, `FusedStream` and
/// `Debug`, and keeps `fn enrich(users: S, min_len: usize) -> Enrich<S>` as its constructor.
///
/// # The body
/// - `yield_!(value)` emits an item; `yield_all!(stream)` emits every item of a stream.
/// - `#[for_await] for x in stream { … }` iterates a stream.
/// - `return;` ends the stream; `return value` is rejected (emit it with `yield_!` first).
/// - The first parameter typed `impl Stream<…>` (or a generic `S: Stream<…>`) is the
///   *upstream*; the others are configuration. Without a stream parameter the function is a
///   *source* stage. `impl Trait` arguments become generic parameters of the struct (the
///   upstream's is named `S`, others after their parameter in UpperCamelCase).
///
/// # Arguments
/// - `item = T` (required): the item type.
/// - `error = E`: items become `Result<T, E>`; `yield_!(x)` emits `Ok(x)` and `?` emits the
///   `Err` (converted with `From`) and ends the stream.
/// - `name = Ident`: the struct's name.
/// - `local`: no `Send` requirement (for `!Send` upstreams or bodies). Without it the upstream
///   must be `Send` (and, on the general path, every generic parameter).
/// - `crate = path`: where millrace is, when it is re-exported under another name.
///
/// ```
/// use millrace::prelude::*;
/// use futures::StreamExt;
///
/// #[derive(Debug, PartialEq)]
/// struct Bad(u32);
///
/// /// A source stage (no upstream) that fails on a bad page.
/// #[stream_stage(item = u32, error = Bad)]
/// async fn pages(last: u32) {
///     for page in 0..=last {
///         let checked = if page == 2 { Err(Bad(page)) } else { Ok(page) };
///         yield_!(checked?);
///         tokio::task::yield_now().await;
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let out: Vec<Result<u32, Bad>> = pages(5).collect().await;
/// assert_eq!(out, [Ok(0), Ok(1), Err(Bad(2))]);
/// # }
/// ```
///
/// `local` and `name`: a `!Send` upstream, and a struct named `Unwrapped` instead of `UnwrapAll`.
///
/// ```
/// use std::rc::Rc;
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// #[stream_stage(item = u32, local, name = Unwrapped)]
/// async fn unwrap_all(numbers: impl Stream<Item = Rc<u32>>) {
///     #[for_await]
///     for n in numbers {
///         yield_!(*n);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s: Unwrapped<_> = unwrap_all(stream::iter(vec![Rc::new(1), Rc::new(2)]));
/// assert_eq!(s.collect::<Vec<u32>>().await, [1, 2]);
/// # }
/// ```
///
/// # Two lowerings
/// **Fast path.** A body that is exactly one `#[for_await] for pat in upstream { … }` loop,
/// with no `.await`, `?`, `yield_all!` or nested `#[for_await]` inside, where every `yield_!`
/// ends its iteration (it is the last thing done, through `if`/`match`/blocks, or is followed by
/// `continue`), is lowered to a hand-written-style `poll_next`: the struct holds the pinned
/// upstream and the configuration values, and `poll_next` polls the upstream, runs the loop body
/// and returns at the `yield_!`. No boxing, no yielder, no allocation. `break` and `return;` end
/// the stream. Configuration parameters are used in place (the body sees them as `*field`), so
/// state kept in a `mut` parameter persists across items, exactly as in the generator.
///
/// **General path.** Any other body runs as an `async-stream` generator **boxed once per
/// stream** (not per item), because the type of an async block cannot be named in a struct
/// field on stable Rust. Both lowerings behave the same; bodies that yield several times per
/// item take the general path.
///
/// The upstream and configuration values are dropped as soon as the stream ends, on both paths.
#[proc_macro_attribute]
pub fn stream_stage(attr: TokenStream, item: TokenStream) -> TokenStream {
    stream_stage::stream_stage(attr.into(), item.into()).into()
}

/// The engine of `millrace::pipeline!`; use that macro, which passes its own path as
/// `crate = $crate;` so the expansion works through re-exports.
#[doc(hidden)]
#[proc_macro]
pub fn pipeline_impl(input: TokenStream) -> TokenStream {
    pipeline::pipeline(input.into()).into()
}
