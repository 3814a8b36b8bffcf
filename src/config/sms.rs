//! The `[sms]` section: which providers send, their accounts and templates,
//! and where their callbacks may come from. Secrets come from the environment or from a file only its
//! owner can read.
//!
//! Long on purpose: each provider's keys, secrets and templates are checked
//! side by side, so what a message says about a key is written once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::validate::{at_least_one, duration, Problems};
use super::*;
use crate::domain::{PhoneNumber, TemplateValues};

/// A provider's registered template for one `<kind>.<purpose>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderTemplate {
    /// The template's code (Aliyun `SMS_…`) or id (Tencent).
    pub code: String,
    /// In order: the template's variable name and the placeholder whose
    /// value it takes.
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AliyunConfig {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub sign_name: String,
    pub rate_per_second: u32,
    pub daily_cap: u32,
    pub whitelist: Vec<PhoneNumber>,
    pub param_max_chars: usize,
    pub templates: HashMap<String, ProviderTemplate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TencentConfig {
    pub endpoint: String,
    pub region: String,
    pub secret_id: String,
    pub secret_key: Secret,
    pub sdk_app_id: String,
    pub sign_name: String,
    pub rate_per_second: u32,
    pub param_max_chars: usize,
    pub templates: HashMap<String, ProviderTemplate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TwilioConfig {
    pub endpoint: String,
    pub account_sid: String,
    pub auth_token: Secret,
    pub from: String,
    pub messaging_service_sid: String,
    pub rate_per_second: u32,
}

/// Which SMS provider sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderChoice {
    Log,
    Webhook { url: String, token: Option<Secret> },
    Aliyun(Box<AliyunConfig>),
    Tencent(Box<TencentConfig>),
    Twilio(Box<TwilioConfig>),
}

impl ProviderChoice {
    /// The provider's name in the configuration, logs, metrics and the outbox.
    pub fn name(&self) -> &'static str {
        match self {
            ProviderChoice::Log => "log",
            ProviderChoice::Webhook { .. } => "webhook",
            ProviderChoice::Aliyun(_) => "aliyun",
            ProviderChoice::Tencent(_) => "tencent",
            ProviderChoice::Twilio(_) => "twilio",
        }
    }
}

/// An address or a CIDR block callbacks may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressBlock {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl AddressBlock {
    /// `"47.96.0.0/16"`, `"2001:db8::/32"` or a single address.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr.parse::<IpAddr>().ok()?, prefix.parse::<u8>().ok()?),
            None => {
                let addr = text.parse::<IpAddr>().ok()?;
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= bits).then_some(Self { addr, prefix })
    }

    /// Whether `blocks` let `ip` in: an empty list lets everyone in.
    pub fn allows(blocks: &[AddressBlock], ip: IpAddr) -> bool {
        blocks.is_empty() || blocks.iter().any(|block| block.contains(ip))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(block), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(block) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(block), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(block) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmsConfig {
    pub provider: ProviderChoice,
    /// Used when the first cannot send.
    pub secondary: Option<ProviderChoice>,
    pub language: Language,
    pub timeout: Duration,
    /// Attempts at one text before it is marked failed.
    pub max_attempts: u32,
    /// Texts in flight at once (to different phones).
    pub parallel: usize,
    /// The gateway's base URL as providers reach it; "" when not set.
    pub public_url: String,
    /// Callbacks only from these; empty: from anywhere.
    pub callback_allow: Vec<AddressBlock>,
    /// The path token of the Aliyun and Tencent callbacks; `None` disables them.
    pub callback_token: Option<Secret>,
    /// Bearer token for POST /sms/inbound; `None` disables the endpoint.
    pub inbound_token: Option<Secret>,
    /// Template overrides by `"<kind>.<language>"`.
    pub templates: HashMap<String, String>,
}

impl SmsConfig {
    /// The configured providers, first then second.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderChoice> {
        std::iter::once(&self.provider).chain(self.secondary.as_ref())
    }
}

