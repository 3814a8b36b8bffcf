//! What the carrier IoT platforms push — China Telecom's CTWing, China
//! Mobile's OneNET (both generations) and Huawei's IoTDA — read into
//! [`Item`]s, and an item into readings ([`decode_item`]).
//!
//! Each platform wraps the meter's data its own way: CTWing puts the meter's
//! bytes base64 in `payload.APPdata` or codec-decoded fields in
//! `payload.serviceData`; OneNET puts them hex in `value` (or `bin_data`);
//! IoTDA sends codec-decoded `properties`. The bytes are CJ/T 188
//! (`cjt188`); fields are mapped by a per-product [`FieldMap`]. Verifying who
//! sent a push (OneNET's signature, a path token) is not done here. Pure.

use chrono::TimeZone;
use serde_json::{Map, Value};

use super::cjt188;
use super::{Arrival, MAX_TOTAL_L, MIN_TS};
use crate::domain::{Litres, MeterId, Reading, StatusFlag, StatusFlags, Timestamp};
use crate::pipeline::{Decoded, RejectReason, Rejection};

/// Which platform pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Ctwing,
    Onenet,
    Iotda,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ctwing => "ctwing",
            Platform::Onenet => "onenet",
            Platform::Iotda => "iotda",
        }
    }
}

/// A device as the platform names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub platform: Platform,
    pub product_id: String,
    pub device_id: String,
    /// The module's IMEI, when the platform says it.
    pub imei: Option<String>,
}

/// What one pushed message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// The meter's own bytes.
    Bytes(Vec<u8>),
    /// Fields the platform's codec decoded.
    Fields(Map<String, Value>),
    /// The device came online (true) or went offline.
    Online(bool),
    /// Something else (a command's result, an event): counted, not stored.
    Other(String),
    /// A message that cannot be read, with why.
    Unreadable(String),
}

/// One pushed message.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub device: Device,
    /// The platform's time for it, Unix milliseconds.
    pub at_ms: Option<i64>,
    pub content: Content,
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    }
}

/// An IMEI as platforms send it: 15 digits; `"undefined"` and the like are none.
fn imei(value: Option<&Value>) -> Option<String> {
    let imei = text(value);
    crate::domain::is_imei(&imei).then_some(imei)
}

fn json(body: &[u8], what: &str) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|error| format!("the {what} is not JSON: {error}"))
}

/// CTWing's HTTP subscription push: one flat JSON message with `messageType`.
pub fn ctwing(body: &[u8]) -> Result<Item, String> {
    let message = json(body, "CTWing push")?;
    let field = |name: &str| message.get(name);
    let device = Device {
        platform: Platform::Ctwing,
        product_id: text(field("productId")),
        device_id: text(field("deviceId")),
        imei: imei(field("IMEI")),
    };
    if device.device_id.is_empty() {
        return Err("the CTWing push has no deviceId".into());
    }
    let payload = field("payload");
    let content = match text(field("messageType")).as_str() {
        "dataReport" | "dataReportTupUnion" => {
            match (
                payload.and_then(|p| p.get("APPdata")),
                payload.and_then(|p| p.get("serviceData")),
            ) {
                (Some(Value::String(data)), _) => {
                    use base64::Engine as _;
                    match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
                        Ok(bytes) => Content::Bytes(bytes),
                        Err(error) => {
                            Content::Unreadable(format!("APPdata is not base64: {error}"))
                        }
                    }
                }
                (_, Some(Value::Object(fields))) => Content::Fields(fields.clone()),
                _ => Content::Unreadable(
                    "a dataReport without payload.APPdata or payload.serviceData".into(),
                ),
            }
        }
        "deviceOnlineOfflineReport" => match field("eventType").and_then(Value::as_i64) {
            Some(1) => Content::Online(true),
            Some(0) => Content::Online(false),
            _ => Content::Unreadable("an online/offline report without eventType 0 or 1".into()),
        },
        "" => Content::Unreadable("the CTWing push has no messageType".into()),
        other => Content::Other(other.to_string()),
    };
    Ok(Item {
        device,
        at_ms: field("timestamp").and_then(Value::as_i64),
        content,
    })
}

