//! The lifecycle against a real SQLite file: readings in, alerts and queued
//! texts out; the timer driven with explicit wall-clock times.
//!
//! Longer than our usual files on purpose: the month-long scenarios (a flapping
//! flag, a leaking home, residents who answer) share one harness, `World`.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;

use super::*;
use crate::actions::{self, replies};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::domain::{Actor, Channel, Disposition, Role};
use crate::domain::{Litres, Timestamp};
use crate::domain::{MeterId, PhoneNumber, Reading, StatusFlag, StatusFlags};
use crate::metrics::Metrics;
use crate::pipeline::Decoded;
use crate::pipeline::Message;
use crate::registry::parse_csv;
use crate::store::outbox::Notification;
use crate::store::prelude::*;
use crate::store::writer::Writer;

const HOUR: i64 = 3600;

/// Someone acting through the command line.
fn who(name: &str) -> Actor {
    Actor::new(name, Role::Admin, Channel::Cli)
}

/// Asks the resident of ZS-0001 first.
fn check_in(world: &World) {
    let phone = PhoneNumber::parse("13600136000").unwrap();
    actions::meters::set_check_in_phone(&world.store, &who("test"), "ZS-0001", Some(&phone), 0)
        .unwrap();
}

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    writer: Writer,
    engine: Engine,
    /// The engine's wall clock; `live` moves it with the readings.
    clock: Arc<ManualClock>,
    /// Event time of the first reading: three days ago, so the timer's wall clock is later.
    start: i64,
    config: Config,
}

const HOUSEHOLD: &str = "meter_id,resident_name,address,category,timezone,reporting_interval_min,contact1_name,contact1_phone,contact2_name,contact2_phone,contact3_name,contact3_phone,notes
ZS-0001,张桂芳,民生路12号3楼,elderly_alone,Asia/Shanghai,60,李敏,13800138000,张伟,13900139000,,,
";

fn world(adjust: impl FnOnce(&mut Config)) -> World {
    world_of(HOUSEHOLD, adjust)
}

/// A world with the households of `csv`.
fn world_of(csv: &str, adjust: impl FnOnce(&mut Config)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("alerts.db")).unwrap();
    let mut config = Config::default_config();
    config.alerts.maintenance = vec![PhoneNumber::parse("13700137000").unwrap()];
    adjust(&mut config);
    let households = parse_csv(csv, &config.registry).unwrap();
    let now = chrono::Utc::now().timestamp();
    actions::meters::register(&store, &who("test"), &households, now).unwrap();
    let writer = Writer::open(&store, 100, Arc::new(Metrics::default())).unwrap();
    let clock = ManualClock::at(Timestamp::from_secs(now));
    let engine = Engine::new(
        &store,
        config.rules.clone(),
        config.alerts.clone(),
        &config.sms,
        Arc::new(Notify::new()),
        clock.clone(),
    )
    .unwrap();
    World {
        _dir: dir,
        store,
        writer,
        engine,
        clock,
        start: (now - 3 * 86_400) / HOUR * HOUR,
        config,
    }
}

impl World {
    /// A new engine over the same database, as after a restart of the gateway.
    fn restart(&mut self) {
        self.engine = Engine::new(
            &self.store,
            self.config.rules.clone(),
            self.config.alerts.clone(),
            &self.config.sms,
            Arc::new(Notify::new()),
            self.clock.clone(),
        )
        .unwrap();
    }

    /// ZS-0001's stored readings, and a replay of them with the default
    /// detector and settings.
    fn replayed(&self) -> (Vec<crate::domain::StoredReading>, replay::Replayed) {
        let readings = self.store.readings("ZS-0001", 0, i64::MAX / 2).unwrap();
        let config = Config::default_config();
        let household = self.store.household("ZS-0001").unwrap().unwrap();
        let replayed = replay::replay(
            &readings,
            &crate::detect::Learned,
            &config.rules.global,
            &lifecycle::Settings::new(&config.alerts, &config.rules),
            &household,
        );
        (readings, replayed)
    }

    /// A reply text from `phone`, handled now.
    fn reply(&self, phone: &PhoneNumber, text: &str) -> replies::ReplyOutcome {
        // On the engine's clock: a reply comes when the world says it is.
        let now = self.clock.now();
        replies::handle_reply(&self.store, phone, text, Language::Zh, now).unwrap()
    }

    /// Hourly readings from hour `from`, using `litres[i]` in hour i; evaluates them.
    fn hours(&mut self, from: i64, litres: &[i64]) {
        self.hours_with(from, litres, StatusFlags::default());
    }

    /// Hour by hour from hour `from`, as a live gateway sees it: each reading
    /// arrives a minute after its hour, is evaluated, and the timer runs then.
    /// `hour(i)` gives the litres and flags of hour i; `on_hour` runs after each.
    fn live(
        &mut self,
        from: i64,
        hours: i64,
        mut hour: impl FnMut(i64) -> (i64, StatusFlags),
        mut on_hour: impl FnMut(&mut World, i64),
    ) {
        for h in from..from + hours {
            let (litres, status) = hour(h);
            let wall = self.start + h * HOUR + 60;
            self.clock.set(Timestamp::from_secs(wall));
            self.hours_with(h, &[litres], status);
            self.engine.tick(wall).unwrap();
            on_hour(self, h);
        }
    }

