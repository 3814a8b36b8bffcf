//! The alarm watches itself: a welfare alarm must not fail silently.
//!
//! Every `watch.check_every` it looks at the gateway from outside the parts
//! it watches and opens a system alert — recorded with the meters' alerts,
//! shown in `alerts list` and `/metrics`, texted to `watch.admins` — when:
//!
//! - `ingest_silent`: no message at all arrived for `ingest_silent_after`
//!   (on the injected clock) while meters are known;
//! - `disk_low`: the database's filesystem has less than `disk_min_free_mb` free;
//! - `store_unwritable`: a small write to the database fails. That alert
//!   cannot be stored, so it is texted straight through the providers (once
//!   per outage), `/healthz` turns 503, and once writes work again the
//!   outage is recorded as a resolved system alert;
//! - `sms_failing` (per provider): `provider_failures` failed tries in a row;
//! - `receipts_missing` (per provider that posts receipts): three or more
//!   texts sent over a day, none with a receipt after `receipts_within`;
//! - `engine_behind`: the alert engine's timer has not run for
//!   `engine_behind` of real time (a stuck thread, not a quiet clock).
//!
//! An alert resolves by itself when its condition has cleared. Once a day at
//! `heartbeat_at` every administrator gets a heartbeat text through each
//! configured provider, pinned to it: a provider that stops working shows up
//! even when nothing else needs sending. Which conditions hold is a pure
//! function of what was seen ([`conditions`]); this module only gathers what
//! it needs and applies the result.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::{Language, WatchConfig};
use crate::domain::{mask_phone, TemplateValues};
use crate::metrics::{Metrics, ProviderStats};
use crate::notify::{templates, Sms, SmsProvider};
use crate::store::prelude::*;
use crate::store::system::AdminText;
use crate::store::Store;

/// Texts without a receipt before `receipts_missing` opens.
const RECEIPTS_AT_LEAST: u32 = 3;

/// What one check saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Wall clock (injected).
    pub now: i64,
    pub meters_known: u64,
    /// When the last message arrived, wall clock (the start when none has
    /// since).
    pub reading_seen_at: i64,
    /// Free bytes under the database's directory, when known.
    pub disk_free: Option<u64>,
    /// Why the database took no write, when it did not.
    pub store_error: Option<String>,
    pub providers: Vec<ProviderStats>,
    /// Per provider that posts receipts: texts sent in the window, and how many have one.
    pub receipts: Vec<(&'static str, u32, u32)>,
    /// Real seconds since the alert engine's timer last ran.
    pub engine_quiet_s: i64,
}

/// A condition that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: &'static str,
    /// The provider it is about, or "".
    pub subject: String,
    pub en: String,
    pub zh: String,
}

impl Condition {
    fn new(kind: &'static str, subject: &str, en: String, zh: String) -> Self {
        Self {
            kind,
            subject: subject.to_string(),
            en,
            zh,
        }
    }

    /// What is wrong, in the texts' language.
    pub fn words(&self, language: Language) -> &str {
        match language {
            Language::Zh => &self.zh,
            Language::En => &self.en,
        }
    }

    /// `kind` or `kind/subject`, as `/metrics` lists it.
    pub fn label(&self) -> String {
        if self.subject.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}/{}", self.kind, self.subject)
        }
    }
}

