//! The gateway watching itself, end to end: readings that stop arriving and a
//! database that refuses writes each reach the administrators, and clear by
//! themselves when the condition does.

mod common;

use std::time::Duration;

use common::home::*;
use common::*;
use stillwater::clock::ManualClock;
use stillwater::config::{Config, ProviderChoice};
use stillwater::domain::PhoneNumber;
use stillwater::store::prelude::*;
use stillwater::store::Store;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN: &str = "+8613700137000";

async fn sms_gateway() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

fn watched(dir: &std::path::Path, sms: &MockServer) -> Config {
    let mut config = test_config(dir);
    config.sms.provider = ProviderChoice::Webhook {
        url: format!("{}/sms", sms.uri()),
        token: None,
    };
    config.alerts.tick = Duration::from_millis(100);
    config.watch.admins = vec![PhoneNumber::parse(ADMIN).unwrap()];
    config.watch.heartbeat_at_min = None;
    config.watch.check_every = Duration::from_millis(50);
    register_household(&config);
    config
}

/// The texts the administrator got.
async fn admin_texts(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap())
        .filter(|body| body["to"] == ADMIN)
        .map(|body| body["text"].as_str().unwrap().to_string())
        .collect()
}

async fn system_alert(store: &Store, kind: &str, state: &str) -> i64 {
    wait_until(&format!("a {state} {kind} system alert"), || async {
        store
            .list_alerts(true, 50)
            .unwrap()
            .iter()
            .any(|a| a.kind == kind && a.state == state)
    })
    .await;
    store
        .list_alerts(true, 50)
        .unwrap()
        .into_iter()
        .find(|a| a.kind == kind && a.state == state)
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_that_stop_arriving_reach_the_administrators() {
    let sms = sms_gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = watched(dir.path(), &sms);
    config.watch.ingest_silent_after_s = 2 * 3600;
    let clock = ManualClock::starting_now();
    let gateway = start_gateway_with(&config, clock.clone()).await;
    // A few normal hours: meters are known, nothing is wrong.
    publish_hourly(&gateway, &[3, 2, 4]).await;
    clock.advance(3600);
    // Two hours without any reading.
    clock.advance(3600 + 60);
    let id = system_alert(&gateway.store, "ingest_silent", "open").await;
    wait_until("the administrator is texted", || async {
        admin_texts(&sms).await.iter().any(|t| {
            t.starts_with("【水表关爱·系统】已 2 小时") && t.contains("未收到任何水表读数")
        })
    })
    .await;
    let alert = gateway.store.alert(id).unwrap().unwrap();
    assert_eq!(alert.meter_id, "system");

    // Readings again: the alert resolves by itself.
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-zs-0001").await;
    meter
        .send(
            "meters/ZS-0001/reading",
            native(&chrono::Utc::now().to_rfc3339(), 90_000),
        )
        .await;
    meter.flush().await;
    system_alert(&gateway.store, "ingest_silent", "resolved").await;
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_refuses_writes_is_texted_straight_to_the_administrators() {
    let sms = sms_gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let config = watched(dir.path(), &sms);
    let gateway = start_gateway(&config).await;
    // Another process holds the database's write lock longer than the
    // gateway's busy timeout: every write the gateway tries fails.
    let holder = rusqlite::Connection::open(config.store.file().unwrap()).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    wait_until("the administrator is texted directly", || async {
        admin_texts(&sms)
            .await
            .iter()
            .any(|t| t.starts_with("【水表关爱·系统】数据库无法写入"))
    })
    .await;
    let texts = admin_texts(&sms).await;
    assert!(
        !texts.iter().any(|t| t.contains("回复")),
        "no reply code: nothing could record the reply: {texts:?}"
    );
    let (status, health) = http_get(gateway.http_addr, "/healthz").await;
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("store_unwritable"), "{health}");

    holder.execute_batch("ROLLBACK").unwrap();
    let metrics = gateway.metrics.clone();
    wait_until("the database takes writes again", || async {
        metrics.system_alerts().is_empty()
    })
    .await;
    let (status, _) = http_get(gateway.http_addr, "/healthz").await;
    assert_eq!(status, 200);
    // The outage is in the alerts' history now that it can be written.
    let outage = system_alert(&gateway.store, "store_unwritable", "resolved").await;
    let detail = gateway.store.alert(outage).unwrap().unwrap().detail;
    assert!(detail.contains("database is locked"), "{detail}");
    gateway.stop().await.unwrap();
}
