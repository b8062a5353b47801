use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts the [`DropToken`]s alive, to prove a stage released what it captured.
///
/// Move a token into a closure, a source or a future given to a stage; after the stage is
/// dropped (and aborted tasks reaped), `alive()` must be back to 0.
///
/// ```
/// use millrace::testing::DropCounter;
///
/// let counter = DropCounter::new();
/// let token = counter.token();
/// let closure = move |x: u32| { let _keep = &token; x + 1 };
/// assert_eq!(counter.alive(), 1);
/// drop(closure);
/// assert_eq!(counter.alive(), 0);
/// ```
#[derive(Clone, Default)]
pub struct DropCounter {
    alive: Arc<AtomicUsize>,
}

impl fmt::Debug for DropCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropCounter")
            .field("alive", &self.alive())
            .finish()
    }
}

impl DropCounter {
    /// A counter with no token alive.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new token, counted until it (and all its clones) are dropped.
    pub fn token(&self) -> DropToken {
        self.alive.fetch_add(1, Ordering::SeqCst);
        DropToken {
            alive: Arc::clone(&self.alive),
        }
    }

    /// How many tokens are alive.
    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }
}

/// A token counted by its [`DropCounter`] while alive. Cloning counts one more.
pub struct DropToken {
    alive: Arc<AtomicUsize>,
}

impl fmt::Debug for DropToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DropToken")
    }
}

impl Clone for DropToken {
    fn clone(&self) -> Self {
        self.alive.fetch_add(1, Ordering::SeqCst);
        DropToken {
            alive: Arc::clone(&self.alive),
        }
    }
}

impl Drop for DropToken {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}
