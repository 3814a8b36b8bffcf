//! `stillwater meters`: register, list, inspect, replace and remove meters.

use std::process::ExitCode;

use stillwater::config::Config;

use super::*;
use crate::*;
use stillwater::actions;
use stillwater::actions::meters::ImportError;

#[derive(Subcommand)]
pub(crate) enum MetersCommand {
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
        /// An NB-IoT meter's module IMEI (its platform pushes are found by it).
        #[arg(long, default_value = "")]
        imei: String,
        /// The device id a carrier platform gave the meter.
        #[arg(long, default_value = "")]
        platform_device_id: String,
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
    /// What the meter's household routine has learned: use by hour, the
    /// usual first use, and how long a quiet stretch takes to reach each grade.
    Routine { meter: String },
    /// Ask the resident first ("reply if you are fine") before texting the contacts.
    CheckIn {
        meter: String,
        /// The resident's own phone; --off to stop asking.
        #[arg(long, required_unless_present = "off")]
        phone: Option<String>,
        #[arg(long)]
        off: bool,
    },
    /// Give the meter its own MQTT login (username: the meter id) and print
    /// its password, the only time it is shown; with [mqtt] meter_logins it
    /// may then publish only its own readings.
    Login {
        meter: String,
        /// Take the meter's login away instead.
        #[arg(long)]
        remove: bool,
    },
}

