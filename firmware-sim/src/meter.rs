//! A smart water meter: reads its whole-litre register every interval, keeps
//! its own (drifting) clock, and uploads — each reading as it is taken, or in
//! batches a few times a day as NB-IoT meters do. Some messages are lost,
//! duplicated, delayed (so they arrive out of order) or garbled, at rates the
//! run chooses; a battery runs down and says `LOW_BATTERY`; a meter may be
//! replaced mid-run (a new id, a register starting again).

use serde_json::{json, Value};

use crate::household::Home;
use crate::rng::Rng;

/// A message as published: when (simulated time), where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub at: i64,
    pub topic: String,
    pub payload: String,
}

/// How a meter sends its readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// Each reading a few seconds after it is taken.
    Stream,
    /// Every `every_s`, all readings since the last upload in one message.
    Batches { every_s: i64 },
}

/// Shares of messages that go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    pub lost: f64,
    pub duplicated: f64,
    /// Held back 10 minutes to 6 hours (arriving after later ones).
    pub delayed: f64,
    pub malformed: f64,
}

impl Faults {
    /// What real networks do, roughly: a fraction of a percent each.
    pub const TYPICAL: Faults = Faults {
        lost: 0.002,
        duplicated: 0.003,
        delayed: 0.003,
        malformed: 0.0005,
    };
}

/// One meter's make and state.
#[derive(Debug, Clone)]
pub struct Meter {
    pub id: String,
    pub interval_s: i64,
    pub upload: Upload,
    /// Its clock runs fast (positive) or slow, parts per million.
    pub drift_ppm: f64,
    /// Replaced at this time by a meter with this id.
    pub replaced: Option<(i64, String)>,
    /// Sends nothing over these stretches.
    pub silent: Vec<(i64, i64)>,
    topic_prefix: String,
    register_l: f64,
    battery_pct: f64,
    battery_per_reading: f64,
    seq: u64,
    clock_origin: i64,
    next_read: i64,
    next_upload: i64,
    pending: Vec<Value>,
    faults: Faults,
    rng: Rng,
}

impl Meter {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        topic_prefix: &str,
        interval_s: i64,
        upload: Upload,
        start: i64,
        faults: Faults,
        mut rng: Rng,
    ) -> Self {
        // Meters read on their own phase within the interval.
        let phase = rng.below(interval_s.min(3600) as u64) as i64;
        let first = start.div_euclid(interval_s) * interval_s + phase;
        let upload_phase = match upload {
            Upload::Stream => 0,
            Upload::Batches { every_s } => rng.below(every_s as u64) as i64,
        };
        Self {
            id,
            interval_s,
            upload,
            drift_ppm: rng.normal(0.0, 20.0),
            replaced: None,
            silent: Vec::new(),
            topic_prefix: topic_prefix.to_string(),
            register_l: 10_000.0 + rng.below(500_000) as f64 + rng.next_f64(),
            battery_pct: rng.range(18.0, 100.0),
            battery_per_reading: rng.range(0.5, 3.0) * interval_s as f64 / 86_400.0 / 30.0,
            seq: 0,
            clock_origin: start,
            next_read: if first < start {
                first + interval_s
            } else {
                first
            },
            next_upload: start + upload_phase,
            pending: Vec::new(),
            faults,
            rng,
        }
    }

    pub fn next_read(&self) -> i64 {
        self.next_read
    }

    /// Takes every reading due up to `until` from `home`, and returns the
    /// messages they cause (not in any order).
    pub fn read_until(&mut self, home: &mut Home, until: i64) -> Vec<Message> {
        let mut out = Vec::new();
        while self.next_read <= until {
            let at = self.next_read;
            self.next_read += self.interval_s;
            self.register_l += home.litres(at - self.interval_s, at);
            let flow = home.flow_at(at);
            if let Some((when, new_id)) = self.replaced.clone() {
                if at >= when && self.id != new_id {
                    // The old meter's last upload goes out, then the new one starts at a low register.
                    self.flush(at, &mut out);
                    self.id = new_id;
                    self.register_l = self.rng.range(0.0, 50.0);
                    self.seq = 0;
                    self.battery_pct = 100.0;
                    self.clock_origin = at;
                }
            }
            self.battery_pct = (self.battery_pct - self.battery_per_reading).max(0.0);
            self.seq += 1;
            if self.silent.iter().any(|&(s, e)| at >= s && at < e) {
                continue;
            }
            let drift = ((at - self.clock_origin) as f64 * self.drift_ppm / 1e6).round() as i64;
            let mut reading = json!({
                "ts": crate::scenario::rfc3339(at + drift),
                "total_l": self.register_l.floor() as i64,
                "flow_lph": flow.round() as i64,
                "battery_pct": self.battery_pct.round() as i64,
                "seq": self.seq,
            });
            if self.battery_pct < 20.0 {
                reading["status"] = json!(["LOW_BATTERY"]);
            }
            self.pending.push(reading);
            match self.upload {
                Upload::Stream => self.flush(at, &mut out),
                Upload::Batches { every_s } => {
                    if at >= self.next_upload {
                        while self.next_upload <= at {
                            self.next_upload += every_s;
                        }
                        self.flush(at, &mut out);
                    }
                }
            }
        }
        out
    }

    /// Sends what is pending (at the end of a run, the last upload).
    pub fn flush(&mut self, at: i64, out: &mut Vec<Message>) {
        if self.pending.is_empty() {
            return;
        }
        let payload = if self.pending.len() == 1 {
            self.pending.pop().expect("one reading").to_string()
        } else {
            json!({ "readings": std::mem::take(&mut self.pending) }).to_string()
        };
        let latency = 2 + self.rng.below(20) as i64;
        let topic = format!("{}/{}/reading", self.topic_prefix, self.id);
        let f = self.faults;
        let roll = self.rng.next_f64();
        if roll < f.lost {
            return;
        }
        let mut message = Message {
            at: at + latency,
            topic,
            payload,
        };
        if roll < f.lost + f.malformed {
            message.payload = garble(&message.payload, &mut self.rng);
        } else if roll < f.lost + f.malformed + f.delayed {
            message.at += 600 + self.rng.below(6 * 3600 - 600) as i64;
        } else if roll < f.lost + f.malformed + f.delayed + f.duplicated {
            let mut again = message.clone();
            again.at += 5 + self.rng.below(60) as i64;
            out.push(again);
        }
        out.push(message);
    }
}

