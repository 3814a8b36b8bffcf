//! Gateways on PostgreSQL: one gateway end to end, and three sharing the work
//! behind Mosquitto's shared subscriptions while one of them is killed.
//!
//! Enabled by `STILLWATER_TEST_POSTGRES=postgres://…` (each test works in a
//! schema of its own, dropped after); the cluster test also needs
//! `STILLWATER_TEST_MOSQUITTO` (it starts a private Mosquitto on a free port).
//! `.ci/run` sets both. When a variable is set and its server does not
//! answer, the tests fail; they never skip silently.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::home::{hourly_payloads, register_household, silent_day, wait_until_evaluated};
use common::processes::{GatewayProcess, PrivateMosquitto};
use common::*;
use stillwater::config::{ProviderChoice, StoreLocation};
use stillwater::store::prelude::*;
use stillwater::store::{MeterState, Store};

/// A schema of its own in the test database, dropped when this is dropped.
struct Schema {
    /// `None` once dropped (inside `block_in_place`: a client's drop blocks).
    client: Option<postgres::Client>,
    name: String,
    /// The database's URL with the schema as its search path.
    url: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let drop_schema = format!("DROP SCHEMA {} CASCADE", self.name);
        let mut client = self.client.take();
        tokio::task::block_in_place(|| {
            if let Some(client) = &mut client {
                let _ = client.batch_execute(&drop_schema);
            }
            drop(client);
        });
    }
}

/// A new schema, or `None` when PostgreSQL tests are not enabled.
fn postgres(label: &str) -> Option<Schema> {
    let base = std::env::var("STILLWATER_TEST_POSTGRES").ok()?;
    let mut client =
        tokio::task::block_in_place(|| postgres::Client::connect(&base, postgres::NoTls))
            .unwrap_or_else(|e| {
                panic!("STILLWATER_TEST_POSTGRES is set but {base} does not answer: {e}")
            });
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("sw_{label}_{}_{nanos}", std::process::id());
    tokio::task::block_in_place(|| client.batch_execute(&format!("CREATE SCHEMA {name}"))).unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{name}");
    Some(Schema {
        client: Some(client),
        name,
        url,
    })
}

fn skipped(what: &str, variable: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {what} (set {variable} to run it)"
    );
}

/// An SMS gateway that answers 200 to every text and remembers each
/// request's idempotency key and recipient.
#[derive(Clone, Default)]
struct Phones {
    received: Arc<Mutex<Vec<(String, String)>>>,
}

