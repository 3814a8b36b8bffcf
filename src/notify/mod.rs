//! Sending texts: the [`SmsProvider`] trait, one file per provider, templates,
//! and the notifier task that delivers the outbox.
//!
//! A provider makes exactly one attempt per call and says what its failure
//! means ([`SendError`]): whether to retry, and whether another provider may
//! take the text now. Retrying, back-off, failover, rate limits and recording
//! every attempt are the notifier's job. `callbacks` reads what the providers
//! post back (replies, delivery receipts). Adding a provider is a new file
//! here with its `[sms.NAME]` section, and a new arm in [`build_one`] and
//! [`check`].

mod aliyun;
pub mod callbacks;
mod log;
pub mod notifier;
pub mod params;
pub mod sign;
pub mod templates;
mod tencent;
mod twilio;
mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::{ProviderChoice, SmsConfig};

/// One text to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// E.164.
    pub to: String,
    pub text: String,
    pub alert_id: i64,
    pub kind: String,
    /// The same for every attempt at this text, so a gateway can drop repeats.
    pub idempotency_key: String,
    /// `<kind>.<purpose>`: the template the text was rendered from. Providers
    /// that send a registered template code with parameters (Aliyun, Tencent
    /// Cloud) map this key to their code and send `values`.
    pub template: String,
    /// The template's values.
    pub values: serde_json::Value,
}

/// What a provider said when it took a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id for the text (Aliyun `BizId`, Tencent `SerialNo`,
    /// Twilio `sid`): its delivery receipt names it.
    pub reference: Option<String>,
}

/// Why an attempt failed, and so what may happen next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Not sent, worth retrying: no connection, a 5xx, a provider's system
    /// error. Another provider may take it now.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The request left but no answer came (a timeout): the provider may have
    /// taken it. Retried through the same provider only, so that no text goes
    /// out through two.
    #[error("no answer, the text may have been taken: {0}")]
    MaybeSent(String),
    /// Not sent: the provider's rate limit or a daily cap. Another provider
    /// may take it now; this one later.
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// Not sent: this provider cannot send until someone fixes the account or
    /// its settings (credentials, balance, signature, a template). Another
    /// provider may take it; this one is retried with back-off.
    #[error("provider account or settings: {0}")]
    Account(String),
    /// This text can never be sent (an invalid number): given up at once.
    #[error("refused: {0}")]
    Permanent(String),
}

impl SendError {
    /// A short name of what happened, for logs and tests.
    pub fn label(&self) -> &'static str {
        match self {
            SendError::Transient(_) => "transient",
            SendError::MaybeSent(_) => "maybe_sent",
            SendError::RateLimited(_) => "rate_limited",
            SendError::Account(_) => "account",
            SendError::Permanent(_) => "permanent",
        }
    }

    /// Whether another provider may try the same text now.
    pub fn other_may_try(&self) -> bool {
        matches!(
            self,
            SendError::Transient(_) | SendError::RateLimited(_) | SendError::Account(_)
        )
    }
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Sent, SendError>> + Send + 'a>>;

/// A way to send texts. One attempt per call.
pub trait SmsProvider: Send + Sync {
    /// The provider's name (`ProviderChoice::name`), for logs, metrics and the outbox.
    fn name(&self) -> &'static str;
    fn send<'a>(&'a self, sms: &'a Sms) -> SendFuture<'a>;
    /// Whether it posts delivery receipts back (so their absence means something).
    fn receipts(&self) -> bool {
        false
    }
    /// Sends per second at most.
    fn rate_per_second(&self) -> Option<u32> {
        None
    }
    /// The provider's own cap on texts from one template to `sms`'s number
    /// in a day, when it keeps one for that number.
    fn daily_cap(&self, _sms: &Sms) -> Option<u32> {
        None
    }
}

/// A connection or timeout error of a request, classified: a request that
/// never reached the provider is transient; one that may have is `MaybeSent`.
pub(crate) fn request_error(provider: &str, error: reqwest::Error) -> SendError {
    // The URL may carry a request's signature: it stays out of messages.
    let error = error.without_url();
    if error.is_connect() || error.is_builder() || error.is_request() && !error.is_timeout() {
        SendError::Transient(format!("cannot reach {provider}: {error}"))
    } else {
        SendError::MaybeSent(format!("no answer from {provider}: {error}"))
    }
}