    fn hours_with(&mut self, from: i64, litres: &[i64], status: StatusFlags) {
        let mut total = self
            .store
            .meter_state("ZS-0001")
            .unwrap()
            .and_then(|s| s.last_total_l)
            .unwrap_or(1_000);
        let registers: Vec<(i64, i64)> = litres
            .iter()
            .enumerate()
            .map(|(offset, used)| {
                total += used;
                (from + offset as i64, total)
            })
            .collect();
        self.registers(&registers, status);
    }

    /// Readings of (hour, register) in the order given, each committed as
    /// its own message; then evaluates them.
    fn registers(&mut self, registers: &[(i64, i64)], status: StatusFlags) {
        for &(hour, total) in registers {
            let reading = Reading {
                meter: MeterId::parse("ZS-0001").unwrap(),
                ts: Timestamp::from_secs(self.start + hour * HOUR),
                total: Litres::new(total),
                flow_lph: None,
                battery_pct: None,
                status,
                seq: None,
            };
            let message = Message {
                topic: String::new(),
                received_at: self.clock.now(),
                received: Instant::now(),
                decoded: Decoded {
                    meter: None,
                    readings: vec![reading],
                    rejections: Vec::new(),
                },
                payload_head: Vec::new(),
                ack: None,
            };
            self.writer.write_batch(&[message]).unwrap();
        }
        self.engine.evaluate_meter("ZS-0001").unwrap();
    }

    fn alerts(&self) -> Vec<crate::store::alerts::AlertRecord> {
        self.store.list_alerts(true, 100).unwrap()
    }

    /// The alerts of one kind.
    fn alerts_of(&self, kind: &str) -> Vec<crate::store::alerts::AlertRecord> {
        self.alerts()
            .into_iter()
            .filter(|a| a.kind == kind)
            .collect()
    }

    fn texts(&self) -> Vec<Notification> {
        self.store.notifications(None).unwrap()
    }

    /// Marks every queued text as sent, as the notifier would.
    fn deliver_all(&self) {
        for text in self.texts().into_iter().filter(|t| t.state == "pending") {
            self.store
                .record_attempt(
                    text.id,
                    &crate::store::outbox::Attempt::through(
                        "log",
                        crate::store::outbox::AttemptEnd::Sent {
                            provider: "log".into(),
                            reference: None,
                            segments: 1,
                        },
                    ),
                    0,
                )
                .unwrap();
        }
    }

    fn texts_to(&self, phone: &str) -> Vec<Notification> {
        self.texts()
            .into_iter()
            .filter(|n| n.phone == phone)
            .collect()
    }
}

const SOCIAL_WORKER: &str = "+8613800138000";
const SON: &str = "+8613900139000";
const MAINTENANCE: &str = "+8613700137000";

#[test]
fn a_day_without_water_opens_one_urgent_alert_and_texts_every_step() {
    let mut world = world(|_| {});
    world.hours(0, &[6; 1]);
    world.hours(1, &[0; 24]);
    let alerts = world.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        (alerts[0].kind.as_str(), alerts[0].severity.as_str()),
        ("no_usage", "urgent")
    );
    let texts = world.texts();
    assert_eq!(
        texts.iter().map(|t| t.phone.as_str()).collect::<Vec<_>>(),
        [SOCIAL_WORKER, SON]
    );
    assert!(
        texts[0]
            .text
            .starts_with("【水表关爱】张桂芳（民生路12号3楼）家自 "),
        "{}",
        texts[0].text
    );
    assert!(
        texts[0].text.ends_with("回复 1 确认。"),
        "{}",
        texts[0].text
    );
    // More silent hours update the same alert; nothing is texted twice.
    world.hours(25, &[0; 3]);
    assert_eq!(world.alerts().len(), 1);
    assert_eq!(world.texts().len(), 2);
}

#[test]
fn a_warning_is_recorded_but_texts_nobody_by_default() {
    let mut world = world(|_| {});
    world.hours(0, &[6; 1]);
    world.hours(1, &[0; 13]);
    let alerts = world.alerts();
    assert_eq!(
        (
            alerts.len(),
            alerts[0].severity.as_str(),
            alerts[0].state.as_str()
        ),
        (1, "warning", "open")
    );
    assert!(world.texts().is_empty());
    // Twelve more silent hours: the same alert becomes urgent and texts every step.
    world.hours(14, &[0; 12]);
    let alerts = world.alerts();
    assert_eq!((alerts.len(), alerts[0].severity.as_str()), (1, "urgent"));
    assert_eq!(world.texts().len(), 2);
}

