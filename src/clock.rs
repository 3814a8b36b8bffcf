//! The wall clock, injected: [`SystemClock`] in the gateway, [`ManualClock`]
//! in tests, which move it by hand instead of waiting for time to pass.
//!
//! Everything that reads the time of day — ingest (receipt times), the alert
//! engine (escalation, reminders, check-in waits, offline meters), the notifier
//! (due texts, retries), the actions (audit times) — takes a clock. Detection
//! never does: it works on the meters' own timestamps.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::domain::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_secs(chrono::Utc::now().timestamp())
    }
}

/// A clock that stands still until moved.
///
/// ```
/// use stillwater::clock::{Clock, ManualClock};
/// use stillwater::domain::Timestamp;
/// let clock = ManualClock::at(Timestamp::from_secs(1_000));
/// clock.advance(60);
/// assert_eq!(clock.now(), Timestamp::from_secs(1_060));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    seconds: AtomicI64,
}

impl ManualClock {
    pub fn at(time: Timestamp) -> Arc<Self> {
        Arc::new(Self {
            seconds: AtomicI64::new(time.secs()),
        })
    }

    /// A manual clock set to the system's time now.
    pub fn starting_now() -> Arc<Self> {
        Self::at(SystemClock.now())
    }

    pub fn advance(&self, seconds: i64) {
        self.seconds.fetch_add(seconds, Ordering::SeqCst);
    }

    pub fn set(&self, time: Timestamp) {
        self.seconds.store(time.secs(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_secs(self.seconds.load(Ordering::SeqCst))
    }
}

/// The shared handle every part holds.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a shared handle.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}
