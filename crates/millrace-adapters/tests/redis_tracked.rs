//! The tracked Redis Streams source against a real redis-server: positions are entry ids, and
//! each batch's entries are acknowledged after its commit — exactly those entries.
//!
//! Needs `MILLRACE_TEST_REDIS_URL` (`source scripts/services.sh && start_redis`); fails with a
//! clear message when it is unset unless `MILLRACE_SKIP_REDIS=1`.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use millrace::adapters::redis::client::{self as redis, Client};
use millrace::adapters::redis::{
    BatchAcker, CommitAckError, EntryId, RedisHashSink, RedisStreamSource, TrackedEntries,
};
use millrace::positions::{CountRead, Entry, Tracked};

#[path = "support/redis.rs"]
mod support;
use support::{cleanup, conn, key, server, xadd};

/// Entries of `stream` delivered to the group `g` and not yet acknowledged.
async fn pending(client: &Client, stream: &str) -> u64 {
    support::pending(client, stream, "g").await
}

/// Appends `values` as entries `n = value`; their ids in order.
async fn produce(client: &Client, stream: &str, values: &[&str]) -> Vec<EntryId> {
    let mut ids = Vec::new();
    for v in values {
        ids.push(xadd(client, stream, &[("n", v)]).await);
    }
    ids
}

/// The tracked source of `stream` for `consumer` of group `g` (short reads, ending once
/// drained), decoding the field `n` as `u64`, and its acker.
async fn tracked(
    client: &Client,
    stream: &str,
    consumer: &str,
) -> (Tracked<CountRead<TrackedEntries<u64>>>, BatchAcker) {
    RedisStreamSource::builder(client.clone(), stream, "g", consumer)
        .block(Duration::from_millis(50))
        .end_when_drained(Duration::from_millis(150))
        .connect(|e| e.parse::<u64>("n"))
        .await
        .unwrap()
        .tracked()
}

#[tokio::test]
async fn positions_are_entry_ids_and_each_batch_acks_exactly_its_entries() {
    let Some(client) = server() else { return };
    let stream = key("exact");
    // 9 entries: one undecodable (a dead letter), two filtered (multiples of 3).
    let ids = produce(
        &client,
        &stream,
        &["1", "2", "3", "x", "5", "6", "7", "8", "10"],
    )
    .await;
    let (entries, acks) = tracked(&client, &stream, "c1").await;
    let accounting = entries.accounting();
    let mut batches = std::pin::pin!(
        entries
            .dead_letter_errors()
            .filter(|n| n % 3 != 0)
            .batch_within(4, Duration::from_millis(200))
    );
    let mut seen = Vec::new();
    let mut acked_total = 0;
    while let Some(batch) = batches.next().await {
        // Nothing of this batch is acknowledged before its ack: everything the tracked stream
        // delivered is pending (and more, read ahead by the source).
        let before = pending(&client, &stream).await;
        assert!(before >= acks.unacknowledged() as u64);
        assert!(before >= batch.entries());
        let acked = acks.ack(&batch).await.unwrap();
        assert_eq!(
            acked,
            batch.entries(),
            "items, dead letters and filtered entries"
        );
        assert_eq!(pending(&client, &stream).await, before - acked);
        acked_total += acked;
        seen.extend(
            batch
                .positions()
                .iter()
                .copied()
                .zip(batch.items().iter().copied()),
        );
        for dead in batch.dead_letters() {
            assert_eq!(dead.position, ids[3]);
            assert!(
                dead.reason.contains("does not parse as u64"),
                "{}",
                dead.reason
            );
        }
        accounting.record_commit(&batch);
    }
    let expected: Vec<(EntryId, u64)> = [(0, 1), (1, 2), (4, 5), (6, 7), (7, 8), (8, 10)]
        .into_iter()
        .map(|(i, n)| (ids[i], n))
        .collect();
    assert_eq!(seen, expected, "items keep their entry ids as positions");
    assert_eq!(acked_total, 9);
    assert_eq!(pending(&client, &stream).await, 0);
    assert_eq!(
        accounting.check().unwrap().to_string(),
        "read 9 = committed 6 + dead-lettered 1 + filtered 2"
    );
    cleanup(&client, &[&stream]).await;
}

