//! Replaying a detector and the lifecycle over stored readings in memory:
//! which alerts would have opened, when, how serious, and which texts would
//! have been queued — with nothing stored and nothing sent.
//!
//! Time is the readings' own: each reading is judged as if it arrived when it
//! was taken, and the timer duties (check-in waits, escalation, reminders) run
//! at each reading's time. Nobody answers a text in a replay, so a check-in
//! always goes unanswered. This is what `stillwater replay` and `evaluate`
//! build on; any [`Detector`] can be replayed.

use super::lifecycle::{self, Change, Facts, Recipients, Settings, Target};
use crate::detect::{Detector, Kind, Policy, Severity};
use crate::domain::StoredReading;
use crate::notify::templates::Purpose;
use crate::store::engine::{ActiveAlert, HouseholdInfo};

/// An alert the replay opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedAlert {
    pub kind: Kind,
    /// The most serious grade it reached.
    pub severity: Severity,
    /// When its condition began (meter clock).
    pub since: i64,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
}

/// A text the replay would have queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedText {
    /// Index into [`Replayed::alerts`].
    pub alert: usize,
    /// `alert`, `check_in`, `resolved` or `reminder`.
    pub purpose: &'static str,
    pub to: Recipients,
    pub at: i64,
}

/// What a replay would have done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    pub alerts: Vec<ReplayedAlert>,
    pub texts: Vec<ReplayedText>,
    /// The background rate at each reading (mL/h), to judge the same readings
    /// again with other thresholds but the same `background_window`
    /// ([`Assume::backgrounds`]).
    pub backgrounds: Vec<i64>,
}

/// What a replay amounts to from a point on, to compare two settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Alerts opened, by kind and the most serious grade they reached.
    pub alerts: std::collections::BTreeMap<(Kind, Severity), usize>,
    /// Texts to the household's contacts (alerts, reminders, "resolved").
    pub contact_texts: usize,
    /// Check-in texts to the resident.
    pub resident_prompts: usize,
    pub maintenance_texts: usize,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        for (key, n) in &other.alerts {
            *self.alerts.entry(*key).or_default() += n;
        }
        self.contact_texts += other.contact_texts;
        self.resident_prompts += other.resident_prompts;
        self.maintenance_texts += other.maintenance_texts;
    }

    pub fn alert_count(&self) -> usize {
        self.alerts.values().sum()
    }

    /// The (kind, grade) pairs either tally counted, in order.
    pub fn kinds(&self, other: &Tally) -> std::collections::BTreeSet<(Kind, Severity)> {
        self.alerts
            .keys()
            .chain(other.alerts.keys())
            .copied()
            .collect()
    }
}

impl Replayed {
    /// The alerts opened and texts queued at or after `from` (meter clock);
    /// texts to contacts are counted per contact of `household`, maintenance
    /// texts once per round (the phones are configuration).
    /// How many phones each of [`Replayed::texts`] goes to: one for a
    /// resident's check-in and a maintenance round; the contacts of its steps
    /// for an alert; everyone texted so far for a reminder or "resolved".
    pub fn phones_per_text(&self, household: &HouseholdInfo) -> Vec<usize> {
        let mut texted: std::collections::HashMap<usize, usize> = Default::default();
        self.texts
            .iter()
            .map(|text| match text.to {
                Recipients::Contacts { above, up_to } => {
                    let n = household
                        .contacts
                        .iter()
                        .filter(|c| c.0 > above && c.0 <= up_to)
                        .count();
                    *texted.entry(text.alert).or_default() += n;
                    n
                }
                Recipients::AlreadyTexted => texted.get(&text.alert).copied().unwrap_or(0),
                Recipients::Resident | Recipients::Maintenance => 1,
            })
            .collect()
    }

