//! [`Scoped`]: a stream bound to a resource that is opened first and closed exactly once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

/// A stream that lives inside a resource's scope: Rust's form of Python's `async with` +
/// `async for`.
///
/// `open` is awaited on the first poll; `body(&resource)` builds the stream (it cannot borrow
/// the resource, so it clones what it needs, e.g. a pool handle); when the body ends,
/// `close(resource)` is awaited **inside `poll_next`, before `None` is returned**.
///
/// - **`close` runs exactly once** whenever `open` succeeded: on completion, on an error from
///   the body and on early drop. The resource and `close` are each moved out once, so a second
///   run is impossible.
/// - **Errors end the scope.** The first `Err` from the body is held back, the body is
///   dropped, `close` is awaited, then the `Err` is yielded and the stream ends — like an
///   exception leaving `async with` after `__aexit__`. A consumer that stops at the first
///   error (`try_collect`, `?`) thus sees the resource already closed.
/// - **An `open` error** is yielded as `Err` and the stream ends; `close` is not called
///   (there is no resource).
/// - **A panic** in `open`, the body or `close` reaches the consumer (it is polled inline).
///   After a panic in the body, dropping the stream still closes the resource (see below).
///
/// # Early exit: close and await
///
/// A consumer that stops early (`break`, `take`) and needs the resource released **before it
/// goes on** awaits [`Scoped::close`] (Python's `aclosing`): it drops the body, runs `close`
/// and waits for it; the drop path then has nothing left to do, so `close` still runs exactly
/// once. Without it, the close runs in the background as described next.
///
/// # Early drop
///
/// The body stream is dropped first, then `close` is called and its future (or the close
/// already in progress) is handed to the tokio runtime of the dropping thread
/// (`Handle::try_current()` + `spawn`); this needs `close`'s future to be `Send + 'static`.
/// **With no runtime** (a plain thread, another executor), the close future runs to
/// completion on a fresh current-thread tokio runtime in a helper thread and the drop
/// **waits** for it, so the resource is released when `drop` returns. A panic in a detached
/// close cannot reach a consumer (there is none); it is logged with `tracing::error!`.
/// A close spawned on a runtime that is shutting down is cancelled with it, and a close that
/// needs the dropping thread itself to make progress (a value only that thread's executor
/// would send) would wait forever on the fallback path: drop such streams inside a runtime.
///
/// # Cancel safety
///
/// Dropping the stream at any point closes the resource as described above. Items the body
/// had produced but not yet yielded are dropped with it, as with any stream.
///
/// # Examples
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
/// use std::sync::{Arc, Mutex};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let (l1, l2) = (log.clone(), log.clone());
/// let rows: Vec<Result<u32, String>> = scoped(
///     async move { l1.lock().unwrap().push("open"); Ok::<_, String>(vec![1u32, 2, 3]) },
///     |table: &Vec<u32>| stream::iter(table.clone()).map(Ok),
///     move |_table| async move { l2.lock().unwrap().push("close") },
/// )
/// .collect()
/// .await;
/// assert_eq!(rows, [Ok(1), Ok(2), Ok(3)]);
/// assert_eq!(*log.lock().unwrap(), ["open", "close"]);
/// # }
/// ```
pub fn scoped<O, R, E, B, S, T, C, F>(open: O, body: B, close: C) -> Scoped<O, R, E, B, S, C, F>
where
    O: Future<Output = Result<R, E>>,
    B: FnOnce(&R) -> S,
    S: Stream<Item = Result<T, E>>,
    C: FnOnce(R) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    Scoped::new(open, body, close)
}

/// A close that still has to run when a [`Scoped`] stream is dropped early.
///
/// The drop path never polls anything itself: it hands this to [`close_detached`], which was
/// monomorphised in [`Scoped::new`] where the `Send + 'static` bounds are known. That keeps the
/// struct itself free of bounds (so `Drop` needs none) while the common case still works.
enum DetachedClose<R, C, F> {
    /// The body ran but `close` was never called: call it now, then run its future.
    NotStarted(R, C),
    /// `close` was called and its future was polled at least once inside `poll_next`.
    Started(Pin<Box<F>>),
}

