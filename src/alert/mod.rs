//! The alert lifecycle: turns rule findings into alerts and alerts into texts.
//!
//! The engine runs on its own thread with its own connection. After each commit
//! the writer names the meters it touched; the engine evaluates every reading
//! newer than the meter's `evaluated_through` (event time, reading by reading),
//! and in the same transaction opens, updates or resolves alerts and queues
//! their texts in the outbox. `evaluated_through` is durable, so after a crash
//! the engine picks up exactly where it stopped. On a timer (wall clock) it also
//! opens `meter_offline` alerts, escalates unacknowledged alerts step by step,
//! sends reminders, and texts the contacts when a resident's check-in goes
//! unanswered. It never sends anything itself: the notifier does.
//!
//! Lifecycle: open → acknowledged → resolved → closed. What happens at each
//! point is decided by the pure functions of [`lifecycle`]; this module loads
//! what they need, applies their changes in the same transaction, and renders
//! and queues the texts.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::{AlertsConfig, Language, RulesConfig, SmsConfig};
use crate::detect::{self, Detector, Kind, Severity};
use crate::domain::mask_name;
use crate::notify::templates::{self, Purpose, Values};
use crate::pipeline::TouchedMeters;
use crate::store::engine::{AlertDb, EngineTx, HouseholdInfo, NewAlert, QueuedText};
use crate::store::{Store, StoreError};

/// Meters evaluated in one transaction.
const METERS_PER_TRANSACTION: usize = 64;
/// After a round of more meters than this, the engine waits a while.
const BURST_METERS: usize = 256;
/// How long.
const BURST_PAUSE: Duration = Duration::from_millis(250);
/// The shortest wait between timer runs or burst pauses, however fast the clock runs.
const MIN_TICK: Duration = Duration::from_millis(10);

/// The actor name of the engine in alert histories.
const SYSTEM: &str = "stillwater";

pub mod codes;
pub mod lifecycle;
pub mod replay;
pub mod what_if;

use lifecycle::{Change, Facts, Recipients, Settings, Target};

pub struct Engine {
    db: AlertDb,
    rules: RulesConfig,
    context: Context,
    settings: Settings,
    detector: Box<dyn Detector>,
    /// Wakes the notifier when texts were queued.
    notifier: Arc<Notify>,
    clock: SharedClock,
    /// The wall time the timer duties last ran for (Unix seconds; 0 before the first).
    last_tick: Arc<std::sync::atomic::AtomicI64>,
    /// This gateway's name and lease, for the work one gateway of several does.
    cluster: Cluster,
}

/// Who this engine is among gateways sharing a database.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The gateway's name (its MQTT client id).
    pub holder: String,
    /// How long the timer duties stay with it without renewal, seconds.
    pub lease_s: i64,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            holder: "stillwater".into(),
            lease_s: 30,
        }
    }
}

/// The lease of the timer duties: one gateway of several runs them.
const TIMERS_LEASE: &str = "timers";

impl Engine {
    pub fn new(
        store: &Store,
        rules: RulesConfig,
        alerts: AlertsConfig,
        sms: &SmsConfig,
        notifier: Arc<Notify>,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        let settings = Settings::new(&alerts, &rules);
        Ok(Self {
            db: AlertDb::open(store)?,
            rules,
            settings,
            detector: Box::new(detect::Learned),
            context: Context {
                alerts,
                language: sms.language,
                templates: sms.templates.clone(),
            },
            notifier,
            clock,
            last_tick: Arc::default(),
            cluster: Cluster::default(),
        })
    }

