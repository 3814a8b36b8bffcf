//! Crash safety: the gateway process is killed (SIGKILL) in the middle of a
//! stream of readings and started again. The broker outlives it, as an external
//! broker does. Every reading must end up in the database exactly once: what
//! the gateway acknowledged was committed, and what it had not acknowledged is
//! redelivered to its persistent session.

#[path = "support/rumqttd.rs"]
mod broker;
mod common;

use std::path::Path;
use std::process::Command;

use common::processes::GatewayProcess;
use common::*;
use stillwater::store::prelude::*;
use stillwater::store::Store;

const METERS: usize = 40;
const READINGS_PER_METER: usize = 60;

/// The register of `meter`'s reading number `index`, litres.
fn register(meter: usize, index: usize) -> i64 {
    10_000 * meter as i64 + 3 * index as i64
}

fn payload(meter: usize, index: usize) -> String {
    // 2026-01-01T00:00:00Z plus `index` hours (a soak's thousand hours stay in
    // the past); each meter's register rises by 3 L an hour.
    let ts = chrono::DateTime::from_timestamp(1_767_225_600 + index as i64 * 3600, 0).unwrap();
    native(&ts.to_rfc3339(), register(meter, index))
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
    let mut gateway = GatewayProcess::spawn(&config);
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
        publish_round(&mut publisher, index).await;
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
            gateway = GatewayProcess::spawn(&config);
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

    assert_each_stored_once(&store, READINGS_PER_METER);
}

/// Meters publishing straight to the gateway's embedded MQTT server, which
/// is killed three times mid-stream and started again on the same port.
/// Nothing stands between the meters and the process that dies: a reading
/// acknowledged before its commit would be lost, since a meter never sends an
/// acknowledged reading again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_embedded_server_mid_stream_loses_no_acknowledged_reading() {
    embedded_campaign(3, READINGS_PER_METER, 0).await;
}

/// The long version, for a soak: `CRASH_SOAK_KILLS` kills (default 100) at
/// pseudo-random points of a stream of `CRASH_SOAK_READINGS` readings per meter
/// (default 1,000), seeded by `CRASH_SOAK_SEED`:
/// `cargo test --release --test crash soak -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of many kills: run by hand (docs/operations.md)"]
async fn soak_the_embedded_server_with_kills() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (kills, readings, seed) = (
        env("CRASH_SOAK_KILLS", 100),
        env("CRASH_SOAK_READINGS", 1_000),
        env("CRASH_SOAK_SEED", 1),
    );
    let started = std::time::Instant::now();
    embedded_campaign(kills, readings, seed as u64).await;
    println!(
        "soak: {kills} kills over {} readings from {METERS} meters, seed {seed}: every reading stored once, in {:.0} s",
        readings * METERS,
        started.elapsed().as_secs_f64()
    );
}

/// A configuration file in `dir` for a gateway process with its embedded
/// server on a free port and `extra` TOML: (the file, the database, where
/// meters connect).
fn embedded_gateway(
    dir: &Path,
    extra: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::net::SocketAddr) {
    let port = free_port();
    let db = dir.join("gateway.db");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nlisten = \"127.0.0.1:{port}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [store]\npath = \"{}\"\n{extra}",
            db.display()
        ),
    )
    .unwrap();
    (config, db, ([127, 0, 0, 1], port).into())
}

/// Publishes `per_meter` readings for each of METERS meters to a gateway
/// process on the embedded server, killing it `kills` times — evenly spread
/// when `seed` is 0, at pseudo-random points otherwise — and checks that every
/// reading is stored exactly once.
async fn embedded_campaign(kills: usize, per_meter: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (config, db, addr) = embedded_gateway(dir.path(), "");
    let listening = || async move { tokio::net::TcpStream::connect(addr).await.is_ok() };
    let mut gateway = GatewayProcess::spawn(&config);
    wait_until("the embedded server listens", listening).await;
    let store = Store::open(&db).unwrap();
    let mut publisher = Publisher::connect_persistent(addr, "embedded-crash-meters").await;
    // Where in the stream (by reading index) each kill comes.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut points: Vec<usize> = (0..kills)
        .map(|kill| {
            if seed == 0 {
                (kill + 1) * per_meter / (kills + 1)
            } else {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                1 + (state % (per_meter as u64 - 1)) as usize
            }
        })
        .collect();
    points.sort_unstable();
    let mut next_kill = points.iter().peekable();
    for index in 0..per_meter {
        publish_round(&mut publisher, index).await;
        while next_kill.next_if(|point| **point == index).is_some() {
            // Killed once something of this stretch is stored and more is on its way.
            let store = store.clone();
            let some = (index * METERS / 2) as i64;
            wait_until("the gateway has stored some of the stream", || {
                let store = store.clone();
                async move { store.reading_count().unwrap() >= some }
            })
            .await;
            gateway.kill();
            gateway = GatewayProcess::spawn(&config);
            wait_until("the embedded server listens again", listening).await;
        }
    }
    if let Err((acked, sent)) = publisher.try_flush().await {
        // Say what is stored, not only what was acknowledged.
        let missing: Vec<String> = (0..METERS)
            .flat_map(|meter| {
                let id = format!("CRASH-{meter:03}");
                let stored: std::collections::HashSet<i64> = store
                    .readings(&id, 0, i64::MAX / 2)
                    .unwrap()
                    .iter()
                    .map(|r| r.total_l)
                    .collect();
                (0..per_meter)
                    .filter(move |index| !stored.contains(&register(meter, *index)))
                    .map(move |index| format!("{id} #{index}"))
            })
            .collect();
        panic!(
            "{acked} of {sent} messages acknowledged after 30 s; not stored: {} {missing:?}",
            missing.len()
        );
    }
    let total = (METERS * per_meter) as i64;
    let done = store.clone();
    wait_until("every reading is stored", || {
        let store = done.clone();
        async move { store.reading_count().unwrap() == total }
    })
    .await;
    gateway.kill();
    assert_each_stored_once(&store, per_meter);
}