pin_project! {
    /// Stream for the [`scoped`](crate::scoped) function.
    ///
    /// States, in order: opening (the `open` future is polled), running (the body stream is
    /// polled, the resource is held), closing (the `close` future is polled), done. The
    /// resource and the `close` function each live in an `Option` that is `take`n exactly once,
    /// so `close` cannot run twice; see [`scoped`](crate::scoped) for the drop behaviour.
    ///
    /// There are no `get_ref`/`into_inner` accessors: the body stream only exists between the
    /// open and the close, and handing it out would let it outlive the resource's scope.
    #[must_use = "streams do nothing unless polled"]
    pub struct Scoped<O, R, E, B, S, C, F> {
        #[pin]
        open: Option<O>,
        body_fn: Option<B>,
        #[pin]
        body: Option<S>,
        resource: Option<R>,
        close: Option<C>,
        // Boxed once per stream (not per item) so that an in-progress close can be moved out
        // of the pinned struct and handed to the runtime when the stream is dropped.
        closing: Option<Pin<Box<F>>>,
        // An error from the body, yielded once `close` has finished (like an exception that
        // leaves `async with` after `__aexit__` ran).
        pending_err: Option<E>,
        detach: fn(DetachedClose<R, C, F>),
        done: bool,
    }

    impl<O, R, E, B, S, C, F> PinnedDrop for Scoped<O, R, E, B, S, C, F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // The body may borrow nothing from the resource, but it may hold clones of its
            // parts (a pool handle): drop it before the resource is closed.
            this.body.set(None);
            let detached = if let Some(fut) = this.closing.take() {
                Some(DetachedClose::Started(fut))
            } else if let (Some(r), Some(c)) = (this.resource.take(), this.close.take()) {
                Some(DetachedClose::NotStarted(r, c))
            } else {
                None
            };
            if let Some(d) = detached {
                (this.detach)(d);
            }
        }
    }
}

impl<O, R, E, B, S, C, F> fmt::Debug for Scoped<O, R, E, B, S, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.done {
            "done"
        } else if self.open.is_some() {
            "opening"
        } else if self.closing.is_some() || self.pending_err.is_some() {
            "closing"
        } else {
            "running"
        };
        f.debug_struct("Scoped")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<O, R, E, B, S, C, F> Scoped<O, R, E, B, S, C, F>
where
    F: Future<Output = ()> + Send + 'static,
    C: FnOnce(R) -> F,
{
    /// Builds the stream; see [`scoped`](crate::scoped) for the semantics and an example.
    pub fn new(open: O, body: B, close: C) -> Self {
        Scoped {
            open: Some(open),
            body_fn: Some(body),
            body: None,
            resource: None,
            close: Some(close),
            closing: None,
            pending_err: None,
            detach: close_detached::<R, C, F>,
            done: false,
        }
    }
}

impl<O, R, E, B, S, C, F> Scoped<O, R, E, B, S, C, F>
where
    C: FnOnce(R) -> F,
    F: Future<Output = ()>,
{
    /// Closes the scope now and waits for `close` to finish: the awaitable cleanup after an
    /// early exit (Python's `aclosing`).
    ///
    /// The body stream is dropped, then `close(resource)` is awaited (or the close already in
    /// progress is finished); the stream is done afterwards (`poll_next` returns `None`). It
    /// is **idempotent with every other path**: `close` runs exactly once whether the stream
    /// ended on its own, was closed here (once or many times) or is dropped later; after this
    /// resolves, dropping the stream closes nothing again. If `open` has not finished, it is
    /// dropped and there is nothing to close (as on drop).
    ///
    /// Resolves to the body's error that was held back while the resource closed (see
    /// [`scoped`](crate::scoped), "errors end the scope") if the consumer had not received it
    /// yet, so that it is not lost; `None` otherwise.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let closed = Arc::new(AtomicUsize::new(0));
    /// let c = closed.clone();
    /// let mut rows = std::pin::pin!(scoped(
    ///     async { Ok::<_, String>(()) },
    ///     |_: &()| stream::iter(0..).map(Ok),
    ///     move |_| async move { c.fetch_add(1, Ordering::SeqCst); },
    /// ));
    /// while let Some(row) = rows.next().await {
    ///     if row == Ok(2) {
    ///         break; // early exit: the resource is still open
    ///     }
    /// }
    /// assert_eq!(rows.as_mut().close().await, None);
    /// assert_eq!(closed.load(Ordering::SeqCst), 1); // closed, and awaited
    /// assert_eq!(rows.next().await, None);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// A panic in `close` propagates to the caller (the close is then over and never retried).
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future leaves an unfinished close in the stream, where the drop
    /// path (or a later `close()`) picks it up: it still runs exactly once.
    pub fn close(self: Pin<&mut Self>) -> impl Future<Output = Option<E>> + '_ {
        let mut this = self;
        std::future::poll_fn(move |cx| this.as_mut().poll_close(cx))
    }

    /// The poll form of [`close`](Self::close), for hand-written futures.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut s = std::pin::pin!(scoped(
    ///     async { Ok::<_, String>(()) },
    ///     |_: &()| stream::iter([Ok::<u8, String>(1)]),
    ///     |_| async {},
    /// ));
    /// // Never polled: `open` never ran, so there is nothing to close.
    /// assert_eq!(std::future::poll_fn(|cx| s.as_mut().poll_close(cx)).await, None);
    /// # }
    /// ```
    pub fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<E>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        // Not opened (or still opening): there is no resource to close.
        this.open.set(None);
        this.body_fn.take();
        // The body may hold clones of the resource's parts: drop it before closing.
        this.body.set(None);
        if this.closing.is_none()
            && let (Some(r), Some(c)) = (this.resource.take(), this.close.take())
        {
            *this.closing = Some(Box::pin(c(r)));
        }
        if let Some(mut fut) = this.closing.take() {
            // Taken out while polled, as in `poll_next`: a panic drops it for good.
            if fut.as_mut().poll(cx).is_pending() {
                *this.closing = Some(fut);
                return Poll::Pending;
            }
        }
        this.close.take();
        *this.done = true;
        Poll::Ready(this.pending_err.take())
    }
}

