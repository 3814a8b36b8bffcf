//! The store's suite. Every test but the SQLite-specific ones (migrations, and
//! one check of `meter_events`) goes through [`Backend`]: the read traits, a
//! [`ReadingWriter`] and write transactions of [`Tx`] primitives. A second
//! backend implements `Backend`, is added to [`backends`], and runs them all.

use std::sync::Arc;
use std::time::Instant;

use super::tx::Tx;
use super::writer::Writer;
use super::*;
use crate::domain::{Litres, Timestamp};
use crate::domain::{MeterId, Reading, StatusFlags};
use crate::metrics::Metrics;
use crate::pipeline::Message;
use crate::pipeline::{Decoded, RejectReason, Rejection};
use crate::registry::parse_csv;
use crate::store::prelude::*;

/// What the suite needs of a backend.
trait Backend:
    ReadingStore + RegistryStore + AlertStore + OutboxStore + AbsenceStore + RuleStore
{
    /// A writer keeping `rejected_keep` rejected messages; a new one recovers
    /// what earlier ones wrote.
    fn writer(&self, rejected_keep: u32) -> Box<dyn ReadingWriter>;
    /// Runs `work` in one write transaction.
    fn transaction(&self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>);
}

impl Backend for Store {
    fn writer(&self, rejected_keep: u32) -> Box<dyn ReadingWriter> {
        Box::new(Writer::open(self, rejected_keep, Arc::new(Metrics::default())).unwrap())
    }

    fn transaction(&self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>) {
        self.write(|tx| work(tx)).unwrap();
    }
}

/// Every backend the suite runs on, fresh and empty: SQLite, and PostgreSQL
/// when `STILLWATER_TEST_POSTGRES` names a server (then it must answer).
fn stores() -> Vec<(Box<dyn std::any::Any>, Store)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path().join("test.db")).unwrap();
    let mut stores: Vec<(Box<dyn std::any::Any>, Store)> = vec![(Box::new(dir), sqlite)];
    if let Some((schema, store)) = postgres_store() {
        stores.push((Box::new(schema), store));
    }
    stores
}

/// [`stores`] as the suite's [`Backend`].
fn backends() -> Vec<(Box<dyn std::any::Any>, Box<dyn Backend>)> {
    stores()
        .into_iter()
        .map(|(guard, store)| (guard, Box::new(store) as Box<dyn Backend>))
        .collect()
}

/// A store in a new PostgreSQL schema of its own (dropped with the guard),
/// when `STILLWATER_TEST_POSTGRES` is set.
pub(crate) fn postgres_store() -> Option<(PostgresSchema, Store)> {
    let url = std::env::var("STILLWATER_TEST_POSTGRES").ok()?;
    let name = format!("sw_test_{:016x}", rand_u64());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
        panic!("STILLWATER_TEST_POSTGRES is set but {url} does not answer: {e}")
    });
    client
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{name}");
    let store = Store::open_postgres(&scoped, None).unwrap();
    Some((PostgresSchema { client, name }, store))
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}

/// Drops its test schema when dropped.
pub(crate) struct PostgresSchema {
    client: postgres::Client,
    name: String,
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
    }
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("test.db")).unwrap();
    (dir, store)
}

fn reading(meter: &str, ts: i64, total_l: i64) -> Reading {
    Reading {
        meter: MeterId::parse(meter).unwrap(),
        ts: Timestamp::from_secs(ts),
        total: Litres::new(total_l),
        flow_lph: None,
        battery_pct: None,
        status: StatusFlags::default(),
        seq: None,
    }
}

fn message(readings: Vec<Reading>) -> Message {
    Message {
        topic: "meters/x/reading".into(),
        received_at: Timestamp::from_secs(1_795_400_000),
        received: Instant::now(),
        decoded: Decoded {
            meter: readings.first().map(|r| r.meter.clone()),
            readings,
            rejections: Vec::new(),
        },
        payload_head: Vec::new(),
        ack: None,
    }
}

