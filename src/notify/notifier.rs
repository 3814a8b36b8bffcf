//! The notifier: delivers the outbox through the configured provider.
//!
//! It takes texts that are due (on the injected clock), makes one attempt each,
//! and records the outcome: sent; failed for good (the provider refused it, or
//! `max_attempts` ran out — then the alert's history says so); or due again
//! after a capped exponential back-off (timeouts, 5xx, 429). A text is marked sent only
//! after the provider accepted it, so a crash in between sends it again after
//! restart with the same idempotency key — never loses it. It runs apart from
//! ingest and detection: a slow provider delays only texts.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{SendError, Sms, SmsProvider};
use crate::clock::SharedClock;
use crate::domain::mask_phone;
use crate::metrics::Metrics;
use crate::store::outbox::AttemptEnd;
use crate::store::prelude::*;
use crate::store::Store;

/// Texts taken per round.
const BATCH: usize = 50;
/// The longest retry delay, seconds.
const RETRY_MAX_S: i64 = 5 * 60;

/// The delay in seconds before attempt `attempts + 1`, after `attempts`
/// failures: 1 s, 2 s, 4 s, … up to five minutes.
pub fn retry_delay_s(attempts: u32) -> i64 {
    (1i64 << attempts.min(20)).min(RETRY_MAX_S)
}

/// How an attempt ends, given the provider's answer and the attempts made
/// before it: a temporary failure is retried until `max_attempts` is reached.
pub fn attempt_end(
    outcome: Result<(), SendError>,
    attempts_before: u32,
    max_attempts: u32,
    now: i64,
) -> AttemptEnd {
    match outcome {
        Ok(()) => AttemptEnd::Sent,
        Err(SendError::Transient(error)) if attempts_before + 1 < max_attempts => {
            AttemptEnd::Retry {
                error,
                at: now + retry_delay_s(attempts_before),
            }
        }
        Err(SendError::Transient(error)) => AttemptEnd::Failed {
            error: format!("{error} (gave up after {max_attempts} attempts)"),
        },
        Err(SendError::Permanent(error)) => AttemptEnd::Failed { error },
    }
}

pub async fn run(
    store: Store,
    provider: Arc<dyn SmsProvider>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    max_attempts: u32,
    shutdown: CancellationToken,
) {
    let now = move || clock.now().secs();
    loop {
        let due_by = now();
        let query = store.clone();
        let due = match tokio::task::spawn_blocking(move || query.due_notifications(due_by, BATCH))
            .await
        {
            Ok(Ok(due)) => due,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot read the outbox");
                Vec::new()
            }
            Err(_) => return,
        };
        for text in &due {
            if shutdown.is_cancelled() {
                return;
            }
            let sms = Sms {
                to: text.phone.clone(),
                text: text.text.clone(),
                alert_id: text.alert_id,
                kind: text.kind.clone(),
                idempotency_key: text.idempotency_key.clone(),
                template: text.template.clone(),
                values: serde_json::from_str(&text.template_values)
                    .unwrap_or(serde_json::Value::Null),
            };
            let outcome = provider.send(&sms).await;
            let finished = now();
            let end = attempt_end(outcome, text.attempts, max_attempts, finished);
            match &end {
                AttemptEnd::Sent => {
                    metrics.sms_sent.fetch_add(1, Relaxed);
                    tracing::info!(to = %mask_phone(&sms.to), alert = sms.alert_id, provider = provider.name(), "SMS sent");
                }
                AttemptEnd::Retry { error, .. } => {
                    metrics.sms_retries.fetch_add(1, Relaxed);
                    tracing::warn!(to = %mask_phone(&sms.to), alert = sms.alert_id, %error, attempts = text.attempts + 1, "SMS not sent; will retry");
                }
                AttemptEnd::Failed { error } => {
                    metrics.sms_failed.fetch_add(1, Relaxed);
                    tracing::error!(to = %mask_phone(&sms.to), alert = sms.alert_id, %error, "SMS not delivered; given up");
                }
            }
            let writer = store.clone();
            let id = text.id;
            match tokio::task::spawn_blocking(move || writer.record_attempt(id, &end, finished))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "cannot record an SMS attempt"),
                Err(_) => return,
            }
        }
        if due.len() == BATCH {
            continue;
        }
        let query = store.clone();
        let next_due = tokio::task::spawn_blocking(move || query.next_due())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let wait = match next_due {
            Some(at) => Duration::from_secs((at - now()).clamp(0, 5) as u64),
            None => Duration::from_secs(5),
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
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
            attempt_end(busy(), 0, 3, 100),
            AttemptEnd::Retry {
                error: "503".into(),
                at: 101
            }
        );
        assert!(matches!(
            attempt_end(busy(), 1, 3, 100),
            AttemptEnd::Retry { .. }
        ));
        let AttemptEnd::Failed { error } = attempt_end(busy(), 2, 3, 100) else {
            panic!("the third attempt is the last");
        };
        assert!(error.contains("gave up after 3 attempts"), "{error}");
        assert!(matches!(
            attempt_end(Err(SendError::Permanent("400".into())), 0, 3, 100),
            AttemptEnd::Failed { .. }
        ));
        assert_eq!(attempt_end(Ok(()), 2, 3, 100), AttemptEnd::Sent);
    }
}
