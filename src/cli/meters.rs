//! `stillwater meters`: register, list, inspect, replace and remove meters.

use std::process::ExitCode;

use stillwater::config::Config;

use super::*;
use crate::*;

pub(crate) fn meters(config: &Config, command: MetersCommand) -> anyhow::Result<ExitCode> {
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
