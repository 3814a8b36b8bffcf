//! The `twilio` provider: the Messages API (form POST, HTTP Basic auth), free
//! text. With `sms.public_url` set it asks Twilio to post delivery receipts
//! to `<public_url>/sms/twilio/status`.

use super::{excerpt, exchange, SendError, SendFuture, Sent, Sms, SmsProvider};
use crate::config::TwilioConfig;

pub struct TwilioProvider {
    config: TwilioConfig,
    status_callback: Option<String>,
    client: reqwest::Client,
}

impl TwilioProvider {
    pub fn new(config: TwilioConfig, public_url: &str, client: reqwest::Client) -> Self {
        Self {
            status_callback: (!public_url.is_empty())
                .then(|| format!("{public_url}/sms/twilio/status")),
            config,
            client,
        }
    }

    /// The form fields of a message.
    pub fn form(&self, sms: &Sms) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("To", &sms.to);
        if self.config.from.is_empty() {
            form.append_pair("MessagingServiceSid", &self.config.messaging_service_sid);
        } else {
            form.append_pair("From", &self.config.from);
        }
        form.append_pair("Body", &sms.text);
        if let Some(url) = &self.status_callback {
            form.append_pair("StatusCallback", url);
        }
        form.finish()
    }
}

#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// What a refusal means: Twilio's error code decides for a 400.
pub fn classify(status: u16, code: Option<i64>, message: &str) -> SendError {
    let said = match code {
        Some(code) => format!("Twilio answered {status} (error {code}): {message}"),
        None => format!("Twilio answered {status}: {message}"),
    };
    match (status, code) {
        (429, _) | (_, Some(20429)) => SendError::RateLimited(said),
        (500..=599, _) => SendError::Transient(said),
        // Not a valid number, not a mobile, unsubscribed (STOP), unreachable.
        (_, Some(21211 | 21614 | 21610 | 21612)) => SendError::Permanent(said),
        _ => SendError::Account(said),
    }
}

impl SmsProvider for TwilioProvider {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn receipts(&self) -> bool {
        self.status_callback.is_some()
    }

    fn rate_per_second(&self) -> Option<u32> {
        Some(self.config.rate_per_second)
    }

    fn send<'a>(&'a self, sms: &'a Sms) -> SendFuture<'a> {
        Box::pin(async move {
            let url = format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                self.config.endpoint.trim_end_matches('/'),
                self.config.account_sid
            );
            let request = self
                .client
                .post(url)
                .basic_auth(
                    &self.config.account_sid,
                    Some(self.config.auth_token.expose()),
                )
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(self.form(sms));
            let (status, text) = exchange("Twilio", request).await?;
            let answer = serde_json::from_str::<Answer>(&text).ok();
            if status.is_success() {
                return match answer.and_then(|a| a.sid) {
                    Some(sid) => Ok(Sent {
                        reference: Some(sid),
                    }),
                    None => Err(SendError::MaybeSent(format!(
                        "Twilio answered {status} without a message sid: {}",
                        excerpt(&text)
                    ))),
                };
            }
            let (code, message) = match answer {
                Some(answer) => (answer.code, answer.message.unwrap_or_default()),
                None => (None, excerpt(&text)),
            };
            Err(classify(status.as_u16(), code, &message))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_decide_what_happens_next() {
        for (status, code, what) in [
            (429, None, "rate_limited"),
            (503, None, "transient"),
            (400, Some(21211), "permanent"),
            (401, Some(20003), "account"),
        ] {
            assert_eq!(
                classify(status, code, "").label(),
                what,
                "{status} {code:?}"
            );
        }
    }
}
