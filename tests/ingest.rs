//! End to end: the gateway with its embedded MQTT server on free ports and a temp
//! database; readings published with rumqttc; assertions on what is stored.

mod common;

use std::sync::atomic::Ordering::Relaxed;

use common::*;
use stillwater::app::Gateway;
use stillwater::config::BrokerChoice;
use stillwater::store::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_single_batch_and_wmbusmeters_readings_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-test").await;
    meter
        .send(
            "meters/ZS-0001/reading",
            include_str!("fixtures/native/single.json"),
        )
        .await;
    meter
        .send(
            "meters/ZS-0002/reading",
            include_str!("fixtures/native/batch.json"),
        )
        .await;
    meter
        .send(
            "wmbusmeters/MyTapWater",
            include_str!("fixtures/wmbusmeters/iperl.json"),
        )
        .await;
    meter.flush().await;
    wait_for_readings(&gateway.store, 5).await;
    let store = gateway.store.clone();

    let single = store.meter_state("ZS-0001").unwrap().unwrap();
    assert_eq!(single.last_total_l, Some(123_456));
    assert_eq!(single.last_battery_pct, Some(87));
    let batch = store.readings("ZS-0002", 0, i64::MAX / 2).unwrap();
    assert_eq!(
        batch.iter().map(|r| r.total_l).collect::<Vec<_>>(),
        [123_440, 123_451, 123_456]
    );
    let wmbus = store.meter_state("33225544").unwrap().unwrap();
    assert_eq!(wmbus.last_total_l, Some(123_529));
    assert_eq!(gateway.metrics.readings_accepted.load(Relaxed), 5);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_are_recorded_with_their_reason_and_ingest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-bad").await;
    meter.send("meters/ZS-0001/reading", "{not json").await;
    meter
        .send("meters/ZS-0001/reading", r#"{"total_l": 5}"#)
        .await;
    meter
        .send(
            "meters/bad.id/reading",
            native("2026-11-23T08:00:00+08:00", 1),
        )
        .await;
    meter
        .send("meters/ZS-0001/reading", vec![b' '; 100 * 1024])
        .await;
    meter
        .send(
            "wmbusmeters/kam",
            include_str!("fixtures/wmbusmeters/kamwater.json"),
        )
        .await;
    meter
        .send(
            "meters/ZS-0001/reading",
            native("2026-11-23T08:00:00+08:00", 42),
        )
        .await;
    meter.flush().await;
    wait_for_readings(&gateway.store, 1).await;
    let store = gateway.store.clone();
    wait_until("five rejections are recorded", || {
        let store = store.clone();
        async move { store.rejected_messages(10).unwrap().len() == 5 }
    })
    .await;
    let mut reasons: Vec<String> = store
        .rejected_messages(10)
        .unwrap()
        .into_iter()
        .map(|r| r.reason)
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "bad_meter_id",
            "bad_timestamp",
            "invalid_json",
            "missing_field",
            "oversize"
        ]
    );
    let state = store.meter_state("ZS-0001").unwrap().unwrap();
    assert_eq!((state.rejected, state.last_total_l), (3, Some(42)));

    let (status, body) = http_get(gateway.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &body,
            "stillwater_readings_rejected_total{reason=\"invalid_json\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &body,
            "stillwater_readings_rejected_total{reason=\"oversize\"}"
        ),
        1.0
    );
    assert_eq!(metric(&body, "stillwater_readings_accepted_total"), 1.0);
    assert_eq!(
        metric(&body, "stillwater_mqtt_messages_received_total"),
        6.0
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_out_of_order_readings_and_resets_arrive_over_mqtt() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-order").await;
    let topic = "meters/ZS-0001/reading";
    for (ts, total) in [
        ("2026-11-23T10:00:00+08:00", 1_000),
        ("2026-11-23T10:00:00+08:00", 1_000), // redelivered: duplicate
        ("2026-11-23T08:00:00+08:00", 990),   // late: stored, state unchanged
        ("2026-11-23T11:00:00+08:00", 1_006),
        ("2026-11-23T12:00:00+08:00", 4), // new meter head: reset
    ] {
        meter.send(topic, native(ts, total)).await;
    }
    meter.flush().await;
    let metrics = gateway.metrics.clone();
    wait_until("five messages are committed", || {
        let metrics = metrics.clone();
        async move {
            metrics.readings_accepted.load(Relaxed) + metrics.readings_duplicate.load(Relaxed) == 5
        }
    })
    .await;
    wait_for_readings(&gateway.store, 4).await;
    let state = gateway.store.meter_state("ZS-0001").unwrap().unwrap();
    assert_eq!(state.readings, 4);
    assert_eq!(state.register_resets, 1);
    assert_eq!(state.last_total_l, Some(4));
    assert_eq!(state.last_consumption_ts, Some(1_795_402_800)); // 11:00 +08:00
    assert_eq!(gateway.metrics.readings_duplicate.load(Relaxed), 1);
    assert_eq!(gateway.metrics.readings_out_of_order.load(Relaxed), 1);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_the_broker_connection() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    let (status, body) = http_get(gateway.http_addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"mqtt_connected\":true"), "{body}");
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_recovers_every_meters_state_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let gateway = start_gateway(&config).await;
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-restart").await;
    meter
        .send(
            "meters/ZS-0001/reading",
            native("2026-11-23T10:00:00+08:00", 5_000),
        )
        .await;
    meter.flush().await;
    wait_for_readings(&gateway.store, 1).await;
    gateway.stop().await.unwrap();

    let gateway = start_gateway(&config).await;
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-restart-2").await;
    // Older than the recovered newest: must not move the state back.
    meter
        .send(
            "meters/ZS-0001/reading",
            native("2026-11-23T09:00:00+08:00", 4_990),
        )
        .await;
    // Lower than the recovered register: a reset, known only from recovered state.
    meter
        .send(
            "meters/ZS-0001/reading",
            native("2026-11-23T11:00:00+08:00", 7),
        )
        .await;
    meter.flush().await;
    let metrics = gateway.metrics.clone();
    wait_until("two readings are stored", || {
        let metrics = metrics.clone();
        async move { metrics.readings_accepted.load(Relaxed) == 2 }
    })
    .await;
    wait_for_readings(&gateway.store, 3).await;
    assert_eq!(gateway.metrics.readings_out_of_order.load(Relaxed), 1);
    assert_eq!(gateway.metrics.register_resets.load(Relaxed), 1);
    assert_eq!(
        gateway
            .store
            .meter_state("ZS-0001")
            .unwrap()
            .unwrap()
            .readings,
        3
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_broker_port_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = test_config(dir.path());
    config.mqtt.broker = BrokerChoice::Embedded {
        listen: taken.local_addr().unwrap(),
    };
    let error = Gateway::start(&config)
        .await
        .err()
        .expect("start fails")
        .to_string();
    assert!(
        error.contains("already in use") && error.contains("mode = \"external\""),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_server_with_a_password_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    shared_login(&mut config, "gateway", "s3cret");
    let gateway = start_gateway(&config).await;

    let addr = gateway.mqtt_addr;
    let options = rumqttc::MqttOptions::new("stranger", addr.ip().to_string(), addr.port());
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    let refused = eventloop.poll().await;
    assert!(
        matches!(
            refused,
            Err(rumqttc::ConnectionError::ConnectionRefused(
                rumqttc::ConnectReturnCode::BadUserNamePassword
            ))
        ),
        "a client without the password is told why: {refused:?}"
    );
    let mut wrong = rumqttc::MqttOptions::new("guesser", addr.ip().to_string(), addr.port());
    wrong.set_credentials("gateway", "guess");
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(wrong, 10);
    assert!(eventloop.poll().await.is_err());
    let (_, body) = http_get(gateway.http_addr, "/metrics").await;
    assert_eq!(metric(&body, "stillwater_mqtt_auth_failures_total"), 2.0);

    let mut meter =
        Publisher::connect_as(addr, "meter-with-password", Some(("gateway", "s3cret"))).await;
    meter
        .send(
            "meters/ZS-0001/reading",
            native("2026-11-23T08:00:00+08:00", 1),
        )
        .await;
    meter.flush().await;
    wait_for_readings(&gateway.store, 1).await;
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installers_see_rejected_messages_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let gateway = start_gateway(&config).await;
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-cli").await;
    meter
        .send(
            "meters/ZS-0009/reading",
            r#"{"ts":"yesterday","total_l":5}"#,
        )
        .await;
    meter.flush().await;
    let store = gateway.store.clone();
    wait_until("the rejection is recorded", || {
        let store = store.clone();
        async move { store.rejected_messages(1).unwrap().len() == 1 }
    })
    .await;
    gateway.stop().await.unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .arg("--db")
        .arg(config.store.file().unwrap())
        .args(["ingest", "rejected"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("bad_timestamp") && printed.contains("meters/ZS-0009/reading"),
        "{printed}"
    );
    assert!(
        printed.contains("`ts` \"yesterday\" is not RFC 3339"),
        "{printed}"
    );
    assert!(
        printed.contains(r#"payload: {"ts":"yesterday","total_l":5}"#),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_reading_an_unknown_topic_and_a_megabyte_are_counted_and_harm_nothing() {
    use stillwater::clock::{Clock, ManualClock};
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();
    let gateway = start_gateway_with(&test_config(dir.path()), clock.clone()).await;
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-odd").await;
    let topic = "meters/ZS-0001/reading";
    let now = clock.now().secs();
    let at = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .to_rfc3339()
    };
    meter.send(topic, native(&at(now - 3600), 100)).await;
    // A clock running 23 hours fast: refused, so it never becomes the newest.
    meter.send(topic, native(&at(now + 23 * 3600), 101)).await;
    meter
        .send("meters/ZS-0001/extra/reading", native(&at(now), 102))
        .await;
    meter.send("wmbusmeters/kitchen/total_m3", "1.5").await;
    meter.send(topic, vec![b' '; 1_000_000]).await;
    // The next correct reading is the meter's newest, in order.
    meter.send(topic, native(&at(now - 60), 103)).await;
    meter.flush().await;
    wait_for_readings(&gateway.store, 2).await;
    let store = gateway.store.clone();
    wait_until("four rejections are recorded", || {
        let store = store.clone();
        async move { store.rejected_messages(10).unwrap().len() == 4 }
    })
    .await;
    let mut rejected: Vec<(String, String)> = store
        .rejected_messages(10)
        .unwrap()
        .into_iter()
        .map(|r| (r.reason, r.topic))
        .collect();
    rejected.sort();
    assert_eq!(
        rejected,
        [
            ("future_ts".to_string(), topic.to_string()),
            ("oversize".into(), topic.into()),
            (
                "unknown_topic".into(),
                "meters/ZS-0001/extra/reading".into()
            ),
            (
                "unknown_topic".into(),
                "wmbusmeters/kitchen/total_m3".into()
            ),
        ]
    );
    let state = store.meter_state("ZS-0001").unwrap().unwrap();
    assert_eq!(state.last_reading_ts, Some(now - 60));
    assert_eq!(state.last_total_l, Some(103));
    assert_eq!(gateway.metrics.readings_out_of_order.load(Relaxed), 0);
    let (_, body) = http_get(gateway.http_addr, "/metrics").await;
    for reason in ["future_ts", "oversize"] {
        let name = format!("stillwater_readings_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&body, &name), 1.0, "{name}");
    }
    assert_eq!(
        metric(
            &body,
            "stillwater_readings_rejected_total{reason=\"unknown_topic\"}"
        ),
        2.0
    );
    gateway.stop().await.unwrap();
}

/// A byte stream a meter talks over: TCP, or TLS over TCP.
trait Wire: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Wire for S {}

/// A meter speaking MQTT packet by packet, to see exactly what the server answers.
struct RawMeter {
    stream: Box<dyn Wire>,
    buf: bytes::BytesMut,
}

impl RawMeter {
    async fn connect(addr: std::net::SocketAddr, client_id: &str) -> Self {
        let (meter, present) = Self::connect_with(addr, client_id, true).await;
        assert!(!present);
        meter
    }

    /// Connects with `clean_session` as given; whether the server says the
    /// client's session is present.
    async fn connect_with(
        addr: std::net::SocketAddr,
        client_id: &str,
        clean_session: bool,
    ) -> (Self, bool) {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        Self::over(Box::new(stream), client_id, clean_session).await
    }

    /// Connects over `stream`; whether the session is present.
    async fn over(stream: Box<dyn Wire>, client_id: &str, clean_session: bool) -> (Self, bool) {
        match Self::log_in(stream, client_id, clean_session, None).await {
            Ok(connected) => connected,
            Err(code) => panic!("not accepted: {code:?}"),
        }
    }

    /// Connects over `stream` with `login` (username, password): the meter and
    /// whether its session is present, or the server's refusal.
    async fn log_in(
        stream: Box<dyn Wire>,
        client_id: &str,
        clean_session: bool,
        login: Option<(&str, &str)>,
    ) -> Result<(Self, bool), rumqttc::mqttbytes::v4::ConnectReturnCode> {
        use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet};
        let mut meter = Self {
            stream,
            buf: bytes::BytesMut::new(),
        };
        let mut connect = rumqttc::mqttbytes::v4::Connect::new(client_id);
        connect.keep_alive = 60;
        connect.clean_session = clean_session;
        if let Some((username, password)) = login {
            connect.set_login(username, password);
        }
        meter.send(Packet::Connect(connect)).await;
        match meter.recv().await {
            Some(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {
                Ok((meter, ack.session_present))
            }
            Some(Packet::ConnAck(ack)) => Err(ack.code),
            other => panic!("no CONNACK: {other:?}"),
        }
    }

    async fn send(&mut self, packet: rumqttc::mqttbytes::v4::Packet) {
        use tokio::io::AsyncWriteExt;
        let mut out = bytes::BytesMut::new();
        packet.write(&mut out, usize::MAX).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>, pkid: u16) {
        let mut publish = rumqttc::mqttbytes::v4::Publish::new(
            topic,
            rumqttc::mqttbytes::QoS::AtLeastOnce,
            payload.into(),
        );
        publish.pkid = pkid;
        self.send(rumqttc::mqttbytes::v4::Packet::Publish(publish))
            .await;
    }

    /// The next packet from the server; `None` once it has closed the connection.
    async fn recv(&mut self) -> Option<rumqttc::mqttbytes::v4::Packet> {
        use tokio::io::AsyncReadExt;
        loop {
            match rumqttc::mqttbytes::v4::Packet::read(&mut self.buf, 1 << 20) {
                Ok(packet) => return Some(packet),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(error) => panic!("the server sent a malformed packet: {error:?}"),
            }
            let read = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                self.stream.read_buf(&mut self.buf),
            )
            .await
            .expect("the server answers in time")
            .unwrap_or(0);
            if read == 0 {
                return None;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_server_acknowledges_a_reading_only_once_it_is_stored() {
    use rumqttc::mqttbytes::v4::{Packet, PubAck};
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    let mut meter = RawMeter::connect(gateway.mqtt_addr, "raw-meter").await;
    for (hour, pkid) in [(8, 1), (9, 2), (10, 3)] {
        let ts = format!("2026-11-23T{hour:02}:00:00+08:00");
        meter
            .publish("meters/ZS-0001/reading", native(&ts, 100 + hour), pkid)
            .await;
        assert_eq!(meter.recv().await, Some(Packet::PubAck(PubAck::new(pkid))));
        // The PUBACK came after the commit: the reading is there already
        // (in the reading log, if the writer has not folded it yet).
        let stored = gateway.store.readings("ZS-0001", 0, i64::MAX / 2).unwrap();
        assert_eq!(stored.last().map(|r| r.total_l), Some(100 + hour), "{ts}");
    }
    // A payload far over the limit is read past, recorded and acknowledged:
    // the same connection goes on.
    meter
        .publish("meters/ZS-0001/reading", vec![b'x'; 3_000_000], 4)
        .await;
    assert_eq!(meter.recv().await, Some(Packet::PubAck(PubAck::new(4))));
    let rejected = gateway.store.rejected_messages(1).unwrap();
    assert_eq!(
        (rejected[0].reason.as_str(), rejected[0].meter_id.as_deref()),
        ("oversize", Some("ZS-0001"))
    );
    assert!(
        rejected[0].detail.contains("3000000 bytes"),
        "{}",
        rejected[0].detail
    );
    assert!(rejected[0].payload.starts_with("xxxx"));
    meter
        .publish(
            "meters/ZS-0001/reading",
            native("2026-11-23T11:00:00+08:00", 111),
            5,
        )
        .await;
    assert_eq!(meter.recv().await, Some(Packet::PubAck(PubAck::new(5))));
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_server_refuses_subscriptions_and_replaces_a_client_that_reconnects() {
    use rumqttc::mqttbytes::v4::{Packet, SubAck, Subscribe, SubscribeReasonCode};
    use rumqttc::mqttbytes::QoS;
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    let mut first = RawMeter::connect(gateway.mqtt_addr, "meter-twice").await;
    let mut subscribe = Subscribe::new("meters/#", QoS::AtLeastOnce);
    subscribe.pkid = 9;
    first.send(Packet::Subscribe(subscribe)).await;
    assert_eq!(
        first.recv().await,
        Some(Packet::SubAck(SubAck::new(
            9,
            vec![SubscribeReasonCode::Failure]
        )))
    );
    first.send(Packet::PingReq).await;
    assert_eq!(first.recv().await, Some(Packet::PingResp));
    // The same client id again (a meter whose old connection hangs half-open):
    // the new connection wins, the old one is closed.
    let mut second = RawMeter::connect(gateway.mqtt_addr, "meter-twice").await;
    assert_eq!(first.recv().await, None);
    second.send(Packet::PingReq).await;
    assert_eq!(second.recv().await, Some(Packet::PingResp));
    // A client may not send what only a server sends: the connection is closed.
    second
        .send(Packet::PubAck(rumqttc::mqttbytes::v4::PubAck::new(1)))
        .await;
    assert_eq!(second.recv().await, None);
    assert_eq!(gateway.metrics.mqtt_errors.load(Relaxed), 1);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meters_persistent_session_outlives_a_gateway_restart() {
    use rumqttc::mqttbytes::v4::Packet;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let gateway = start_gateway(&config).await;
    let addr = gateway.mqtt_addr;
    let (mut meter, present) = RawMeter::connect_with(addr, "meter-keeps", false).await;
    assert!(!present, "a new session");
    meter.send(Packet::Disconnect).await;
    assert_eq!(meter.recv().await, None);
    gateway.stop().await.unwrap();
    // The same port again, so the meter finds the restarted gateway.
    config.mqtt.broker = BrokerChoice::Embedded { listen: addr };
    let gateway = start_gateway(&config).await;
    let (_meter, present) = RawMeter::connect_with(addr, "meter-keeps", false).await;
    assert!(
        present,
        "told otherwise, the meter would discard what was not acknowledged"
    );
    // A clean session ends it.
    let (_clean, present) = RawMeter::connect_with(addr, "meter-keeps", true).await;
    assert!(!present);
    let (_again, present) = RawMeter::connect_with(addr, "meter-keeps", false).await;
    assert!(!present);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meters_can_publish_over_tls() {
    use rumqttc::mqttbytes::v4::{Packet, PubAck};
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let fixtures = tls_fixtures();
    let config = with_tls(dir.path(), fixtures.join("server.key"));
    let gateway = start_gateway(&config).await;
    let tls_addr = gateway.mqtt_tls_addr.expect("a TLS listener");

    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(fixtures.join("ca.pem")).unwrap();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.expect("the handshake");
    let (mut meter, _) = RawMeter::over(Box::new(stream), "meter-tls", true).await;
    meter
        .publish(
            "meters/ZS-0001/reading",
            native("2026-11-23T08:00:00+08:00", 42),
            1,
        )
        .await;
    assert_eq!(meter.recv().await, Some(Packet::PubAck(PubAck::new(1))));
    let stored = gateway.store.readings("ZS-0001", 0, i64::MAX / 2).unwrap();
    assert_eq!(stored.last().map(|r| r.total_l), Some(42));
    // Plain TCP stays open beside it, for a closed network.
    let _plain = RawMeter::connect(gateway.mqtt_addr, "meter-plain").await;
    // Plain MQTT sent to the TLS port is not a handshake: refused, counted.
    let mut confused = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    let mut connect = bytes::BytesMut::new();
    Packet::Connect(rumqttc::mqttbytes::v4::Connect::new("confused"))
        .write(&mut connect, usize::MAX)
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut confused, &connect)
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut confused, &mut rest).await;
    let metrics = gateway.metrics.clone();
    wait_until("the failed handshake is counted", || {
        let metrics = metrics.clone();
        async move { metrics.mqtt_errors.load(Relaxed) == 1 }
    })
    .await;
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_tls_key_is_a_start_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = with_tls(dir.path(), dir.path().join("no-such.key"));
    let error = Gateway::start(&config).await.err().expect("refused");
    let said = format!("{error:#}");
    assert!(
        said.contains("tls_key_file") && said.contains("no-such.key"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_with_its_own_login_publishes_only_its_own_readings() {
    use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet, PubAck};
    use stillwater::domain::{Actor, Channel, Role};
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.mqtt.meter_logins = true;
    shared_login(&mut config, "concentrator", "c0nc3ntr4t0r");
    let store = stillwater::store::Store::from_config(&config.store).unwrap();
    let households =
        stillwater::registry::parse_csv(include_str!("fixtures/csv/good.csv"), &config.registry)
            .unwrap();
    let installer = Actor::new("installer", Role::Installer, Channel::Cli);
    stillwater::actions::meters::register(&store, &installer, &households, 0).unwrap();
    let password =
        stillwater::actions::meters::new_login(&store, &installer, "ZS-0001", 0).unwrap();
    assert_eq!(password.len(), 26);
    let gateway = start_gateway(&config).await;
    let addr = gateway.mqtt_addr;
    let tcp = || async move {
        Box::new(tokio::net::TcpStream::connect(addr).await.unwrap()) as Box<dyn Wire>
    };

    let (mut meter, _) = RawMeter::log_in(tcp().await, "zs1", true, Some(("ZS-0001", &password)))
        .await
        .expect("the meter's own login");
    meter
        .publish(
            "meters/ZS-0001/reading",
            native("2026-11-23T08:00:00+08:00", 7),
            1,
        )
        .await;
    assert_eq!(meter.recv().await, Some(Packet::PubAck(PubAck::new(1))));
    // Another home's topic: acknowledged (MQTT 3.1.1 has no refusal), never stored.
    meter
        .publish(
            "meters/ZS-0002/reading",
            native("2026-11-23T08:00:00+08:00", 9),
            2,
        )
        .await;
    assert_eq!(meter.recv().await, Some(Packet::PubAck(PubAck::new(2))));
    assert!(gateway.store.meter_state("ZS-0002").unwrap().is_none());
    let rejected = gateway.store.rejected_messages(1).unwrap();
    assert_eq!(rejected[0].reason, "not_permitted");
    assert_eq!(rejected[0].meter_id.as_deref(), Some("ZS-0001"));
    assert!(rejected[0]
        .detail
        .contains("only to meters/ZS-0001/reading"));

    for login in [Some(("ZS-0001", "guess")), Some(("ZS-0002", "guess")), None] {
        let refused = RawMeter::log_in(tcp().await, "intruder", true, login).await;
        assert_eq!(
            refused.err(),
            Some(ConnectReturnCode::BadUserNamePassword),
            "{login:?}"
        );
    }
    assert_eq!(gateway.metrics.mqtt_auth_failures.load(Relaxed), 3);
    // The shared login (a concentrator) may publish for any meter.
    let (mut concentrator, _) = RawMeter::log_in(
        tcp().await,
        "wmbus",
        true,
        Some(("concentrator", "c0nc3ntr4t0r")),
    )
    .await
    .expect("the shared login");
    concentrator
        .publish(
            "meters/ZS-0002/reading",
            native("2026-11-23T08:00:00+08:00", 11),
            1,
        )
        .await;
    assert_eq!(
        concentrator.recv().await,
        Some(Packet::PubAck(PubAck::new(1)))
    );
    assert!(gateway.store.meter_state("ZS-0002").unwrap().is_some());
    // A login taken away no longer works.
    stillwater::actions::meters::remove_login(&store, &installer, "ZS-0001", 0).unwrap();
    let refused = RawMeter::log_in(tcp().await, "zs1", true, Some(("ZS-0001", &password))).await;
    assert!(refused.is_err());
    gateway.stop().await.unwrap();
}

/// The test CA, and a certificate for localhost and 127.0.0.1 signed by it.
fn tls_fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

/// A configuration in `dir` whose embedded server also takes TLS, with the
/// fixture certificate and the private key in `key`.
fn with_tls(dir: &std::path::Path, key: std::path::PathBuf) -> stillwater::config::Config {
    let mut config = test_config(dir);
    config.mqtt.tls = Some(stillwater::config::TlsFiles {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert: tls_fixtures().join("server.pem"),
        key,
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_lost_on_the_way_are_counted_by_the_meters_own_counter() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-counts").await;
    let topic = "meters/ZS-0001/reading";
    let with_seq = |hour: i64, seq: u64| {
        format!(
            r#"{{"ts":"2026-11-23T{hour:02}:00:00+08:00","total_l":{},"seq":{seq}}}"#,
            100 + hour
        )
    };
    // 1, 2, then 5: two never came; then 3 arrives late after all.
    for (hour, seq) in [(8, 1), (9, 2), (12, 5)] {
        meter.send(topic, with_seq(hour, seq)).await;
    }
    meter.flush().await;
    wait_for_readings(&gateway.store, 3).await;
    let state = gateway.store.meter_state("ZS-0001").unwrap().unwrap();
    assert_eq!(state.missing, 2);
    meter.send(topic, with_seq(10, 3)).await;
    meter.flush().await;
    wait_for_readings(&gateway.store, 4).await;
    let state = gateway.store.meter_state("ZS-0001").unwrap().unwrap();
    assert_eq!(state.missing, 1, "the late one was found");
    // A counter that goes back (the meter restarted) counts nothing.
    meter.send(topic, with_seq(13, 1)).await;
    meter.flush().await;
    wait_for_readings(&gateway.store, 5).await;
    assert_eq!(
        gateway
            .store
            .meter_state("ZS-0001")
            .unwrap()
            .unwrap()
            .missing,
        1
    );
    let (_, body) = http_get(gateway.http_addr, "/metrics").await;
    assert_eq!(metric(&body, "stillwater_readings_missing_total"), 2.0);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_5_client_is_told_the_server_speaks_3_1_1() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    // An MQTT 5 CONNECT: level 5, clean start, keep-alive 60, no properties,
    // client id "m5".
    let connect = [
        0x10, 15, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 2, b'm', b'5',
    ];
    let mut stream = tokio::net::TcpStream::connect(gateway.mqtt_addr)
        .await
        .unwrap();
    stream.write_all(&connect).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert_eq!(
        answer,
        [0x20, 2, 0, 1],
        "CONNACK: unacceptable protocol version"
    );
    gateway.stop().await.unwrap();
}

/// Every client of the embedded server must log in as `user` with `password`.
fn shared_login(config: &mut stillwater::config::Config, user: &str, password: &str) {
    config.mqtt.credentials = Some((
        user.into(),
        stillwater::config::Secret::new(password.into()),
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_silent_past_its_keep_alive_is_disconnected() {
    use rumqttc::mqttbytes::v4::{Connect, Packet};
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    let stream = tokio::net::TcpStream::connect(gateway.mqtt_addr)
        .await
        .unwrap();
    let mut meter = RawMeter {
        stream: Box::new(stream),
        buf: bytes::BytesMut::new(),
    };
    let mut connect = Connect::new("sleepy");
    connect.keep_alive = 1;
    meter.send(Packet::Connect(connect)).await;
    assert!(matches!(meter.recv().await, Some(Packet::ConnAck(_))));
    // MQTT 3.1.1, 3.1.2.10: one and a half keep-alives without a packet and
    // the server closes the connection (the test's own limit is 30 s).
    let started = std::time::Instant::now();
    assert_eq!(meter.recv().await, None);
    // Not at once (1.5 s after its last packet; a loose bound, for busy machines).
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    gateway.stop().await.unwrap();
}