pub(crate) fn meters(config: &Config, command: MetersCommand) -> anyhow::Result<ExitCode> {
    // Registering creates the database (in an existing directory); everything
    // else reads or changes what is there.
    let store = match command {
        MetersCommand::Add { .. } | MetersCommand::Import { .. } => {
            Store::from_config(&config.store)?
        }
        _ => Store::existing_from_config(&config.store)?,
    };
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
            imei,
            platform_device_id,
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
                check_in_phone: String::new(),
                imei,
                platform_device_id,
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
            if let Err(error) =
                actions::meters::register(&store, &actor(), std::slice::from_ref(&household), now)
            {
                return refused(error);
            }
            out!(
                "registered meter {} ({} contacts)",
                household.meter,
                household.contacts.len()
            );
        }
        MetersCommand::Import { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            match actions::meters::import(&store, &actor(), &bytes, &config.registry, now) {
                Ok(imported) => out!(
                    "imported {} from {}",
                    count(imported, "meter", "meters"),
                    file.display()
                ),
                Err(ImportError::Rows(errors)) => {
                    eprintln!(
                        "{}: nothing imported; {}:",
                        file.display(),
                        count(errors.len(), "problem", "problems")
                    );
                    for error in errors {
                        eprintln!("  {error}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
                Err(ImportError::Action(error)) => return refused(error),
            }
        }
        MetersCommand::List => {
            let meters = store.list_meters()?;
            if meters.is_empty() {
                out!("no meters registered");
            }
            for meter in meters {
                let last = match meter.last_reading_ts {
                    Some(ts) => format!("last reading {}", ago(ts)),
                    None => "no reading yet".into(),
                };
                out!(
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
            out!("meter {}", details.meter_id);
            match &details.registration {
                Some(registration) => {
                    out!(
                        "  registration: {} since {}",
                        registration.status,
                        format_time(registration.registered_at, zone)
                    );
                    if let Some(new) = &registration.replaced_by {
                        out!("  replaced by:  {new}");
                    }
                    out!(
                        "  resident:     {} ({})",
                        registration.resident_name,
                        registration.category
                    );
                    out!("  address:      {}", registration.address);
                    out!(
                        "  time zone:    {}; reports every {} min",
                        registration.timezone,
                        registration.reporting_interval_min
                    );
                    for (step, name, phone) in &registration.contacts {
                        out!("  contact:      step {step}: {name} {}", mask_phone(phone));
                    }
                    if !registration.notes.is_empty() {
                        out!("  notes:        {}", registration.notes);
                    }
                    let login = match store.meter_login(&meter)? {
                        Some(_) if config.mqtt.meter_logins => {
                            "its own (username = the meter id); it may publish only its own readings"
                        }
                        Some(_) => "its own, but [mqtt] meter_logins is off: not asked for yet",
                        None => "none of its own (`stillwater meters login` gives it one)",
                    };
                    out!("  MQTT login:   {login}");
                }
                None => out!("  NOT REGISTERED: its readings are stored but never alarm"),
            }
            if let Some(device) = store.platform_device(&meter)? {
                out!("  platform:     {}", platform_names(&device));
                if let Some((online, at)) = device.presence {
                    out!(
                        "  platform says: {} since {} ({})",
                        if online { "online" } else { "OFFLINE" },
                        format_time(at, zone),
                        ago(at)
                    );
                }
            }
            match &details.state {
                None => {
                    out!("  installation check: NO MESSAGE YET.");
                    out!(
                        "    The meter should publish to topic {}/{}/reading on the gateway's broker.",
                        config.mqtt.topics.native_prefix, details.meter_id
                    );
                }
                Some(state) => {
                    if state.last_reading_ts.is_some() {
                        out!(
                            "  installation check: OK, first message {}",
                            format_time(state.first_seen, zone)
                        );
                    } else {
                        out!("  installation check: messages arrive but none was a valid reading (see `stillwater ingest rejected`)");
                    }
                    out!(
                        "  last message:        {} ({})",
                        format_time(state.last_message, zone),
                        ago(state.last_message)
                    );
                    if let Some(ts) = state.last_reading_ts {
                        out!(
                            "  last valid reading:  {} ({})",
                            format_time(ts, zone),
                            ago(ts)
                        );
                    }
                    match state.last_consumption_ts {
                        Some(ts) => out!(
                            "  last consumption:    {} ({})",
                            format_time(ts, zone),
                            ago(ts)
                        ),
                        None => out!("  last consumption:    none seen yet"),
                    }
                    if let Some(total) = state.last_total_l {
                        out!(
                            "  register:            {total} L ({:.3} m³)",
                            total as f64 / 1000.0
                        );
                    }
                    if let Some(battery) = state.last_battery_pct {
                        out!("  battery:             {battery} %");
                    }
                    let status = StatusFlags::from_bits(state.last_status);
                    if !status.is_empty() {
                        out!("  status flags:        {status}");
                    }
                    out!(
                        "  readings stored:     {} ({}, {})",
                        state.readings,
                        count(
                            state.register_resets as usize,
                            "register reset",
                            "register resets"
                        ),
                        count(
                            state.rejected as usize,
                            "rejected message",
                            "rejected messages"
                        )
                    );
                    if state.missing > 0 {
                        out!(
                            "  lost on the way:     {} (by the meter's own counter, seq)",
                            count(state.missing as usize, "reading", "readings")
                        );
                    }
                    if let (Some(newest), Some(registration)) =
                        (state.last_reading_ts, &details.registration)
                    {
                        let every = i64::from(registration.reporting_interval_min.max(1)) * 60;
                        let day = store.readings(&meter, newest - 86_400 + 1, newest + 1)?;
                        out!(
                            "  the last 24 h:       {} of the {} its schedule expects (every {} min)",
                            day.len(),
                            86_400 / every,
                            registration.reporting_interval_min
                        );
                    }
                    if let Some(newest) = state.last_reading_ts {
                        let category = details
                            .registration
                            .as_ref()
                            .map_or("", |r| r.category.as_str());
                        let policy = config.rules.policy_for(category);
                        let history =
                            store.readings(&meter, newest - policy.background_s, newest + 1)?;
                        let background = stillwater::detect::background_mlph(&history, &policy);
                        out!(
                            "  background rate:     {:.1} L/h (mean of the quiet hours over {}; no_usage counts use above it)",
                            background as f64 / 1000.0,
                            count((policy.background_s / 86_400) as usize, "day", "days")
                        );
                    }
                }
            }
            if !details.recent.is_empty() {
                out!("  recent readings:");
                for reading in &details.recent {
                    out!(
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
            if let Err(error) = actions::meters::replace(&store, &actor(), &old, &new, now) {
                return refused(error);
            }
            out!("meter {old} replaced by {new}; the household's alerts now follow {new}");
        }
        MetersCommand::Remove { meter } => {
            if let Err(error) = actions::meters::remove(&store, &actor(), &meter, now) {
                return refused(error);
            }
            out!("meter {meter} removed; its readings are kept");
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
            if let Err(error) =
                actions::meters::set_check_in_phone(&store, &actor(), &meter, phone.as_ref(), now)
            {
                return refused(error);
            }
            match phone {
                Some(phone) => out!(
                    "{meter}: the resident ({}) is asked first",
                    mask_phone(phone.as_str())
                ),
                None => out!("{meter}: no check-in; contacts are texted directly"),
            }
        }
        MetersCommand::Login { meter, remove } => {
            if remove {
                if let Err(error) = actions::meters::remove_login(&store, &actor(), &meter, now) {
                    return refused(error);
                }
                out!("{meter}: its own MQTT login is removed");
            } else {
                let password = match actions::meters::new_login(&store, &actor(), &meter, now) {
                    Ok(password) => password,
                    Err(error) => return refused(error),
                };
                out!("{meter}: its own MQTT login (any earlier password no longer works)");
                out!("  username: {meter}");
                out!("  password: {password}");
                if !config.mqtt.meter_logins {
                    out!("  note: [mqtt] meter_logins is off, so the gateway does not ask for it yet");
                }
            }
        }
        MetersCommand::Routine { meter } => return routine(config, &store, &meter),
        MetersCommand::Unregistered => {
            let meters = store.unregistered_meters()?;
            if meters.is_empty() {
                out!("every meter that has published is registered");
            }
            for meter in meters {
                out!(
                    "{:<32} first seen {}  last message {} ({})  {}{}{}",
                    meter.meter_id,
                    format_time(meter.first_seen, zone),
                    format_time(meter.last_message, zone),
                    ago(meter.last_message),
                    count(meter.readings as usize, "reading", "readings"),
                    meter
                        .former_status
                        .map(|s| format!("  [{s}]"))
                        .unwrap_or_default(),
                    meter
                        .platform
                        .map(|p| format!("  via {}", platform_names(&p)))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `stillwater meters routine ID`: what the household's routine has learned.
fn routine(
    config: &Config,
    store: &stillwater::store::Store,
    meter: &str,
) -> anyhow::Result<ExitCode> {
    use stillwater::detect::Routine;
    let Some(household) = store.household(meter)? else {
        eprintln!("meter {meter} is not registered");
        return Ok(ExitCode::FAILURE);
    };
    let stored = store.rule_overrides(&RuleScope::Meter(meter.to_string()))?;
    let policy =
        stillwater::thresholds::in_force(&config.rules, &household.category, &stored).policy;
    let state = store.meter_state(meter)?;
    let Some(routine) = state
        .and_then(|s| s.routine)
        .as_deref()
        .and_then(Routine::decode)
    else {
        out!("meter {meter}: nothing learned yet (the gateway has not evaluated a reading)");
        return Ok(ExitCode::SUCCESS);
    };
    out!(
        "meter {meter}: routine learned from {} days of readings (it speaks from {}), one every {} min",
        routine.days_seen(),
        stillwater::detect::routine::MIN_DAYS,
        routine.interval_s() / 60
    );
    out!(
        "  detector {}, sensitivity {}",
        stillwater::policy::Key::Detector.format(policy.get(stillwater::policy::Key::Detector)),
        policy.sensitivity.as_str()
    );
    if routine.interval_s() > 2 * 3600 {
        out!("  readings come less often than every 2 h: only the fixed rules judge this meter");
    }
    for (weekend, days) in [(false, "weekdays"), (true, "weekends")] {
        match routine.usual_wake(weekend) {
            Some((mean, by)) => out!(
                "  first use of the day, {days}: about {:02}:{:02}, usually by {:02}:{:02}",
                mean / 60,
                mean % 60,
                by / 60,
                by % 60
            ),
            None => out!("  first use of the day, {days}: not learned yet"),
        }
    }
    for (weekend, evenings) in [(false, "weekday evenings"), (true, "weekend evenings")] {
        match routine.usual_bed(weekend) {
            Some((mean, spread)) => out!(
                "  last use before the night, {evenings}: about {:02}:{:02}, give or take {spread} min",
                mean / 60,
                mean % 60,
            ),
            None => out!("  last use before the night, {evenings}: not learned yet"),
        }
    }
    out!("  share of days with water used in each hour (weekdays | weekends):");
    for hour in 0..24 {
        let (weekday, weekend) = (
            routine.probability(false, hour),
            routine.probability(true, hour),
        );
        out!(
            "    {hour:02}:00  {:<20} {:>3}% | {:>3}%",
            "#".repeat((weekday * 20.0).round() as usize),
            (weekday * 100.0).round(),
            (weekend * 100.0).round()
        );
    }
    let Some(levels) = routine.levels(policy.sensitivity) else {
        out!("  not judging yet: the fixed rules alone until it has a week of readings");
        return Ok(ExitCode::SUCCESS);
    };
    out!(
        "  levels of evidence: ask the resident at {:.1}, text the contacts at {:.1}",
        levels.watch,
        levels.alarm
    );
    let within = |seconds: Option<i64>| match seconds {
        Some(s) => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        None => "not within a day".to_string(),
    };
    out!("  a weekday quiet stretch from … reaches them after:");
    for hour in [0, 6, 9, 12, 15, 18, 21] {
        out!(
            "    {hour:02}:00  {} / {}",
            within(routine.quiet_to_reach(hour, levels.watch)),
            within(routine.quiet_to_reach(hour, levels.alarm))
        );
    }
    out!(
        "  (and the fixed rules still hold: urgent after {} h without {} L)",
        policy.urgent_window_s / 3600,
        policy.min_litres
    );
    Ok(ExitCode::SUCCESS)
}

/// How a carrier platform names a meter: `ctwing product P device D imei I`.
fn platform_names(device: &stillwater::store::PlatformDevice) -> String {
    let mut names = format!(
        "{} product {} device {}",
        device.platform, device.product_id, device.device_id
    );
    if let Some(imei) = &device.imei {
        names.push_str(&format!(" imei {imei}"));
    }
    names
}