    /// Names this gateway among others sharing the database.
    pub fn in_cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = cluster;
        self
    }

    /// Judges readings with `detector` instead of the rules alone.
    pub fn with_detector(mut self, detector: Box<dyn Detector>) -> Self {
        self.detector = detector;
        self
    }

    /// The wall time (Unix seconds) the timer duties last completed for: tests
    /// that move a manual clock wait on this instead of on real time.
    pub fn last_tick(&self) -> Arc<std::sync::atomic::AtomicI64> {
        self.last_tick.clone()
    }

    /// Runs until `shutdown` or until the writer has stopped.
    pub fn run(mut self, touched: Arc<TouchedMeters>, shutdown: CancellationToken) {
        // Recovery: whatever was committed but not yet evaluated.
        let mut meters: BTreeSet<String> = match self.db.pending_meters() {
            Ok(pending) => pending.into_iter().collect(),
            Err(error) => {
                tracing::error!(%error, "cannot list meters to evaluate");
                BTreeSet::new()
            }
        };
        let mut next_tick = Instant::now();
        loop {
            let mut queued = false;
            let batch: Vec<String> = std::mem::take(&mut meters).into_iter().collect();
            // Short transactions: the writer waits for the lock while one runs.
            for group in batch.chunks(METERS_PER_TRANSACTION) {
                match self.evaluate_meters(group.iter().map(String::as_str)) {
                    Ok(texts) => queued |= texts,
                    Err(error) => {
                        tracing::error!(%error, meters = group.len(), "could not evaluate meters; retrying");
                        meters.extend(group.iter().cloned());
                    }
                }
            }
            if Instant::now() >= next_tick {
                if self.db.shared() {
                    // Meters another gateway committed and could not evaluate
                    // (it stopped): evaluated here on the next round.
                    match self.db.pending_meters() {
                        Ok(pending) => meters.extend(pending),
                        Err(error) => tracing::error!(%error, "cannot list meters to evaluate"),
                    }
                }
                let now = self.clock.now().secs();
                match self.tick(now) {
                    Ok(texts) => {
                        queued |= texts;
                        self.last_tick
                            .store(now, std::sync::atomic::Ordering::Release);
                    }
                    Err(error) => tracing::error!(%error, "alert timer failed"),
                }
                next_tick =
                    Instant::now() + self.clock.pace(self.context.alerts.tick).max(MIN_TICK);
            }
            if queued {
                self.notifier.notify_one();
            }
            if shutdown.is_cancelled() {
                return;
            }
            if batch.len() > BURST_METERS {
                // A burst (a concentrator uploading a day, a benchmark): let
                // readings gather so each meter is evaluated once per pause, not
                // once per reading, and ingest keeps the CPU it needs.
                std::thread::sleep(BURST_PAUSE.min(self.clock.pace(BURST_PAUSE).max(MIN_TICK)));
            }
            let wait = next_tick
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500));
            let (more, writer_stopped) = touched.take(wait);
            meters.extend(more.into_iter().map(String::from));
            if writer_stopped && meters.is_empty() {
                return;
            }
        }
    }

    /// Evaluates every reading of `meter` not yet evaluated. Returns whether texts were queued.
    pub fn evaluate_meter(&mut self, meter: &str) -> Result<bool, StoreError> {
        self.evaluate_meters(std::iter::once(meter))
    }

    /// Evaluates meters in one transaction (a failure rolls back all of them,
    /// to be retried). Returns whether texts were queued.
    pub fn evaluate_meters<'m>(
        &mut self,
        meters: impl IntoIterator<Item = &'m str>,
    ) -> Result<bool, StoreError> {
        let history = self.detector.history_s(&self.rules.global) + 86_400;
        let (rules, context, settings) = (&self.rules, &self.context, &self.settings);
        let detector = self.detector.as_ref();
        let wall = self.clock.now().secs();
        let tx = self.db.transaction()?;
        let mut queued = false;
        for meter in meters {
            let Some(work) = tx.meter_work(meter, history)? else {
                continue;
            };
            if let Some(household) = &work.household {
                // Operators' overrides are read on every evaluation: a change needs no restart.
                let resolved = crate::thresholds::in_force(
                    rules,
                    &household.category,
                    &tx.rule_overrides(household)?,
                );
                for problem in &resolved.skipped {
                    tracing::warn!(%problem, meter, "a stored threshold is not used");
                }
                let policy = resolved.policy;
                let first = match work.evaluated_through {
                    Some(through) => work.readings.partition_point(|r| r.ts.secs() <= through),
                    None => 0,
                };
                let absences = tx.not_routine(household.id)?.all();
                let home = detect::Home {
                    zone: household
                        .timezone
                        .parse()
                        .unwrap_or(chrono_tz::Asia::Shanghai),
                    absences: &absences,
                };
                let mut routine = match work.routine.as_deref().map(detect::Routine::decode) {
                    Some(Some(routine)) => routine,
                    Some(None) => {
                        tracing::warn!(meter, "the stored routine is unreadable; learning afresh");
                        detect::Routine::default()
                    }
                    None => detect::Routine::default(),
                };
                // Readings that arrived after detection had passed their time.
                if let Some(late) = work.late_from {
                    let start = work.readings.partition_point(|r| r.ts.secs() < late);
                    for index in start..first {
                        let assessment = detector.assess(&work.readings, index, &policy);
                        let active = tx.active_alerts(meter)?;
                        let at = assessment.at.secs();
                        let facts = facts(&tx, meter, household, at, wall, true)?;
                        let changes = lifecycle::on_late_reading(
                            &active,
                            &assessment,
                            &facts,
                            settings,
                            wall,
                        );
                        queued |= apply(&tx, context, meter, household, changes, wall)?;
                    }
                }
                // A late batch can show a quiet stretch the newest reading's
                // judgement could not see (the readings inside it were missing
                // then): with nothing newer to judge, the newest is judged again.
                // Its routine has folded it already; observing it again changes
                // nothing.
                let from = match work.late_from {
                    Some(_) if first == work.readings.len() => first.saturating_sub(1),
                    _ => first,
                };
                // A meter's alerts and cover change only by what this loop
                // applies (the transaction holds the write lock): read again
                // after a change, not at every reading.
                let mut active = tx.active_alerts(meter)?;
                let mut cover = tx.cover(meter)?;
                for index in from..work.readings.len() {
                    let mut assessment = detector.assess_learning(
                        &work.readings,
                        index,
                        &policy,
                        &home,
                        &mut routine,
                        None,
                    );
                    lifecycle::add_readings_lost(
                        &mut assessment,
                        &work.readings,
                        index,
                        household,
                        settings,
                    );
                    let opening = lifecycle::may_open(&active, &assessment);
                    let at = (assessment.at.secs(), wall);
                    let facts = facts_covered(&tx, meter, household, at, opening, cover.clone())?;
                    let changes =
                        lifecycle::on_reading(&active, &assessment, &facts, settings, wall);
                    if !changes.is_empty() {
                        queued |= apply(&tx, context, meter, household, changes, wall)?;
                        active = tx.active_alerts(meter)?;
                        cover = tx.cover(meter)?;
                    }
                }
                tx.set_evaluated_through(meter, work.newest, Some(&routine.encode()))?;
                continue;
            }
            tx.set_evaluated_through(meter, work.newest, None)?;
        }
        tx.commit()?;
        Ok(queued)
    }

    /// The wall-clock duties: offline meters, check-ins, escalation,
    /// reminders — when this gateway holds their lease (one of several does).
    pub fn tick(&mut self, now: i64) -> Result<bool, StoreError> {
        let (context, settings) = (&self.context, &self.settings);
        let tx = self.db.transaction()?;
        let Cluster { holder, lease_s } = &self.cluster;
        if !tx.hold_lease(TIMERS_LEASE, holder, now, *lease_s)? {
            return Ok(false); // another gateway runs them
        }
        let mut queued = false;
        for silent in tx.silent_meters(now, settings.offline_at_least_s)? {
            let Some(household) = tx.household(silent.household_id)? else {
                continue;
            };
            let last = silent.last_received.unwrap_or(silent.registered_at);
            let facts = facts(&tx, &silent.meter_id, &household, now, now, true)?;
            let silence = lifecycle::Silence {
                silent_s: now - last,
                interval_min: household.reporting_interval_min,
                since: silent.last_received.unwrap_or(now),
                never_reported: silent.last_received.is_none(),
            };
            let changes = lifecycle::offline(&silence, &facts, settings, now);
            queued |= apply(&tx, context, &silent.meter_id, &household, changes, now)?;
        }
        for alert in tx.open_alerts()? {
            let Some(household) = alert
                .household_id
                .map(|id| tx.household(id))
                .transpose()?
                .flatten()
            else {
                continue;
            };
            let changes = lifecycle::on_timer(&alert, &household, settings, now);
            queued |= apply(&tx, context, &alert.meter_id, &household, changes, now)?;
        }
        tx.commit()?;
        Ok(queued)
    }
}

