//! The notifier: delivers the outbox through the configured providers.
//!
//! It takes texts that are due (on the injected clock) and sends them, texts
//! to different phones at the same time (at most `sms.parallel`), one phone's
//! texts in order. Each attempt tries the first provider, and hands the text
//! to the second when the first cannot send it (no connection, 5xx, its rate
//! limit or daily cap, an account problem). A provider that may have taken the
//! text (a timeout after the request left) keeps it: the text is retried
//! through that provider only, so no text goes out through two. The outcome
//! is recorded: sent (by whom, with its reference for receipts); failed for
//! good (refused, or `max_attempts` ran out — then the alert's history says
//! so); or due again after a capped exponential back-off. A text is marked
//! sent only after a provider took it, so a crash in between sends it again
//! after restart with the same idempotency key — never loses it. It runs
//! apart from ingest and detection: a slow provider delays only texts.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{params, SendError, Sent, Sms, SmsProvider};
use crate::clock::SharedClock;
use crate::domain::mask_phone;
use crate::metrics::Metrics;
use crate::store::outbox::{Attempt, AttemptEnd, Claim, Notification};
use crate::store::prelude::*;
use crate::store::Store;

/// Texts taken per round.
const BATCH: usize = 50;
/// The longest retry delay, seconds.
const RETRY_MAX_S: i64 = 5 * 60;
/// Aliyun counts its daily cap by the calendar day in Beijing (UTC+8).
const CAP_DAY_OFFSET_S: i64 = 8 * 3600;

/// The delay in seconds before attempt `attempts + 1`, after `attempts`
/// failures: 1 s, 2 s, 4 s, … up to five minutes.
pub fn retry_delay_s(attempts: u32) -> i64 {
    (1i64 << attempts.min(20)).min(RETRY_MAX_S)
}

/// How an attempt ends, given the last provider's answer and the attempts
/// made before it: a failure worth retrying is retried until `max_attempts`
/// is reached; one the provider may have taken is pinned to it.
pub fn attempt_end(
    provider: &str,
    outcome: Result<Sent, SendError>,
    segments: u32,
    attempts_before: u32,
    max_attempts: u32,
    now: i64,
) -> AttemptEnd {
    let error = match outcome {
        Ok(sent) => {
            return AttemptEnd::Sent {
                provider: provider.to_string(),
                reference: sent.reference,
                segments,
            }
        }
        Err(SendError::Permanent(error)) => return AttemptEnd::Failed { error },
        Err(error) => error,
    };
    let pin = matches!(error, SendError::MaybeSent(_)).then(|| provider.to_string());
    let message = error.to_string();
    if attempts_before + 1 < max_attempts {
        AttemptEnd::Retry {
            error: message,
            at: now + retry_delay_s(attempts_before),
            pin,
        }
    } else {
        AttemptEnd::Failed {
            error: format!("{message} (gave up after {max_attempts} attempts)"),
        }
    }
}

/// Spaces one provider's requests `1 / rate` seconds apart.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    next: Option<tokio::time::Instant>,
}

impl Pace {
    pub fn new(per_second: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: None,
        }
    }

    /// Books the next slot after `now`; how long to wait for it.
    pub fn book(&mut self, now: tokio::time::Instant) -> Duration {
        let slot = self.next.map_or(now, |next| next.max(now));
        self.next = Some(slot + self.interval);
        slot - now
    }
}

/// What the notifier runs with.
pub struct Notifier {
    pub store: Store,
    /// First, then second.
    pub providers: Vec<Arc<dyn SmsProvider>>,
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    pub max_attempts: u32,
    pub parallel: usize,
    /// This gateway's claim on the texts it takes.
    pub claim: Claim,
}

