//! The reading log: readings are readable from their commit, folded once, and
//! judged after a crash exactly as they were judged when they came.

use std::sync::Arc;
use std::time::Instant;

use super::Writer;
use crate::domain::{Litres, MeterId, Reading, StatusFlags, Timestamp};
use crate::metrics::Metrics;
use crate::pipeline::{Decoded, Message, TouchedMeters};
use crate::store::{ReadingStore, Store};

const T0: i64 = 1_795_392_000;

fn message(meter: &str, ts: i64, total_l: i64, seq: u64) -> Message {
    let meter = MeterId::parse(meter).unwrap();
    Message {
        topic: format!("meters/{meter}/reading"),
        received_at: Timestamp::from_secs(T0 + 86_400),
        received: Instant::now(),
        decoded: Decoded {
            meter: Some(meter.clone()),
            readings: vec![Reading {
                meter,
                ts: Timestamp::from_secs(ts),
                total: Litres::new(total_l),
                flow_lph: None,
                battery_pct: Some(80),
                status: StatusFlags::default(),
                seq: Some(seq),
            }],
            rejections: Vec::new(),
        },
        payload_head: Vec::new(),
        ack: None,
    }
}

fn times(store: &Store, meter: &str) -> Vec<i64> {
    store
        .readings(meter, 0, i64::MAX / 2)
        .unwrap()
        .iter()
        .map(|r| r.ts.secs())
        .collect()
}

fn log_rows(store: &Store) -> i64 {
    store
        .connect()
        .unwrap()
        .query_row("SELECT count(*) FROM reading_log", [], |row| row.get(0))
        .unwrap()
}

/// Three commits as the gateway makes them: a newest reading, a duplicate, a
/// late one from inside a gap the meter's counter showed, a second meter, a
/// register reset.
fn append_three_commits(writer: &mut Writer) {
    writer
        .append(&[message("A", T0, 100, 1), message("A", T0 + 3600, 110, 3)])
        .unwrap();
    let second = writer
        .append(&[
            message("A", T0 + 3600, 110, 3),
            message("A", T0 + 1800, 105, 2),
            message("B", T0, 7, 1),
        ])
        .unwrap();
    assert_eq!((second.duplicates, second.out_of_order), (1, 1));
    writer.append(&[message("A", T0 + 7200, 3, 4)]).unwrap();
}

#[test]
fn a_committed_reading_is_readable_before_its_fold_and_a_crash_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("log.db")).unwrap();
    let mut writer = Writer::open(&store, 100, Arc::new(Metrics::default())).unwrap();
    append_three_commits(&mut writer);
    assert_eq!(times(&store, "A"), [T0, T0 + 1800, T0 + 3600, T0 + 7200]);
    assert_eq!(times(&store, "B"), [T0]);
    assert_eq!(log_rows(&store), 3);
    // Nothing folded yet: the meters' state has not moved.
    assert_eq!(store.reading_count().unwrap(), 0);
    drop(writer); // killed before any fold

    let mut writer = Writer::open(&store, 100, Arc::new(Metrics::default())).unwrap();
    assert_eq!(writer.recover().unwrap(), 5);
    assert_eq!(log_rows(&store), 0);
    assert_eq!(
        writer.recover().unwrap(),
        0,
        "a second start folds nothing again"
    );
    assert_eq!(store.reading_count().unwrap(), 5);
    assert_eq!(times(&store, "A"), [T0, T0 + 1800, T0 + 3600, T0 + 7200]);
    let a = store.meter_state("A").unwrap().unwrap();
    assert_eq!(a.readings, 4);
    assert_eq!(a.last_reading_ts, Some(T0 + 7200));
    assert_eq!(a.last_total_l, Some(3));
    assert_eq!(a.last_battery_pct, Some(80));
    assert_eq!(a.register_resets, 1);
    assert_eq!(a.last_consumption_ts, Some(T0 + 3600));
    // seq 2 was missing when seq 3 came, then arrived late.
    assert_eq!(a.missing, 0);
    let stored = store.readings("A", 0, i64::MAX / 2).unwrap();
    assert!(stored[3].register_reset && !stored[2].register_reset);
    let (events, late_from): (i64, Option<i64>) = store
        .connect()
        .unwrap()
        .query_row(
            "SELECT (SELECT count(*) FROM meter_events WHERE kind = 'register_reset'),
                    (SELECT late_from FROM meter_state WHERE meter_id = 'A')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((events, late_from), (1, Some(T0 + 1800)));
}

#[test]
fn a_fold_gives_the_same_store_as_writing_directly_and_then_names_the_meters() {
    let dir = tempfile::tempdir().unwrap();
    let logged = Store::open(dir.path().join("logged.db")).unwrap();
    let direct = Store::open(dir.path().join("direct.db")).unwrap();
    let touched = Arc::new(TouchedMeters::default());
    let mut writer = Writer::open(&logged, 100, Arc::new(Metrics::default()))
        .unwrap()
        .with_listener(touched.clone());
    append_three_commits(&mut writer);
    let (before, _) = touched.take(std::time::Duration::ZERO);
    assert!(
        before.is_empty(),
        "the engine hears of a meter only after its fold"
    );
    writer.fold_unfolded().unwrap();
    let (mut after, _) = touched.take(std::time::Duration::ZERO);
    after.sort();
    assert_eq!(
        after,
        [MeterId::parse("A").unwrap(), MeterId::parse("B").unwrap()]
    );
    assert_eq!(log_rows(&logged), 0);

    let mut plain = Writer::open(&direct, 100, Arc::new(Metrics::default())).unwrap();
    for batch in [
        vec![message("A", T0, 100, 1), message("A", T0 + 3600, 110, 3)],
        vec![
            message("A", T0 + 3600, 110, 3),
            message("A", T0 + 1800, 105, 2),
            message("B", T0, 7, 1),
        ],
        vec![message("A", T0 + 7200, 3, 4)],
    ] {
        plain.write_batch(&batch).unwrap();
    }
    for meter in ["A", "B"] {
        assert_eq!(
            logged.readings(meter, 0, i64::MAX / 2).unwrap(),
            direct.readings(meter, 0, i64::MAX / 2).unwrap()
        );
        assert_eq!(
            logged.meter_state(meter).unwrap(),
            direct.meter_state(meter).unwrap()
        );
    }
}

#[test]
fn a_commit_that_fails_part_way_changes_nothing_and_the_resent_batch_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("log.db")).unwrap();
    let mut writer = Writer::open(&store, 100, Arc::new(Metrics::default())).unwrap();
    writer.append(&[message("A", T0, 100, 1)]).unwrap();
    let other = store.connect().unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER full BEFORE INSERT ON reading_log BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .unwrap();
    // Staged (a new meter, a newest reading) and then refused at the log row.
    let batch = [message("A", T0 + 3600, 110, 2), message("C", T0, 5, 1)];
    let error = writer.append(&batch).unwrap_err();
    assert!(error.to_string().contains("disk full"), "{error}");
    other.execute_batch("DROP TRIGGER full").unwrap();
    // The sender never got its acknowledgement and sends the batch again.
    let outcome = writer.append(&batch).unwrap();
    assert_eq!((outcome.accepted, outcome.duplicates), (2, 0));
    writer.fold_unfolded().unwrap();
    assert_eq!(times(&store, "A"), [T0, T0 + 3600]);
    assert_eq!(times(&store, "C"), [T0]);
    assert_eq!(store.reading_count().unwrap(), 3);
    assert_eq!(
        store.meter_state("A").unwrap().unwrap().last_total_l,
        Some(110)
    );
}
