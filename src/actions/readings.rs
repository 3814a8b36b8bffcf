//! Importing a utility's meter history, so operators can replay and tune on
//! their own meters before go-live.
//!
//! A CSV with a header: `meter_id`, `ts`, and `total_l` or `total_m3`;
//! optionally `flow_lph`, `battery_pct`, `status` (flag names separated by
//! spaces, `;` or `,`). `ts` is RFC 3339 with an offset, or a local
//! `YYYY-MM-DD HH:MM[:SS]` in the given time zone. Every row goes through the
//! same validation as a reading published over MQTT.
//!
//! All or nothing per file: a first pass reads every row and reports every
//! problem; only a clean file is stored, in a second pass, in batches through
//! the readings writer. Both passes stream: the file is never held in memory.
//! Running it twice stores nothing twice (a reading per meter per second).
//! Imported readings count as already evaluated: a history never texts anyone
//! (`stillwater replay` shows what it would have caused).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use chrono::TimeZone;
use serde_json::{Map, Number, Value};

use super::{require, stamp, ActionError};
use crate::domain::{Actor, Reading};
use crate::pipeline::{Decoded, Message};
use crate::registry::RowError;
use crate::store::prelude::*;
use crate::store::Store;
use crate::wire::Arrival;

/// Readings committed per transaction.
const BATCH: usize = 4096;
/// Problems listed at most; the rest are counted.
const MAX_PROBLEMS: usize = 200;

/// What an import stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub rows: u64,
    pub stored: u64,
    /// Readings already stored (an import run twice, overlapping exports).
    pub duplicates: u64,
    pub meters: usize,
}

/// Why nothing was imported.
#[derive(Debug)]
pub enum ReadingsImportError {
    /// The file's problems (the first 200) and how many more there were.
    Rows(Vec<RowError>, usize),
    Action(ActionError),
}

impl From<ActionError> for ReadingsImportError {
    fn from(error: ActionError) -> Self {
        ReadingsImportError::Action(error)
    }
}

/// Imports the history in `path`; `progress` hears how many rows are done.
pub fn import(
    store: &Store,
    writer: &mut dyn ReadingWriter,
    actor: &Actor,
    path: &Path,
    zone: chrono_tz::Tz,
    now: Arrival,
    progress: &mut dyn FnMut(u64),
) -> Result<Imported, ReadingsImportError> {
    require(actor, "readings.import")?;
    // Pass 1: every problem of every row; nothing is stored.
    let mut problems = Vec::new();
    let mut more = 0;
    let mut rows = 0;
    for_each_reading(path, zone, now, &mut |_row, reading| {
        rows += 1;
        if let Err(problem) = reading {
            if problems.len() < MAX_PROBLEMS {
                problems.push(problem);
            } else {
                more += 1;
            }
        }
        if rows % 100_000 == 0 {
            progress(rows);
        }
    })
    .map_err(|problem| ReadingsImportError::Rows(vec![problem], 0))?;
    if rows == 0 {
        return Err(ReadingsImportError::Rows(
            vec![RowError::file("has a header but no rows")],
            0,
        ));
    }
    if !problems.is_empty() {
        return Err(ReadingsImportError::Rows(problems, more));
    }
    // Pass 2: store, in batches.
    let mut imported = Imported {
        rows,
        ..Imported::default()
    };
    let mut newest: HashMap<String, i64> = HashMap::new();
    let mut batch: Vec<Reading> = Vec::with_capacity(BATCH);
    let mut failure = None;
    let mut done = 0;
    let mut flush = |batch: &mut Vec<Reading>, imported: &mut Imported| {
        if batch.is_empty() || failure.is_some() {
            return;
        }
        let message = Message {
            topic: format!("import {}", path.display()),
            received_at: now.at,
            received: Instant::now(),
            decoded: Decoded {
                meter: None,
                readings: std::mem::take(batch),
                rejections: Vec::new(),
            },
            payload_head: Vec::new(),
            ack: None,
        };
        match writer.write_batch(std::slice::from_ref(&message)) {
            Ok(outcome) => {
                imported.stored += outcome.accepted;
                imported.duplicates += outcome.duplicates;
            }
            Err(error) => failure = Some(error),
        }
    };
    for_each_reading(path, zone, now, &mut |_, reading| {
        if let Ok(reading) = reading {
            let ts = reading.ts.secs();
            newest
                .entry(reading.meter.to_string())
                .and_modify(|n| *n = (*n).max(ts))
                .or_insert(ts);
            batch.push(reading);
            if batch.len() == BATCH {
                flush(&mut batch, &mut imported);
            }
        }
        done += 1;
        if done % 100_000 == 0 {
            progress(done);
        }
    })
    .map_err(|problem| ReadingsImportError::Rows(vec![problem], 0))?;
    flush(&mut batch, &mut imported);
    if let Some(error) = failure {
        return Err(ActionError::from(error).into());
    }
    imported.meters = newest.len();
    store.write(|tx| {
        for (meter, ts) in &newest {
            tx.mark_evaluated(meter, *ts)?;
        }
        tx.audit(
            stamp(actor, now.at.secs()),
            "readings.import",
            &path.display().to_string(),
            &format!(
                "{} rows, {} stored, {} already there, {} meters",
                imported.rows, imported.stored, imported.duplicates, imported.meters
            ),
        )?;
        Ok::<_, ActionError>(())
    })?;
    Ok(imported)
}