#[test]
fn unacknowledged_alerts_escalate_step_by_step_then_remind() {
    let mut world = world(|config| config.alerts.notify_warning = true);
    world.hours(0, &[6; 1]);
    world.hours(1, &[0; 13]);
    assert_eq!(world.texts_to(SOCIAL_WORKER).len(), 1);
    assert!(
        world.texts_to(SON).is_empty(),
        "a warning texts step 1 only"
    );
    let now = chrono::Utc::now().timestamp();
    world.engine.tick(now + 29 * 60).unwrap();
    assert!(
        world.texts_to(SON).is_empty(),
        "not yet: escalate after 30 min"
    );
    world.engine.tick(now + 31 * 60).unwrap();
    assert_eq!(
        world.texts_to(SON).len(),
        1,
        "step 2 after 30 min without acknowledgement"
    );
    world.engine.tick(now + 31 * 60 + 2 * HOUR + 1).unwrap();
    let reminders: Vec<_> = world
        .texts()
        .into_iter()
        .filter(|t| t.purpose == "reminder")
        .collect();
    assert_eq!(reminders.len(), 2, "everyone texted so far is reminded");
    assert!(
        reminders[0].text.starts_with("（第1次提醒）"),
        "{}",
        reminders[0].text
    );
}

#[test]
fn a_reply_acknowledges_stops_escalation_and_stale_codes_say_so() {
    let mut world = world(|config| config.alerts.notify_warning = true);
    world.hours(0, &[6; 1]);
    world.hours(1, &[0; 13]);
    let phone = PhoneNumber::parse(SOCIAL_WORKER).unwrap();
    let unknown = world.reply(&phone, "7");
    assert_eq!(unknown.result, "unknown_code");
    assert_eq!(world.reply(&phone, "好的").result, "not_a_code");
    let son = PhoneNumber::parse(SON).unwrap();
    assert_eq!(
        world.reply(&son, "1").result,
        "unknown_code",
        "the son was not texted yet"
    );
    let outcome = world.reply(&phone, " 1 ");
    assert_eq!(outcome.result, "acknowledged");
    let alert = &world.alerts()[0];
    assert_eq!(alert.state, "acknowledged");
    assert_eq!(
        alert
            .acknowledged
            .as_ref()
            .map(|a| (a.1.as_str(), a.2.as_str())),
        Some(("李敏", "sms"))
    );
    let now = chrono::Utc::now().timestamp();
    world.engine.tick(now + 5 * HOUR).unwrap();
    assert_eq!(
        world.texts_to(SOCIAL_WORKER).len(),
        1,
        "an acknowledged alert neither reminds…"
    );
    assert!(world.texts_to(SON).is_empty(), "…nor escalates");
    let stale = world.reply(&phone, "1");
    assert_eq!(stale.result, "stale");
    assert!(
        !stale.reply.chars().any(|c| c.is_ascii_alphabetic()),
        "a Chinese reply is wholly Chinese: {}",
        stale.reply
    );
}

#[test]
fn water_use_resuming_resolves_and_tells_everyone_texted() {
    let mut world = world(|_| {});
    world.hours(0, &[6; 1]);
    world.hours(1, &[0; 24]);
    world.deliver_all();
    world.hours(25, &[40]);
    let alert = &world.alerts()[0];
    assert_eq!(alert.state, "resolved");
    assert_eq!(
        alert.resolved.as_ref().map(|r| r.2.as_str()),
        Some("detector")
    );
    let resolved: Vec<_> = world
        .texts()
        .into_iter()
        .filter(|t| t.purpose == "resolved")
        .collect();
    assert_eq!(resolved.len(), 2);
    assert!(
        resolved[0].text.contains("已恢复用水"),
        "{}",
        resolved[0].text
    );
    actions::alerts::close(
        &world.store,
        &who("李敏"),
        alert.id,
        Disposition::Safe,
        "visited; was at the market",
        0,
    )
    .unwrap();
    let closed = &world.alerts()[0];
    assert_eq!(
        (closed.state.as_str(), closed.disposition.as_deref()),
        ("closed", Some("safe"))
    );
    let history: Vec<String> = world
        .store
        .alert_events(alert.id)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        history,
        ["opened", "urgent", "notified", "resolved", "closed"]
    );
}

#[test]
fn a_declared_absence_silences_welfare_alerts_only() {
    let mut world = world(|_| {});
    let absent_from = world.start;
    actions::absences::declare(
        &world.store,
        &who("operator"),
        &["ZS-0001".to_string()],
        "hospital",
        absent_from,
        absent_from + 40 * HOUR,
        0,
    )
    .unwrap();
    world.hours(0, &[6; 1]);
    world.hours(1, &[0; 24]);
    assert!(world.alerts().is_empty(), "silenced during the absence");
    let mut faulty = StatusFlags::default();
    faulty.insert(StatusFlag::Tamper);
    world.hours_with(25, &[0], faulty);
    let alerts = world.alerts();
    assert_eq!(
        alerts.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(),
        ["device_fault"]
    );
    assert_eq!(
        world.texts_to(MAINTENANCE).len(),
        1,
        "device faults go to maintenance"
    );
    assert!(world.texts_to(SOCIAL_WORKER).is_empty());
    // After the absence ends, silence opens the alert again.
    world.hours(26, &[0; 15]);
    assert!(world.alerts().iter().any(|a| a.kind == "no_usage"));
}

/// A household whose resident is asked first, after a silent day.
fn silent_day_with_check_in() -> World {
    let mut world = world(|_| {});
    check_in(&world);
    world.hours(0, &[6; 1]);
    world.hours(1, &[0; 24]);
    world
}