/// Registers the three households of tests/fixtures/csv/good.csv through the
/// write primitives, as an action would.
fn register_good_csv(store: &dyn Backend) {
    let households = parse_csv(
        include_str!("../../tests/fixtures/csv/good.csv"),
        &Default::default(),
    )
    .unwrap();
    store.transaction(&mut |tx| {
        for household in &households {
            let id = tx.insert_household(household, T0)?;
            tx.attach_meter(household.meter.as_str(), id, T0)?;
        }
        Ok(())
    });
}

const T0: i64 = 1_795_392_000;

#[test]
fn migrations_run_once_and_a_newer_schema_is_refused() {
    let (dir, store) = temp_store();
    Store::open(store.path().unwrap()).unwrap(); // a second open applies nothing and succeeds
    let connection = store.connect().unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, schema::VERSION);
    connection
        .pragma_update(None, "user_version", schema::VERSION + 1)
        .unwrap();
    let error = Store::open(dir.path().join("test.db")).unwrap_err();
    assert!(matches!(error, StoreError::SchemaTooNew { .. }), "{error}");
    assert!(error.to_string().contains("upgrade stillwater"));
}

#[test]
fn readings_and_state_survive_a_reopen() {
    for (_dir, store) in backends() {
        readings_and_state_survive_a_reopen_on(store.as_ref());
    }
}

fn readings_and_state_survive_a_reopen_on(store: &dyn Backend) {
    let mut writer = store.writer(100);
    let outcome = writer
        .write_batch(&[
            message(vec![reading("A", T0, 100), reading("A", T0 + 3600, 110)]),
            message(vec![reading("B", T0, 5)]),
        ])
        .unwrap();
    assert_eq!(outcome.accepted, 3);
    drop(writer);

    // A new writer recovers each meter's state: B's next reading is not its first.
    let mut writer = store.writer(100);
    let again = writer
        .write_batch(&[message(vec![reading("B", T0 + 3600, 4)])])
        .unwrap();
    assert_eq!(again.register_resets, 1, "the recovered register was 5");
    let state = store.meter_state("A").unwrap().unwrap();
    assert_eq!(state.last_reading_ts, Some(T0 + 3600));
    assert_eq!(state.last_total_l, Some(110));
    assert_eq!(state.last_consumption_ts, Some(T0 + 3600));
    assert_eq!(state.readings, 2);
    let totals: Vec<i64> = store
        .readings("A", 0, i64::MAX / 2)
        .unwrap()
        .iter()
        .map(|r| r.total_l)
        .collect();
    assert_eq!(totals, [100, 110]);
    assert_eq!(store.reading_count().unwrap(), 4);
}

#[test]
fn duplicates_are_ignored_and_out_of_order_readings_leave_state_alone() {
    for (_dir, store) in backends() {
        duplicates_on(store.as_ref());
    }
}

fn duplicates_on(store: &dyn Backend) {
    let mut writer = store.writer(100);
    writer
        .write_batch(&[message(vec![reading("A", T0 + 7200, 120)])])
        .unwrap();
    let outcome = writer
        .write_batch(&[
            message(vec![reading("A", T0 + 7200, 999)]), // same second: duplicate
            message(vec![reading("A", T0, 100)]),        // older: stored, state unchanged
        ])
        .unwrap();
    assert_eq!(
        (outcome.accepted, outcome.duplicates, outcome.out_of_order),
        (1, 1, 1)
    );
    let state = store.meter_state("A").unwrap().unwrap();
    assert_eq!(state.last_reading_ts, Some(T0 + 7200));
    assert_eq!(state.last_total_l, Some(120));
    let readings = store.readings("A", 0, i64::MAX / 2).unwrap();
    assert_eq!(
        readings
            .iter()
            .map(|r| (r.ts.secs(), r.total_l))
            .collect::<Vec<_>>(),
        [(T0, 100), (T0 + 7200, 120)]
    );
}

