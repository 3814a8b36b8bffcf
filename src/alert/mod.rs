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
//! Lifecycle: open → acknowledged → resolved → closed; one active alert per
//! (meter, kind), re-detection updates it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::{AlertsConfig, Language, RulesConfig, SmsConfig};
use crate::detect::{self, Condition, Kind, Policy, Severity};
use crate::domain::{mask_name, Timestamp};
use crate::notify::templates::{self, Purpose, Values};
use crate::pipeline::TouchedMeters;
use crate::store::alerts::{ActiveAlert, AlertDb, AlertTx, HouseholdInfo, NewAlert};
use crate::store::{Store, StoreError, StoredReading};

/// Kinds judged from readings (`meter_offline` is judged from the wall clock).
const READING_KINDS: [Kind; 5] = [
    Kind::NoUsage,
    Kind::ContinuousFlow,
    Kind::Leak,
    Kind::HighUsage,
    Kind::DeviceFault,
];

/// Meters evaluated in one transaction.
const METERS_PER_TRANSACTION: usize = 256;
/// After a round of more meters than that, the engine waits this long.
const BURST_PAUSE: Duration = Duration::from_millis(250);

/// The actor name of the engine in alert histories.
const SYSTEM: &str = "stillwater";

pub struct Engine {
    db: AlertDb,
    rules: RulesConfig,
    context: Context,
    /// Wakes the notifier when texts were queued.
    notifier: Arc<Notify>,
    clock: SharedClock,
    /// The wall time the timer duties last ran for (Unix seconds; 0 before the first).
    last_tick: Arc<std::sync::atomic::AtomicI64>,
}

impl Engine {
    pub fn new(
        store: &Store,
        rules: RulesConfig,
        alerts: AlertsConfig,
        sms: &SmsConfig,
        notifier: Arc<Notify>,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            db: AlertDb::open(store)?,
            rules,
            context: Context {
                alerts,
                language: sms.language,
                templates: sms.templates.clone(),
            },
            notifier,
            clock,
            last_tick: Arc::default(),
        })
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
                let now = self.clock.now().secs();
                match self.tick(now) {
                    Ok(texts) => {
                        queued |= texts;
                        self.last_tick
                            .store(now, std::sync::atomic::Ordering::Release);
                    }
                    Err(error) => tracing::error!(%error, "alert timer failed"),
                }
                next_tick = Instant::now() + self.context.alerts.tick;
            }
            if queued {
                self.notifier.notify_one();
            }
            if shutdown.is_cancelled() {
                return;
            }
            if batch.len() > METERS_PER_TRANSACTION {
                // A burst (a concentrator uploading a day, a benchmark): let
                // readings gather so each meter is evaluated once per pause, not
                // once per reading, and ingest keeps the CPU it needs.
                std::thread::sleep(BURST_PAUSE);
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
        let history = self.rules.global.background_s + self.rules.global.urgent_window_s + 86_400;
        let (rules, context) = (&self.rules, &self.context);
        let wall = self.clock.now().secs();
        let tx = self.db.transaction()?;
        let mut queued = false;
        for meter in meters {
            let Some(work) = tx.meter_work(meter, history)? else {
                continue;
            };
            if let Some(household) = &work.household {
                let mut policy = rules.policy_for(&household.category);
                // Operators' overrides are read on every evaluation: a change needs no restart.
                for rule in tx.rule_overrides(household)? {
                    if let Err(problem) = policy.set(&rule.key, &rule.value) {
                        tracing::warn!(%problem, scope = rule.scope, "ignoring a stored rule override");
                    }
                }
                let first = match work.evaluated_through {
                    Some(through) => work.readings.partition_point(|r| r.ts.secs() <= through),
                    None => 0,
                };
                for index in first..work.readings.len() {
                    queued |= reconcile(
                        &tx,
                        context,
                        wall,
                        meter,
                        household,
                        &policy,
                        &work.readings,
                        index,
                    )?;
                }
            }
            tx.set_evaluated_through(meter, work.newest)?;
        }
        tx.commit()?;
        Ok(queued)
    }

    /// The wall-clock duties: offline meters, check-ins, escalation, reminders.
    pub fn tick(&mut self, now: i64) -> Result<bool, StoreError> {
        let offline_at_least = self.rules.offline_at_least_s;
        let context = &self.context;
        let tx = self.db.transaction()?;
        let mut queued = false;
        for offline in tx.offline_candidates(now, offline_at_least)? {
            let (meter, household_id, last_received) = (
                offline.meter_id,
                offline.household_id,
                offline.last_received,
            );
            let Some(household) = tx.household(household_id)? else {
                continue;
            };
            let since = last_received.unwrap_or(now);
            let detail = match last_received {
                Some(_) => "no valid reading".to_string(),
                None => "no reading since registration".to_string(),
            };
            let id = tx.insert_alert(&NewAlert {
                meter_id: &meter,
                household_id: Some(household_id),
                kind: Kind::MeterOffline.as_str(),
                severity: "maintenance",
                since,
                opened_at: now,
                detail: &detail,
                created_at: now,
            })?;
            tx.record_event(id, now, SYSTEM, "timer", "opened", &detail)?;
            let values = context.values(&household, &meter, since, (now - since) / 3600, 0, "");
            queued |= context.notify_maintenance(&tx, id, Kind::MeterOffline, &values, now)?;
        }
        for alert in tx.open_alerts()? {
            queued |= context.follow_up(&tx, &alert, now)?;
        }
        tx.commit()?;
        Ok(queued)
    }
}

