//! The `webhook` provider: POSTs each text as JSON to an in-house SMS gateway.
//!
//! Body: `{"to", "text", "alert_id", "kind", "idempotency_key", "template",
//! "values"}`, with
//! `Authorization: Bearer …` when a token is configured. 2xx is sent; 429 is a
//! rate limit; 5xx and connection errors are temporary; a timeout may have
//! been sent; 401 and 403 are the account's; other statuses refuse the text.

use std::time::Duration;

use super::{request_error, SendError, SendFuture, Sent, Sms, SmsProvider};
use crate::config::Secret;

pub struct WebhookProvider {
    client: reqwest::Client,
    url: String,
    token: Option<Secret>,
}

/// Checks `[sms.webhook]`: the problem, named by key, if there is one.
pub fn check(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!(
            "config key `sms.webhook.url` = {url:?}: must be an http:// or https:// URL when sms.provider = \"webhook\""
        ))
    }
}

impl WebhookProvider {
    pub fn new(url: &str, token: Option<Secret>, timeout: Duration) -> anyhow::Result<Self> {
        check(url).map_err(anyhow::Error::msg)?;
        Ok(Self {
            client: reqwest::Client::builder().timeout(timeout).build()?,
            url: url.to_string(),
            token,
        })
    }
}

impl SmsProvider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, sms: &'a Sms) -> SendFuture<'a> {
        Box::pin(async move {
            let body = serde_json::json!({
                "to": sms.to,
                "text": sms.text,
                "alert_id": sms.alert_id,
                "kind": sms.kind,
                "idempotency_key": sms.idempotency_key,
                "template": sms.template,
                "values": sms.values,
            });
            let mut request = self.client.post(&self.url).json(&body);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose());
            }
            let response = request
                .send()
                .await
                .map_err(|error| request_error("the SMS webhook", error))?;
            let status = response.status();
            if status.is_success() {
                return Ok(Sent::default());
            }
            let detail = super::excerpt(&response.text().await.unwrap_or_default());
            let said = format!("SMS webhook answered {status}: {detail}");
            Err(match status.as_u16() {
                429 => SendError::RateLimited(said),
                500..=599 => SendError::Transient(said),
                401 | 403 => SendError::Account(said),
                _ => SendError::Permanent(said),
            })
        })
    }
}