/// OneNET's legacy `msg`: one message object or an array of them.
pub fn onenet_legacy(msg: &Value) -> Vec<Item> {
    let messages = match msg {
        Value::Array(list) => list.iter().collect(),
        one => vec![one],
    };
    messages.into_iter().map(onenet_legacy_one).collect()
}

fn onenet_legacy_one(message: &Value) -> Item {
    let field = |name: &str| message.get(name);
    let device = Device {
        platform: Platform::Onenet,
        product_id: String::new(),
        device_id: text(field("dev_id")),
        imei: imei(field("imei")),
    };
    let content = match field("type").and_then(Value::as_i64) {
        Some(1) => match field("value") {
            Some(Value::String(hex)) => match cjt188::from_hex(hex) {
                Ok(bytes) => Content::Bytes(bytes),
                Err(error) => Content::Unreadable(format!("value: {error}")),
            },
            Some(Value::Object(fields)) => Content::Fields(fields.clone()),
            _ => Content::Unreadable("a data point without a value".into()),
        },
        Some(2) => Content::Online(field("status").and_then(Value::as_i64) == Some(1)),
        Some(other) => Content::Other(format!("type {other}")),
        None => Content::Unreadable("a message without a type".into()),
    };
    Item {
        device,
        at_ms: field("at").and_then(Value::as_i64),
        content,
    }
}

/// OneNET Studio's `msg` (already a JSON text): `lifeCycle` and `notify`.
pub fn onenet_studio(msg: &str) -> Result<Item, String> {
    let message = json(msg.as_bytes(), "OneNET msg")?;
    let field = |name: &str| message.get(name);
    let data = field("data");
    let device = Device {
        platform: Platform::Onenet,
        product_id: text(field("productId")),
        device_id: text(field("deviceName")),
        imei: imei(field("imei")),
    };
    let content = match text(field("messageType")).as_str() {
        "notify" if text(field("notifyType")) == "property" => {
            match data.and_then(|d| d.get("params")) {
                Some(Value::Object(params)) => {
                    // IPSO data from an LwM2M device: its bytes as hex.
                    let bytes = params
                        .values()
                        .find_map(|p| p.get("bin_data").and_then(Value::as_str));
                    match bytes {
                        Some(hex) => match cjt188::from_hex(hex) {
                            Ok(bytes) => Content::Bytes(bytes),
                            Err(error) => Content::Unreadable(format!("bin_data: {error}")),
                        },
                        None => Content::Fields(
                            params
                                .iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.get("value").cloned().unwrap_or(v.clone()))
                                })
                                .collect(),
                        ),
                    }
                }
                _ => Content::Unreadable("a property notification without data.params".into()),
            }
        }
        "lifeCycle" => {
            let status = data.and_then(|d| d.get("status")).map(|s| text(Some(s)));
            Content::Online(matches!(status.as_deref(), Some("online") | Some("1")))
        }
        "" => Content::Unreadable("the OneNET msg has no messageType".into()),
        other => Content::Other(other.to_string()),
    };
    Ok(Item {
        device,
        at_ms: field("time")
            .and_then(Value::as_i64)
            .or_else(|| data.and_then(|d| d.get("time")).and_then(Value::as_i64)),
        content,
    })
}

