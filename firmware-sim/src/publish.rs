//! Publishing: to an MQTT broker at QoS 1 (paced in real time, accelerated,
//! as fast as the broker takes it, or at a target message rate), or to files
//! for a repeatable data set.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

use crate::meter::Message;
use crate::sim::Simulation;

/// How fast to publish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Each message when the simulation's clock reaches its time.
    Clock(SimClock),
    /// As fast as the broker acknowledges.
    Max,
    /// This many messages per second, whatever their times (a load test).
    Rate(f64),
}

/// The simulation's clock: `start` at the real instant `origin_ms` (Unix
/// milliseconds), then `speed` simulated seconds per real second. The gateway
/// is given the same three figures (`stillwater serve --clock-start …
/// --clock-origin … --clock-speed …`) so its timers run on the same time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimClock {
    pub start: i64,
    pub origin_ms: i64,
    pub speed: f64,
}

impl SimClock {
    pub fn now(&self) -> i64 {
        let real_ms = chrono::Utc::now().timestamp_millis() - self.origin_ms;
        self.start + (real_ms as f64 * self.speed / 1000.0).floor() as i64
    }

    /// The real time `sim_seconds` of simulated time take.
    pub fn real(&self, sim_seconds: f64) -> Duration {
        Duration::from_secs_f64((sim_seconds / self.speed).max(0.0))
    }

    /// Waits until the simulation's clock reads `at`.
    pub async fn sleep_until(&self, at: i64) {
        let due_ms = self.origin_ms + ((at - self.start) as f64 * 1000.0 / self.speed) as i64;
        let wait = due_ms - chrono::Utc::now().timestamp_millis();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
    }
}

/// Where messages come from: a simulation, or a data set's `messages.jsonl`.
pub enum Source {
    Simulation(Box<Simulation>),
    File {
        lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
        next: Option<Message>,
    },
}

impl Source {
    pub fn file(path: &Path) -> anyhow::Result<Self> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self::File {
            lines: std::io::BufReader::new(file).lines(),
            next: None,
        })
    }

    /// The messages due by `until`, in order; `None` when there are no more.
    pub fn advance(&mut self, until: i64) -> anyhow::Result<Option<Vec<Message>>> {
        match self {
            Self::Simulation(sim) => {
                if sim.finished() {
                    return Ok(None);
                }
                Ok(Some(match sim.plan.end() {
                    Some(end) if until >= end => sim.finish(),
                    _ => sim.advance(until),
                }))
            }
            Self::File { lines, next } => {
                let mut out = Vec::new();
                loop {
                    if next.is_none() {
                        match lines.next() {
                            Some(line) => *next = Some(parse_line(&line?)?),
                            None if out.is_empty() => return Ok(None),
                            None => return Ok(Some(out)),
                        }
                    }
                    if next.as_ref().is_some_and(|m| m.at > until) {
                        return Ok(Some(out));
                    }
                    out.extend(next.take());
                }
            }
        }
    }
}

fn parse_line(line: &str) -> anyhow::Result<Message> {
    let value: serde_json::Value =
        serde_json::from_str(line).context("a line of messages.jsonl")?;
    let field = |name: &str| {
        value[name]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("messages.jsonl: a line without {name:?}"))
    };
    Ok(Message {
        at: value["at"]
            .as_i64()
            .context("messages.jsonl: a line without \"at\"")?,
        topic: field("topic")?,
        payload: field("payload")?,
    })
}

/// One message as a line of `messages.jsonl`.
pub fn message_line(message: &Message) -> String {
    serde_json::json!({"at": message.at, "topic": message.topic, "payload": message.payload})
        .to_string()
}

/// A broker to publish to.
#[derive(Debug, Clone)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

/// An MQTT connection that counts acknowledgements.
pub struct Publisher {
    client: AsyncClient,
    acked: tokio::sync::watch::Receiver<u64>,
    poller: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub published: u64,
}

impl Publisher {
    pub async fn connect(broker: &Broker, client_id: &str) -> anyhow::Result<Self> {
        let mut options = MqttOptions::new(client_id, &broker.host, broker.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(1024 * 1024, 1024 * 1024);
        if let Some((user, password)) = &broker.credentials {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let (acked_tx, acked) = tokio::sync::watch::channel(0u64);
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
                    Err(error) => {
                        return Err(anyhow::anyhow!(error)).context("MQTT connection failed")
                    }
                }
            }
        });
        Ok(Self {
            client,
            acked,
            poller,
            published: 0,
        })
    }

    pub async fn publish(&mut self, message: Message) -> anyhow::Result<()> {
        self.client
            .publish(message.topic, QoS::AtLeastOnce, false, message.payload)
            .await?;
        self.published += 1;
        Ok(())
    }

    /// Waits for every acknowledgement and disconnects.
    pub async fn finish(mut self) -> anyhow::Result<u64> {
        while *self.acked.borrow() < self.published {
            if self.acked.changed().await.is_err() {
                break;
            }
        }
        let acked = *self.acked.borrow();
        self.client.disconnect().await?;
        self.poller.await??;
        if acked < self.published {
            anyhow::bail!(
                "the broker acknowledged only {acked} of {} messages",
                self.published
            );
        }
        Ok(acked)
    }
}