/// The conditions that hold, given what was seen.
pub fn conditions(seen: &Seen, config: &WatchConfig) -> Vec<Condition> {
    let mut out = Vec::new();
    let silent = seen.now - seen.reading_seen_at;
    if seen.meters_known > 0 && silent >= config.ingest_silent_after_s {
        let hours = silent / 3600;
        out.push(Condition::new(
            "ingest_silent",
            "",
            format!(
                "no meter reading has arrived for {hours} h ({} min)",
                silent / 60
            ),
            format!("已 {hours} 小时（{} 分钟）未收到任何水表读数", silent / 60),
        ));
    }
    if let Some(free) = seen.disk_free {
        if free < config.disk_min_free_bytes {
            let mb = free / (1024 * 1024);
            out.push(Condition::new(
                "disk_low",
                "",
                format!("only {mb} MB free on the database's disk"),
                format!("数据库所在磁盘仅剩 {mb} MB"),
            ));
        }
    }
    if let Some(error) = &seen.store_error {
        out.push(Condition::new(
            "store_unwritable",
            "",
            format!("the database cannot be written: {error}"),
            format!("数据库无法写入：{error}"),
        ));
    }
    for provider in &seen.providers {
        if provider.failures_in_a_row >= config.provider_failures {
            let n = provider.failures_in_a_row;
            let error = provider.last_error.as_deref().unwrap_or("");
            out.push(Condition::new(
                "sms_failing",
                provider.name,
                format!(
                    "{n} texts in a row could not be sent through {}: {error}",
                    provider.name
                ),
                format!("短信通道 {} 连续 {n} 次发送失败：{error}", provider.name),
            ));
        }
    }
    for &(provider, sent, with_receipt) in &seen.receipts {
        if sent >= RECEIPTS_AT_LEAST && with_receipt == 0 {
            let hours = config.receipts_within_s / 3600;
            out.push(Condition::new(
                "receipts_missing",
                provider,
                format!("none of the {sent} texts sent through {provider} has a delivery receipt after {hours} h"),
                format!("经 {provider} 发出的 {sent} 条短信 {hours} 小时后仍无送达回执"),
            ));
        }
    }
    if seen.engine_quiet_s >= config.engine_behind_s {
        let minutes = seen.engine_quiet_s / 60;
        out.push(Condition::new(
            "engine_behind",
            "",
            format!("the alert engine has not run for {minutes} min"),
            format!("预警引擎已 {minutes} 分钟未运行"),
        ));
    }
    out
}