/// What the lifecycle needs to know about a meter besides its alerts.
/// `opening`: whether an alert may open (`lifecycle::may_open`); the absence
/// and the day's text counts are only loaded then, keeping the common reading
/// — nothing new — to one query here.
fn facts<'h>(
    tx: &dyn EngineTx,
    meter: &str,
    household: &'h HouseholdInfo,
    at: i64,
    wall: i64,
    opening: bool,
) -> Result<Facts<'h>, StoreError> {
    facts_covered(tx, meter, household, (at, wall), opening, tx.cover(meter)?)
}

/// [`facts`] with the meter's stored check-in cover already read.
fn facts_covered<'h>(
    tx: &dyn EngineTx,
    meter: &str,
    household: &'h HouseholdInfo,
    (at, wall): (i64, i64),
    opening: bool,
    cover: Option<(String, i64)>,
) -> Result<Facts<'h>, StoreError> {
    let day_ago = wall - 86_400;
    let cover = cover.and_then(|(grade, answered_at)| {
        lifecycle::cover(Severity::parse(&grade), answered_at, wall)
    });
    if !opening {
        return Ok(Facts {
            household,
            absent: false,
            cover,
            check_ins_today: 0,
            maintenance_texts_today: 0,
        });
    }
    Ok(Facts {
        household,
        absent: tx.absence_at(household.id, at)?.is_some(),
        cover,
        check_ins_today: tx.texts_since(meter, "check_in", None, day_ago)?,
        maintenance_texts_today: tx.texts_since(meter, "alert", Some("maintenance"), day_ago)?,
    })
}

