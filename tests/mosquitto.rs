//! Interoperability with Mosquitto, the most common external broker.
//!
//! Enabled by `STILLWATER_TEST_MOSQUITTO=host:port` (`.ci/run` sets it and makes
//! sure Mosquitto is installed and running). When the variable is set, an
//! unreachable broker fails these tests; it never skips them silently.

mod common;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;

use common::processes::PrivateMosquitto;
use common::*;
use stillwater::config::BrokerChoice;
use stillwater::store::prelude::*;

/// The Mosquitto under test, or `None` when interop tests are not enabled.
fn mosquitto() -> Option<SocketAddr> {
    let target = std::env::var("STILLWATER_TEST_MOSQUITTO").ok()?;
    let addr = target
        .to_socket_addrs()
        .unwrap_or_else(|error| panic!("STILLWATER_TEST_MOSQUITTO={target:?}: {error}"))
        .next()
        .expect("an address");
    std::net::TcpStream::connect(addr).unwrap_or_else(|error| {
        panic!("STILLWATER_TEST_MOSQUITTO is set but no broker answers at {addr}: {error}")
    });
    Some(addr)
}

/// Says, past the test harness's output capture, that a test did not run.
fn skipped(what: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {what} (set STILLWATER_TEST_MOSQUITTO=host:port to run it)"
    );
}

