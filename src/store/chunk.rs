//! The compact encoding of one meter's readings for one UTC day.
//!
//! Readings are kept as one row per (meter, day) whose blob is a delta-encoded
//! run of readings, sorted by time and unique by second. An hourly reading costs
//! about five bytes; a row per reading would cost about thirty in SQLite. Pure
//! code: no SQL here.
//!
//! Layout: a version byte (1), then per reading
//! `varint((ts - previous_ts) << 4 | extras)`, `zigzag varint(total - previous_total)`,
//! then, as `extras` says: bit 0 `varint(flow_lph)`, bit 1 `u8 battery`,
//! bit 2 `varint(status bits)`; bit 3 marks a register reset. The first reading's
//! previous values are the day's start and 0.

use thiserror::Error;

use crate::domain::{StoredReading, Timestamp};

pub const SECONDS_PER_DAY: i64 = 86_400;
const VERSION: u8 = 1;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("corrupt readings chunk: {0}")]
pub struct ChunkError(pub &'static str);

/// The UTC day number of a timestamp.
pub fn day_of(ts: Timestamp) -> i64 {
    ts.secs().div_euclid(SECONDS_PER_DAY)
}

/// Inserts `reading` in time order; returns false (and changes nothing) when a
/// reading with the same second is already there.
pub fn insert(readings: &mut Vec<StoredReading>, reading: StoredReading) -> bool {
    match readings.binary_search_by_key(&reading.ts, |stored| stored.ts) {
        Ok(_) => false,
        Err(position) => {
            readings.insert(position, reading);
            true
        }
    }
}

pub fn encode(day: i64, readings: &[StoredReading]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + readings.len() * 6);
    out.push(VERSION);
    let mut previous_ts = Timestamp::from_secs(day * SECONDS_PER_DAY);
    let mut previous_total = 0i64;
    for reading in readings {
        debug_assert!(
            reading.ts >= previous_ts,
            "readings must be sorted within the day"
        );
        let mut extras = 0u64;
        if reading.flow_lph.is_some() {
            extras |= 1;
        }
        if reading.battery_pct.is_some() {
            extras |= 2;
        }
        if reading.status != 0 {
            extras |= 4;
        }
        if reading.register_reset {
            extras |= 8;
        }
        put_varint(&mut out, ((reading.ts - previous_ts) as u64) << 4 | extras);
        put_varint(&mut out, zigzag(reading.total_l - previous_total));
        put_extras(&mut out, reading);
        previous_ts = reading.ts;
        previous_total = reading.total_l;
    }
    out
}

pub fn decode(day: i64, bytes: &[u8]) -> Result<Vec<StoredReading>, ChunkError> {
    let (&version, mut rest) = bytes.split_first().ok_or(ChunkError("empty"))?;
    if version != VERSION {
        return Err(ChunkError("unknown version"));
    }
    let mut readings = Vec::with_capacity(rest.len() / 4);
    let mut previous_ts = Timestamp::from_secs(day * SECONDS_PER_DAY);
    let mut previous_total = 0i64;
    while !rest.is_empty() {
        let head = take_varint(&mut rest)?;
        let extras = head & 0xf;
        let ts = previous_ts + (head >> 4) as i64;
        let total_l = previous_total + unzigzag(take_varint(&mut rest)?);
        let (flow_lph, battery_pct, status) = take_extras(&mut rest, extras)?;
        readings.push(StoredReading {
            ts,
            total_l,
            flow_lph,
            battery_pct,
            status,
            register_reset: extras & 8 != 0,
        });
        previous_ts = ts;
        previous_total = total_l;
    }
    Ok(readings)
}

/// A reading's optional values, as flag bits 0 (flow), 1 (battery) and 2
/// (status) say: `varint(flow_lph)`, `u8 battery`, `varint(status)`.
pub(super) fn put_extras(out: &mut Vec<u8>, reading: &StoredReading) {
    if let Some(flow) = reading.flow_lph {
        put_varint(out, flow as u64);
    }
    if let Some(battery) = reading.battery_pct {
        out.push(battery);
    }
    if reading.status != 0 {
        put_varint(out, u64::from(reading.status));
    }
}

/// Reads back what [`put_extras`] wrote, as flag bits `flags` say.
pub(super) fn take_extras(
    bytes: &mut &[u8],
    flags: u64,
) -> Result<(Option<i64>, Option<u8>, u16), ChunkError> {
    let flow_lph = if flags & 1 != 0 {
        Some(take_varint(bytes)? as i64)
    } else {
        None
    };
    let battery_pct = if flags & 2 != 0 {
        let (&battery, tail) = bytes.split_first().ok_or(ChunkError("truncated"))?;
        *bytes = tail;
        Some(battery)
    } else {
        None
    };
    let status = if flags & 4 != 0 {
        take_varint(bytes)? as u16
    } else {
        0
    };
    Ok((flow_lph, battery_pct, status))
}

pub(super) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(super) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(super) fn take_varint(bytes: &mut &[u8]) -> Result<u64, ChunkError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(ChunkError("truncated"))?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ChunkError("varint too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(ts: i64, total_l: i64) -> StoredReading {
        StoredReading::plain(ts, total_l)
    }

    #[test]
    fn a_day_of_readings_round_trips() {
        let day = day_of(Timestamp::from_secs(1_795_392_000));
        let start = day * SECONDS_PER_DAY;
        let mut readings: Vec<StoredReading> = (0..24)
            .map(|hour| reading(start + hour * 3600, 123_456 + hour * 7))
            .collect();
        readings[3].flow_lph = Some(0);
        readings[4].flow_lph = Some(95_000);
        readings[5].battery_pct = Some(87);
        readings[6].status = 0b10_0000;
        readings[7].register_reset = true;
        readings[7].total_l = 3;
        let bytes = encode(day, &readings);
        assert_eq!(decode(day, &bytes).unwrap(), readings);
    }

    #[test]
    fn an_hourly_reading_costs_a_few_bytes() {
        let day = 20_000;
        let start = day * SECONDS_PER_DAY;
        let readings: Vec<StoredReading> = (0..24)
            .map(|hour| reading(start + hour * 3600, 5_000_000 + hour * 12))
            .collect();
        let bytes = encode(day, &readings);
        assert!(bytes.len() <= 24 * 5, "{} bytes", bytes.len());
    }

    #[test]
    fn inserting_keeps_time_order_and_refuses_the_same_second() {
        let mut readings = vec![reading(100, 1), reading(300, 3)];
        assert!(insert(&mut readings, reading(200, 2)));
        assert!(!insert(&mut readings, reading(200, 9)));
        let times: Vec<i64> = readings.iter().map(|r| r.ts.secs()).collect();
        assert_eq!(times, [100, 200, 300]);
        assert_eq!(readings[1].total_l, 2);
    }

    #[test]
    fn corrupt_chunks_are_errors_not_panics() {
        assert!(decode(1, &[]).is_err());
        assert!(decode(1, &[9]).is_err());
        assert!(decode(1, &[VERSION, 0x80]).is_err());
        assert!(decode(1, &[VERSION, 0x02, 0x02]).is_err()); // battery flag, no byte
    }

    #[test]
    fn days_before_1970_and_negative_deltas_are_exact() {
        assert_eq!(day_of(Timestamp::from_secs(-1)), -1);
        assert_eq!(zigzag(-1), 1);
        for value in [0, 1, -1, i64::MAX / 2, i64::MIN / 2] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
    }
}
