//! The `[platforms]` section: which carrier IoT platforms may push, their
//! secrets (from the environment), where pushes may come from, and how each
//! product's data is read.

use std::collections::HashMap;

use serde::Deserialize;

use super::validate::Problems;
use super::*;
use crate::wire::cjt188::StatusBits;
use crate::wire::platform::{FieldMap, ProductDecoder};

/// Which platforms push, and how their data is read.
#[derive(Debug, Clone, Default)]
pub struct PlatformsConfig {
    /// Each enabled platform's secret: CTWing's and IoTDA's path tokens,
    /// OneNET's signing token.
    pub ctwing_token: Option<Secret>,
    pub onenet_token: Option<Secret>,
    /// OneNET's secure mode key, when set.
    pub onenet_aes_key: Option<Secret>,
    pub iotda_token: Option<Secret>,
    pub allow: Vec<AddressBlock>,
    pub products: HashMap<String, ProductDecoder>,
}

pub const CTWING_TOKEN_ENV: &str = "STILLWATER_CTWING_TOKEN";
pub const ONENET_TOKEN_ENV: &str = "STILLWATER_ONENET_TOKEN";
pub const ONENET_AES_KEY_ENV: &str = "STILLWATER_ONENET_AES_KEY";
pub const IOTDA_TOKEN_ENV: &str = "STILLWATER_IOTDA_TOKEN";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlatforms {
    allow: Vec<String>,
    ctwing: RawEnabled,
    onenet: RawEnabled,
    iotda: RawEnabled,
    products: HashMap<String, HashMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnabled {
    enabled: bool,
}

fn token(
    enabled: bool,
    key: &'static str,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<Secret> {
    if !enabled {
        return None;
    }
    match super::sms::from_env(env, name) {
        Some(value) => Some(Secret::new(value.trim().to_string())),
        None => {
            p.push(bad_value(
                key,
                true,
                format!("the platform needs its secret in the environment variable {name}"),
            ));
            None
        }
    }
}

fn product(id: &str, settings: &HashMap<String, String>) -> Result<ProductDecoder, String> {
    let name = format!("platforms.products.{id}");
    let known: &[&str] = match settings.get("decoder").map(String::as_str) {
        Some("cjt188") => &["decoder", "status_bits"],
        Some("fields") => &["decoder", "total", "unit", "battery_pct"],
        other => {
            return Err(format!(
                "{name}: decoder = {other:?}: must be \"cjt188\" or \"fields\""
            ))
        }
    };
    if let Some(key) = settings.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(format!(
            "{name}: unknown setting {key:?}; this decoder takes {}",
            known.join(", ")
        ));
    }
    if settings["decoder"] == "cjt188" {
        return match settings.get("status_bits").map(String::as_str) {
            None | Some("low") => Ok(ProductDecoder::Cjt188(StatusBits::Low)),
            Some("high") => Ok(ProductDecoder::Cjt188(StatusBits::High)),
            Some(other) => Err(format!(
                "{name}: status_bits = {other:?}: must be \"low\" or \"high\""
            )),
        };
    }
    let total = settings
        .get("total")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{name}: total must name the field holding the register"))?;
    let cubic_metres = match settings.get("unit").map(String::as_str) {
        Some("L") => false,
        Some("m3") => true,
        other => return Err(format!("{name}: unit = {other:?}: must be \"L\" or \"m3\"")),
    };
    Ok(ProductDecoder::Fields(FieldMap {
        total: total.clone(),
        cubic_metres,
        battery_pct: settings
            .get("battery_pct")
            .filter(|b| !b.is_empty())
            .cloned(),
    }))
}

pub(super) fn validate_platforms(
    raw: RawPlatforms,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> PlatformsConfig {
    let mut allow = Vec::new();
    for text in &raw.allow {
        match AddressBlock::parse(text) {
            Some(block) => allow.push(block),
            None => p.push(bad_value(
                "platforms.allow",
                text,
                "must be an IP address or a CIDR block such as \"180.101.0.0/16\"",
            )),
        }
    }
    let mut products = HashMap::new();
    let mut ids: Vec<&String> = raw.products.keys().collect();
    ids.sort();
    for id in ids {
        match product(id, &raw.products[id]) {
            Ok(decoder) => {
                products.insert(id.clone(), decoder);
            }
            Err(problem) => p.push(ConfigError::Shape(problem)),
        }
    }
    let onenet_token = token(
        raw.onenet.enabled,
        "platforms.onenet.enabled",
        ONENET_TOKEN_ENV,
        env,
        p,
    );
    PlatformsConfig {
        ctwing_token: token(
            raw.ctwing.enabled,
            "platforms.ctwing.enabled",
            CTWING_TOKEN_ENV,
            env,
            p,
        ),
        onenet_aes_key: onenet_token
            .as_ref()
            .and(super::sms::from_env(env, ONENET_AES_KEY_ENV))
            .map(|key| Secret::new(key.trim().to_string())),
        onenet_token,
        iotda_token: token(
            raw.iotda.enabled,
            "platforms.iotda.enabled",
            IOTDA_TOKEN_ENV,
            env,
            p,
        ),
        allow,
        products,
    }
}
