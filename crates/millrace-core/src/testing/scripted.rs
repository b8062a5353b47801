use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use tokio::time::Sleep;

/// One step of a [`scripted`] source.
///
/// ```
/// use millrace::testing::Step;
///
/// let ok: Step<Result<u8, &str>> = Step::ok(1);
/// let err: Step<Result<u8, &str>> = Step::err("down");
/// assert!(matches!(ok, Step::Item(Ok(1))));
/// assert!(matches!(err, Step::Item(Err("down"))));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Step<T> {
    /// Yield this item.
    Item(T),
    /// Wait this long on tokio time before the next step.
    Delay(Duration),
    /// Return `Pending` once, waking the task at once (a spurious, well-behaved `Pending`).
    Pending,
    /// Panic with this message when polled.
    Panic(&'static str),
    /// Return `Pending` forever without arranging a wake-up: a stalled source.
    Hang,
}

impl<T, E> Step<Result<T, E>> {
    /// `Step::Item(Ok(item))`.
    pub fn ok(item: T) -> Self {
        Step::Item(Ok(item))
    }

    /// `Step::Item(Err(error))`.
    pub fn err(error: E) -> Self {
        Step::Item(Err(error))
    }
}

/// A source that plays a script of [`Step`]s; see [`scripted`].
#[must_use = "streams do nothing unless polled"]
pub struct Scripted<T> {
    steps: VecDeque<Step<T>>,
    // Boxed once per `Delay` step: test code, never a hot path.
    sleep: Option<Pin<Box<Sleep>>>,
    // `conformance` asks for a spurious `Pending` before each item; this flips per item.
    pended: bool,
    done: bool,
}

impl<T> fmt::Debug for Scripted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scripted")
            .field("steps_left", &self.steps.len())
            .field("sleeping", &self.sleep.is_some())
            .field("done", &self.done)
            .finish()
    }
}

/// A source that plays `steps` in order, then ends.
///
/// `Scripted` is `Unpin`, `Send` when `T` is, and a [`FusedStream`].
///
/// ```
/// use millrace::testing::{scripted, Step};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let s = scripted([Step::Item('a'), Step::Pending, Step::Item('b')]);
/// assert_eq!(s.collect::<Vec<_>>().await, ['a', 'b']);
/// # }
/// ```
pub fn scripted<T>(steps: impl IntoIterator<Item = Step<T>>) -> Scripted<T> {
    Scripted {
        steps: steps.into_iter().collect(),
        sleep: None,
        pended: false,
        done: false,
    }
}

impl<T> Unpin for Scripted<T> {}

impl<T> Stream for Scripted<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            match this.steps.pop_front() {
                None => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Some(Step::Item(item)) => {
                    if super::conformance::interleave_sources() && !this.pended {
                        this.pended = true;
                        this.steps.push_front(Step::Item(item));
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    this.pended = false;
                    return Poll::Ready(Some(item));
                }
                Some(Step::Delay(d)) => this.sleep = Some(Box::pin(tokio::time::sleep(d))),
                Some(Step::Pending) => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Some(Step::Panic(msg)) => {
                    this.done = true;
                    panic!("{msg}");
                }
                Some(Step::Hang) => {
                    this.steps.push_front(Step::Hang);
                    return Poll::Pending;
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let total = self
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Item(_)))
            .count();
        // Items after a panic or a hang may never come.
        let sure = self
            .steps
            .iter()
            .take_while(|s| !matches!(s, Step::Panic(_) | Step::Hang))
            .filter(|s| matches!(s, Step::Item(_)))
            .count();
        (sure, Some(total))
    }
}

impl<T> FusedStream for Scripted<T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

use std::future::Future as _;
