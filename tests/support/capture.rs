//! Captures `tracing` output of the current thread, for tests that assert on events.
//! Shared by the test files that need it (`mod support;` + `use support::capture`).

use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Captures this thread's events at `level` and above while the guard lives.
#[allow(dead_code)] // not every test file uses both
pub(crate) fn capture_at(level: tracing_subscriber::filter::LevelFilter) -> (Capture, impl Sized) {
    use tracing_subscriber::util::SubscriberInitExt;
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(level)
        .with_ansi(false)
        .without_time()
        .finish();
    let guard = subscriber.set_default();
    // Other tests of this binary run on other threads with no subscriber; a callsite
    // they reach first may have cached "never interested" before this subscriber existed
    // (tracing caches interest per callsite, process-wide). Recompute it now that this
    // thread's subscriber is registered, or its events could be filtered out.
    tracing::callsite::rebuild_interest_cache();
    (capture, guard)
}

/// Captures this thread's events at every level while the guard lives.
#[allow(dead_code)] // not every test file uses both
pub(crate) fn capture() -> (Capture, impl Sized) {
    capture_at(tracing_subscriber::filter::LevelFilter::TRACE)
}
