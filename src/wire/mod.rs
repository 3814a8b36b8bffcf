//! The wire: MQTT topic + payload → [`Reading`]s, or a [`Rejection`] that says why not.
//!
//! Each meter format has its own file (`native`, `wmbusmeters`); this module
//! routes a topic to the right decoder and owns the limits every format shares.
//! Decoding is pure: no I/O, no clock (the receive time is an argument), and a
//! bad payload is a value, never a panic. Formats to come (CJ/T 188 frames,
//! carrier IoT pushes) are new files here and new arms in [`decode`].

pub mod cjt188;
mod native;
pub mod onenet;
pub mod platform;
mod wmbusmeters;

use serde_json::{Map, Value};

use crate::domain::{Litres, MeterId, Reading, StatusFlag, StatusFlags, Timestamp};
use crate::pipeline::{Decoded, RejectReason, Rejection};

/// Largest payload decoded; larger ones are rejected as `oversize`.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Most readings in one batch message.
pub const MAX_BATCH_READINGS: usize = 10_000;
/// Largest plausible register, litres (100 million m³).
pub const MAX_TOTAL_L: i64 = 100_000_000_000;
/// Largest plausible flow, litres per hour (100 m³/h; a household pipe gives a few).
pub const MAX_FLOW_LPH: i64 = 100_000;
/// Earliest plausible meter timestamp: 2000-01-01T00:00:00Z.
pub const MIN_TS: i64 = 946_684_800;
/// How far a meter's clock may run ahead of the gateway's by default, seconds
/// (`[mqtt] max_clock_ahead_secs`).
pub const DEFAULT_MAX_CLOCK_AHEAD_S: i64 = 600;

/// The gateway's clock when a message arrived, and how far ahead of it a
/// meter's clock may run: a reading dated later is rejected as `future_ts`
/// (it would become the meter's newest and push every correct reading after
/// it out of order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub at: Timestamp,
    pub max_ahead_s: i64,
}

impl Arrival {
    /// At `at`, with the default allowance.
    pub fn at(at: Timestamp) -> Self {
        Self {
            at,
            max_ahead_s: DEFAULT_MAX_CLOCK_AHEAD_S,
        }
    }
}

/// The MQTT topics the gateway listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Native readings arrive on `{native_prefix}/{meter_id}/reading`.
    pub native_prefix: String,
    /// wmbusmeters JSON arrives on `{wmbusmeters_prefix}/{name}`.
    pub wmbusmeters_prefix: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            native_prefix: "meters".into(),
            wmbusmeters_prefix: "wmbusmeters".into(),
        }
    }
}

impl Topics {
    /// The subscription filters, QoS 1 each: everything under both prefixes,
    /// so a publish to a topic no format knows (`meters/ID/extra/reading`)
    /// reaches the gateway, to be counted and recorded as `unknown_topic`.
    pub fn filters(&self) -> Vec<String> {
        vec![
            format!("{}/#", self.native_prefix),
            format!("{}/#", self.wmbusmeters_prefix),
        ]
    }
}

/// Decodes one MQTT message. `now` bounds how far ahead a meter's clock may be.
pub fn decode(topics: &Topics, topic: &str, payload: &[u8], now: Arrival) -> Decoded {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return oversize(topics, topic, payload.len());
    }
    if let Some(id) = meter_of_topic(topics, topic) {
        return match MeterId::parse(id) {
            Ok(meter) => native::decode(meter, payload, now),
            Err(error) => Decoded::rejected(
                None,
                Rejection::new(
                    RejectReason::BadMeterId,
                    format!("topic {topic:?}: {error}"),
                ),
            ),
        };
    }
    if topic
        .strip_prefix(topics.wmbusmeters_prefix.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
    {
        return wmbusmeters::decode(payload, now);
    }
    Decoded::rejected(
        None,
        Rejection::new(
            RejectReason::UnknownTopic,
            format!("topic {topic:?} matches no known meter format"),
        ),
    )
}

/// A message of `payload_len` bytes on `topic`, too large to decode: an
/// `oversize` rejection naming the meter when the topic does.
pub fn oversize(topics: &Topics, topic: &str, payload_len: usize) -> Decoded {
    let rejection = Rejection::new(
        RejectReason::Oversize,
        format!("payload is {payload_len} bytes; the limit is {MAX_PAYLOAD_BYTES}"),
    );
    let meter = meter_of_topic(topics, topic).and_then(|id| MeterId::parse(id).ok());
    Decoded::rejected(meter, rejection)
}

/// The meter a native topic names (`meters/ZS-0001/reading` → `ZS-0001`).
pub fn meter_of_topic<'t>(topics: &Topics, topic: &'t str) -> Option<&'t str> {
    topic
        .strip_prefix(topics.native_prefix.as_str())?
        .strip_prefix('/')?
        .strip_suffix("/reading")
        .filter(|id| !id.contains('/'))
}

