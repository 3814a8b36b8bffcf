//! A household's water use per hour or per local day, from its readings.

use chrono::TimeZone;

/// Water used per bucket (an hour or a day) in [from, to): the rise of the
/// register between consecutive readings, counted in the bucket the later
/// reading closes (a reading at 01:00 counts 00:00–01:00); a register reset
/// is not use. Buckets start at whole hours, or at
/// local midnights in `zone` for days. Buckets with no reading are `None`
/// (nothing known), not 0.
pub fn consumption(
    readings: &[crate::domain::StoredReading],
    from: i64,
    to: i64,
    daily: bool,
    zone: chrono_tz::Tz,
) -> Vec<(i64, Option<i64>)> {
    let start_of = |ts: i64| -> i64 {
        if daily {
            let local = zone.timestamp_opt(ts, 0).earliest().map(|t| t.date_naive());
            local
                .and_then(|date| {
                    zone.from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
                        .earliest()
                })
                .map_or(ts - ts.rem_euclid(86_400), |t| t.timestamp())
        } else {
            ts - ts.rem_euclid(3600)
        }
    };
    let mut buckets: Vec<(i64, Option<i64>)> = Vec::new();
    let mut at = start_of(from);
    while at < to {
        buckets.push((at, None));
        let next = if daily {
            start_of(at + 36 * 3600)
        } else {
            at + 3600
        };
        at = next.max(at + 3600);
    }
    for pair in readings.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        // The water was used before the reading that counts it: its bucket
        // is the one its last second falls in.
        let end = after.ts.secs() - 1;
        if end < from || end >= to || after.register_reset {
            continue;
        }
        let used = (after.total_l - before.total_l).max(0);
        let bucket = start_of(end);
        if let Some(slot) = buckets.iter_mut().find(|(start, _)| *start == bucket) {
            slot.1 = Some(slot.1.unwrap_or(0) + used);
        }
    }
    buckets
}