impl Notifier {
    pub async fn run(self, shutdown: CancellationToken) {
        let paces: HashMap<&'static str, Mutex<Pace>> = self
            .providers
            .iter()
            .filter_map(|p| Some((p.name(), Mutex::new(Pace::new(p.rate_per_second()?)))))
            .collect();
        let shared = Arc::new(Shared {
            notifier: self,
            paces,
        });
        let gate = Arc::new(Semaphore::new(shared.notifier.parallel.max(1)));
        loop {
            let due_by = shared.now();
            let query = shared.notifier.store.clone();
            let claim = shared.notifier.claim.clone();
            let due =
                match tokio::task::spawn_blocking(move || query.claim_due(due_by, BATCH, &claim))
                    .await
                {
                    Ok(Ok(due)) => due,
                    Ok(Err(error)) => {
                        tracing::error!(%error, "cannot read the outbox");
                        Vec::new()
                    }
                    Err(_) => return,
                };
            let full = due.len() == BATCH;
            let mut tasks = tokio::task::JoinSet::new();
            for texts in by_phone(due) {
                let shared = shared.clone();
                let gate = gate.clone();
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    let Ok(_permit) = gate.acquire_owned().await else {
                        return;
                    };
                    for text in texts {
                        if shutdown.is_cancelled() {
                            return;
                        }
                        shared.deliver(text).await;
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            if shutdown.is_cancelled() {
                return;
            }
            if full {
                continue;
            }
            let query = shared.notifier.store.clone();
            let next_due = tokio::task::spawn_blocking(move || query.next_due())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            let wait = match next_due {
                Some(at) => Duration::from_secs((at - shared.now()).clamp(0, 5) as u64),
                None => Duration::from_secs(5),
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = shared.notifier.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Due texts grouped by phone, each group in due order, groups in the order
/// of their first text.
fn by_phone(due: Vec<Notification>) -> Vec<Vec<Notification>> {
    let mut groups: Vec<Vec<Notification>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for text in due {
        match index.get(&text.phone) {
            Some(&at) => groups[at].push(text),
            None => {
                index.insert(text.phone.clone(), groups.len());
                groups.push(vec![text]);
            }
        }
    }
    groups
}

struct Shared {
    notifier: Notifier,
    paces: HashMap<&'static str, Mutex<Pace>>,
}

impl Shared {
    fn now(&self) -> i64 {
        self.notifier.clock.now().secs()
    }

    /// The providers a text may go through: the one it is pinned to, or all.
    fn candidates(&self, text: &Notification) -> Result<Vec<Arc<dyn SmsProvider>>, String> {
        let providers = &self.notifier.providers;
        match &text.provider {
            None => Ok(providers.clone()),
            Some(name) => match providers.iter().find(|p| p.name() == name) {
                Some(provider) => Ok(vec![provider.clone()]),
                None => Err(format!(
                    "the text may only go through {name}, which is no longer configured"
                )),
            },
        }
    }

    /// How many texts from this template went to this phone through
    /// `provider` today, when the provider keeps a daily cap.
    async fn sent_today(&self, provider: &str, sms: &Sms, now: i64) -> u32 {
        let day_start = (now + CAP_DAY_OFFSET_S).div_euclid(86_400) * 86_400 - CAP_DAY_OFFSET_S;
        let (store, provider, phone, template) = (
            self.notifier.store.clone(),
            provider.to_string(),
            sms.to.clone(),
            sms.template.clone(),
        );
        tokio::task::spawn_blocking(move || {
            store.texts_sent_since(&provider, &phone, &template, day_start)
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0)
    }

    /// Whether this gateway still holds text `id`, renewing its claim: a
    /// text whose claim ran out while it waited (a slow provider, pacing)
    /// may have been taken by another gateway, and is left to it.
    async fn keep_claim(&self, id: i64) -> bool {
        let (store, claim, now) = (
            self.notifier.store.clone(),
            self.notifier.claim.clone(),
            self.now(),
        );
        match tokio::task::spawn_blocking(move || store.renew_claim(id, &claim, now)).await {
            Ok(Ok(held)) => held,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot renew the claim on a text; leaving it for later");
                false
            }
            Err(_) => false,
        }
    }

    /// One try through one provider; `None` when the text was taken over
    /// by another gateway before it could go out.
    async fn try_send(
        &self,
        provider: &dyn SmsProvider,
        sms: &Sms,
        id: i64,
    ) -> Option<Result<Sent, SendError>> {
        if let Some(cap) = provider.daily_cap(sms) {
            let sent = self.sent_today(provider.name(), sms, self.now()).await;
            if sent >= cap {
                let name = provider.name();
                return Some(Err(SendError::RateLimited(format!(
                    "{} has had {sent} texts from template \"{}\" through {name} today, and {name} refuses more than {cap} a day to one number unless the number is on the account's whitelist (add it there and to sms.{name}.whitelist; see docs/sms.md)",
                    mask_phone(&sms.to),
                    sms.template,
                ))));
            }
        }
        if let Some(pace) = self.paces.get(provider.name()) {
            let wait = pace.lock().await.book(tokio::time::Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        if !self.keep_claim(id).await {
            return None;
        }
        let outcome = provider.send(sms).await;
        let error = outcome.as_ref().err().map(ToString::to_string);
        self.notifier
            .metrics
            .record_send(provider.name(), error.as_deref());
        Some(outcome)
    }

    async fn deliver(&self, text: Notification) {
        let sms = Sms {
            to: text.phone.clone(),
            text: text.text.clone(),
            alert_id: text.alert_id,
            kind: text.kind.clone(),
            idempotency_key: text.idempotency_key.clone(),
            template: text.template.clone(),
            values: serde_json::from_str(&text.template_values).unwrap_or(serde_json::Value::Null),
        };
        let attempt = match self.candidates(&text) {
            Err(error) => Attempt {
                failovers: Vec::new(),
                provider: text.provider.clone(),
                end: AttemptEnd::Failed { error },
            },
            Ok(candidates) => match self.attempt(&text, &sms, &candidates).await {
                Some(attempt) => attempt,
                None => {
                    tracing::info!(
                        alert = sms.alert_id,
                        "another gateway took the text over; not sending it"
                    );
                    return;
                }
            },
        };
        let metrics = &self.notifier.metrics;
        let provider = attempt.provider.as_deref().unwrap_or("-");
        match &attempt.end {
            AttemptEnd::Sent { segments, .. } => {
                metrics.sms_sent.fetch_add(1, Relaxed);
                metrics
                    .sms_segments
                    .fetch_add(u64::from(*segments), Relaxed);
                tracing::info!(to = %mask_phone(&sms.to), alert = sms.alert_id, provider, "SMS sent");
            }
            AttemptEnd::Retry { error, .. } => {
                metrics.sms_retries.fetch_add(1, Relaxed);
                tracing::warn!(to = %mask_phone(&sms.to), alert = sms.alert_id, provider, %error, attempts = text.attempts + 1, "SMS not sent; will retry");
            }
            AttemptEnd::Failed { error } => {
                metrics.sms_failed.fetch_add(1, Relaxed);
                tracing::error!(to = %mask_phone(&sms.to), alert = sms.alert_id, provider, %error, "SMS not delivered; given up");
            }
        }
        let (store, id, finished) = (self.notifier.store.clone(), text.id, self.now());
        match tokio::task::spawn_blocking(move || store.record_attempt(id, &attempt, finished))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot record an SMS attempt"),
            Err(_) => {}
        }
    }

    /// Tries the candidates in order until one takes the text or says what
    /// must happen next.
    async fn attempt(
        &self,
        text: &Notification,
        sms: &Sms,
        candidates: &[Arc<dyn SmsProvider>],
    ) -> Option<Attempt> {
        let mut failovers = Vec::new();
        for (index, provider) in candidates.iter().enumerate() {
            let outcome = self.try_send(provider.as_ref(), sms, text.id).await?;
            let last = index + 1 == candidates.len();
            match outcome {
                Err(error) if error.other_may_try() && !last => {
                    tracing::warn!(to = %mask_phone(&sms.to), alert = sms.alert_id, provider = provider.name(), %error, "SMS provider could not send; handing the text to the next");
                    failovers.push((provider.name().to_string(), error.to_string()));
                }
                outcome => {
                    return Some(Attempt {
                        failovers,
                        provider: Some(provider.name().to_string()),
                        end: attempt_end(
                            provider.name(),
                            outcome,
                            params::segments(&sms.text),
                            text.attempts,
                            self.notifier.max_attempts,
                            self.now(),
                        ),
                    })
                }
            }
        }
        Some(Attempt {
            failovers,
            provider: None,
            end: AttemptEnd::Failed {
                error: "no SMS provider is configured".into(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        assert_eq!(retry_delay_s(0), 1);
        assert_eq!(retry_delay_s(1), 2);
        assert_eq!(retry_delay_s(4), 16);
        assert_eq!(retry_delay_s(30), 300);
    }

    #[test]
    fn a_text_is_given_up_after_max_attempts() {
        let busy = || Err(SendError::Transient("503".into()));
        assert_eq!(
            attempt_end("webhook", busy(), 1, 0, 3, 100),
            AttemptEnd::Retry {
                error: "temporary failure: 503".into(),
                at: 101,
                pin: None,
            }
        );
        assert!(matches!(
            attempt_end("webhook", busy(), 1, 1, 3, 100),
            AttemptEnd::Retry { .. }
        ));
        let AttemptEnd::Failed { error } = attempt_end("webhook", busy(), 1, 2, 3, 100) else {
            panic!("the third attempt is the last");
        };
        assert!(error.contains("gave up after 3 attempts"), "{error}");
        assert!(matches!(
            attempt_end(
                "webhook",
                Err(SendError::Permanent("400".into())),
                1,
                0,
                3,
                100
            ),
            AttemptEnd::Failed { .. }
        ));
        assert_eq!(
            attempt_end(
                "aliyun",
                Ok(Sent {
                    reference: Some("b".into())
                }),
                2,
                2,
                3,
                100
            ),
            AttemptEnd::Sent {
                provider: "aliyun".into(),
                reference: Some("b".into()),
                segments: 2
            }
        );
    }

    #[test]
    fn a_text_a_provider_may_have_taken_stays_with_it() {
        let AttemptEnd::Retry { pin, .. } = attempt_end(
            "aliyun",
            Err(SendError::MaybeSent("timeout".into())),
            1,
            0,
            3,
            100,
        ) else {
            panic!("retried");
        };
        assert_eq!(pin.as_deref(), Some("aliyun"));
    }

    #[test]
    fn paces_space_requests() {
        let start = tokio::time::Instant::now();
        let mut pace = Pace::new(4);
        assert_eq!(pace.book(start), Duration::ZERO);
        assert_eq!(pace.book(start), Duration::from_millis(250));
        assert_eq!(pace.book(start), Duration::from_millis(500));
        // After a quiet second, the next goes at once.
        assert_eq!(pace.book(start + Duration::from_secs(2)), Duration::ZERO);
    }
}

/// Two gateways' notifiers on one store: a text another gateway has taken
/// over is left to it, however long this one waited with it.
#[cfg(test)]
mod claims {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::{Config, ProviderChoice};
    use crate::domain::{Actor, Channel, Role, Timestamp};
    use crate::store::engine::{AlertDb, EngineTx, QueuedText};

    const T0: i64 = 1_795_392_000;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_text_another_gateway_took_over_is_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("claims.db")).unwrap();
        let households = crate::registry::parse_csv(
            include_str!("../../tests/fixtures/csv/good.csv"),
            &Default::default(),
        )
        .unwrap();
        let installer = Actor::new("installer", Role::Installer, Channel::Cli);
        crate::actions::meters::register(&store, &installer, &households, T0).unwrap();
        let household = store.household("ZS-0001").unwrap().unwrap();
        let mut engine = AlertDb::open(&store).unwrap();
        let tx = engine.transaction().unwrap();
        let alert_id = tx
            .insert_alert(&crate::store::tests::urgent_alert(household.id, T0, T0))
            .unwrap();
        tx.enqueue(
            &QueuedText {
                alert_id,
                phone: "+8613800138000",
                recipient: "李敏",
                step: 1,
                purpose: "alert",
                text: "ZS-0001 no water for 24 h",
                idempotency_key: "taken-over",
                template: "no_usage.alert",
                template_values: "{}",
            },
            T0,
        )
        .unwrap();
        tx.commit().unwrap();

        // An SMS gateway that counts what it is sent.
        let posted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = posted.clone();
        let app = axum::Router::new().route(
            "/sms",
            axum::routing::post(move || {
                counter.fetch_add(1, Relaxed);
                async { "ok" }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sms", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        // Gateway A claimed the text at T0; gateway B took it over once A's
        // claim ran out. A, back from its wait, must leave it to B.
        let clock = ManualClock::at(Timestamp::from_secs(T0));
        let shared_clock: crate::clock::SharedClock = clock.clone();
        let mut config = Config::default_config();
        config.sms.provider = ProviderChoice::Webhook { url, token: None };
        let claim = |holder: &str| Claim {
            holder: holder.into(),
            lease_s: 30,
        };
        let text = store.claim_due(T0, 10, &claim("gw-a")).unwrap().remove(0);
        clock.set(Timestamp::from_secs(T0 + 31));
        assert_eq!(
            store.claim_due(T0 + 31, 10, &claim("gw-b")).unwrap().len(),
            1
        );
        let notifier = |holder: &str| Shared {
            notifier: Notifier {
                store: store.clone(),
                providers: crate::notify::build(&config.sms, &shared_clock).unwrap(),
                wake: Arc::default(),
                metrics: Arc::default(),
                clock: shared_clock.clone(),
                max_attempts: 5,
                parallel: 1,
                claim: claim(holder),
            },
            paces: HashMap::new(),
        };
        notifier("gw-a").deliver(text.clone()).await;
        assert_eq!(
            posted.load(Relaxed),
            0,
            "gateway A sent a text gateway B holds"
        );
        let still = store.notifications(None).unwrap().remove(0);
        assert_eq!((still.state.as_str(), still.attempts), ("pending", 0));

        // B, holding it, sends it.
        notifier("gw-b").deliver(text).await;
        assert_eq!(posted.load(Relaxed), 1);
        assert_eq!(store.notifications(None).unwrap()[0].state, "sent");
    }
}
