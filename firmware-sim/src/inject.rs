//! Incidents injected into real meter history: a utility's readings export
//! (or a public data set converted to the same CSV) with an incapacitation
//! every few weeks per home — the register frozen for three days from a
//! random moment, then going on from there — and the ground truth to score
//! what a gateway makes of it. Everything else in the data stays as the real
//! homes lived it, so false alerts are real homes' false alerts.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use chrono::TimeZone;
use chrono_tz::Tz;

use crate::rng::Rng;
use crate::scenario::FOUND_ANYWAY_S;

const DAY: i64 = 86_400;

/// What `inject` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Injected {
    pub meters: usize,
    pub readings: usize,
    pub incidents: usize,
    /// Rows left out: local times a clock change skipped, or out of order.
    pub skipped: usize,
}

/// Reads `input` (`meter_id,ts,total_l` with a header; `ts` RFC 3339 or local
/// time in `zone`; rows of a meter in time order), writes `readings.csv`
/// (timestamps as RFC 3339), `truth.jsonl` and `households.csv` to `dir`.
/// A first incident comes after `warm_up_days`, then one every `every_days`
/// (± a third). With `check_in`, every household has a check-in phone.
pub fn inject(
    input: &Path,
    dir: &Path,
    zone: Tz,
    every_days: f64,
    warm_up_days: i64,
    seed: u64,
    check_in: bool,
) -> anyhow::Result<Injected> {
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    std::fs::create_dir_all(dir)?;
    let mut readings = std::io::BufWriter::new(std::fs::File::create(dir.join("readings.csv"))?);
    let mut truth = std::io::BufWriter::new(std::fs::File::create(dir.join("truth.jsonl"))?);
    writeln!(readings, "meter_id,ts,total_l")?;
    let mut households = String::from(
        "meter_id,resident_name,address,category,timezone,reporting_interval_min,contact1_name,contact1_phone,check_in_phone\n",
    );
    let mut lines = std::io::BufReader::new(file).lines();
    let header = lines.next().context("the file is empty")??;
    let columns: Vec<&str> = header
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(str::trim)
        .collect();
    let column = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .with_context(|| format!("the header has no {name} column"))
    };
    let (meter_at, ts_at, total_at) = (column("meter_id")?, column("ts")?, column("total_l")?);
    let mut done = Injected::default();
    let mut meter = String::new();
    let mut rows: Vec<(i64, f64)> = Vec::new();
    let mut out = Output {
        readings: &mut readings,
        truth: &mut truth,
        households: &mut households,
        zone,
        check_in,
    };
    for (index, line) in lines.enumerate() {
        let line = line?;
        let row = index + 2;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let field = |at: usize| {
            fields
                .get(at)
                .copied()
                .with_context(|| format!("row {row}: too few fields"))
        };
        let parsed =
            parse_time(field(ts_at)?, zone).with_context(|| format!("row {row}, column ts"))?;
        let total: f64 = field(total_at)?
            .parse()
            .with_context(|| format!("row {row}, column total_l: not a number"))?;
        if field(meter_at)? != meter {
            out.meter(&meter, &rows, seed, every_days, warm_up_days, &mut done)?;
            meter = field(meter_at)?.to_string();
            rows.clear();
        }
        match parsed {
            Some(ts) if rows.last().is_none_or(|&(last, _)| ts > last) => rows.push((ts, total)),
            _ => done.skipped += 1,
        }
    }
    out.meter(&meter, &rows, seed, every_days, warm_up_days, &mut done)?;
    readings.flush()?;
    truth.flush()?;
    std::fs::write(dir.join("households.csv"), households)?;
    Ok(done)
}

/// Where `inject` writes.
struct Output<'a, W: Write> {
    readings: &'a mut W,
    truth: &'a mut W,
    households: &'a mut String,
    zone: Tz,
    /// Give every household a check-in phone.
    check_in: bool,
}

impl<W: Write> Output<'_, W> {
    /// Injects into one meter's rows (in time order) and writes them out.
    fn meter(
        &mut self,
        meter: &str,
        rows: &[(i64, f64)],
        seed: u64,
        every_days: f64,
        warm_up_days: i64,
        done: &mut Injected,
    ) -> anyhow::Result<()> {
        let Some(&(first, _)) = rows.first() else {
            return Ok(());
        };
        let key = done.meters as u64;
        done.meters += 1;
        let zone = self.zone;
        self.households.push_str(&format!(
            "{meter},Resident {key},Home {key},general,{},60,Contact,1390{key:07},{}\n",
            zone.name(),
            if self.check_in {
                format!("1370{key:07}")
            } else {
                String::new()
            }
        ));
        let mut state = MeterState::new(first, seed, key, every_days, warm_up_days);
        // An incident is injected only where the data covers its three days
        // (two readings in three of the hours it spans, for hourly data): in a
        // gap in the data there is nothing to find.
        let spacing = median_spacing(rows);
        let covered = |start: i64| {
            let from = rows.partition_point(|r| r.0 < start);
            let to = rows.partition_point(|r| r.0 < start + FOUND_ANYWAY_S);
            (to - from) as f64 >= FOUND_ANYWAY_S as f64 / spacing as f64 * 2.0 / 3.0
        };
        for &(ts, total) in rows {
            let (total, started) = state.take(ts, total, &covered);
            if let Some(start) = started {
                done.incidents += 1;
                writeln!(
                    self.truth,
                    "{}",
                    serde_json::json!({
                        "meter": meter,
                        "kind": "incapacitation",
                        "start": rfc3339(start, zone),
                        "end": rfc3339(start + FOUND_ANYWAY_S, zone),
                    })
                )?;
            }
            writeln!(
                self.readings,
                "{meter},{},{}",
                rfc3339(ts, zone),
                total.round() as i64
            )?;
            done.readings += 1;
        }
        Ok(())
    }
}

