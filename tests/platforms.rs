//! NB-IoT meters through the carrier IoT platforms' HTTP pushes, end to end:
//! the platforms' real sample messages and firmware-sim's frames go through
//! `/ingest/…` into stored readings (the 200 only after the commit), a
//! platform's retry stores nothing twice, what cannot be read is kept in
//! `ingest rejected`, a forged OneNET signature, a wrong CTWing token and an
//! address outside the allow-list are refused; and a silent NB-IoT home's
//! pushes open an alert that texts its contacts.

mod common;

use std::time::Duration;

use common::home::*;
use common::*;
use firmware_sim::platform::{self as sim, Device, Hours};
use stillwater::app::Gateway;
use stillwater::config::{Config, ProviderChoice, Secret, StoreLocation};
use stillwater::store::prelude::*;
use stillwater::wire::platform::{FieldMap, ProductDecoder};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const CTWING_TOKEN: &str = "ctw-91c2e7";
const IOTDA_TOKEN: &str = "iot-5d0b3a";
const ONENET_TOKEN: &str = "stillwater-token";

/// CTWing's real transparent upload (its APPdata is a vendor's own format,
/// not CJ/T 188).
const CTWING_REAL: &str = r#"{"upPacketSN":-1,"upDataSN":-1,"topic":"v1/up/ad","timestamp":1650554828842,"tenantId":"2000033629","serviceId":"","protocol":"lwm2m","productId":"15114816","payload":{"APPdata":"AQFWMS4wAAAAACMAAAAH/wAlODYyNTkyMDUxNjUxNDcyAAEAMjUAODAAAAAAAAABAQAAAAEAAASD"},"messageType":"dataReport","deviceType":"","deviceId":"40edca19b0124480864366de4621de99","assocAssetId":"","IMSI":"undefined","IMEI":"862592051651472"}"#;
/// The same envelope carrying the reference CJ/T 188 read reply
/// (meter 00000012345678, 1234.56 m³ at 2024-11-15 08:30).
const CTWING_CJT188: &str = r#"{"upPacketSN":-1,"upDataSN":-1,"topic":"v1/up/ad","timestamp":1731659400000,"tenantId":"2000033629","serviceId":"","protocol":"lwm2m","productId":"15114816","payload":{"APPdata":"aBB4VjQSAAAAgRYfkAFWNBIALAAAEgAsADAIFREkIAAAexY="},"messageType":"dataReport","deviceType":"","deviceId":"40edca19b0124480864366de4621de99","assocAssetId":"","IMSI":"undefined","IMEI":"862592051651472"}"#;
const CTWING_ONLINE: &str = r#"{"timestamp":1731659400000,"tenantId":"10461180","protocol":"lwm2m","productId":"10053421","messageType":"deviceOnlineOfflineReport","iccid":"undefined","eventType":1,"deviceId":"44d0b9e48d404094bbbcf889e4e64ece"}"#;

fn platform_config(dir: &std::path::Path) -> Config {
    let mut config = test_config(dir);
    config.platforms.ctwing_token = Some(Secret::new(CTWING_TOKEN.into()));
    config.platforms.onenet_token = Some(Secret::new(ONENET_TOKEN.into()));
    config.platforms.iotda_token = Some(Secret::new(IOTDA_TOKEN.into()));
    config.platforms.products.insert(
        "iot-water-1".into(),
        ProductDecoder::Fields(FieldMap {
            total: "currentReading".into(),
            cubic_metres: false,
            battery_pct: Some("batteryLevel".into()),
        }),
    );
    config
}

/// Registers the installation CSV's households.
fn register(config: &Config, csv: &str) {
    let store = stillwater::store::Store::from_config(&config.store).unwrap();
    let households = stillwater::registry::parse_csv(csv, &config.registry).unwrap();
    let installer = stillwater::domain::Actor::new(
        "installer",
        stillwater::domain::Role::Installer,
        stillwater::domain::Channel::Cli,
    );
    stillwater::actions::meters::register(&store, &installer, &households, 0).unwrap();
}

/// Pushes `body` as CTWing, with the right token.
async fn push_ctwing(gateway: &Gateway, body: &str) -> (u16, String) {
    push(gateway, &format!("/ingest/ctwing/{CTWING_TOKEN}"), body).await
}

async fn push(gateway: &Gateway, path: &str, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{}{path}", gateway.http_addr))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn readings(gateway: &Gateway, meter: &str) -> Vec<stillwater::domain::StoredReading> {
    gateway.store.readings(meter, 0, i64::MAX).unwrap()
}

