//! `stillwater demo`: the whole loop on the embedded defaults, in about a minute.
//!
//! It starts a fresh demo database, registers a few sample households
//! (config/demo-households.csv), starts the gateway with the embedded MQTT server and
//! the `log` SMS provider, and runs firmware-sim in-process in accelerated event
//! time: a simulated hour passes every second, and the first resident stops
//! using water six simulated hours in. A day later (in event time) the urgent
//! `no_usage` alert opens and its texts are printed; the demo then answers the
//! first text as the social worker would ("1"), which acknowledges the alert.
//! A monitor's token is made for the dashboard, and printed with its address.
//! Ports that are taken (say, by a Mosquitto already running) are replaced by
//! free ones, and the demo says which.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::app::Gateway;
use crate::config::{BrokerChoice, Config, ProviderChoice, StoreLocation};
use crate::domain::{mask_phone, PhoneNumber};
use crate::registry;
use crate::store::prelude::*;
use crate::store::Store;

/// The sample households, embedded in the binary.
pub const HOUSEHOLDS_CSV: &str = include_str!("../config/demo-households.csv");

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub database: PathBuf,
    /// Simulated hours to publish.
    pub hours: u64,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Exit when the loop is shown instead of running on.
    pub once: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            database: PathBuf::from("stillwater-demo.db"),
            hours: 36,
            speed: 3600.0,
            once: false,
        }
    }
}

/// `listen` if it is free, otherwise a free port on the same address.
fn free_or_any(listen: SocketAddr, what: &str) -> SocketAddr {
    match TcpListener::bind(listen) {
        Ok(_) => listen,
        Err(_) => {
            println!(
                "{what} port {} is taken; the demo uses a free port instead",
                listen.port()
            );
            SocketAddr::new(listen.ip(), 0)
        }
    }
}

/// Removes a previous demo database, so every run tells the same story.
fn fresh_database(path: &std::path::Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => anyhow::bail!(
                "cannot remove the old demo database {}: {error}",
                file.display()
            ),
        }
    }
    Ok(())
}