#[tokio::test]
async fn commit_then_ack_acks_after_the_commit_and_a_failed_commit_acks_nothing() {
    let Some(client) = server() else { return };
    let stream = key("failed");
    let results = key("failed-results");
    let values: Vec<String> = (1..=20).map(|n| n.to_string()).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    produce(&client, &stream, &values).await;

    // First run: the second commit fails.
    let (entries, acks) = tracked(&client, &stream, "c1").await;
    let batches = entries
        .dead_letter_errors()
        .batch_within(5, Duration::from_secs(5));
    let sink = RedisHashSink::connect(&client, &results).await.unwrap();
    let commits = Arc::new(Mutex::new(0));
    let pending_at_commit = Arc::new(Mutex::new(Vec::new()));
    let err = acks
        .commit_then_ack(batches, |batch| {
            let (mut sink, client, stream) = (sink.clone(), client.clone(), stream.clone());
            let (commits, pending_at_commit) =
                (Arc::clone(&commits), Arc::clone(&pending_at_commit));
            async move {
                let now = pending(&client, &stream).await;
                pending_at_commit.lock().unwrap().push(now);
                let n = {
                    let mut c = commits.lock().unwrap();
                    *c += 1;
                    *c
                };
                if n == 2 {
                    return Err(format!("the database is down (commit {n})"));
                }
                let rows = batch.positions().iter().zip(batch.items());
                sink.put_batch(rows.map(|(id, v)| (*id, *v))).await.unwrap();
                Ok(())
            }
        })
        .await
        .unwrap_err();
    assert!(matches!(&err, CommitAckError::Commit { source, .. } if source.contains("commit 2")));
    assert_eq!(err.report().batches, 1);
    assert_eq!(err.report().acked, 5);
    assert!(err.to_string().contains("will be delivered again"), "{err}");
    // While each batch was being committed, its entries were still pending.
    let at_commit = pending_at_commit.lock().unwrap().clone();
    assert!(at_commit[0] >= 5 && at_commit[1] >= 5, "{at_commit:?}");
    assert_eq!(
        pending(&client, &stream).await,
        15,
        "only the first batch was acked"
    );
    drop(acks);

    // Second run (same consumer: its pending entries come first): everything exactly once.
    let (entries, acks) = tracked(&client, &stream, "c1").await;
    let batches = entries
        .dead_letter_errors()
        .batch_within(7, Duration::from_millis(50));
    let report = acks
        .commit_then_ack(batches, |batch| {
            let mut sink = sink.clone();
            async move {
                let rows = batch.positions().iter().zip(batch.items());
                sink.put_batch(rows.map(|(id, v)| (*id, *v)))
                    .await
                    .map(drop)
            }
        })
        .await
        .unwrap();
    assert_eq!((report.committed, report.acked), (15, 15));
    let values: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(&results)
        .query_async(&mut conn(&client).await)
        .await
        .unwrap();
    let mut values: Vec<u64> = values.into_values().collect();
    values.sort_unstable();
    assert_eq!(values, (1..=20).collect::<Vec<u64>>());
    assert_eq!(pending(&client, &stream).await, 0);
    cleanup(&client, &[&stream, &results]).await;
}