/// What reconciling needs besides the transaction.
struct Context {
    alerts: AlertsConfig,
    language: Language,
    templates: HashMap<String, String>,
}

fn severity_of(condition: &Condition) -> &'static str {
    condition.severity().as_str()
}

fn describe(condition: &Condition, at: Timestamp, background_mlph: i64) -> String {
    match condition {
        Condition::NoUsage {
            severity,
            since,
            used_l,
        } => format!(
            "{} L used in the window ({} h since the last use; background {:.1} L/h); {}",
            used_l,
            at.hours_since(*since),
            background_mlph as f64 / 1000.0,
            severity.as_str()
        ),
        Condition::ContinuousFlow { since, litres } => {
            format!(
                "{litres} L in {} min of continuous flow",
                (at - *since) / 60
            )
        }
        Condition::Leak { since, litres } => format!(
            "{litres} L, some in every hour for {} h",
            at.hours_since(*since)
        ),
        Condition::HighUsage { litres, .. } => format!("{litres} L in 24 h"),
        Condition::DeviceFault { flags } => format!("meter reports {flags}"),
    }
}

/// Applies the assessment at `readings[index]` to the meter's alerts.
#[allow(clippy::too_many_arguments)]
fn reconcile(
    tx: &AlertTx<'_>,
    context: &Context,
    wall: i64,
    meter: &str,
    household: &HouseholdInfo,
    policy: &Policy,
    readings: &[StoredReading],
    index: usize,
) -> Result<bool, StoreError> {
    let assessment = detect::assess(readings, index, policy);
    let at = assessment.at.secs();
    let active: HashMap<Kind, ActiveAlert> = tx
        .active_alerts(meter)?
        .into_iter()
        .filter_map(|alert| Kind::parse(&alert.kind).map(|kind| (kind, alert)))
        .collect();
    let mut queued = false;
    // A valid reading: the meter reports again.
    if let Some(offline) = active.get(&Kind::MeterOffline) {
        tx.resolve(offline.id, wall, SYSTEM, "detector")?;
        tx.record_event(
            offline.id,
            wall,
            SYSTEM,
            "detector",
            "resolved",
            "the meter reports again",
        )?;
        queued |=
            context.notify_resolved(tx, offline.id, Kind::MeterOffline, household, meter, wall)?;
    }
    let absence = tx.absence_at(household.id, at)?;
    for kind in READING_KINDS {
        let condition = assessment.conditions.iter().find(|c| c.kind() == kind);
        match (condition, active.get(&kind)) {
            (Some(condition), None) => {
                if kind.is_welfare() && absence.is_some() {
                    continue; // a declared absence silences welfare alerts
                }
                let detail = describe(condition, assessment.at, assessment.background_mlph);
                let (since, litres, flags) = match condition {
                    Condition::NoUsage { since, used_l, .. } => {
                        (since.secs(), *used_l, String::new())
                    }
                    Condition::ContinuousFlow { since, litres }
                    | Condition::Leak { since, litres }
                    | Condition::HighUsage { since, litres } => {
                        (since.secs(), *litres, String::new())
                    }
                    Condition::DeviceFault { flags } => (at, 0, flags.to_string()),
                };
                let severity = severity_of(condition);
                let id = tx.insert_alert(&NewAlert {
                    meter_id: meter,
                    household_id: Some(household.id),
                    kind: kind.as_str(),
                    severity,
                    since,
                    opened_at: at,
                    detail: &detail,
                    created_at: wall,
                })?;
                tx.record_event(id, wall, SYSTEM, "detector", "opened", &detail)?;
                tracing::info!(alert = id, meter, kind = kind.as_str(), severity, resident = %mask_name(&household.resident_name), "alert opened");
                let values =
                    context.values(household, meter, since, (at - since) / 3600, litres, &flags);
                queued |= if kind.is_welfare() {
                    context
                        .notify_welfare(tx, id, kind, severity, household, &values, wall, None)?
                } else {
                    context.notify_maintenance(tx, id, kind, &values, wall)?
                };
            }
            (Some(condition), Some(alert)) => {
                let severity = severity_of(condition);
                tx.update_detection(
                    alert.id,
                    severity,
                    at,
                    &describe(condition, assessment.at, assessment.background_mlph),
                )?;
                let upgraded = alert.severity == Severity::Warning.as_str()
                    && severity == Severity::Urgent.as_str();
                // While the resident's check-in is pending, the timer texts the contacts.
                if upgraded && alert.state == "open" && alert.check_in_until.is_none() {
                    tx.record_event(
                        alert.id,
                        wall,
                        SYSTEM,
                        "detector",
                        "urgent",
                        "no use for the urgent window",
                    )?;
                    if let Condition::NoUsage { since, used_l, .. } = condition {
                        let values = context.values(
                            household,
                            meter,
                            since.secs(),
                            assessment.at.hours_since(*since),
                            *used_l,
                            "",
                        );
                        queued |= context.notify_welfare(
                            tx,
                            alert.id,
                            kind,
                            severity,
                            household,
                            &values,
                            wall,
                            Some(alert),
                        )?;
                    }
                }
            }
            (None, Some(alert)) => {
                tx.resolve(alert.id, wall, SYSTEM, "detector")?;
                tx.record_event(
                    alert.id,
                    wall,
                    SYSTEM,
                    "detector",
                    "resolved",
                    "the condition cleared",
                )?;
                queued |= context.notify_resolved(tx, alert.id, kind, household, meter, wall)?;
            }
            (None, None) => {}
        }
    }
    Ok(queued)
}