/// The environment variables of the SMS settings.
pub const SMS_WEBHOOK_TOKEN_ENV: &str = "STILLWATER_SMS_WEBHOOK_TOKEN";
pub const SMS_INBOUND_TOKEN_ENV: &str = "STILLWATER_SMS_INBOUND_TOKEN";
pub const SMS_CALLBACK_TOKEN_ENV: &str = "STILLWATER_SMS_CALLBACK_TOKEN";
pub const ALIYUN_ID_ENV: &str = "STILLWATER_ALIYUN_ACCESS_KEY_ID";
pub const ALIYUN_SECRET_ENV: &str = "STILLWATER_ALIYUN_ACCESS_KEY_SECRET";
pub const TENCENT_ID_ENV: &str = "STILLWATER_TENCENT_SECRET_ID";
pub const TENCENT_KEY_ENV: &str = "STILLWATER_TENCENT_SECRET_KEY";
pub const TWILIO_TOKEN_ENV: &str = "STILLWATER_TWILIO_AUTH_TOKEN";

/// The purposes a provider template may be for.
pub const TEMPLATE_PURPOSES: [&str; 5] = ["alert", "resolved", "check_in", "reminder", "heartbeat"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSms {
    provider: String,
    secondary: String,
    webhook: RawWebhook,
    aliyun: RawAliyun,
    tencent: RawTencent,
    twilio: RawTwilio,
    language: String,
    timeout: String,
    max_attempts: u32,
    parallel: u32,
    public_url: String,
    callback_allow: Vec<String>,
    templates: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    code: String,
    #[serde(default)]
    params: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAliyun {
    endpoint: String,
    region: String,
    access_key_id: String,
    access_key_secret_file: String,
    sign_name: String,
    rate_per_second: u32,
    daily_cap: u32,
    whitelist: Vec<String>,
    param_max_chars: u32,
    templates: HashMap<String, RawTemplate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTencent {
    endpoint: String,
    region: String,
    secret_id: String,
    secret_key_file: String,
    sdk_app_id: String,
    sign_name: String,
    rate_per_second: u32,
    param_max_chars: u32,
    templates: HashMap<String, RawTemplate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTwilio {
    endpoint: String,
    account_sid: String,
    auth_token_file: String,
    from: String,
    messaging_service_sid: String,
    rate_per_second: u32,
}

pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(super) fn from_env(env: Env<'_>, name: &str) -> Option<String> {
    env(name).filter(|value| !value.trim().is_empty())
}

/// A secret from its environment variable, else from its file, which only
/// its owner may read.
fn secret(
    env: Env<'_>,
    name: &str,
    file_key: &'static str,
    file: &str,
    p: &mut Problems,
) -> Option<Secret> {
    if let Some(value) = from_env(env, name) {
        return Some(Secret::new(value.trim().to_string()));
    }
    if file.is_empty() {
        p.push(bad_value(
            file_key,
            file,
            format!("the provider needs its secret: set the environment variable {name}, or name a file here"),
        ));
        return None;
    }
    match read_secret_file(Path::new(file)) {
        Ok(value) => Some(Secret::new(value)),
        Err(problem) => {
            p.push(bad_value(file_key, file, problem));
            None
        }
    }
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    let metadata = std::fs::metadata(path).map_err(|error| format!("cannot read it: {error}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "others can read it (mode {mode:o}); make it readable by its owner only (chmod 600)"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read it: {error}"))?;
    let value = text.trim();
    if value.is_empty() {
        return Err("the file is empty".into());
    }
    Ok(value.to_string())
}

fn url(key: &'static str, text: &str, p: &mut Problems) {
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        p.push(bad_value(key, text, "must be an http:// or https:// URL"));
    }
}

fn required(key: &'static str, text: &str, what: &str, p: &mut Problems) {
    if text.trim().is_empty() {
        p.push(bad_value(key, text, format!("must be set: {what}")));
    }
}

/// Whether `key` names a text a provider template can be for.
fn template_key_known(key: &str) -> bool {
    key.split_once('.').is_some_and(|(kind, purpose)| {
        let kind_ok = kind == "system" || crate::detect::Kind::parse(kind).is_some();
        kind_ok && TEMPLATE_PURPOSES.contains(&purpose)
    })
}

fn templates(
    section: &str,
    raw: HashMap<String, RawTemplate>,
    named: bool,
    p: &mut Problems,
) -> HashMap<String, ProviderTemplate> {
    let mut out = HashMap::new();
    let mut keys: Vec<String> = raw.keys().cloned().collect();
    keys.sort();
    let mut raw = raw;
    for key in keys {
        let template = raw.remove(&key).expect("listed");
        let name = format!("{section}.{key}");
        if !template_key_known(&key) {
            p.push(ConfigError::Shape(format!(
                "{name}: keys are \"<kind>.<purpose>\" (purposes: {}), e.g. \"no_usage.alert\"",
                TEMPLATE_PURPOSES.join(", ")
            )));
            continue;
        }
        if template.code.trim().is_empty() {
            p.push(ConfigError::Shape(format!(
                "{name}: code must be the approved template's code"
            )));
        }
        let mut params = Vec::new();
        for param in &template.params {
            let (variable, placeholder) = match param.split_once('=') {
                Some((variable, placeholder)) if named => (variable.trim(), placeholder.trim()),
                Some(_) => {
                    p.push(ConfigError::Shape(format!(
                        "{name}: param {param:?}: this provider's variables are numbered, so give only the placeholder"
                    )));
                    continue;
                }
                None => (param.trim(), param.trim()),
            };
            if !TemplateValues::PLACEHOLDERS.contains(&placeholder) {
                p.push(ConfigError::Shape(format!(
                    "{name}: param {param:?}: unknown placeholder {placeholder:?}; the placeholders are {}",
                    TemplateValues::PLACEHOLDERS.join(", ")
                )));
                continue;
            }
            params.push((variable.to_string(), placeholder.to_string()));
        }
        out.insert(
            key,
            ProviderTemplate {
                code: template.code.trim().to_string(),
                params,
            },
        );
    }
    out
}

fn rate(key: &'static str, value: u32, p: &mut Problems) -> u32 {
    p.take(at_least_one(key, value))
}

fn choice(
    name: &str,
    key: &'static str,
    raw: &mut RawSms,
    env: Env<'_>,
    p: &mut Problems,
) -> Option<ProviderChoice> {
    Some(match name {
        "log" => ProviderChoice::Log,
        // The webhook checks its own section (`notify::check`).
        "webhook" => ProviderChoice::Webhook {
            url: raw.webhook.url.clone(),
            token: from_env(env, SMS_WEBHOOK_TOKEN_ENV).map(Secret::new),
        },
        "aliyun" => {
            let a = &mut raw.aliyun;
            url("sms.aliyun.endpoint", &a.endpoint, p);
            let access_key_id =
                from_env(env, ALIYUN_ID_ENV).unwrap_or_else(|| a.access_key_id.clone());
            required(
                "sms.aliyun.access_key_id",
                &access_key_id,
                "the AccessKey id (or STILLWATER_ALIYUN_ACCESS_KEY_ID)",
                p,
            );
            required(
                "sms.aliyun.sign_name",
                &a.sign_name,
                "the approved signature",
                p,
            );
            let access_key_secret = secret(
                env,
                ALIYUN_SECRET_ENV,
                "sms.aliyun.access_key_secret_file",
                &a.access_key_secret_file,
                p,
            );
            let mut whitelist = Vec::new();
            for number in &a.whitelist {
                match PhoneNumber::parse(number) {
                    Ok(phone) => whitelist.push(phone),
                    Err(problem) => p.push(bad_value(
                        "sms.aliyun.whitelist",
                        number,
                        problem.to_string(),
                    )),
                }
            }
            ProviderChoice::Aliyun(Box::new(AliyunConfig {
                endpoint: a.endpoint.clone(),
                region: a.region.clone(),
                access_key_id,
                access_key_secret: access_key_secret?,
                sign_name: a.sign_name.clone(),
                rate_per_second: rate("sms.aliyun.rate_per_second", a.rate_per_second, p),
                daily_cap: p.take(at_least_one("sms.aliyun.daily_cap", a.daily_cap)),
                whitelist,
                param_max_chars: p.take(at_least_one(
                    "sms.aliyun.param_max_chars",
                    a.param_max_chars,
                )) as usize,
                templates: templates(
                    "sms.aliyun.templates",
                    std::mem::take(&mut a.templates),
                    true,
                    p,
                ),
            }))
        }
        "tencent" => {
            let t = &mut raw.tencent;
            url("sms.tencent.endpoint", &t.endpoint, p);
            let secret_id = from_env(env, TENCENT_ID_ENV).unwrap_or_else(|| t.secret_id.clone());
            required(
                "sms.tencent.secret_id",
                &secret_id,
                "the SecretId (or STILLWATER_TENCENT_SECRET_ID)",
                p,
            );
            required(
                "sms.tencent.sdk_app_id",
                &t.sdk_app_id,
                "the SMS application's SmsSdkAppId",
                p,
            );
            required(
                "sms.tencent.sign_name",
                &t.sign_name,
                "the approved signature",
                p,
            );
            let secret_key = secret(
                env,
                TENCENT_KEY_ENV,
                "sms.tencent.secret_key_file",
                &t.secret_key_file,
                p,
            );
            ProviderChoice::Tencent(Box::new(TencentConfig {
                endpoint: t.endpoint.clone(),
                region: t.region.clone(),
                secret_id,
                secret_key: secret_key?,
                sdk_app_id: t.sdk_app_id.clone(),
                sign_name: t.sign_name.clone(),
                rate_per_second: rate("sms.tencent.rate_per_second", t.rate_per_second, p),
                param_max_chars: p.take(at_least_one(
                    "sms.tencent.param_max_chars",
                    t.param_max_chars,
                )) as usize,
                templates: templates(
                    "sms.tencent.templates",
                    std::mem::take(&mut t.templates),
                    false,
                    p,
                ),
            }))
        }
        "twilio" => {
            let t = &raw.twilio;
            url("sms.twilio.endpoint", &t.endpoint, p);
            required(
                "sms.twilio.account_sid",
                &t.account_sid,
                "the account SID (AC…)",
                p,
            );
            if t.from.is_empty() == t.messaging_service_sid.is_empty() {
                p.push(bad_value(
                    "sms.twilio.from",
                    &t.from,
                    "set either from (the sending number) or messaging_service_sid, not both",
                ));
            } else if !t.from.is_empty() && PhoneNumber::parse(&t.from).is_err() {
                p.push(bad_value(
                    "sms.twilio.from",
                    &t.from,
                    "must be a phone number in E.164 (+1…)",
                ));
            }
            let auth_token = secret(
                env,
                TWILIO_TOKEN_ENV,
                "sms.twilio.auth_token_file",
                &t.auth_token_file,
                p,
            );
            ProviderChoice::Twilio(Box::new(TwilioConfig {
                endpoint: t.endpoint.clone(),
                account_sid: t.account_sid.clone(),
                auth_token: auth_token?,
                from: t.from.clone(),
                messaging_service_sid: t.messaging_service_sid.clone(),
                rate_per_second: rate("sms.twilio.rate_per_second", t.rate_per_second, p),
            }))
        }
        other => {
            p.push(bad_value(
                key,
                other,
                "must be \"log\", \"webhook\", \"aliyun\", \"tencent\" or \"twilio\"",
            ));
            return None;
        }
    })
}

pub(super) fn validate_sms(mut raw: RawSms, env: Env<'_>, p: &mut Problems) -> Option<SmsConfig> {
    let provider_name = raw.provider.clone();
    let provider = choice(&provider_name, "sms.provider", &mut raw, env, p);
    let secondary_name = raw.secondary.clone();
    let secondary = if secondary_name.is_empty() {
        None
    } else if secondary_name == provider_name {
        p.push(bad_value(
            "sms.secondary",
            &secondary_name,
            "must differ from sms.provider",
        ));
        None
    } else {
        choice(&secondary_name, "sms.secondary", &mut raw, env, p)
    };
    let language = match Language::parse(&raw.language) {
        Some(language) => language,
        None => {
            p.push(bad_value(
                "sms.language",
                &raw.language,
                "must be \"zh\" or \"en\"",
            ));
            Language::Zh
        }
    };
    let mut keys: Vec<&String> = raw.templates.keys().collect();
    keys.sort();
    for key in keys {
        let known = key.split_once('.').is_some_and(|(kind, language)| {
            crate::detect::Kind::parse(kind).is_some() && Language::parse(language).is_some()
        });
        if !known {
            p.push(bad_value(
                "sms.templates",
                key,
                "keys are \"<kind>.<language>\", e.g. \"no_usage.zh\"",
            ));
            continue;
        }
        for name in super::validate::placeholders(&raw.templates[key]) {
            if !TemplateValues::PLACEHOLDERS.contains(&name) {
                p.push(bad_value(
                    "sms.templates",
                    key,
                    format!(
                        "unknown placeholder {{{name}}}; the placeholders are {}",
                        TemplateValues::PLACEHOLDERS
                            .map(|p| format!("{{{p}}}"))
                            .join(", ")
                    ),
                ));
            }
        }
    }
    if !raw.public_url.is_empty() {
        url("sms.public_url", &raw.public_url, p);
    }
    let mut callback_allow = Vec::new();
    for text in &raw.callback_allow {
        match AddressBlock::parse(text) {
            Some(block) => callback_allow.push(block),
            None => p.push(bad_value(
                "sms.callback_allow",
                text,
                "must be an IP address or a CIDR block such as \"47.96.0.0/16\"",
            )),
        }
    }
    let timeout = p.take(duration("sms.timeout", &raw.timeout));
    Some(SmsConfig {
        provider: provider?,
        secondary,
        language,
        timeout: Duration::from_secs(timeout.max(0) as u64),
        max_attempts: p.take(at_least_one("sms.max_attempts", raw.max_attempts)),
        parallel: p.take(at_least_one("sms.parallel", raw.parallel)) as usize,
        public_url: raw.public_url.trim_end_matches('/').to_string(),
        callback_allow,
        callback_token: from_env(env, SMS_CALLBACK_TOKEN_ENV).map(Secret::new),
        inbound_token: from_env(env, SMS_INBOUND_TOKEN_ENV).map(Secret::new),
        templates: raw.templates,
    })
}

#[cfg(test)]
mod tests {
    use super::AddressBlock;

    #[test]
    fn address_blocks() {
        let block = AddressBlock::parse("47.96.0.0/16").unwrap();
        assert!(block.contains("47.96.200.1".parse().unwrap()));
        assert!(!block.contains("47.97.0.1".parse().unwrap()));
        assert!(block.contains("::ffff:47.96.1.1".parse().unwrap()));
        let one = AddressBlock::parse("10.0.0.7").unwrap();
        assert!(one.contains("10.0.0.7".parse().unwrap()));
        assert!(!one.contains("10.0.0.8".parse().unwrap()));
        assert!(AddressBlock::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(AddressBlock::parse("2001:db8::/32")
            .unwrap()
            .contains("2001:db8::1".parse().unwrap()));
        assert_eq!(AddressBlock::parse("10.0.0.0/33"), None);
        assert_eq!(AddressBlock::parse("example.org"), None);
    }
}