/// Parses JSON and insists on an object at the top.
fn parse_object(payload: &[u8]) -> Result<Map<String, Value>, Rejection> {
    let value: Value = serde_json::from_slice(payload).map_err(|error| {
        Rejection::new(
            RejectReason::InvalidJson,
            format!("payload is not valid JSON: {error}"),
        )
    })?;
    match value {
        Value::Object(object) => Ok(object),
        other => Err(Rejection::new(
            RejectReason::InvalidJson,
            format!("payload must be a JSON object, found {}", json_kind(&other)),
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One reading given as named fields (`ts`, `total_l` or `total_m3`,
/// `flow_lph`, `battery_pct`, `status`), validated exactly as a native MQTT
/// reading is: a utility's history export goes through the same checks.
pub fn reading_from_fields(
    meter: &str,
    fields: &Map<String, Value>,
    now: Arrival,
) -> Result<Reading, Rejection> {
    let meter = MeterId::parse(meter)
        .map_err(|error| Rejection::new(RejectReason::BadMeterId, error.to_string()))?;
    native::reading(&meter, fields, now)
}

/// Parses an RFC 3339 timestamp (with offset) into Unix seconds and checks it is plausible.
fn parse_timestamp(
    field: &str,
    value: Option<&Value>,
    now: Arrival,
) -> Result<Timestamp, Rejection> {
    let text = match value {
        None | Some(Value::Null) => {
            return Err(Rejection::new(
                RejectReason::MissingField,
                format!("`{field}` is missing"),
            ))
        }
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(Rejection::new(
                RejectReason::BadTimestamp,
                format!(
                    "`{field}` must be an RFC 3339 string, found {}",
                    json_kind(other)
                ),
            ))
        }
    };
    timestamp_text(field, text, now)
}

/// An RFC 3339 timestamp from the text of field `field`, checked against the
/// gateway's clock.
fn timestamp_text(field: &str, text: &str, now: Arrival) -> Result<Timestamp, Rejection> {
    let ts = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|error| {
            Rejection::new(
                RejectReason::BadTimestamp,
                format!("`{field}` {text:?} is not RFC 3339 with an offset ({error})"),
            )
        })?
        .timestamp();
    if ts < MIN_TS {
        return Err(Rejection::new(
            RejectReason::BadTimestamp,
            format!("`{field}` {text:?} is before 2000: the meter's clock is not set"),
        ));
    }
    let ahead = ts - now.at.secs();
    if ahead > now.max_ahead_s {
        return Err(Rejection::new(
            RejectReason::FutureTs,
            format!(
                "`{field}` {text:?} is {} ahead of the gateway's clock (at most {} allowed): \
                 set the meter's clock, or raise [mqtt] max_clock_ahead_secs",
                roughly(ahead),
                roughly(now.max_ahead_s),
            ),
        ));
    }
    Ok(Timestamp::from_secs(ts))
}

/// Seconds in words to the nearest useful unit: "90 s", "25 min", "23.0 h".
fn roughly(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}

/// A cubic-metre decimal as whole litres, exactly (no float arithmetic when the
/// number has at most three decimals, as every meter we know sends).
fn m3_to_litres(field: &str, number: &serde_json::Number) -> Result<Litres, Rejection> {
    let absurd = || {
        Rejection::new(
            RejectReason::AbsurdValue,
            format!("`{field}` {number} is not a plausible register (0 to 100,000,000 m³)"),
        )
    };
    let text = number.to_string();
    let litres = if text.contains(['e', 'E']) {
        let m3 = number.as_f64().ok_or_else(absurd)?;
        (m3 * 1000.0).round() as i64
    } else {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let whole: i64 = whole.parse().map_err(|_| absurd())?;
        let mut milli = 0i64;
        for (position, digit) in fraction.bytes().take(4).enumerate() {
            let digit = i64::from(digit - b'0');
            match position {
                0 => milli += digit * 100,
                1 => milli += digit * 10,
                2 => milli += digit,
                _ => milli += i64::from(digit >= 5), // round half up on the fourth decimal
            }
        }
        let litres = whole.checked_mul(1000).ok_or_else(absurd)? + milli;
        if negative {
            -litres
        } else {
            litres
        }
    };
    check_total(field, litres)
}

fn check_total(field: &str, litres: i64) -> Result<Litres, Rejection> {
    if !(0..=MAX_TOTAL_L).contains(&litres) {
        return Err(Rejection::new(
            RejectReason::AbsurdValue,
            format!("`{field}` gives {litres} L: a register must be 0 to {MAX_TOTAL_L} L"),
        ));
    }
    Ok(Litres::new(litres))
}

fn check_flow(field: &str, lph: f64) -> Result<i64, Rejection> {
    if !lph.is_finite() || lph < 0.0 || lph > MAX_FLOW_LPH as f64 {
        return Err(Rejection::new(
            RejectReason::AbsurdValue,
            format!("`{field}` gives {lph} L/h: flow must be 0 to {MAX_FLOW_LPH} L/h"),
        ));
    }
    Ok(lph.round() as i64)
}

/// Adds wmbusmeters-style flag names to `flags`; `OK` and unknown names add nothing.
fn add_flags<'a>(flags: &mut StatusFlags, names: impl Iterator<Item = &'a str>) {
    for name in names {
        if let Some(flag) = StatusFlag::from_name(name.trim()) {
            flags.insert(flag);
        }
    }
}

#[cfg(test)]
mod tests;
