//! Simulated smart water meters that publish Stillwater's native MQTT format.
//!
//! Each simulated meter belongs to a one-person household with a daily rhythm
//! (little at night, busy mornings and evenings) and publishes its cumulative
//! register on `{prefix}/{meter_id}/reading` at QoS 1, one reading per message
//! or in batches. Time is simulated: readings carry event time starting at
//! `start`, and `speed` says how many simulated seconds pass per real second.
//! One meter can "stop using water" at a given time, as a resident who falls
//! would. This crate speaks only the documented wire format; it knows nothing
//! of the gateway's code.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, FixedOffset, Timelike};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::json;

/// What to simulate and where to publish.
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
}

/// What a run published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimReport {
    pub messages: u64,
    pub readings: u64,
}

/// One simulated household meter.
struct Household {
    total_l: i64,
    battery_pct: f64,
    seq: u64,
    pending: Vec<serde_json::Value>,
}

/// A small deterministic generator (SplitMix64), so a seed gives the same homes every run.
///
/// ```
/// let (mut a, mut b) = (firmware_sim::Rng::new(7), firmware_sim::Rng::new(7));
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!((0.0..1.0).contains(&a.next_f64()));
/// ```
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Expected water-use events per hour for a person living alone, by local hour.
fn uses_per_hour(hour: u32) -> f64 {
    match hour {
        0..=5 => 0.1,
        6..=8 => 2.5,
        9..=11 => 1.0,
        12..=13 => 1.5,
        14..=17 => 0.8,
        18..=21 => 2.0,
        _ => 0.5,
    }
}

/// Litres used in one interval ending at `at`.
pub fn litres_used(rng: &mut Rng, at: DateTime<FixedOffset>, interval: Duration) -> i64 {
    let expected = uses_per_hour(at.hour()) * interval.as_secs_f64() / 3600.0;
    let mut litres = 0;
    // Draw events one at a time from the expected count (a Poisson-like draw).
    let mut remaining = expected;
    while remaining > 0.0 {
        if rng.next_f64() < remaining.min(1.0) {
            litres += match rng.next_u64() % 10 {
                0..=4 => 6, // toilet flush
                5..=6 => 2, // hand wash
                7..=8 => 5, // cooking, dishes
                _ => 35,    // shower
            };
        }
        remaining -= 1.0;
    }
    litres
}

/// Publishes the simulation and returns once the broker has acknowledged every message.
pub async fn run(config: SimConfig) -> anyhow::Result<SimReport> {
    let client_id = format!("firmware-sim-{}-{}", std::process::id(), config.seed);
    let mut options = MqttOptions::new(client_id, &config.host, config.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1024 * 1024, 1024 * 1024);
    if let Some((user, password)) = &config.credentials {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let (acked_tx, mut acked_rx) = tokio::sync::watch::channel(0u64);
    let poller = tokio::spawn(async move {
        let mut acked = 0u64;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    let _ = acked_tx.send(acked);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(anyhow::anyhow!(error)).context("MQTT connection failed"),
            }
        }
    });

    let mut rng = Rng::new(config.seed);
    let mut homes: Vec<Household> = (0..config.meters)
        .map(|_| Household {
            total_l: 10_000 + (rng.next_u64() % 500_000) as i64,
            battery_pct: 60.0 + rng.next_f64() * 40.0,
            seq: 0,
            pending: Vec::new(),
        })
        .collect();
    let step = chrono::Duration::from_std(config.interval).context("interval too large")?;
    let mut report = SimReport::default();
    let mut at = config.start;
    let mut tick = 0u64;
    while config.readings == 0 || tick < config.readings {
        for (index, home) in homes.iter_mut().enumerate() {
            let stopped = config
                .stop_using
                .is_some_and(|(meter, from)| meter == index && at >= from);
            let used = if stopped {
                0
            } else {
                litres_used(&mut rng, at, config.interval)
            };
            home.total_l += used;
            home.battery_pct = (home.battery_pct - 0.001).max(0.0);
            home.seq += 1;
            let mut reading = json!({
                "ts": at.to_rfc3339(),
                "total_l": home.total_l,
                "flow_lph": (used as f64 * 3600.0 / config.interval.as_secs_f64()).round() as i64,
                "battery_pct": home.battery_pct.round() as i64,
                "seq": home.seq,
            });
            if home.battery_pct < 20.0 {
                reading["status"] = json!(["LOW_BATTERY"]);
            }
            home.pending.push(reading);
            let last_tick = config.readings != 0 && tick + 1 == config.readings;
            if home.pending.len() >= config.batch.max(1) || last_tick {
                let payload = if config.batch <= 1 {
                    home.pending.pop().expect("one reading").to_string()
                } else {
                    json!({ "readings": std::mem::take(&mut home.pending) }).to_string()
                };
                home.pending.clear();
                let topic = format!("{}/{}/reading", config.prefix, config.meter_id(index));
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await?;
                report.messages += 1;
            }
            report.readings += 1;
        }
        tick += 1;
        at += step;
        if config.speed.is_finite() && config.speed > 0.0 {
            tokio::time::sleep(config.interval.div_f64(config.speed)).await;
        }
    }
    while *acked_rx.borrow() < report.messages {
        if acked_rx.changed().await.is_err() {
            break;
        }
    }
    client.disconnect().await?;
    poller.await??;
    if *acked_rx.borrow() < report.messages {
        anyhow::bail!(
            "the broker acknowledged only {} of {} messages",
            *acked_rx.borrow(),
            report.messages
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_household() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T07:00:00+08:00").unwrap();
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..48)
                .map(|_| litres_used(&mut rng, at, Duration::from_secs(3600)))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn mornings_use_more_water_than_nights() {
        let mut rng = Rng::new(1);
        let hour = Duration::from_secs(3600);
        let night = DateTime::parse_from_rfc3339("2026-11-23T03:00:00+08:00").unwrap();
        let morning = DateTime::parse_from_rfc3339("2026-11-23T07:00:00+08:00").unwrap();
        let nights: i64 = (0..1000).map(|_| litres_used(&mut rng, night, hour)).sum();
        let mornings: i64 = (0..1000)
            .map(|_| litres_used(&mut rng, morning, hour))
            .sum();
        assert!(
            mornings > nights * 5,
            "mornings {mornings} L, nights {nights} L"
        );
    }
}