/// Applies the lifecycle's changes in order, inside the caller's transaction.
/// Returns whether texts were queued.
fn apply(
    tx: &dyn EngineTx,
    context: &Context,
    meter: &str,
    household: &HouseholdInfo,
    changes: Vec<Change>,
    wall: i64,
) -> Result<bool, StoreError> {
    let mut opened: Vec<i64> = Vec::new();
    let mut queued = false;
    for change in changes {
        let id = |target: Target| match target {
            Target::Stored(id) => id,
            Target::Opened(n) => opened[n],
        };
        match change {
            Change::Open {
                kind,
                severity,
                since,
                opened_at,
                channel,
                detail,
            } => {
                let id = tx.insert_alert(&NewAlert {
                    meter_id: meter,
                    household_id: Some(household.id),
                    kind: kind.as_str(),
                    severity: severity.as_str(),
                    since,
                    opened_at,
                    detail: &detail,
                    created_at: wall,
                })?;
                tx.record_event(id, wall, SYSTEM, channel, "opened", &detail)?;
                tracing::info!(alert = id, meter, kind = kind.as_str(), severity = severity.as_str(), resident = %mask_name(&household.resident_name), "alert opened");
                opened.push(id);
            }
            Change::Detected {
                alert,
                severity,
                at,
                detail,
            } => tx.update_detection(id(alert), severity.as_str(), at, &detail)?,
            Change::Hold { alert, clear_since } => tx.set_clear_since(id(alert), clear_since)?,
            Change::Resolve { alert, channel } => tx.resolve(id(alert), wall, SYSTEM, channel)?,
            Change::Event {
                alert,
                channel,
                action,
                detail,
            } => tx.record_event(id(alert), wall, SYSTEM, channel, action, &detail)?,
            Change::Text {
                alert,
                kind,
                purpose,
                to,
                facts,
            } => {
                let recipients = context.recipients(tx, id(alert), to, household)?;
                let values = context.values(household, meter, &facts);
                queued |= context.send(tx, id(alert), kind, purpose, &recipients, &values, wall)?;
            }
            Change::Reminder { alert, kind, n } => {
                let template = templates::template_key(kind, "reminder");
                let values = serde_json::json!({ "reminder": n }).to_string();
                for (phone, name, step, original) in tx.recipients(id(alert))? {
                    let text = templates::reminder(n, context.language, &original);
                    let key = format!("{}:reminder:{n}:{phone}", id(alert));
                    queued |= tx.enqueue(
                        &QueuedText {
                            alert_id: id(alert),
                            phone: &phone,
                            recipient: &name,
                            step,
                            purpose: "reminder",
                            text: &text,
                            idempotency_key: &key,
                            template: &template,
                            template_values: &values,
                        },
                        wall,
                    )?;
                }
            }
            Change::Notified {
                alert,
                step,
                reminders,
                check_in_until,
            } => tx.set_notified(id(alert), step, wall, reminders, check_in_until)?,
            Change::EndCover => tx.clear_cover(meter)?,
        }
    }
    Ok(queued)
}