#[test]
fn a_check_in_asks_the_resident_first_and_a_reply_closes_as_safe() {
    let world = silent_day_with_check_in();
    let texts = world.texts();
    assert_eq!(texts.len(), 1);
    assert_eq!(
        (texts[0].phone.as_str(), texts[0].purpose.as_str()),
        ("+8613600136000", "check_in")
    );
    let resident = PhoneNumber::parse("13600136000").unwrap();
    let outcome = world.reply(&resident, "1");
    assert_eq!(outcome.result, "safe");
    let alert = &world.alerts()[0];
    assert_eq!(
        (alert.state.as_str(), alert.disposition.as_deref()),
        ("closed", Some("safe"))
    );
}

#[test]
fn an_unanswered_check_in_texts_the_contacts() {
    let mut world = silent_day_with_check_in();
    let now = chrono::Utc::now().timestamp();
    world.engine.tick(now + 29 * 60).unwrap();
    assert_eq!(world.texts().len(), 1, "still waiting for the resident");
    world.engine.tick(now + 31 * 60).unwrap();
    assert_eq!(world.texts_to(SOCIAL_WORKER).len(), 1);
    assert_eq!(world.texts_to(SON).len(), 1, "urgent: every step");
}

#[test]
fn a_silent_meter_goes_offline_and_back() {
    let mut world = world(|_| {});
    world.hours(0, &[6; 3]);
    let now = chrono::Utc::now().timestamp();
    world.engine.tick(now + 2 * HOUR).unwrap();
    assert!(world.alerts().is_empty(), "3 h at least");
    world.engine.tick(now + 3 * HOUR + 60).unwrap();
    let alerts = world.alerts();
    assert_eq!(
        alerts.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(),
        ["meter_offline"]
    );
    assert_eq!(world.texts_to(MAINTENANCE).len(), 1);
    world.engine.tick(now + 4 * HOUR).unwrap();
    assert_eq!(world.alerts().len(), 1, "one open alert per meter and kind");
    world.hours(3, &[5]);
    assert_eq!(world.alerts()[0].state, "resolved");
}

#[test]
fn a_meter_that_uploads_every_six_hours_is_offline_after_eighteen() {
    let mut world = world_of(&HOUSEHOLD.replace(",60,", ",360,"), |_| {});
    world.hours(0, &[6; 3]);
    let now = chrono::Utc::now().timestamp();
    world.engine.tick(now + 17 * HOUR).unwrap();
    assert!(world.alerts().is_empty(), "three uploads may be missed");
    world.engine.tick(now + 18 * HOUR + 60).unwrap();
    assert_eq!(world.alerts()[0].kind, "meter_offline");
}

#[test]
fn evaluation_resumes_where_it_stopped() {
    let mut world = world(|_| {});
    world.hours(0, &[6; 1]);
    world.hours(1, &[0; 24]);
    // A new engine (a restart) evaluates nothing twice.
    world.engine.evaluate_meter("ZS-0001").unwrap();
    assert_eq!(world.alerts().len(), 1);
    assert_eq!(world.texts().len(), 2);
}

#[test]
fn an_operators_threshold_change_applies_without_a_restart() {
    let mut world = world(|config| config.alerts.notify_warning = true);
    world.hours(0, &[6; 1]);
    world.hours(1, &[0; 7]);
    assert!(
        world.alerts().is_empty(),
        "7 silent hours are fine by default"
    );
    let config = crate::config::Config::default_config();
    actions::rules::set(
        &world.store,
        &who("operator"),
        &config.rules,
        &crate::store::rules::RuleScope::Meter("ZS-0001".into()),
        &[crate::policy::Setting::parse("warning_window", "6h").unwrap()],
        0,
    )
    .unwrap();
    world.hours(8, &[0]);
    let alerts = world.alerts();
    assert_eq!(
        (alerts.len(), alerts[0].severity.as_str()),
        (1, "warning"),
        "the running engine uses the new window"
    );
}

#[test]
fn replacing_a_meter_resolves_its_alerts() {
    let mut world = world(|_| {});
    world.hours(0, &[6; 1]);
    world.hours(1, &[0; 24]);
    actions::meters::replace(&world.store, &who("installer"), "ZS-0001", "ZS-0001B", 0).unwrap();
    let alert = &world.alerts()[0];
    assert_eq!(alert.state, "resolved");
    let last = world.store.alert_events(alert.id).unwrap().pop().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.detail.as_str()),
        ("installer", "meter replaced by ZS-0001B")
    );
}

#[test]
fn a_running_tap_texts_step_one_first() {
    let mut world = world(|_| {});
    world.hours(0, &[0, 120, 120]);
    let alerts = world.alerts();
    assert_eq!(
        (alerts[0].kind.as_str(), alerts[0].severity.as_str()),
        ("continuous_flow", "urgent")
    );
    assert_eq!(world.texts_to(SOCIAL_WORKER).len(), 1);
    assert!(
        world.texts_to(SON).is_empty(),
        "step 2 only if step 1 does not acknowledge"
    );
}

#[test]
fn the_resident_is_not_told_that_their_own_alert_resolved() {
    let mut world = silent_day_with_check_in();
    let now = chrono::Utc::now().timestamp();
    world.engine.tick(now + 31 * 60).unwrap();
    world.deliver_all();
    world.hours(25, &[40]);
    let resolved: Vec<String> = world
        .texts()
        .into_iter()
        .filter(|t| t.purpose == "resolved")
        .map(|t| t.phone)
        .collect();
    assert_eq!(resolved, [SOCIAL_WORKER, SON]);
}

