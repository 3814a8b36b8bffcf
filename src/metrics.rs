//! Counters and gauges of the running gateway, rendered in the Prometheus text
//! format for `/metrics`.
//!
//! Plain atomics: every task updates them without locks, and nothing here does
//! I/O. Names follow Prometheus conventions (`_total` for counters).

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::pipeline::RejectReason;
use crate::pipeline::{BatchOutcome, Message};

/// Upper bounds of the commit batch size histogram (messages per transaction).
const BATCH_BUCKETS: [u64; 10] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

#[derive(Debug, Default)]
pub struct Metrics {
    pub messages_received: AtomicU64,
    pub readings_accepted: AtomicU64,
    pub readings_duplicate: AtomicU64,
    pub readings_out_of_order: AtomicU64,
    pub register_resets: AtomicU64,
    /// Readings the meters' own counters (`seq`) say never arrived.
    pub readings_missing: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
    pub meters_known: AtomicU64,
    commits: AtomicU64,
    /// Cumulative counts per bucket of `BATCH_BUCKETS`, then +Inf.
    batch_buckets: [AtomicU64; BATCH_BUCKETS.len() + 1],
    batch_messages: AtomicU64,
    commit_latency_micros: AtomicU64,
    /// Wall clock minus the meter clock of the newest committed reading, seconds.
    event_lag_seconds: AtomicI64,
    /// When the newest committed message was received (wall clock, injected;
    /// 0 before the first).
    pub last_received_at: AtomicI64,
    pub store_errors: AtomicU64,
    /// Folds of the reading log into chunks and meter state.
    pub folds: AtomicU64,
    /// Embedded: the server listens. External: connected to the broker and
    /// subscribed (set on SubAck, cleared on any connection error).
    pub mqtt_connected: AtomicBool,
    pub mqtt_connections: AtomicU64,
    pub mqtt_errors: AtomicU64,
    /// Clients the embedded server refused for a wrong or missing username and password.
    pub mqtt_auth_failures: AtomicU64,
    /// QoS 1/2 messages the external broker says it dropped since it started
    /// (Mosquitto's `$SYS/broker/publish/messages/dropped`); 0 until it says.
    pub broker_dropped: AtomicI64,
    pub sms_sent: AtomicU64,
    pub sms_retries: AtomicU64,
    pub sms_failed: AtomicU64,
    /// SMS segments of the texts sent: what the providers bill.
    pub sms_segments: AtomicU64,
    /// Per SMS provider: what its sends did.
    providers: std::sync::Mutex<Vec<ProviderStats>>,
    /// Carrier platform messages by (platform, kind).
    pushes: std::sync::Mutex<Vec<(&'static str, &'static str, u64)>>,
    /// The open system alerts, as `kind` or `kind/subject`.
    system_alerts: std::sync::Mutex<Vec<String>>,
    /// Why a part of the gateway stopped, once one has: `/healthz` turns 503.
    failure: std::sync::Mutex<Option<String>>,
}

/// What one SMS provider's sends did since the gateway started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderStats {
    pub name: &'static str,
    pub sent: u64,
    /// Tries it could not send (each try, failovers included).
    pub failures: u64,
    /// Failed tries since its last success.
    pub failures_in_a_row: u32,
    pub last_error: Option<String>,
    pub receipts: u64,
}

impl Metrics {
    /// Records one try through `provider`: taken, or why not.
    pub fn record_send(&self, provider: &'static str, error: Option<&str>) {
        self.with_provider(provider, |stats| match error {
            None => {
                stats.sent += 1;
                stats.failures_in_a_row = 0;
            }
            Some(error) => {
                stats.failures += 1;
                stats.failures_in_a_row += 1;
                stats.last_error = Some(error.to_string());
            }
        });
    }

    /// Records a delivery receipt from `provider`.
    pub fn record_receipt(&self, provider: &'static str) {
        self.with_provider(provider, |stats| stats.receipts += 1);
    }

    fn with_provider(&self, provider: &'static str, change: impl FnOnce(&mut ProviderStats)) {
        let mut providers = self.providers.lock().unwrap_or_else(|e| e.into_inner());
        match providers.iter_mut().find(|p| p.name == provider) {
            Some(stats) => change(stats),
            None => {
                let mut stats = ProviderStats {
                    name: provider,
                    ..ProviderStats::default()
                };
                change(&mut stats);
                providers.push(stats);
            }
        }
    }