/// `yyyyMMdd'T'HHmmss'Z'` as IoTDA writes event times.
fn iotda_time(text: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// Huawei IoTDA's rule-engine push: `device.property` reports, one item per
/// service; `device.status` online/offline; anything else counted.
pub fn iotda(body: &[u8]) -> Result<Vec<Item>, String> {
    let message = json(body, "IoTDA push")?;
    let data = message
        .get("notify_data")
        .ok_or("the IoTDA push has no notify_data")?;
    let header = data.get("header").ok_or("notify_data has no header")?;
    let device = Device {
        platform: Platform::Iotda,
        product_id: text(header.get("product_id")),
        device_id: text(header.get("device_id")),
        imei: imei(header.get("node_id")),
    };
    if device.device_id.is_empty() {
        return Err("the IoTDA push has no device_id".into());
    }
    let at_ms = message
        .get("event_time")
        .and_then(Value::as_str)
        .and_then(iotda_time);
    let resource = text(message.get("resource"));
    if resource == "device.status" {
        let status = text(data.get("body").and_then(|b| b.get("status")));
        return Ok(vec![Item {
            device,
            at_ms,
            content: Content::Online(status == "ONLINE"),
        }]);
    }
    if resource != "device.property" {
        return Ok(vec![Item {
            device,
            at_ms,
            content: Content::Other(resource),
        }]);
    }
    let services = data
        .get("body")
        .and_then(|b| b.get("services"))
        .and_then(Value::as_array)
        .ok_or("a device.property push without body.services")?;
    Ok(services
        .iter()
        .map(|service| Item {
            device: device.clone(),
            at_ms: service
                .get("event_time")
                .and_then(Value::as_str)
                .and_then(iotda_time)
                .or(at_ms),
            content: match service.get("properties") {
                Some(Value::Object(properties)) => Content::Fields(properties.clone()),
                _ => Content::Unreadable("a service without properties".into()),
            },
        })
        .collect())
}

/// How a product's codec-decoded fields map onto a reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    /// The field holding the cumulative register.
    pub total: String,
    /// Its unit: litres (`false`) or cubic metres (`true`).
    pub cubic_metres: bool,
    /// A field holding the battery in percent, if any: below 20 it is
    /// `LOW_BATTERY`.
    pub battery_pct: Option<String>,
}

/// How a product's data is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductDecoder {
    Cjt188(cjt188::StatusBits),
    Fields(FieldMap),
}

/// Values codecs use for "no data" (all ones): never a reading.
fn sentinel(value: f64) -> bool {
    [4_294_967_295.0, 1_099_511_627_775.0, 65_535.0].contains(&value)
}

