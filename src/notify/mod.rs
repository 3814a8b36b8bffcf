//! Sending texts: the [`SmsProvider`] trait, one file per provider, templates,
//! and the notifier task that delivers the outbox.
//!
//! A provider makes exactly one attempt per call and says whether a failure is
//! worth retrying; retrying, back-off and recording every attempt are the
//! notifier's job. Adding a provider (Aliyun, Tencent Cloud, Twilio) is a new
//! file here with its `[sms.NAME]` section and its check, and a new arm in
//! [`build`] and [`check`].

mod log;
pub mod notifier;
pub mod sign;
pub mod templates;
mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: timeouts, connection errors, 5xx, 429.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Not worth retrying: the provider refused this text (other 4xx).
    #[error("refused: {0}")]
    Permanent(String),
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// A way to send texts. One attempt per call.
pub trait SmsProvider: Send + Sync {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;
    fn send<'a>(&'a self, sms: &'a Sms) -> SendFuture<'a>;
}

/// Each provider checks its own configuration section: the problems of the
/// chosen one (`check-config` reports them with the file's other problems).
pub fn check(config: &SmsConfig) -> Vec<String> {
    match &config.provider {
        ProviderChoice::Log => Vec::new(),
        ProviderChoice::Webhook { url, .. } => webhook::check(url).err().into_iter().collect(),
    }
}

/// The configured provider.
pub fn build(config: &SmsConfig) -> anyhow::Result<Arc<dyn SmsProvider>> {
    Ok(match &config.provider {
        ProviderChoice::Log => Arc::new(log::LogProvider),
        ProviderChoice::Webhook { url, token } => Arc::new(webhook::WebhookProvider::new(
            url,
            token.clone(),
            config.timeout,
        )?),
    })
}