    pub fn provider_stats(&self) -> Vec<ProviderStats> {
        self.providers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts one message pushed by a carrier platform: `data`, `online`,
    /// `offline`, `other` (a command's result, an event) or `unreadable`.
    pub fn record_push(&self, platform: &'static str, kind: &'static str) {
        let mut pushes = self.pushes.lock().unwrap_or_else(|e| e.into_inner());
        match pushes
            .iter_mut()
            .find(|(p, k, _)| *p == platform && *k == kind)
        {
            Some((_, _, count)) => *count += 1,
            None => pushes.push((platform, kind, 1)),
        }
    }

    /// The open system alerts, as the self-watch last saw them.
    pub fn set_system_alerts(&self, open: Vec<String>) {
        *self.system_alerts.lock().unwrap_or_else(|e| e.into_inner()) = open;
    }

    pub fn system_alerts(&self) -> Vec<String> {
        self.system_alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records that a part stopped (the first reason is kept).
    pub fn record_failure(&self, why: &str) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        failure.get_or_insert_with(|| why.to_string());
    }

    /// Why a part stopped, if one has.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason.index()].load(Relaxed)
    }

    /// Called by the writer after each commit.
    pub fn record_batch(&self, outcome: &BatchOutcome, batch: &[Message], new_meters: u64) {
        self.readings_accepted.fetch_add(outcome.accepted, Relaxed);
        self.readings_duplicate
            .fetch_add(outcome.duplicates, Relaxed);
        self.readings_out_of_order
            .fetch_add(outcome.out_of_order, Relaxed);
        self.register_resets
            .fetch_add(outcome.register_resets, Relaxed);
        self.readings_missing.fetch_add(outcome.missing, Relaxed);
        self.meters_known.fetch_add(new_meters, Relaxed);
        self.commits.fetch_add(1, Relaxed);
        self.batch_messages.fetch_add(outcome.messages, Relaxed);
        for (index, bound) in BATCH_BUCKETS.iter().enumerate() {
            if outcome.messages <= *bound {
                self.batch_buckets[index].fetch_add(1, Relaxed);
            }
        }
        self.batch_buckets[BATCH_BUCKETS.len()].fetch_add(1, Relaxed);
        // Lag is judged against the batch's own receipt times: no clock read here.
        let now = batch.iter().map(|m| m.received_at).max();
        let mut newest = None;
        for message in batch {
            self.commit_latency_micros
                .fetch_add(message.received.elapsed().as_micros() as u64, Relaxed);
            for rejection in &message.decoded.rejections {
                self.rejected[rejection.reason.index()].fetch_add(1, Relaxed);
            }
            newest = newest.max(message.decoded.readings.iter().map(|r| r.ts).max());
        }
        if let Some(now) = now {
            self.last_received_at.fetch_max(now.secs(), Relaxed);
        }
        if let (Some(now), Some(newest)) = (now, newest) {
            self.event_lag_seconds.store(now - newest, Relaxed);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "stillwater_mqtt_messages_received_total",
            "MQTT messages received from the broker.",
            self.messages_received.load(Relaxed),
        );
        counter(
            "stillwater_readings_accepted_total",
            "Readings committed to the store.",
            self.readings_accepted.load(Relaxed),
        );
        counter(
            "stillwater_readings_duplicate_total",
            "Readings ignored because the meter already had one at that second.",
            self.readings_duplicate.load(Relaxed),
        );
        counter(
            "stillwater_readings_out_of_order_total",
            "Readings stored that were older than the meter's newest.",
            self.readings_out_of_order.load(Relaxed),
        );
        counter(
            "stillwater_register_resets_total",
            "Readings whose register was lower than the one before (meter replaced or reset).",
            self.register_resets.load(Relaxed),
        );
        counter(
            "stillwater_readings_missing_total",
            "Readings the meters' own message counters (seq) say were sent and never arrived.",
            self.readings_missing.load(Relaxed),
        );
        counter(
            "stillwater_store_errors_total",
            "Failed commits (each retried).",
            self.store_errors.load(Relaxed),
        );
        counter(
            "stillwater_store_folds_total",
            "Folds of committed readings from the reading log into their chunks and meter state.",
            self.folds.load(Relaxed),
        );
        counter(
            "stillwater_mqtt_connections_total",
            "Successful connections to the broker.",
            self.mqtt_connections.load(Relaxed),
        );
        counter(
            "stillwater_mqtt_errors_total",
            "External broker connection errors; embedded server connections closed for breaking the protocol.",
            self.mqtt_errors.load(Relaxed),
        );
        counter(
            "stillwater_mqtt_auth_failures_total",
            "Clients the embedded MQTT server refused for a wrong or missing username and password.",
            self.mqtt_auth_failures.load(Relaxed),
        );
        counter(
            "stillwater_sms_sent_total",
            "Texts the provider accepted.",
            self.sms_sent.load(Relaxed),
        );
        counter(
            "stillwater_sms_retries_total",
            "Attempts that failed temporarily and will be retried.",
            self.sms_retries.load(Relaxed),
        );
        counter(
            "stillwater_sms_failed_total",
            "Texts the provider refused for good.",
            self.sms_failed.load(Relaxed),
        );
        counter(
            "stillwater_sms_segments_total",
            "SMS segments of the texts sent (70 Chinese or 160 GSM characters each; what providers bill).",
            self.sms_segments.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP stillwater_readings_rejected_total Messages or batch entries rejected, by reason.\n# TYPE stillwater_readings_rejected_total counter"
        );
        for reason in RejectReason::ALL {
            let _ = writeln!(
                out,
                "stillwater_readings_rejected_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                self.rejected(reason)
            );
        }
        let _ = writeln!(
            out,
            "# HELP stillwater_commit_batch_messages Messages per store transaction.\n# TYPE stillwater_commit_batch_messages histogram"
        );
        for (index, bound) in BATCH_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "stillwater_commit_batch_messages_bucket{{le=\"{bound}\"}} {}",
                self.batch_buckets[index].load(Relaxed)
            );
        }
        let commits = self.commits.load(Relaxed);
        let _ = writeln!(
            out,
            "stillwater_commit_batch_messages_bucket{{le=\"+Inf\"}} {commits}"
        );
        let _ = writeln!(
            out,
            "stillwater_commit_batch_messages_sum {}",
            self.batch_messages.load(Relaxed)
        );
        let _ = writeln!(out, "stillwater_commit_batch_messages_count {commits}");
        let _ = writeln!(
            out,
            "# HELP stillwater_ingest_commit_seconds Time from receiving a message to committing it.\n# TYPE stillwater_ingest_commit_seconds summary\nstillwater_ingest_commit_seconds_sum {}\nstillwater_ingest_commit_seconds_count {}",
            self.commit_latency_micros.load(Relaxed) as f64 / 1e6,
            self.batch_messages.load(Relaxed)
        );
        let mut gauge = |name: &str, help: &str, value: i64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "stillwater_ingest_event_lag_seconds",
            "Wall clock minus the meter timestamp of the newest committed reading.",
            self.event_lag_seconds.load(Relaxed),
        );
        gauge(
            "stillwater_meters_known",
            "Meters that have ever published.",
            self.meters_known.load(Relaxed) as i64,
        );
        gauge(
            "stillwater_mqtt_connected",
            "1 while the embedded server listens, or connected to the external broker and subscribed.",
            i64::from(self.mqtt_connected.load(Relaxed)),
        );
        gauge(
            "stillwater_broker_dropped_messages",
            "Messages the external broker reports having dropped since it started (Mosquitto's $SYS/broker/publish/messages/dropped); 0 when it does not say.",
            self.broker_dropped.load(Relaxed),
        );
        let providers = self.provider_stats();
        for (name, help, value) in [
            (
                "stillwater_sms_provider_sent_total",
                "Texts each SMS provider took.",
                (|p: &ProviderStats| p.sent) as fn(&ProviderStats) -> u64,
            ),
            (
                "stillwater_sms_provider_failures_total",
                "Tries each SMS provider could not send (failovers included).",
                |p| p.failures,
            ),
            (
                "stillwater_sms_provider_failures_in_a_row",
                "Failed tries through each SMS provider since its last success.",
                |p| u64::from(p.failures_in_a_row),
            ),
            (
                "stillwater_sms_provider_receipts_total",
                "Delivery receipts each SMS provider posted.",
                |p| p.receipts,
            ),
        ] {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for provider in &providers {
                let _ = writeln!(
                    out,
                    "{name}{{provider=\"{}\"}} {}",
                    provider.name,
                    value(provider)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP stillwater_platform_messages_total Messages pushed by carrier IoT platforms, by platform and kind.\n# TYPE stillwater_platform_messages_total counter"
        );
        for (platform, kind, count) in self.pushes.lock().unwrap_or_else(|e| e.into_inner()).iter()
        {
            let _ = writeln!(
                out,
                "stillwater_platform_messages_total{{platform=\"{platform}\",kind=\"{kind}\"}} {count}"
            );
        }
        let system = self.system_alerts();
        let _ = writeln!(
            out,
            "# HELP stillwater_system_alerts_open System alerts open (the gateway watching itself), by kind.\n# TYPE stillwater_system_alerts_open gauge\nstillwater_system_alerts_open {}",
            system.len()
        );
        for alert in &system {
            let _ = writeln!(out, "stillwater_system_alerts_open{{alert=\"{alert}\"}} 1");
        }
        out
    }
}