/// Publishes everything `source` holds from `start`, paced; `before` runs
/// before each step with the simulated time the step reaches and the messages
/// published so far (the benchmark replaces meters and watches the gateway
/// there). Returns the messages published.
pub async fn publish(
    source: &mut Source,
    start: i64,
    pace: Pace,
    publisher: &mut Publisher,
    mut before: impl FnMut(i64, u64) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let step = match pace {
        Pace::Clock(clock) => (clock.speed * 0.05).clamp(1.0, 3600.0) as i64,
        _ => 3600,
    };
    let mut until = start;
    let mut rate = match pace {
        Pace::Rate(per_second) => {
            let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            Some(interval)
        }
        _ => None,
    };
    let mut count = 0;
    loop {
        until += step;
        before(until, count)?;
        let Some(batch) = source.advance(until)? else {
            return Ok(count);
        };
        let mut batch: VecDeque<Message> = batch.into();
        while let Some(message) = batch.pop_front() {
            match (&pace, &mut rate) {
                (Pace::Clock(clock), _) => clock.sleep_until(message.at).await,
                (_, Some(interval)) => {
                    interval.tick().await;
                }
                _ => {}
            }
            publisher.publish(message).await?;
            count += 1;
        }
        if let Pace::Clock(clock) = pace {
            clock.sleep_until(until).await;
        }
    }
}

/// Writes a data set to `dir`: `messages.jsonl` (what to publish, when),
/// `readings.csv` (what arrived intact, per meter in time order, for
/// `stillwater readings import`), `households.csv` (the installation CSV),
/// `truth.jsonl`, `absences.csv` (declared) and `replacements.csv`. Returns
/// the messages written.
pub fn write_data_set(sim: Simulation, dir: &Path) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut sim = sim;
    let end = sim.plan.end().context("a data set needs an end (--days)")?;
    let path = dir.join("messages.jsonl");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?,
    );
    let mut count = 0;
    let mut until = sim.plan.start;
    let mut arrived: std::collections::BTreeMap<String, std::collections::BTreeMap<i64, i64>> =
        Default::default();
    while !sim.finished() {
        until += 86_400;
        let batch = if until >= end {
            sim.finish()
        } else {
            sim.advance(until)
        };
        for message in batch {
            writeln!(out, "{}", message_line(&message))?;
            count += 1;
            if let Some(meter) = message.topic.split('/').nth(1) {
                let readings = arrived.entry(meter.to_string()).or_default();
                for (ts, total) in intact_readings(&message.payload) {
                    readings.insert(ts, total);
                }
            }
        }
    }
    out.flush()?;
    let mut csv = std::io::BufWriter::new(
        std::fs::File::create(dir.join("readings.csv")).context("cannot create readings.csv")?,
    );
    writeln!(csv, "meter_id,ts,total_l")?;
    for (meter, readings) in &arrived {
        for (ts, total) in readings {
            writeln!(csv, "{meter},{},{total}", crate::scenario::rfc3339(*ts))?;
        }
    }
    csv.flush()?;
    write_companions(&sim, dir)?;
    Ok(count)
}

/// The readings of one message that a gateway could decode: (time, register).
/// Garbled payloads have none.
fn intact_readings(payload: &str) -> Vec<(i64, i64)> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Vec::new();
    };
    let one = |r: &serde_json::Value| {
        let ts = chrono::DateTime::parse_from_rfc3339(r.get("ts")?.as_str()?).ok()?;
        Some((ts.timestamp(), r.get("total_l")?.as_i64()?))
    };
    match value.get("readings").and_then(|r| r.as_array()) {
        Some(readings) => readings.iter().filter_map(one).collect(),
        None => one(&value).into_iter().collect(),
    }
}

/// Everything but the messages: the installation CSV, ground truth, declared
/// absences and meter replacements.
pub fn write_companions(sim: &Simulation, dir: &Path) -> anyhow::Result<()> {
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).with_context(|| format!("cannot write {name}"))
    };
    write("households.csv", sim.installation_csv())?;
    write(
        "truth.jsonl",
        sim.truth().iter().map(|l| format!("{l}\n")).collect(),
    )?;
    let rfc = crate::scenario::rfc3339;
    write(
        "absences.csv",
        std::iter::once("meter_id,from,until,reason\n".to_string())
            .chain(
                sim.declared_absences()
                    .iter()
                    .map(|(m, s, e)| format!("{m},{},{},hospital\n", rfc(*s), rfc(*e))),
            )
            .collect(),
    )?;
    write(
        "replacements.csv",
        std::iter::once("at,old_meter_id,new_meter_id\n".to_string())
            .chain(
                sim.replacements()
                    .iter()
                    .map(|(at, old, new)| format!("{},{old},{new}\n", rfc(*at))),
            )
            .collect(),
    )?;
    let plan = &sim.plan;
    write(
        "plan.json",
        serde_json::json!({
            "seed": plan.seed, "homes": plan.homes, "start": rfc(plan.start),
            "end": plan.end().map(rfc), "incident_rate": plan.incident_rate,
            "meters": format!("{:?}", plan.meters), "faults": format!("{:?}", plan.faults),
        })
        .to_string(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_sets_readings_are_what_a_gateway_could_decode() {
        let single = r#"{"seq":1,"total_l":5,"ts":"2026-09-01T00:00:00+08:00"}"#;
        assert_eq!(intact_readings(single), [(1_788_192_000, 5)]);
        let batch = r#"{"readings":[{"total_l":5,"ts":"2026-09-01T00:00:00+08:00"},{"total_l":7,"ts":"2026-09-01T01:00:00+08:00"},{"total_l":"x"}]}"#;
        assert_eq!(
            intact_readings(batch),
            [(1_788_192_000, 5), (1_788_195_600, 7)]
        );
        assert!(intact_readings(r#"{"seq":1,"total_l":5,"ts":"#).is_empty());
    }
}
