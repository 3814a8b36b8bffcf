//! Crash safety: the gateway process is killed (SIGKILL) in the middle of a
//! stream of readings and started again. The broker outlives it, as an external
//! broker does. Every reading must end up in the database exactly once: what
//! the gateway acknowledged was committed, and what it had not acknowledged is
//! redelivered to its persistent session.

#[path = "support/rumqttd.rs"]
mod broker;
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use stillwater::store::prelude::*;
use stillwater::store::Store;

const METERS: usize = 40;
const READINGS_PER_METER: usize = 60;

/// The gateway process; killed when dropped, so a failing test leaves nothing behind.
struct GatewayProcess(Child);

impl GatewayProcess {
    fn kill(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_gateway(config: &Path) -> GatewayProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the stillwater binary starts");
    GatewayProcess(child)
}

fn payload(meter: usize, index: usize) -> String {
    // 2026-11-01T00:00:00Z plus `index` hours; each meter's register rises by 3 L an hour.
    let ts = chrono::DateTime::from_timestamp(1_793_491_200 + index as i64 * 3600, 0).unwrap();
    native(&ts.to_rfc3339(), 10_000 * meter as i64 + 3 * index as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_gateway_mid_stream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker::start("127.0.0.1:0".parse().unwrap()).expect("broker starts");
    let db = dir.path().join("crash.db");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nmode = \"external\"\nurl = \"mqtt://{}\"\nclient_id = \"crash-test-gateway\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n",
            broker.addr,
            db.display()
        ),
    )
    .unwrap();
    let store = Store::open(&db).unwrap();
    let mut gateway = spawn_gateway(&config);
    let wait_for_session = store.clone();
    let mut publisher = Publisher::connect(broker.addr, "crash-test-meters").await;

    // Readings published before the gateway first subscribes reach nobody: publish
    // a probe (always the same reading, so repeats are duplicates) until it lands.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut every = tokio::time::interval(std::time::Duration::from_millis(50));
    while wait_for_session.meter_state("PROBE").unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway never subscribed"
        );
        every.tick().await;
        publisher
            .send("meters/PROBE/reading", native("2026-11-22T00:00:00Z", 1))
            .await;
        publisher.flush().await;
    }

    let total = METERS * READINGS_PER_METER;
    let mut killed = false;
    for index in 0..READINGS_PER_METER {
        for meter in 0..METERS {
            publisher
                .send(
                    &format!("meters/CRASH-{meter:03}/reading"),
                    payload(meter, index),
                )
                .await;
        }
        if !killed && index == READINGS_PER_METER / 3 {
            // Kill while readings are still in flight: some stored, more on their way.
            let store = store.clone();
            wait_until("the gateway has stored some of the stream", || {
                let store = store.clone();
                async move { store.reading_count().unwrap() > 1 + METERS as i64 }
            })
            .await;
            gateway.kill();
            killed = true;
        }
        if index == READINGS_PER_METER / 2 {
            gateway = spawn_gateway(&config);
        }
    }
    publisher.flush().await;
    let stored_before_kill_check = store.clone();
    wait_until("every reading is stored after the restart", || {
        let store = stored_before_kill_check.clone();
        async move { store.reading_count().unwrap() == 1 + total as i64 }
    })
    .await;
    gateway.kill();

    for meter in 0..METERS {
        let id = format!("CRASH-{meter:03}");
        let readings = store.readings(&id, 0, i64::MAX / 2).unwrap();
        assert_eq!(readings.len(), READINGS_PER_METER, "{id}");
        for (index, reading) in readings.iter().enumerate() {
            assert_eq!(
                reading.total_l,
                10_000 * meter as i64 + 3 * index as i64,
                "{id} reading {index}"
            );
            assert!(!reading.register_reset);
        }
        let state = store.meter_state(&id).unwrap().unwrap();
        assert_eq!(
            state.readings, READINGS_PER_METER as i64,
            "{id}: counted once each"
        );
        assert_eq!(
            state.last_total_l,
            Some(10_000 * meter as i64 + 3 * (READINGS_PER_METER as i64 - 1))
        );
    }
}

/// Meters publishing straight to the gateway's embedded MQTT server, which
/// is killed three times mid-stream and started again on the same port.
/// Nothing stands between the meters and the process that dies: a reading
/// acknowledged before its commit would be lost, since a meter never sends an
/// acknowledged reading again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_embedded_server_mid_stream_loses_no_acknowledged_reading() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let db = dir.path().join("embedded-crash.db");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nlisten = \"127.0.0.1:{port}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [store]\npath = \"{}\"\n",
            db.display()
        ),
    )
    .unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let listening = || async move { tokio::net::TcpStream::connect(addr).await.is_ok() };
    let mut gateway = spawn_gateway(&config);
    wait_until("the embedded server listens", listening).await;
    let store = Store::open(&db).unwrap();
    let mut publisher = Publisher::connect_persistent(addr, "embedded-crash-meters").await;
    let total = METERS * READINGS_PER_METER;
    let mut kills = 0;
    for index in 0..READINGS_PER_METER {
        for meter in 0..METERS {
            publisher
                .send(
                    &format!("meters/CRASH-{meter:03}/reading"),
                    payload(meter, index),
                )
                .await;
        }
        // Three kills, each once some of the stream is stored and more is on
        // its way, then a restart on the same port.
        if kills < 3 && index == (kills + 1) * READINGS_PER_METER / 4 {
            let store = store.clone();
            let some = (kills as i64 + 1) * METERS as i64;
            wait_until("the gateway has stored some of the stream", || {
                let store = store.clone();
                async move { store.reading_count().unwrap() > some }
            })
            .await;
            gateway.kill();
            kills += 1;
            gateway = spawn_gateway(&config);
            wait_until("the embedded server listens again", listening).await;
        }
    }
    publisher.flush().await;
    let done = store.clone();
    wait_until("every reading is stored", || {
        let store = done.clone();
        async move { store.reading_count().unwrap() == total as i64 }
    })
    .await;
    gateway.kill();
    for meter in 0..METERS {
        let id = format!("CRASH-{meter:03}");
        let state = store.meter_state(&id).unwrap().unwrap();
        assert_eq!(
            state.readings, READINGS_PER_METER as i64,
            "{id}: each reading stored once"
        );
        let readings = store.readings(&id, 0, i64::MAX / 2).unwrap();
        let totals: Vec<i64> = readings.iter().map(|r| r.total_l).collect();
        let expected: Vec<i64> = (0..READINGS_PER_METER)
            .map(|index| 10_000 * meter as i64 + 3 * index as i64)
            .collect();
        assert_eq!(totals, expected, "{id}");
    }
}
