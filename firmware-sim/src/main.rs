//! `firmware-sim`: publish simulated meter readings to any MQTT broker.

use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "Simulated smart water meters publishing Stillwater's native MQTT format"
)]
struct Args {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Broker username (the password is read from STILLWATER_MQTT_PASSWORD).
    #[arg(long)]
    username: Option<String>,
    /// Topic prefix: readings go to {prefix}/{meter_id}/reading.
    #[arg(long, default_value = "meters")]
    prefix: String,
    /// Meter ids are {id-prefix}{index:05}.
    #[arg(long, default_value = "SIM-")]
    id_prefix: String,
    /// Number of simulated meters.
    #[arg(long, default_value_t = 10)]
    meters: usize,
    /// Minutes of simulated time between readings.
    #[arg(long, default_value_t = 60)]
    interval_min: u64,
    /// Readings per meter (0: run until stopped).
    #[arg(long, default_value_t = 24)]
    readings: u64,
    /// Event time of the first reading (RFC 3339); default: now, in +08:00.
    #[arg(long)]
    start: Option<String>,
    /// Simulated seconds per real second ("max" for as fast as possible).
    #[arg(long, default_value = "3600")]
    speed: String,
    /// Readings per message (1: single readings; more: batches).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Random seed: the same seed gives the same households.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Meter index whose resident stops using water, with --stop-at.
    #[arg(long, requires = "stop_at")]
    stop_meter: Option<usize>,
    /// Event time (RFC 3339) from which --stop-meter uses no water.
    #[arg(long, requires = "stop_meter")]
    stop_at: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let args = Args::parse();
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset");
    let start = match &args.start {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| anyhow::anyhow!("--start {text:?}: {e}"))?,
        None => chrono::Utc::now().with_timezone(&china),
    };
    let speed = match args.speed.as_str() {
        "max" => f64::INFINITY,
        text => text
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0)
            .ok_or_else(|| anyhow::anyhow!("--speed {text:?}: a positive number or \"max\""))?,
    };
    let stop_using = match (args.stop_meter, &args.stop_at) {
        (Some(meter), Some(at)) => Some((
            meter,
            chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|e| anyhow::anyhow!("--stop-at {at:?}: {e}"))?,
        )),
        _ => None,
    };
    let credentials = args.username.map(|user| {
        (
            user,
            std::env::var("STILLWATER_MQTT_PASSWORD").unwrap_or_default(),
        )
    });
    let config = firmware_sim::SimConfig {
        host: args.host,
        port: args.port,
        credentials,
        prefix: args.prefix,
        id_prefix: args.id_prefix,
        meters: args.meters,
        interval: Duration::from_secs(args.interval_min.max(1) * 60),
        readings: args.readings,
        start,
        speed,
        batch: args.batch,
        seed: args.seed,
        stop_using,
    };
    let report = firmware_sim::run(config).await?;
    println!(
        "published {} readings in {} messages",
        report.readings, report.messages
    );
    Ok(())
}
