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

    /// How much real time `span` of this clock takes: itself, except for a
    /// [`ScaledClock`], whose timers (the alert engine's tick) run faster.
    fn pace(&self, span: std::time::Duration) -> std::time::Duration {
        span
    }
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

/// A simulation's clock: `start` at the real instant `origin`, then `speed`
/// seconds per real second. A gateway run alongside an accelerated
/// simulation (`stillwater serve --clock-start … --clock-origin … --clock-speed
/// …`, the same three figures the simulator is given) keeps its check-in
/// waits, escalations and reminders in the simulation's time.
///
/// ```
/// use stillwater::clock::{Clock, ScaledClock};
/// use stillwater::domain::Timestamp;
/// let origin = chrono::Utc::now().timestamp() - 10;
/// let clock = ScaledClock::new(Timestamp::from_secs(0), Timestamp::from_secs(origin), 60.0).unwrap();
/// assert!((600..=660).contains(&clock.now().secs()));
/// assert_eq!(clock.pace(std::time::Duration::from_secs(60)), std::time::Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    start: Timestamp,
    origin_ms: i64,
    speed: f64,
}

impl ScaledClock {
    /// `None` unless `speed` is a positive, finite number.
    pub fn new(start: Timestamp, origin: Timestamp, speed: f64) -> Option<Self> {
        (speed.is_finite() && speed > 0.0).then_some(Self {
            start,
            origin_ms: origin.secs() * 1000,
            speed,
        })
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let real_ms = chrono::Utc::now().timestamp_millis() - self.origin_ms;
        Timestamp::from_secs(self.start.secs() + (real_ms as f64 * self.speed / 1000.0) as i64)
    }

    fn pace(&self, span: std::time::Duration) -> std::time::Duration {
        span.div_f64(self.speed)
    }
}

/// The shared handle every part holds.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a shared handle.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}
