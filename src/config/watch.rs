//! The `[watch]` section: how the alarm watches itself (who is told, when the
//! heartbeat goes, the thresholds of the system alerts).

use std::time::Duration;

use serde::Deserialize;

use super::validate::{at_least_one, Problems};
use super::*;
use crate::domain::{parse_duration, PhoneNumber};

/// How the alarm watches itself.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub admins: Vec<PhoneNumber>,
    /// Minutes after local midnight; `None`: no heartbeat.
    pub heartbeat_at_min: Option<u32>,
    pub ingest_silent_after_s: i64,
    pub disk_min_free_bytes: u64,
    pub provider_failures: u32,
    pub receipts_within_s: i64,
    pub engine_behind_s: i64,
    pub check_every: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatch {
    admins: Vec<String>,
    heartbeat_at: String,
    ingest_silent_after: String,
    disk_min_free_mb: u64,
    provider_failures: u32,
    receipts_within: String,
    engine_behind: String,
    check_every: String,
}

pub(super) fn validate_watch(raw: RawWatch, p: &mut Problems) -> WatchConfig {
    let mut admins = Vec::new();
    for number in &raw.admins {
        match PhoneNumber::parse(number) {
            Ok(phone) => admins.push(phone),
            Err(problem) => p.push(bad_value("watch.admins", number, problem.to_string())),
        }
    }
    let heartbeat_at_min = if raw.heartbeat_at.is_empty() {
        None
    } else {
        match chrono::NaiveTime::parse_from_str(&raw.heartbeat_at, "%H:%M") {
            Ok(time) => {
                use chrono::Timelike;
                Some(time.hour() * 60 + time.minute())
            }
            Err(_) => {
                p.push(bad_value(
                    "watch.heartbeat_at",
                    &raw.heartbeat_at,
                    "must be a time of day such as \"09:00\", or \"\"",
                ));
                None
            }
        }
    };
    let positive = |key: &'static str, text: &str, p: &mut Problems| -> i64 {
        match parse_duration(text) {
            Ok(seconds) if seconds > 0 => seconds,
            Ok(_) => {
                p.push(bad_value(key, text, "must be longer than 0"));
                1
            }
            Err(error) => {
                p.push(bad_value(key, text, error.to_string()));
                1
            }
        }
    };
    WatchConfig {
        admins,
        heartbeat_at_min,
        ingest_silent_after_s: positive("watch.ingest_silent_after", &raw.ingest_silent_after, p),
        disk_min_free_bytes: raw.disk_min_free_mb.saturating_mul(1024 * 1024),
        provider_failures: p.take(at_least_one(
            "watch.provider_failures",
            raw.provider_failures,
        )),
        receipts_within_s: positive("watch.receipts_within", &raw.receipts_within, p),
        engine_behind_s: positive("watch.engine_behind", &raw.engine_behind, p),
        check_every: Duration::from_secs(positive("watch.check_every", &raw.check_every, p) as u64),
    }
}