/// Free bytes for unprivileged users on the filesystem holding `dir`.
pub fn disk_free(dir: &std::path::Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// What the watch runs with.
pub struct Watch {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    pub config: WatchConfig,
    pub language: Language,
    pub timezone: chrono_tz::Tz,
    pub providers: Vec<Arc<dyn SmsProvider>>,
    /// The wall time the alert engine's timer last ran for.
    pub engine_tick: Arc<AtomicI64>,
    /// Wakes the notifier when texts were queued.
    pub notifier: Arc<Notify>,
}

/// What the watch remembers between checks.
struct Memory {
    /// When the watch started (wall clock): silence counts from here at most.
    started: i64,
    tick: i64,
    tick_seen: Instant,
    /// Since when the database has refused writes, and the first reason.
    unwritable: Option<(i64, String)>,
}

impl Watch {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut memory = Memory {
            started: self.clock.now().secs(),
            tick: self.engine_tick.load(Ordering::Acquire),
            tick_seen: Instant::now(),
            unwritable: None,
        };
        loop {
            self.check(&mut memory).await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.check_every) => {}
            }
        }
    }

    async fn check(&self, memory: &mut Memory) {
        let now = self.clock.now().secs();
        let tick = self.engine_tick.load(Ordering::Acquire);
        if tick != memory.tick {
            memory.tick = tick;
            memory.tick_seen = Instant::now();
        }
        let store = self.store.clone();
        let receipt_providers: Vec<&'static str> = self
            .providers
            .iter()
            .filter(|p| p.receipts())
            .map(|p| p.name())
            .collect();
        let within = self.config.receipts_within_s;
        let gathered = tokio::task::spawn_blocking(move || {
            let store_error = store.mark_writable(now).err().map(|e| e.to_string());
            let disk = store
                .path()
                .and_then(std::path::Path::parent)
                .and_then(disk_free);
            let receipts: Vec<(&'static str, u32, u32)> = receipt_providers
                .into_iter()
                .filter_map(|name| {
                    let (sent, with) = store
                        .awaiting_receipts(name, now - 86_400 - within, now - within)
                        .ok()?;
                    Some((name, sent, with))
                })
                .collect();
            (store_error, disk, receipts)
        })
        .await;
        let Ok((store_error, disk_free, receipts)) = gathered else {
            return;
        };
        let seen = Seen {
            now,
            meters_known: self.metrics.meters_known.load(Ordering::Relaxed),
            reading_seen_at: memory
                .started
                .max(self.metrics.last_received_at.load(Ordering::Relaxed)),
            disk_free,
            store_error,
            providers: self.metrics.provider_stats(),
            receipts,
            engine_quiet_s: memory.tick_seen.elapsed().as_secs() as i64,
        };
        let holding = conditions(&seen, &self.config);
        self.metrics
            .set_system_alerts(holding.iter().map(Condition::label).collect());
        if let Some(error) = &seen.store_error {
            if memory.unwritable.is_none() {
                memory.unwritable = Some((now, error.clone()));
                tracing::error!(%error, "the database cannot be written; texting the administrators directly");
                let condition = holding.iter().find(|c| c.kind == "store_unwritable");
                if let Some(condition) = condition {
                    self.text_directly(condition, now).await;
                }
            }
            return;
        }
        let store = self.store.clone();
        if let Some((since, error)) = memory.unwritable.take() {
            // Writable again: the outage goes into the alerts' history.
            let detail = format!("the database could not be written: {error}");
            tracing::info!(since, "the database takes writes again");
            let recorded = tokio::task::spawn_blocking(move || {
                store.record_past_system_alert("store_unwritable", &detail, since, now)
            })
            .await;
            if !matches!(recorded, Ok(Ok(_))) {
                tracing::error!("cannot record the database's outage in the alerts");
            }
        }
        let store = self.store.clone();
        let admins = self.config.admins.clone();
        let language = self.language;
        let heartbeat = self.heartbeat_due(now);
        let provider_names: Vec<&'static str> = self.providers.iter().map(|p| p.name()).collect();
        let applied = tokio::task::spawn_blocking(move || {
            apply(
                &store,
                &holding,
                &admins,
                language,
                now,
                heartbeat,
                &provider_names,
            )
        })
        .await;
        match applied {
            Ok(Ok(true)) => self.notifier.notify_one(),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::error!(%error, "the self-watch cannot record system alerts"),
            Err(_) => {}
        }
    }

    /// Today's date in the configured zone, when the heartbeat time has passed.
    fn heartbeat_due(&self, now: i64) -> Option<String> {
        use chrono::{TimeZone, Timelike};
        let at = self.config.heartbeat_at_min?;
        if self.config.admins.is_empty() {
            return None;
        }
        let local = self.timezone.timestamp_opt(now, 0).single()?;
        let minute = local.hour() * 60 + local.minute();
        (minute >= at).then(|| local.format("%Y-%m-%d").to_string())
    }

    /// The database cannot be written: each administrator is texted through
    /// the first provider that takes it.
    async fn text_directly(&self, condition: &Condition, now: i64) {
        for admin in &self.config.admins {
            let values = TemplateValues {
                name: "Stillwater".into(),
                meter: "system".into(),
                flags: condition.words(self.language).to_string(),
                ..TemplateValues::default()
            };
            let sms = Sms {
                to: admin.as_str().to_string(),
                text: templates::system_notice(self.language, &values),
                alert_id: 0,
                kind: condition.kind.to_string(),
                idempotency_key: format!("store_unwritable-{now}-{}", admin.as_str()),
                template: "system.alert".into(),
                values: serde_json::to_value(&values).unwrap_or_default(),
            };
            for provider in &self.providers {
                match provider.send(&sms).await {
                    Ok(_) => {
                        tracing::info!(to = %mask_phone(&sms.to), provider = provider.name(), "administrator texted: the database cannot be written");
                        break;
                    }
                    Err(error) => {
                        tracing::error!(to = %mask_phone(&sms.to), provider = provider.name(), %error, "could not text an administrator");
                    }
                }
            }
        }
    }
}