/// What reconciling needs besides the transaction.
struct Context {
    alerts: AlertsConfig,
    language: Language,
    templates: HashMap<String, String>,
}

impl Context {
    fn values(
        &self,
        household: &HouseholdInfo,
        meter: &str,
        facts: &lifecycle::TextFacts,
    ) -> Values {
        let zone: chrono_tz::Tz = household
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai);
        Values {
            name: household.resident_name.clone(),
            address: household.address.clone(),
            meter: meter.to_string(),
            since: templates::format_since(facts.since, zone, self.language),
            hours: facts.hours,
            litres: facts.litres,
            flags: facts.flags.clone(),
            usual: templates::habit_phrase(facts.habit, self.language),
            code: 0,
            reminder: 0,
        }
    }

    /// Who `to` names, as (step, name, phone).
    fn recipients(
        &self,
        tx: &dyn EngineTx,
        alert_id: i64,
        to: Recipients,
        household: &HouseholdInfo,
    ) -> Result<Vec<(u32, String, String)>, StoreError> {
        Ok(match to {
            Recipients::Resident => household
                .check_in_phone
                .iter()
                .map(|phone| (0, household.resident_name.clone(), phone.clone()))
                .collect(),
            Recipients::Contacts { above, up_to } => household
                .contacts
                .iter()
                .filter(|(step, _, _)| *step > above && *step <= up_to)
                .cloned()
                .collect(),
            Recipients::Maintenance => self
                .alerts
                .maintenance
                .iter()
                .map(|phone| (1, "maintenance".to_string(), phone.as_str().to_string()))
                .collect(),
            Recipients::AlreadyTexted => tx
                .recipients(alert_id)?
                .into_iter()
                .map(|(phone, name, step, _)| (step, name, phone))
                .collect(),
        })
    }

    /// Queues one text to each of `recipients` (step, name, phone).
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        tx: &dyn EngineTx,
        alert_id: i64,
        kind: Kind,
        purpose: Purpose,
        recipients: &[(u32, String, String)],
        values: &Values,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut queued = false;
        for (step, name, phone) in recipients {
            let mut values = values.clone();
            let (code, new) = codes::allocate(&tx.codes_in_use(phone)?, alert_id);
            if new {
                tx.assign_code(phone, code, alert_id)?;
            }
            values.code = code;
            let text = templates::render(kind, purpose, self.language, &self.templates, &values);
            let round = if purpose == Purpose::Alert { *step } else { 0 };
            let key = format!("{alert_id}:{}:{round}:{phone}", purpose.as_str());
            let template = templates::template_key(kind, purpose.as_str());
            let template_values = serde_json::to_string(&values).expect("values serialise");
            queued |= tx.enqueue(
                &QueuedText {
                    alert_id,
                    phone,
                    recipient: name,
                    step: *step,
                    purpose: purpose.as_str(),
                    text: &text,
                    idempotency_key: &key,
                    template: &template,
                    template_values: &template_values,
                },
                now,
            )?;
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests;
