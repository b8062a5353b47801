//! The lease of a [`Claim`](super::Claim): who holds a pipeline, whether that holder is alive,
//! and the heartbeat that keeps the hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;

use super::BatchInsert;
use super::backend::Backend;

/// The wall clock in milliseconds since the Unix epoch, as stored in the offsets table.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// This machine's name, to tell holders on this host (whose liveness can be checked) from
/// others (whose lease must run out).
pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether process `pid` of this host is alive. Where that cannot be known (not Linux), it is
/// assumed alive and the lease has to run out.
pub(super) fn pid_alive(pid: i64) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses; a zombie has exited.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

/// The claim's heartbeat task, and the release of a claim dropped without
/// [`Claim::release`](super::Claim::release).
pub(super) struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    /// Set when the claim was released (or lost): nothing to do on drop.
    pub(super) released: bool,
    release: Option<BoxFuture<'static, ()>>,
}

impl Heartbeat {
    /// Starts refreshing the claim of `epoch` every third of the lease (marking it `lost` when
    /// the epoch is no longer current), and readies its release for a drop.
    pub(super) fn start<DB: Backend>(
        sink: &BatchInsert<DB>,
        source: &str,
        epoch: i64,
        lost: Arc<AtomicBool>,
    ) -> Self {
        let (sink, source) = (sink.clone(), source.to_owned());
        let task = tokio::spawn(beat(sink.clone(), source.clone(), epoch, lost));
        Heartbeat {
            task,
            released: false,
            release: Some(Box::pin(async move {
                let _ = refresh(&sink, &source, epoch, true).await;
            })),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
        // A dropped claim frees the pipeline on the runtime, best effort: a claim in the same
        // process right after may still find it held (await `release` to be sure); a crash
        // leaves it to the liveness check or the lease.
        if let (false, Some(release), Ok(runtime)) = (
            self.released,
            self.release.take(),
            tokio::runtime::Handle::try_current(),
        ) {
            runtime.spawn(release);
        }
    }
}

/// Refreshes the claim's heartbeat every third of the lease; marks the claim lost if its epoch
/// is no longer current.
async fn beat<DB>(sink: BatchInsert<DB>, source: String, epoch: i64, lost: Arc<AtomicBool>)
where
    DB: Backend,
{
    let mut tick = tokio::time::interval(sink.lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        // A failed heartbeat is retried on the next tick; the commit's epoch check is what
        // keeps the data safe.
        if let Ok(false) = refresh(&sink, &source, epoch, false).await {
            lost.store(true, Ordering::Relaxed);
            return;
        }
    }
}

/// Refreshes the heartbeat of the claim of `epoch`, or frees the pipeline (`release`);
/// whether `epoch` still holds it.
pub(super) async fn refresh<DB: Backend>(
    sink: &BatchInsert<DB>,
    source: &str,
    epoch: i64,
    release: bool,
) -> Result<bool, sqlx::Error> {
    DB::ops()
        .heartbeat(
            &sink.pool,
            &sink.sql,
            &sink.pipeline,
            source,
            epoch,
            now_ms(),
            release,
        )
        .await
}