/// Opens what newly holds, resolves what cleared, queues the day's heartbeat.
/// Whether texts were queued.
fn apply(
    store: &Store,
    holding: &[Condition],
    admins: &[crate::domain::PhoneNumber],
    language: Language,
    now: i64,
    heartbeat: Option<String>,
    providers: &[&'static str],
) -> Result<bool, crate::store::StoreError> {
    let mut queued = false;
    let active = store.active_system_alerts()?;
    for alert in &active {
        let holds = holding
            .iter()
            .any(|c| c.kind == alert.kind && c.subject == alert.subject);
        if !holds {
            tracing::info!(kind = %alert.kind, subject = %alert.subject, "system alert cleared");
            store.resolve_system_alert(alert.id, "the condition has cleared", now)?;
        }
    }
    for condition in holding {
        let words = condition.words(language).to_string();
        let texts = |id: i64, code_for: &dyn Fn(&str) -> Result<u32, crate::store::StoreError>| {
            admins
                .iter()
                .filter_map(|admin| {
                    let code = code_for(admin.as_str()).ok()?;
                    let values = TemplateValues {
                        name: "Stillwater".into(),
                        meter: crate::store::system::system_meter(&condition.subject),
                        flags: words.clone(),
                        code,
                        ..TemplateValues::default()
                    };
                    Some(AdminText {
                        phone: admin.as_str().to_string(),
                        text: templates::system_alert(language, &values),
                        template: "system.alert",
                        values: serde_json::to_string(&values).unwrap_or_default(),
                        provider: None,
                        idempotency_key: format!("a{id}-admin-{}", admin.as_str()),
                    })
                })
                .collect()
        };
        let opened = store.open_system_alert(
            condition.kind,
            &condition.subject,
            &condition.en,
            now,
            &texts,
        )?;
        if let Some(id) = opened {
            tracing::error!(alert = id, kind = condition.kind, subject = %condition.subject, detail = %condition.en, "system alert");
            queued |= !admins.is_empty();
        }
    }
    if let Some(day) = heartbeat {
        let mut texts = Vec::new();
        for provider in providers {
            for admin in admins {
                let values = TemplateValues {
                    name: "Stillwater".into(),
                    meter: provider.to_string(),
                    ..TemplateValues::default()
                };
                texts.push(AdminText {
                    phone: admin.as_str().to_string(),
                    text: templates::heartbeat(language, &values),
                    template: "system.heartbeat",
                    values: serde_json::to_string(&values).unwrap_or_default(),
                    provider: Some(provider.to_string()),
                    idempotency_key: format!("heartbeat-{day}-{provider}-{}", admin.as_str()),
                });
            }
        }
        let detail = format!("daily heartbeat through {}", providers.join(", "));
        queued |= store.queue_heartbeat(&day, &detail, &texts, now)?;
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WatchConfig {
        crate::config::Config::default_config().watch
    }

    fn quiet() -> Seen {
        Seen {
            now: 100_000,
            meters_known: 10,
            reading_seen_at: 100_000,
            disk_free: Some(10 << 30),
            ..Seen::default()
        }
    }

    #[test]
    fn a_healthy_gateway_raises_nothing() {
        assert_eq!(conditions(&quiet(), &config()), Vec::new());
    }

    #[test]
    fn each_condition_is_raised_past_its_threshold_only() {
        let config = config();
        let kinds = |seen: &Seen| -> Vec<String> {
            conditions(seen, &config)
                .iter()
                .map(Condition::label)
                .collect()
        };
        let mut seen = quiet();
        seen.reading_seen_at = seen.now - config.ingest_silent_after_s + 1;
        assert!(kinds(&seen).is_empty());
        seen.reading_seen_at -= 1;
        assert_eq!(kinds(&seen), ["ingest_silent"]);
        seen.meters_known = 0; // nothing registered yet: silence is expected
        assert!(kinds(&seen).is_empty());

        let mut seen = quiet();
        seen.disk_free = Some(config.disk_min_free_bytes - 1);
        assert_eq!(kinds(&seen), ["disk_low"]);

        let mut seen = quiet();
        seen.store_error = Some("disk I/O error".into());
        assert_eq!(kinds(&seen), ["store_unwritable"]);

        let mut seen = quiet();
        seen.providers = vec![
            ProviderStats {
                name: "aliyun",
                failures_in_a_row: config.provider_failures,
                last_error: Some("isv.AMOUNT_NOT_ENOUGH".into()),
                ..ProviderStats::default()
            },
            ProviderStats {
                name: "webhook",
                failures_in_a_row: config.provider_failures - 1,
                ..ProviderStats::default()
            },
        ];
        assert_eq!(kinds(&seen), ["sms_failing/aliyun"]);
        assert!(conditions(&seen, &config)[0]
            .zh
            .contains("isv.AMOUNT_NOT_ENOUGH"));

        let mut seen = quiet();
        seen.receipts = vec![("aliyun", 3, 0), ("tencent", 3, 1), ("twilio", 2, 0)];
        assert_eq!(kinds(&seen), ["receipts_missing/aliyun"]);

        let mut seen = quiet();
        seen.engine_quiet_s = config.engine_behind_s;
        assert_eq!(kinds(&seen), ["engine_behind"]);
    }

    #[test]
    fn disk_free_reads_the_filesystem() {
        let free = disk_free(&std::env::temp_dir()).expect("statvfs works on the temp dir");
        assert!(free > 0);
        assert_eq!(disk_free(std::path::Path::new("/no/such/dir")), None);
    }
}