#[test]
fn an_alert_that_opens_and_clears_within_one_batch_texts_nobody() {
    let mut world = world(|_| {});
    let mut day = vec![6];
    day.extend([0; 24]);
    day.push(40);
    world.hours(0, &day); // the whole day arrives, and is evaluated, at once
    let alerts = world.alerts();
    assert_eq!((alerts.len(), alerts[0].state.as_str()), (1, "resolved"));
    assert!(
        world.texts().iter().all(|t| t.state == "cancelled"),
        "{:?}",
        world.texts()
    );
}

/// Texts to `phone` per day of the scenario (by the hour they were queued).
fn per_day(world: &World, phone: &str, purpose: &str) -> Vec<usize> {
    let mut days = vec![0; 40];
    for text in world.texts_to(phone) {
        if text.purpose == purpose {
            let queued = world.store.notification_queued_at(text.id).unwrap();
            days[((queued - world.start) / 86_400) as usize] += 1;
        }
    }
    days
}

/// Three uses a day (07:00, 12:00, 19:00 in event hours), as a resident who is well.
fn daily_life(hour: i64) -> i64 {
    match hour % 24 {
        7 => 25,
        12 => 15,
        19 => 30,
        _ => 0,
    }
}

#[test]
fn a_battery_flag_that_comes_and_goes_keeps_one_alert_and_few_texts() {
    let mut world = world(|_| {});
    let mut low = StatusFlags::default();
    low.insert(StatusFlag::LowBattery);
    // A month: the flag shows for 3 hours, then not for 5, over and over.
    world.live(
        0,
        30 * 24,
        |h| {
            let flags = if h % 8 < 3 {
                low
            } else {
                StatusFlags::default()
            };
            (daily_life(h), flags)
        },
        |_, _| {},
    );
    let faults: Vec<_> = world
        .alerts()
        .into_iter()
        .filter(|a| a.kind == "device_fault")
        .collect();
    assert_eq!(
        faults.len(),
        1,
        "re-detection within the hold updates the same alert"
    );
    let texts = per_day(&world, MAINTENANCE, "alert");
    assert_eq!(texts.iter().sum::<usize>(), 1, "{texts:?}");
    let reminders = per_day(&world, MAINTENANCE, "reminder");
    let cap = crate::config::Config::default_config()
        .alerts
        .maintenance_texts_per_day as usize;
    assert!(
        texts.iter().zip(&reminders).all(|(t, r)| t + r <= cap),
        "at most a few maintenance texts a day: {texts:?} {reminders:?}"
    );
}

#[test]
fn a_dripping_toilet_that_sometimes_seals_keeps_one_leak_alert() {
    let mut world = world(|_| {});
    // 2–3 L every hour, a dry hour every 30 hours (the flapper seals for a while).
    world.live(
        0,
        30 * 24,
        |h| {
            let drip = if h % 30 == 29 { 0 } else { 2 + h % 2 };
            (drip + daily_life(h), StatusFlags::default())
        },
        |_, _| {},
    );
    let leaks = world
        .alerts()
        .into_iter()
        .filter(|a| a.kind == "leak")
        .count();
    assert_eq!(leaks, 1);
}

#[test]
fn a_resident_who_answers_is_asked_once_per_quiet_stretch() {
    // The fixed 12 h warning's check-in (a learned routine would soon find
    // these nights normal and stop asking).
    let mut world =
        world(|config| config.rules.global.detector = crate::policy::DetectorChoice::Rules);
    check_in(&world);
    let resident = PhoneNumber::parse("13600136000").unwrap();
    // A resident who uses water at 19:00 and then not until 09:00 (14 quiet
    // hours, a warning each night) and answers every prompt.
    let evening_and_morning = |h: i64| match h % 24 {
        9 => 20,
        19 => 30,
        _ => 0,
    };
    world.live(
        0,
        20 * 24,
        |h| (evening_and_morning(h), StatusFlags::default()),
        |world, _| {
            let pending = world
                .texts_to("+8613600136000")
                .into_iter()
                .filter(|t| t.purpose == "check_in" && t.state == "pending")
                .count();
            if pending > 0 {
                assert_eq!(world.reply(&resident, "1").result, "safe");
                world.deliver_all();
            }
        },
    );
    let prompts = per_day(&world, "+8613600136000", "check_in");
    assert!(
        prompts.iter().all(|&n| n <= 1),
        "one prompt per quiet night: {prompts:?}"
    );
    assert!(prompts[2..19].iter().all(|&n| n == 1), "{prompts:?}");
    assert!(
        world.texts_to(SOCIAL_WORKER).is_empty(),
        "the resident answered every time"
    );
    // Every prompt counts the quiet from its start: 12 hours or more, never 0.
    for prompt in world.texts_to("+8613600136000") {
        assert!(
            prompt.text.contains(" 12 小时") || prompt.text.contains(" 13 小时"),
            "{}",
            prompt.text
        );
    }
}

