//! Actions against a real SQLite file: what each changes, what it refuses,
//! and that each leaves an audit record.

use super::*;
use crate::domain::{Channel, Disposition, MeterId, Timestamp};
use crate::store::prelude::*;
use crate::store::Store;

const T0: i64 = 1_795_392_000;

fn installer() -> Actor {
    Actor::new("installer", Role::Installer, Channel::Cli)
}

fn with_good_csv() -> (tempfile::TempDir, Store, Vec<crate::registry::NewHousehold>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("actions.db")).unwrap();
    let households = crate::registry::parse_csv(
        include_str!("../../tests/fixtures/csv/good.csv"),
        &Default::default(),
    )
    .unwrap();
    meters::register(&store, &installer(), &households, T0).unwrap();
    (dir, store, households)
}

#[test]
fn registration_is_all_or_nothing_and_replacement_moves_the_household() {
    let (_dir, store, households) = with_good_csv();
    assert_eq!(store.list_meters().unwrap().len(), 3);

    // A second import naming an active meter changes nothing.
    let mut again = households.clone();
    again[0].meter = MeterId::parse("ZS-0999").unwrap();
    let error = meters::register(&store, &installer(), &again, T0).unwrap_err();
    assert!(
        matches!(error, ActionError::AlreadyRegistered { row: 3, ref meter, .. } if meter == "ZS-0002"),
        "{error}"
    );
    assert_eq!(
        store.list_meters().unwrap().len(),
        3,
        "ZS-0999 must not have been registered"
    );

    meters::replace(&store, &installer(), "ZS-0001", "ZS-0100", T0 + 10).unwrap();
    let old = store
        .meter_details("ZS-0001", 0)
        .unwrap()
        .unwrap()
        .registration
        .unwrap();
    let new = store
        .meter_details("ZS-0100", 0)
        .unwrap()
        .unwrap()
        .registration
        .unwrap();
    assert_eq!(
        (old.status.as_str(), old.replaced_by.as_deref()),
        ("replaced", Some("ZS-0100"))
    );
    assert_eq!(
        (new.status.as_str(), new.household_id),
        ("active", old.household_id)
    );
    assert_eq!(new.contacts[0].2, "+8613800138000");

    meters::remove(&store, &installer(), "ZS-0002", T0 + 20).unwrap();
    assert!(matches!(
        meters::remove(&store, &installer(), "ZS-0002", T0),
        Err(ActionError::NotRegistered(_))
    ));
    let connection = store.connect().unwrap();
    let audited: i64 = connection
        .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(audited, 5);
}

#[test]
fn each_role_may_do_only_its_own_actions() {
    let (_dir, store, _) = with_good_csv();
    let monitor = Actor::new("李敏", Role::Monitor, Channel::Api);
    let refused = meters::remove(&store, &monitor, "ZS-0001", T0).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("李敏 (monitor) may not meters.remove"),
        "{refused}"
    );
    let resident = Actor::new("张桂芳", Role::Resident, Channel::Sms);
    assert!(matches!(
        alerts::acknowledge(&store, &resident, 1, T0),
        Err(ActionError::NotAllowed { .. })
    ));
    let operator = Actor::new("op", Role::Operator, Channel::Cli);
    assert!(matches!(
        alerts::close(&store, &operator, 99, Disposition::Safe, "", T0),
        Err(ActionError::NoSuchAlert(99))
    ));
}

#[test]
fn an_absence_is_bounded_and_audited() {
    let (_dir, store, _) = with_good_csv();
    let operator = Actor::new("op", Role::Operator, Channel::Cli);
    let meters = ["ZS-0001".to_string()];
    for (from, until, reason, phrase) in [
        (T0, T0, "hospital", "must end after it starts"),
        (T0, T0 + 91 * 86_400, "hospital", "at most 90 days"),
        (T0, T0 + 86_400, "  ", "needs a reason"),
    ] {
        let error =
            absences::declare(&store, &operator, &meters, reason, from, until, T0).unwrap_err();
        assert!(error.to_string().contains(phrase), "{error}");
    }
    assert_eq!(
        absences::declare(&store, &operator, &meters, "hospital", T0, T0 + 86_400, T0).unwrap(),
        1
    );
    let connection = rusqlite::Connection::open(store.path().unwrap()).unwrap();
    let (role, channel): (String, String) = connection
        .query_row(
            "SELECT role, channel FROM audit_log WHERE action = 'absence.declare'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((role.as_str(), channel.as_str()), ("operator", "cli"));
}

#[test]
fn an_imported_history_counts_as_evaluated_so_it_never_texts() {
    let (dir, store, _) = with_good_csv();
    // A morning's use, then 30 silent hours: live, an urgent no_usage.
    let mut csv = String::from("meter_id,ts,total_l\n");
    for hour in 0..40 {
        let total = if hour < 10 { 1000 + hour } else { 1010 };
        csv.push_str(&format!(
            "ZS-0001,{},{total}\n",
            Timestamp::from_secs(T0 + hour * 3600)
        ));
    }
    let path = dir.path().join("history.csv");
    std::fs::write(&path, csv).unwrap();
    let mut writer = crate::store::writer::Writer::open(
        &store,
        100,
        std::sync::Arc::new(crate::metrics::Metrics::default()),
    )
    .unwrap();
    let operator = Actor::new("op", Role::Operator, Channel::Cli);
    let now = Timestamp::from_secs(T0 + 50 * 3600);
    let imported = readings::import(
        &store,
        &mut writer,
        &operator,
        &path,
        chrono_tz::Asia::Shanghai,
        crate::wire::Arrival::at(now),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!((imported.stored, imported.meters), (40, 1));
    let config = crate::config::Config::default_config();
    let mut engine = crate::alert::Engine::new(
        &store,
        config.rules.clone(),
        config.alerts.clone(),
        &config.sms,
        std::sync::Arc::new(tokio::sync::Notify::new()),
        crate::clock::ManualClock::at(now),
    )
    .unwrap();
    engine.evaluate_meter("ZS-0001").unwrap();
    assert!(store.list_alerts(true, 10).unwrap().is_empty());
    assert!(store.notifications(None).unwrap().is_empty());
}