/// The readings (or rejections) in one item. `meter` is the registered meter
/// the device belongs to, when the registry knows it; otherwise the meter
/// is the CJ/T 188 address, or the IMEI, or the platform's device id.
/// `decoder` is the product's, `None` when the product is not configured
/// (bytes are then read as CJ/T 188, fields refused).
pub fn decode_item(
    item: &Item,
    meter: Option<&MeterId>,
    decoder: Option<&ProductDecoder>,
    zone: chrono_tz::Tz,
    arrival: Arrival,
) -> Decoded {
    let fallback = || {
        meter.cloned().or_else(|| {
            item.device
                .imei
                .as_deref()
                .or(Some(item.device.device_id.as_str()))
                .and_then(|id| MeterId::parse(id).ok())
        })
    };
    let reject = |meter: Option<MeterId>, reason, detail: String| {
        Decoded::rejected(meter, Rejection::new(reason, detail))
    };
    let platform_time = item
        .at_ms
        .map(|ms| Timestamp::from_secs(ms.div_euclid(1000)));
    let (meter_id, ts, total_l, status) = match (&item.content, decoder) {
        (Content::Bytes(bytes), None | Some(ProductDecoder::Cjt188(_))) => {
            let bits = match decoder {
                Some(ProductDecoder::Cjt188(bits)) => *bits,
                _ => cjt188::StatusBits::Low,
            };
            let read = match cjt188::parse_frame(bytes).and_then(|frame| cjt188::read(&frame)) {
                Ok(read) => read,
                Err(error) => {
                    return reject(fallback(), RejectReason::BadFrame, format!("CJ/T 188: {error}"))
                }
            };
            let meter_id = match meter {
                Some(meter) => meter.clone(),
                None => match MeterId::parse(&read.address) {
                    Ok(id) => id,
                    Err(error) => return reject(fallback(), RejectReason::BadMeterId, error.to_string()),
                },
            };
            // The meter's clock, in the zone its household lives in; the
            // platform's time when the meter sent none.
            let ts = read
                .time
                .and_then(|time| zone.from_local_datetime(&time).earliest())
                .map(|time| Timestamp::from_secs(time.timestamp()))
                .or(platform_time);
            (meter_id, ts, read.total_l, bits.flags(read.status))
        }
        (Content::Fields(fields), Some(ProductDecoder::Fields(map))) => {
            let Some(meter_id) = fallback() else {
                return reject(None, RejectReason::BadMeterId, "the device has no usable id".into());
            };
            let Some(value) = fields.get(&map.total).and_then(|v| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }) else {
                return reject(
                    Some(meter_id),
                    RejectReason::MissingField,
                    format!("no number in field {:?}", map.total),
                );
            };
            if !value.is_finite() || sentinel(value) {
                return reject(
                    Some(meter_id),
                    RejectReason::AbsurdValue,
                    format!("{:?} = {value} is the codec's \"no data\" value", map.total),
                );
            }
            let total_l = if map.cubic_metres { value * 1000.0 } else { value };
            let mut status = StatusFlags::default();
            if let Some(battery) = map.battery_pct.as_ref().and_then(|f| fields.get(f)).and_then(Value::as_f64) {
                if battery < 20.0 {
                    status.insert(StatusFlag::LowBattery);
                }
            }
            (meter_id, platform_time, total_l.round() as i64, status)
        }
        (Content::Fields(_), None) => {
            return reject(
                fallback(),
                RejectReason::UnknownProduct,
                format!(
                    "product {:?} sends codec-decoded fields; say which field is the register under [platforms.products]",
                    item.device.product_id
                ),
            )
        }
        (Content::Fields(_), Some(ProductDecoder::Cjt188(_))) => {
            return reject(
                fallback(),
                RejectReason::UnknownProduct,
                format!("product {:?} is set to CJ/T 188 but sent codec-decoded fields", item.device.product_id),
            )
        }
        (Content::Bytes(_), Some(ProductDecoder::Fields(_))) => {
            return reject(
                fallback(),
                RejectReason::UnknownProduct,
                format!("product {:?} is set to fields but sent raw bytes", item.device.product_id),
            )
        }
        (Content::Unreadable(why), _) => return reject(fallback(), RejectReason::BadFrame, why.clone()),
        (Content::Online(_) | Content::Other(_), _) => {
            return Decoded {
                meter: fallback(),
                ..Decoded::default()
            }
        }
    };
    let Some(ts) = ts else {
        return reject(
            Some(meter_id),
            RejectReason::BadTimestamp,
            "neither the meter nor the platform dated the reading".into(),
        );
    };
    if ts.secs() < MIN_TS {
        return reject(
            Some(meter_id),
            RejectReason::BadTimestamp,
            format!("{} is before 2000", ts.secs()),
        );
    }
    if ts.secs() > arrival.at.secs() + arrival.max_ahead_s {
        return reject(
            Some(meter_id),
            RejectReason::FutureTs,
            format!(
                "the reading is dated {} s ahead of the gateway's clock",
                ts.secs() - arrival.at.secs()
            ),
        );
    }
    if !(0..=MAX_TOTAL_L).contains(&total_l) {
        return reject(
            Some(meter_id),
            RejectReason::AbsurdValue,
            format!("register {total_l} L"),
        );
    }
    Decoded {
        meter: Some(meter_id.clone()),
        readings: vec![Reading {
            meter: meter_id,
            ts,
            total: Litres::new(total_l),
            flow_lph: None,
            battery_pct: None,
            status,
            seq: None,
        }],
        rejections: Vec::new(),
    }
}