#[test]
fn a_resident_is_prompted_at_most_check_ins_per_day() {
    let mut world = world(|config| config.alerts.check_ins_per_day = 1);
    check_in(&world);
    let resident = PhoneNumber::parse("13600136000").unwrap();
    // 12 L every 13 hours: about two quiet stretches of 12 hours a day, and a
    // resident who answers every prompt.
    world.live(
        0,
        3 * 24,
        |h| (if h % 13 == 0 { 12 } else { 0 }, StatusFlags::default()),
        |world, _| {
            if world
                .texts_to("+8613600136000")
                .iter()
                .any(|t| t.purpose == "check_in" && t.state == "pending")
            {
                world.reply(&resident, "1");
                world.deliver_all();
            }
        },
    );
    let prompts = per_day(&world, "+8613600136000", "check_in");
    assert!(prompts.iter().all(|&n| n <= 1), "{prompts:?}");
    assert!(
        !world.texts_to(SOCIAL_WORKER).is_empty(),
        "past the cap, the contacts are told instead"
    );
}

#[test]
fn silence_after_an_unanswered_check_in_reaches_the_contacts_in_a_leaking_home() {
    let mut world = world(|_| {});
    check_in(&world);
    // A cistern refilling in bursts (2–6 L an hour, 4 L/h on average) and a
    // resident who lives normally for a week, then collapses after 07:00 on day 8
    // and answers nothing.
    let refills = [4, 6, 2, 4, 6, 2];
    let collapse = 7 * 24 + 8;
    let mut contacts_at = None;
    world.live(
        0,
        collapse + 40,
        |h| {
            let life = if h < collapse { daily_life(h) } else { 0 };
            (refills[(h % 6) as usize] + life, StatusFlags::default())
        },
        |world, h| {
            if contacts_at.is_none() && !world.texts_to(SOCIAL_WORKER).is_empty() {
                contacts_at = Some(h);
            }
        },
    );
    let found = contacts_at.expect("the contacts were told");
    assert!(
        found - collapse <= 13,
        "contacts told {} h after the last use",
        found - collapse
    );
    let no_usage: Vec<_> = world
        .alerts()
        .into_iter()
        .filter(|a| a.kind == "no_usage" && a.opened_at > world.start + collapse * HOUR)
        .collect();
    assert_eq!(no_usage.len(), 1);
    assert_eq!(
        no_usage[0].severity, "urgent",
        "the refills do not hide the silence"
    );
    assert_eq!(no_usage[0].state, "open", "it never resolves by itself");
}

#[test]
fn a_replay_with_the_same_settings_opens_exactly_the_alerts_live_operation_opened() {
    let mut world = world(|_| {});
    check_in(&world);
    let mut low = StatusFlags::default();
    low.insert(StatusFlag::LowBattery);
    // Twenty days: ordinary life, a battery flag for a day, a quiet day, a
    // collapse after the routine has learned the home (and the gateway restarted).
    let hour_of = |h: i64| {
        let flags = if (3 * 24..4 * 24).contains(&h) && h % 5 < 2 {
            low
        } else {
            StatusFlags::default()
        };
        let life = if (5 * 24..6 * 24).contains(&h) || h >= 18 * 24 + 9 {
            0
        } else {
            daily_life(h)
        };
        (life, flags)
    };
    world.live(0, 12 * 24, hour_of, |_, _| {});
    // The routine is kept with the meter's state: a restart forgets nothing.
    let kept = world.store.meter_state("ZS-0001").unwrap().unwrap().routine;
    let kept = crate::detect::Routine::decode(&kept.expect("a stored routine")).unwrap();
    assert!(kept.speaks());
    world.restart();
    world.live(12 * 24, 8 * 24, hour_of, |_, _| {});
    let learned = world
        .alerts()
        .into_iter()
        .find(|a| a.kind == "no_usage" && a.since >= world.start + 18 * 24 * HOUR)
        .expect("the collapse is found");
    assert!(
        learned.opened_at <= world.start + (18 * 24 + 13) * HOUR,
        "found by its routine within hours: {learned:?}"
    );
    // Its history says why, in a monitor's words.
    let opened = world.store.alert_events(learned.id).unwrap();
    assert!(
        opened[0].action == "opened" && opened[0].detail.contains("routine"),
        "{opened:?}"
    );
    let mut live: Vec<(String, String, i64, i64)> = world
        .alerts()
        .into_iter()
        .map(|a| (a.kind, a.severity, a.since, a.opened_at))
        .collect();
    live.sort();
    assert!(live.len() >= 3, "the scenario opens alerts: {live:?}");

    let (_, replayed) = world.replayed();
    let mut again: Vec<(String, String, i64, i64)> = replayed
        .alerts
        .iter()
        .map(|a| {
            (
                a.kind.as_str().to_string(),
                a.severity.as_str().to_string(),
                a.since,
                a.opened_at,
            )
        })
        .collect();
    again.sort();
    assert_eq!(again, live);
}

