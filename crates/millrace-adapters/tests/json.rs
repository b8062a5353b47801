//! The `json` adapters on real files in a temporary directory.
#![cfg(feature = "json")]

use futures::{StreamExt, TryStreamExt, stream};
use millrace::adapters::fs::{self, LineError};
use millrace::adapters::json::{self, Decoded, JsonLineError};
use millrace::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Event {
    id: u64,
    kind: String,
}

fn ev(id: u64, kind: &str) -> Event {
    Event {
        id,
        kind: kind.to_owned(),
    }
}

#[tokio::test]
async fn good_lines_decode_and_malformed_lines_are_reported_with_number_and_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let long_garbage = format!("{{\"id\": 3, \"kind\": {}", "z".repeat(200));
    let content = format!(
        "{{\"id\":1,\"kind\":\"checkout\"}}\r\n\
         {{\"id\":2,\"kind\":\"return\"}}\n\
         \n\
         {long_garbage}\n\
         {{\"id\":\"four\",\"kind\":\"return\"}}\n\
         {{\"id\":5,\"kind\":\"checkout\"}}"
    );
    std::fs::write(&path, content).unwrap();

    let items: Vec<_> = fs::lines(&path)
        .wrap(json::decode::<Event>())
        .collect()
        .await;
    assert_eq!(items.len(), 5, "the blank line 3 is skipped");
    assert_eq!(
        items[0].as_ref().unwrap(),
        &Decoded {
            line: 1,
            value: ev(1, "checkout")
        }
    );
    assert_eq!(
        items[1].as_ref().unwrap(),
        &Decoded {
            line: 2,
            value: ev(2, "return")
        }
    );
    match &items[2] {
        Err(JsonLineError::Malformed {
            line: 4, snippet, ..
        }) => {
            let expected: String = long_garbage.chars().take(80).collect();
            assert_eq!(snippet, &format!("{expected}…"));
        }
        other => panic!("unexpected {other:?}"),
    }
    match &items[3] {
        Err(
            e @ JsonLineError::Malformed {
                line: 5, snippet, ..
            },
        ) => {
            assert_eq!(snippet, r#"{"id":"four","kind":"return"}"#);
            let msg = e.to_string();
            assert!(msg.starts_with("line 5 is not valid JSON for this type (invalid type: string \"four\", expected u64"), "{msg}");
            assert!(
                msg.ends_with("the line was skipped, fix or remove it"),
                "{msg}"
            );
            assert!(std::error::Error::source(e).is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        items[4].as_ref().unwrap(),
        &Decoded {
            line: 6,
            value: ev(5, "checkout")
        }
    );
}

#[tokio::test]
async fn line_errors_pass_through_and_decoding_continues() {
    let input: &[u8] = b"1\n\xff\n99999999999999999999999999\n3\n";
    let items: Vec<_> = json::decode_lines::<u32, _>(fs::lines_from(input).max_line_length(10))
        .collect()
        .await;
    assert_eq!(items.len(), 4);
    assert!(matches!(items[0], Ok(Decoded { line: 1, value: 1 })));
    assert!(matches!(
        items[1],
        Err(JsonLineError::Line(LineError::InvalidUtf8 { line: 2, .. }))
    ));
    assert!(matches!(
        items[2],
        Err(JsonLineError::Line(LineError::TooLong { line: 3, .. }))
    ));
    assert_eq!(items[2].as_ref().unwrap_err().line(), Some(3));
    assert!(matches!(items[3], Ok(Decoded { line: 4, value: 3 })));
}

#[tokio::test]
async fn missing_file_passes_through_as_a_line_error() {
    let items: Vec<_> = json::decode_lines::<u32, _>(fs::lines("/definitely/not/here.jsonl"))
        .collect()
        .await;
    assert_eq!(items.len(), 1);
    assert!(matches!(
        items[0],
        Err(JsonLineError::Line(LineError::Open { .. }))
    ));
}

#[tokio::test]
async fn encode_then_write_atomically_then_decode_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let events: Vec<Event> = (0..1000).map(|i| ev(i, "multi\nline kind")).collect();

    let lines = stream::iter(events.clone()).wrap(json::encode());
    let written = fs::try_write_lines_atomic(&path, lines).await.unwrap();
    assert_eq!(written, 1000);

    let back: Vec<Event> = fs::lines(&path)
        .wrap(json::decode::<Event>())
        .map_ok(Decoded::into_value)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(back, events);
}

#[tokio::test]
async fn encode_reports_the_failing_item_and_goes_on() {
    use std::collections::BTreeMap;
    let good = BTreeMap::from([("k".to_owned(), 1)]);
    let items = vec![
        serde_json::to_value(&good).unwrap(),
        serde_json::Value::Null,
    ];
    let out: Vec<_> = json::encode_items(stream::iter(items)).collect().await;
    assert_eq!(out[0].as_ref().unwrap(), r#"{"k":1}"#);
    assert_eq!(out[1].as_ref().unwrap(), "null");

    let bad = vec![BTreeMap::from([((1, 2), 1)]), BTreeMap::new()];
    let out: Vec<_> = json::encode_items(stream::iter(bad)).collect().await;
    assert_eq!(out[0].as_ref().unwrap_err().item, 0);
    assert_eq!(out[1].as_ref().unwrap(), "{}");
}

#[test]
fn stages_and_streams_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    // `*const u8` is neither Send nor Sync; the stage holds no `T`, so it is both.
    assert_send_sync(&json::decode::<*const u8>());
    assert_send_sync(&json::decode::<Event>());
    assert_send_sync(&json::decode_lines::<Event, _>(fs::lines("x")));
    assert_send_sync(&json::encode_items(stream::iter([1])));
}

#[tokio::test]
async fn a_pipeline_resumes_past_malformed_lines_and_writes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    let mut content = String::new();
    for i in 0..100u64 {
        if i % 25 == 7 {
            content.push_str("{\"id\": broken\n");
        } else {
            content.push_str(&format!("{{\"id\":{i},\"kind\":\"k{i}\"}}\n"));
        }
    }
    std::fs::write(&input, content).unwrap();

    let mut bad_lines = Vec::new();
    let decoded = fs::lines(&input)
        .wrap(json::decode::<Event>())
        .filter_map(|item| {
            let keep = match item {
                Ok(d) => Some(d.value),
                Err(e) => {
                    bad_lines.push(e.line().unwrap());
                    None
                }
            };
            async move { keep }
        })
        .map(|mut e| {
            e.kind.make_ascii_uppercase();
            e
        })
        .wrap(json::encode())
        .on_error(Supervision::Resume);
    let written = fs::try_write_lines_atomic(&output, decoded).await.unwrap();
    assert_eq!(written, 96);
    assert_eq!(bad_lines, [8, 33, 58, 83]);
    let first = fs::lines(&output)
        .wrap(json::decode::<Event>())
        .next()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.value, ev(0, "K0"));
}
