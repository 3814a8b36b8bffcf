//! A simulated town: homes, their meters and incidents, producing messages in
//! the order they are published, and everything else a run needs to be
//! scored — the installation CSV, ground truth, declared absences and meter
//! replacements.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::household::Home;
use crate::meter::{Faults, Message, Meter, Upload};
use crate::rng::Rng;
use crate::scenario::{self, rfc3339, Incident, IncidentKind};

const DAY: i64 = 86_400;

/// What kind of meters a run has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Meters {
    /// Every meter reads every `interval_s` and sends `batch` readings a message.
    Uniform { interval_s: i64, batch: usize },
    /// A utility's mix: 15-minute, hourly and daily registers; a share
    /// uploading in batches four times a day; a share replaced mid-run.
    Mixed(Mix),
}

/// The make-up of a mixed town: shares of meters and residents that are
/// harder to judge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Of the meters reading at least hourly, the share uploading in batches every 6 h.
    pub batch: f64,
    /// The share of residents who sleep irregularly.
    pub irregular: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            batch: 0.4,
            irregular: 0.1,
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub homes: usize,
    /// The first reading's time (Unix seconds).
    pub start: i64,
    /// The end of the run (Unix seconds); `None` runs without end.
    pub end: Option<i64>,
    /// Meter ids are `{id_prefix}{index:05}`.
    pub id_prefix: String,
    /// Readings go to `{topic_prefix}/{meter_id}/reading`.
    pub topic_prefix: String,
    /// The chance each home has of each kind of incident over the run.
    pub incident_rate: f64,
    pub meters: Meters,
    pub faults: Faults,
    /// Households with a check-in phone.
    pub check_in_share: f64,
    /// Incidents written into the script besides the drawn ones: (home, incident).
    pub scripted: Vec<(usize, Incident)>,
}

impl Plan {
    pub fn meter_id(&self, index: usize) -> String {
        format!("{}{index:05}", self.id_prefix)
    }

    pub fn end(&self) -> Option<i64> {
        self.end
    }

    /// Whole days simulated (0 for a run without end).
    pub fn days(&self) -> i64 {
        self.end.map_or(0, |end| (end - self.start) / DAY)
    }
}

/// A household as registered: its meter, phones and category.
#[derive(Debug, Clone)]
pub struct Resident {
    pub meter: String,
    pub category: &'static str,
    pub interval_min: i64,
    pub contacts: Vec<String>,
    pub check_in_phone: Option<String>,
}

/// The simulation, advanced in steps.
pub struct Simulation {
    pub plan: Plan,
    homes: Vec<Home>,
    meters: Vec<Meter>,
    pub residents: Vec<Resident>,
    queue: BinaryHeap<Reverse<(i64, u64, usize)>>,
    messages: Vec<Option<Message>>,
    order: u64,
    done_until: i64,
}

impl Simulation {
    pub fn new(plan: Plan) -> Self {
        let mut homes = Vec::with_capacity(plan.homes);
        let mut meters = Vec::with_capacity(plan.homes);
        let mut residents = Vec::with_capacity(plan.homes);
        for index in 0..plan.homes {
            let key = index as u64;
            let mut incidents =
                scenario::plan(plan.seed, key, plan.start, plan.days(), plan.incident_rate);
            for (_, scripted) in plan.scripted.iter().filter(|(home, _)| *home == index) {
                incidents
                    .retain(|i| i.end + DAY <= scripted.start || i.start >= scripted.end + DAY);
                incidents.push(*scripted);
            }
            incidents.sort_by_key(|i| i.start);
            let mut rng = Rng::keyed(plan.seed, &[key, 5]);
            let (interval_s, upload, replaced) = match plan.meters {
                Meters::Uniform { interval_s, batch } => {
                    let upload = if batch <= 1 {
                        Upload::Stream
                    } else {
                        Upload::Batches {
                            every_s: interval_s * batch as i64,
                        }
                    };
                    (interval_s, upload, false)
                }
                Meters::Mixed(mix) => {
                    let interval_s = match rng.below(100) {
                        0..=19 => 900,
                        20..=89 => 3600,
                        _ => DAY,
                    };
                    let upload = if interval_s < DAY && rng.chance(mix.batch) {
                        Upload::Batches { every_s: 6 * 3600 }
                    } else {
                        Upload::Stream
                    };
                    (interval_s, upload, plan.days() > 20 && rng.chance(0.01))
                }
            };
            let id = plan.meter_id(index);
            let mut meter = Meter::new(
                id.clone(),
                &plan.topic_prefix,
                interval_s,
                upload,
                plan.start,
                plan.faults,
                Rng::keyed(plan.seed, &[key, 6]),
            );
            if replaced {
                let day = 10 + rng.below((plan.days() - 20) as u64) as i64;
                let at = plan.start + day * DAY + 10 * 3600;
                meter.replaced = Some((at, format!("{id}R")));
            }
            meter.silent = incidents
                .iter()
                .filter(|i| i.kind == IncidentKind::SilentMeter)
                .map(|i| (i.start, i.end))
                .collect();
            let category = match rng.below(100) {
                0..=69 => "elderly_alone",
                70..=84 => "severe_disability",
                _ => "special_hardship",
            };
            residents.push(Resident {
                meter: id,
                category,
                // What the gateway judges silence by: how often the meter is heard from.
                interval_min: match upload {
                    Upload::Batches { every_s } => every_s / 60,
                    Upload::Stream => interval_s / 60,
                },
                contacts: (0..1 + rng.below(2))
                    .map(|n| format!("1390{:07}", index * 4 + n as usize))
                    .collect(),
                check_in_phone: rng
                    .chance(plan.check_in_share)
                    .then(|| format!("1370{:07}", index)),
            });
            let irregular = match plan.meters {
                Meters::Mixed(mix) => mix.irregular,
                Meters::Uniform { .. } => Mix::default().irregular,
            };
            homes.push(Home::with_irregular(
                plan.seed, key, plan.start, incidents, irregular,
            ));
            meters.push(meter);
        }
        Self {
            done_until: plan.start - 1,
            plan,
            homes,
            meters,
            residents,
            queue: BinaryHeap::new(),
            messages: Vec::new(),
            order: 0,
        }
    }