    pub fn tally(&self, from: i64, household: &HouseholdInfo) -> Tally {
        let mut tally = Tally::default();
        for alert in self.alerts.iter().filter(|a| a.opened_at >= from) {
            *tally
                .alerts
                .entry((alert.kind, alert.severity))
                .or_default() += 1;
        }
        for (text, phones) in self.texts.iter().zip(self.phones_per_text(household)) {
            if text.at < from {
                continue;
            }
            match text.to {
                Recipients::Resident => tally.resident_prompts += 1,
                Recipients::Maintenance => tally.maintenance_texts += 1,
                _ => tally.contact_texts += phones,
            }
        }
        tally
    }
}

/// Replays `readings` (one meter's, sorted) through `detector` and the
/// lifecycle for `household`.
pub fn replay(
    readings: &[StoredReading],
    detector: &dyn Detector,
    policy: &Policy,
    settings: &Settings,
    household: &HouseholdInfo,
) -> Replayed {
    replay_with(
        readings,
        detector,
        policy,
        settings,
        household,
        &Assume::default(),
    )
}

/// What a replay assumes of the world besides the readings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Assume<'a> {
    /// The household's declared absences (`[start, end)`, meter clock): no
    /// welfare alert opens inside one, as in live operation; the routine
    /// does not learn from them.
    pub absences: &'a [(i64, i64)],
    /// Further periods the routine does not learn from: `no_usage` alerts
    /// closed as away or hospitalised.
    pub not_learned: &'a [(i64, i64)],
    /// A contact acknowledges an alert this long after it is first texted to
    /// contacts (no reminders, no further escalation); `None`: nobody does.
    pub acknowledged_after_s: Option<i64>,
    /// How residents answer check-ins; `None`: nobody does.
    pub residents: Option<Residents<'a>>,
    /// The background rate at each reading, from an earlier replay of the
    /// same readings with the same `background_window`: not computed again.
    pub backgrounds: Option<&'a [i64]>,
}

/// Residents who answer their check-ins, as `firmware-sim`'s phones do.
#[derive(Debug, Clone, Copy)]
pub struct Residents<'a> {
    /// This long after the check-in.
    pub answer_after_s: i64,
    /// This share of check-ins (the same ones every run).
    pub rate: f64,
    /// Never while one of these covers the check-in: the resident cannot
    /// (on the floor; from the ground truth).
    pub helpless: &'a [(i64, i64)],
}

/// [`replay`] with what it should assume of the world.
pub fn replay_with(
    readings: &[StoredReading],
    detector: &dyn Detector,
    policy: &Policy,
    settings: &Settings,
    household: &HouseholdInfo,
    assume: &Assume,
) -> Replayed {
    let mut state = Memory {
        acknowledged_after_s: assume.acknowledged_after_s,
        residents: assume.residents,
        ..Memory::default()
    };
    // Each point sees the history the live engine would load for it (the
    // detector's horizon and a day), so a year replays in linear time.
    let horizon = detector.history_s(policy) + 86_400;
    // The routine is learned from the first reading on, as the live engine does.
    let mut routine = crate::detect::Routine::default();
    let not_learned: Vec<(i64, i64)> = assume
        .absences
        .iter()
        .chain(assume.not_learned)
        .copied()
        .collect();
    let home = crate::detect::Home {
        zone: household
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai),
        absences: &not_learned,
    };
    let mut first = 0;
    for index in 0..readings.len() {
        let at = readings[index].ts;
        while readings[first].ts < at - horizon {
            first += 1;
        }
        let mut assessment = detector.assess_learning(
            &readings[first..],
            index - first,
            policy,
            &home,
            &mut routine,
            assume.backgrounds.map(|known| known[index]),
        );
        lifecycle::add_readings_lost(
            &mut assessment,
            &readings[first..],
            index - first,
            household,
            settings,
        );
        state.replayed.backgrounds.push(assessment.background_mlph);
        let now = assessment.at.secs();
        state.acknowledge_due(now);
        for alert in state.active.clone() {
            if alert.state == "open" {
                let changes = lifecycle::on_timer(&alert, household, settings, now);
                state.apply(changes, now);
            }
        }
        let opening = lifecycle::may_open(&state.active, &assessment);
        let count = |purpose, to| {
            if opening {
                state.texts_since(purpose, to, now - 86_400)
            } else {
                0
            }
        };
        let facts = Facts {
            household,
            absent: assume
                .absences
                .iter()
                .any(|&(start, end)| (start..end).contains(&now)),
            cover: lifecycle::cover(state.cover, state.covered_at, now),
            check_ins_today: count("check_in", None),
            maintenance_texts_today: count("alert", Some(Recipients::Maintenance)),
        };
        let changes = lifecycle::on_reading(&state.active, &assessment, &facts, settings, now);
        state.apply(changes, now);
    }
    state.replayed
}