impl Phones {
    async fn serve(&self) -> String {
        let received = self.received.clone();
        let app = axum::Router::new().route(
            "/sms",
            axum::routing::post(move |body: axum::Json<serde_json::Value>| {
                let received = received.clone();
                async move {
                    let field = |name: &str| body[name].as_str().unwrap_or_default().to_string();
                    received
                        .lock()
                        .unwrap()
                        .push((field("idempotency_key"), field("to")));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sms", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// How many times each idempotency key was posted.
    fn by_key(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (key, _) in self.received.lock().unwrap().iter() {
            *counts.entry(key.clone()).or_default() += 1;
        }
        counts
    }
}

/// Waits until at least `least` texts are queued and every one is sent;
/// after 30 s panics saying where each text is.
async fn wait_for_texts(store: &Store, least: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let check = store.clone();
        let texts = tokio::task::spawn_blocking(move || check.notifications(None))
            .await
            .unwrap()
            .unwrap();
        if texts.len() >= least && texts.iter().all(|text| text.state == "sent") {
            return;
        }
        if Instant::now() > deadline {
            let states: Vec<String> = texts
                .iter()
                .map(|t| {
                    format!(
                        "#{} {} {} attempts {} error {:?}",
                        t.id, t.purpose, t.state, t.attempts, t.last_error
                    )
                })
                .collect();
            panic!("texts not all sent after 30 s (at least {least} expected): {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_postgres_stores_evaluates_and_texts() {
    let Some(schema) = postgres("e2e") else {
        skipped("a gateway on PostgreSQL", "STILLWATER_TEST_POSTGRES");
        return;
    };
    // The gateway's log, shown when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,stillwater=info")
        .with_test_writer()
        .try_init();
    let phones = Phones::default();
    let url = phones.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.store.location = StoreLocation::postgres(&schema.url, None).unwrap();
    config.sms.provider = ProviderChoice::Webhook { url, token: None };
    config.alerts.tick = Duration::from_millis(100);
    register_household(&config);
    let gateway = start_gateway(&config).await;
    assert!(gateway.store.path().is_none(), "the store is PostgreSQL");

    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-zs-0001").await;
    let day = silent_day();
    for payload in hourly_payloads(&day) {
        meter.send("meters/ZS-0001/reading", payload).await;
    }
    meter.send("meters/ZS-0001/reading", "{broken").await;
    meter.flush().await;
    wait_until_evaluated(&gateway.store, day.len()).await;
    let store = gateway.store.clone();
    wait_for_texts(&store, 1).await;
    let alerts = store.list_alerts(false, 10).unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (alerts[0].kind.as_str(), alerts[0].meter_id.as_str()),
        ("no_usage", "ZS-0001")
    );
    let texts = store.notifications(None).unwrap();
    let by_key = phones.by_key();
    for text in &texts {
        assert_eq!(by_key.get(&text.idempotency_key), Some(&1), "{text:?}");
    }
    assert_eq!(store.rejected_messages(5).unwrap().len(), 1);
    assert_eq!(store.reading_count().unwrap(), day.len() as i64);

    // The HTTP API reads the same database.
    let (status, body) = http_get(gateway.http_addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    gateway.stop().await.unwrap();

    // A second gateway process on the same database starts where it stopped:
    // the engine's cursor and the sent texts are in PostgreSQL.
    let mut second = test_config(dir.path());
    second.store.location = config.store.location.clone();
    let gateway = start_gateway(&second).await;
    assert_eq!(gateway.store.reading_count().unwrap(), day.len() as i64);
    assert_eq!(gateway.store.list_alerts(false, 10).unwrap().len(), 1);
    gateway.stop().await.unwrap();
}

// ---------------------------------------------------------------------------
// Three gateways, one killed.

/// Meters in the cluster test: the first `SILENT` stop using water after
/// their first hour; the others use water by day, none at night.
const METERS: usize = 12;
const SILENT: usize = 4;
/// Hourly readings per meter: past the 24 h that make a silent home urgent.
const HOURS: usize = 30;
/// The lease the gateways run with, seconds.
const LEASE_S: u64 = 8;

fn meter_id(meter: usize) -> String {
    format!("CL-{meter:03}")
}

fn litres(meter: usize) -> Vec<i64> {
    if meter < SILENT {
        let mut day = vec![0; HOURS];
        day[0] = 6;
        day
    } else {
        // A day at home: morning, lunch, evening; nothing at night.
        (0..HOURS)
            .map(|hour| match hour % 24 {
                7 | 8 | 12 | 18 | 19 | 21 => 20,
                _ => 0,
            })
            .collect()
    }
}

/// The households' CSV: one contact each, a phone of their own.
fn households_csv() -> String {
    let mut csv = String::from(
        "meter_id,resident_name,address,category,timezone,reporting_interval_min,contact1_name,contact1_phone\n",
    );
    for meter in 0..METERS {
        csv.push_str(&format!(
            "{},住户{meter},中山市石岐区{meter}号,elderly_alone,Asia/Shanghai,60,社工{meter},1380013{:04}\n",
            meter_id(meter),
            8000 + meter
        ));
    }
    csv
}

/// A gateway process and where its `/metrics` are.
struct Node {
    process: GatewayProcess,
    http: SocketAddr,
}

impl Node {
    /// A counter of its `/metrics`, when it answers.
    async fn metric(&self, name: &str) -> Option<u64> {
        tokio::net::TcpStream::connect(self.http).await.ok()?;
        let (status, body) = http_get(self.http, "/metrics").await;
        (status == 200).then_some(())?;
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
    }
}

/// Waits until `holds` for every meter's state row (`None` before its first reading).
async fn wait_for_every_meter(store: &Store, what: &str, holds: fn(Option<MeterState>) -> bool) {
    wait_until(what, || {
        let store = store.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                (0..METERS).all(|meter| holds(store.meter_state(&meter_id(meter)).unwrap()))
            })
            .await
            .unwrap()
        }
    })
    .await;
}

/// Publishes every meter's reading of `hour`.
async fn publish_hour(publisher: &mut Publisher, payloads: &[Vec<String>], hour: usize) {
    for (meter, payloads) in payloads.iter().enumerate() {
        publisher
            .send(
                &format!("meters/{}/reading", meter_id(meter)),
                payloads[hour].clone(),
            )
            .await;
    }
}

/// Who holds the lease of the timer duties, and until when.
fn timers_lease(client: &mut postgres::Client, schema: &str) -> Option<(String, i64)> {
    let sql = format!("SELECT holder, until_ts FROM {schema}.leases WHERE name = 'timers'");
    tokio::task::block_in_place(|| client.query_opt(&sql, &[]))
        .unwrap()
        .map(|row| (row.get(0), row.get(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_share_the_work_and_survive_one_killed() {
    let Some(mut schema) = postgres("cluster") else {
        skipped("three gateways on PostgreSQL", "STILLWATER_TEST_POSTGRES");
        return;
    };
    if std::env::var("STILLWATER_TEST_MOSQUITTO").is_err() {
        skipped(
            "three gateways behind Mosquitto",
            "STILLWATER_TEST_MOSQUITTO",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // It keeps what it queues for a gateway's session however long the
    // gateway is away.
    let broker = PrivateMosquitto::start_with(
        dir.path(),
        free_port(),
        "persistence false\nmax_queued_messages 0\n",
    );
    broker.wait_listening().await;
    let phones = Phones::default();
    let sms_url = phones.serve().await;

    // The installer registers the meters in the shared database, from the
    // command line.
    let csv = dir.path().join("households.csv");
    std::fs::write(&csv, households_csv()).unwrap();
    let import = Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .args(["--db", &schema.url, "meters", "import"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(import.status.success(), "{import:?}");
    let store = Store::open_postgres(&schema.url, None).unwrap();
    for meter in 0..METERS {
        assert!(store.household(&meter_id(meter)).unwrap().is_some());
    }

    let mut gateways: Vec<Node> = (0..3)
        .map(|index| {
            let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let config = dir.path().join(format!("gw-{index}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[mqtt]\nmode = \"external\"\nurl = \"mqtt://{broker}\"\nclient_id = \"gw-{index}\"\n\
                     share_group = \"stillwater\"\n\
                     [store]\nbackend = \"postgres\"\nurl = \"{db}\"\nlease = \"{LEASE_S}s\"\n\
                     [http]\nlisten = \"{http}\"\n\
                     [rules]\ndetector = \"rules\"\n\
                     [alerts]\ntick = \"1s\"\n\
                     [sms]\nprovider = \"webhook\"\ntimeout = \"5s\"\n[sms.webhook]\nurl = \"{sms_url}\"\n",
                    broker = broker.addr(),
                    db = schema.url,
                ),
            )
            .unwrap();
            Node {
                process: GatewayProcess::spawn(&config),
                http,
            }
        })
        .collect();
    for gateway in &mut gateways {
        let deadline = Instant::now() + Duration::from_secs(30);
        while gateway.metric("stillwater_mqtt_connected").await != Some(1) {
            if let Some(status) = gateway.process.exited() {
                panic!("a gateway stopped before it subscribed ({status}); its error is above");
            }
            assert!(
                Instant::now() < deadline,
                "a gateway did not subscribe in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let payloads: Vec<Vec<String>> = (0..METERS).map(|m| hourly_payloads(&litres(m))).collect();
    let mut publisher = Publisher::connect(broker.addr(), "cluster-meters").await;
    for hour in 0..10 {
        publish_hour(&mut publisher, &payloads, hour).await;
    }

    // Kill the gateway running the timer duties while readings flow.
    let holder = {
        let mut found = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while found.is_none() {
            assert!(
                Instant::now() < deadline,
                "no gateway took the timer duties"
            );
            found = timers_lease(schema.client.as_mut().unwrap(), &schema.name);
            tokio::task::yield_now().await;
        }
        found.unwrap().0
    };
    let victim: usize = holder.trim_start_matches("gw-").parse().unwrap();
    wait_until(
        "the timers' holder has taken its share of readings",
        || async {
            gateways[victim]
                .metric("stillwater_mqtt_messages_received_total")
                .await
                .is_some_and(|received| received >= 20)
        },
    )
    .await;
    // Killed with readings on their way to it.
    for hour in 10..14 {
        publish_hour(&mut publisher, &payloads, hour).await;
    }
    let received_by_victim = gateways[victim]
        .metric("stillwater_mqtt_messages_received_total")
        .await;
    gateways[victim].process.kill();
    let killed_at = Instant::now();
    for hour in 14..20 {
        publish_hour(&mut publisher, &payloads, hour).await;
    }
    publisher.flush().await;
    // What the other two committed is evaluated, whoever committed it. (The
    // broker keeps the killed gateway's share for its session: those meters
    // may have nothing stored yet.)
    wait_for_every_meter(&store, "every stored reading is evaluated", |state| {
        state.is_none_or(|state| state.evaluated_through == state.last_reading_ts)
    })
    .await;
    let evaluated_after = killed_at.elapsed();

    // Another gateway takes the timer duties once the lease runs out.
    let mut taken_over = None;
    while taken_over.is_none() {
        assert!(
            killed_at.elapsed() < Duration::from_secs(3 * LEASE_S),
            "nobody took the timer duties over from {holder}"
        );
        match timers_lease(schema.client.as_mut().unwrap(), &schema.name) {
            Some((now_holder, _)) if now_holder != holder => {
                taken_over = Some((now_holder, killed_at.elapsed()))
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }

    // The killed gateway comes back, as its supervisor starts it again, and
    // takes what the broker kept for its session.
    gateways[victim].process.restart();
    for hour in 20..HOURS {
        publish_hour(&mut publisher, &payloads, hour).await;
    }
    publisher.flush().await;

    // Every acknowledged reading stored exactly once, and evaluated.
    wait_for_every_meter(&store, "every reading is stored and evaluated", |state| {
        state.is_some_and(|state| {
            state.readings == HOURS as i64 && state.evaluated_through == state.last_reading_ts
        })
    })
    .await;
    for (meter, payloads) in payloads.iter().enumerate() {
        let stored = store.readings(&meter_id(meter), 0, i64::MAX / 2).unwrap();
        assert_eq!(stored.len(), payloads.len(), "{}", meter_id(meter));
    }
    assert_eq!(store.reading_count().unwrap(), (METERS * HOURS) as i64);

    // One alert for each silent home, none for the others; every text sent,
    // and sent once.
    wait_for_texts(&store, SILENT).await;
    let mut alerted: Vec<String> = store
        .list_alerts(false, 100)
        .unwrap()
        .into_iter()
        .map(|alert| format!("{} {}", alert.meter_id, alert.kind))
        .collect();
    alerted.sort();
    let expected: Vec<String> = (0..SILENT)
        .map(|meter| format!("{} no_usage", meter_id(meter)))
        .collect();
    assert_eq!(alerted, expected);
    let texts = store.notifications(None).unwrap();
    let by_key = phones.by_key();
    let twice: HashMap<&String, &usize> = by_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "texts posted more than once: {twice:?}");
    for text in &texts {
        assert!(
            by_key.contains_key(&text.idempotency_key),
            "not delivered: {text:?}"
        );
    }
    assert_eq!(by_key.len(), texts.len());

    // Replayed in one pass over the stored readings, with the gateways'
    // settings, detection opens the same alerts as the three gateways did.
    let from = (chrono::Utc::now() - chrono::Duration::days(4))
        .format("%Y-%m-%d")
        .to_string();
    let replay = Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .arg("--config")
        .arg(&gateways[0].process.config)
        .args(["replay", "--from", &from])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let replayed: Vec<&str> = said
        .lines()
        .filter(|line| line.starts_with("CL-"))
        .collect();
    assert_eq!(
        replayed.len(),
        SILENT,
        "only the silent homes have alerts: {said}"
    );
    for (meter, line) in replayed.iter().enumerate() {
        assert!(
            line.starts_with(&meter_id(meter)) && line.contains("1 → 1"),
            "{said}"
        );
    }

    let (new_holder, after) = taken_over.unwrap();
    let after_restart = gateways[victim]
        .metric("stillwater_mqtt_messages_received_total")
        .await
        .unwrap_or(0);
    println!(
        "cluster: {} readings from {METERS} meters through 3 gateways; gw-{victim} (the timers' holder, {} messages in) killed; \
         the others' readings evaluated {:.1} s after the kill; {new_holder} took the timer duties over after {:.1} s (lease {LEASE_S} s); \
         gw-{victim} restarted and took {after_restart} messages (its session's and its share of the rest); {} texts, each posted once",
        METERS * HOURS,
        received_by_victim.unwrap_or(0),
        evaluated_after.as_secs_f64(),
        after.as_secs_f64(),
        texts.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_a_sqlite_store_into_postgres_and_checks_the_counts() {
    let Some(schema) = postgres("migrate") else {
        skipped("stillwater migrate", "STILLWATER_TEST_POSTGRES");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("city.db");
    let csv = dir.path().join("households.csv");
    std::fs::write(&csv, households_csv()).unwrap();
    let stillwater = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stillwater"))
            .args(args)
            .output()
            .unwrap()
    };
    let db = file.to_str().unwrap();
    assert!(
        stillwater(&["--db", db, "meters", "import", csv.to_str().unwrap()])
            .status
            .success()
    );
    let from = format!("sqlite:{db}");

    let refused = stillwater(&[
        "migrate",
        "--from",
        &from,
        "--to",
        "postgres://sw:hunter2@127.0.0.1/test",
    ]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("STILLWATER_DB_PASSWORD") && !said.contains("hunter2"),
        "{said}"
    );

    let first = stillwater(&["migrate", "--from", &from, "--to", &schema.url]);
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(said.contains("count check: all 21 tables match"), "{said}");
    let households = said
        .lines()
        .find(|line| line.trim_start().starts_with("households"));
    assert!(
        households.is_some_and(|line| line.contains(&format!("{METERS} row(s)"))
            && line.contains(&format!("{METERS} copied now"))),
        "{said}"
    );
    let again = stillwater(&["migrate", "--from", &from, "--to", &schema.url]);
    assert!(again.status.success());
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(
        said.lines()
            .filter(|line| line.contains("row(s)"))
            .all(|line| line.contains(" 0 copied now")),
        "{said}"
    );

    // The gateway's command line reads the copy.
    let listed = stillwater(&["--db", &schema.url, "meters", "list"]);
    let said = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{said}");
    assert_eq!(said.matches("CL-0").count(), METERS, "{said}");
}