#[test]
fn an_acknowledged_alert_gives_way_when_the_resident_comes_back_and_falls() {
    let mut world = world(|_| {});
    // Ten days of ordinary life, then away from day 10 at 08:00 for two
    // days; the social worker acknowledges the first text. Back on day 12 at
    // 08:00, the resident uses 7 L (less than the fixed 10 L) and falls.
    let away = 10 * 24 + 8;
    let back = away + 48;
    let hour_of = |h: i64| {
        let life = match h {
            h if h < away => daily_life(h),
            h if h == back => 7,
            _ => 0,
        };
        (life, StatusFlags::default())
    };
    let mut acknowledged = None;
    let mut alerts_while_away = 0;
    world.live(0, back + 24, hour_of, |world, h| {
        if acknowledged.is_none() && !world.texts_to(SOCIAL_WORKER).is_empty() {
            let first = world
                .alerts()
                .into_iter()
                .find(|a| a.state == "open")
                .unwrap();
            let now = world.clock.now().secs();
            actions::alerts::acknowledge(&world.store, &who("李敏"), first.id, now).unwrap();
            acknowledged = Some(first.id);
        }
        if h == back - 1 {
            alerts_while_away = world.alerts().len();
        }
    });
    let first = acknowledged.expect("the social worker was texted");
    assert_eq!(
        alerts_while_away, 1,
        "a silence that goes on stays acknowledged"
    );
    let renewed = world
        .alerts()
        .into_iter()
        .find(|a| a.kind == "no_usage" && a.id > first)
        .expect("the fall after coming back opens a new alert");
    let renewed_after = (renewed.opened_at - world.start) / HOUR - back;
    assert!(renewed_after <= 12, "asked {renewed_after} h after the 7 L");
    for phone in [SOCIAL_WORKER, SON] {
        assert!(
            world
                .texts_to(phone)
                .iter()
                .any(|t| t.alert_id == renewed.id && t.purpose == "alert"),
            "{phone} hears of the new alert"
        );
    }
    // The first gave way to it, without telling anyone it was "resolved".
    let history = world.store.alert_events(first).unwrap();
    assert!(history.iter().any(|e| e.action == "renewed"), "{history:?}");
    assert!(!world
        .texts()
        .iter()
        .any(|t| t.alert_id == first && t.purpose == "resolved"));
}

#[test]
fn a_quiet_day_closed_as_away_is_not_learned_as_routine() {
    let mut world = world(|_| {});
    // Twelve days of ordinary life, then out from after the 07:00 use on day
    // 12 until 21:00 (missing the noon and evening uses): the routine asks,
    // a monitor finds the resident away.
    let out = (12 * 24 + 8)..(12 * 24 + 21);
    let hour_of = |h: i64| {
        let life = if out.contains(&h) { 0 } else { daily_life(h) };
        (life, StatusFlags::default())
    };
    world.live(0, 12 * 24 + 20, hour_of, |_, _| {});
    let alert = world
        .alerts()
        .into_iter()
        .find(|a| a.kind == "no_usage" && a.state == "open")
        .unwrap_or_else(|| panic!("the quiet day alerts: {:?}", world.alerts()));
    actions::alerts::close(
        &world.store,
        &who("李敏"),
        alert.id,
        Disposition::Away,
        "at her daughter's",
        world.clock.now().secs(),
    )
    .unwrap();
    world.live(12 * 24 + 20, 3 * 24, hour_of, |_, _| {});
    let no_usage: Vec<_> = world
        .alerts()
        .into_iter()
        .filter(|a| a.kind == "no_usage" && a.since >= alert.since)
        .collect();
    assert_eq!(
        no_usage.len(),
        1,
        "closed, the quiet hour left does not ask again: {no_usage:?}"
    );

    let household = world.store.household("ZS-0001").unwrap().unwrap();
    let periods = world.store.not_routine(household.id).unwrap();
    assert_eq!(periods.declared, []);
    assert_eq!(periods.closed_away.len(), 1);
    assert_eq!(periods.closed_away[0].0, alert.since);
    // The stored routine is the one that left the quiet day out.
    let (readings, replayed) = world.replayed();
    let backgrounds = replayed.backgrounds;
    let fold = |periods: &[(i64, i64)]| {
        let mut routine = crate::detect::Routine::default();
        for (reading, background) in readings.iter().zip(&backgrounds) {
            routine.observe(reading, *background, chrono_tz::Asia::Shanghai, periods);
        }
        routine
    };
    let stored = world.store.meter_state("ZS-0001").unwrap().unwrap().routine;
    let stored = crate::detect::Routine::decode(&stored.unwrap()).unwrap();
    assert_eq!(stored, fold(&periods.closed_away));
    assert_ne!(stored, fold(&[]), "the quiet day would have been learned");
}

#[test]
fn a_resident_who_answered_and_then_fell_is_asked_again_and_then_the_contacts_hear() {
    let mut world = world(|_| {});
    check_in(&world);
    let resident = PhoneNumber::parse("13600136000").unwrap();
    // Ten days of ordinary life, then no water from day 10 at 13:00: the
    // resident is away and answers every check-in ("I'm fine", the warning's
    // and the urgent one's) until they fall at hour 28 of the quiet, then
    // answers nothing.
    let stopped = 10 * 24 + 13;
    let fell = stopped + 28;
    let mut last_answer = None;
    let mut contacts_at = None;
    world.live(
        0,
        stopped + 4 * 24,
        |h| {
            let life = if h < stopped { daily_life(h) } else { 0 };
            (life, StatusFlags::default())
        },
        |world, h| {
            let asked = world
                .texts_to("+8613600136000")
                .into_iter()
                .any(|t| t.purpose == "check_in" && t.state == "pending");
            if asked && (stopped..fell).contains(&h) {
                assert_eq!(world.reply(&resident, "1").result, "safe");
                last_answer = Some(h);
            }
            world.deliver_all();
            if contacts_at.is_none() && h >= stopped && !world.texts_to(SOCIAL_WORKER).is_empty() {
                contacts_at = Some(h);
            }
        },
    );
    let last_answer = last_answer.expect("the resident was asked and answered");
    let contacts_at = contacts_at.expect("the contacts heard in the end");
    // An answer covers the quiet for a day, not for ever.
    assert!(
        contacts_at > fell && contacts_at - last_answer <= 26,
        "last answer at hour {last_answer}, fell at {fell}, contacts at {contacts_at}"
    );
}

