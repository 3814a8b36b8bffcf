//! The file's sections as read (strings, numbers) and their validation into
//! typed settings. Every problem is collected, not only the first: an operator
//! fixes a file in one round.
//!
//! Long on purpose: every section's keys are checked here, side by side, so a
//! rule about values (bounds, units, what the message says) is written once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::*;
use crate::domain::{parse_duration, PhoneNumber};
use crate::policy::{Policy, Setting};
use crate::wire::Topics;

/// The problems found so far; each check records its problem and goes on with
/// a stand-in value, which is never used when any problem was found.
#[derive(Default)]
pub(super) struct Problems(pub Vec<ConfigError>);

impl Problems {
    pub(super) fn take<T: Default>(&mut self, result: Result<T, ConfigError>) -> T {
        result.unwrap_or_else(|problem| {
            self.0.push(problem);
            T::default()
        })
    }

    pub(super) fn push(&mut self, problem: ConfigError) {
        self.0.push(problem);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    mqtt: RawMqtt,
    store: RawStore,
    http: RawHttp,
    registry: RawRegistry,
    log: RawLog,
    rules: RawRules,
    alerts: RawAlerts,
    sms: sms::RawSms,
    watch: watch::RawWatch,
    platforms: platforms::RawPlatforms,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRules {
    min_litres: i64,
    warning_window: String,
    urgent_window: String,
    min_flow_lph: i64,
    flow_for: String,
    leak_for: String,
    max_litres_per_day: i64,
    detector: String,
    sensitivity: String,
    offline_at_least: String,
    background_window: String,
    categories: HashMap<String, toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    notify_warning: bool,
    escalate_after: String,
    repeat_after: String,
    check_in_wait: String,
    maintenance: Vec<String>,
    tick: String,
    leak_hold: String,
    device_fault_hold: String,
    readings_lost_share: f64,
    check_ins_per_day: u32,
    maintenance_texts_per_day: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMqtt {
    mode: String,
    listen: String,
    url: String,
    client_id: String,
    username: String,
    share_group: String,
    native_prefix: String,
    wmbusmeters_prefix: String,
    keep_alive_secs: u64,
    max_clock_ahead_secs: i64,
    tls_listen: String,
    tls_cert_file: PathBuf,
    tls_key_file: PathBuf,
    meter_logins: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    backend: String,
    path: PathBuf,
    url: String,
    lease: String,
    rejected_keep: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    listen: String,
    tls_cert_file: PathBuf,
    tls_key_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistry {
    default_timezone: String,
    default_reporting_interval_min: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    filter: String,
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

fn check(
    ok: bool,
    key: &'static str,
    value: impl std::fmt::Debug,
    allowed: &str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(bad_value(key, value, allowed))
    }
}

impl RawConfig {
    pub(super) fn validate(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        p: &mut Problems,
    ) -> Option<Config> {
        let mqtt = self.mqtt;
        let broker = match mqtt.mode.as_str() {
            "embedded" => p
                .take(parse_listen("mqtt.listen", &mqtt.listen).map(Some))
                .map(|listen| BrokerChoice::Embedded { listen }),
            "external" => p
                .take(parse_mqtt_url(&mqtt.url).map(Some))
                .map(|(host, port)| BrokerChoice::External { host, port }),
            other => {
                p.push(bad_value(
                    "mqtt.mode",
                    other,
                    "must be \"embedded\" or \"external\"",
                ));
                None
            }
        };
        p.take(check(
            !mqtt.client_id.is_empty() && mqtt.client_id.len() <= 64,
            "mqtt.client_id",
            &mqtt.client_id,
            "must be 1 to 64 characters",
        ));
        let credentials = if mqtt.username.is_empty() {
            None
        } else {
            match env(MQTT_PASSWORD_ENV) {
                Some(password) => Some((mqtt.username.clone(), Secret::new(password))),
                None => {
                    p.push(bad_value(
                        "mqtt.username",
                        &mqtt.username,
                        format!("a username needs its password in the environment variable {MQTT_PASSWORD_ENV}"),
                    ));
                    None
                }
            }
        };
        p.take(check_prefix("mqtt.native_prefix", &mqtt.native_prefix));
        p.take(check_prefix(
            "mqtt.wmbusmeters_prefix",
            &mqtt.wmbusmeters_prefix,
        ));
        p.take(check(
            (5..=3600).contains(&mqtt.keep_alive_secs),
            "mqtt.keep_alive_secs",
            mqtt.keep_alive_secs,
            "must be 5 to 3600",
        ));
        let tls = if mqtt.tls_listen.is_empty() {
            None
        } else {
            let listen = p.take(parse_listen("mqtt.tls_listen", &mqtt.tls_listen).map(Some));
            for (key, file) in [
                ("mqtt.tls_cert_file", &mqtt.tls_cert_file),
                ("mqtt.tls_key_file", &mqtt.tls_key_file),
            ] {
                p.take(check(
                    !file.as_os_str().is_empty(),
                    key,
                    "",
                    "must name a PEM file when mqtt.tls_listen is set",
                ));
            }
            listen.map(|listen| TlsFiles {
                listen,
                cert: mqtt.tls_cert_file.clone(),
                key: mqtt.tls_key_file.clone(),
            })
        };
        let http = &self.http;
        let http_tls = match (
            http.tls_cert_file.as_os_str().is_empty(),
            http.tls_key_file.as_os_str().is_empty(),
        ) {
            (true, true) => None,
            (false, false) => Some((http.tls_cert_file.clone(), http.tls_key_file.clone())),
            _ => {
                p.take(check(
                    false,
                    "http.tls_cert_file",
                    "",
                    "and http.tls_key_file go together: name both PEM files, or neither",
                ));
                None
            }
        };
        p.take(check(
            (0..=86_400).contains(&mqtt.max_clock_ahead_secs),
            "mqtt.max_clock_ahead_secs",
            mqtt.max_clock_ahead_secs,
            "must be 0 to 86400",
        ));
        let location = validate_store_location(&self.store, env, p);
        let lease = p.take(duration("store.lease", &self.store.lease).map(Some));
        p.take(check(
            (5..=3600).contains(&lease.unwrap_or(30)),
            "store.lease",
            &self.store.lease,
            "must be 5 s to 1 h",
        ));
        let share_group = mqtt.share_group.clone();
        p.take(check(
            share_group.len() <= 64
                && !share_group.contains(['/', '+', '#'])
                && !share_group.chars().any(char::is_whitespace),
            "mqtt.share_group",
            &share_group,
            "must be empty or a name of at most 64 characters without '/', '+', '#' or spaces",
        ));
        p.take(check(
            share_group.is_empty() || mqtt.mode == "external",
            "mqtt.share_group",
            &share_group,
            "needs mode = \"external\": shared subscriptions are a broker's, and the embedded server delivers nothing to subscribers",
        ));
        p.take(check(
            self.store.rejected_keep > 0,
            "store.rejected_keep",
            0,
            "must be at least 1",
        ));
        let http_listen = p.take(parse_listen("http.listen", &self.http.listen).map(Some));
        let timezone = match self.registry.default_timezone.parse::<chrono_tz::Tz>() {
            Ok(zone) => zone,
            Err(_) => {
                p.push(bad_value(
                    "registry.default_timezone",
                    &self.registry.default_timezone,
                    "must be an IANA time zone such as \"Asia/Shanghai\"",
                ));
                chrono_tz::Asia::Shanghai
            }
        };
        let interval = self.registry.default_reporting_interval_min;
        p.take(check(
            (1..=1440).contains(&interval),
            "registry.default_reporting_interval_min",
            interval,
            "must be 1 to 1440 minutes",
        ));
        p.take(check(
            tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_ok(),
            "log.filter",
            &self.log.filter,
            "must be a tracing filter such as \"info\"",
        ));
        let rules = validate_rules(self.rules, p);
        let alerts = validate_alerts(self.alerts, p);
        let sms = sms::validate_sms(self.sms, env, p);
        if let (Some(sms), Some(lease)) = (&sms, lease) {
            // One attempt may wait on each provider in turn.
            let providers = 1 + u64::from(sms.secondary.is_some());
            let attempt_s = sms.timeout.as_secs() * providers;
            p.take(check(
                lease as u64 > attempt_s,
                "store.lease",
                &self.store.lease,
                &format!("must be longer than a text's longest attempt (sms.timeout × {providers} provider(s) = {attempt_s} s): another gateway would take over a text still being sent"),
            ));
        }
        let watch = watch::validate_watch(self.watch, p);
        let platforms = platforms::validate_platforms(self.platforms, env, p);
        if !p.0.is_empty() {
            return None;
        }
        Some(Config {
            rules,
            alerts,
            sms: sms?,
            watch,
            platforms,
            mqtt: MqttConfig {
                broker: broker?,
                client_id: mqtt.client_id,
                credentials,
                topics: Topics {
                    native_prefix: mqtt.native_prefix,
                    wmbusmeters_prefix: mqtt.wmbusmeters_prefix,
                },
                keep_alive: Duration::from_secs(mqtt.keep_alive_secs),
                max_clock_ahead_s: mqtt.max_clock_ahead_secs,
                tls,
                meter_logins: mqtt.meter_logins,
                share_group: (!share_group.is_empty()).then_some(share_group),
            },
            store: StoreConfig {
                location: location?,
                rejected_keep: self.store.rejected_keep,
                lease: Duration::from_secs(lease?.max(0) as u64),
            },
            http: HttpConfig {
                listen: http_listen?,
                tls: http_tls,
            },
            registry: RegistryDefaults {
                timezone,
                reporting_interval_min: interval,
            },
            log_filter: self.log.filter,
        })
    }
}

/// Where the data is: a SQLite file, or a PostgreSQL server whose password
/// comes from the environment (a URL carrying one is refused: config files
/// are copied and shown).
fn validate_store_location(
    store: &RawStore,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<StoreLocation> {
    match store.backend.as_str() {
        "sqlite" => {
            let named = !store.path.as_os_str().is_empty();
            p.take(check(named, "store.path", "", "must name a file"));
            named.then(|| StoreLocation::Sqlite(store.path.clone()))
        }
        "postgres" => match StoreLocation::postgres(&store.url, env(DB_PASSWORD_ENV)) {
            Ok(location) => Some(location),
            Err(why) => {
                p.push(bad_value(
                    "store.url",
                    crate::domain::shown_url(&store.url),
                    why,
                ));
                None
            }
        },
        other => {
            p.push(bad_value(
                "store.backend",
                other,
                "must be \"sqlite\" or \"postgres\"",
            ));
            None
        }
    }
}

pub(super) fn duration(key: &'static str, text: &str) -> Result<i64, ConfigError> {
    parse_duration(text).map_err(|error| bad_value(key, text, error.to_string()))
}

fn validate_rules(raw: RawRules, p: &mut Problems) -> RulesConfig {
    let mut global = Policy::default();
    let mut setting = |key: &'static str, text: String| match Setting::parse(key, &text) {
        Ok(setting) => global = global.clone().with(&[setting]),
        Err(problem) => p.push(bad_value_text(key, &text, problem)),
    };
    setting("min_litres", raw.min_litres.to_string());
    setting("warning_window", raw.warning_window.clone());
    setting("urgent_window", raw.urgent_window.clone());
    setting("min_flow_lph", raw.min_flow_lph.to_string());
    setting("flow_for", raw.flow_for.clone());
    setting("leak_for", raw.leak_for.clone());
    setting("max_litres_per_day", raw.max_litres_per_day.to_string());
    setting("detector", raw.detector.clone());
    setting("sensitivity", raw.sensitivity.clone());
    let (low, high) = crate::policy::BACKGROUND_WINDOW;
    match duration("rules.background_window", &raw.background_window) {
        Ok(seconds) if (low..=high).contains(&seconds) => global.background_s = seconds,
        Ok(_) => p.push(bad_value(
            "rules.background_window",
            &raw.background_window,
            format!(
                "must be from {} to {}",
                crate::domain::format_duration(low),
                crate::domain::format_duration(high)
            ),
        )),
        Err(problem) => p.push(problem),
    }
    if let Err(problem) = global.check() {
        p.push(bad_value(
            "rules.urgent_window",
            &raw.urgent_window,
            problem,
        ));
    }
    let mut categories = HashMap::new();
    for (name, table) in raw.categories {
        if let Err(problem) = crate::domain::Category::parse(&name) {
            p.push(bad_value("rules.categories", &name, problem.to_string()));
            continue;
        }
        let mut settings = Vec::new();
        for (key, value) in table {
            let text = match &value {
                toml::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            match Setting::parse(&key, &text) {
                Ok(setting) => settings.push(setting),
                Err(problem) => p.push(bad_value(
                    "rules.categories",
                    format!("{name}.{key}"),
                    problem,
                )),
            }
        }
        if let Err(problem) = global.clone().with(&settings).check() {
            p.push(bad_value("rules.categories", &name, problem));
        }
        categories.insert(name, settings);
    }
    RulesConfig {
        global,
        offline_at_least_s: p.take(duration("rules.offline_at_least", &raw.offline_at_least)),
        categories,
    }
}

/// A rule parameter's problem as the file names it (`rules.<key>`).
fn bad_value_text(key: &'static str, text: &str, problem: String) -> ConfigError {
    let key = match key {
        "min_litres" => "rules.min_litres",
        "warning_window" => "rules.warning_window",
        "urgent_window" => "rules.urgent_window",
        "min_flow_lph" => "rules.min_flow_lph",
        "flow_for" => "rules.flow_for",
        "leak_for" => "rules.leak_for",
        "detector" => "rules.detector",
        "sensitivity" => "rules.sensitivity",
        _ => "rules.max_litres_per_day",
    };
    // The problem starts with "<key> = <value>: "; the error names them again.
    let allowed = problem
        .split_once(": ")
        .map_or(problem.as_str(), |(_, rest)| rest)
        .to_string();
    bad_value(key, text, allowed)
}

fn validate_alerts(raw: RawAlerts, p: &mut Problems) -> AlertsConfig {
    let mut seconds =
        |key, text: &str| Duration::from_secs(p.take(duration(key, text)).max(0) as u64);
    let escalate_after = seconds("alerts.escalate_after", &raw.escalate_after);
    let repeat_after = seconds("alerts.repeat_after", &raw.repeat_after);
    let check_in_wait = seconds("alerts.check_in_wait", &raw.check_in_wait);
    let tick = seconds("alerts.tick", &raw.tick);
    let leak_hold = seconds("alerts.leak_hold", &raw.leak_hold);
    let device_fault_hold = seconds("alerts.device_fault_hold", &raw.device_fault_hold);
    let mut maintenance = Vec::new();
    for phone in &raw.maintenance {
        match PhoneNumber::parse(phone) {
            Ok(phone) => maintenance.push(phone),
            Err(error) => p.push(bad_value("alerts.maintenance", phone, error.to_string())),
        }
    }
    AlertsConfig {
        notify_warning: raw.notify_warning,
        escalate_after,
        repeat_after,
        check_in_wait,
        maintenance,
        tick,
        leak_hold,
        device_fault_hold,
        readings_lost_share: {
            p.take(check(
                raw.readings_lost_share > 0.0 && raw.readings_lost_share < 1.0,
                "alerts.readings_lost_share",
                raw.readings_lost_share,
                "must be more than 0 and less than 1 (a share of the day's readings)",
            ));
            raw.readings_lost_share
        },
        check_ins_per_day: p.take(at_least_one(
            "alerts.check_ins_per_day",
            raw.check_ins_per_day,
        )),
        maintenance_texts_per_day: p.take(at_least_one(
            "alerts.maintenance_texts_per_day",
            raw.maintenance_texts_per_day,
        )),
    }
}

pub(super) fn at_least_one(key: &'static str, value: u32) -> Result<u32, ConfigError> {
    if value == 0 {
        return Err(bad_value(key, value, "must be at least 1"));
    }
    Ok(value)
}

/// The names between braces in a template: `"{name} at {adress}"` → name, adress.
pub(super) fn placeholders(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                names.push(&after[..close]);
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    names
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
