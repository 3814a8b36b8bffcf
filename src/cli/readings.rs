//! `stillwater readings import`: a utility's meter history into the store.

use std::process::ExitCode;
use std::sync::Arc;

use stillwater::actions::readings::{self as import, ReadingsImportError};
use stillwater::config::Config;
use stillwater::domain::Timestamp;
use stillwater::metrics::Metrics;
use stillwater::store::writer::Writer;
use stillwater::wire::Arrival;

use crate::*;

pub(crate) fn readings(config: &Config, command: ReadingsCommand) -> anyhow::Result<ExitCode> {
    let ReadingsCommand::Import { file, timezone } = command;
    let zone = match timezone {
        Some(name) => {
            match name.parse::<chrono_tz::Tz>() {
                Ok(zone) => zone,
                Err(_) => {
                    eprintln!("error: --timezone {name:?} must be an IANA time zone such as Asia/Shanghai");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        None => config.registry.timezone,
    };
    let store = Store::from_config(&config.store)?;
    let mut writer = Writer::open(
        &store,
        config.store.rejected_keep,
        Arc::new(Metrics::default()),
    )?;
    let now = Arrival {
        at: Timestamp::from_secs(chrono::Utc::now().timestamp()),
        max_ahead_s: config.mqtt.max_clock_ahead_s,
    };
    let mut progress = |rows: u64| eprintln!("  … {rows} rows");
    match import::import(
        &store,
        &mut writer,
        &actor(),
        &file,
        zone,
        now,
        &mut progress,
    ) {
        Ok(done) => {
            out!(
                "{}: {} read, {} stored, {} already there, {}; counted as evaluated (replay them with `stillwater replay`)",
                file.display(),
                count(done.rows as usize, "row", "rows"),
                count(done.stored as usize, "reading", "readings"),
                done.duplicates,
                count(done.meters, "meter", "meters")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ReadingsImportError::Rows(problems, more)) => {
            eprintln!(
                "{}: nothing imported; {}:",
                file.display(),
                count(problems.len() + more, "problem", "problems")
            );
            for problem in problems {
                eprintln!("  {problem}");
            }
            if more > 0 {
                eprintln!("  … and {more} more");
            }
            Ok(ExitCode::FAILURE)
        }
        Err(ReadingsImportError::Action(error)) => refused(error),
    }
}