/// A topic prefix no other run shares, so tests can use a shared broker.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}x{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_published_to_mosquitto_are_stored_and_acknowledged() {
    let Some(addr) = mosquitto() else {
        skipped("Mosquitto interop not tested");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.mqtt.broker = BrokerChoice::External {
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    config.mqtt.client_id = unique("stillwater-it-");
    config.mqtt.topics.native_prefix = unique("it") + "/meters";
    config.mqtt.topics.wmbusmeters_prefix = unique("it") + "/wmbusmeters";
    let gateway = start_gateway(&config).await;
    let mut meter = Publisher::connect(addr, &unique("meter-")).await;
    let native_topic = format!("{}/ZS-0001/reading", config.mqtt.topics.native_prefix);
    meter
        .send(&native_topic, include_str!("fixtures/native/batch.json"))
        .await;
    meter.send(&native_topic, "{broken").await;
    meter
        .send(
            &format!("{}/MyTapWater", config.mqtt.topics.wmbusmeters_prefix),
            include_str!("fixtures/wmbusmeters/multical21.json"),
        )
        .await;
    meter.flush().await;
    let store = gateway.store.clone();
    wait_until("four readings and one rejection are stored", || {
        let store = store.clone();
        async move {
            store.reading_count().unwrap() == 4 && store.rejected_messages(5).unwrap().len() == 1
        }
    })
    .await;
    assert_eq!(
        store.meter_state("12345678").unwrap().unwrap().last_total_l,
        Some(6_388)
    );
    gateway.stop().await.unwrap();

    // Mosquitto keeps the gateway's session: had any message gone unacknowledged,
    // it would be redelivered now and counted as a duplicate.
    let gateway = start_gateway(&config).await;
    meter
        .send(&native_topic, native("2026-11-23T09:00:00+08:00", 123_460))
        .await;
    meter.flush().await;
    let metrics = gateway.metrics.clone();
    wait_until("the next reading is stored", || {
        let metrics = metrics.clone();
        async move { metrics.readings_accepted.load(Relaxed) == 1 }
    })
    .await;
    assert_eq!(
        gateway.metrics.readings_duplicate.load(Relaxed),
        0,
        "a committed message was redelivered"
    );
    assert_eq!(gateway.metrics.messages_received.load(Relaxed), 1);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reconnects_and_resubscribes_after_the_broker_restarts() {
    if mosquitto().is_none() {
        skipped("broker restart not tested");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = PrivateMosquitto::start(dir.path(), port);
    broker.wait_listening().await;
    let config = on_private_broker(dir.path(), port);
    let gateway = start_gateway(&config).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut meter = Publisher::connect(addr, "meter-before").await;
    meter
        .send(
            "meters/ZS-0001/reading",
            native("2026-11-23T08:00:00+08:00", 100),
        )
        .await;
    meter.flush().await;
    wait_for_readings(&gateway.store, 1).await;

    // The restarted broker has no memory of the gateway's session: only a fresh
    // subscription on the new ConnAck brings readings in again.
    broker.restart();
    broker.wait_listening().await;
    let metrics = gateway.metrics.clone();
    wait_until("the gateway is connected and subscribed again", || {
        let metrics = metrics.clone();
        async move {
            metrics.mqtt_connections.load(Relaxed) >= 2 && metrics.mqtt_connected.load(Relaxed)
        }
    })
    .await;
    let mut meter = Publisher::connect(addr, "meter-after").await;
    meter
        .send(
            "meters/ZS-0001/reading",
            native("2026-11-23T09:00:00+08:00", 106),
        )
        .await;
    meter.flush().await;
    wait_for_readings(&gateway.store, 2).await;
    assert!(gateway.metrics.mqtt_errors.load(Relaxed) >= 1);
    gateway.stop().await.unwrap();
}

/// A gateway configuration in `dir` for the private broker on `port`.
fn on_private_broker(dir: &std::path::Path, port: u16) -> stillwater::config::Config {
    let mut config = test_config(dir);
    config.mqtt.broker = BrokerChoice::External {
        host: "127.0.0.1".into(),
        port,
    };
    config
}

/// Readings published while the gateway is stopped: with `settings`, how many
/// reach the store once it is back, and the broker's count of dropped messages
/// as the gateway reports it.
async fn readings_kept_while_the_gateway_is_away(settings: &str, published: i64) -> (i64, i64) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = PrivateMosquitto::start_with(dir.path(), port, settings);
    broker.wait_listening().await;
    let config = on_private_broker(dir.path(), port);
    // The first run leaves the gateway's persistent session and subscription.
    let gateway = start_gateway(&config).await;
    gateway.stop().await.unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut meter = Publisher::connect(addr, "meter-while-away").await;
    // Hourly readings ending an hour ago (none dated ahead of the gateway).
    let start = (chrono::Utc::now().timestamp() / 3600 - published - 1) * 3600;
    for hour in 0..published {
        let ts = chrono::DateTime::from_timestamp(start + hour * 3600, 0)
            .unwrap()
            .to_rfc3339();
        meter
            .send("meters/ZS-0001/reading", native(&ts, 1000 + hour))
            .await;
    }
    meter.flush().await;
    let gateway = start_gateway(&config).await;
    let metrics = gateway.metrics.clone();
    wait_until("the gateway is subscribed again", || {
        let metrics = metrics.clone();
        async move { metrics.mqtt_connected.load(Relaxed) }
    })
    .await;
    // What the broker kept arrives first; then the broker's own count.
    let store = gateway.store.clone();
    let expect_drops = !settings.contains("max_queued_messages 0");
    wait_until("the broker's queue is delivered", || {
        let store = store.clone();
        let metrics = metrics.clone();
        async move {
            let stored = store
                .meter_state("ZS-0001")
                .unwrap()
                .map_or(0, |s| s.readings);
            let dropped = metrics.broker_dropped.load(Relaxed);
            if expect_drops {
                dropped > 0 && stored + dropped >= published
            } else {
                stored == published
            }
        }
    })
    .await;
    let stored = store
        .meter_state("ZS-0001")
        .unwrap()
        .map_or(0, |s| s.readings);
    let dropped = metrics.broker_dropped.load(Relaxed);
    gateway.stop().await.unwrap();
    (stored, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_set_up_as_documented_keeps_every_reading_while_the_gateway_is_away() {
    if mosquitto().is_none() {
        skipped("Mosquitto queue settings not tested");
        return;
    }
    // docs/operations.md: no queue limit for the gateway's session.
    let (stored, dropped) = readings_kept_while_the_gateway_is_away(
        "persistence false\nmax_queued_messages 0\nmax_queued_bytes 0\nsys_interval 1\n",
        2500,
    )
    .await;
    assert_eq!((stored, dropped), (2500, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquittos_default_queue_drops_readings_and_the_gateway_says_so() {
    if mosquitto().is_none() {
        skipped("Mosquitto's default queue limit not tested");
        return;
    }
    // Mosquitto's default keeps 1,000 queued messages per client: the rest
    // are dropped, and the gateway reports the broker's own count.
    let (stored, dropped) =
        readings_kept_while_the_gateway_is_away("persistence false\nsys_interval 1\n", 2500).await;
    assert!(stored < 2500, "{stored}");
    assert!(
        dropped >= 2500 - stored,
        "{stored} stored, {dropped} dropped"
    );
}

/// wmbusmeters publishes with `mosquitto_pub` (its MQTT examples call it):
/// the embedded server takes that client unchanged, at QoS 0 and 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_publishes_to_the_embedded_server_as_wmbusmeters_does() {
    if mosquitto().is_none() {
        skipped("mosquitto_pub against the embedded server not tested");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    let port = gateway.mqtt_addr.port().to_string();
    for (qos, fixture) in [
        ("0", include_str!("fixtures/wmbusmeters/iperl.json")),
        ("1", include_str!("fixtures/wmbusmeters/multical21.json")),
    ] {
        let published = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-q", qos])
            .args(["-t", "wmbusmeters/MyTapWater", "-m", fixture])
            .output()
            .expect("STILLWATER_TEST_MOSQUITTO is set, so mosquitto_pub (mosquitto-clients) must be installed");
        assert!(published.status.success(), "{published:?}");
    }
    wait_for_readings(&gateway.store, 2).await;
    for meter in ["33225544", "12345678"] {
        assert!(
            gateway.store.meter_state(meter).unwrap().is_some(),
            "{meter}"
        );
    }
    gateway.stop().await.unwrap();
}
