//! `stillwater migrate`: a SQLite store copied into PostgreSQL, interrupted
//! in the middle of a table and resumed.

use super::round_trips::{absences_rules_tokens_on, alert_round_trip_on};
use super::*;
use crate::store::migrate::{copy, copy_in_chunks};

#[test]
fn a_copy_interrupted_mid_table_resumes_and_every_table_counts_the_same() {
    let Some((mut guard, target)) = postgres_store() else {
        return;
    };
    let (_dir, source) = temp_store();
    alert_round_trip_on(&source);
    absences_rules_tokens_on(&source);
    let households: i64 = (&source.db().unwrap() as &dyn Db)
        .query_value("SELECT count(*) FROM households", args![])
        .unwrap();
    assert!(
        households > 4,
        "the source has households to copy in chunks"
    );

    // The target refuses households past the fourth: the copy stops there,
    // two chunks of two committed.
    let refuse = format!(
        "ALTER TABLE {}.households ADD CONSTRAINT interrupted CHECK (id <= 4)",
        guard.name
    );
    guard.client.batch_execute(&refuse).unwrap();
    let error = copy_in_chunks(&source, &target, 2, &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("interrupted"), "{error}");
    let copied: i64 = (&target.db().unwrap() as &dyn Db)
        .query_value("SELECT count(*) FROM households", args![])
        .unwrap();
    assert_eq!(copied, 4);

    let allow = format!(
        "ALTER TABLE {}.households DROP CONSTRAINT interrupted",
        guard.name
    );
    guard.client.batch_execute(&allow).unwrap();
    let counts = copy_in_chunks(&source, &target, 2, &mut |_| {}).unwrap();
    let stopped_at = counts
        .iter()
        .position(|count| count.table == "households")
        .unwrap();
    for (index, count) in counts.iter().enumerate() {
        assert!(count.matches(), "{count:?}");
        let resumed = match index.cmp(&stopped_at) {
            std::cmp::Ordering::Less => 0, // finished by the first run
            std::cmp::Ordering::Equal => count.source - 4,
            std::cmp::Ordering::Greater => count.source,
        };
        assert_eq!(count.copied, resumed, "{count:?}");
    }
    assert!(counts.iter().any(|count| count.table == "reading_chunks"));

    // What operators see is the same on both, and new rows get new ids.
    assert_eq!(
        source.list_alerts(true, 100).unwrap(),
        target.list_alerts(true, 100).unwrap()
    );
    assert_eq!(
        source.notifications(None).unwrap(),
        target.notifications(None).unwrap()
    );
    assert_eq!(
        source.audit_log(0, 100).unwrap(),
        target.audit_log(0, 100).unwrap()
    );
    for table in ["households", "alerts", "notifications", "alert_events"] {
        let next = format!(
            "SELECT nextval(pg_get_serial_sequence('{0}.{1}', 'id')) > (SELECT max(id) FROM {0}.{1})",
            guard.name, table
        );
        let row = guard.client.query_one(&next, &[]).unwrap();
        assert!(row.get::<_, bool>(0), "{table}'s next id is a new one");
    }
    let again = copy(&source, &target, &mut |_| {}).unwrap();
    assert!(again
        .iter()
        .all(|count| count.copied == 0 && count.matches()));
}

#[test]
fn a_target_holding_other_data_is_refused() {
    let Some((_guard, target)) = postgres_store() else {
        return;
    };
    register_good_csv(&target);
    let (_dir, source) = temp_store();
    let error = copy(&source, &target, &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("empty database"), "{error}");
}
