//! The reading log: what one commit of the gateway's writer accepted, as one
//! row, before the readings are folded into their (meter, day) chunks.
//!
//! Appending one row per commit is what lets a PUBACK wait for durability
//! without three B-tree writes per reading: the fold, a few hundred
//! milliseconds later, merges many readings into each chunk and each meter's
//! state at once. Pure code: no SQL here.
//!
//! Layout: a version byte (1), then per entry `varint(meter_key)`,
//! `zigzag varint(ts)`, `zigzag varint(received_at - ts)`,
//! `zigzag varint(total_l)`, a flags byte (bit 0 flow, bit 1 battery, bit 2
//! status, bit 3 register reset, bit 4 seq), then the values the flags name:
//! `varint(flow_lph)`, `u8 battery`, `varint(status)`, `varint(seq)`.

use super::chunk::{
    put_extras, put_varint, take_extras, take_varint, unzigzag, zigzag, ChunkError,
};
use crate::domain::{StoredReading, Timestamp};

const VERSION: u8 = 1;

/// One accepted reading as the log keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub meter_key: i64,
    pub reading: StoredReading,
    /// The meter's own message counter, when it sent one.
    pub seq: Option<u64>,
    /// Wall clock at receipt.
    pub received_at: Timestamp,
}

/// Appends entries to one row's bytes.
#[derive(Debug)]
pub struct Encoder {
    bytes: Vec<u8>,
    entries: usize,
}

impl Default for Encoder {
    fn default() -> Self {
        Self {
            bytes: vec![VERSION],
            entries: 0,
        }
    }
}

impl Encoder {
    pub fn push(&mut self, entry: &Entry) {
        let out = &mut self.bytes;
        let reading = &entry.reading;
        put_varint(out, entry.meter_key as u64);
        put_varint(out, zigzag(reading.ts.secs()));
        put_varint(out, zigzag(entry.received_at - reading.ts));
        put_varint(out, zigzag(reading.total_l));
        let flags = u8::from(reading.flow_lph.is_some())
            | u8::from(reading.battery_pct.is_some()) << 1
            | u8::from(reading.status != 0) << 2
            | u8::from(reading.register_reset) << 3
            | u8::from(entry.seq.is_some()) << 4;
        out.push(flags);
        put_extras(out, reading);
        if let Some(seq) = entry.seq {
            put_varint(out, seq);
        }
        self.entries += 1;
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Every entry of one row, in the order they were accepted.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, ChunkError> {
    let (&version, mut rest) = bytes.split_first().ok_or(ChunkError("empty log row"))?;
    if version != VERSION {
        return Err(ChunkError("unknown log row version"));
    }
    let mut entries = Vec::new();
    while !rest.is_empty() {
        let meter_key = take_varint(&mut rest)? as i64;
        let ts = Timestamp::from_secs(unzigzag(take_varint(&mut rest)?));
        let received_at = ts + unzigzag(take_varint(&mut rest)?);
        let total_l = unzigzag(take_varint(&mut rest)?);
        let (&flags, tail) = rest.split_first().ok_or(ChunkError("truncated"))?;
        rest = tail;
        let (flow_lph, battery_pct, status) = take_extras(&mut rest, u64::from(flags))?;
        let seq = if flags & 16 != 0 {
            Some(take_varint(&mut rest)?)
        } else {
            None
        };
        entries.push(Entry {
            meter_key,
            reading: StoredReading {
                ts,
                total_l,
                flow_lph,
                battery_pct,
                status,
                register_reset: flags & 8 != 0,
            },
            seq,
            received_at,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_in_order() {
        let mut plain = StoredReading::plain(1_795_392_000, 123_456);
        let full = StoredReading {
            ts: Timestamp::from_secs(-86_400),
            total_l: -5,
            flow_lph: Some(95_000),
            battery_pct: Some(3),
            status: 0b10_0000,
            register_reset: true,
        };
        plain.battery_pct = Some(90);
        let entries = [
            Entry {
                meter_key: 7,
                reading: plain,
                seq: None,
                received_at: Timestamp::from_secs(1_795_392_005),
            },
            Entry {
                meter_key: 1 << 40,
                reading: full,
                seq: Some(u64::MAX),
                received_at: Timestamp::from_secs(1_795_392_000),
            },
        ];
        let mut encoder = Encoder::default();
        for entry in &entries {
            encoder.push(entry);
        }
        assert_eq!(encoder.entries(), 2);
        assert_eq!(decode(encoder.bytes()).unwrap(), entries);
    }

    #[test]
    fn corrupt_rows_are_errors_not_panics() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[2]).is_err());
        assert!(decode(&[VERSION, 1, 2, 0, 4]).is_err()); // no flags byte
        assert!(decode(&[VERSION, 1, 2, 0, 4, 2]).is_err()); // battery flag, no byte
        assert_eq!(decode(&[VERSION]).unwrap(), []);
    }
}
