//! CJ/T 188 frames, as NB-IoT water meters send them through the carrier
//! platforms: `[FE…] 68 T A0..A6 C L DATA CS 16`.
//!
//! Accepted: any number of `FE` wake-up bytes; the checksum (the sum of every
//! byte from `68` to the end of the data, mod 256) verified; DI `901F` (read
//! data) in either byte order — the 2004 layout sends `90 1F`, the 2018 one
//! `1F 90`, and real meters do both — in a read reply (`C = 81`) or pushed
//! unsolicited (`C = 04`/`84`, DI `A205`, the 901F layout with battery,
//! signal and temperature after the clock). Volumes are BCD, least
//! significant byte first, in hundredths of the unit (m³ `2C` or litres
//! `29`); the clock is BCD `ss mm hh DD MM YYlo YYhi`; the first status
//! byte gives the valve and the battery, in one of two layouts vendors use
//! ([`StatusBits`]). Pure, and every
//! malformed frame is an error that says what is wrong.

use chrono::NaiveDate;

use crate::domain::{StatusFlag, StatusFlags};

/// A frame's parts, checksum verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `10` cold water, `11` hot, `12` drinking, `13` reclaimed, …
    pub meter_type: u8,
    /// The meter's number: the 7 address bytes as 14 digits, most significant first.
    pub address: String,
    pub control: u8,
    pub data: Vec<u8>,
}

/// What a read frame says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterRead {
    pub address: String,
    /// The cumulative volume, whole litres.
    pub total_l: i64,
    /// The meter's clock, when it sent one (local time, no zone).
    pub time: Option<chrono::NaiveDateTime>,
    /// The two status bytes.
    pub status: [u8; 2],
}

/// How a vendor lays out the first status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusBits {
    /// D0–D1 valve, D2 battery low (the layout most descriptions give).
    Low,
    /// Valve in `0xC0`, battery low `0x20` (the opposite order, as some
    /// implementations read it).
    High,
}

impl StatusBits {
    /// Whether the status says the battery is low.
    pub fn battery_low(self, status: [u8; 2]) -> bool {
        match self {
            StatusBits::Low => status[0] & 0x04 != 0,
            StatusBits::High => status[0] & 0x20 != 0,
        }
    }

    /// The valve's state: open, closed, or abnormal.
    pub fn valve(self, status: [u8; 2]) -> Valve {
        let bits = match self {
            StatusBits::Low => status[0] & 0x03,
            StatusBits::High => (status[0] & 0xC0) >> 6,
        };
        match bits {
            0b00 => Valve::Open,
            0b01 => Valve::Closed,
            _ => Valve::Abnormal,
        }
    }

    /// The status as the gateway's flags: low battery, valve closed or faulty.
    pub fn flags(self, status: [u8; 2]) -> StatusFlags {
        let mut flags = StatusFlags::default();
        if self.battery_low(status) {
            flags.insert(StatusFlag::LowBattery);
        }
        match self.valve(status) {
            Valve::Open => {}
            Valve::Closed => flags.insert(StatusFlag::ValveClosed),
            Valve::Abnormal => flags.insert(StatusFlag::ValveFault),
        }
        flags
    }
}

/// A meter valve's state as its status byte says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valve {
    Open,
    Closed,
    Abnormal,
}

const START: u8 = 0x68;
const END: u8 = 0x16;
const PREAMBLE: u8 = 0xFE;

fn bcd(byte: u8) -> Result<u32, String> {
    let (high, low) = (byte >> 4, byte & 0x0F);
    if high > 9 || low > 9 {
        return Err(format!("{byte:02X} is not a BCD digit pair"));
    }
    Ok(u32::from(high) * 10 + u32::from(low))
}