/// A payload broken the ways real ones are: cut short, a number as text, no timestamp.
fn garble(payload: &str, rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => payload[..payload.len() / 2].to_string(),
        1 => payload
            .replacen("\"total_l\":", "\"total_l\":\"x", 1)
            .replacen(",\"flow", "\",\"flow", 1),
        _ => payload.replacen("\"ts\"", "\"time\"", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_793_462_400;

    fn readings(messages: &[Message]) -> Vec<Value> {
        let mut all = Vec::new();
        for m in messages {
            let value: Value = serde_json::from_str(&m.payload).unwrap();
            match value.get("readings") {
                Some(list) => all.extend(list.as_array().unwrap().iter().cloned()),
                None => all.push(value),
            }
        }
        all
    }

    #[test]
    fn registers_count_whole_litres_of_what_the_home_used() {
        let mut home = Home::new(1, 0, START, vec![]);
        let mut twin = Home::new(1, 0, START, vec![]);
        let mut meter = Meter::new(
            "M".into(),
            "meters",
            900,
            Upload::Stream,
            START,
            Faults::default(),
            Rng::new(2),
        );
        let first_read = meter.next_read();
        let messages = meter.read_until(&mut home, START + 10 * 86_400);
        let all = readings(&messages);
        assert_eq!(all.len(), messages.len());
        let first = all[0]["total_l"].as_i64().unwrap();
        let last = all.last().unwrap()["total_l"].as_i64().unwrap();
        let last_read = first_read + (all.len() as i64 - 1) * 900;
        let used = twin.litres(first_read, last_read);
        assert!(
            ((last - first) as f64 - used).abs() <= 1.0,
            "{last} - {first} vs {used}"
        );
        assert!(all
            .windows(2)
            .all(|w| w[0]["total_l"].as_i64() <= w[1]["total_l"].as_i64()));
    }

    #[test]
    fn batches_carry_every_reading_and_faults_happen_at_their_rates() {
        let mut home = Home::new(1, 1, START, vec![]);
        let every = Upload::Batches { every_s: 6 * 3600 };
        let mut meter = Meter::new(
            "M".into(),
            "meters",
            3600,
            every,
            START,
            Faults::default(),
            Rng::new(3),
        );
        let messages = meter.read_until(&mut home, START + 30 * 86_400);
        assert!(
            (115..=125).contains(&messages.len()),
            "{} uploads",
            messages.len()
        );
        assert!(readings(&messages).len() >= 715);

        let faults = Faults {
            lost: 0.1,
            duplicated: 0.1,
            delayed: 0.1,
            malformed: 0.1,
        };
        let mut meter = Meter::new(
            "M".into(),
            "meters",
            3600,
            Upload::Stream,
            START,
            faults,
            Rng::new(4),
        );
        let messages = meter.read_until(&mut Home::new(1, 2, START, vec![]), START + 100 * 86_400);
        let broken = messages
            .iter()
            .filter(|m| {
                serde_json::from_str::<Value>(&m.payload)
                    .ok()
                    .and_then(|v| v["total_l"].as_i64().zip(v["ts"].as_str().map(|_| ())))
                    .is_none()
            })
            .count();
        let n = 2400.0;
        assert!(
            (messages.len() as f64 - n * 1.0).abs() < n * 0.05,
            "{}",
            messages.len()
        );
        assert!(
            (broken as f64 - n * 0.1).abs() < n * 0.03,
            "{broken} garbled"
        );
        let late = messages.windows(2).filter(|w| w[1].at < w[0].at).count();
        assert!(late as f64 > n * 0.05, "{late} out of order");
    }
}