#[tokio::test]
async fn after_an_unordered_stage_only_the_low_water_mark_is_acked() {
    let Some(client) = server() else { return };
    let stream = key("unordered");
    produce(&client, &stream, &["300", "1", "1", "1", "1", "1"]).await;
    let (entries, acks) = tracked(&client, &stream, "c1").await;
    let mut batches = std::pin::pin!(
        entries
            .dead_letter_errors()
            .map_concurrent_unordered(6, |ms| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                ms
            })
            .batch_within(2, Duration::from_millis(20))
    );
    let mut acked = Vec::new();
    while let Some(batch) = batches.next().await {
        let pending_before = pending(&client, &stream).await;
        let n = acks.ack(&batch).await.unwrap();
        acked.push((batch.items().to_vec(), n, pending_before));
    }
    // The five fast entries complete first, but the first entry (300 ms) holds the mark back:
    // nothing is acked until it is done, then all six are.
    let (last, rest) = acked.split_last().unwrap();
    assert!(
        rest.iter().all(|(_, n, pending)| *n == 0 && *pending == 6),
        "{acked:?}"
    );
    assert!(last.0.contains(&300) && last.1 == 6, "{acked:?}");
    assert_eq!(pending(&client, &stream).await, 0);
    cleanup(&client, &[&stream]).await;
}

#[tokio::test]
async fn an_entry_reclaimed_while_held_is_not_delivered_twice() {
    let Some(client) = server() else { return };
    let stream = key("reclaimed");
    produce(&client, &stream, &["1", "2", "3"]).await;
    // This consumer reclaims its own entries once idle for 50 ms (a slow commit).
    let (entries, acks) = RedisStreamSource::builder(client.clone(), &stream, "g", "c1")
        .block(Duration::from_millis(20))
        .claim_idle(Duration::from_millis(50))
        .claim_interval(Duration::from_millis(20))
        .connect(|e| e.parse::<u64>("n"))
        .await
        .unwrap()
        .tracked();
    let mut entries = std::pin::pin!(entries);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let p = entries.next().await.unwrap();
        assert!(matches!(p.entry, Entry::Item(Ok(_))));
        ids.push(p.position);
    }
    // Held for 400 ms: the source reclaims them (XAUTOCLAIM) but does not deliver them again.
    let more = tokio::time::timeout(Duration::from_millis(400), entries.next()).await;
    assert!(
        more.is_err(),
        "a held entry was delivered again: {:?}",
        more.map(|p| p.map(|p| p.position))
    );
    assert_eq!(acks.unacknowledged(), 3);
    assert_eq!(pending(&client, &stream).await, 3);
    cleanup(&client, &[&stream]).await;
}

#[tokio::test]
async fn a_source_failure_is_returned_by_commit_then_ack() {
    let Some(client) = server() else { return };
    let stream = key("failure");
    produce(&client, &stream, &["1"]).await;
    let (entries, acks) = RedisStreamSource::builder(client.clone(), &stream, "g", "c1")
        .block(Duration::from_millis(20))
        .connect(|e| e.parse::<u64>("n"))
        .await
        .unwrap()
        .tracked();
    let batches = entries
        .dead_letter_errors()
        .batch_within(10, Duration::from_millis(20));
    let replaced = {
        let (client, stream) = (client.clone(), stream.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // The stream is replaced by a plain string: XREADGROUP now fails (UNBLOCKED or WRONGTYPE).
            let _: () = redis::pipe()
                .cmd("DEL")
                .arg(&stream)
                .cmd("SET")
                .arg(&stream)
                .arg("not a stream")
                .query_async(&mut conn(&client).await)
                .await
                .unwrap();
        }
    };
    let run = acks.commit_then_ack(batches, |_batch| async { Ok::<_, String>(()) });
    let (result, ()) = tokio::join!(run, replaced);
    let err = result.unwrap_err();
    assert!(matches!(err, CommitAckError::Source { .. }), "{err}");
    assert_eq!(
        err.report().committed,
        1,
        "the entry read before the failure was committed"
    );
    assert!(err.to_string().contains("XREADGROUP"), "{err}");
    cleanup(&client, &[&stream]).await;
}

#[tokio::test]
async fn the_tracked_source_is_send_and_its_acker_is_send_sync() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>(_: &T) {}
    let Some(client) = server() else { return };
    let stream = key("send");
    let (entries, acks) = RedisStreamSource::builder(client.clone(), &stream, "g", "c1")
        .connect(|e| e.parse::<u64>("n"))
        .await
        .unwrap()
        .tracked();
    send(&entries);
    send_sync(&acks);
    drop((entries, acks));
    cleanup(&client, &[&stream]).await;
}