/// Parses one frame: preamble, start, address, control, length, data,
/// checksum, end.
pub fn parse_frame(bytes: &[u8]) -> Result<Frame, String> {
    let start = bytes
        .iter()
        .position(|b| *b != PREAMBLE)
        .ok_or("the frame is empty")?;
    let frame = &bytes[start..];
    if frame[0] != START {
        return Err(format!("a frame starts with 68, not {:02X}", frame[0]));
    }
    // 68 T A0..A6 C L = 11 bytes, then L data bytes, CS, 16.
    if frame.len() < 13 {
        return Err(format!("{} bytes are too few for a frame", frame.len()));
    }
    let length = usize::from(frame[10]);
    let expected = 11 + length + 2;
    if frame.len() < expected {
        return Err(format!(
            "the frame says {length} data bytes but only {} follow",
            frame.len().saturating_sub(13)
        ));
    }
    let sum = frame[..11 + length]
        .iter()
        .fold(0u8, |sum, byte| sum.wrapping_add(*byte));
    let checksum = frame[11 + length];
    if sum != checksum {
        return Err(format!(
            "checksum {checksum:02X} does not match the frame's sum {sum:02X}"
        ));
    }
    if frame[11 + length + 1] != END {
        return Err(format!(
            "a frame ends with 16, not {:02X}",
            frame[11 + length + 1]
        ));
    }
    let mut address = String::with_capacity(14);
    for byte in frame[2..9].iter().rev() {
        address.push_str(&format!(
            "{:02}",
            bcd(*byte).map_err(|e| format!("address: {e}"))?
        ));
    }
    Ok(Frame {
        meter_type: frame[1],
        address,
        control: frame[9],
        data: frame[11..11 + length].to_vec(),
    })
}

/// A volume: 4 BCD bytes, least significant first, in hundredths of the unit.
fn volume_l(bytes: &[u8], unit: u8) -> Result<i64, String> {
    let mut hundredths: i64 = 0;
    for byte in bytes.iter().rev() {
        hundredths = hundredths * 100 + i64::from(bcd(*byte).map_err(|e| format!("volume: {e}"))?);
    }
    match unit {
        0x2C => Ok(hundredths * 10),  // 0.01 m³ = 10 L
        0x29 => Ok(hundredths / 100), // 0.01 L: whole litres
        other => Err(format!(
            "unit code {other:02X} is not a volume (2C m³ or 29 L)"
        )),
    }
}

/// `ss mm hh DD MM YYlo YYhi`; all zeros means the meter sent no clock.
fn clock(bytes: &[u8]) -> Result<Option<chrono::NaiveDateTime>, String> {
    if bytes.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    let digits: Vec<u32> = bytes
        .iter()
        .map(|b| bcd(*b))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("clock: {e}"))?;
    let year = digits[6] * 100 + digits[5];
    NaiveDate::from_ymd_opt(year as i32, digits[4], digits[3])
        .and_then(|date| date.and_hms_opt(digits[2], digits[1], digits[0]))
        .map(Some)
        .ok_or_else(|| {
            format!(
                "clock {:04}-{:02}-{:02} {:02}:{:02}:{:02} is not a time",
                year, digits[4], digits[3], digits[2], digits[1], digits[0]
            )
        })
}

/// The read in a frame: a read reply (`81`, DI 901F) or a pushed report
/// (`04`/`84`, DI A205), DI in either byte order.
pub fn read(frame: &Frame) -> Result<MeterRead, String> {
    let data = &frame.data;
    if data.len() < 2 {
        return Err("no data identifier".into());
    }
    let di = [data[0], data[1]];
    let known = match frame.control {
        0x81 => di == [0x90, 0x1F] || di == [0x1F, 0x90],
        0x04 | 0x84 => di == [0xA2, 0x05] || di == [0x05, 0xA2],
        _ => false,
    };
    if !known {
        return Err(format!(
            "control {:02X} with data identifier {:02X}{:02X} is not a meter reading (81/901F or 04/A205)",
            frame.control, di[0], di[1]
        ));
    }
    // DI(2) SER(1) current(4+1) settlement(4+1) clock(7) ST(2) = 22 bytes.
    if data.len() < 22 {
        return Err(format!(
            "{} data bytes are too few for a reading (22)",
            data.len()
        ));
    }
    let total_l = volume_l(&data[3..7], data[7])?;
    let time = clock(&data[13..20])?;
    // The pushed report puts battery, signal and temperature before ST.
    let st = if frame.control == 0x81 {
        [data[20], data[21]]
    } else {
        let at = data.len() - 2;
        [data[at], data[at + 1]]
    };
    Ok(MeterRead {
        address: frame.address.clone(),
        total_l,
        time,
        status: st,
    })
}

