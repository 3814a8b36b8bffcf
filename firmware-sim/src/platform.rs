//! NB-IoT meters as the carrier platforms deliver them: a meter's CJ/T 188
//! read frame wrapped as CTWing, OneNET or IoTDA would push it, and a poster
//! that sends a meter's hours to a gateway's push endpoint.
//!
//! The frames and envelopes follow the platforms' published formats, so the
//! gateway's `/ingest/…` endpoints can be driven end to end (push → alert →
//! SMS) without a carrier account.

use base64::Engine as _;
use chrono::{Datelike, NaiveDateTime, Timelike};
use md5::{Digest, Md5};

/// Which platform to speak as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    Ctwing,
    Onenet,
    Iotda,
}

fn bcd(value: u32) -> u8 {
    (((value / 10) % 10) << 4 | (value % 10)) as u8
}

/// A cold-water meter's read reply (`C = 81`, DI 901F in the 2018 byte
/// order): `address` (14 digits), the register in litres (sent in 0.01 m³),
/// the meter's local clock, status bytes zero. Checksum computed.
pub fn cjt188_frame(address: &str, total_l: i64, clock: NaiveDateTime) -> Vec<u8> {
    let digits: Vec<u32> = address
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .collect();
    let mut frame = vec![0x68, 0x10];
    // Seven BCD bytes, least significant first.
    for pair in digits.rchunks(2).take(7) {
        let value = if pair.len() == 2 {
            pair[0] * 10 + pair[1]
        } else {
            pair[0]
        };
        frame.push(bcd(value));
    }
    while frame.len() < 9 {
        frame.push(0);
    }
    frame.extend([0x81, 0x16, 0x1F, 0x90, 0x00]);
    let mut hundredths = (total_l / 10) as u64; // 0.01 m³ = 10 L
    let mut volume = [0u8; 4];
    for byte in &mut volume {
        *byte = bcd((hundredths % 100) as u32);
        hundredths /= 100;
    }
    frame.extend(volume);
    frame.push(0x2C);
    frame.extend(volume); // settlement day: the same register
    frame.push(0x2C);
    let year = clock.year() as u32;
    frame.extend([
        bcd(clock.second()),
        bcd(clock.minute()),
        bcd(clock.hour()),
        bcd(clock.day()),
        bcd(clock.month()),
        bcd(year % 100),
        bcd(year / 100),
    ]);
    frame.extend([0x00, 0x00]); // ST: valve open, battery fine
    let sum = frame.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte));
    frame.push(sum);
    frame.push(0x16);
    frame
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A device on a platform.
#[derive(Debug, Clone)]
pub struct Device {
    pub product_id: String,
    pub device_id: String,
    pub imei: String,
}

/// CTWing's dataReport with the frame base64 in `payload.APPdata`.
pub fn ctwing(device: &Device, frame: &[u8], at_ms: i64) -> String {
    serde_json::json!({
        "upPacketSN": -1, "upDataSN": -1, "topic": "v1/up/ad", "timestamp": at_ms,
        "tenantId": "2000033629", "serviceId": "", "protocol": "lwm2m",
        "productId": device.product_id,
        "payload": {"APPdata": base64::engine::general_purpose::STANDARD.encode(frame)},
        "messageType": "dataReport", "deviceType": "", "deviceId": device.device_id,
        "assocAssetId": "", "IMSI": "undefined", "IMEI": device.imei,
    })
    .to_string()
}

/// OneNET's legacy push, the frame hex in `value`, signed with `token`.
pub fn onenet(device: &Device, frame: &[u8], at_ms: i64, token: &str, nonce: &str) -> String {
    let msg = serde_json::json!({
        "at": at_ms, "imei": device.imei, "type": 1, "ds_id": "3200_0_5750",
        "value": hex(frame), "dev_id": device.device_id.parse::<i64>().unwrap_or(0),
    })
    .to_string();
    let mut md5 = Md5::new();
    md5.update(token.as_bytes());
    md5.update(nonce.as_bytes());
    md5.update(msg.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(md5.finalize());
    format!(r#"{{"msg":{msg},"msg_signature":"{signature}","nonce":"{nonce}"}}"#)
}

/// IoTDA's device.property push with the codec-decoded register in litres
/// (`currentReading`).
pub fn iotda(device: &Device, total_l: i64, at_ms: i64) -> String {
    let time = chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    serde_json::json!({
        "resource": "device.property", "event": "report", "event_time": time,
        "notify_data": {
            "header": {"device_id": device.device_id, "node_id": device.imei,
                       "product_id": device.product_id, "app_id": "stillwater"},
            "body": {"services": [{"service_id": "WaterMeter",
                "properties": {"currentReading": total_l, "batteryLevel": 90}, "event_time": time}]}
        }
    })
    .to_string()
}

/// Posts one push; the gateway answers 200 once it has committed it.
pub async fn post(client: &reqwest::Client, url: &str, body: String) -> anyhow::Result<()> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!(
            "{url} answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// What to push: a meter's hourly registers.
#[derive(Debug, Clone)]
pub struct Hours {
    pub platform: Platform,
    pub url: String,
    pub device: Device,
    /// The meter's number (CJ/T 188 address, 14 digits).
    pub address: String,
    /// OneNET's signing token.
    pub token: String,
    /// The zone of the meter's clock.
    pub zone: chrono_tz::Tz,
}

/// Pushes one reading per hour: `litres[i]` used in the hour before
/// `start + i` hours, the register starting at `register`.
pub async fn push_hours(
    hours: &Hours,
    start: i64,
    register: i64,
    litres: &[i64],
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut total = register;
    for (index, used) in litres.iter().enumerate() {
        total += used;
        let at = start + index as i64 * 3600;
        let clock = chrono::DateTime::from_timestamp(at, 0)
            .unwrap_or_default()
            .with_timezone(&hours.zone)
            .naive_local();
        let frame = cjt188_frame(&hours.address, total, clock);
        let at_ms = at * 1000;
        let body = match hours.platform {
            Platform::Ctwing => ctwing(&hours.device, &frame, at_ms),
            Platform::Onenet => onenet(
                &hours.device,
                &frame,
                at_ms,
                &hours.token,
                &format!("n{index:07}"),
            ),
            Platform::Iotda => iotda(&hours.device, total, at_ms),
        };
        post(&client, &hours.url, body).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_matches_the_reference_read_reply() {
        let clock = chrono::NaiveDate::from_ymd_opt(2024, 11, 15)
            .unwrap()
            .and_hms_opt(8, 30, 0)
            .unwrap();
        let frame = cjt188_frame("00000012345678", 1_234_560, clock);
        // The reference frame but for the settlement-day register, which
        // the simulator sends equal to the current one.
        assert_eq!(
            hex(&frame),
            "68107856341200000081161F9000563412002C563412002C003008151124200000".to_string()
                + &format!("{:02X}16", frame[frame.len() - 2])
        );
        let sum = frame[..frame.len() - 2]
            .iter()
            .fold(0u8, |s, b| s.wrapping_add(*b));
        assert_eq!(frame[frame.len() - 2], sum);
    }
}
