//! End to end through each real SMS provider's formats, against local mocks
//! of their APIs: a silent home's alert goes out through Aliyun, Tencent
//! Cloud or Twilio; the provider's delivery receipt moves the text to
//! delivered (or not) in the alert's history; a reply in the provider's own
//! inbound format acknowledges the alert. A failing provider hands its texts
//! to the secondary and raises a system alert to the administrators; a daily
//! heartbeat goes through each provider; Aliyun's daily cap is respected.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::home::*;
use common::*;
use stillwater::app::Gateway;
use stillwater::config::{Config, ProviderChoice, Secret};
use stillwater::domain::PhoneNumber;
use stillwater::notify::sign;
use stillwater::store::prelude::*;
use stillwater::store::Store;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const CALLBACK_TOKEN: &str = "cb-7f3a9e";
const ADMIN: &str = "+8613700137000";

fn env(name: &str) -> Option<String> {
    match name {
        "STILLWATER_ALIYUN_ACCESS_KEY_ID" => Some("testId".into()),
        "STILLWATER_ALIYUN_ACCESS_KEY_SECRET" => Some("testSecret".into()),
        "STILLWATER_TENCENT_SECRET_ID" => Some("AKIDtest".into()),
        "STILLWATER_TENCENT_SECRET_KEY" => Some("tencent-key".into()),
        "STILLWATER_TWILIO_AUTH_TOKEN" => Some("twilio-token".into()),
        _ => None,
    }
}

/// The sample configuration's provider, sending to `endpoint`.
fn sample_provider(name: &str, endpoint: &str) -> ProviderChoice {
    let file = format!("{}/config/examples/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let config = Config::from_toml(&std::fs::read_to_string(file).unwrap(), &env).unwrap();
    let mut provider = config.sms.provider;
    match &mut provider {
        ProviderChoice::Aliyun(aliyun) => aliyun.endpoint = endpoint.into(),
        ProviderChoice::Tencent(tencent) => tencent.endpoint = endpoint.into(),
        ProviderChoice::Twilio(twilio) => twilio.endpoint = endpoint.into(),
        _ => unreachable!(),
    }
    provider
}

/// A gateway texting through the sample `name` provider at `server`, with
/// the household registered.
fn provider_config(dir: &std::path::Path, name: &str, server: &MockServer) -> Config {
    config(dir, sample_provider(name, &format!("{}/", server.uri())))
}

/// Posts a JSON callback to `/sms/{provider}/{token}/{what}`.
async fn callback(
    gateway: &Gateway,
    provider: &str,
    what: &str,
    body: serde_json::Value,
) -> (u16, String) {
    post(
        gateway,
        &format!("/sms/{provider}/{CALLBACK_TOKEN}/{what}"),
        "application/json",
        body.to_string(),
    )
    .await
}

/// A gateway texting through `provider`, with the household registered.
fn config(dir: &std::path::Path, provider: ProviderChoice) -> Config {
    let mut config = test_config(dir);
    config.sms.provider = provider;
    config.sms.callback_token = Some(Secret::new(CALLBACK_TOKEN.into()));
    config.sms.timeout = Duration::from_secs(5);
    config.alerts.tick = Duration::from_millis(100);
    config.watch.check_every = Duration::from_millis(50);
    register_household(&config);
    config
}

fn webhook(server: &MockServer) -> ProviderChoice {
    ProviderChoice::Webhook {
        url: format!("{}/sms", server.uri()),
        token: None,
    }
}

/// Aliyun's answer, with a BizId made from the request's OutId.
struct AliyunOk;

impl Respond for AliyunOk {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let out_id = query_value(request, "OutId").unwrap_or_default();
        ResponseTemplate::new(200).set_body_string(
            serde_json::json!({"Code": "OK", "Message": "OK", "BizId": format!("biz-{out_id}"), "RequestId": "r"})
                .to_string(),
        )
    }
}