/// Runs a close whose stream was dropped before it could await it.
///
/// Inside a tokio runtime the close future is spawned on it (`Handle::try_current`). With no
/// runtime at hand, it runs to completion on a fresh current-thread runtime in a helper thread,
/// and the drop waits for it: the resource is released when `drop` returns. A panic in a
/// detached close cannot reach a consumer (there is none any more); it is reported with
/// `tracing::error!` (and tokio's/std's panic hook prints it).
fn close_detached<R, C, F>(d: DetachedClose<R, C, F>)
where
    F: Future<Output = ()> + Send + 'static,
    C: FnOnce(R) -> F,
{
    let fut: Pin<Box<F>> = match d {
        DetachedClose::NotStarted(r, c) => Box::pin(c(r)),
        DetachedClose::Started(fut) => fut,
    };
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        drop(handle.spawn(fut));
        return;
    }
    let joined = std::thread::Builder::new()
        .name("millrace-scoped-close".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(fut),
                Err(e) => tracing::warn!(
                    error = %e,
                    "millrace::scoped: no runtime to run `close` on; the resource was dropped without it"
                ),
            }
        })
        .map(|t| t.join());
    match joined {
        Ok(Ok(())) => {}
        Ok(Err(_panic)) => {
            tracing::error!("millrace::scoped: `close` panicked after the stream was dropped")
        }
        Err(e) => tracing::warn!(
            error = %e,
            "millrace::scoped: could not start a thread to run `close`; the resource was dropped without it"
        ),
    }
}

impl<O, R, E, B, S, T, C, F> Stream for Scoped<O, R, E, B, S, C, F>
where
    O: Future<Output = Result<R, E>>,
    B: FnOnce(&R) -> S,
    S: Stream<Item = Result<T, E>>,
    C: FnOnce(R) -> F,
    F: Future<Output = ()>,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            if let Some(open) = this.open.as_mut().as_pin_mut() {
                let opened = ready!(open.poll(cx));
                this.open.set(None);
                match opened {
                    Ok(r) => {
                        // Stored before `body` runs, so a panic in `body` still closes it on drop.
                        let r = &*this.resource.insert(r);
                        let body_fn = this.body_fn.take().expect("body is called once");
                        this.body.set(Some(body_fn(r)));
                    }
                    Err(e) => {
                        // No resource, nothing to close.
                        *this.done = true;
                        this.body_fn.take();
                        this.close.take();
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            if let Some(body) = this.body.as_mut().as_pin_mut() {
                match ready!(body.poll_next(cx)) {
                    Some(Ok(t)) => return Poll::Ready(Some(Ok(t))),
                    Some(Err(e)) => *this.pending_err = Some(e),
                    None => {}
                }
                // The body ended (or failed): drop it, then start the close.
                this.body.set(None);
                let (r, c) = (this.resource.take(), this.close.take());
                if let (Some(r), Some(c)) = (r, c) {
                    *this.closing = Some(Box::pin(c(r)));
                }
            }
            if let Some(mut fut) = this.closing.take() {
                // Taken out while polled: if close panics, the future is dropped during the
                // unwind and can never be polled (or detached) again.
                if fut.as_mut().poll(cx).is_pending() {
                    *this.closing = Some(fut);
                    return Poll::Pending;
                }
            }
            *this.done = true;
            if let Some(e) = this.pending_err.take() {
                return Poll::Ready(Some(Err(e)));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else if self.pending_err.is_some() {
            (1, Some(1))
        } else if let Some(body) = &self.body {
            // An error from the body ends the stream early, so only the upper bound carries over.
            (0, body.size_hint().1)
        } else if self.open.is_some() {
            (0, None)
        } else {
            (0, Some(0))
        }
    }
}

impl<O, R, E, B, S, T, C, F> FusedStream for Scoped<O, R, E, B, S, C, F>
where
    O: Future<Output = Result<R, E>>,
    B: FnOnce(&R) -> S,
    S: Stream<Item = Result<T, E>>,
    C: FnOnce(R) -> F,
    F: Future<Output = ()>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}
