//! `stillwater demo`: the gateway on its embedded defaults with simulated homes.
//!
//! It registers a few sample households (config/demo-households.csv), starts the
//! gateway with the embedded broker and a local SQLite file, and runs
//! firmware-sim in-process in accelerated event time: a simulated hour passes
//! every second, and the first resident stops using water six simulated hours
//! in. Ports that are taken (say, by a Mosquitto already running) are replaced by
//! free ones, and the demo says which.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::app::Gateway;
use crate::config::{BrokerChoice, Config};
use crate::registry;
use crate::store::{Store, StoreError};

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
    /// Exit when the simulation is done instead of running on.
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
            let any = SocketAddr::new(listen.ip(), 0);
            println!(
                "{what} port {} is taken; the demo uses a free port instead",
                listen.port()
            );
            any
        }
    }
}

pub async fn run(mut config: Config, options: DemoOptions) -> anyhow::Result<()> {
    config.store.path = options.database.clone();
    if let BrokerChoice::Embedded { listen } = config.mqtt.broker {
        config.mqtt.broker = BrokerChoice::Embedded {
            listen: free_or_any(listen, "MQTT"),
        };
    }
    config.http.listen = free_or_any(config.http.listen, "HTTP");

    let store = Store::open(&config.store.path)?;
    let households = registry::parse_csv(HOUSEHOLDS_CSV, &config.registry)
        .map_err(|errors| anyhow::anyhow!("demo households: {}", errors[0]))?;
    let mut registered = 0;
    for household in &households {
        match store.register_households(
            std::slice::from_ref(household),
            "demo",
            chrono::Utc::now().timestamp(),
        ) {
            Ok(()) => registered += 1,
            Err(StoreError::AlreadyRegistered { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let gateway = Gateway::start(&config).await?;
    println!("Stillwater demo");
    println!(
        "  database:  {} ({registered} sample households registered)",
        store.path().display()
    );
    println!(
        "  MQTT:      {} (topic meters/{{meter_id}}/reading)",
        gateway.mqtt_addr
    );
    println!("  metrics:   http://{}/metrics", gateway.http_addr);
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
    println!(
        "  {} (DEMO-00000) stops using water at {}",
        crate::domain::mask_name(&households[0].resident_name),
        stop_at.format("%m-%d %H:%M")
    );
    let metrics = gateway.metrics.clone();
    let mut simulation = tokio::spawn(firmware_sim::run(sim));
    let mut progress = tokio::time::interval(Duration::from_secs(5));
    let report = loop {
        tokio::select! {
            result = &mut simulation => break result??,
            _ = progress.tick() => println!("  … {} readings stored", metrics.readings_accepted.load(Relaxed)),
            _ = tokio::signal::ctrl_c() => {
                simulation.abort();
                return gateway.stop().await;
            }
        }
    };
    // The simulator's messages are acknowledged by the broker; wait until the gateway has committed them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metrics.readings_accepted.load(Relaxed) < report.readings
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "  simulation done: {} readings stored",
        metrics.readings_accepted.load(Relaxed)
    );
    println!(
        "  look at the meter whose resident stopped:  stillwater --db {} meters show DEMO-00000",
        store.path().display()
    );
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