/// The replay's stand-in for the store.
#[derive(Default)]
struct Memory<'a> {
    active: Vec<ActiveAlert>,
    cover: Option<Severity>,
    /// When the resident answered (what `cover` covers, for `lifecycle::COVER_S`).
    covered_at: i64,
    replayed: Replayed,
    acknowledged_after_s: Option<i64>,
    /// When a contact will have acknowledged an alert (by index).
    acknowledge_at: std::collections::HashMap<usize, i64>,
    residents: Option<Residents<'a>>,
    /// When the resident will have answered an alert's check-in (by index).
    answer_at: std::collections::HashMap<usize, i64>,
}

impl Memory<'_> {
    /// Alerts a resident has answered (closed as safe, covering the quiet
    /// stretch at that grade), and open alerts a contact has acknowledged, by `now`.
    fn acknowledge_due(&mut self, now: i64) {
        let answered: Vec<usize> = self
            .answer_at
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(&index, _)| index)
            .collect();
        for index in answered {
            self.answer_at.remove(&index);
            let Some(position) = self.active.iter().position(|a| a.id == index as i64) else {
                continue;
            };
            let alert = self.active.remove(position);
            self.replayed.alerts[index].resolved_at = Some(now);
            self.cover = Severity::parse(&alert.severity);
            self.covered_at = now;
        }
        for alert in &mut self.active {
            let due = self.acknowledge_at.get(&(alert.id as usize));
            if let Some(&at) = due.filter(|&&at| alert.state == "open" && at <= now) {
                alert.state = "acknowledged".into();
                alert.acknowledged_at = Some(at);
            }
        }
    }

    fn texts_since(&self, purpose: &str, to: Option<Recipients>, since: i64) -> u32 {
        self.replayed
            .texts
            .iter()
            .filter(|t| t.purpose == purpose && t.at >= since && to.is_none_or(|to| t.to == to))
            .count() as u32
    }

    /// The index into `replayed.alerts` of a change's alert (alert ids in a
    /// replay are those indexes).
    fn index(&self, target: Target, opened: &[usize]) -> usize {
        match target {
            Target::Stored(id) => id as usize,
            Target::Opened(n) => opened[n],
        }
    }

    fn active_mut(&mut self, index: usize) -> Option<&mut ActiveAlert> {
        self.active.iter_mut().find(|a| a.id == index as i64)
    }

    fn apply(&mut self, changes: Vec<Change>, now: i64) {
        let mut opened = Vec::new();
        for change in changes {
            match change {
                Change::Open {
                    kind,
                    severity,
                    since,
                    opened_at,
                    ..
                } => {
                    let index = self.replayed.alerts.len();
                    self.replayed.alerts.push(ReplayedAlert {
                        kind,
                        severity,
                        since,
                        opened_at,
                        resolved_at: None,
                    });
                    self.active.push(ActiveAlert {
                        id: index as i64,
                        meter_id: String::new(),
                        household_id: None,
                        kind: kind.as_str().into(),
                        severity: severity.as_str().into(),
                        state: "open".into(),
                        since,
                        opened_at,
                        notified_step: 0,
                        last_notified_at: None,
                        reminders: 0,
                        check_in_until: None,
                        clear_since: None,
                        acknowledged_at: None,
                    });
                    opened.push(index);
                }
                Change::Detected {
                    alert, severity, ..
                } => {
                    let index = self.index(alert, &opened);
                    let record = &mut self.replayed.alerts[index];
                    record.severity = record.severity.max(severity);
                    if let Some(active) = self.active_mut(index) {
                        active.severity = severity.as_str().into();
                    }
                }
                Change::Hold { alert, clear_since } => {
                    let index = self.index(alert, &opened);
                    if let Some(active) = self.active_mut(index) {
                        active.clear_since = clear_since;
                    }
                }
                Change::Resolve { alert, .. } => {
                    let index = self.index(alert, &opened);
                    self.replayed.alerts[index].resolved_at = Some(now);
                    self.active.retain(|a| a.id != index as i64);
                }
                Change::Text {
                    alert, purpose, to, ..
                } => {
                    let index = self.index(alert, &opened);
                    if let (Recipients::Contacts { .. }, Some(after)) =
                        (to, self.acknowledged_after_s)
                    {
                        self.acknowledge_at.entry(index).or_insert(now + after);
                    }
                    if let (Recipients::Resident, Some(residents)) = (to, self.residents) {
                        let able = !residents
                            .helpless
                            .iter()
                            .any(|&(s, e)| (s..e).contains(&now));
                        // The same check-ins are answered every run: a hash, not a draw.
                        let roll = (now as u64 ^ (index as u64) << 32)
                            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                            >> 11;
                        let willing = (roll as f64) < residents.rate * (1u64 << 53) as f64;
                        if able && willing {
                            self.answer_at.insert(index, now + residents.answer_after_s);
                        }
                    }
                    let purpose = match purpose {
                        Purpose::Alert => "alert",
                        Purpose::CheckIn => "check_in",
                        Purpose::Resolved => "resolved",
                    };
                    self.replayed.texts.push(ReplayedText {
                        alert: index,
                        purpose,
                        to,
                        at: now,
                    });
                }
                Change::Reminder { alert, .. } => {
                    let index = self.index(alert, &opened);
                    self.replayed.texts.push(ReplayedText {
                        alert: index,
                        purpose: "reminder",
                        to: Recipients::AlreadyTexted,
                        at: now,
                    });
                }
                Change::Notified {
                    alert,
                    step,
                    reminders,
                    check_in_until,
                } => {
                    let index = self.index(alert, &opened);
                    if let Some(active) = self.active_mut(index) {
                        active.notified_step = step;
                        active.reminders = reminders;
                        active.check_in_until = check_in_until;
                        active.last_notified_at = Some(now);
                    }
                }
                Change::EndCover => self.cover = None,
                Change::Event { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::detect::{Combined, Rules};

    const T0: i64 = 1_795_363_200;
    const HOUR: i64 = 3600;

    fn household(check_in: bool) -> HouseholdInfo {
        super::lifecycle::test_household(check_in)
    }

    /// Two days of ordinary use, then silence for 30 hours.
    fn readings() -> Vec<StoredReading> {
        let mut total = 1_000;
        (0..48 + 30)
            .map(|hour| {
                if hour < 48 && matches!(hour % 24, 7 | 12 | 19) {
                    total += 25;
                }
                StoredReading::plain(T0 + hour * HOUR, total)
            })
            .collect()
    }

    #[test]
    fn a_replay_finds_the_silence_and_the_texts_without_storing_or_sending() {
        let config = Config::default_config();
        let settings = Settings::new(&config.alerts, &config.rules);
        let policy = config.rules.global.clone();
        let replayed = replay(&readings(), &Rules, &policy, &settings, &household(false));
        let no_usage: Vec<_> = replayed
            .alerts
            .iter()
            .filter(|a| a.kind == Kind::NoUsage)
            .collect();
        assert_eq!(no_usage.len(), 1, "{replayed:#?}");
        assert_eq!(no_usage[0].severity, Severity::Urgent);
        assert_eq!(
            no_usage[0].since,
            T0 + 43 * HOUR,
            "quiet since the reading that showed the last use"
        );
        assert!(replayed
            .texts
            .iter()
            .any(|t| t.purpose == "alert" && t.to == Recipients::Contacts { above: 0, up_to: 2 }));
    }

    #[test]
    fn any_detector_replays_and_an_unanswered_check_in_reaches_the_contacts() {
        let config = Config::default_config();
        let settings = Settings::new(&config.alerts, &config.rules);
        let policy = config.rules.global.clone();
        let both = Combined::new(vec![Box::new(Rules), Box::new(Rules)]);
        let replayed = replay(&readings(), &both, &policy, &settings, &household(true));
        let check_in = replayed
            .texts
            .iter()
            .find(|t| t.purpose == "check_in")
            .expect("the resident is asked first");
        let contacts = replayed
            .texts
            .iter()
            .find(|t| matches!(t.to, Recipients::Contacts { .. }))
            .expect("nobody answers in a replay: the contacts are told");
        assert!(contacts.at >= check_in.at + settings.check_in_wait_s);
    }

    #[test]
    fn a_second_setting_on_the_first_ones_background_replays_the_same() {
        let config = Config::default_config();
        let settings = Settings::new(&config.alerts, &config.rules);
        let policy = config.rules.global.clone();
        let tried = policy.clone().with(&[
            crate::policy::Setting::parse("warning_window", "8h").unwrap(),
            crate::policy::Setting::parse("urgent_window", "20h").unwrap(),
        ]);
        let household = household(false);
        let first = replay(&readings(), &Rules, &policy, &settings, &household);
        assert_eq!(first.backgrounds.len(), readings().len());
        let plain = replay(&readings(), &Rules, &tried, &settings, &household);
        let assume = Assume {
            backgrounds: Some(&first.backgrounds),
            ..Assume::default()
        };
        let shared = replay_with(&readings(), &Rules, &tried, &settings, &household, &assume);
        assert_eq!(shared, plain);
        assert_ne!(plain.alerts, first.alerts, "the settings do differ");
    }

    #[test]
    fn residents_who_answer_spare_their_contacts_unless_they_are_on_the_floor() {
        let config = Config::default_config();
        let settings = Settings::new(&config.alerts, &config.rules);
        let policy = config.rules.global.clone();
        let run = |helpless: &[(i64, i64)], acknowledged_after_s| {
            let assume = Assume {
                absences: &[],
                not_learned: &[],
                acknowledged_after_s,
                residents: Some(Residents {
                    answer_after_s: 300,
                    rate: 1.0,
                    helpless,
                }),
                backgrounds: None,
            };
            replay_with(
                &readings(),
                &Rules,
                &policy,
                &settings,
                &household(true),
                &assume,
            )
        };
        let to_contacts = |replayed: &Replayed| {
            replayed
                .texts
                .iter()
                .filter(|t| {
                    matches!(
                        t.to,
                        Recipients::Contacts { .. } | Recipients::AlreadyTexted
                    )
                })
                .count()
        };
        // Fine: every check-in answered, the quiet stretch covered, contacts never texted.
        let fine = run(&[], None);
        assert!(fine.texts.iter().any(|t| t.purpose == "check_in"));
        assert_eq!(to_contacts(&fine), 0, "{fine:#?}");
        assert!(fine.alerts.iter().all(|a| a.resolved_at.is_some()));
        // On the floor from the last use: nobody answers, the contacts are told,
        // and reminded until someone acknowledges.
        let fallen = run(&[(T0 + 43 * HOUR, T0 + 100 * HOUR)], None);
        let reminded = to_contacts(&fallen);
        assert!(reminded >= 2, "{fallen:#?}");
        // Acknowledged: no reminders; the warning's text, then the urgent
        // one, which is news to every contact.
        let acknowledged = run(&[(T0 + 43 * HOUR, T0 + 100 * HOUR)], Some(900));
        let texted: Vec<_> = acknowledged
            .texts
            .iter()
            .filter(|t| matches!(t.to, Recipients::Contacts { .. }))
            .map(|t| t.to)
            .collect();
        assert_eq!(texted.len(), 2, "{acknowledged:#?}");
        assert!(
            matches!(texted[1], Recipients::Contacts { above: 0, .. }),
            "the urgent text reaches the contact who acknowledged too: {texted:?}"
        );
        assert!(reminded > 2, "{fallen:#?}");
    }
}
