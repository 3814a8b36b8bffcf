//! Configuration: the commented default file embedded in the binary, a user's
//! file merged over it, and validation into typed values.
//!
//! Nothing else in the gateway reads TOML or the environment for settings: it
//! gets a validated [`Config`]. Secrets come from the environment only and are
//! wrapped in [`Secret`], whose `Debug` never shows them.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::detect::Policy;
use crate::domain::PhoneNumber;
use crate::wire::Topics;

/// The default configuration, exactly as `stillwater print-config` prints it.
pub const DEFAULT_TOML: &str = include_str!("../config/stillwater.toml");

/// The environment variable holding the MQTT password.
pub const MQTT_PASSWORD_ENV: &str = "STILLWATER_MQTT_PASSWORD";

/// A configuration problem, naming the key, the value and what is allowed.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config is not valid: {0}")]
    Syntax(String),
    #[error("config key `{key}` = {value}: {allowed}")]
    Value {
        key: &'static str,
        value: String,
        allowed: String,
    },
}

fn bad_value(key: &'static str, value: impl fmt::Debug, allowed: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key,
        value: format!("{value:?}"),
        allowed: allowed.into(),
    }
}

/// A secret string: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub mqtt: MqttConfig,
    pub store: StoreConfig,
    pub http: HttpConfig,
    pub registry: RegistryDefaults,
    pub log_filter: String,
    pub rules: RulesConfig,
    pub alerts: AlertsConfig,
    pub sms: SmsConfig,
}

/// Rule thresholds: the global policy and per-category overrides.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    pub global: Policy,
    /// `meter_offline` fires after max(3 × reporting interval, this), seconds.
    pub offline_at_least_s: i64,
    /// Per category: (key, value) overrides, validated, as `Policy::set` takes them.
    pub categories: HashMap<String, Vec<(String, String)>>,
}

impl RulesConfig {
    /// The policy of a household in `category`: the global policy with the
    /// category's overrides from the config file.
    pub fn policy_for(&self, category: &str) -> Policy {
        let mut policy = self.global.clone();
        for (key, value) in self.categories.get(category).into_iter().flatten() {
            policy
                .set(key, value)
                .expect("validated when the config was loaded");
        }
        policy
    }
}

/// Who is told, when, and how often.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    pub notify_warning: bool,
    pub escalate_after: Duration,
    pub repeat_after: Duration,
    pub check_in_wait: Duration,
    pub maintenance: Vec<PhoneNumber>,
    pub tick: Duration,
    /// A leak alert resolves once no leak was seen for this long.
    pub leak_hold: Duration,
    /// A device_fault alert resolves once no fault flag was seen for this long.
    pub device_fault_hold: Duration,
    /// Check-in texts one resident gets in 24 h at most.
    pub check_ins_per_day: u32,
    /// Maintenance texts about one meter in 24 h at most.
    pub maintenance_texts_per_day: u32,
}

/// The SMS language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Zh,
    En,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }
}

/// Which SMS provider sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderChoice {
    Log,
    Webhook { url: String, token: Option<Secret> },
}

#[derive(Debug, Clone)]
pub struct SmsConfig {
    pub provider: ProviderChoice,
    pub language: Language,
    pub timeout: Duration,
    /// Bearer token for POST /sms/inbound; `None` disables the endpoint.
    pub inbound_token: Option<Secret>,
    /// Template overrides by "<kind>.<language>".
    pub templates: HashMap<String, String>,
}

/// The environment variable holding the webhook provider's bearer token.
pub const SMS_WEBHOOK_TOKEN_ENV: &str = "STILLWATER_SMS_WEBHOOK_TOKEN";
/// The environment variable holding the inbound-SMS bearer token.
pub const SMS_INBOUND_TOKEN_ENV: &str = "STILLWATER_SMS_INBOUND_TOKEN";

use crate::domain::parse_duration;

#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub broker: BrokerChoice,
    pub client_id: String,
    /// Username and password, when the broker wants them.
    pub credentials: Option<(String, Secret)>,
    pub topics: Topics,
    pub keep_alive: Duration,
}

/// Which broker the gateway consumes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerChoice {
    /// Run rumqttd in-process, listening here.
    Embedded { listen: SocketAddr },
    /// Connect to an existing broker.
    External { host: String, port: u16 },
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub rejected_keep: u32,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