/// Sends a provider request and reads its whole answer: status and body.
pub(crate) async fn exchange(
    provider: &str,
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, String), SendError> {
    let response = request
        .send()
        .await
        .map_err(|error| request_error(provider, error))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|error| SendError::MaybeSent(format!("{provider}'s answer broke off: {error}")))?;
    Ok((status, body))
}

/// An answer that is not the provider's JSON: after a 5xx the text was not
/// taken; after a 2xx it may have been; anything else is the account's or
/// the settings' (a proxy, a wrong endpoint).
pub(crate) fn unreadable(provider: &str, status: reqwest::StatusCode, body: &str) -> SendError {
    let said = format!("{provider} answered {status}: {}", excerpt(body));
    if status.is_server_error() {
        SendError::Transient(said)
    } else if status.is_success() {
        SendError::MaybeSent(format!("{said} (not the answer it documents)"))
    } else {
        SendError::Account(said)
    }
}

/// The first 200 characters of a body, for an error message.
pub(crate) fn excerpt(body: &str) -> String {
    body.chars().take(200).collect()
}

/// Each configured provider checks its own section and templates: the
/// problems (`check-config` reports them with the file's other problems; the
/// gateway logs them at start).
pub fn check(config: &SmsConfig) -> Vec<String> {
    let mut problems = Vec::new();
    for provider in config.providers() {
        match provider {
            ProviderChoice::Log => {}
            ProviderChoice::Webhook { url, .. } => problems.extend(webhook::check(url).err()),
            ProviderChoice::Aliyun(aliyun) => {
                problems.extend(params::missing("sms.aliyun.templates", &aliyun.templates))
            }
            ProviderChoice::Tencent(tencent) => {
                problems.extend(params::missing("sms.tencent.templates", &tencent.templates))
            }
            ProviderChoice::Twilio(_) if config.public_url.is_empty() => problems.push(
                "sms.public_url is not set: Twilio cannot post delivery receipts, and its replies cannot be verified".into(),
            ),
            ProviderChoice::Twilio(_) => {}
        }
        let unsigned_callbacks = matches!(
            provider,
            ProviderChoice::Aliyun(_) | ProviderChoice::Tencent(_)
        );
        if unsigned_callbacks && config.callback_token.is_none() {
            problems.push(format!(
                "{}: replies and delivery receipts need the callback path token in {}",
                provider.name(),
                crate::config::SMS_CALLBACK_TOKEN_ENV
            ));
        }
    }
    problems
}

/// Builds one provider.
pub fn build_one(
    choice: &ProviderChoice,
    config: &SmsConfig,
    clock: &SharedClock,
) -> anyhow::Result<Arc<dyn SmsProvider>> {
    // A provider that cannot be reached must fail as a connection error (it
    // surely took nothing, so the second provider may send) before the whole
    // attempt's time runs out (then it may have taken the text).
    let client = || {
        reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout / 2)
            .build()
    };
    Ok(match choice {
        ProviderChoice::Log => Arc::new(log::LogProvider),
        ProviderChoice::Webhook { url, token } => Arc::new(webhook::WebhookProvider::new(
            url,
            token.clone(),
            config.timeout,
        )?),
        ProviderChoice::Aliyun(aliyun) => Arc::new(aliyun::AliyunProvider::new(
            (**aliyun).clone(),
            client()?,
            clock.clone(),
            config.callback_token.is_some(),
        )),
        ProviderChoice::Tencent(tencent) => Arc::new(tencent::TencentProvider::new(
            (**tencent).clone(),
            client()?,
            clock.clone(),
            config.callback_token.is_some(),
        )),
        ProviderChoice::Twilio(twilio) => Arc::new(twilio::TwilioProvider::new(
            (**twilio).clone(),
            &config.public_url,
            client()?,
        )),
    })
}

/// The configured providers, first then second.
pub fn build(config: &SmsConfig, clock: &SharedClock) -> anyhow::Result<Vec<Arc<dyn SmsProvider>>> {
    config
        .providers()
        .map(|choice| build_one(choice, config, clock))
        .collect()
}
