//! The rest of the store's traits on every backend: an alert with its texts,
//! codes, attempts and receipts; absences, rule overrides, tokens, the audit
//! log and a month's facts; system alerts, the heartbeat and silent meters.

use super::*;
use crate::store::rules::RuleScope;

fn monitor() -> crate::domain::Actor {
    crate::domain::Actor::new(
        "李敏",
        crate::domain::Role::Monitor,
        crate::domain::Channel::Web,
    )
}

#[test]
fn an_alert_its_texts_codes_attempts_and_receipts_round_trip() {
    for (_guard, store) in stores() {
        alert_round_trip_on(&store);
    }
}

pub(super) fn alert_round_trip_on(store: &Store) {
    use super::engine::{AlertDb, EngineTx, QueuedText};
    use super::outbox::{Attempt, AttemptEnd, Receipt};
    register_good_csv(store);
    let mut engine = AlertDb::open(store).unwrap();
    let tx = engine.transaction().unwrap();
    let household = store.household("ZS-0001").unwrap().unwrap();
    let id = tx
        .insert_alert(&urgent_alert(household.id, T0, T0 + 36_000))
        .unwrap();
    tx.record_event(
        id,
        T0 + 36_000,
        "stillwater",
        "detector",
        "opened",
        "no water",
    )
    .unwrap();
    tx.assign_code("+8613800138000", 1, id).unwrap();
    let text = |key: &'static str| QueuedText {
        alert_id: id,
        phone: "+8613800138000",
        recipient: "李敏（社工）",
        step: 1,
        purpose: "alert",
        text: "张桂芳 家 10 小时无用水。回复 1 确认",
        idempotency_key: key,
        template: "no_usage.alert",
        template_values: "{}",
    };
    assert!(tx.enqueue(&text("k1"), T0 + 36_000).unwrap());
    assert!(
        !tx.enqueue(&text("k1"), T0 + 36_000).unwrap(),
        "queued once"
    );
    tx.set_notified(id, 1, T0 + 36_000, 0, None).unwrap();
    assert_eq!(tx.codes_in_use("+8613800138000").unwrap(), [(1, id)]);
    assert_eq!(
        tx.texts_since("ZS-0001", "alert", None, T0).unwrap(),
        1,
        "one text per alert and step"
    );
    assert_eq!(
        tx.texts_since("ZS-0001", "alert", Some("nobody"), T0)
            .unwrap(),
        0
    );
    assert_eq!(tx.recipients(id).unwrap().len(), 1);
    assert_eq!(tx.active_alerts("ZS-0001").unwrap()[0].notified_step, 1);
    tx.commit().unwrap();

    let record = store.alert(id).unwrap().unwrap();
    assert_eq!(record.resident_name.as_deref(), Some("张桂芳"));
    assert_eq!(store.list_alerts(false, 10).unwrap().len(), 1);
    let filter = super::alerts::AlertFilter {
        kind: Some("high_usage".into()),
        ..Default::default()
    };
    assert!(store.find_alerts(&filter, 10).unwrap().is_empty());
    assert_eq!(
        store.alert_for_code("+8613800138000", 1).unwrap(),
        Some((id, "open".to_string()))
    );
    assert_eq!(
        store.contact_name("+8613800138000").unwrap().as_deref(),
        Some("李敏（社工）")
    );
    assert!(!store.is_check_in_phone(id, "+8613800138000").unwrap());

    // The outbox: claimed by one gateway (another finds nothing until the
    // claim runs out), a retry, then sent, then its receipt (posted twice).
    let (first, second) = (claim("gw-a"), claim("gw-b"));
    let due = store.claim_due(T0 + 36_000, 10, &first).unwrap();
    assert_eq!(due.len(), 1);
    assert!(store
        .claim_due(T0 + 36_000, 10, &second)
        .unwrap()
        .is_empty());
    assert!(store
        .claim_due(T0 + 36_029, 10, &second)
        .unwrap()
        .is_empty());
    assert_eq!(store.claim_due(T0 + 36_000, 10, &first).unwrap().len(), 1); // its own again
    let taken_over = store.claim_due(T0 + 36_030, 10, &second).unwrap();
    assert_eq!(taken_over.len(), 1, "a claim that ran out is taken over");
    let id = taken_over[0].id;
    assert!(
        !store.renew_claim(id, &first, T0 + 36_030).unwrap(),
        "the first gateway, late, finds it taken and does not send it"
    );
    assert!(store.renew_claim(id, &second, T0 + 36_031).unwrap());
    assert!(store.claim_due(T0 + 36_030, 10, &first).unwrap().is_empty());
    assert_eq!(store.next_due().unwrap(), Some(T0 + 36_000));
    let text_id = due[0].id;
    let retry = Attempt::through(
        "aliyun",
        AttemptEnd::Retry {
            error: "timeout".into(),
            at: T0 + 36_060,
            pin: Some("aliyun".into()),
        },
    );
    store.record_attempt(text_id, &retry, T0 + 36_001).unwrap();
    assert!(store.claim_due(T0 + 36_059, 10, &first).unwrap().is_empty());
    // The attempt ended the claim: any gateway takes the retry when it is due.
    assert_eq!(store.claim_due(T0 + 36_060, 10, &first).unwrap().len(), 1);
    let sent = Attempt::through(
        "aliyun",
        AttemptEnd::Sent {
            provider: "aliyun".into(),
            reference: Some("biz-1".into()),
            segments: 1,
        },
    );
    store.record_attempt(text_id, &sent, T0 + 36_060).unwrap();
    let attempts = store.notification_attempts(text_id).unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a.outcome.as_str())
            .collect::<Vec<_>>(),
        ["retry", "sent"]
    );
    assert_eq!(
        store
            .texts_sent_since("aliyun", "+8613800138000", "no_usage.alert", T0)
            .unwrap(),
        1
    );
    assert_eq!(
        store.awaiting_receipts("aliyun", T0, T0 + 86_400).unwrap(),
        (1, 0)
    );
    let receipt = Receipt {
        provider: "aliyun",
        reference: Some("biz-1".into()),
        key: None,
        delivered: true,
        detail: "DELIVERED".into(),
    };
    assert_eq!(
        store.record_receipt(&receipt, T0 + 36_070).unwrap(),
        Some(id)
    );
    assert_eq!(
        store.record_receipt(&receipt, T0 + 36_080).unwrap(),
        Some(id)
    );
    assert_eq!(
        store.awaiting_receipts("aliyun", T0, T0 + 86_400).unwrap(),
        (1, 1)
    );
    let events = store.alert_events(id).unwrap();
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["opened", "text_delivered"],
        "the history says a receipt once"
    );

    // Acknowledged once: a second acknowledgement finds it moved.
    let actor = monitor();
    let stamp = super::tx::Stamp {
        at: T0 + 36_100,
        actor: &actor,
    };
    store
        .write(|tx| {
            assert!(tx.set_alert_state(id, &["open"], "acknowledged", stamp)?);
            assert!(!tx.set_alert_state(id, &["open"], "acknowledged", stamp)?);
            tx.set_disposition(id, "safe", "电话联系上了")?;
            tx.record_event(id, stamp, "acknowledged", "")?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let record = store.alert(id).unwrap().unwrap();
    assert_eq!(record.state, "acknowledged");
    assert_eq!(record.acknowledged.unwrap().1, "李敏");
    assert_eq!(record.disposition.as_deref(), Some("safe"));
}

fn claim(holder: &str) -> super::outbox::Claim {
    super::outbox::Claim {
        holder: holder.into(),
        lease_s: 30,
    }
}

#[test]
fn a_lease_stays_with_its_holder_until_it_runs_out() {
    use super::engine::{AlertDb, EngineTx};
    for (_guard, store) in stores() {
        let mut engine = AlertDb::open(&store).unwrap();
        let hold = |engine: &mut AlertDb, holder: &str, now: i64| {
            let tx = engine.transaction().unwrap();
            let held = tx.hold_lease("timers", holder, now, 30).unwrap();
            tx.commit().unwrap();
            held
        };
        assert!(hold(&mut engine, "gw-a", T0));
        assert!(!hold(&mut engine, "gw-b", T0 + 10));
        assert!(hold(&mut engine, "gw-a", T0 + 20), "renewed by its holder");
        assert!(!hold(&mut engine, "gw-b", T0 + 49));
        assert!(
            hold(&mut engine, "gw-b", T0 + 50),
            "taken over once it ran out"
        );
        assert!(!hold(&mut engine, "gw-a", T0 + 51));
    }
}

#[test]
fn absences_rules_tokens_the_audit_log_and_a_month_round_trip() {
    for (_guard, store) in stores() {
        absences_rules_tokens_on(&store);
    }
}

pub(super) fn absences_rules_tokens_on(store: &Store) {
    register_good_csv(store);
    let household = store.household("ZS-0001").unwrap().unwrap();
    let actor = monitor();
    let stamp = super::tx::Stamp {
        at: T0,
        actor: &actor,
    };
    let absence = store
        .write(|tx| {
            let id = tx.insert_absence(household.id, "hospital", T0, T0 + 7 * 86_400, stamp)?;
            assert_eq!(
                tx.set_rule(
                    "category",
                    "elderly_alone",
                    "warning_window",
                    Some("9h"),
                    stamp
                )?,
                None
            );
            assert_eq!(
                tx.set_rule(
                    "category",
                    "elderly_alone",
                    "warning_window",
                    Some("8h"),
                    stamp
                )?,
                Some("9h".to_string())
            );
            tx.set_rule("global", "*", "urgent_window", Some("20h"), stamp)?;
            tx.set_rule(
                "household",
                &household.id.to_string(),
                "quiet_start",
                Some("23:00"),
                stamp,
            )?;
            tx.audit(
                stamp,
                "rules.set",
                "elderly_alone",
                "warning_window: 9h → 8h",
            )?;
            Ok::<_, StoreError>(id)
        })
        .unwrap();
    let absences = store.absences(false, T0 + 60).unwrap();
    assert_eq!(absences.len(), 1);
    assert_eq!(absences[0].meters, "ZS-0001");
    assert_eq!(
        store.not_routine(household.id).unwrap().declared,
        [(T0, T0 + 7 * 86_400)]
    );
    assert!(store
        .write(|tx| tx.end_absence(absence, T0 + 86_400))
        .unwrap());
    assert!(!store
        .write(|tx| tx.end_absence(absence, T0 + 86_400))
        .unwrap());
    assert!(store.absences(false, T0 + 2 * 86_400).unwrap().is_empty());
    assert_eq!(store.absences(true, T0 + 2 * 86_400).unwrap().len(), 1);

    let keys = |scope: RuleScope| -> Vec<(String, String)> {
        store
            .rule_overrides(&scope)
            .unwrap()
            .into_iter()
            .map(|o| (o.scope, o.value))
            .collect()
    };
    assert_eq!(keys(RuleScope::Global), [("global".into(), "20h".into())]);
    assert_eq!(
        keys(RuleScope::Meter("ZS-0001".into())),
        [
            ("global".to_string(), "20h".to_string()),
            ("category".into(), "8h".into()),
            ("household".into(), "23:00".into())
        ]
    );
    assert!(matches!(
        store.rule_overrides(&RuleScope::Meter("NOPE".into())),
        Err(StoreError::NotRegistered(_))
    ));

    let token = store.add_token("值班", "monitor", &[7; 32], T0).unwrap();
    assert_eq!(store.token_by_hash(&[7; 32]).unwrap().unwrap().id, token);
    assert!(store.revoke_token(token, T0 + 1).unwrap());
    assert!(!store.revoke_token(token, T0 + 2).unwrap());
    assert_eq!(store.tokens().unwrap()[0].revoked_at, Some(T0 + 1));
    let audit = store.audit_log(0, 10).unwrap();
    assert_eq!(audit[0].detail, "warning_window: 9h → 8h");
    assert_eq!(audit[0].role, "monitor");

    let mut writer = store.writer(10);
    writer
        .write_batch(&[message(vec![reading("ZS-0002", T0 + 60, 1)])])
        .unwrap();
    let month = store.month_facts(T0 - 86_400, T0 + 30 * 86_400).unwrap();
    assert_eq!(
        (
            month.households_covered,
            month.meters_installed,
            month.meters_reporting
        ),
        (3, 3, 1)
    );
}

#[test]
fn system_alerts_the_heartbeat_and_silent_meters_round_trip() {
    for (_guard, store) in stores() {
        system_on(&store);
    }
}

fn system_on(store: &Store) {
    use super::engine::{AlertDb, EngineTx};
    use super::system::AdminText;
    let texts = |id: i64, code: &dyn Fn(&str) -> Result<u32, StoreError>| {
        let code = code("+8613900139000").unwrap();
        vec![AdminText {
            phone: "+8613900139000".into(),
            text: format!("短信服务商故障。回复 {code} 确认"),
            template: "provider_down.alert",
            values: "{}".into(),
            provider: None,
            idempotency_key: format!("system-{id}"),
        }]
    };
    let id = store
        .open_system_alert("provider_down", "aliyun", "500s", T0, &texts)
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .open_system_alert("provider_down", "aliyun", "still 500s", T0 + 60, &texts)
            .unwrap(),
        None,
        "an active one is only updated"
    );
    let active = store.active_system_alerts().unwrap();
    assert_eq!((active[0].id, active[0].subject.as_str()), (id, "aliyun"));
    assert_eq!(
        store
            .alert_for_code("+8613900139000", 1)
            .unwrap()
            .unwrap()
            .0,
        id
    );
    store
        .resolve_system_alert(id, "answers again", T0 + 120)
        .unwrap();
    assert!(store.active_system_alerts().unwrap().is_empty());
    assert!(store.queue_heartbeat("2026-12-03", "ok", &[], T0).unwrap());
    assert!(!store.queue_heartbeat("2026-12-03", "ok", &[], T0).unwrap());
    let past = store
        .record_past_system_alert("store_unwritable", "disk full", T0, T0 + 600)
        .unwrap();
    assert_eq!(store.alert(past).unwrap().unwrap().state, "resolved");
    store.mark_writable(T0).unwrap();

    // A registered meter that never reported is silent; one that reported is pending.
    register_good_csv(store);
    let mut writer = store.writer(10);
    writer
        .write_batch(&[message(vec![reading("ZS-0001", T0 + 60, 5)])])
        .unwrap();
    let mut engine = AlertDb::open(store).unwrap();
    assert_eq!(engine.pending_meters().unwrap(), ["ZS-0001"]);
    let tx = engine.transaction().unwrap();
    let work = tx.meter_work("ZS-0001", 86_400).unwrap().unwrap();
    assert_eq!(work.readings.len(), 1);
    assert_eq!(work.household.unwrap().contacts.len(), 2);
    tx.set_evaluated_through("ZS-0001", T0 + 60, Some(&[1, 2, 3]))
        .unwrap();
    let silent = tx.silent_meters(1_795_400_000 + 86_400, 3_600).unwrap();
    let mut ids: Vec<&str> = silent.iter().map(|s| s.meter_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["ZS-0001", "ZS-0002", "ZS-0003"]);
    tx.commit().unwrap();
    assert!(engine.pending_meters().unwrap().is_empty());
    assert_eq!(
        store.meter_state("ZS-0001").unwrap().unwrap().routine,
        Some(vec![1, 2, 3])
    );
}
