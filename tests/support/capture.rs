//! Captures `tracing` output of the current thread, for tests that assert on events.
//! Shared by the test files that need it (`mod support;` + `use support::capture`).
//!
//! Why one global subscriber instead of a thread-local `set_default` per test: tracing caches
//! each callsite's interest process-wide, and the tests of a binary run on parallel threads.
//! With thread-local subscribers that come and go, a callsite first reached on a thread with
//! no subscriber could keep a stale "not interested" and a test would miss an event (seen: the
//! retry give-up warning, 1 run in 3). A single global subscriber installed once, interested
//! in everything, gives every callsite one stable answer; it writes each event to the buffer
//! of the thread that emitted it, when that thread is capturing, and drops it otherwise.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use tracing_subscriber::filter::LevelFilter;

/// What one test captured.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

thread_local! {
    /// The capture of this thread, with the least severe level it keeps.
    static SINK: RefCell<Option<(Capture, LevelFilter)>> = const { RefCell::new(None) };
}

/// Writes into the emitting thread's capture, if any.
struct ThreadWriter {
    keep: bool,
}

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.keep {
            SINK.with(|sink| {
                if let Some((capture, _)) = &*sink.borrow() {
                    capture.0.lock().unwrap().extend_from_slice(buf);
                }
            });
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct PerThread;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for PerThread {
    type Writer = ThreadWriter;
    fn make_writer(&'a self) -> ThreadWriter {
        ThreadWriter { keep: false }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> ThreadWriter {
        let keep = SINK.with(|sink| {
            sink.borrow()
                .as_ref()
                .is_some_and(|(_, level)| *meta.level() <= *level)
        });
        ThreadWriter { keep }
    }
}

/// Stops this thread's capture when dropped.
pub(crate) struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        SINK.with(|sink| sink.borrow_mut().take());
    }
}

fn install_global() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(PerThread)
            .with_max_level(LevelFilter::TRACE)
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the test binaries");
    });
}

/// Captures this thread's events at `level` and above while the guard lives.
pub(crate) fn capture_at(level: LevelFilter) -> (Capture, Guard) {
    install_global();
    let capture = Capture::default();
    SINK.with(|sink| *sink.borrow_mut() = Some((capture.clone(), level)));
    (capture, Guard)
}

/// Captures this thread's events at every level while the guard lives.
pub(crate) fn capture() -> (Capture, Guard) {
    capture_at(LevelFilter::TRACE)
}

/// Captures this thread's events through a subscriber of its own whose maximum level is
/// `level`, so that what that subscriber does not enable (e.g. `TRACE` spans) is not created
/// at all on this thread. The global subscriber is installed first, so callsite interest stays
/// stable (see the module docs).
pub(crate) fn capture_with_max_level(level: LevelFilter) -> (Capture, impl Sized) {
    use tracing_subscriber::util::SubscriberInitExt;

    struct Into(Capture);
    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Into {
        type Writer = Into;
        fn make_writer(&'a self) -> Into {
            Into(self.0.clone())
        }
    }
    impl Write for Into {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    install_global();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(Into(capture.clone()))
        .with_max_level(level)
        .with_ansi(false)
        .without_time()
        .finish();
    (capture, subscriber.set_default())
}