fn query_value(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn mock(responder: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(responder)
        .mount(&server)
        .await;
    server
}

async fn post(gateway: &Gateway, path: &str, content_type: &str, body: String) -> (u16, String) {
    post_with(gateway, path, content_type, body, &[]).await
}

async fn post_with(
    gateway: &Gateway,
    path: &str,
    content_type: &str,
    body: String,
    headers: &[(&str, String)],
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{path}", gateway.http_addr))
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The text to `phone`, once it is sent.
async fn sent_text(store: &Store, phone: &str) -> stillwater::store::outbox::Notification {
    wait_until(&format!("the text to {phone} is sent"), || async {
        store
            .notifications(None)
            .unwrap()
            .iter()
            .any(|t| t.phone == phone && t.state == "sent")
    })
    .await;
    store
        .notifications(None)
        .unwrap()
        .into_iter()
        .find(|t| t.phone == phone && t.state == "sent")
        .unwrap()
}

fn history(store: &Store, alert: i64) -> Vec<String> {
    store
        .alert_events(alert)
        .unwrap()
        .into_iter()
        .map(|e| format!("{}: {}", e.action, e.detail))
        .collect()
}

async fn wait_for_state(store: &Store, alert: i64, state: &str) {
    wait_until(&format!("alert {alert} is {state}"), || async {
        store
            .alert(alert)
            .unwrap()
            .is_some_and(|a| a.state == state)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_texts_receipts_and_replies_close_the_loop() {
    let aliyun = mock(AliyunOk).await;
    let dir = tempfile::tempdir().unwrap();
    let config = provider_config(dir.path(), "aliyun", &aliyun);
    let gateway = start_gateway(&config).await;
    publish_hourly(&gateway, &silent_day()).await;
    let text = sent_text(&gateway.store, STEP_1).await;
    assert_eq!(text.provider.as_deref(), Some("aliyun"));
    let biz_id = format!("biz-{}", text.idempotency_key);
    assert_eq!(text.provider_ref.as_deref(), Some(biz_id.as_str()));
    let requests = aliyun.received_requests().await.unwrap();
    assert!(requests
        .iter()
        .any(|r| query_value(r, "TemplateCode").as_deref() == Some("SMS_400100001")));

    // Aliyun's SmsReport push: the text is delivered, in the alert's history.
    let report = serde_json::json!([{
        "phone_number": "13800138000", "send_time": "2026-12-03 09:00:00",
        "report_time": "2026-12-03 09:00:05", "success": true, "err_code": "DELIVERED",
        "err_msg": "用户接收成功", "sms_size": "1", "biz_id": biz_id, "out_id": text.idempotency_key
    }]);
    let (status, body) = callback(&gateway, "aliyun", "report", report).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"code":0,"msg":"接收成功"}"#)
    );
    let text = sent_text(&gateway.store, STEP_1).await;
    assert_eq!(text.delivery.as_deref(), Some("delivered"));
    let events = history(&gateway.store, text.alert_id);
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("text_delivered: aliyun reports the text to")),
        "{events:?}"
    );

    // A body that is not Aliyun's JSON is refused, saying why (Aliyun would
    // only send it again).
    let (status, refusal) = post(
        &gateway,
        &format!("/sms/aliyun/{CALLBACK_TOKEN}/report"),
        "application/json",
        "<xml/>".into(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(refusal.contains("not JSON"), "{refusal}");

    // A wrong path token is no path at all.
    let (status, _) = post(
        &gateway,
        "/sms/aliyun/guess/reply",
        "application/json",
        "[]".into(),
    )
    .await;
    assert_eq!(status, 404);

    // Aliyun's SmsUp push: the contact's "1" acknowledges the alert.
    let up = serde_json::json!([{
        "phone_number": "13800138000", "content": "1", "send_time": "2026-12-03 09:01:00",
        "dest_code": "", "sequence_id": 1234567890
    }]);
    let (status, body) = callback(&gateway, "aliyun", "reply", up).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"code":0,"msg":"接收成功"}"#)
    );
    wait_for_state(&gateway.store, text.alert_id, "acknowledged").await;
    let alert = gateway.store.alert(text.alert_id).unwrap().unwrap();
    assert_eq!(alert.acknowledged.unwrap().2, "sms");
    gateway.stop().await.unwrap();
}

/// Tencent's answer: one status for the number, its SerialNo made from the SessionContext.
struct TencentOk;

impl Respond for TencentOk {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let session = body["SessionContext"].as_str().unwrap_or_default();
        let phone = body["PhoneNumberSet"][0].as_str().unwrap_or_default();
        ResponseTemplate::new(200).set_body_string(
            serde_json::json!({"Response": {"SendStatusSet": [{
                "SerialNo": format!("sn-{session}"), "PhoneNumber": phone, "Fee": 1,
                "SessionContext": session, "Code": "Ok", "Message": "send success", "IsoCode": "CN"
            }], "RequestId": "r"}})
            .to_string(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencent_texts_receipts_and_replies_close_the_loop() {
    let tencent = mock(TencentOk).await;
    let dir = tempfile::tempdir().unwrap();
    let config = provider_config(dir.path(), "tencent", &tencent);
    let gateway = start_gateway(&config).await;
    publish_hourly(&gateway, &silent_day()).await;
    let text = sent_text(&gateway.store, STEP_2).await;
    let serial = text.provider_ref.clone().unwrap();
    assert_eq!(serial, format!("sn-{}", text.idempotency_key));

    // The status callback says the text did not arrive: the history says so.
    let status_body = serde_json::json!([{
        "user_receive_time": "2026-12-03 09:00:04", "nationcode": "86", "mobile": "13900139000",
        "report_status": "FAIL", "errmsg": "MK:0001", "description": "用户关机", "sid": serial
    }]);
    let (status, body) = callback(&gateway, "tencent", "status", status_body).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"result":0,"errmsg":"OK"}"#)
    );
    let events = history(&gateway.store, text.alert_id);
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("text_undelivered:") && e.contains("MK:0001 用户关机")),
        "{events:?}"
    );

    // The reply callback, a full-width "１" as Chinese input methods type it.
    let reply = serde_json::json!({"extend": "", "mobile": "13900139000", "nationcode": "86",
        "sign": "水表关爱", "text": "１", "time": 1_796_300_000});
    let (status, body) = callback(&gateway, "tencent", "reply", reply).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"result":0,"errmsg":"OK"}"#)
    );
    wait_for_state(&gateway.store, text.alert_id, "acknowledged").await;
    gateway.stop().await.unwrap();
}