/// Reads `path` row by row and gives each row's reading, or its problem.
/// A problem with the file itself (unreadable, no usable header) is the error.
fn for_each_reading(
    path: &Path,
    zone: chrono_tz::Tz,
    now: Arrival,
    each: &mut dyn FnMut(usize, Result<Reading, RowError>),
) -> Result<(), RowError> {
    let file = std::fs::File::open(path)
        .map_err(|error| RowError::file(format!("cannot be read: {error}")))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(file));
    let headers = reader
        .headers()
        .map_err(|error| RowError::file(format!("has no readable header: {error}")))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
    };
    let known = [
        "meter_id",
        "ts",
        "total_l",
        "total_m3",
        "flow_lph",
        "battery_pct",
        "status",
    ];
    if let Some(unknown) = headers
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}'))
        .find(|h| !known.contains(h))
    {
        return Err(RowError::file(format!(
            "has the column {unknown:?}; the columns are {}",
            known.join(",")
        )));
    }
    let (Some(meter_at), Some(ts_at)) = (column("meter_id"), column("ts")) else {
        return Err(RowError::file("needs the columns meter_id and ts"));
    };
    let (litres_at, m3_at) = (column("total_l"), column("total_m3"));
    if litres_at.is_none() && m3_at.is_none() {
        return Err(RowError::file("needs the column total_l or total_m3"));
    }
    let optional = [
        ("flow_lph", column("flow_lph")),
        ("battery_pct", column("battery_pct")),
    ];
    let status_at = column("status");
    let width = headers.len();
    for (index, record) in reader.records().enumerate() {
        let row = index + 2;
        let problem = |column: &str, reason: String| RowError {
            row,
            column: column.to_string(),
            reason,
        };
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                each(
                    row,
                    Err(problem("(row)", format!("cannot be read: {error}"))),
                );
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != width {
            each(
                row,
                Err(problem(
                    "(row)",
                    format!("has {} fields; the header has {width}", record.len()),
                )),
            );
            continue;
        }
        let field = |at: usize| record.get(at).unwrap_or("");
        let mut fields = Map::new();
        let ts = match to_rfc3339(field(ts_at), zone) {
            Ok(ts) => ts,
            Err(reason) => {
                each(row, Err(problem("ts", reason)));
                continue;
            }
        };
        fields.insert("ts".into(), Value::String(ts));
        let mut bad_number = None;
        for (name, at) in [("total_l", litres_at), ("total_m3", m3_at)]
            .into_iter()
            .chain(optional)
        {
            let Some(text) = at.map(field).filter(|t| !t.is_empty()) else {
                continue;
            };
            match text.parse::<Number>() {
                Ok(number) => {
                    fields.insert(name.into(), Value::Number(number));
                }
                Err(_) => bad_number = Some(problem(name, format!("{text:?} is not a number"))),
            }
        }
        if let Some(bad) = bad_number {
            each(row, Err(bad));
            continue;
        }
        if let Some(text) = status_at.map(field).filter(|t| !t.is_empty()) {
            fields.insert(
                "status".into(),
                Value::String(text.replace([';', ','], " ")),
            );
        }
        let reading = crate::wire::reading_from_fields(field(meter_at), &fields, now)
            .map_err(|rejection| problem("(reading)", rejection.detail));
        each(row, reading);
    }
    Ok(())
}

/// `ts` as RFC 3339: as it is when it has an offset, or read as local time
/// in `zone` (`2026-11-23 08:00`, `2026-11-23 08:00:00`, `2026-11-23T08:00:00`).
fn to_rfc3339(text: &str, zone: chrono_tz::Tz) -> Result<String, String> {
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return Ok(text.to_string());
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(local) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return match zone.from_local_datetime(&local).earliest() {
                Some(time) => Ok(time.to_rfc3339()),
                None => Err(format!("{text:?} does not exist in {zone}")),
            };
        }
    }
    Err(format!(
        "{text:?} is neither RFC 3339 with an offset nor YYYY-MM-DD HH:MM[:SS]"
    ))
}
