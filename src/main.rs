//! The `stillwater` command line: parses arguments, sets up logging, loads the
//! configuration and calls into the library. No logic of its own.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::TimeZone;
use clap::{Parser, Subcommand};
use stillwater::actions::ActionError;
use stillwater::app::{Gateway, Parts};
use stillwater::clock::ScaledClock;
use stillwater::config::{Config, StoreLocation, DEFAULT_TOML};
use stillwater::demo::{self, DemoOptions};
use stillwater::domain::{count, mask_phone, Actor, Channel, Role, StatusFlags, Timestamp};
use stillwater::registry::HouseholdFields;
use stillwater::store::prelude::*;
use stillwater::store::rules::RuleScope;
use stillwater::store::Store;

#[macro_use]
mod cli;

use cli::absences::absences;
use cli::alerts::alerts;
use cli::format_time;
use cli::meters::meters;
use cli::readings::readings;
use cli::rules::rules;

#[derive(Parser)]
#[command(
    name = "stillwater",
    version,
    about = "Smart water-meter welfare alarm gateway"
)]
struct Cli {
    /// Configuration file (TOML); keys it leaves out keep their defaults.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Database file, or a postgres:// URL, overriding [store].
    #[arg(long, global = true, value_name = "PATH|URL")]
    db: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: broker (if embedded), ingest, store, HTTP.
    Serve {
        /// Run on a simulation's clock: its time at --clock-origin (RFC 3339).
        #[arg(long, requires_all = ["clock_origin", "clock_speed"])]
        clock_start: Option<String>,
        /// The real instant (RFC 3339) the simulation's clock reads --clock-start.
        #[arg(long, requires = "clock_start")]
        clock_origin: Option<String>,
        /// Simulated seconds per real second.
        #[arg(long, requires = "clock_start")]
        clock_speed: Option<f64>,
    },
    /// Run a demonstration: embedded MQTT server, sample homes, simulated meters.
    Demo {
        /// Exit when the simulation is done.
        #[arg(long)]
        once: bool,
        /// Simulated hours of readings.
        #[arg(long, default_value_t = 36)]
        hours: u64,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 3600.0)]
        speed: f64,
    },
    /// The monthly report for the civil-affairs bureau: coverage, alerts,
    /// time to acknowledge, what was found, device faults, texts.
    Report {
        /// The month, e.g. 2026-11 (in registry.default_timezone).
        #[arg(long)]
        month: String,
        /// json, csv, or html (a printable page).
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Every change people made (meters, households, check-in phones,
    /// thresholds, absences, imports, tokens, alert states), newest first:
    /// who, when, through which channel, what, old → new.
    Audit {
        /// Only changes since (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// API tokens: add (the secret is shown once), list, revoke.
    #[command(subcommand)]
    Tokens(cli::report::TokensCommand),
    /// Copy the database to FILE while the gateway runs (a consistent snapshot).
    Backup { to: PathBuf },
    /// Copy a SQLite store into PostgreSQL (resumable; counts checked at the
    /// end). The password comes from STILLWATER_DB_PASSWORD.
    Migrate {
        /// The SQLite file, as sqlite:PATH.
        #[arg(long, value_name = "sqlite:PATH")]
        from: String,
        /// The PostgreSQL database, as postgres://user@host:5432/database.
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Print the default configuration, with every key explained.
    PrintConfig,
    /// Print the API's OpenAPI document (as GET /api/v1/openapi.json serves it).
    Openapi,
    /// Check a configuration file and say what is wrong with it.
    CheckConfig { path: PathBuf },
    /// Register, list, inspect, replace and remove meters.
    #[command(subcommand)]
    Meters(cli::meters::MetersCommand),
    /// Look at what ingest received.
    #[command(subcommand)]
    Ingest(IngestCommand),
    /// Bring in a utility's meter history (to replay and tune on before go-live).
    #[command(subcommand)]
    Readings(ReadingsCommand),
    /// Score the alerts in the database against ground truth (JSON lines of incidents).
    Evaluate {
        /// Incidents, one JSON object a line: {"meter", "kind", "start"[, "end", "declared"]}.
        #[arg(long)]
        truth: PathBuf,
        /// Start of the period the data covers (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        from: String,
        /// End of the period (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Score a replay of the stored readings (nothing is stored or sent)
        /// instead of the alerts the gateway opened.
        #[arg(long)]
        replay: bool,
        /// With --replay: a threshold to try, KEY=VALUE (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", requires = "replay")]
        settings: Vec<String>,
        /// With --replay: text contacts for no_usage warnings too.
        #[arg(long, requires = "replay")]
        notify_warning: bool,
        /// With --replay: ask no resident first (ignore check-in phones).
        #[arg(long, requires = "replay")]
        no_check_in: bool,
        /// With --replay: a contact acknowledges each alert this long after
        /// it is first texted (e.g. 15m); by default nobody does, and every
        /// reminder is counted.
        #[arg(long, requires = "replay", value_name = "DURATION")]
        acknowledged_after: Option<String>,
        /// With --replay: residents answer check-ins this long after (e.g.
        /// 5m), unless the ground truth has them on the floor; by default
        /// nobody answers.
        #[arg(long, requires = "replay", value_name = "DURATION")]
        residents_answer_after: Option<String>,
        /// With --residents-answer-after: the share of check-ins answered.
        #[arg(long, requires = "residents_answer_after", default_value_t = 1.0)]
        answer_rate: f64,
        /// Score only these meters' households (repeatable): one home's figures.
        #[arg(long = "meter", value_name = "METER")]
        meters: Vec<String>,
    },
    /// What stored readings would have caused with other thresholds: sends and stores nothing.
    Replay {
        /// Start of the period (RFC 3339 or YYYY-MM-DD in the default time zone).
        #[arg(long)]
        from: String,
        /// End of the period (default: now).
        #[arg(long)]
        to: Option<String>,
        /// A threshold to try, KEY=VALUE (repeatable), e.g. --set warning_window=8h.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// Only these meters' households (repeatable); default every registered one.
        #[arg(long = "meter")]
        meters: Vec<String>,
        /// Only households of this category.
        #[arg(long, conflicts_with = "meters")]
        category: Option<String>,
    },
    /// List, acknowledge, resolve and close alerts.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Declare, list and end absences (hospital stays, visits to family).
    #[command(subcommand)]
    Absences(AbsencesCommand),
    /// Show and set rule thresholds per category or household (no restart needed).
    #[command(subcommand)]
    Rules(RulesCommand),
}

/// Whom a rules command is about.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct RuleTarget {
    /// The household of this meter.
    #[arg(long)]
    meter: Option<String>,
    /// Every household of this category.
    #[arg(long)]
    category: Option<String>,
    /// Every household (over the configuration file's [rules]).
    #[arg(long)]
    global: bool,
}

impl RuleTarget {
    fn scope(&self) -> RuleScope {
        match (&self.meter, &self.category) {
            (Some(meter), _) => RuleScope::Meter(meter.clone()),
            (None, Some(category)) => RuleScope::Category(category.clone()),
            (None, None) => RuleScope::Global,
        }
    }
}

#[derive(Subcommand)]
enum RulesCommand {
    /// The thresholds in force, and where each comes from.
    Show {
        #[command(flatten)]
        target: RuleTarget,
    },
    /// Set thresholds: KEY=VALUE, e.g. warning_window=8h min_litres=5.
    Set {
        #[command(flatten)]
        target: RuleTarget,
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Go back to the configured value for these keys.
    Unset {
        #[command(flatten)]
        target: RuleTarget,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Active alerts (open first); --all for every alert.
    List {
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One alert with its history and texts.
    Show { id: i64 },
    /// Acknowledge: someone is taking care of it (stops escalation and reminders).
    Ack {
        id: i64,
        #[arg(long, default_value_t = user_name())]
        by: String,
    },
    /// Resolve by hand.
    Resolve {
        id: i64,
        #[arg(long, default_value_t = user_name())]
        by: String,
    },
    /// Close with what was found: safe, away, needed_help, hospitalised, deceased, device_fault, other.
    Close {
        id: i64,
        #[arg(long)]
        disposition: String,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long, default_value_t = user_name())]
        by: String,
    },
}

#[derive(Subcommand)]
enum AbsencesCommand {
    /// Declare an absence for some meters' households, a category, or everyone.
    Add {
        /// Meter ids (repeatable).
        #[arg(long = "meter")]
        meters: Vec<String>,
        /// Every household of this category.
        #[arg(long, conflicts_with = "meters")]
        category: Option<String>,
        /// Every registered household.
        #[arg(long, conflicts_with_all = ["meters", "category"])]
        all: bool,
        #[arg(long)]
        reason: String,
        /// Start (RFC 3339 or YYYY-MM-DD in the default time zone); default now.
        #[arg(long)]
        from: Option<String>,
        /// End (RFC 3339 or YYYY-MM-DD); at most 90 days after the start.
        #[arg(long)]
        until: String,
    },
    /// Absences not yet over (--all: every one).
    List {
        #[arg(long)]
        all: bool,
    },
    /// End an absence early.
    End { id: i64 },
}

#[derive(Subcommand)]
enum IngestCommand {
    /// The latest messages that could not be used, with the reason.
    Rejected {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum ReadingsCommand {
    /// Import a CSV export: meter_id, ts, total_l or total_m3 [, flow_lph, battery_pct, status].
    /// All or nothing; every bad row reported; running it twice stores nothing twice.
    Import {
        file: PathBuf,
        /// The zone of timestamps written without an offset (default: [registry] default_timezone).
        #[arg(long)]
        timezone: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::from_toml("", &|name| std::env::var(name).ok())?,
    };
    if let Some(db) = &cli.db {
        config.store.location = StoreLocation::from_argument(db, &|name| std::env::var(name).ok())
            .map_err(|why| anyhow::anyhow!("--db {}: {why}", stillwater::store::shown_url(db)))?;
    }
    Ok(config)
}

fn init_logging(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into a file or journal.
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::registry().with(output).init();
}

/// Who runs the command line, by default.
fn user_name() -> String {
    std::env::var("USER").unwrap_or_else(|_| "cli".into())
}

/// Whoever runs the command line acts as an administrator of this machine.
fn actor() -> Actor {
    actor_named(user_name())
}

fn actor_named(name: String) -> Actor {
    Actor::new(name, Role::Admin, Channel::Cli)
}

/// An action's refusal is the user's to fix: said plainly, exit status 1.
/// Anything else (a database error) is reported as an error.
fn refused(error: ActionError) -> anyhow::Result<ExitCode> {
    match error {
        ActionError::Store(error) => Err(error.into()),
        other => {
            eprintln!("error: {other}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::PrintConfig => {
            cli::print_text(DEFAULT_TOML);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Openapi => {
            cli::print_text(&serde_json::to_string_pretty(&stillwater::http::openapi())?);
            return Ok(ExitCode::SUCCESS);
        }
        Command::CheckConfig { path } => return Ok(cli::check_config(path)),
        _ => {}
    }
    let config = load_config(&cli)?;
    match cli.command {
        Command::Serve {
            clock_start,
            clock_origin,
            clock_speed,
        } => {
            let mut parts = Parts::default();
            if let (Some(start), Some(origin), Some(speed)) =
                (clock_start, clock_origin, clock_speed)
            {
                let time = |flag: &str, text: &str| {
                    chrono::DateTime::parse_from_rfc3339(text)
                        .map(|t| Timestamp::from_secs(t.timestamp()))
                        .map_err(|e| anyhow::anyhow!("{flag} {text:?} is not RFC 3339: {e}"))
                };
                let clock = ScaledClock::new(
                    time("--clock-start", &start)?,
                    time("--clock-origin", &origin)?,
                    speed,
                )
                .ok_or_else(|| anyhow::anyhow!("--clock-speed {speed}: a positive number"))?;
                parts.clock = std::sync::Arc::new(clock);
            }
            init_logging(&config.log_filter);
            runtime()?.block_on(async {
                let gateway = Gateway::start_with(&config, parts).await?;
                let shutdown = gateway.shutdown_token();
                tokio::spawn(async move {
                    wait_for_signal().await;
                    tracing::info!("stopping");
                    shutdown.cancel();
                });
                gateway.run_until_stopped().await
            })?;
        }
        Command::Demo { once, hours, speed } => {
            init_logging("warn");
            let options = DemoOptions {
                database: match &config.store.location {
                    _ if cli.db.is_none() => DemoOptions::default().database,
                    StoreLocation::Sqlite(path) => path.clone(),
                    StoreLocation::Postgres { .. } => {
                        anyhow::bail!("the demo runs on a fresh SQLite file; --db names a file")
                    }
                },
                hours,
                speed,
                once,
            };
            runtime()?.block_on(demo::run(config, options))?;
        }
        Command::Meters(command) => return meters(&config, command),
        Command::Readings(command) => return readings(&config, command),
        Command::Evaluate {
            truth,
            from,
            to,
            json,
            replay,
            settings,
            notify_warning,
            no_check_in,
            acknowledged_after,
            residents_answer_after,
            answer_rate,
            meters,
        } => {
            let replay = replay.then_some(cli::evaluate::ReplayScope {
                settings,
                notify_warning,
                no_check_in,
                acknowledged_after,
                residents_answer: residents_answer_after.map(|after| (after, answer_rate)),
            });
            let period = cli::evaluate::Period {
                from: &from,
                to: to.as_deref(),
                meters: &meters,
            };
            return cli::evaluate::evaluate(&config, &truth, period, json, replay);
        }
        Command::Replay {
            from,
            to,
            settings,
            meters,
            category,
        } => {
            let scope = cli::replay::Scope {
                from,
                to,
                settings,
                meters,
                category,
            };
            return cli::replay::replay(&config, scope);
        }
        Command::Report { month, format } => return cli::report::report(&config, &month, &format),
        Command::Audit { since, limit } => {
            return cli::report::audit(&config, since.as_deref(), limit)
        }
        Command::Ingest(IngestCommand::Rejected { limit }) => {
            let store = Store::existing_from_config(&config.store)?;
            let rejected = store.rejected_messages(limit)?;
            if rejected.is_empty() {
                out!("no rejected messages");
            }
            for message in rejected {
                out!(
                    "{}  {}  {}  meter {}\n    {}\n    payload: {}",
                    format_time(message.received_at, config.registry.timezone),
                    message.reason,
                    message.topic,
                    message.meter_id.as_deref().unwrap_or("?"),
                    message.detail,
                    message.payload.chars().take(200).collect::<String>()
                );
            }
        }
        Command::Alerts(command) => return alerts(&config, command),
        Command::Absences(command) => return absences(&config, command),
        Command::Rules(command) => return rules(&config, command),
        Command::Tokens(command) => return cli::report::tokens(&config, command),
        Command::Migrate { from, to } => {
            return cli::migrate::migrate(&from, &to, config.store.rejected_keep)
        }
        Command::Backup { to } => {
            Store::existing_from_config(&config.store)?.backup_to(&to)?;
            out!(
                "backed up {} to {}",
                config.store.location.describe(),
                to.display()
            );
        }
        Command::PrintConfig | Command::Openapi | Command::CheckConfig { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