    /// The messages published up to `until`, in publish order. Every reading
    /// taken by then has been generated, and each is published after it is
    /// taken, so nothing generated later comes before `until`.
    pub fn advance(&mut self, until: i64) -> Vec<Message> {
        let until = self.plan.end().map_or(until, |end| until.min(end));
        if until > self.done_until {
            for (home, meter) in self.homes.iter_mut().zip(&mut self.meters) {
                for message in meter.read_until(home, until) {
                    self.queue
                        .push(Reverse((message.at, self.order, self.messages.len())));
                    self.messages.push(Some(message));
                    self.order += 1;
                }
            }
            self.done_until = until;
        }
        self.pop_until(until)
    }

    /// Whether every message has been handed out.
    pub fn finished(&self) -> bool {
        self.plan.end().is_some_and(|end| self.done_until >= end) && self.queue.is_empty()
    }

    /// The end of a run: batches still pending go out, and the rest of the queue.
    pub fn finish(&mut self) -> Vec<Message> {
        let end = self.plan.end().unwrap_or(self.done_until);
        let mut out = self.advance(end);
        for meter in &mut self.meters {
            let mut last = Vec::new();
            meter.flush(end, &mut last);
            for message in last {
                self.queue
                    .push(Reverse((message.at, self.order, self.messages.len())));
                self.messages.push(Some(message));
                self.order += 1;
            }
        }
        out.extend(self.pop_until(i64::MAX));
        out
    }