/// Each meter's reading number `index`.
async fn publish_round(publisher: &mut Publisher, index: usize) {
    for meter in 0..METERS {
        publisher
            .send(
                &format!("meters/CRASH-{meter:03}/reading"),
                payload(meter, index),
            )
            .await;
    }
}

/// Every meter has its `per_meter` readings, each once, in order, none
/// taken for a register reset.
fn assert_each_stored_once(store: &Store, per_meter: usize) {
    for meter in 0..METERS {
        let id = format!("CRASH-{meter:03}");
        let state = store.meter_state(&id).unwrap().unwrap();
        assert_eq!(state.readings, per_meter as i64, "{id}: counted once each");
        let readings = store.readings(&id, 0, i64::MAX / 2).unwrap();
        let totals: Vec<i64> = readings.iter().map(|r| r.total_l).collect();
        let expected: Vec<i64> = (0..per_meter).map(|index| register(meter, index)).collect();
        assert_eq!(totals, expected, "{id}");
        assert!(readings.iter().all(|r| !r.register_reset), "{id}");
    }
}

/// Households whose homes have been silent for a day, each with a contact to text.
fn silent_homes(homes: usize) -> String {
    let mut csv = String::from(
        "meter_id,resident_name,address,category,timezone,reporting_interval_min,contact1_name,contact1_phone\n",
    );
    for home in 0..homes {
        csv.push_str(&format!(
            "TXT-{home:03},居民{home},中山市测试路{home}号,elderly_alone,Asia/Shanghai,60,社工{home},138{home:08}\n"
        ));
    }
    csv
}

/// The gateway is killed twice while its texts are going out to a slow SMS
/// gateway, and started again each time. Every text must reach the SMS
/// gateway, none twice under different keys: a text repeated after a crash
/// carries the same idempotency key, which the SMS gateway drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_gateway_while_texts_go_out_loses_none_and_repeats_only_by_key() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    const HOMES: usize = 30;
    let sms = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_millis(40)))
        .mount(&sms)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (config, db, addr) = embedded_gateway(
        dir.path(),
        &format!(
            "[sms]\nprovider = \"webhook\"\n[sms.webhook]\nurl = \"{}/sms\"\n",
            sms.uri()
        ),
    );
    let csv = dir.path().join("homes.csv");
    std::fs::write(&csv, silent_homes(HOMES)).unwrap();
    let imported = Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .arg("--config")
        .arg(&config)
        .args(["meters", "import"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");

    let listening = || async move { tokio::net::TcpStream::connect(addr).await.is_ok() };
    let mut gateway = GatewayProcess::spawn(&config);
    wait_until("the embedded server listens", listening).await;
    // 26 hourly readings per home, the last an hour ago: water at the first,
    // none since: each home's reading after 24 quiet hours opens an urgent alert.
    let mut publisher = Publisher::connect_persistent(addr, "silent-homes").await;
    let start = (chrono::Utc::now().timestamp() / 3600 - 26) * 3600;
    for hour in 0..26 {
        for home in 0..HOMES {
            let ts = chrono::DateTime::from_timestamp(start + hour * 3600, 0).unwrap();
            let total = 1_000 + if hour > 0 { 6 } else { 0 };
            publisher
                .send(
                    &format!("meters/TXT-{home:03}/reading"),
                    native(&ts.to_rfc3339(), total),
                )
                .await;
        }
    }
    publisher.flush().await;
    for received in [5, 15] {
        let sms = &sms;
        wait_until("texts are going out", || async move {
            sms.received_requests().await.unwrap_or_default().len() >= received
        })
        .await;
        gateway.kill();
        gateway = GatewayProcess::spawn(&config);
        wait_until("the gateway is back", listening).await;
    }
    let store = Store::open(&db).unwrap();
    let outbox = store.clone();
    wait_until("every text is sent", || {
        let store = outbox.clone();
        async move {
            let texts = store.notifications(None).unwrap();
            texts.len() == HOMES && texts.iter().all(|text| text.state == "sent")
        }
    })
    .await;
    gateway.kill();

    let texts = store.notifications(None).unwrap();
    let requests = sms.received_requests().await.unwrap();
    let keys: Vec<String> = requests
        .iter()
        .map(|request| {
            let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            body["idempotency_key"].as_str().unwrap().to_string()
        })
        .collect();
    let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
    let expected: std::collections::BTreeSet<&String> =
        texts.iter().map(|text| &text.idempotency_key).collect();
    assert_eq!(distinct, expected, "every text arrived, and no other");
    // A repeat is a text whose acceptance the killed gateway had not yet
    // recorded: at most those in flight at each kill (texts to different
    // phones go out `sms.parallel` at a time).
    let in_flight = stillwater::config::Config::default_config().sms.parallel;
    assert!(
        keys.len() - distinct.len() <= 2 * in_flight,
        "{} requests for {} texts",
        keys.len(),
        distinct.len()
    );
    let alerts: std::collections::BTreeSet<i64> = texts.iter().map(|text| text.alert_id).collect();
    assert_eq!(alerts.len(), HOMES, "one alert per home, each texted once");
}
