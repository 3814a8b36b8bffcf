//! wmbusmeters JSON, exactly as wmbusmeters publishes it (`wmbusmeters/{name}`).
//!
//! The meter id is the `id` field, the register `total_m3`, the time the UTC
//! `timestamp` (wmbusmeters' reception time: the telegrams of most water meters
//! carry no clock). Status comes from `current_status` or `status`, a
//! space-separated list of flags where `OK` means none. Field order and unknown
//! fields do not matter: wmbusmeters only ever adds fields.

use serde_json::Value;

use super::{add_flags, check_flow, json_kind, m3_to_litres, parse_object, parse_timestamp};
use crate::domain::{MeterId, Reading, StatusFlags};
use crate::pipeline::{Decoded, RejectReason, Rejection};

pub(super) fn decode(payload: &[u8], now: super::Arrival) -> Decoded {
    let mut decoded = Decoded::default();
    let object = match parse_object(payload) {
        Ok(object) => object,
        Err(rejection) => {
            decoded.rejections.push(rejection);
            return decoded;
        }
    };
    let meter = match object.get("id") {
        Some(Value::String(id)) => MeterId::parse(id)
            .map_err(|error| Rejection::new(RejectReason::BadMeterId, format!("`id`: {error}"))),
        None | Some(Value::Null) => Err(Rejection::new(
            RejectReason::MissingField,
            "`id` is missing",
        )),
        Some(other) => Err(Rejection::new(
            RejectReason::BadMeterId,
            format!("`id` must be a string, found {}", json_kind(other)),
        )),
    };
    let meter = match meter {
        Ok(meter) => meter,
        Err(rejection) => {
            decoded.rejections.push(rejection);
            return decoded;
        }
    };
    decoded.meter = Some(meter.clone());
    let result = (|| {
        let ts = parse_timestamp("timestamp", object.get("timestamp"), now)?;
        let total = match object.get("total_m3") {
            Some(Value::Number(m3)) => m3_to_litres("total_m3", m3)?,
            None | Some(Value::Null) => {
                return Err(Rejection::new(
                    RejectReason::MissingField,
                    "`total_m3` is missing (is this a water meter driver?)",
                ))
            }
            Some(other) => {
                return Err(Rejection::new(
                    RejectReason::AbsurdValue,
                    format!("`total_m3` must be a number, found {}", json_kind(other)),
                ))
            }
        };
        let flow_lph = match object.get("flow_m3h") {
            Some(Value::Number(m3h)) => Some(check_flow(
                "flow_m3h",
                m3h.as_f64().unwrap_or(-1.0) * 1000.0,
            )?),
            _ => None,
        };
        let mut status = StatusFlags::default();
        for field in ["current_status", "status"] {
            if let Some(Value::String(names)) = object.get(field) {
                add_flags(&mut status, names.split_whitespace());
            }
        }
        Ok(Reading {
            meter: meter.clone(),
            ts,
            total,
            flow_lph,
            battery_pct: None,
            status,
            seq: None,
        })
    })();
    match result {
        Ok(reading) => decoded.readings.push(reading),
        Err(rejection) => decoded.rejections.push(rejection),
    }
    decoded
}
