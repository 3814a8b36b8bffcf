//! Simulated homes and smart water meters that publish Stillwater's native
//! MQTT format — for the demo, for tests, and for measuring detection.
//!
//! - [`household`]: one resident's day, presence first and water second, as
//!   tap openings at each fixture's flow;
//! - [`meter`]: registers, clocks, uploads and the faults of real networks;
//! - [`scenario`]: incidents with ground truth;
//! - [`sim`]: a seeded town of homes, producing messages in publish order;
//! - [`publish`]: to a broker (real time, accelerated, as fast as possible, at
//!   a target rate) or to files for a repeatable data set;
//! - [`answer`]: the residents' and contacts' phones, answering texts;
//! - [`benchmark`]: the detection benchmark through a real gateway;
//! - [`inject`]: incidents injected into real meter history.
//!
//! This crate speaks only the documented interfaces (the wire format, the
//! installation CSV, the SMS webhook, inbound SMS and the `stillwater`
//! command line); it knows nothing of the gateway's code.

pub mod answer;
pub mod benchmark;
pub mod household;
pub mod inject;
pub mod meter;
pub mod platform;
pub mod publish;
pub mod rng;
pub mod scenario;
pub mod sim;

use std::time::Duration;

use chrono::{DateTime, FixedOffset};

pub use rng::Rng;

/// A simple live run (the demo's): `meters` homes with meters reading every
/// `interval`, published as they are taken, one resident who may stop using
/// water.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub host: String,
    pub port: u16,
    /// Optional username and password for the broker.
    pub credentials: Option<(String, String)>,
    /// Topic prefix: readings go to `{prefix}/{meter_id}/reading`.
    pub prefix: String,
    /// Meter ids are `{id_prefix}{index:05}`.
    pub id_prefix: String,
    pub meters: usize,
    /// Simulated time between two readings of a meter.
    pub interval: Duration,
    /// Readings per meter; 0 runs until stopped.
    pub readings: u64,
    /// The first reading's event time.
    pub start: DateTime<FixedOffset>,
    /// Simulated seconds per real second; infinity publishes as fast as the broker takes it.
    pub speed: f64,
    /// Readings per message: 1 sends single readings, more sends `{"readings": [...]}` batches.
    pub batch: usize,
    pub seed: u64,
    /// A meter (by index) whose resident stops using water at this event time.
    pub stop_using: Option<(usize, DateTime<FixedOffset>)>,
}

impl SimConfig {
    pub fn meter_id(&self, index: usize) -> String {
        format!("{}{index:05}", self.id_prefix)
    }

    /// The plan this configuration describes.
    pub fn plan(&self) -> sim::Plan {
        let interval_s = self.interval.as_secs().max(60) as i64;
        let start = self.start.timestamp();
        sim::Plan {
            seed: self.seed,
            homes: self.meters,
            start,
            end: (self.readings > 0).then(|| start + (self.readings as i64 - 1) * interval_s),
            id_prefix: self.id_prefix.clone(),
            topic_prefix: self.prefix.clone(),
            incident_rate: 0.0,
            meters: sim::Meters::Uniform {
                interval_s,
                batch: self.batch.max(1),
            },
            faults: meter::Faults::default(),
            check_in_share: 0.0,
            scripted: self
                .stop_using
                .map(|(home, at)| {
                    // Nobody comes in a demo: the quiet lasts to the end.
                    let incident = scenario::Incident {
                        kind: scenario::IncidentKind::Incapacitation,
                        start: at.timestamp(),
                        end: i64::MAX / 4,
                    };
                    vec![(home, incident)]
                })
                .unwrap_or_default(),
        }
    }
}

/// What a run published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimReport {
    pub messages: u64,
}

/// Publishes the simulation and returns once the broker has acknowledged every message.
pub async fn run(config: SimConfig) -> anyhow::Result<SimReport> {
    let plan = config.plan();
    let start = plan.start;
    let broker = publish::Broker {
        host: config.host.clone(),
        port: config.port,
        credentials: config.credentials.clone(),
    };
    let client_id = format!("firmware-sim-{}-{}", std::process::id(), config.seed);
    let mut publisher = publish::Publisher::connect(&broker, &client_id).await?;
    let pace = if config.speed.is_finite() && config.speed > 0.0 {
        publish::Pace::Clock(publish::SimClock {
            start: config.start.timestamp(),
            origin_ms: chrono::Utc::now().timestamp_millis(),
            speed: config.speed,
        })
    } else {
        publish::Pace::Max
    };
    let mut source = publish::Source::Simulation(Box::new(sim::Simulation::new(plan)));
    let messages =
        publish::publish(&mut source, start, pace, &mut publisher, |_, _| Ok(())).await?;
    publisher.finish().await?;
    Ok(SimReport { messages })
}