/// Twilio's answer: a message sid per request.
struct TwilioOk(AtomicUsize);

impl Respond for TwilioOk {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        ResponseTemplate::new(201).set_body_string(
            serde_json::json!({"sid": format!("SM{n:032}"), "status": "queued"}).to_string(),
        )
    }
}

const PUBLIC_URL: &str = "https://stillwater.example.org";

/// Posts `fields` as Twilio would, signed with `token` for the URL Twilio
/// would have called.
async fn post_twilio(
    gateway: &Gateway,
    path: &str,
    fields: &[(&str, &str)],
    token: &str,
) -> (u16, String) {
    let pairs: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        body.append_pair(k, v);
    }
    let signature = sign::twilio_signature(token, &format!("{PUBLIC_URL}{path}"), &pairs);
    post_with(
        gateway,
        path,
        "application/x-www-form-urlencoded",
        body.finish(),
        &[("x-twilio-signature", signature)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_texts_and_its_signed_webhooks_close_the_loop() {
    let twilio = mock(TwilioOk(AtomicUsize::new(0))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), sample_provider("twilio", &twilio.uri()));
    config.sms.public_url = PUBLIC_URL.into();
    let gateway = start_gateway(&config).await;
    publish_hourly(&gateway, &silent_day()).await;
    let text = sent_text(&gateway.store, STEP_1).await;
    let sid = text.provider_ref.clone().unwrap();

    let (status, _) = post_twilio(
        &gateway,
        "/sms/twilio/status",
        &[
            ("MessageSid", &sid),
            ("MessageStatus", "delivered"),
            ("AccountSid", "AC00000000000000000000000000000000"),
        ],
        "twilio-token",
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        sent_text(&gateway.store, STEP_1).await.delivery.as_deref(),
        Some("delivered")
    );

    let reply = [
        ("MessageSid", "SMreply"),
        ("From", STEP_1),
        ("To", "+15005550006"),
        ("Body", "1"),
        ("NumMedia", "0"),
    ];
    // A forged signature (another token) is refused and changes nothing.
    let (status, refusal) =
        post_twilio(&gateway, "/sms/twilio/inbound", &reply, "other-token").await;
    assert_eq!(status, 403, "{refusal}");
    assert_eq!(
        gateway.store.alert(text.alert_id).unwrap().unwrap().state,
        "open"
    );
    let (status, twiml) =
        post_twilio(&gateway, "/sms/twilio/inbound", &reply, "twilio-token").await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains("<Response><Message>") && twiml.contains(&format!("#{}", text.alert_id)),
        "Twilio texts the confirmation back: {twiml}"
    );
    wait_for_state(&gateway.store, text.alert_id, "acknowledged").await;
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_from_outside_the_allow_list_are_refused() {
    let aliyun = mock(AliyunOk).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = provider_config(dir.path(), "aliyun", &aliyun);
    config.sms.callback_allow =
        vec![stillwater::config::AddressBlock::parse("10.0.0.0/8").unwrap()];
    let gateway = start_gateway(&config).await;
    let (status, body) = post(
        &gateway,
        &format!("/sms/aliyun/{CALLBACK_TOKEN}/reply"),
        "application/json",
        r#"[{"phone_number":"13800138000","content":"1"}]"#.into(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // A provider that is not configured has no callbacks.
    let (status, _) = post(
        &gateway,
        &format!("/sms/tencent/{CALLBACK_TOKEN}/reply"),
        "application/json",
        "{}".into(),
    )
    .await;
    assert_eq!(status, 404);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_hands_its_texts_to_the_secondary_and_raises_a_system_alert() {
    let aliyun = mock(ResponseTemplate::new(500).set_body_string("upstream error")).await;
    let gateway_sms = mock(ResponseTemplate::new(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = provider_config(dir.path(), "aliyun", &aliyun);
    config.sms.secondary = Some(webhook(&gateway_sms));
    config.watch.admins = vec![PhoneNumber::parse(ADMIN).unwrap()];
    config.watch.provider_failures = 2;
    config.watch.heartbeat_at_min = None;
    config.sms.inbound_token = Some(Secret::new("admin-token".into()));
    let gateway = start_gateway(&config).await;
    publish_hourly(&gateway, &silent_day()).await;

    // Both contacts' texts, then the administrator's, reach the secondary.
    let requests = wait_for_requests(&gateway_sms, 3).await;
    let bodies: Vec<serde_json::Value> = requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let admin = bodies
        .iter()
        .find(|b| b["to"] == ADMIN)
        .expect("the administrator is texted");
    let words = admin["text"].as_str().unwrap();
    assert!(
        words.starts_with("【水表关爱·系统】短信通道 aliyun 连续") && words.contains("回复 1 确认"),
        "{words}"
    );
    assert_eq!(admin["template"], "system.alert");

    let system = gateway
        .store
        .list_alerts(false, 10)
        .unwrap()
        .into_iter()
        .find(|a| a.kind == "sms_failing")
        .expect("a system alert in `alerts list`");
    assert_eq!(system.meter_id, "system/aliyun");
    let (_, metrics) = http_get(gateway.http_addr, "/metrics").await;
    assert!(
        metrics.contains("stillwater_system_alerts_open{alert=\"sms_failing/aliyun\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("stillwater_sms_provider_failures_in_a_row{provider=\"aliyun\"}"));

    // Each contact's text: tried at Aliyun, handed on, sent by the webhook.
    let text = sent_text(&gateway.store, STEP_1).await;
    assert_eq!(text.provider.as_deref(), Some("webhook"));
    let attempts: Vec<(String, Option<String>)> = gateway
        .store
        .notification_attempts(text.id)
        .unwrap()
        .into_iter()
        .map(|a| (a.outcome, a.provider))
        .collect();
    assert_eq!(
        attempts,
        [
            ("failover".to_string(), Some("aliyun".to_string())),
            ("sent".to_string(), Some("webhook".to_string()))
        ]
    );
    // No text went out through both: each key reached the webhook once, and
    // Aliyun never took one.
    let keys: std::collections::BTreeSet<String> = bodies
        .iter()
        .map(|b| b["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), bodies.len());

    // The administrator acknowledges by reply, like any alert.
    let (status, _) = post_with(
        &gateway,
        "/sms/inbound",
        "application/json",
        format!(r#"{{"from": "{ADMIN}", "text": "1"}}"#),
        &[("authorization", "Bearer admin-token".to_string())],
    )
    .await;
    assert_eq!(status, 200);
    wait_for_state(&gateway.store, system.id, "acknowledged").await;
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_goes_through_each_provider_and_a_recovered_provider_clears_its_alert() {
    let aliyun = mock(
        ResponseTemplate::new(200)
            .set_body_string(r#"{"Code":"isv.AMOUNT_NOT_ENOUGH","Message":"账户余额不足"}"#),
    )
    .await;
    let gateway_sms = mock(ResponseTemplate::new(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = provider_config(dir.path(), "aliyun", &aliyun);
    config.sms.secondary = Some(webhook(&gateway_sms));
    config.watch.admins = vec![PhoneNumber::parse(ADMIN).unwrap()];
    config.watch.provider_failures = 1;
    config.watch.heartbeat_at_min = Some(0); // due as soon as the gateway runs
    let gateway = start_gateway(&config).await;

    // The heartbeat through the webhook arrives; Aliyun's cannot (no balance),
    // which raises sms_failing/aliyun, texted through the webhook.
    let requests = wait_for_requests(&gateway_sms, 2).await;
    let texts: Vec<String> = requests
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("每日自检：经 webhook")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("短信通道 aliyun") && t.contains("账户余额不足")),
        "{texts:?}"
    );
    let heartbeat_via_aliyun = gateway
        .store
        .notifications(None)
        .unwrap()
        .into_iter()
        .find(|t| t.template == "system.heartbeat" && t.provider.as_deref() == Some("aliyun"))
        .expect("a heartbeat pinned to aliyun");
    assert_eq!(
        heartbeat_via_aliyun.state, "pending",
        "never handed to the webhook"
    );
    let system = gateway
        .store
        .list_alerts(false, 10)
        .unwrap()
        .into_iter()
        .find(|a| a.kind == "sms_failing")
        .unwrap();

    // The account is topped up: the heartbeat's retry goes through Aliyun,
    // and the system alert resolves by itself.
    aliyun.reset().await;
    Mock::given(any())
        .respond_with(AliyunOk)
        .mount(&aliyun)
        .await;
    wait_for_state(&gateway.store, system.id, "resolved").await;
    let heartbeat = gateway
        .store
        .notifications(None)
        .unwrap()
        .into_iter()
        .find(|t| t.id == heartbeat_via_aliyun.id)
        .unwrap();
    assert_eq!(
        (heartbeat.state.as_str(), heartbeat.provider.as_deref()),
        ("sent", Some("aliyun"))
    );
    let heartbeats = aliyun.received_requests().await.unwrap();
    assert_eq!(
        query_value(&heartbeats[0], "TemplateCode").as_deref(),
        Some("SMS_400100017"),
        "the heartbeat's own template"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_at_aliyuns_daily_cap_is_texted_through_the_secondary() {
    let aliyun = mock(AliyunOk).await;
    let gateway_sms = mock(ResponseTemplate::new(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut provider = sample_provider("aliyun", &format!("{}/", aliyun.uri()));
    if let ProviderChoice::Aliyun(aliyun) = &mut provider {
        // A cap already reached for every number but the whitelisted one.
        aliyun.daily_cap = 0;
        aliyun.whitelist = vec![PhoneNumber::parse(STEP_2).unwrap()];
    }
    let mut config = config(dir.path(), provider);
    config.sms.secondary = Some(webhook(&gateway_sms));
    let gateway = start_gateway(&config).await;
    publish_hourly(&gateway, &silent_day()).await;
    let capped = sent_text(&gateway.store, STEP_1).await;
    let whitelisted = sent_text(&gateway.store, STEP_2).await;
    assert_eq!(capped.provider.as_deref(), Some("webhook"));
    assert_eq!(whitelisted.provider.as_deref(), Some("aliyun"));
    let handed_on = gateway.store.notification_attempts(capped.id).unwrap();
    let why = handed_on[0].error.clone().unwrap();
    assert!(
        handed_on[0].outcome == "failover"
            && why.contains("refuses more than 0 a day to one number")
            && why.contains("whitelist"),
        "{why}"
    );
    let to_aliyun: Vec<String> = aliyun
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| query_value(r, "PhoneNumbers"))
        .collect();
    assert_eq!(to_aliyun, ["13900139000"]);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_to_different_phones_are_in_flight_at_the_same_time() {
    // An SMS gateway that answers no text until two are waiting at once:
    // sent one after the other, neither would ever be answered.
    let both = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let app = axum::Router::new().route(
        "/sms",
        axum::routing::post(move || {
            let both = both.clone();
            async move {
                both.wait().await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), ProviderChoice::Webhook { url, token: None });
    let gateway = start_gateway(&config).await;
    publish_hourly(&gateway, &silent_day()).await;
    for phone in [STEP_1, STEP_2] {
        let text = sent_text(&gateway.store, phone).await;
        assert_eq!(text.attempts, 1, "answered at the first attempt: {phone}");
    }
    gateway.stop().await.unwrap();
}