    fn pop_until(&mut self, until: i64) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(Reverse((at, _, index))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            out.extend(self.messages[index].take());
        }
        if self.queue.is_empty() {
            self.messages.clear();
        }
        out
    }

    /// Ground truth: every incident, and the overnight stays with family
    /// (normal life, kind `stay`), as JSON lines.
    pub fn truth(&self) -> Vec<serde_json::Value> {
        let mut lines = Vec::new();
        for (index, home) in self.homes.iter().enumerate() {
            let meter = self.plan.meter_id(index);
            lines.extend(home.incidents().iter().map(|i| i.truth(&meter)));
            let done = self.done_until;
            lines.extend(home.stays.iter().filter(|s| s.start <= done).map(|stay| {
                serde_json::json!({
                    "meter": meter, "kind": "stay",
                    "start": rfc3339(stay.start), "end": rfc3339(stay.end),
                })
            }));
        }
        lines
    }

    /// Declared absences (hospital stays): `(meter, start, end)`.
    pub fn declared_absences(&self) -> Vec<(String, i64, i64)> {
        let mut out = Vec::new();
        for (index, home) in self.homes.iter().enumerate() {
            for incident in home.incidents() {
                if incident.kind == (IncidentKind::Trip { declared: true }) {
                    out.push((self.plan.meter_id(index), incident.start, incident.end));
                }
            }
        }
        out
    }

    /// Meters replaced mid-run: `(time, old id, new id)`, by time.
    pub fn replacements(&self) -> Vec<(i64, String, String)> {
        let mut out: Vec<_> = self
            .meters
            .iter()
            .enumerate()
            .filter_map(|(index, m)| {
                m.replaced
                    .as_ref()
                    .map(|(at, new)| (*at, self.plan.meter_id(index), new.clone()))
            })
            .collect();
        out.sort();
        out
    }

    /// Whether the resident of the home with this check-in phone can answer at `at`.
    pub fn resident_can_answer(&self, phone: &str, at: i64) -> Option<bool> {
        self.residents
            .iter()
            .any(|r| r.check_in_phone.as_deref() == Some(phone))
            .then(|| {
                !self
                    .helpless_stretches(phone)
                    .iter()
                    .any(|&(s, e)| at >= s && at < e)
            })
    }

    /// When the resident with this check-in phone cannot answer.
    pub fn helpless_stretches(&self, phone: &str) -> Vec<(i64, i64)> {
        self.residents
            .iter()
            .zip(&self.homes)
            .filter(|(r, _)| r.check_in_phone.as_deref() == Some(phone))
            .flat_map(|(_, home)| home.incidents().iter().filter(|i| i.kind.helpless()))
            .map(|i| (i.start, i.end))
            .collect()
    }

    /// The installation CSV for the simulated households.
    pub fn installation_csv(&self) -> String {
        let mut csv = String::from(
            "meter_id,resident_name,address,category,timezone,reporting_interval_min,contact1_name,contact1_phone,contact2_name,contact2_phone,notes,check_in_phone\n",
        );
        for (index, r) in self.residents.iter().enumerate() {
            let contact = |n: usize| {
                r.contacts.get(n).map_or(",".to_string(), |phone| {
                    format!("联系人{}-{},{phone}", index, n + 1)
                })
            };
            csv.push_str(&format!(
                "{},居民{index:05},模拟社区{}栋{}号,{},Asia/Shanghai,{},{},{},simulated,{}\n",
                r.meter,
                index / 100 + 1,
                index % 100 + 1,
                r.category,
                r.interval_min,
                contact(0),
                contact(1),
                r.check_in_phone.as_deref().unwrap_or("")
            ));
        }
        csv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64) -> Plan {
        Plan {
            seed,
            homes: 30,
            start: 1_793_462_400,
            end: Some(1_793_462_400 + 30 * DAY),
            id_prefix: "SIM-".into(),
            topic_prefix: "meters".into(),
            incident_rate: 0.2,
            meters: Meters::Mixed(Mix::default()),
            faults: Faults::TYPICAL,
            check_in_share: 0.5,
            scripted: Vec::new(),
        }
    }

    fn run(seed: u64) -> Vec<Message> {
        let mut sim = Simulation::new(plan(seed));
        let mut all = Vec::new();
        let mut at = sim.plan.start;
        while !sim.finished() {
            at += 5 * 3600;
            let end = sim.plan.end().unwrap();
            all.extend(if at >= end {
                sim.finish()
            } else {
                sim.advance(at)
            });
        }
        all
    }

    #[test]
    fn a_seed_gives_the_same_messages_in_publish_order() {
        let (a, b) = (run(11), run(11));
        assert_eq!(a, b);
        assert_ne!(a, run(12));
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(a.len() > 30 * 24 * 10, "{} messages", a.len());
    }

    #[test]
    fn an_incapacitated_residents_meter_shows_no_use_and_they_do_not_answer() {
        let mut p = plan(3);
        p.incident_rate = 0.0;
        p.meters = Meters::Uniform {
            interval_s: 3600,
            batch: 1,
        };
        p.faults = Faults::default();
        p.check_in_share = 1.0;
        let fall = p.start + 10 * DAY + 3 * 3600;
        p.scripted = vec![(
            4,
            Incident {
                kind: IncidentKind::Incapacitation,
                start: fall,
                end: fall + 3 * DAY,
            },
        )];
        let mut sim = Simulation::new(p);
        let phone = sim.residents[4].check_in_phone.clone().unwrap();
        assert_eq!(sim.resident_can_answer(&phone, fall - 60), Some(true));
        assert_eq!(sim.resident_can_answer(&phone, fall + 60), Some(false));
        assert_eq!(sim.resident_can_answer("13000000000", fall), None);
        let mut totals = Vec::new();
        for message in sim.advance(fall + 2 * DAY) {
            if message.topic == "meters/SIM-00004/reading" {
                let value: serde_json::Value = serde_json::from_str(&message.payload).unwrap();
                let ts =
                    chrono::DateTime::parse_from_rfc3339(value["ts"].as_str().unwrap()).unwrap();
                totals.push((ts.timestamp(), value["total_l"].as_i64().unwrap()));
            }
        }
        let drip = sim.homes[4].profile.drip_lph.unwrap_or(0.0);
        let after: Vec<_> = totals.iter().filter(|(ts, _)| *ts > fall + 3600).collect();
        let used = after.last().unwrap().1 - after.first().unwrap().1;
        assert!(used as f64 <= drip * 48.0 + 1.0, "{used} L after the fall");
        let truth = sim.truth();
        assert!(truth
            .iter()
            .any(|t| t["meter"] == "SIM-00004" && t["kind"] == "incapacitation"));
    }

    #[test]
    fn the_installation_csv_has_a_row_per_home() {
        let sim = Simulation::new(plan(1));
        let csv = sim.installation_csv();
        assert_eq!(csv.lines().count(), 31);
        assert!(
            csv.lines().skip(1).all(|l| l.split(',').count() == 12),
            "{csv}"
        );
    }
}
