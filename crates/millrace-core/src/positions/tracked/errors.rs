//! What a tracked stream does with `Err` items: dead-letter them or let supervision decide.

use std::fmt;
use std::future::ready;

use futures_core::stream::Stream;
use futures_util::stream::StreamExt as _;

use super::{StreamFns, Tracked};
use crate::policy::Supervision;
use crate::positions::{Entry, Positioned};

impl<S, P, U, E> Tracked<S>
where
    S: Stream<Item = Positioned<P, Result<U, E>>>,
{
    /// Turns error items into dead letters at their position, with the error's text as the
    /// reason; `Ok` items go on as plain items.
    ///
    /// ```
    /// use millrace::positions::{self, Entry};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<_> = positions::track(stream::iter([(1u64, "7"), (2, "x")]))
    ///     .map(|s| s.parse::<u8>())
    ///     .dead_letter_errors()
    ///     .collect()
    ///     .await;
    /// assert_eq!(out[0].entry, Entry::Item(7));
    /// assert_eq!(out[1].entry, Entry::Dead("invalid digit found in string".into()));
    /// # }
    /// ```
    pub fn dead_letter_errors(self) -> Tracked<impl Stream<Item = Positioned<P, U>>>
    where
        E: fmt::Display,
    {
        self.dead_letter_with(|e| e.to_string())
    }

    /// Supervises error items as [`PipelineExt::on_error`](crate::PipelineExt::on_error) does,
    /// with positions kept: [`Resume`](Supervision::Resume) makes the failed entry a dead
    /// letter at its position (reported, never dropped silently), [`Replace`](Supervision::Replace)
    /// turns the error into an item, and [`Stop`](Supervision::Stop) ends the stream **before**
    /// the failed entry: it is neither committed nor dead-lettered, so the commit position stays
    /// before it and a restart reads it again (the run's accounting then shows it as not done).
    ///
    /// ```
    /// use millrace::positions::{self, Entry};
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let items = || positions::track(stream::iter([(1u64, Ok(1)), (2, Err("bad")), (3, Ok(3))]));
    /// let resumed: Vec<_> = items().on_error(Supervision::Resume).collect().await;
    /// assert_eq!(resumed[1].entry, Entry::Dead("bad".into()));
    /// let stopped = items().on_error(Supervision::Stop);
    /// let accounting = stopped.accounting();
    /// let stopped: Vec<_> = stopped.collect().await;
    /// assert_eq!(stopped.len(), 1); // entry 2 is not passed over
    /// assert_eq!(accounting.read(), 2);
    /// let replaced: Vec<_> = items().on_error(Supervision::replace(|_| 0)).collect().await;
    /// assert_eq!(replaced[1].entry, Entry::Item(0));
    /// # }
    /// ```
    pub fn on_error(
        self,
        supervision: Supervision<U, E>,
    ) -> Tracked<impl Stream<Item = Positioned<P, U>>>
    where
        E: fmt::Display,
    {
        self.via(|s| {
            s.scan(
                supervision,
                |supervision, p: Positioned<P, Result<U, E>>| {
                    let entry = match p.entry {
                        Entry::Item(Ok(u)) => Entry::Item(u),
                        Entry::Item(Err(e)) => match supervision {
                            Supervision::Stop => return ready(None),
                            Supervision::Resume => Entry::Dead(e.to_string()),
                            Supervision::Replace(f) => Entry::Item(f(e)),
                        },
                        Entry::Filtered => Entry::Filtered,
                        Entry::Dead(reason) => Entry::Dead(reason),
                    };
                    ready(Some(Positioned {
                        position: p.position,
                        entry,
                    }))
                },
            )
        })
    }

    /// Like [`dead_letter_errors`](Self::dead_letter_errors), with the reason written by
    /// `reason`.
    ///
    /// ```
    /// use millrace::positions::{self, Entry};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<_> = positions::track(stream::iter([(4u64, Err::<u8, _>(404))]))
    ///     .dead_letter_with(|code| format!("HTTP {code}"))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out[0].entry, Entry::Dead("HTTP 404".into()));
    /// # }
    /// ```
    pub fn dead_letter_with<F>(self, mut reason: F) -> Tracked<impl Stream<Item = Positioned<P, U>>>
    where
        F: FnMut(E) -> String,
    {
        self.via(|s| {
            StreamFns::map(s, move |p: Positioned<P, Result<U, E>>| Positioned {
                position: p.position,
                entry: match p.entry {
                    Entry::Item(Ok(u)) => Entry::Item(u),
                    Entry::Item(Err(e)) => Entry::Dead(reason(e)),
                    Entry::Filtered => Entry::Filtered,
                    Entry::Dead(r) => Entry::Dead(r),
                },
            })
        })
    }
}
