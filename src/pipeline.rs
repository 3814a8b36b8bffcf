//! The types that travel down the ingest pipeline — broker → decoding → the
//! store's writer → the alert engine — owned by none of those stages.
//!
//! Plain data and one small synchronised set; no I/O and no decisions. `wire`
//! produces [`Decoded`], `ingest` wraps it in a [`Message`] with the
//! acknowledgement to run after the commit, the store's writer returns a
//! [`BatchOutcome`], and [`TouchedMeters`] tells the alert engine which meters
//! have readings it has not judged yet.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::domain::{MeterId, Reading, Timestamp};

/// Why a message (or one reading of a batch) was refused. The names are the
/// metric labels and what `stillwater ingest rejected` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    Oversize,
    InvalidJson,
    MissingField,
    BadMeterId,
    BadTimestamp,
    AbsurdValue,
    EmptyBatch,
    UnknownTopic,
    FutureTs,
    NotPermitted,
    /// A meter's own bytes (a CJ/T 188 frame) that cannot be read: a wrong
    /// checksum, a truncated frame, an identifier that is not a reading.
    BadFrame,
    /// A platform product whose data no configured decoder reads.
    UnknownProduct,
    /// A platform push whose signature does not match.
    BadSignature,
}

impl RejectReason {
    pub const ALL: [RejectReason; 13] = [
        RejectReason::Oversize,
        RejectReason::InvalidJson,
        RejectReason::MissingField,
        RejectReason::BadMeterId,
        RejectReason::BadTimestamp,
        RejectReason::AbsurdValue,
        RejectReason::EmptyBatch,
        RejectReason::UnknownTopic,
        RejectReason::FutureTs,
        RejectReason::NotPermitted,
        RejectReason::BadFrame,
        RejectReason::UnknownProduct,
        RejectReason::BadSignature,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Oversize => "oversize",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::MissingField => "missing_field",
            RejectReason::BadMeterId => "bad_meter_id",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::AbsurdValue => "absurd_value",
            RejectReason::EmptyBatch => "empty_batch",
            RejectReason::UnknownTopic => "unknown_topic",
            RejectReason::FutureTs => "future_ts",
            RejectReason::NotPermitted => "not_permitted",
            RejectReason::BadFrame => "bad_frame",
            RejectReason::UnknownProduct => "unknown_product",
            RejectReason::BadSignature => "bad_signature",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A refusal with a sentence an installer can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// What one MQTT message decoded to. A batch may give readings *and* rejections:
/// the good readings are kept, each bad one is recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The meter the message came from, when that much could be told.
    pub meter: Option<MeterId>,
    pub readings: Vec<Reading>,
    pub rejections: Vec<Rejection>,
}

impl Decoded {
    pub fn rejected(meter: Option<MeterId>, rejection: Rejection) -> Self {
        Self {
            meter,
            readings: Vec::new(),
            rejections: vec![rejection],
        }
    }
}

/// Runs after the message's transaction has committed.
pub type Ack = Box<dyn FnOnce() + Send>;

/// Bytes of a rejected payload kept for installers to look at.
pub const REJECTED_PAYLOAD_BYTES: usize = 512;

/// One received message, decoded, waiting to be stored.
pub struct Message {
    pub topic: String,
    /// Wall clock at receipt.
    pub received_at: Timestamp,
    /// For the receipt-to-commit latency metric.
    pub received: Instant,
    pub decoded: Decoded,
    /// The payload's head (at most [`REJECTED_PAYLOAD_BYTES`]), kept when some
    /// of it was rejected.
    pub payload_head: Vec<u8>,
    pub ack: Option<Ack>,
}

/// What a committed batch did, for metrics, the alert engine and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub messages: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub register_resets: u64,
    /// Readings the meters' own counters say were lost on the way.
    pub missing: u64,
    pub rejected: u64,
    /// Meters seen for the first time.
    pub new_meters: u64,
    /// Meters with a new reading.
    pub touched: Vec<MeterId>,
}

/// Meters with new readings that the alert engine has not looked at yet. A
/// set: however far behind the engine falls, it holds each meter once.
#[derive(Debug, Default)]
pub struct TouchedMeters {
    meters: Mutex<HashSet<MeterId>>,
    changed: Condvar,
    closed: AtomicBool,
}

impl TouchedMeters {
    pub fn add(&self, meters: impl IntoIterator<Item = MeterId>) {
        self.meters.lock().expect("touched meters").extend(meters);
        self.changed.notify_one();
    }

    /// The writer has stopped: no more meters will come.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }

    /// Waits up to `timeout` for meters and takes them all; the flag says the
    /// writer has stopped.
    pub fn take(&self, timeout: Duration) -> (Vec<MeterId>, bool) {
        let guard = self.meters.lock().expect("touched meters");
        let (mut guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |meters| {
                meters.is_empty() && !self.closed.load(Ordering::Relaxed)
            })
            .expect("touched meters");
        let meters = guard.drain().collect();
        (meters, self.closed.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_meters_are_a_set_and_closing_wakes_the_taker() {
        let touched = std::sync::Arc::new(TouchedMeters::default());
        let a = MeterId::parse("A").unwrap();
        touched.add([a.clone(), a.clone(), MeterId::parse("B").unwrap()]);
        let (mut meters, closed) = touched.take(Duration::from_secs(1));
        meters.sort();
        assert_eq!(meters.len(), 2);
        assert!(!closed);
        let closer = touched.clone();
        let handle = std::thread::spawn(move || closer.close());
        let (meters, closed) = touched.take(Duration::from_secs(30));
        handle.join().unwrap();
        assert!(meters.is_empty() && closed);
    }
}
