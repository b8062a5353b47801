//! The redis-server the Redis test files share (`MILLRACE_TEST_REDIS_URL`, started by
//! `scripts/test.sh`): the client, keys no other run uses, and the commands the tests check the
//! server with.
#![allow(dead_code)] // each test file uses a subset

use std::time::Duration;

use millrace::adapters::redis::client::{self as redis, Client};
use millrace::adapters::redis::{
    EntryId, RedisStreamSink, RedisStreamSource, RedisStreamSourceBuilder,
};

/// The test server, or `None` when `MILLRACE_SKIP_REDIS=1` says to skip on purpose.
pub(crate) fn server() -> Option<Client> {
    let url = millrace::adapters::redis::test_server_url()?;
    Some(Client::open(url).expect("MILLRACE_TEST_REDIS_URL is a redis:// URL"))
}

/// A key unique to this process and test.
pub(crate) fn key(name: &str) -> String {
    format!("millrace-test:{}:{name}", std::process::id())
}

pub(crate) async fn conn(client: &Client) -> redis::aio::MultiplexedConnection {
    client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap()
}

/// How many entries of `stream` are delivered to `group` and not yet acknowledged.
pub(crate) async fn pending(client: &Client, stream: &str, group: &str) -> u64 {
    let v: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(&mut conn(client).await)
        .await
        .unwrap();
    match v {
        redis::Value::Array(items) => match &items[0] {
            redis::Value::Int(n) => *n as u64,
            other => panic!("unexpected XPENDING count {other:?}"),
        },
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

/// Appends one entry of `fields`; its id.
pub(crate) async fn xadd(client: &Client, stream: &str, fields: &[(&str, &str)]) -> EntryId {
    let id: String = redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg(fields)
        .query_async(&mut conn(client).await)
        .await
        .unwrap();
    id.parse().unwrap()
}

/// Appends the entries `n = 0`, `n = 1`, … `n = count - 1` in one batch.
pub(crate) async fn numbers(client: &Client, stream: &str, count: u32) {
    let mut sink = RedisStreamSink::connect(client, stream).await.unwrap();
    let sent = sink
        .send_batch((0..count).map(|n| [("n", n)]))
        .await
        .unwrap();
    assert_eq!(sent, count as usize);
}

/// A source reading `stream` as `consumer` of group `g`, configured by `configure`, that
/// decodes the field `n` of the entries [`numbers`] appends.
pub(crate) async fn numbers_source(
    client: &Client,
    stream: &str,
    consumer: &str,
    configure: impl FnOnce(RedisStreamSourceBuilder) -> RedisStreamSourceBuilder,
) -> RedisStreamSource<u32> {
    configure(RedisStreamSource::builder(
        client.clone(),
        stream,
        "g",
        consumer,
    ))
    .connect(|e| e.parse::<u32>("n"))
    .await
    .unwrap()
}

pub(crate) async fn cleanup(client: &Client, keys: &[&str]) {
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn(client).await)
        .await
        .unwrap();
}
