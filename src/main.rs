//! The `stillwater` command line: parses arguments, sets up logging, loads the
//! configuration and calls into the library. No logic of its own.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::TimeZone;
use clap::{Parser, Subcommand};
use stillwater::app::Gateway;
use stillwater::config::{Config, DEFAULT_TOML};
use stillwater::demo::{self, DemoOptions};
use stillwater::domain::{count, mask_phone, StatusFlags};
use stillwater::registry::{self, HouseholdFields};
use stillwater::store::alerts::RuleScope;
use stillwater::store::{Store, StoreError};

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
    /// Database file, overriding [store] path.
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: broker (if embedded), ingest, store, HTTP.
    Serve,
    /// Run a demonstration: embedded broker, sample homes, simulated meters.
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
    /// Print the default configuration, with every key explained.
    PrintConfig,
    /// Check a configuration file and say what is wrong with it.
    CheckConfig { path: PathBuf },
    /// Register, list, inspect, replace and remove meters.
    #[command(subcommand)]
    Meters(MetersCommand),
    /// Look at what ingest received.
    #[command(subcommand)]
    Ingest(IngestCommand),
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
}

impl RuleTarget {
    fn scope(&self) -> RuleScope {
        match (&self.meter, &self.category) {
            (Some(meter), _) => RuleScope::Meter(meter.clone()),
            (None, Some(category)) => RuleScope::Category(category.clone()),
            (None, None) => unreachable!("clap requires --meter or --category"),
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
        #[arg(long, default_value_t = actor())]
        by: String,
    },
    /// Resolve by hand.
    Resolve {
        id: i64,
        #[arg(long, default_value_t = actor())]
        by: String,
    },
    /// Close with what was found: safe, away, needed_help, hospitalised, deceased, device_fault, other.
    Close {
        id: i64,
        #[arg(long)]
        disposition: String,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long, default_value_t = actor())]
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

/// The closing dispositions of an alert.
const DISPOSITIONS: [&str; 7] = [
    "safe",
    "away",
    "needed_help",
    "hospitalised",
    "deceased",
    "device_fault",
    "other",
];
/// The longest absence.
const MAX_ABSENCE_DAYS: i64 = 90;

#[derive(Subcommand)]
enum MetersCommand {
    /// Register one household and its meter.
    Add {
        #[arg(long)]
        meter: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        address: String,
        #[arg(long, default_value = "")]
        category: String,
        #[arg(long, default_value = "")]
        timezone: String,
        /// Minutes between the meter's readings.
        #[arg(long, default_value = "")]
        interval: String,
        /// A contact as "NAME,PHONE"; repeat in escalation order.
        #[arg(long = "contact", value_name = "NAME,PHONE")]
        contacts: Vec<String>,
        #[arg(long, default_value = "")]
        notes: String,
    },
    /// Register households from an installation CSV, all or none.
    Import { file: PathBuf },
    /// List registered meters.
    List,
    /// Show a meter: household, contacts, and whether it has reported (the installation check).
    Show { meter: String },
    /// Move a household from one meter to its replacement.
    Replace { old: String, new: String },
    /// End a meter's registration (its readings are kept).
    Remove { meter: String },
    /// Meters that publish but are not registered.
    Unregistered,
    /// Ask the resident first ("reply if you are fine") before texting the contacts.
    CheckIn {
        meter: String,
        /// The resident's own phone; --off to stop asking.
        #[arg(long, required_unless_present = "off")]
        phone: Option<String>,
        #[arg(long)]
        off: bool,
    },
}

#[derive(Subcommand)]
enum IngestCommand {
    /// The latest messages that could not be used, with the reason.
    Rejected {
        #[arg(long, default_value_t = 20)]
        limit: usize,
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
        config.store.path = db.clone();
    }
    Ok(config)
}

fn init_logging(filter: &str) {
    let filter = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| format!("{filter},rumqttd=warn,rumqttd::router::routing=off"));
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
}

