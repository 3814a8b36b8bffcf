//! The subcommands behind `stillwater`, one module each, and what they share.
//! They parse and print; the rules they apply live in the library.

pub mod absences;
pub mod alerts;
pub mod meters;
pub mod rules;

use chrono::TimeZone;

pub fn format_time(ts: i64, zone: chrono_tz::Tz) -> String {
    match zone.timestamp_opt(ts, 0).single() {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S %:z").to_string(),
        None => ts.to_string(),
    }
}

pub fn ago(ts: i64) -> String {
    let seconds = chrono::Utc::now().timestamp() - ts;
    match seconds {
        s if s < 0 => format!("{} min ahead of this clock", -s / 60),
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}
