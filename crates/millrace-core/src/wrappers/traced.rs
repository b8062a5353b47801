//! [`Traced`]: the tracing layer of a metered stage, built by
//! [`Metered::traced`](crate::wrappers::Metered::traced).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use super::{Metered, TimedStage};
use crate::Stage;
use crate::metrics::{Observable, StageMetrics};

pin_project! {
    /// Stream for the [`traced`](Metered::traced) method of [`Metered`]: enters a `tracing`
    /// span `stage` (field `stage = name`, level `TRACE`) around each poll of its upstream, so
    /// that the events of the wrappers inside carry the stage's name.
    ///
    /// The span is built once, by [`new`](Self::new): when no subscriber wants it then, it is
    /// dropped and each poll pays one branch. A layer of its own so that a stage that only
    /// counts carries no span.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Traced;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = Traced::new(stream::iter([Ok(1), Err("bad")]).on_error(Supervision::Resume), "parse");
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1)]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Traced<S> {
        #[pin]
        stream: S,
        // Only when a subscriber wanted the span when it was built.
        span: Option<tracing::Span>,
    }
}

impl<S: fmt::Debug> fmt::Debug for Traced<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Traced")
            .field("stream", &self.stream)
            .field("span", &self.span)
            .finish()
    }
}

impl<S> Traced<S> {
    /// Enters a span naming the stage `name` around each poll of `stream`; usually built by
    /// [`Metered::traced`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Traced;
    /// use futures::stream;
    ///
    /// let s = Traced::new(stream::iter([1]), "ones");
    /// assert_eq!(s.get_ref().size_hint(), (1, Some(1)));
    /// ```
    pub fn new(stream: S, name: &str) -> Self {
        let span = tracing::trace_span!("stage", stage = %name);
        Traced {
            stream,
            span: (!span.is_disabled()).then_some(span),
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S: Stream> Stream for Traced<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let _entered = this.span.as_ref().map(tracing::Span::enter);
        this.stream.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S: FusedStream> FusedStream for Traced<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

/// Passes on the counters of the wrapper it traces, so that
/// [`with_events`](Metered::with_events) works after [`traced`](Metered::traced).
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter([Ok(1), Err("bad")])
///     .on_error(Supervision::Resume)
///     .metered("parse")
///     .traced()
///     .with_events();
/// let m = s.metrics();
/// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1)]);
/// assert_eq!(m.snapshot().skipped, Some(1));
/// # }
/// ```
impl<S: Observable> Observable for Traced<S> {
    fn observe_into(&self, stage: &StageMetrics) {
        self.stream.observe_into(stage);
    }
}

/// A [`Stage`] that adds [`traced`](Metered::traced) to the metered stage another stage
/// builds; made by [`MeteredStage::traced`](super::MeteredStage::traced).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::MeteredStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter([1, 2]).wrap(MeteredStage::new("t").traced());
/// assert_eq!(s.collect::<Vec<i32>>().await, [1, 2]);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TracedStage<St> {
    stage: St,
}

impl<St> TracedStage<St> {
    /// Traces the metered stream that `stage` builds.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::{MeteredStage, TracedStage};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([1]).wrap(TracedStage::new(MeteredStage::new("t")));
    /// assert_eq!(s.collect::<Vec<i32>>().await, [1]);
    /// # }
    /// ```
    pub fn new(stage: St) -> Self {
        TracedStage { stage }
    }

    /// Also measures time; see [`Metered::with_timing`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MeteredStage;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([1]).wrap(MeteredStage::new("t").traced().with_timing());
    /// let m = s.metrics();
    /// let _: Vec<i32> = s.collect().await;
    /// assert!(m.snapshot().busy.is_some());
    /// # }
    /// ```
    pub fn with_timing(self) -> TimedStage<Self> {
        TimedStage::new(self)
    }
}

impl<S, St, S2, K> Stage<S> for TracedStage<St>
where
    St: Stage<S, Output = Metered<S2, K>>,
{
    type Output = Metered<Traced<S2>, K>;

    fn wrap(self, upstream: S) -> Self::Output {
        self.stage.wrap(upstream).traced()
    }
}
