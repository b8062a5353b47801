//! `fs::lines` positions: resuming at any position a tracked read reported yields exactly the
//! rest of the input (the same lines, numbers and errors), by seeking, whatever the input holds:
//! CRLF, empty lines, over-long lines, invalid UTF-8, a last line without a newline.
#![cfg(feature = "fs")]

use futures::StreamExt;
use millrace::adapters::fs::{self, LinePosition};
use proptest::prelude::*;

fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z ]{0,12}".prop_map(String::into_bytes),
        Just(b"\xff\xfebad".to_vec()),
        Just(vec![b'x'; 40]), // over the 16-byte limit below
        Just(Vec::new()),
    ]
}

async fn read_from(
    path: &std::path::Path,
    at: Option<LinePosition>,
) -> Vec<(LinePosition, String)> {
    let items: Vec<_> = fs::lines(path)
        .max_line_length(16)
        .resume_after(at)
        .tracked()
        .collect()
        .await;
    items
        .into_iter()
        .map(|p| {
            let text = match p.entry.item().unwrap() {
                Ok(line) => format!("{}: {}", line.number, line.text),
                Err(e) => e.to_string(),
            };
            (p.position, text)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn resuming_at_every_reported_position_yields_exactly_the_rest(
        lines in prop::collection::vec((line_bytes(), any::<bool>()), 0..20),
        final_newline in any::<bool>(),
    ) {
        let mut content = Vec::new();
        for (i, (line, crlf)) in lines.iter().enumerate() {
            content.extend_from_slice(line);
            if i + 1 < lines.len() || final_newline {
                content.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, &content).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let all = read_from(&path, None).await;
            // Positions: strictly increasing offsets, one line each, the last at the end.
            for pair in all.windows(2) {
                assert!(pair[0].0.offset < pair[1].0.offset, "{all:?}");
                assert_eq!(pair[0].0.line + 1, pair[1].0.line);
            }
            if let Some(last) = all.last() {
                assert_eq!(last.0.offset, content.len() as u64);
            }
            for (i, (at, _)) in all.iter().enumerate() {
                let rest = read_from(&path, Some(*at)).await;
                assert_eq!(rest, all[i + 1..].to_vec(), "resumed after {at}");
            }
        });
    }
}

#[tokio::test]
async fn a_resume_position_past_the_end_of_the_file_says_the_file_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "a\nb\n").unwrap();
    let items: Vec<_> = fs::lines(&path)
        .resume_after(Some(LinePosition {
            offset: 100,
            line: 9,
        }))
        .collect()
        .await;
    let err = items[0].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("shorter than the resume position (byte 100)"),
        "{err}"
    );
    assert!(err.contains("truncated or replaced"), "{err}");
}
