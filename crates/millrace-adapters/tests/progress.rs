//! The `progress` dashboard: plain frames rendered to a buffer and compared exactly; the
//! handle's final frame and report; stopping on drop.
#![cfg(feature = "progress")]

use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::Metrics;
use millrace::prelude::*;
use millrace_adapters::progress::{Dashboard, PlainRender};

fn render(r: &mut PlainRender, at_ms: u64, metrics: &Metrics) -> String {
    let mut out = Vec::new();
    r.render(&mut out, Duration::from_millis(at_ms), &metrics.snapshot())
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn one_line_per_frame_shows_counts_rates_totals_and_events() {
    let metrics = Metrics::new();
    let mut source = stream::iter(0..40u32).metered_in(&metrics, "source");
    let mut r = PlainRender::new();
    assert_eq!(
        render(&mut r, 0, &metrics),
        "   0.0s source 0/40 items (0%) 0.0/s\n"
    );
    for _ in 0..10 {
        source.next().await;
    }
    assert_eq!(
        render(&mut r, 1_000, &metrics),
        "   1.0s source 10/40 items (25%) 10.0/s\n"
    );
    let checked = source
        .map(|x| if x % 10 == 3 { Err("odd row") } else { Ok(x) })
        .metered_in(&metrics, "checked")
        .count_errors()
        .on_error(Supervision::Resume)
        .metered_in(&metrics, "valid")
        .with_events();
    let n = checked.count().await;
    assert_eq!(n, 27);
    assert_eq!(
        render(&mut r, 1_500, &metrics),
        "   1.5s source 40/40 items (100%) 60.0/s done \
         | checked 30/30 items (100%) 60.0/s errors=3 done \
         | valid 27 items 54.0/s skipped=3 done\n"
    );
}

#[tokio::test]
async fn finish_draws_a_final_frame_and_the_report() {
    let metrics = Metrics::new();
    let handle = Dashboard::new(&metrics)
        .interval(Duration::from_secs(3600))
        .plain_to(Vec::new())
        .start();
    let _: Vec<u8> = stream::iter([1u8, 2, 3])
        .metered_in(&metrics, "bytes")
        .collect()
        .await;
    let text = String::from_utf8(handle.finish().unwrap()).unwrap();
    let report = metrics.report().to_string();
    let (frame, _) = text.split_once('\n').unwrap();
    assert!(frame.contains("s bytes 3/3 items (100%) "), "{frame}");
    assert!(frame.ends_with("/s done"), "{frame}");
    assert_eq!(
        &text[frame.len() + 1..],
        report,
        "the report follows the frame"
    );
}

#[test]
fn plain_dashboards_redraw_periodically_and_stop_on_drop() {
    use std::sync::{Arc, Mutex};
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let metrics = Metrics::new();
    metrics.stage("idle");
    let out = Arc::new(Mutex::new(Vec::new()));
    let handle = Dashboard::new(&metrics)
        .interval(Duration::from_millis(10))
        .plain_to(Shared(out.clone()))
        .start();
    let text = || String::from_utf8(out.lock().unwrap().clone()).unwrap();
    // Real time here (a thread, not tokio): wait until two frames were drawn, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while text().lines().count() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(text().lines().count() >= 2, "{}", text());
    drop(handle);
    let after = text();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(text(), after, "no frame after the handle is dropped");
    assert!(
        after.lines().all(|l| l.ends_with("s idle 0 items 0.0/s")),
        "{after}"
    );
    assert!(
        !after.contains("stage"),
        "dropping prints no report: {after}"
    );
}

#[test]
fn handles_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let h = Dashboard::new(&Metrics::new())
        .plain_to(std::io::sink())
        .start();
    assert_send(&h);
    let h = Dashboard::spawn(&Metrics::new(), Duration::from_secs(60));
    assert_send(&h);
}
