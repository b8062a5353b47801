//! Encoding: values into lines, each error item with its item number.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::stream::{FusedStream, Stream};
use millrace_core::Stage;
use pin_project_lite::pin_project;
use serde::Serialize;

/// An error item of [`encode`] / [`encode_items`]: the value could not be serialized.
///
/// ```
/// use millrace::adapters::json;
/// use futures::{stream, StreamExt};
/// use std::collections::HashMap;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let bad: HashMap<Vec<u8>, u8> = HashMap::from([(vec![1], 1)]);
/// let out: Vec<_> = json::encode_items(stream::iter([bad])).collect().await;
/// let err = out[0].as_ref().unwrap_err();
/// assert_eq!(err.item, 0);
/// assert!(err.to_string().starts_with("cannot encode item #0 as JSON: key must be a string"));
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct EncodeError {
    /// The position (0-based) of the item in the stream.
    pub item: u64,
    /// serde_json's error.
    pub source: serde_json::Error,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot encode item #{} as JSON: {}; check its `Serialize` impl (JSON map keys must \
             be strings)",
            self.item, self.source
        )
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The stage that turns every `Serialize` item into one line of compact JSON (no newline
/// inside, none at the end: pair it with [`write_lines_atomic`](crate::fs::write_lines_atomic)).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::adapters::json;
/// use futures::{stream, TryStreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let lines: Vec<String> = stream::iter([(1, "a"), (2, "b")])
///     .wrap(json::encode())
///     .try_collect()
///     .await
///     .unwrap();
/// assert_eq!(lines, [r#"[1,"a"]"#, r#"[2,"b"]"#]);
/// # }
/// ```
pub fn encode() -> EncodeStage {
    EncodeStage { _private: () }
}

/// Turns every item of `items` into one line of compact JSON; see [`encode`].
///
/// ```
/// use millrace::adapters::json;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut lines = json::encode_items(stream::iter(["x\ny"]));
/// assert_eq!(lines.next().await.unwrap().unwrap(), r#""x\ny""#);
/// # }
/// ```
pub fn encode_items<S>(items: S) -> Encode<S>
where
    S: Stream,
    S::Item: Serialize,
{
    Encode {
        upstream: items,
        position: 0,
    }
}

/// A [`Stage`] that encodes items as JSON lines; built by [`encode`].
///
/// ```
/// use millrace::prelude::*;
/// use millrace::adapters::json;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stage: json::EncodeStage = json::encode();
/// let n = stream::iter([1, 2, 3]).wrap(stage).count().await;
/// assert_eq!(n, 3);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct EncodeStage {
    _private: (),
}

impl<S> Stage<S> for EncodeStage
where
    S: Stream,
    S::Item: Serialize,
{
    type Output = Encode<S>;

    fn wrap(self, upstream: S) -> Encode<S> {
        encode_items(upstream)
    }
}

pin_project! {
    /// Stream for [`encode_items`] and the [`encode`] stage; `get_ref`, `get_mut`,
    /// `get_pin_mut` and `into_inner` reach the upstream items.
    ///
    /// ```
    /// use millrace::adapters::json;
    /// use futures::{stream, Stream};
    ///
    /// let mut e = json::encode_items(stream::iter([1, 2]));
    /// assert_eq!(e.get_ref().size_hint(), (2, Some(2)));
    /// assert_eq!(e.get_mut().size_hint(), (2, Some(2)));
    /// assert_eq!(e.into_inner().size_hint(), (2, Some(2)));
    /// ```
    #[must_use = "streams do nothing unless polled"]
    #[derive(Debug)]
    pub struct Encode<S> {
        #[pin]
        upstream: S,
        position: u64,
    }
}

impl<S> Encode<S> {
    millrace_core::__private::delegate_access_inner!(upstream, S);
}

impl<S> Stream for Encode<S>
where
    S: Stream,
    S::Item: Serialize,
{
    type Item = Result<String, EncodeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let Some(item) = ready!(this.upstream.poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let position = *this.position;
        *this.position += 1;
        Poll::Ready(Some(serde_json::to_string(&item).map_err(|source| {
            EncodeError {
                item: position,
                source,
            }
        })))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.upstream.size_hint()
    }
}

impl<S> FusedStream for Encode<S>
where
    S: FusedStream,
    S::Item: Serialize,
{
    fn is_terminated(&self) -> bool {
        self.upstream.is_terminated()
    }
}
