//! Configuration: the commented default file embedded in the binary, a user's
//! file merged over it, and validation into typed values.
//!
//! `shape` checks the file's keys and types against the default file;
//! `validate` turns the sections into typed settings. Both report every
//! problem they find, not only the first.
//!
//! Nothing else in the gateway reads TOML or the environment for settings: it
//! gets a validated [`Config`]. Secrets come from the environment (or, for
//! SMS providers, a file only its owner can read) and are wrapped in
//! [`Secret`], whose `Debug` never shows them.

mod platforms;
mod shape;
mod sms;
mod validate;
mod watch;

pub use platforms::*;
pub use sms::*;
pub use watch::*;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use crate::domain::Language;
use crate::domain::PhoneNumber;
use crate::policy::{Policy, Setting};
use crate::wire::Topics;

/// The default configuration, exactly as `stillwater print-config` prints it.
pub const DEFAULT_TOML: &str = include_str!("../../config/stillwater.toml");

/// The environment variable holding the MQTT password.
pub const MQTT_PASSWORD_ENV: &str = "STILLWATER_MQTT_PASSWORD";

/// The environment variable holding the PostgreSQL password.
pub const DB_PASSWORD_ENV: &str = "STILLWATER_DB_PASSWORD";

/// A configuration problem, naming the key, the value and what is allowed.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    /// An unknown key, or a value of the wrong type.
    #[error("{0}")]
    Shape(String),
    #[error("config key `{key}` = {value}: {allowed}")]
    Value {
        key: &'static str,
        value: String,
        allowed: String,
    },
    /// Several problems, one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ConfigError>),
}

impl ConfigError {
    /// Each problem on its own.
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Many(problems) => problems.iter().collect(),
            one => vec![one],
        }
    }

    fn from_many(mut problems: Vec<ConfigError>) -> Self {
        if problems.len() == 1 {
            problems.remove(0)
        } else {
            ConfigError::Many(problems)
        }
    }
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
    pub watch: WatchConfig,
    pub platforms: PlatformsConfig,
}

/// Rule thresholds: the global policy and per-category overrides.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    pub global: Policy,
    /// `meter_offline` fires after max(3 × reporting interval, this), seconds.
    pub offline_at_least_s: i64,
    /// Per category: the settings `[rules.categories.NAME]` overrides.
    pub categories: HashMap<String, Vec<Setting>>,
}

impl RulesConfig {
    /// The policy of a household in `category`: the global policy with the
    /// category's overrides from the config file.
    pub fn policy_for(&self, category: &str) -> Policy {
        self.global
            .clone()
            .with(self.categories.get(category).map_or(&[], Vec::as_slice))
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
    /// `readings_lost` opens when more than this share of the readings a
    /// meter's schedule promises for a day did not arrive.
    pub readings_lost_share: f64,
    /// Check-in texts one resident gets in 24 h at most.
    pub check_ins_per_day: u32,
    /// Maintenance texts about one meter in 24 h at most.
    pub maintenance_texts_per_day: u32,
}

#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub broker: BrokerChoice,
    pub client_id: String,
    /// Username and password, when the broker wants them.
    pub credentials: Option<(String, Secret)>,
    pub topics: Topics,
    pub keep_alive: Duration,
    /// How far ahead of the gateway's clock a reading may be dated, seconds.
    pub max_clock_ahead_s: i64,
    /// The embedded server's TLS listener, when set.
    pub tls: Option<TlsFiles>,
    /// Meters log in with their own login and publish only their own readings.
    pub meter_logins: bool,
    /// The shared-subscription group several gateways subscribe in (external mode).
    pub share_group: Option<String>,
}

/// Where the embedded server takes TLS connections, with which certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub listen: SocketAddr,
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// The private key, PEM.
    pub key: PathBuf,
}

/// Which broker the gateway consumes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerChoice {
    /// Meters connect to the gateway's own MQTT server, listening here.
    Embedded { listen: SocketAddr },
    /// Connect to an existing broker.
    External { host: String, port: u16 },
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub location: StoreLocation,
    pub rejected_keep: u32,
    /// How long a gateway's claim on shared work lasts without renewal.
    pub lease: Duration,
}

impl StoreConfig {
    /// The SQLite file, when the store is one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match &self.location {
            StoreLocation::Sqlite(path) => Some(path),
            StoreLocation::Postgres { .. } => None,
        }
    }
}

/// Where the data is.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server: its URL (never with a password) and the password
    /// from the environment.
    Postgres {
        url: String,
        password: Option<Secret>,
    },
}

impl StoreLocation {
    /// A PostgreSQL location, or why `url` cannot be one.
    pub fn postgres(url: &str, password: Option<String>) -> Result<Self, String> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(
                "must be a URL such as postgres://stillwater@db.example:5432/stillwater".into(),
            );
        }
        let user = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .map_or("", |(user, _)| user);
        if user.contains(':') {
            return Err(format!(
                "must not carry a password; put it in the environment variable {DB_PASSWORD_ENV}"
            ));
        }
        url.parse::<postgres::Config>()
            .map_err(|error| format!("is not a PostgreSQL URL: {error}"))?;
        Ok(Self::Postgres {
            url: url.to_string(),
            password: password.map(Secret::new),
        })
    }

    /// The location named on the command line: a PostgreSQL URL, or a file.
    pub fn from_argument(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        if text.contains("://") {
            Self::postgres(text, env(DB_PASSWORD_ENV))
        } else {
            Ok(Self::Sqlite(PathBuf::from(text)))
        }
    }

    /// For messages: the file, or the URL.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres { url, .. } => url.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// HTTPS on `listen` with this PEM certificate chain and key; plain
    /// HTTP when `None` (behind a TLS-terminating proxy, or on loopback).
    pub tls: Option<(PathBuf, PathBuf)>,
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

    /// Parses `text` over the defaults; `env` looks up secrets. The error
    /// lists every problem found.
    pub fn from_toml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut merged: toml::Table = toml::from_str(DEFAULT_TOML).expect("default config parses");
        let mut user: toml::Table =
            toml::from_str(text).map_err(|error| ConfigError::Syntax(error.to_string()))?;
        let mut problems = validate::Problems(shape::check(&merged, &mut user));
        merge(&mut merged, user);
        let raw: validate::RawConfig = toml::Value::Table(merged)
            .try_into()
            .map_err(|error: toml::de::Error| ConfigError::Shape(error.message().to_string()))?;
        match raw.validate(env, &mut problems) {
            Some(config) if problems.0.is_empty() => Ok(config),
            _ => Err(ConfigError::from_many(problems.0)),
        }
    }
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

#[cfg(test)]
mod tests;