impl Context {
    fn values(
        &self,
        household: &HouseholdInfo,
        meter: &str,
        since: i64,
        hours: i64,
        litres: i64,
        flags: &str,
    ) -> Values {
        let zone: chrono_tz::Tz = household
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai);
        Values {
            name: household.resident_name.clone(),
            address: household.address.clone(),
            meter: meter.to_string(),
            since: templates::format_since(since, zone, self.language),
            hours,
            litres,
            flags: flags.to_string(),
            code: 0,
        }
    }

    /// The values of a follow-up text about `alert`, `now` (wall clock).
    fn alert_values(&self, household: &HouseholdInfo, alert: &ActiveAlert, now: i64) -> Values {
        self.values(
            household,
            &alert.meter_id,
            alert.since,
            (now - alert.since) / 3600,
            0,
            "",
        )
    }

    /// Queues one text to each of `recipients` (step, name, phone).
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        tx: &AlertTx<'_>,
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
            values.code = tx.code_for(phone, alert_id)?;
            let text = templates::render(kind, purpose, self.language, &self.templates, &values);
            let (label, n) = match purpose {
                Purpose::Alert => ("alert", *step),
                Purpose::CheckIn => ("check_in", 0),
                Purpose::Resolved => ("resolved", 0),
            };
            let key = format!("{alert_id}:{label}:{n}:{phone}");
            queued |= tx.enqueue(alert_id, phone, name, *step, label, &text, &key, now * 1000)?;
        }
        Ok(queued)
    }

    /// The first texts of a welfare alert: the resident's check-in, or the
    /// contacts (step 1, or every step when urgent). A warning texts nobody
    /// unless `notify_warning`. `existing` is the alert when it became urgent.
    #[allow(clippy::too_many_arguments)]
    fn notify_welfare(
        &self,
        tx: &AlertTx<'_>,
        id: i64,
        kind: Kind,
        severity: &str,
        household: &HouseholdInfo,
        values: &Values,
        now: i64,
        existing: Option<&ActiveAlert>,
    ) -> Result<bool, StoreError> {
        // An urgent no_usage texts every step at once; other kinds start at step 1.
        let urgent = kind == Kind::NoUsage && severity == Severity::Urgent.as_str();
        if existing.is_none() && kind == Kind::NoUsage {
            if let Some(phone) = &household.check_in_phone {
                let resident = [(0, household.resident_name.clone(), phone.clone())];
                let queued = self.send(tx, id, kind, Purpose::CheckIn, &resident, values, now)?;
                let until = now + self.alerts.check_in_wait.as_secs() as i64;
                tx.set_notified(id, 0, now, 0, Some(until))?;
                tx.record_event(
                    id,
                    now,
                    SYSTEM,
                    "detector",
                    "check_in",
                    "asked the resident to reply",
                )?;
                return Ok(queued);
            }
        }
        if severity == Severity::Warning.as_str() && !self.alerts.notify_warning {
            return Ok(false); // recorded and shown; contacts are texted when it becomes urgent
        }
        let already = existing.map_or(0, |alert| alert.notified_step);
        let last_step = household.contacts.iter().map(|c| c.0).max().unwrap_or(0);
        let first_step = household.contacts.iter().map(|c| c.0).min().unwrap_or(0);
        let up_to = if urgent { last_step } else { first_step };
        let recipients: Vec<(u32, String, String)> = household
            .contacts
            .iter()
            .filter(|(step, _, _)| *step > already && *step <= up_to)
            .cloned()
            .collect();
        if recipients.is_empty() {
            return Ok(false);
        }
        let queued = self.send(tx, id, kind, Purpose::Alert, &recipients, values, now)?;
        let reminders = existing.map_or(0, |alert| alert.reminders);
        tx.set_notified(id, up_to.max(already), now, reminders, None)?;
        tx.record_event(
            id,
            now,
            SYSTEM,
            "detector",
            "notified",
            &format!("steps up to {up_to}"),
        )?;
        Ok(queued)
    }

    fn notify_maintenance(
        &self,
        tx: &AlertTx<'_>,
        id: i64,
        kind: Kind,
        values: &Values,
        now: i64,
    ) -> Result<bool, StoreError> {
        if self.alerts.maintenance.is_empty() {
            tx.record_event(
                id,
                now,
                SYSTEM,
                "detector",
                "not_notified",
                "no [alerts] maintenance phones configured",
            )?;
            return Ok(false);
        }
        let recipients: Vec<(u32, String, String)> = self
            .alerts
            .maintenance
            .iter()
            .map(|phone| (1, "maintenance".to_string(), phone.as_str().to_string()))
            .collect();
        let queued = self.send(tx, id, kind, Purpose::Alert, &recipients, values, now)?;
        tx.set_notified(id, 1, now, 0, None)?;
        Ok(queued)
    }

    /// Tells everyone who was texted about an alert that it cleared by itself.
    fn notify_resolved(
        &self,
        tx: &AlertTx<'_>,
        id: i64,
        kind: Kind,
        household: &HouseholdInfo,
        meter: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let recipients: Vec<(u32, String, String)> = tx
            .recipients(id)?
            .into_iter()
            .map(|(phone, name, step, _)| (step, name, phone))
            .collect();
        let values = self.values(household, meter, now, 0, 0, "");
        self.send(tx, id, kind, Purpose::Resolved, &recipients, &values, now)
    }

    /// Escalation, reminders and unanswered check-ins of one open alert.
    fn follow_up(
        &self,
        tx: &AlertTx<'_>,
        alert: &ActiveAlert,
        now: i64,
    ) -> Result<bool, StoreError> {
        let Some(kind) = Kind::parse(&alert.kind) else {
            return Ok(false);
        };
        let Some(household) = alert
            .household_id
            .map(|id| tx.household(id))
            .transpose()?
            .flatten()
        else {
            return Ok(false);
        };
        if let Some(until) = alert.check_in_until {
            if now < until {
                return Ok(false);
            }
            tx.record_event(alert.id, now, SYSTEM, "timer", "check_in_unanswered", "")?;
            tx.set_notified(alert.id, 0, now, 0, None)?;
            if alert.severity == Severity::Warning.as_str() && !self.alerts.notify_warning {
                return Ok(false);
            }
            let values = self.alert_values(&household, alert, now);
            let fresh = ActiveAlert {
                check_in_until: None,
                ..alert.clone()
            };
            return self.notify_welfare(
                tx,
                alert.id,
                kind,
                &alert.severity,
                &household,
                &values,
                now,
                Some(&fresh),
            );
        }
        if alert.notified_step == 0 {
            return Ok(false); // recorded and shown only
        }
        let last = alert.last_notified_at.unwrap_or(now);
        let next_step = household
            .contacts
            .iter()
            .map(|c| c.0)
            .filter(|step| *step > alert.notified_step)
            .min();
        if let (true, Some(step)) = (kind.is_welfare(), next_step) {
            if now - last < self.alerts.escalate_after.as_secs() as i64 {
                return Ok(false);
            }
            let recipients: Vec<(u32, String, String)> = household
                .contacts
                .iter()
                .filter(|c| c.0 == step)
                .cloned()
                .collect();
            let values = self.alert_values(&household, alert, now);
            let queued = self.send(
                tx,
                alert.id,
                kind,
                Purpose::Alert,
                &recipients,
                &values,
                now,
            )?;
            tx.set_notified(alert.id, step, now, alert.reminders, None)?;
            tx.record_event(
                alert.id,
                now,
                SYSTEM,
                "escalation",
                "escalated",
                &format!("step {step}"),
            )?;
            return Ok(queued);
        }
        if now - last < self.alerts.repeat_after.as_secs() as i64 {
            return Ok(false);
        }
        let n = alert.reminders + 1;
        let mut queued = false;
        for (phone, name, step, original) in tx.recipients(alert.id)? {
            let text = templates::reminder(n, self.language, &original);
            let key = format!("{}:reminder:{n}:{phone}", alert.id);
            queued |= tx.enqueue(
                alert.id,
                &phone,
                &name,
                step,
                "reminder",
                &text,
                &key,
                now * 1000,
            )?;
        }
        tx.set_notified(alert.id, alert.notified_step, now, n, None)?;
        tx.record_event(
            alert.id,
            now,
            SYSTEM,
            "escalation",
            "reminded",
            &format!("reminder {n}"),
        )?;
        Ok(queued)
    }
}

#[cfg(test)]
mod tests;
