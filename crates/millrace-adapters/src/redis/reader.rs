//! The reader task of a [`RedisStreamSource`](super::RedisStreamSource): reads with
//! `XREADGROUP`, reclaims with `XAUTOCLAIM`, reconnects, and hands batches to the source.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::conn::is_transient;
use super::entry::{AckToken, Delivery, EntryId, RawEntry, Shared};
use super::error::RedisStreamError;
use super::reply;
use super::source::{Item, RedisStreamSourceBuilder, create_group};

/// Capacity units taken from the semaphore and not yet handed to tokens; given back on drop.
struct Held<'a> {
    shared: &'a Shared,
    n: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.shared.permits.add_permits(self.n);
        }
    }
}

pub(super) struct Reader<T, F> {
    pub(super) read_conn: ConnectionManager,
    pub(super) ctl_conn: ConnectionManager,
    pub(super) cfg: RedisStreamSourceBuilder,
    pub(super) shared: Arc<Shared>,
    pub(super) tx: mpsc::Sender<Vec<Item<T>>>,
    pub(super) decode: F,
    /// `Some(after)`: re-reading this consumer's own pending entries (at start and after every
    /// reconnect, because a lost XREADGROUP reply may have delivered entries we never saw).
    pub(super) history: Option<EntryId>,
    pub(super) claim_cursor: EntryId,
    pub(super) next_claim: Instant,
    pub(super) claim_interval: Duration,
    pub(super) drained_since: Option<Instant>,
}

enum Step {
    Continue,
    End,
}