/// Household defaults used by the registry when an installer leaves them out.
#[derive(Debug, Clone)]
pub struct RegistryDefaults {
    pub timezone: chrono_tz::Tz,
    pub reporting_interval_min: u32,
}

impl Default for RegistryDefaults {
    fn default() -> Self {
        Self {
            timezone: chrono_tz::Asia::Shanghai,
            reporting_interval_min: 60,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    mqtt: RawMqtt,
    store: RawStore,
    http: RawHttp,
    registry: RawRegistry,
    log: RawLog,
    rules: RawRules,
    alerts: RawAlerts,
    sms: RawSms,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    min_litres: i64,
    warning_window: String,
    urgent_window: String,
    min_flow_lph: i64,
    flow_for: String,
    leak_for: String,
    max_litres_per_day: i64,
    offline_at_least: String,
    background_window: String,
    categories: HashMap<String, toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    notify_warning: bool,
    escalate_after: String,
    repeat_after: String,
    check_in_wait: String,
    maintenance: Vec<String>,
    tick: String,
    leak_hold: String,
    device_fault_hold: String,
    check_ins_per_day: u32,
    maintenance_texts_per_day: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSms {
    provider: String,
    webhook_url: String,
    language: String,
    timeout: String,
    templates: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    mode: String,
    listen: String,
    url: String,
    client_id: String,
    username: String,
    native_prefix: String,
    wmbusmeters_prefix: String,
    keep_alive_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: PathBuf,
    rejected_keep: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    default_timezone: String,
    default_reporting_interval_min: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    filter: String,
}

impl Config {
    /// The default configuration.
    pub fn default_config() -> Self {
        Self::from_toml("", &|_| None).expect("the embedded default config is valid")
    }

    /// Loads a file over the defaults, reading secrets from the process environment.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &|name| std::env::var(name).ok())
    }

    /// Parses `text` over the defaults; `env` looks up secrets.
    pub fn from_toml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut merged: toml::Table = toml::from_str(DEFAULT_TOML).expect("default config parses");
        let user: toml::Table =
            toml::from_str(text).map_err(|error| ConfigError::Syntax(error.to_string()))?;
        merge(&mut merged, user);
        // Parsing the merged document as text (rather than converting the table)
        // keeps spans, so a type error quotes the offending `key = value` line.
        let merged =
            toml::to_string(&merged).map_err(|error| ConfigError::Syntax(error.to_string()))?;
        let raw: RawConfig = toml::from_str(&merged).map_err(|error| locate(&merged, &error))?;
        raw.validate(env)
    }
}

/// Names the section and the `key = value` line of an error in the merged
/// document (its line numbers would not match the user's file).
fn locate(merged: &str, error: &toml::de::Error) -> ConfigError {
    let Some(span) = error.span() else {
        return ConfigError::Syntax(error.message().to_string());
    };
    let before = &merged[..span.start.min(merged.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = merged[line_start..]
        .find('\n')
        .map_or(merged.len(), |i| line_start + i);
    let line = merged[line_start..line_end].trim();
    let section = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .unwrap_or("(top level)");
    ConfigError::Syntax(format!("{section} {line}: {}", error.message()))
}

/// Overlays `overlay` on `base`, table by table, so that unknown keys survive
/// to be reported by the strict structs.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(overlay_table)) => {
                merge(base_table, overlay_table)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn parse_listen(key: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        bad_value(
            key,
            text,
            "must be an address and port such as \"127.0.0.1:1883\"",
        )
    })
}

fn check_prefix(key: &'static str, prefix: &str) -> Result<(), ConfigError> {
    let ok = !prefix.is_empty()
        && !prefix.starts_with('/')
        && !prefix.ends_with('/')
        && !prefix.contains(['+', '#'])
        && !prefix.contains("//");
    if ok {
        Ok(())
    } else {
        Err(bad_value(
            key,
            prefix,
            "must be a non-empty MQTT topic without wildcards or leading/trailing '/'",
        ))
    }
}

impl RawConfig {
    fn validate(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mqtt = self.mqtt;
        let broker = match mqtt.mode.as_str() {
            "embedded" => BrokerChoice::Embedded {
                listen: parse_listen("mqtt.listen", &mqtt.listen)?,
            },
            "external" => {
                let (host, port) = parse_mqtt_url(&mqtt.url)?;
                BrokerChoice::External { host, port }
            }
            other => {
                return Err(bad_value(
                    "mqtt.mode",
                    other,
                    "must be \"embedded\" or \"external\"",
                ))
            }
        };
        if mqtt.client_id.is_empty() || mqtt.client_id.len() > 64 {
            return Err(bad_value(
                "mqtt.client_id",
                &mqtt.client_id,
                "must be 1 to 64 characters",
            ));
        }
        let credentials = if mqtt.username.is_empty() {
            None
        } else {
            let password = env(MQTT_PASSWORD_ENV).ok_or_else(|| {
                bad_value(
                    "mqtt.username",
                    &mqtt.username,
                    format!("a username needs its password in the environment variable {MQTT_PASSWORD_ENV}"),
                )
            })?;
            Some((mqtt.username, Secret::new(password)))
        };
        check_prefix("mqtt.native_prefix", &mqtt.native_prefix)?;
        check_prefix("mqtt.wmbusmeters_prefix", &mqtt.wmbusmeters_prefix)?;
        if !(5..=3600).contains(&mqtt.keep_alive_secs) {
            return Err(bad_value(
                "mqtt.keep_alive_secs",
                mqtt.keep_alive_secs,
                "must be 5 to 3600",
            ));
        }
        if self.store.path.as_os_str().is_empty() {
            return Err(bad_value("store.path", "", "must name a file"));
        }
        if self.store.rejected_keep == 0 {
            return Err(bad_value("store.rejected_keep", 0, "must be at least 1"));
        }
        let timezone: chrono_tz::Tz = self.registry.default_timezone.parse().map_err(|_| {
            bad_value(
                "registry.default_timezone",
                &self.registry.default_timezone,
                "must be an IANA time zone such as \"Asia/Shanghai\"",
            )
        })?;
        let interval = self.registry.default_reporting_interval_min;
        if !(1..=1440).contains(&interval) {
            return Err(bad_value(
                "registry.default_reporting_interval_min",
                interval,
                "must be 1 to 1440 minutes",
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_err() {
            return Err(bad_value(
                "log.filter",
                &self.log.filter,
                "must be a tracing filter such as \"info\"",
            ));
        }
        let rules = validate_rules(self.rules)?;
        let alerts = validate_alerts(self.alerts)?;
        let sms = validate_sms(self.sms, env)?;
        Ok(Config {
            rules,
            alerts,
            sms,
            mqtt: MqttConfig {
                broker,
                client_id: mqtt.client_id,
                credentials,
                topics: Topics {
                    native_prefix: mqtt.native_prefix,
                    wmbusmeters_prefix: mqtt.wmbusmeters_prefix,
                },
                keep_alive: Duration::from_secs(mqtt.keep_alive_secs),
            },
            store: StoreConfig {
                path: self.store.path,
                rejected_keep: self.store.rejected_keep,
            },
            http: HttpConfig {
                listen: parse_listen("http.listen", &self.http.listen)?,
            },
            registry: RegistryDefaults {
                timezone,
                reporting_interval_min: interval,
            },
            log_filter: self.log.filter,
        })
    }
}

fn duration(key: &'static str, text: &str) -> Result<i64, ConfigError> {
    parse_duration(text).map_err(|error| bad_value(key, text, error.to_string()))
}

fn positive(key: &'static str, value: i64) -> Result<i64, ConfigError> {
    if value > 0 {
        Ok(value)
    } else {
        Err(bad_value(key, value, "must be at least 1"))
    }
}

fn validate_rules(raw: RawRules) -> Result<RulesConfig, ConfigError> {
    let global = Policy {
        min_litres: positive("rules.min_litres", raw.min_litres)?,
        warning_window_s: duration("rules.warning_window", &raw.warning_window)?,
        urgent_window_s: duration("rules.urgent_window", &raw.urgent_window)?,
        min_flow_lph: positive("rules.min_flow_lph", raw.min_flow_lph)?,
        flow_s: duration("rules.flow_for", &raw.flow_for)?,
        leak_s: duration("rules.leak_for", &raw.leak_for)?,
        max_litres_per_day: positive("rules.max_litres_per_day", raw.max_litres_per_day)?,
        background_s: duration("rules.background_window", &raw.background_window)?,
    };
    if global.urgent_window_s < global.warning_window_s {
        return Err(bad_value(
            "rules.urgent_window",
            &raw.urgent_window,
            "must be at least rules.warning_window",
        ));
    }
    let mut categories = HashMap::new();
    for (name, table) in raw.categories {
        let mut overrides = Vec::new();
        let mut scratch = global.clone();
        for (key, value) in table {
            let text = match &value {
                toml::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            scratch.set(&key, &text).map_err(|problem| {
                bad_value("rules.categories", format!("{name}.{key}"), problem)
            })?;
            overrides.push((key, text));
        }
        categories.insert(name, overrides);
    }
    Ok(RulesConfig {
        global,
        offline_at_least_s: duration("rules.offline_at_least", &raw.offline_at_least)?,
        categories,
    })
}

fn validate_alerts(raw: RawAlerts) -> Result<AlertsConfig, ConfigError> {
    let seconds = |key, text: &str| duration(key, text).map(|s| Duration::from_secs(s as u64));
    let mut maintenance = Vec::new();
    for phone in &raw.maintenance {
        maintenance.push(
            PhoneNumber::parse(phone)
                .map_err(|error| bad_value("alerts.maintenance", phone, error.to_string()))?,
        );
    }
    Ok(AlertsConfig {
        notify_warning: raw.notify_warning,
        escalate_after: seconds("alerts.escalate_after", &raw.escalate_after)?,
        repeat_after: seconds("alerts.repeat_after", &raw.repeat_after)?,
        check_in_wait: seconds("alerts.check_in_wait", &raw.check_in_wait)?,
        maintenance,
        tick: seconds("alerts.tick", &raw.tick)?,
        leak_hold: seconds("alerts.leak_hold", &raw.leak_hold)?,
        device_fault_hold: seconds("alerts.device_fault_hold", &raw.device_fault_hold)?,
        check_ins_per_day: at_least_one("alerts.check_ins_per_day", raw.check_ins_per_day)?,
        maintenance_texts_per_day: at_least_one(
            "alerts.maintenance_texts_per_day",
            raw.maintenance_texts_per_day,
        )?,
    })
}

fn at_least_one(key: &'static str, value: u32) -> Result<u32, ConfigError> {
    if value == 0 {
        return Err(bad_value(key, value, "must be at least 1"));
    }
    Ok(value)
}

fn validate_sms(
    raw: RawSms,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SmsConfig, ConfigError> {
    let provider = match raw.provider.as_str() {
        "log" => ProviderChoice::Log,
        "webhook" => {
            if !(raw.webhook_url.starts_with("http://") || raw.webhook_url.starts_with("https://"))
            {
                return Err(bad_value(
                    "sms.webhook_url",
                    &raw.webhook_url,
                    "must be an http:// or https:// URL when sms.provider = \"webhook\"",
                ));
            }
            ProviderChoice::Webhook {
                url: raw.webhook_url,
                token: env(SMS_WEBHOOK_TOKEN_ENV)
                    .filter(|t| !t.is_empty())
                    .map(Secret::new),
            }
        }
        other => {
            return Err(bad_value(
                "sms.provider",
                other,
                "must be \"log\" or \"webhook\"",
            ))
        }
    };
    let language = match raw.language.as_str() {
        "zh" => Language::Zh,
        "en" => Language::En,
        other => return Err(bad_value("sms.language", other, "must be \"zh\" or \"en\"")),
    };
    for key in raw.templates.keys() {
        let known = key.split_once('.').is_some_and(|(kind, language)| {
            crate::detect::Kind::parse(kind).is_some() && matches!(language, "zh" | "en")
        });
        if !known {
            return Err(bad_value(
                "sms.templates",
                key,
                "keys are \"<kind>.<language>\", e.g. \"no_usage.zh\"",
            ));
        }
    }
    Ok(SmsConfig {
        provider,
        language,
        timeout: Duration::from_secs(duration("sms.timeout", &raw.timeout)? as u64),
        inbound_token: env(SMS_INBOUND_TOKEN_ENV)
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        templates: raw.templates,
    })
}

fn parse_mqtt_url(url: &str) -> Result<(String, u16), ConfigError> {
    let invalid = || {
        bad_value(
            "mqtt.url",
            url,
            "must be mqtt://host:port (TLS is not supported yet)",
        )
    };
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(invalid)?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| invalid())?),
        None => (rest, 1883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', ' ']) || port == 0 {
        return Err(invalid());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_embedded_default_is_valid() {
        let config = Config::default_config();
        assert_eq!(
            config.mqtt.broker,
            BrokerChoice::Embedded {
                listen: "127.0.0.1:1883".parse().unwrap()
            }
        );
        assert_eq!(config.mqtt.topics, Topics::default());
        assert_eq!(config.registry.timezone, chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn a_partial_file_overrides_only_its_keys() {
        let config = Config::from_toml(
            "[mqtt]\nmode = \"external\"\nurl = \"mqtt://broker.local:1884\"\n",
            &no_env,
        )
        .unwrap();
        assert_eq!(
            config.mqtt.broker,
            BrokerChoice::External {
                host: "broker.local".into(),
                port: 1884
            }
        );
        assert_eq!(config.store.rejected_keep, 10_000);
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = Config::from_toml("[mqtt]\nbroker_port = 1\n", &no_env).unwrap_err();
        assert!(error.to_string().contains("broker_port"), "{error}");
        let error = Config::from_toml("[smtp]\nhost = \"mail\"\n", &no_env).unwrap_err();
        assert!(error.to_string().contains("smtp"), "{error}");
    }

    #[test]
    fn bad_values_name_key_value_and_what_is_allowed() {
        let cases = [
            ("[mqtt]\nmode = \"cloud\"", "mqtt.mode", "\"cloud\""),
            (
                "[mqtt]\nlisten = \"localhost\"",
                "mqtt.listen",
                "address and port",
            ),
            (
                "[mqtt]\nmode = \"external\"\nurl = \"http://x\"",
                "mqtt.url",
                "mqtt://",
            ),
            (
                "[mqtt]\nnative_prefix = \"a/+\"",
                "mqtt.native_prefix",
                "wildcards",
            ),
            (
                "[mqtt]\nkeep_alive_secs = 1",
                "mqtt.keep_alive_secs",
                "5 to 3600",
            ),
            (
                "[registry]\ndefault_timezone = \"Mars/Base\"",
                "registry.default_timezone",
                "IANA",
            ),
            (
                "[registry]\ndefault_reporting_interval_min = 0",
                "registry.default_reporting_interval_min",
                "1 to 1440",
            ),
            (
                "[store]\nrejected_keep = 0",
                "store.rejected_keep",
                "at least 1",
            ),
        ];
        for (text, key, phrase) in cases {
            let error = Config::from_toml(text, &no_env).unwrap_err().to_string();
            assert!(
                error.contains(key) && error.contains(phrase),
                "{text}: {error}"
            );
        }
        let error = Config::from_toml("[store]\nrejected_keep = \"many\"", &no_env).unwrap_err();
        assert!(error.to_string().contains("rejected_keep"), "{error}");
    }

    #[test]
    fn category_rules_override_the_global_ones() {
        let config = Config::from_toml(
            "[rules.categories.special_hardship]\nwarning_window = \"8h\"\nmin_litres = 5\n",
            &no_env,
        )
        .unwrap();
        let policy = config.rules.policy_for("special_hardship");
        assert_eq!((policy.warning_window_s, policy.min_litres), (8 * 3600, 5));
        assert_eq!(
            config.rules.policy_for("elderly_alone"),
            config.rules.global
        );
        let error =
            Config::from_toml("[rules.categories.x]\nwarning = \"8h\"\n", &no_env).unwrap_err();
        assert!(
            error.to_string().contains("x.warning") && error.to_string().contains("warning_window"),
            "{error}"
        );
        let error = Config::from_toml("[rules]\nwarning_window = \"12\"\n", &no_env).unwrap_err();
        assert!(
            error.to_string().contains("rules.warning_window")
                && error.to_string().contains("\"12h\""),
            "{error}"
        );
    }

    #[test]
    fn the_mqtt_password_comes_from_the_environment_and_is_never_printed() {
        let error = Config::from_toml("[mqtt]\nusername = \"gw\"", &no_env).unwrap_err();
        assert!(error.to_string().contains(MQTT_PASSWORD_ENV));
        let env = |name: &str| (name == MQTT_PASSWORD_ENV).then(|| "hunter2".to_string());
        let config = Config::from_toml("[mqtt]\nusername = \"gw\"", &env).unwrap();
        let (user, password) = config.mqtt.credentials.clone().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("gw", "hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
