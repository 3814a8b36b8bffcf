//! The notifier: delivers the outbox through the configured provider.
//!
//! It takes texts that are due, makes one attempt each, and records the
//! outcome: sent; failed for good (the provider refused it); or due again after
//! a capped exponential back-off (timeouts, 5xx, 429). A text is marked sent only
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
use crate::store::Store;

/// Texts taken per round.
const BATCH: usize = 50;
/// First retry delay, and the longest.
const RETRY_FIRST_MS: i64 = 500;
const RETRY_MAX_MS: i64 = 5 * 60 * 1000;

/// The delay before attempt `attempts + 1`, after `attempts` failures.
pub fn retry_delay_ms(attempts: u32) -> i64 {
    RETRY_FIRST_MS
        .saturating_mul(1 << attempts.min(20))
        .min(RETRY_MAX_MS)
}

pub async fn run(
    store: Store,
    provider: Arc<dyn SmsProvider>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let now_ms = move || clock.now().secs() * 1000;
    loop {
        let now = now_ms();
        let query = store.clone();
        let due =
            match tokio::task::spawn_blocking(move || query.due_notifications(now, BATCH)).await {
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
            };
            let outcome = provider.send(&sms).await;
            let finished = now_ms();
            let record = match outcome {
                Ok(()) => {
                    metrics.sms_sent.fetch_add(1, Relaxed);
                    tracing::info!(to = %mask_phone(&sms.to), alert = sms.alert_id, provider = provider.name(), "SMS sent");
                    Ok(())
                }
                Err(SendError::Transient(error)) => {
                    metrics.sms_retries.fetch_add(1, Relaxed);
                    let retry_at = finished + retry_delay_ms(text.attempts);
                    tracing::warn!(to = %mask_phone(&sms.to), alert = sms.alert_id, %error, attempts = text.attempts + 1, "SMS not sent; will retry");
                    Err((error, Some(retry_at)))
                }
                Err(SendError::Permanent(error)) => {
                    metrics.sms_failed.fetch_add(1, Relaxed);
                    tracing::error!(to = %mask_phone(&sms.to), alert = sms.alert_id, %error, "SMS refused by the provider; not retried");
                    Err((error, None))
                }
            };
            let writer = store.clone();
            let id = text.id;
            match tokio::task::spawn_blocking(move || writer.record_attempt(id, record, finished))
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
            Some(at) => Duration::from_millis((at - now_ms()).clamp(0, 5_000) as u64),
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
    use super::retry_delay_ms;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        assert_eq!(retry_delay_ms(0), 500);
        assert_eq!(retry_delay_ms(1), 1_000);
        assert_eq!(retry_delay_ms(4), 8_000);
        assert_eq!(retry_delay_ms(30), 300_000);
    }
}