fn rejected(gateway: &Gateway) -> Vec<(String, String, String)> {
    gateway
        .store
        .rejected_messages(50)
        .unwrap()
        .into_iter()
        .map(|r| (r.topic, r.reason, r.detail))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctwing_pushes_are_stored_before_the_platform_hears_ok_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&platform_config(dir.path())).await;
    let path = format!("/ingest/ctwing/{CTWING_TOKEN}");
    let (status, body) = push(&gateway, &path, CTWING_CJT188).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    // Answered only after the commit: the reading is there already.
    let stored = readings(&gateway, "00000012345678");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].total_l, 1_234_560);
    assert_eq!(
        stored[0].ts.secs(),
        chrono::DateTime::parse_from_rfc3339("2024-11-15T08:30:00+08:00")
            .unwrap()
            .timestamp(),
        "the meter's clock, in the households' zone"
    );
    // CTWing retries: nothing is stored twice.
    let (status, _) = push(&gateway, &path, CTWING_CJT188).await;
    assert_eq!(status, 200);
    assert_eq!(readings(&gateway, "00000012345678").len(), 1);

    // A real upload whose bytes are not CJ/T 188: kept for the installer,
    // answered 200 (sending it again would not help).
    let (status, _) = push(&gateway, &path, CTWING_REAL).await;
    assert_eq!(status, 200);
    let kept = rejected(&gateway);
    assert!(
        kept.iter().any(|(topic, reason, detail)| topic
            == "ctwing/40edca19b0124480864366de4621de99"
            && reason == "bad_frame"
            && detail.starts_with("CJ/T 188:")),
        "{kept:?}"
    );
    // Online/offline reports are counted, not stored.
    let (status, _) = push(&gateway, &path, CTWING_ONLINE).await;
    assert_eq!(status, 200);
    let (_, metrics) = http_get(gateway.http_addr, "/metrics").await;
    assert!(
        metrics
            .contains("stillwater_platform_messages_total{platform=\"ctwing\",kind=\"online\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("stillwater_readings_rejected_total{reason=\"bad_frame\"} 1"));
    // What the platform said of the device is kept for `meters show`.
    let device = gateway
        .store
        .platform_device("44d0b9e48d404094bbbcf889e4e64ece")
        .unwrap()
        .expect("the device is known");
    assert_eq!(device.presence, Some((true, 1_731_659_400)));
    // A meter that pushes but is not registered is listed with its platform ids.
    let stray = gateway
        .store
        .unregistered_meters()
        .unwrap()
        .into_iter()
        .find(|m| m.meter_id == "00000012345678")
        .unwrap();
    let named = stray.platform.unwrap();
    assert_eq!(
        (
            named.platform.as_str(),
            named.device_id.as_str(),
            named.imei.as_deref()
        ),
        (
            "ctwing",
            "40edca19b0124480864366de4621de99",
            Some("862592051651472")
        )
    );

    // A wrong token is no path; a disabled platform has none either.
    let (status, _) = push(&gateway, "/ingest/ctwing/guessed", CTWING_CJT188).await;
    assert_eq!(status, 404);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_platform_device_reads_into_its_household_meter() {
    let dir = tempfile::tempdir().unwrap();
    let config = platform_config(dir.path());
    let csv = "meter_id,resident_name,address,contact1_name,contact1_phone,imei,platform_device_id
ZS-NB-01,王秀英,中山市东区朗晴街5号,李敏,13800138000,862592051651472,
ZS-NB-02,陈国华,中山市东区朗晴街7号,李敏,13800138000,,iotda-device-7
";
    register(&config, csv);
    let gateway = start_gateway(&config).await;
    // By IMEI: the CTWing device's frame lands on ZS-NB-01, not its address.
    let (status, _) = push_ctwing(&gateway, CTWING_CJT188).await;
    assert_eq!(status, 200);
    assert_eq!(readings(&gateway, "ZS-NB-01").len(), 1);
    assert!(readings(&gateway, "00000012345678").is_empty());

    // By platform device id, with the product's field map (IoTDA).
    let device = Device {
        product_id: "iot-water-1".into(),
        device_id: "iotda-device-7".into(),
        imei: "869975037677104".into(),
    };
    let at_ms = (chrono::Utc::now().timestamp() - 600) * 1000;
    let body = sim::iotda(&device, 42_317, at_ms);
    let (status, _) = push(&gateway, &format!("/ingest/iotda/{IOTDA_TOKEN}"), &body).await;
    assert_eq!(status, 200);
    let stored = readings(&gateway, "ZS-NB-02");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].total_l, 42_317);

    // A product nobody configured: its fields are refused by name.
    let stranger = Device {
        product_id: "unknown-product".into(),
        ..device
    };
    let (status, _) = push(
        &gateway,
        &format!("/ingest/iotda/{IOTDA_TOKEN}"),
        &sim::iotda(&stranger, 1, at_ms),
    )
    .await;
    assert_eq!(status, 200);
    assert!(rejected(&gateway)
        .iter()
        .any(|(topic, reason, detail)| topic == "iotda/iotda-device-7"
            && reason == "unknown_product"
            && detail.contains("unknown-product")));
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onenet_checks_the_url_and_every_signature() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&platform_config(dir.path())).await;
    // The URL check (the reference vector), answered with msg itself.
    let (status, body) = http_get(
        gateway.http_addr,
        "/ingest/onenet?msg=r4nd0mMsg&nonce=abcdefgh&signature=VRXKBvIME%2BXO03VL4vhIaw%3D%3D",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "r4nd0mMsg"));
    let (status, _) = http_get(
        gateway.http_addr,
        "/ingest/onenet?msg=r4nd0mMsg&nonce=abcdefgh&signature=AAAAAAAAAAAAAAAAAAAAAA%3D%3D",
    )
    .await;
    assert_eq!(status, 403);

    // A signed push with a CJ/T 188 frame in `value`.
    let device = Device {
        product_id: String::new(),
        device_id: "576096445".into(),
        imei: "869975037677104".into(),
    };
    let now = chrono::Utc::now().timestamp();
    let clock = chrono::DateTime::from_timestamp(now - 300, 0)
        .unwrap()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .naive_local();
    let frame = sim::cjt188_frame("00000805000001", 88_880, clock);
    let body = sim::onenet(&device, &frame, now * 1000, ONENET_TOKEN, "Zx8Kq2Lp");
    let (status, answer) = push(&gateway, "/ingest/onenet", &body).await;
    assert_eq!((status, answer.as_str()), (200, "ok"));
    assert_eq!(readings(&gateway, "00000805000001")[0].total_l, 88_880);

    // OneNET's real message from a Wasion meter (signed with OneNET's demo
    // token) verifies on its raw bytes; its vendor data identifier is kept
    // for the installer rather than guessed at.
    let mut demo = platform_config(dir.path());
    demo.platforms.onenet_token = Some(Secret::new("abcdefghijkmlnopqrstuvwxyz".into()));
    let real = r#"{"msg":{"at":1576828182709,"imei":"869975037677104","type":1,"ds_id":"3200_0_5750","value":"681071565022180400810CECCE09001D06B7E6282733167516","dev_id":576096445},"msg_signature":"H60kU2LlDEahPJB99zBj8Q==","nonce":"_wk73A)a"}"#;
    let second = tempfile::tempdir().unwrap();
    demo.store.location = StoreLocation::Sqlite(second.path().join("demo.db"));
    demo.http.listen = "127.0.0.1:0".parse().unwrap();
    let wasion = start_gateway(&demo).await;
    let (status, _) = push(&wasion, "/ingest/onenet", real).await;
    assert_eq!(status, 200);
    assert!(rejected(&wasion)
        .iter()
        .any(|(topic, reason, detail)| topic == "onenet/576096445"
            && reason == "bad_frame"
            && detail.contains("ECCE")));
    wasion.stop().await.unwrap();

    // Signed with another token: refused, and kept as bad_signature.
    let forged = sim::onenet(&device, &frame, now * 1000, "not-the-token", "Zx8Kq2Lp");
    let (status, _) = push(&gateway, "/ingest/onenet", &forged).await;
    assert_eq!(status, 403);
    assert!(rejected(&gateway)
        .iter()
        .any(|(topic, reason, _)| topic == "onenet" && reason == "bad_signature"));
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_from_outside_the_allow_list_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = platform_config(dir.path());
    config.platforms.allow =
        vec![stillwater::config::AddressBlock::parse("180.101.0.0/16").unwrap()];
    config.platforms.iotda_token = None;
    let gateway = start_gateway(&config).await;
    let (status, _) = push_ctwing(&gateway, CTWING_CJT188).await;
    assert_eq!(status, 403);
    assert!(readings(&gateway, "00000012345678").is_empty());
    let (status, _) = push(&gateway, &format!("/ingest/iotda/{IOTDA_TOKEN}"), "{}").await;
    assert_eq!(
        status, 404,
        "a platform that is not enabled has no endpoint"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_nb_iot_home_reached_through_ctwing_texts_its_contacts() {
    let sms = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&sms)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = platform_config(dir.path());
    config.sms.provider = ProviderChoice::Webhook {
        url: format!("{}/sms", sms.uri()),
        token: None,
    };
    config.alerts.tick = Duration::from_millis(100);
    // The household's meter is the CJ/T 188 meter number.
    let csv = HOUSEHOLD.replace("ZS-0001", "00000012345678");
    register(&config, &csv);
    let gateway = start_gateway(&config).await;
    let hours = Hours {
        platform: sim::Platform::Ctwing,
        url: format!("http://{}/ingest/ctwing/{CTWING_TOKEN}", gateway.http_addr),
        device: Device {
            product_id: "15114816".into(),
            device_id: "nb-home-1".into(),
            imei: "862592051650000".into(),
        },
        address: "00000012345678".into(),
        token: String::new(),
        zone: chrono_tz::Asia::Shanghai,
    };
    // Water in the first hour, then 25 silent hours, the last an hour ago.
    let start = (chrono::Utc::now().timestamp() / 3600 - 26) * 3600;
    sim::push_hours(&hours, start, 5_000, &silent_day())
        .await
        .unwrap();
    let texts = wait_for_requests(&sms, 2).await;
    let first: serde_json::Value = serde_json::from_slice(&texts[0].body).unwrap();
    assert_eq!(first["kind"], "no_usage");
    assert!(
        first["text"].as_str().unwrap().contains("张桂芳"),
        "{first}"
    );
    gateway.stop().await.unwrap();
}
