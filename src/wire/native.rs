//! Stillwater's native format (docs/wire-format.md): one reading object, or a
//! batch `{"readings": [...]}`, on `meters/{meter_id}/reading`.

use serde_json::{Map, Value};

use super::{
    add_flags, check_flow, check_total, json_kind, m3_to_litres, parse_object, parse_timestamp,
    timestamp_text, MAX_BATCH_READINGS,
};
use crate::domain::{MeterId, Reading, StatusFlags};
use crate::pipeline::{Decoded, RejectReason, Rejection};

/// The usual single reading, decoded without building a JSON tree. Anything
/// else — a batch, status flags, `total_m3`, other fields, a wrong type or an
/// out-of-range value — goes the general way, which words every rejection.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain<'a> {
    ts: &'a str,
    total_l: i64,
    #[serde(default)]
    flow_lph: Option<f64>,
    #[serde(default)]
    battery_pct: Option<u8>,
    #[serde(default)]
    seq: Option<u64>,
}

impl Plain<'_> {
    fn reading(&self, meter: &MeterId, now: super::Arrival) -> Option<Reading> {
        Some(Reading {
            meter: meter.clone(),
            ts: timestamp_text("ts", self.ts, now).ok()?,
            total: check_total("total_l", self.total_l).ok()?,
            flow_lph: match self.flow_lph {
                Some(flow) => Some(check_flow("flow_lph", flow).ok()?),
                None => None,
            },
            battery_pct: match self.battery_pct {
                Some(pct) if pct > 100 => return None,
                pct => pct,
            },
            status: StatusFlags::default(),
            seq: self.seq,
        })
    }
}

pub(super) fn decode(meter: MeterId, payload: &[u8], now: super::Arrival) -> Decoded {
    match serde_json::from_slice::<Plain>(payload)
        .ok()
        .and_then(|plain| plain.reading(&meter, now))
    {
        Some(reading) => Decoded {
            meter: Some(meter),
            readings: vec![reading],
            rejections: Vec::new(),
        },
        None => general(meter, payload, now),
    }
}

/// Any payload, through a JSON tree.
pub(super) fn general(meter: MeterId, payload: &[u8], now: super::Arrival) -> Decoded {
    let mut decoded = Decoded {
        meter: Some(meter.clone()),
        ..Decoded::default()
    };
    let object = match parse_object(payload) {
        Ok(object) => object,
        Err(rejection) => {
            decoded.rejections.push(rejection);
            return decoded;
        }
    };
    match object.get("readings") {
        None => match reading(&meter, &object, now) {
            Ok(reading) => decoded.readings.push(reading),
            Err(rejection) => decoded.rejections.push(rejection),
        },
        Some(Value::Array(items)) if items.is_empty() => decoded.rejections.push(Rejection::new(
            RejectReason::EmptyBatch,
            "`readings` is an empty array",
        )),
        Some(Value::Array(items)) if items.len() > MAX_BATCH_READINGS => {
            decoded.rejections.push(Rejection::new(
                RejectReason::Oversize,
                format!(
                    "`readings` holds {} readings; the limit is {MAX_BATCH_READINGS}",
                    items.len()
                ),
            ))
        }
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                let result = match item {
                    Value::Object(entry) => reading(&meter, entry, now),
                    other => Err(Rejection::new(
                        RejectReason::InvalidJson,
                        format!("must be an object, found {}", json_kind(other)),
                    )),
                };
                match result {
                    Ok(reading) => decoded.readings.push(reading),
                    Err(mut rejection) => {
                        rejection.detail = format!("readings[{index}]: {}", rejection.detail);
                        decoded.rejections.push(rejection);
                    }
                }
            }
        }
        Some(other) => decoded.rejections.push(Rejection::new(
            RejectReason::InvalidJson,
            format!("`readings` must be an array, found {}", json_kind(other)),
        )),
    }
    decoded
}

pub(super) fn reading(
    meter: &MeterId,
    object: &Map<String, Value>,
    now: super::Arrival,
) -> Result<Reading, Rejection> {
    let ts = parse_timestamp("ts", object.get("ts"), now)?;
    let total = match (object.get("total_l"), object.get("total_m3")) {
        (Some(Value::Number(litres)), _) => match litres.as_i64() {
            Some(litres) => check_total("total_l", litres)?,
            None => {
                return Err(Rejection::new(
                    RejectReason::AbsurdValue,
                    format!("`total_l` {litres} must be a whole number of litres"),
                ))
            }
        },
        (None | Some(Value::Null), Some(Value::Number(m3))) => m3_to_litres("total_m3", m3)?,
        (None | Some(Value::Null), None | Some(Value::Null)) => {
            return Err(Rejection::new(
                RejectReason::MissingField,
                "`total_l` (or `total_m3`) is missing",
            ))
        }
        (Some(other), _) | (_, Some(other)) => {
            return Err(Rejection::new(
                RejectReason::AbsurdValue,
                format!("the register must be a number, found {}", json_kind(other)),
            ))
        }
    };
    let flow_lph = match object.get("flow_lph") {
        None | Some(Value::Null) => None,
        Some(Value::Number(flow)) => Some(check_flow("flow_lph", flow.as_f64().unwrap_or(-1.0))?),
        Some(other) => {
            return Err(Rejection::new(
                RejectReason::AbsurdValue,
                format!("`flow_lph` must be a number, found {}", json_kind(other)),
            ))
        }
    };
    let battery_pct = match object.get("battery_pct") {
        None | Some(Value::Null) => None,
        Some(Value::Number(pct)) => match pct.as_u64().filter(|pct| *pct <= 100) {
            Some(pct) => Some(pct as u8),
            None => {
                return Err(Rejection::new(
                    RejectReason::AbsurdValue,
                    format!("`battery_pct` {pct} must be a whole number from 0 to 100"),
                ))
            }
        },
        Some(other) => {
            return Err(Rejection::new(
                RejectReason::AbsurdValue,
                format!("`battery_pct` must be a number, found {}", json_kind(other)),
            ))
        }
    };
    let mut status = StatusFlags::default();
    match object.get("status") {
        None | Some(Value::Null) => {}
        Some(Value::Array(names)) => {
            add_flags(&mut status, names.iter().filter_map(Value::as_str));
        }
        Some(Value::String(names)) => add_flags(&mut status, names.split_whitespace()),
        Some(other) => {
            return Err(Rejection::new(
                RejectReason::InvalidJson,
                format!(
                    "`status` must be an array of flag names, found {}",
                    json_kind(other)
                ),
            ))
        }
    }
    // A counter that is not a whole number is ignored, not refused: the
    // reading itself is good.
    let seq = object.get("seq").and_then(Value::as_u64);
    Ok(Reading {
        meter: meter.clone(),
        ts,
        total,
        flow_lph,
        battery_pct,
        status,
        seq,
    })
}