pub async fn run(mut config: Config, options: DemoOptions) -> anyhow::Result<()> {
    config.store.location = StoreLocation::Sqlite(options.database.clone());
    config.sms.provider = ProviderChoice::Log;
    if let BrokerChoice::Embedded { listen } = config.mqtt.broker {
        config.mqtt.broker = BrokerChoice::Embedded {
            listen: free_or_any(listen, "MQTT"),
        };
    }
    config.http.listen = free_or_any(config.http.listen, "HTTP");
    config.alerts.tick = Duration::from_secs(1);

    fresh_database(&options.database)?;
    let store = Store::from_config(&config.store)?;
    let households = registry::parse_csv(HOUSEHOLDS_CSV, &config.registry)
        .map_err(|errors| anyhow::anyhow!("demo households: {}", errors[0]))?;
    let demo = crate::domain::Actor::new(
        "demo",
        crate::domain::Role::Admin,
        crate::domain::Channel::Cli,
    );
    let now = chrono::Utc::now().timestamp();
    crate::actions::meters::register(&store, &demo, &households, now)?;
    let (_, monitor) =
        crate::actions::tokens::add(&store, &demo, "演示社工", crate::domain::Role::Monitor, now)?;
    let gateway = Gateway::start(&config).await?;
    println!("Stillwater demo");
    println!(
        "  database:  {} ({} sample households)",
        store.describe(),
        households.len()
    );
    println!(
        "  MQTT:      {} (topic meters/{{meter_id}}/reading)",
        gateway.mqtt_addr
    );
    println!("  metrics:   http://{}/metrics", gateway.http_addr);
    println!(
        "  dashboard: http://{}/ui/ (sign in as a monitoring team with {monitor})",
        gateway.http_addr
    );
    println!(
        "  simulating {} homes for {} hours of event time, {}x real time",
        households.len(),
        options.hours,
        options.speed
    );

    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset");
    let start =
        chrono::Utc::now().with_timezone(&china) - chrono::Duration::hours(options.hours as i64);
    let stop_at = start + chrono::Duration::hours(6);
    let sim = firmware_sim::SimConfig {
        host: gateway.mqtt_addr.ip().to_string(),
        port: gateway.mqtt_addr.port(),
        credentials: config
            .mqtt
            .credentials
            .clone()
            .map(|(user, password)| (user, password.expose().to_string())),
        prefix: config.mqtt.topics.native_prefix.clone(),
        id_prefix: "DEMO-".into(),
        meters: households.len(),
        interval: Duration::from_secs(3600),
        readings: options.hours,
        start,
        speed: options.speed,
        batch: 1,
        seed: 1,
        stop_using: Some((0, stop_at)),
    };
    let resident = &households[0];
    println!(
        "  {} (DEMO-00000) uses no water after {} (event time); the texts count",
        resident.resident_name,
        stop_at.format("%m-%d %H:%M")
    );
    println!("  the quiet from the last reading that showed water used before then");
    println!();
    let metrics = gateway.metrics.clone();
    let mut simulation = tokio::spawn(firmware_sim::run(sim));
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    let mut acknowledged = None;
    loop {
        tokio::select! {
            result = &mut simulation => {
                let report = result??;
                println!("  … simulation done: {} readings published", report.messages);
                break;
            }
            _ = progress.tick() => println!("  … {} readings stored", metrics.readings_accepted.load(Relaxed)),
            _ = tokio::signal::ctrl_c() => {
                simulation.abort();
                return gateway.stop().await;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)), if acknowledged.is_none() => {
                acknowledged = answer_first_text(&store, resident, &config).await?;
            }
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acknowledged.is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        acknowledged = answer_first_text(&store, resident, &config).await?;
    }
    if acknowledged.is_none() {
        println!(
            "  no alert was texted; see `{} --db {} alerts list --all`",
            command_name(),
            store.describe()
        );
    }
    println!();
    println!("  look closer:");
    let command = command_name();
    let show = format!("alerts show {}", acknowledged.unwrap_or(1));
    for args in ["alerts list --all", &show, "meters show DEMO-00000"] {
        println!("    {command} --db {} {args}", store.describe());
    }
    if options.once {
        return gateway.stop().await;
    }
    println!(
        "  still running: point more meters at {} or press Ctrl-C to stop",
        gateway.mqtt_addr
    );
    let shutdown = gateway.shutdown_token();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
    });
    gateway.run_until_stopped().await
}

/// How to run this binary again: `cargo run --` when started by cargo (which
/// sets CARGO_MANIFEST_DIR for what it runs), `stillwater` otherwise.
fn command_name() -> &'static str {
    if std::env::var_os("CARGO_MANIFEST_DIR").is_some() {
        "cargo run --"
    } else {
        "stillwater"
    }
}

/// Once the resident's alert has been texted to the first contact, replies "1"
/// as that contact would. Returns the alert it acknowledged, once it has.
async fn answer_first_text(
    store: &Store,
    resident: &registry::NewHousehold,
    config: &Config,
) -> anyhow::Result<Option<i64>> {
    let Some(contact) = resident.contacts.first() else {
        return Ok(None);
    };
    let store = store.clone();
    let phone: PhoneNumber = contact.phone.clone();
    let language = config.sms.language;
    let name = contact.name.clone();
    tokio::task::spawn_blocking(move || {
        let sent = store.notifications(None)?.into_iter().any(|text| {
            text.phone == phone.as_str() && text.purpose == "alert" && text.state == "sent"
        });
        if !sent {
            return Ok(None);
        }
        let outcome = crate::actions::replies::handle_reply(
            &store,
            &phone,
            "1",
            language,
            crate::clock::system().now(),
        )?;
        println!();
        println!(
            "  {name} ({}) replies \"1\" → {}",
            mask_phone(phone.as_str()),
            outcome.reply
        );
        if let Some(id) = outcome.alert_id {
            if let Some(alert) = store.alert(id)? {
                println!(
                    "  alert #{id} {} ({}) is now {}: the monitoring team is on its way",
                    alert.kind, alert.severity, alert.state
                );
            }
        }
        Ok(Some(outcome.alert_id.unwrap_or(1)))
    })
    .await?
}
