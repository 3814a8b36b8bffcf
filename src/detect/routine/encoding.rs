//! The routine as bytes, for the meter's state: a version byte, then fixed
//! fields little-endian — [`ENCODED_LEN`] bytes in all.

use super::*;

impl Routine {
    /// The routine as bytes for the meter's state (see [`Routine::decode`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_LEN);
        out.push(FORMAT_VERSION);
        let (last_ts, last_total) = self.last.unwrap_or((i64::MIN, 0));
        for value in [
            last_ts,
            last_total,
            self.last_day,
            self.quiet_since,
            self.quiet_litres,
            self.cusum_ml,
            self.pending_hour,
            self.woke_day,
            self.wake_candidate,
            self.night_from,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.push(u8::from(self.uncertain));
        out.extend_from_slice(&self.days_seen.to_le_bytes());
        let floats = [self.evidence, self.interval_s, self.days]
            .into_iter()
            .chain(
                self.wake
                    .iter()
                    .chain(&self.bed)
                    .flat_map(|w| [w.seen, w.mean, w.var]),
            )
            .chain(self.slots.iter().flatten().flat_map(|s| [s.seen, s.used]))
            .chain(self.stretches);
        for value in floats {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out
    }

    /// Reads what [`Routine::encode`] wrote; `None` for anything else (the
    /// caller starts afresh).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        // Version 1 (before bedtimes were learned) reads with none learned yet.
        let old = bytes.len() == ENCODED_LEN_V1 && bytes.first() == Some(&1);
        if !old && (bytes.len() != ENCODED_LEN || bytes[0] != FORMAT_VERSION) {
            return None;
        }
        let mut at = 1;
        let mut int = || {
            let value = i64::from_le_bytes(bytes[at..at + 8].try_into().ok()?);
            at += 8;
            Some(value)
        };
        let (last_ts, last_total) = (int()?, int()?);
        let (last_day, quiet_since, quiet_litres, cusum_ml, pending_hour, woke_day) =
            (int()?, int()?, int()?, int()?, int()?, int()?);
        let wake_candidate = int()?;
        let night_from = if old { 0 } else { int()? };
        let uncertain = bytes[at] != 0;
        at += 1;
        let days_seen = u32::from_le_bytes(bytes[at..at + 4].try_into().ok()?);
        at += 4;
        let mut floats = bytes[at..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let mut next = || floats.next().filter(|v| v.is_finite());
        let mut routine = Routine {
            last: (last_ts != i64::MIN).then_some((last_ts, last_total)),
            last_day,
            quiet_since,
            uncertain,
            quiet_litres,
            cusum_ml,
            evidence: next()?,
            pending_hour,
            interval_s: next()?,
            days: next()?,
            days_seen,
            slots: [[Slot::default(); 24]; 2],
            stretches: [0.0; BINS],
            wake: [Wake::default(); 2],
            bed: [Wake::default(); 2],
            wake_candidate,
            night_from,
            woke_day,
        };
        let learned = if old { 2 } else { 4 };
        for wake in routine
            .wake
            .iter_mut()
            .chain(&mut routine.bed)
            .take(learned)
        {
            *wake = Wake {
                seen: next()?,
                mean: next()?,
                var: next()?,
            };
        }
        for slot in routine.slots.iter_mut().flatten() {
            slot.seen = next()?;
            slot.used = next()?;
        }
        for bin in &mut routine.stretches {
            *bin = next()?;
        }
        Some(routine)
    }
}

/// Bytes of an encoded routine.
pub const ENCODED_LEN: usize = 1 + 10 * 8 + 1 + 4 + (15 + 2 * 48 + BINS) * 4;
/// Bytes of a version-1 routine (no bedtimes).
const ENCODED_LEN_V1: usize = 1 + 9 * 8 + 1 + 4 + (9 + 2 * 48 + BINS) * 4;
