//! Shared helpers for the end-to-end tests: a gateway on free ports with a temp
//! database, an MQTT publisher that waits for the broker's acknowledgements, and
//! waiting for a condition with a deadline (never a fixed sleep).

#![allow(dead_code)]

pub mod api;
pub mod home;
pub mod processes;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stillwater::app::Gateway;
use stillwater::config::{BrokerChoice, Config, StoreLocation};
use stillwater::store::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The default config on free ports with its database in `dir`.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::default_config();
    config.mqtt.broker = BrokerChoice::Embedded {
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.store.location = StoreLocation::Sqlite(dir.join("stillwater.db"));
    // These tests move the clock by days without readings; the self-watch's
    // silence alert has its own tests.
    config.watch.ingest_silent_after_s = 365 * 86_400;
    config
}

/// Starts a gateway with its embedded broker and waits until ingest is subscribed.
pub async fn start_gateway(config: &Config) -> Gateway {
    start_gateway_with(config, stillwater::clock::system()).await
}

/// Starts a gateway on `clock` (a manual clock the test moves).
#[allow(dead_code)]
pub async fn start_gateway_with(config: &Config, clock: stillwater::clock::SharedClock) -> Gateway {
    let parts = stillwater::app::Parts {
        clock,
        ..Default::default()
    };
    start_gateway_with_parts(config, parts).await
}

/// Starts a gateway built with `parts`.
#[allow(dead_code)]
pub async fn start_gateway_with_parts(config: &Config, parts: stillwater::app::Parts) -> Gateway {
    let gateway = Gateway::start_with(config, parts)
        .await
        .expect("gateway starts");
    let metrics = gateway.metrics.clone();
    wait_until("ingest connects to the broker", || {
        let metrics = metrics.clone();
        async move {
            metrics
                .mqtt_connected
                .load(std::sync::atomic::Ordering::Relaxed)
        }
    })
    .await;
    gateway
}

/// Polls `condition` until it holds; panics with `what` after 30 s.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    loop {
        poll.tick().await;
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
    }
}

/// Waits until the store holds `count` readings.
pub async fn wait_for_readings(store: &stillwater::store::Store, count: i64) {
    let store = store.clone();
    wait_until(&format!("{count} readings are stored"), || {
        let store = store.clone();
        async move { store.reading_count().unwrap() == count }
    })
    .await;
}

/// A QoS 1 publisher that returns from `publish` once the broker has acknowledged.
pub struct Publisher {
    client: AsyncClient,
    acked: tokio::sync::watch::Receiver<u64>,
    sent: u64,
}

impl Publisher {
    pub async fn connect(addr: SocketAddr, client_id: &str) -> Self {
        Self::connect_as(addr, client_id, None).await
    }

    /// Connects with a username and password.
    pub async fn connect_as(
        addr: SocketAddr,
        client_id: &str,
        credentials: Option<(&str, &str)>,
    ) -> Self {
        let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        Self::open(options)
    }

    /// Connects with clean session off, as a meter that must not lose a
    /// reading does: after a reconnection it sends again whatever was not
    /// acknowledged, if the server says its session is present.
    #[allow(dead_code)]
    pub async fn connect_persistent(addr: SocketAddr, client_id: &str) -> Self {
        let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options.set_clean_session(false);
        Self::open(options)
    }

    fn open(mut options: MqttOptions) -> Self {
        options.set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let (tx, acked) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            let mut count = 0;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        count += 1;
                        let _ = tx.send(count);
                    }
                    Ok(_) => {}
                    // rumqttc reconnects on the next poll; pace the retries.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Self {
            client,
            acked,
            sent: 0,
        }
    }

    pub async fn send(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("publish queued");
        self.sent += 1;
    }

    /// Waits until the broker has acknowledged everything sent.
    pub async fn flush(&mut self) {
        if let Err((acked, sent)) = self.try_flush().await {
            panic!("the broker acknowledges in time: {acked} of {sent} acknowledged after 30 s");
        }
    }

    /// Waits up to 30 s until the broker has acknowledged everything sent;
    /// else (acknowledged, sent).
    #[allow(dead_code)] // not every test binary checks what happened meanwhile
    pub async fn try_flush(&mut self) -> Result<(), (u64, u64)> {
        let sent = self.sent;
        let mut acked = self.acked.clone();
        let waited = tokio::time::timeout(
            Duration::from_secs(30),
            acked.wait_for(|acked| *acked >= sent),
        )
        .await
        .map(|alive| alive.map(|_| ()));
        match waited {
            Ok(alive) => {
                alive.expect("publisher alive");
                Ok(())
            }
            Err(_) => Err((*self.acked.borrow(), sent)),
        }
    }
}

/// A local port nothing listens on just now (for a process started later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A native reading payload.
pub fn native(ts: &str, total_l: i64) -> String {
    format!(r#"{{"ts":"{ts}","total_l":{total_l}}}"#)
}

/// A plain HTTP/1.1 GET; returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("HTTP connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of an unlabelled (or fully labelled) metric line.
pub fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("metric {name} missing"))
        .trim()
        .parse()
        .unwrap()
}
