//! The one place the control side reads time. Tests swap in [`ManualClock`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A source of `now` for the drivers.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // this is the clock
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to, for tests of timeouts.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Instant>,
}

impl ManualClock {
    /// Starts at the real current time.
    #[allow(clippy::disallowed_methods)] // the starting point of a fake clock
    pub fn new() -> Self {
        ManualClock {
            now: Mutex::new(Instant::now()),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        // A poisoned lock means a test already panicked; keep its message.
        let mut now = self.now.lock().expect("clock lock");
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().expect("clock lock")
    }
}
