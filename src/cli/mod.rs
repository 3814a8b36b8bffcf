//! The subcommands behind `stillwater`, one module each, and what they share.
//! They parse and print; the rules they apply live in the library.

/// Prints a line on stdout, like `println!`, but a reader that has gone away
/// (`stillwater meters show X | head`) ends the command quietly instead of
/// with a panic.
macro_rules! out {
    () => {
        $crate::cli::print_text("\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::print_text(&format!("{}\n", format_args!($($arg)*)))
    };
}

pub mod absences;
pub mod alerts;
pub mod evaluate;
pub mod meters;
pub mod migrate;
pub mod readings;
pub mod replay;
pub mod report;
pub mod rules;

use std::io::Write;

use chrono::TimeZone;

/// Writes `text` to stdout; exits quietly (status 0) when the reader has
/// closed the pipe, and with a message when stdout fails otherwise.
pub fn print_text(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {error}");
        std::process::exit(1);
    }
}

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

/// `stillwater check-config PATH`: every problem of the file, or "ok".
pub fn check_config(path: &std::path::Path) -> std::process::ExitCode {
    let problems: Vec<String> = match stillwater::config::Config::load(path) {
        Ok(config) => stillwater::notify::check(&config.sms),
        Err(error) => error.problems().iter().map(|p| p.to_string()).collect(),
    };
    if problems.is_empty() {
        out!("{}: ok", path.display());
        return std::process::ExitCode::SUCCESS;
    }
    eprintln!(
        "{}: {}",
        path.display(),
        stillwater::domain::count(problems.len(), "problem", "problems")
    );
    for problem in problems {
        eprintln!("  {problem}");
    }
    std::process::ExitCode::FAILURE
}