#[test]
fn a_register_that_goes_backwards_is_a_reset_not_negative_use() {
    // SQLite-specific at its end: the reset's event is checked in SQL.
    let (_dir, store) = temp_store();
    let mut writer = store.writer(100);
    writer
        .write_batch(&[message(vec![
            reading("A", T0, 5000),
            reading("A", T0 + 3600, 5010),
            reading("A", T0 + 7200, 3),
        ])])
        .unwrap();
    let state = store.meter_state("A").unwrap().unwrap();
    assert_eq!(state.register_resets, 1);
    assert_eq!(state.last_total_l, Some(3));
    assert_eq!(
        state.last_consumption_ts,
        Some(T0 + 3600),
        "a reset is not consumption"
    );
    let readings = store.readings("A", 0, i64::MAX / 2).unwrap();
    assert_eq!(
        readings
            .iter()
            .map(|r| r.register_reset)
            .collect::<Vec<_>>(),
        [false, false, true]
    );
    let connection = store.connect().unwrap();
    let detail: String = connection
        .query_row(
            "SELECT detail FROM meter_events WHERE kind = 'register_reset'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(detail, "register went from 5010 L to 3 L");
}

#[test]
fn rejected_messages_are_kept_up_to_the_limit_and_name_the_meter() {
    for (_dir, store) in backends() {
        rejected_messages_on(store.as_ref());
    }
}

fn rejected_messages_on(store: &dyn Backend) {
    let mut writer = store.writer(3);
    for index in 0..5 {
        let mut bad = message(Vec::new());
        bad.decoded.meter = Some(MeterId::parse("A").unwrap());
        bad.decoded.rejections.push(Rejection::new(
            RejectReason::InvalidJson,
            format!("bad {index}"),
        ));
        bad.payload_head = b"{oops".to_vec();
        writer.write_batch(&[bad]).unwrap();
    }
    let rejected = store.rejected_messages(10).unwrap();
    assert_eq!(
        rejected
            .iter()
            .map(|r| r.detail.as_str())
            .collect::<Vec<_>>(),
        ["bad 4", "bad 3", "bad 2"]
    );
    assert_eq!(rejected[0].payload, "{oops");
    assert_eq!(rejected[0].meter_id.as_deref(), Some("A"));
    let state = store.meter_state("A").unwrap().unwrap();
    assert_eq!((state.rejected, state.last_reading_ts), (5, None));
}

#[test]
fn meters_that_publish_unregistered_are_listed() {
    for (_dir, store) in backends() {
        unregistered_on(store.as_ref());
    }
}

fn unregistered_on(store: &dyn Backend) {
    register_good_csv(store);
    assert_eq!(store.list_meters().unwrap().len(), 3);
    let mut writer = store.writer(100);
    writer
        .write_batch(&[
            message(vec![reading("ZS-0001", T0, 1)]),
            message(vec![reading("STRAY-1", T0, 1)]),
        ])
        .unwrap();
    let unregistered = store.unregistered_meters().unwrap();
    assert_eq!(unregistered.len(), 1);
    assert_eq!(unregistered[0].meter_id, "STRAY-1");
    assert_eq!(unregistered[0].readings, 1);
}

#[test]
fn counting_a_meters_recent_texts_reads_only_its_alerts_and_their_texts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("plan.db")).unwrap();
    let connection = store.connect().unwrap();
    let plan: Vec<String> = connection
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            super::engine::TEXTS_SINCE
        ))
        .unwrap()
        .query_map(
            rusqlite::params!["ZS-0001", "check_in", None::<String>, 0],
            |row| row.get::<_, String>(3),
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().all(|step| !step.starts_with("SCAN")),
        "a scan grows with every alert ever raised: {plan:?}"
    );
}

mod migrate;
mod round_trips;

/// An urgent `no_usage` alert of ZS-0001's household, quiet since `since`,
/// opened at `opened_at`.
pub(crate) fn urgent_alert(
    household_id: i64,
    since: i64,
    opened_at: i64,
) -> super::engine::NewAlert<'static> {
    super::engine::NewAlert {
        meter_id: "ZS-0001",
        household_id: Some(household_id),
        kind: "no_usage",
        severity: "urgent",
        since,
        opened_at,
        detail: "no water for a day",
        created_at: opened_at,
    }
}