/// Hex text (`"68 10 …"` or `"6810…"`) as bytes.
pub fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err("hex text has an odd number of digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).map_err(|_| "not hex text".to_string())?;
            u8::from_str_radix(pair, 16).map_err(|_| format!("{pair:?} is not hex"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference read reply: meter 00000012345678, 1234.56 m³ at
    /// 2024-11-15 08:30:00, DI in 2018 order, checksum 7B.
    const REPLY: &str = "68 10 78 56 34 12 00 00 00 81 16 1F 90 01 56 34 12 00 2C 00 00 12 00 2C 00 30 08 15 11 24 20 00 00 7B 16";

    #[test]
    fn the_reference_frame_decodes() {
        let frame = parse_frame(&from_hex(REPLY).unwrap()).unwrap();
        assert_eq!(frame.meter_type, 0x10);
        assert_eq!(frame.address, "00000012345678");
        assert_eq!(frame.control, 0x81);
        let reading = read(&frame).unwrap();
        assert_eq!(reading.total_l, 1_234_560);
        assert_eq!(reading.time.unwrap().to_string(), "2024-11-15 08:30:00",);
        assert_eq!(reading.status, [0, 0]);
        assert!(!StatusBits::Low.battery_low(reading.status));
    }

    #[test]
    fn preambles_and_the_2004_byte_order_are_accepted() {
        // FoxEdge's frame (1F 90, checksum 13) behind four FE bytes.
        let fox = "FE FE FE FE 68 10 44 33 22 11 00 33 78 81 16 1F 90 00 00 77 66 55 2C 00 77 66 55 2C 31 01 22 11 05 15 20 21 84 13 16";
        let reading = read(&parse_frame(&from_hex(fox).unwrap()).unwrap()).unwrap();
        assert_eq!(reading.address, "78330011223344");
        assert_eq!(reading.total_l, 556_677_000);
        assert_eq!(reading.time.unwrap().to_string(), "2015-05-11 22:01:31");
        assert_eq!(reading.status, [0x21, 0x84]);
        // A real frame in 90 1F order with no clock.
        let old = "68 10 01 00 00 05 08 00 00 81 16 90 1F 00 00 23 01 00 2C 00 00 00 00 2C 00 00 00 00 00 00 00 00 00 48 16";
        let reading = read(&parse_frame(&from_hex(old).unwrap()).unwrap()).unwrap();
        assert_eq!(reading.address, "00000805000001");
        assert_eq!(reading.total_l, 123_000);
        assert_eq!(reading.time, None);
    }

    #[test]
    fn a_bad_frame_says_what_is_wrong() {
        let mut bytes = from_hex(REPLY).unwrap();
        bytes[20] ^= 0x01; // a volume digit changes: the checksum no longer matches
        let error = parse_frame(&bytes).unwrap_err();
        assert!(error.contains("checksum 7B"), "{error}");
        let error = parse_frame(&from_hex(REPLY).unwrap()[..20]).unwrap_err();
        assert!(error.contains("22 data bytes"), "{error}");
        let error = parse_frame(&[0xFE, 0xFE]).unwrap_err();
        assert!(error.contains("empty"), "{error}");
        // The published blog copy's wrong checksum (08 for 13).
        let blog = "68 10 44 33 22 11 00 33 78 81 16 1F 90 00 00 77 66 55 2C 00 77 66 55 2C 31 01 22 11 05 15 20 21 84 08 16";
        assert!(parse_frame(&from_hex(blog).unwrap())
            .unwrap_err()
            .contains("checksum 08"));
        // Wasion's vendor identifier is a frame, but not a reading we know.
        let wasion = "681071565022180400810CECCE09001D06B7E6282733167516";
        let frame = parse_frame(&from_hex(wasion).unwrap()).unwrap();
        assert_eq!(frame.address, "00041822505671");
        assert!(read(&frame).unwrap_err().contains("ECCE"));
    }

    #[test]
    fn status_layouts() {
        assert!(StatusBits::Low.battery_low([0x04, 0]));
        assert!(!StatusBits::Low.battery_low([0x20, 0]));
        assert!(StatusBits::High.battery_low([0x20, 0]));
        assert_eq!(StatusBits::Low.valve([0x01, 0]), Valve::Closed);
        assert_eq!(StatusBits::Low.valve([0x03, 0]), Valve::Abnormal);
        assert_eq!(StatusBits::High.valve([0x40, 0]), Valve::Closed);
        assert_eq!(StatusBits::High.valve([0x01, 0]), Valve::Open);
        let flags = StatusBits::Low.flags([0x05, 0]);
        assert!(flags.contains(StatusFlag::LowBattery) && flags.contains(StatusFlag::ValveClosed));
        assert!(StatusBits::Low.flags([0, 0]).is_empty());
    }
}