fn actor() -> String {
    std::env::var("USER").unwrap_or_else(|_| "cli".into())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::PrintConfig => {
            print!("{DEFAULT_TOML}");
            return Ok(ExitCode::SUCCESS);
        }
        Command::CheckConfig { path } => {
            return match Config::load(path) {
                Ok(_) => {
                    println!("{}: ok", path.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    let problems = error.problems();
                    eprintln!(
                        "{}: {}",
                        path.display(),
                        count(problems.len(), "problem", "problems")
                    );
                    for problem in problems {
                        eprintln!("  {problem}");
                    }
                    Ok(ExitCode::FAILURE)
                }
            };
        }
        _ => {}
    }
    let config = load_config(&cli)?;
    match cli.command {
        Command::Serve => {
            init_logging(&config.log_filter);
            runtime()?.block_on(async {
                let gateway = Gateway::start(&config).await?;
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
                database: cli
                    .db
                    .clone()
                    .unwrap_or_else(|| DemoOptions::default().database),
                hours,
                speed,
                once,
            };
            runtime()?.block_on(demo::run(config, options))?;
        }
        Command::Meters(command) => return meters(&config, command),
        Command::Ingest(IngestCommand::Rejected { limit }) => {
            let store = Store::open(&config.store.path)?;
            let rejected = store.rejected_messages(limit)?;
            if rejected.is_empty() {
                println!("no rejected messages");
            }
            for message in rejected {
                println!(
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
        Command::PrintConfig | Command::CheckConfig { .. } => unreachable!("handled above"),
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

fn format_time(ts: i64, zone: chrono_tz::Tz) -> String {
    match zone.timestamp_opt(ts, 0).single() {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S %:z").to_string(),
        None => ts.to_string(),
    }
}

fn ago(ts: i64) -> String {
    let seconds = chrono::Utc::now().timestamp() - ts;
    match seconds {
        s if s < 0 => format!("{} min ahead of this clock", -s / 60),
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

fn meters(config: &Config, command: MetersCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open(&config.store.path)?;
    let now = chrono::Utc::now().timestamp();
    let zone = config.registry.timezone;
    match command {
        MetersCommand::Add {
            meter,
            name,
            address,
            category,
            timezone,
            interval,
            contacts,
            notes,
        } => {
            let mut pairs = Vec::new();
            for contact in &contacts {
                let (name, phone) = contact
                    .split_once(',')
                    .with_context(|| format!("--contact {contact:?}: write it as NAME,PHONE"))?;
                pairs.push((name.to_string(), phone.to_string()));
            }
            let fields = HouseholdFields {
                meter_id: meter,
                resident_name: name,
                address,
                category,
                timezone,
                reporting_interval_min: interval,
                contacts: pairs,
                notes,
            };
            let household = match fields.validate(0, &config.registry) {
                Ok(household) => household,
                Err(errors) => {
                    for error in errors {
                        eprintln!(
                            "error: {}",
                            error.to_string().replace("contact1_name", "--contact")
                        );
                    }
                    return Ok(ExitCode::FAILURE);
                }
            };
            store.register_households(std::slice::from_ref(&household), &actor(), now)?;
            println!(
                "registered meter {} ({} contacts)",
                household.meter,
                household.contacts.len()
            );
        }
        MetersCommand::Import { file } => {
            let text =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let text = String::from_utf8(text).map_err(|_| {
                anyhow::anyhow!(
                    "{} is not UTF-8: save the spreadsheet as \"CSV UTF-8\"",
                    file.display()
                )
            })?;
            let households = match registry::parse_csv(&text, &config.registry) {
                Ok(households) => households,
                Err(errors) => {
                    eprintln!(
                        "{}: nothing imported; {} problem(s):",
                        file.display(),
                        errors.len()
                    );
                    for error in errors {
                        eprintln!("  {error}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            };
            match store.register_households(&households, &actor(), now) {
                Ok(()) => println!(
                    "imported {} meters from {}",
                    households.len(),
                    file.display()
                ),
                Err(StoreError::AlreadyRegistered {
                    row,
                    meter,
                    resident,
                }) => {
                    eprintln!(
                        "{}: nothing imported; row {row}, column meter_id: {meter} is already registered (household of {})",
                        file.display(),
                        stillwater::domain::mask_name(&resident)
                    );
                    return Ok(ExitCode::FAILURE);
                }
                Err(error) => return Err(error.into()),
            }
        }
        MetersCommand::List => {
            let meters = store.list_meters()?;
            if meters.is_empty() {
                println!("no meters registered");
            }
            for meter in meters {
                let last = match meter.last_reading_ts {
                    Some(ts) => format!("last reading {}", ago(ts)),
                    None => "no reading yet".into(),
                };
                println!(
                    "{:<20} {:<8} {:<16} {}  [{}]  {}",
                    meter.meter_id,
                    meter.status,
                    meter.category,
                    meter.resident_name,
                    last,
                    meter.address
                );
            }
        }
        MetersCommand::Show { meter } => {
            let Some(details) = store.meter_details(&meter, 5)? else {
                eprintln!("meter {meter} is not registered and has never published");
                return Ok(ExitCode::FAILURE);
            };
            let zone = details
                .registration
                .as_ref()
                .and_then(|r| r.timezone.parse().ok())
                .unwrap_or(zone);
            println!("meter {}", details.meter_id);
            match &details.registration {
                Some(registration) => {
                    println!(
                        "  registration: {} since {}",
                        registration.status,
                        format_time(registration.registered_at, zone)
                    );
                    if let Some(new) = &registration.replaced_by {
                        println!("  replaced by:  {new}");
                    }
                    println!(
                        "  resident:     {} ({})",
                        registration.resident_name, registration.category
                    );
                    println!("  address:      {}", registration.address);
                    println!(
                        "  time zone:    {}; reports every {} min",
                        registration.timezone, registration.reporting_interval_min
                    );
                    for (step, name, phone) in &registration.contacts {
                        println!("  contact:      step {step}: {name} {}", mask_phone(phone));
                    }
                    if !registration.notes.is_empty() {
                        println!("  notes:        {}", registration.notes);
                    }
                }
                None => println!("  NOT REGISTERED: its readings are stored but never alarm"),
            }
            match &details.state {
                None => {
                    println!("  installation check: NO MESSAGE YET.");
                    println!(
                        "    The meter should publish to topic {}/{}/reading on the gateway's broker.",
                        config.mqtt.topics.native_prefix, details.meter_id
                    );
                }
                Some(state) => {
                    if state.last_reading_ts.is_some() {
                        println!(
                            "  installation check: OK, first message {}",
                            format_time(state.first_seen, zone)
                        );
                    } else {
                        println!("  installation check: messages arrive but none was a valid reading (see `stillwater ingest rejected`)");
                    }
                    println!(
                        "  last message:        {} ({})",
                        format_time(state.last_message, zone),
                        ago(state.last_message)
                    );
                    if let Some(ts) = state.last_reading_ts {
                        println!(
                            "  last valid reading:  {} ({})",
                            format_time(ts, zone),
                            ago(ts)
                        );
                    }
                    match state.last_consumption_ts {
                        Some(ts) => println!(
                            "  last consumption:    {} ({})",
                            format_time(ts, zone),
                            ago(ts)
                        ),
                        None => println!("  last consumption:    none seen yet"),
                    }
                    if let Some(total) = state.last_total_l {
                        println!(
                            "  register:            {total} L ({:.3} m³)",
                            total as f64 / 1000.0
                        );
                    }
                    if let Some(battery) = state.last_battery_pct {
                        println!("  battery:             {battery} %");
                    }
                    let status = StatusFlags::from_bits(state.last_status);
                    if !status.is_empty() {
                        println!("  status flags:        {status}");
                    }
                    println!(
                        "  readings stored:     {} ({} register resets, {} rejected messages)",
                        state.readings, state.register_resets, state.rejected
                    );
                    if let Some(newest) = state.last_reading_ts {
                        let category = details
                            .registration
                            .as_ref()
                            .map_or("", |r| r.category.as_str());
                        let policy = config.rules.policy_for(category);
                        let history =
                            store.readings(&meter, newest - policy.background_s, newest + 1)?;
                        let background = stillwater::detect::background_mlph(&history, &policy);
                        println!(
                            "  background rate:     {:.1} L/h (mean of the quiet hours over {} days; no_usage counts use above it)",
                            background as f64 / 1000.0,
                            policy.background_s / 86_400
                        );
                    }
                }
            }
            if !details.recent.is_empty() {
                println!("  recent readings:");
                for reading in &details.recent {
                    println!(
                        "    {}  {:>10} L{}",
                        format_time(reading.ts.secs(), zone),
                        reading.total_l,
                        if reading.register_reset {
                            "  (register reset)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        MetersCommand::Replace { old, new } => {
            stillwater::domain::MeterId::parse(&new)
                .map_err(|error| anyhow::anyhow!("new meter: {error}"))?;
            store.replace_meter(&old, &new, &actor(), now)?;
            println!("meter {old} replaced by {new}; the household's alerts now follow {new}");
        }
        MetersCommand::Remove { meter } => {
            store.remove_meter(&meter, &actor(), now)?;
            println!("meter {meter} removed; its readings are kept");
        }
        MetersCommand::CheckIn { meter, phone, off } => {
            let phone = match (off, phone) {
                (true, _) => None,
                (false, Some(phone)) => Some(
                    stillwater::domain::PhoneNumber::parse(&phone)
                        .map_err(|error| anyhow::anyhow!("--phone: {error}"))?,
                ),
                (false, None) => unreachable!("clap requires --phone or --off"),
            };
            store.set_check_in_phone(&meter, phone.as_ref().map(|p| p.as_str()), &actor(), now)?;
            match phone {
                Some(phone) => println!(
                    "{meter}: the resident ({}) is asked first",
                    mask_phone(phone.as_str())
                ),
                None => println!("{meter}: no check-in; contacts are texted directly"),
            }
        }
        MetersCommand::Unregistered => {
            let meters = store.unregistered_meters()?;
            if meters.is_empty() {
                println!("every meter that has published is registered");
            }
            for meter in meters {
                println!(
                    "{:<32} first seen {}  last message {} ({})  {} readings{}",
                    meter.meter_id,
                    format_time(meter.first_seen, zone),
                    format_time(meter.last_message, zone),
                    ago(meter.last_message),
                    meter.readings,
                    meter
                        .former_status
                        .map(|s| format!("  [{s}]"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn alerts(config: &Config, command: AlertsCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open(&config.store.path)?;
    let now = chrono::Utc::now().timestamp();
    let zone = config.registry.timezone;
    let done = |result: Result<(), StoreError>, what: &str, id: i64| match result {
        Ok(()) => {
            println!("alert {id} {what}");
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::Action(error)) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
        Err(error) => Err(anyhow::Error::from(error)),
    };
    match command {
        AlertsCommand::List { all, limit } => {
            let alerts = store.list_alerts(all, limit)?;
            if alerts.is_empty() {
                println!("{}", if all { "no alerts" } else { "no active alerts" });
            }
            for alert in alerts {
                println!(
                    "#{:<5} {:<12} {:<15} {:<11} {:<12} {}  since {}  {}",
                    alert.id,
                    alert.state,
                    alert.kind,
                    alert.severity,
                    alert.meter_id,
                    alert.resident_name.as_deref().unwrap_or("?"),
                    format_time(alert.since, zone),
                    alert.detail
                );
            }
        }
        AlertsCommand::Show { id } => {
            let Some(alert) = store.alert(id)? else {
                eprintln!("error: alert {id} does not exist");
                return Ok(ExitCode::FAILURE);
            };
            println!(
                "alert #{} {} ({}) — {}",
                alert.id, alert.kind, alert.severity, alert.state
            );
            println!(
                "  meter:    {} ({})",
                alert.meter_id,
                alert.resident_name.as_deref().unwrap_or("not registered")
            );
            println!("  since:    {}", format_time(alert.since, zone));
            println!("  detected: {}", format_time(alert.opened_at, zone));
            println!("  detail:   {}", alert.detail);
            if let Some(disposition) = &alert.disposition {
                println!(
                    "  closed as {disposition}: {}",
                    alert.note.as_deref().unwrap_or("")
                );
            }
            println!("  history:");
            for event in store.alert_events(id)? {
                println!(
                    "    {}  {:<20} by {} via {}  {}",
                    format_time(event.at, zone),
                    event.action,
                    event.actor,
                    event.channel,
                    event.detail
                );
            }
            println!("  texts:");
            for text in store.notifications(Some(id))? {
                println!(
                    "    {:<9} {:<8} step {} to {} {}",
                    text.state,
                    text.purpose,
                    text.step,
                    text.recipient,
                    mask_phone(&text.phone),
                );
                for (at_ms, outcome, error) in store.notification_attempts(text.id)? {
                    println!(
                        "      attempt {}  {outcome}{}",
                        format_time(at_ms / 1000, zone),
                        error.map(|e| format!(" — {e}")).unwrap_or_default()
                    );
                }
            }
        }
        AlertsCommand::Ack { id, by } => {
            return done(
                store.acknowledge_alert(id, &by, "cli", now),
                "acknowledged",
                id,
            )
        }
        AlertsCommand::Resolve { id, by } => {
            return done(store.resolve_alert(id, &by, "cli", now), "resolved", id)
        }
        AlertsCommand::Close {
            id,
            disposition,
            note,
            by,
        } => {
            if !DISPOSITIONS.contains(&disposition.as_str()) {
                eprintln!(
                    "error: --disposition {disposition:?} must be one of {}",
                    DISPOSITIONS.join(", ")
                );
                return Ok(ExitCode::FAILURE);
            }
            return done(
                store.close_alert(id, &disposition, &note, &by, "cli", now),
                "closed",
                id,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses RFC 3339, or a date (midnight in `zone`).
fn parse_when(text: &str, zone: chrono_tz::Tz) -> anyhow::Result<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("{text:?} is not a date (2026-01-28) or an RFC 3339 time"))?;
    zone.from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .map(|time| time.timestamp())
        .ok_or_else(|| anyhow::anyhow!("{text:?} does not exist in {zone}"))
}

fn absences(config: &Config, command: AbsencesCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open(&config.store.path)?;
    let now = chrono::Utc::now().timestamp();
    let zone = config.registry.timezone;
    match command {
        AbsencesCommand::Add {
            meters,
            category,
            all,
            reason,
            from,
            until,
        } => {
            let starts_at = match &from {
                Some(text) => parse_when(text, zone).context("--from")?,
                None => now,
            };
            let ends_at = parse_when(&until, zone).context("--until")?;
            if ends_at <= starts_at {
                eprintln!("error: --until must be after --from");
                return Ok(ExitCode::FAILURE);
            }
            if ends_at - starts_at > MAX_ABSENCE_DAYS * 86_400 {
                eprintln!("error: an absence lasts at most {MAX_ABSENCE_DAYS} days; declare a new one when it ends");
                return Ok(ExitCode::FAILURE);
            }
            if reason.trim().is_empty() {
                eprintln!("error: --reason must say why (hospital, visiting family, …)");
                return Ok(ExitCode::FAILURE);
            }
            let meters = if all {
                store.active_meters(None)?
            } else if let Some(category) = &category {
                store.active_meters(Some(category))?
            } else {
                meters
            };
            if meters.is_empty() {
                eprintln!("error: no household chosen: give --meter ID, --category NAME or --all");
                return Ok(ExitCode::FAILURE);
            }
            let count = store.declare_absences(
                &meters,
                reason.trim(),
                starts_at,
                ends_at,
                &actor(),
                now,
            )?;
            println!(
                "absence declared for {count} households, {} to {}",
                format_time(starts_at, zone),
                format_time(ends_at, zone)
            );
        }
        AbsencesCommand::List { all } => {
            let absences = store.absences(all, now)?;
            if absences.is_empty() {
                println!("no absences");
            }
            for absence in absences {
                println!(
                    "#{:<5} {}  {} → {}  {}  (by {}){}",
                    absence.id,
                    absence.resident_name,
                    format_time(absence.starts_at, zone),
                    format_time(absence.ends_at, zone),
                    absence.reason,
                    absence.declared_by,
                    absence
                        .ended_at
                        .map(|at| format!(", ended {}", format_time(at, zone)))
                        .unwrap_or_default()
                );
            }
        }
        AbsencesCommand::End { id } => {
            store.end_absence(id, &actor(), now)?;
            println!("absence {id} ended");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rules(config: &Config, command: RulesCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open(&config.store.path)?;
    let now = chrono::Utc::now().timestamp();
    match command {
        RulesCommand::Show { target } => {
            let scope = target.scope();
            let category = match &scope {
                RuleScope::Category(category) => category.clone(),
                RuleScope::Meter(meter) => {
                    match store.meter_details(meter, 0)?.and_then(|d| d.registration) {
                        Some(registration) => registration.category,
                        None => {
                            eprintln!("error: meter {meter} is not registered");
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                }
            };
            let mut policy = config.rules.policy_for(&category);
            let mut sources: std::collections::HashMap<String, String> = config
                .rules
                .categories
                .get(&category)
                .into_iter()
                .flatten()
                .map(|setting| {
                    (
                        setting.key.as_str().to_string(),
                        format!("config, category {category}"),
                    )
                })
                .collect();
            for rule in store.rule_overrides(&scope)? {
                if policy.set(&rule.key, &rule.value).is_ok() {
                    let scope_name = if rule.scope == "category" {
                        format!("category {category}")
                    } else {
                        "this household".into()
                    };
                    sources.insert(
                        rule.key,
                        format!(
                            "set for {scope_name} by {} {}",
                            rule.set_by,
                            format_time(rule.set_at, config.registry.timezone)
                        ),
                    );
                }
            }
            for key in stillwater::policy::Key::ALL.map(|key| key.as_str()) {
                println!(
                    "{key:<20} {:<8} {}",
                    policy.text(key).unwrap_or_default(),
                    sources.get(key).map(String::as_str).unwrap_or("default")
                );
            }
        }
        RulesCommand::Set { target, settings } => {
            let mut scratch = config.rules.global.clone();
            let mut changes = Vec::new();
            for setting in &settings {
                let Some((key, value)) = setting.split_once('=') else {
                    eprintln!("error: {setting:?} must be KEY=VALUE, e.g. warning_window=8h");
                    return Ok(ExitCode::FAILURE);
                };
                if let Err(problem) = scratch.set(key.trim(), value.trim()) {
                    eprintln!("error: {problem}");
                    return Ok(ExitCode::FAILURE);
                }
                changes.push((key.trim().to_string(), Some(value.trim().to_string())));
            }
            store.set_rule_overrides(&target.scope(), &changes, &actor(), now)?;
            println!(
                "set {} for {:?}; the running gateway uses it from the next reading",
                settings.join(" "),
                target.scope()
            );
        }
        RulesCommand::Unset { target, keys } => {
            let mut changes = Vec::new();
            for key in keys {
                if let Err(problem) = stillwater::policy::Key::parse(&key) {
                    eprintln!("error: {problem}");
                    return Ok(ExitCode::FAILURE);
                }
                changes.push((key, None));
            }
            store.set_rule_overrides(&target.scope(), &changes, &actor(), now)?;
            println!("back to the configured values");
        }
    }
    Ok(ExitCode::SUCCESS)
}