#[test]
fn a_meter_that_loses_most_of_its_readings_is_a_maintenance_alert() {
    let mut world = world(|_| {});
    // An hourly meter of which only every third reading arrives, with water
    // used every six hours: the link is in trouble. (So few readings also
    // blur the resident's use into a background rate: `no_usage` may follow,
    // which is why a lossy meter needs mending.)
    for hour in (0..=27).step_by(3) {
        world.hours(hour, &[if hour % 6 == 0 { 20 } else { 0 }]);
    }
    let lost = world.alerts_of("readings_lost");
    assert_eq!(lost.len(), 1, "{:?}", world.alerts());
    // Texted to maintenance only, saying how much arrived.
    let texts: Vec<_> = world
        .texts()
        .into_iter()
        .filter(|t| t.kind == "readings_lost")
        .collect();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].phone, MAINTENANCE);
    assert!(texts[0].text.contains("8/24"), "{}", texts[0].text);
    // The link is mended: a full day of readings clears it, and after the
    // hold it resolves.
    let mended: Vec<i64> = (28..28 + 49)
        .map(|h| if h % 6 == 0 { 20 } else { 0 })
        .collect();
    world.hours(28, &mended);
    assert_eq!(world.alerts_of("readings_lost")[0].state, "resolved");
}

#[test]
fn losing_under_the_allowed_share_is_no_alert() {
    let mut world = world(|_| {});
    // Two readings in three arrive: a third lost, under the default half.
    for hour in 0..30 {
        if hour % 3 != 2 {
            world.hours(hour, &[6]);
        }
    }
    assert!(world.alerts().iter().all(|a| a.kind != "readings_lost"));
}

#[test]
fn a_late_batch_is_judged_at_its_own_time() {
    let mut world = world(|_| {});
    // Hourly readings to 20:00 with ordinary use, then the stream's next
    // reading at 30:00: 600 L in ten hours, no flow fast enough to see.
    let mut total = 1_000;
    let mut stream = Vec::new();
    for hour in 0..=20 {
        total += if hour % 4 == 0 { 15 } else { 0 };
        stream.push((hour, total));
    }
    let before = total;
    stream.push((30, before + 600));
    world.registers(&stream, StatusFlags::default());
    assert!(
        world.alerts().iter().all(|a| a.kind != "continuous_flow"),
        "{:?}",
        world.alerts()
    );
    // The meter's own batch arrives late: the tap ran at 200 L/h from 21:00
    // to 24:00.
    let late: Vec<(i64, i64)> = (21..=24).map(|h| (h, before + 200 * (h - 21))).collect();
    world.registers(&late, StatusFlags::default());
    let flows = world.alerts_of("continuous_flow");
    assert_eq!(flows.len(), 1, "{:?}", world.alerts());
    assert_eq!(flows[0].since, world.start + 21 * HOUR);
    assert!(
        !world.texts_to(SOCIAL_WORKER).is_empty(),
        "the contacts hear of it"
    );
    // Judged once: the same late batch again opens nothing more.
    world.registers(&late, StatusFlags::default());
    assert_eq!(world.alerts_of("continuous_flow").len(), 1);
}

#[test]
fn a_late_batch_that_shows_a_quiet_stretch_is_judged_without_waiting_for_a_newer_reading() {
    let mut world = world(|_| {});
    // Hourly use to 08:00, then the stream's next reading at 22:00, 60 L
    // higher: as far as anyone can tell, some use in the fourteen hours.
    let mut stream: Vec<(i64, i64)> = (0..=8).map(|hour| (hour, 1_000 + 15 * hour)).collect();
    let last = 1_000 + 15 * 8 + 60;
    stream.push((22, last));
    world.registers(&stream, StatusFlags::default());
    assert!(
        world.alerts_of("no_usage").is_empty(),
        "{:?}",
        world.alerts()
    );
    // The meter's own batch arrives late: all 60 L went before 09:00, and
    // nothing since.
    let late: Vec<(i64, i64)> = (9..=21).map(|hour| (hour, last)).collect();
    world.registers(&late, StatusFlags::default());
    let quiet = world.alerts_of("no_usage");
    assert_eq!(quiet.len(), 1, "{:?}", world.alerts());
    assert_eq!(quiet[0].since, world.start + 9 * HOUR);
    // Judged once: the same batch again changes nothing.
    world.registers(&late, StatusFlags::default());
    assert_eq!(world.alerts_of("no_usage").len(), 1);
}