impl<T, F> Reader<T, F>
where
    T: Send + 'static,
    F: FnMut(RawEntry) -> Result<T, super::DecodeError> + Send + 'static,
{
    pub(super) async fn run(mut self) {
        let mut failing_since: Option<Instant> = None;
        let mut attempt = 0u32;
        loop {
            match self.step().await {
                Ok(Step::Continue) => {
                    failing_since = None;
                    attempt = 0;
                }
                Ok(Step::End) => return,
                Err(e) if is_transient(&e) => {
                    // The reply may have been lost after the server delivered entries to us:
                    // re-read our own pending list once the connection is back.
                    self.history = Some(EntryId::new(0, 0));
                    self.shared
                        .reconnects
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.cfg.reconnect.give_up() {
                        let _ = self
                            .tx
                            .send(vec![Err(RedisStreamError::GaveUp {
                                command: "XREADGROUP",
                                stream: self.cfg.stream.clone(),
                                attempts: attempt + 1,
                                source: e,
                            })])
                            .await;
                        return;
                    }
                    tokio::time::sleep(self.cfg.reconnect.delay(attempt)).await;
                    attempt = attempt.saturating_add(1);
                }
                Err(e) if e.code() == Some("NOGROUP") => {
                    // The server lost the group (restart without persistence, or someone
                    // destroyed it): create it again and go on.
                    let cfg = &self.cfg;
                    if let Err(err) = create_group(
                        &self.ctl_conn,
                        &cfg.stream,
                        &cfg.group,
                        &cfg.start_id,
                        &cfg.reconnect,
                    )
                    .await
                    {
                        let _ = self.tx.send(vec![Err(err)]).await;
                        return;
                    }
                }
                Err(e) => {
                    let _ = self
                        .tx
                        .send(vec![Err(RedisStreamError::Redis {
                            command: "XREADGROUP",
                            stream: self.cfg.stream.clone(),
                            source: e,
                        })])
                        .await;
                    return;
                }
            }
        }
    }

    /// One read (or claim) of at most the free capacity.
    async fn step(&mut self) -> Result<Step, redis::RedisError> {
        let shared = self.shared.clone();
        // Back-pressure: wait for one free unit, then take whatever else is free right now.
        let Ok(first) = shared.permits.acquire().await else {
            return Ok(Step::End);
        };
        first.forget();
        let mut held = Held {
            shared: &shared,
            n: 1,
        };
        let extra = shared
            .permits
            .available_permits()
            .min(self.cfg.read_count - 1);
        if extra > 0 {
            if let Ok(p) = shared.permits.try_acquire_many(extra as u32) {
                p.forget();
                held.n += extra;
            }
        }

        if let Some(idle) = self.cfg.claim_idle {
            if Instant::now() >= self.next_claim {
                let claimed = self.claim(idle, held.n).await?;
                if !claimed.is_empty() {
                    self.drained_since = None;
                    return Ok(self.deliver(claimed, &mut held).await);
                }
            }
        }

        let (id_arg, block) = match self.history {
            Some(after) => (after.to_string(), None),
            None => {
                let until_claim = if self.cfg.claim_idle.is_some() {
                    self.next_claim.saturating_duration_since(Instant::now())
                } else {
                    self.cfg.block
                };
                let ms = self.cfg.block.min(until_claim).as_millis().max(1);
                (">".to_owned(), Some(ms))
            }
        };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.cfg.group)
            .arg(&self.cfg.consumer)
            .arg("COUNT")
            .arg(held.n);
        if let Some(ms) = block {
            cmd.arg("BLOCK").arg(ms as u64);
        }
        cmd.arg("STREAMS").arg(&self.cfg.stream).arg(&id_arg);
        let value: Value = cmd.query_async(&mut self.read_conn).await?;
        let entries = match reply::read_reply(value) {
            Ok(e) => e,
            Err(reply) => return Ok(self.unexpected("XREADGROUP", reply).await),
        };
        if self.history.is_some() {
            match entries.last() {
                None => self.history = None,
                Some((last, _)) => self.history = Some(*last),
            }
            if entries.is_empty() {
                return Ok(Step::Continue);
            }
        } else if entries.is_empty() {
            return self.check_drained().await;
        }
        self.drained_since = None;
        Ok(self.deliver(entries, &mut held).await)
    }

    async fn claim(
        &mut self,
        idle: Duration,
        count: usize,
    ) -> Result<reply::Entries, redis::RedisError> {
        let value: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.cfg.stream)
            .arg(&self.cfg.group)
            .arg(&self.cfg.consumer)
            .arg(idle.as_millis() as u64)
            .arg(self.claim_cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.ctl_conn)
            .await?;
        match reply::autoclaim_reply(value) {
            Ok((cursor, entries)) => {
                self.claim_cursor = cursor;
                if cursor == EntryId::new(0, 0) {
                    // A full pass over the pending list: rest until the next interval.
                    self.next_claim = Instant::now() + self.claim_interval;
                }
                Ok(entries)
            }
            Err(reply) => {
                let _ = self.unexpected("XAUTOCLAIM", reply).await;
                self.next_claim = Instant::now() + self.claim_interval;
                Ok(Vec::new())
            }
        }
    }

    async fn check_drained(&mut self) -> Result<Step, redis::RedisError> {
        let Some(grace) = self.cfg.end_when_drained else {
            return Ok(Step::Continue);
        };
        let value: Value = redis::cmd("XPENDING")
            .arg(&self.cfg.stream)
            .arg(&self.cfg.group)
            .query_async(&mut self.ctl_conn)
            .await?;
        let pending = match reply::pending_count(value) {
            Ok(n) => n,
            Err(reply) => return Ok(self.unexpected("XPENDING", reply).await),
        };
        if pending > 0 {
            self.drained_since = None;
            return Ok(Step::Continue);
        }
        let since = *self.drained_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= grace {
            Ok(Step::End)
        } else {
            Ok(Step::Continue)
        }
    }

    async fn unexpected(&mut self, command: &'static str, reply: String) -> Step {
        let _ = self
            .tx
            .send(vec![Err(RedisStreamError::UnexpectedReply {
                command,
                reply,
            })])
            .await;
        Step::End
    }

    async fn deliver(&mut self, entries: reply::Entries, held: &mut Held<'_>) -> Step {
        let mut chunk = Vec::with_capacity(entries.len());
        self.shared
            .live
            .fetch_add(entries.len(), std::sync::atomic::Ordering::Relaxed);
        for (id, fields) in entries {
            debug_assert!(held.n > 0, "never more entries than COUNT");
            held.n -= 1;
            let token = AckToken::new(id, self.shared.clone());
            let item = match fields {
                Some(fields) => match (self.decode)(RawEntry::new(id, fields)) {
                    Ok(value) => Ok(Delivery::new(value, token)),
                    Err(reason) => Err(malformed(&self.shared, id, reason, token)),
                },
                None => Err(malformed(
                    &self.shared,
                    id,
                    super::DecodeError::new("the entry was deleted from the stream while pending"),
                    token,
                )),
            };
            chunk.push(item);
        }
        if self.tx.send(chunk).await.is_err() {
            return Step::End; // the source was dropped
        }
        Step::Continue
    }
}

fn malformed(
    shared: &Shared,
    id: EntryId,
    reason: super::DecodeError,
    token: AckToken,
) -> RedisStreamError {
    RedisStreamError::Malformed {
        stream: shared.stream.clone(),
        id,
        reason,
        token,
    }
}