/// The usual time between readings.
fn median_spacing(rows: &[(i64, f64)]) -> i64 {
    let mut gaps: Vec<i64> = rows.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2).copied().unwrap_or(3600).max(1)
}

/// One meter's injection state.
struct MeterState {
    rng: Rng,
    every_s: f64,
    next_start: i64,
    /// Frozen at this register until the incident ends.
    frozen: Option<(f64, i64)>,
    /// Litres taken out so far (the use the incidents removed).
    removed: f64,
    last_total: f64,
}

impl MeterState {
    fn new(first: i64, seed: u64, key: u64, every_days: f64, warm_up_days: i64) -> Self {
        let mut rng = Rng::keyed(seed, &[key, 8]);
        let every_s = every_days * DAY as f64;
        let next_start = first + warm_up_days * DAY + (rng.next_f64() * every_s) as i64;
        Self {
            rng,
            every_s,
            next_start,
            frozen: None,
            removed: 0.0,
            last_total: f64::NAN,
        }
    }

    /// The register to write for a reading of `total` at `ts`, and the start
    /// of an incident that began before it (only where `covered` says the
    /// data covers it; otherwise that incident is skipped).
    fn take(&mut self, ts: i64, total: f64, covered: &dyn Fn(i64) -> bool) -> (f64, Option<i64>) {
        let mut started = None;
        if self.frozen.is_none() && ts >= self.next_start && !self.last_total.is_nan() {
            let start = self.next_start;
            let jitter = self.rng.range(-1.0, 1.0) * self.every_s / 3.0;
            self.next_start += FOUND_ANYWAY_S + (self.every_s + jitter) as i64;
            if covered(start) {
                started = Some(start);
                self.frozen = Some((self.last_total - self.removed, start + FOUND_ANYWAY_S));
            }
        }
        let written = match self.frozen {
            Some((register, until)) if ts < until => {
                self.removed = total - register;
                register
            }
            _ => {
                self.frozen = None;
                total - self.removed
            }
        };
        self.last_total = total;
        (written, started)
    }
}

/// The instant `text` names; `None` for a local time a clock change skipped.
fn parse_time(text: &str, zone: Tz) -> anyhow::Result<Option<i64>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.timestamp()));
    }
    let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M"))
        .with_context(|| format!("{text:?} is neither RFC 3339 nor YYYY-MM-DD HH:MM[:SS]"))?;
    Ok(zone
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.timestamp()))
}

fn rfc3339(at: i64, zone: Tz) -> String {
    crate::scenario::rfc3339_in(at, &zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_register_freezes_for_three_days_then_goes_on_without_a_step() {
        let dir = std::env::temp_dir().join(format!("inject-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("in.csv");
        let mut text = String::from("meter_id,ts,total_l\n");
        for hour in 0..24 * 60 {
            let ts = 1_456_790_400 + hour * 3600; // from 2016-03-01
            text.push_str(&format!(
                "H1,{},{}\n",
                rfc3339(ts, chrono_tz::Europe::Madrid),
                1000 + hour * 5
            ));
        }
        std::fs::write(&input, text).unwrap();
        let out = dir.join("out");
        let done = inject(&input, &out, chrono_tz::Europe::Madrid, 14.0, 7, 1, true).unwrap();
        assert_eq!(done.meters, 1);
        assert_eq!(done.readings, 24 * 60);
        assert!((2..=4).contains(&done.incidents), "{done:?}");
        let truth: Vec<serde_json::Value> = std::fs::read_to_string(out.join("truth.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let start = chrono::DateTime::parse_from_rfc3339(truth[0]["start"].as_str().unwrap())
            .unwrap()
            .timestamp();
        let rows: Vec<(i64, i64)> = std::fs::read_to_string(out.join("readings.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (
                    chrono::DateTime::parse_from_rfc3339(f[1])
                        .unwrap()
                        .timestamp(),
                    f[2].parse().unwrap(),
                )
            })
            .collect();
        let during: Vec<i64> = rows
            .iter()
            .filter(|(t, _)| *t >= start && *t < start + FOUND_ANYWAY_S)
            .map(|r| r.1)
            .collect();
        assert!(
            during.windows(2).all(|w| w[0] == w[1]),
            "frozen: {during:?}"
        );
        assert!(
            rows.windows(2)
                .all(|w| w[1].1 - w[0].1 <= 5 && w[1].1 >= w[0].1),
            "no step, never backwards"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
