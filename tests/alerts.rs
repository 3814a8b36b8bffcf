//! End to end: readings through the embedded MQTT server → alert in the database →
//! texts at a mock SMS gateway (wiremock), replies through POST /sms/inbound.

mod common;

use std::time::Duration;

use common::home::*;
use common::*;
use stillwater::actions;
use stillwater::app::Gateway;
use stillwater::clock::{Clock, ManualClock};
use stillwater::config::{Config, ProviderChoice, Secret};
use stillwater::domain::{Actor, Channel, Role};
use stillwater::store::prelude::*;
use stillwater::store::Store;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const INBOUND_TOKEN: &str = "reply-token";

fn alert_config(dir: &std::path::Path, webhook: &str) -> Config {
    let mut config = test_config(dir);
    config.sms.provider = ProviderChoice::Webhook {
        url: format!("{webhook}/sms"),
        token: Some(Secret::new("gateway-token".into())),
    };
    config.sms.inbound_token = Some(Secret::new(INBOUND_TOKEN.into()));
    config.alerts.tick = Duration::from_millis(100);
    register_household(&config);
    config
}

/// Waits until the outbox holds `count` texts, all in `state`.
async fn wait_for_texts_in_state(store: &Store, count: usize, state: &str) {
    wait_until(&format!("{count} texts are {state}"), || {
        let store = store.clone();
        async move {
            let texts = store.notifications(None).unwrap();
            texts.len() == count && texts.iter().all(|t| t.state == state)
        }
    })
    .await;
}

fn body(request: &Request) -> serde_json::Value {
    serde_json::from_slice(&request.body).unwrap()
}

async fn mock_gateway() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_home_texts_its_contacts_through_the_webhook() {
    let server = mock_gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&alert_config(dir.path(), &server.uri())).await;
    publish_hourly(&gateway, &silent_day()).await;
    let requests = wait_for_requests(&server, 2).await;
    let mut texts: Vec<serde_json::Value> = requests.iter().map(body).collect();
    texts.sort_by_key(|text| text["to"].as_str().unwrap().to_string());
    assert_eq!(texts[0]["to"], STEP_1);
    assert_eq!(texts[1]["to"], STEP_2, "urgent: every step at once");
    let text = texts[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("【水表关爱】张桂芳（中山市石岐区民生路12号3楼）家自 ")
            && text.ends_with("回复 1 确认。"),
        "{text}"
    );
    assert_eq!(texts[0]["kind"], "no_usage");
    // What the text was made from travels with it, for template-based providers.
    assert_eq!(texts[0]["template"], "no_usage.alert");
    assert_eq!(texts[0]["values"]["name"], "张桂芳");
    assert_eq!(texts[0]["values"]["code"], 1);
    assert_eq!(texts[0]["values"]["hours"], 24);
    assert!(texts[0]["idempotency_key"]
        .as_str()
        .unwrap()
        .contains(STEP_1));
    assert_eq!(
        requests[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        "Bearer gateway-token"
    );
    let alerts = gateway.store.list_alerts(true, 10).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].kind.as_str(), alerts[0].severity.as_str()),
        ("no_usage", "urgent")
    );
    gateway.stop().await.unwrap();
}

/// A gateway on a manual clock that texts warnings, after 13 silent hours: a
/// warning texted to step 1.
async fn a_warning_texted_to_step_one() -> (
    MockServer,
    tempfile::TempDir,
    Config,
    std::sync::Arc<ManualClock>,
    Gateway,
) {
    let server = mock_gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = alert_config(dir.path(), &server.uri());
    config.alerts.notify_warning = true;
    let clock = ManualClock::starting_now();
    let gateway = start_gateway_with(&config, clock.clone()).await;
    publish_hourly(&gateway, &silent_day()[..14]).await;
    (server, dir, config, clock, gateway)
}

/// Moves `clock` on by `seconds` and waits until the engine's timer has run
/// at (or after) the new time: no test waits for real time to pass.
async fn advance(gateway: &Gateway, clock: &ManualClock, seconds: i64) {
    clock.advance(seconds);
    let target = clock.now().secs();
    let tick = gateway.engine_tick.clone();
    wait_until("the alert engine's timer has run at the new time", || {
        let tick = tick.clone();
        async move { tick.load(std::sync::atomic::Ordering::Acquire) >= target }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_alert_escalates_to_step_two_then_reminds() {
    let (server, _dir, config, clock, gateway) = a_warning_texted_to_step_one().await;
    let first = wait_for_requests(&server, 1).await;
    assert_eq!(body(&first[0])["to"], STEP_1);
    let escalate_after = config.alerts.escalate_after.as_secs() as i64;
    advance(&gateway, &clock, escalate_after - 60).await;
    assert_eq!(
        gateway.store.notifications(None).unwrap().len(),
        1,
        "a minute before escalate_after, still only step 1"
    );
    advance(&gateway, &clock, 60).await;
    let requests = wait_for_requests(&server, 2).await;
    assert_eq!(
        body(&requests[1])["to"],
        STEP_2,
        "step 2 after escalate_after without acknowledgement"
    );
    let events: Vec<String> = gateway
        .store
        .alert_events(1)
        .unwrap()
        .into_iter()
        .map(|event| event.action)
        .collect();
    assert!(events.contains(&"escalated".to_string()), "{events:?}");
    // Nobody answers: after repeat_after everyone texted gets a reminder.
    advance(
        &gateway,
        &clock,
        config.alerts.repeat_after.as_secs() as i64,
    )
    .await;
    let requests = wait_for_requests(&server, 4).await;
    let reminders: Vec<String> = requests[2..]
        .iter()
        .map(|r| body(r)["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        reminders.iter().all(|text| text.contains("提醒")),
        "{reminders:?}"
    );
    gateway.stop().await.unwrap();
}

async fn reply(gateway: &Gateway, from: &str, text: &str, token: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/sms/inbound", gateway.http_addr))
        .bearer_auth(token)
        .json(&serde_json::json!({ "from": from, "text": text }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_the_text_acknowledges_and_stops_escalation() {
    let (server, _dir, config, clock, gateway) = a_warning_texted_to_step_one().await;
    wait_for_requests(&server, 1).await;

    let (status, _) = reply(&gateway, "13800138000", "1", "wrong-token").await;
    assert_eq!(status, 401);
    let (status, answer) = reply(&gateway, "13800138000", "9", INBOUND_TOKEN).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("unknown_code"))
    );
    // As a Chinese input method types it: a full-width digit and a full stop.
    let (status, answer) = reply(&gateway, "138 0013 8000", "１。", INBOUND_TOKEN).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("acknowledged")),
        "{answer}"
    );
    assert!(answer["reply"].as_str().unwrap().contains("已确认"));
    let (_, answer) = reply(&gateway, "13800138000", "1", INBOUND_TOKEN).await;
    assert_eq!(answer["result"], "stale");

    // Past the escalation and reminder deadlines, nobody else is texted.
    let store = gateway.store.clone();
    advance(
        &gateway,
        &clock,
        config.alerts.repeat_after.as_secs() as i64 + 60,
    )
    .await;
    assert_eq!(store.notifications(None).unwrap().len(), 1);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "no text after the acknowledgement");
    let alert = store.alert(1).unwrap().unwrap();
    assert_eq!(alert.state, "acknowledged");
    assert_eq!(
        alert.acknowledged.map(|(_, by, via)| (by, via)),
        Some(("李敏".to_string(), "sms".to_string()))
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_absence_keeps_the_contacts_quiet() {
    let server = mock_gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let config = alert_config(dir.path(), &server.uri());
    let store = Store::from_config(&config.store).unwrap();
    let now = chrono::Utc::now().timestamp();
    let operator = Actor::new("operator", Role::Operator, Channel::Cli);
    actions::absences::declare(
        &store,
        &operator,
        &["ZS-0001".into()],
        "visiting family for Spring Festival",
        now - 4 * 86_400,
        now + 86_400,
        now,
    )
    .unwrap();
    let gateway = start_gateway(&config).await;
    publish_hourly(&gateway, &silent_day()).await;
    assert!(gateway.store.list_alerts(true, 10).unwrap().is_empty());
    assert!(server.received_requests().await.unwrap().is_empty());
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_error_is_retried_and_each_text_arrives_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&alert_config(dir.path(), &server.uri())).await;
    publish_hourly(&gateway, &silent_day()).await;
    let store = gateway.store.clone();
    wait_for_texts_in_state(&store, 2, "sent").await;
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests.len(),
        3,
        "one failed attempt, then one delivery per text"
    );
    let first_key = body(&requests[0])["idempotency_key"].clone();
    let retried: Vec<_> = requests
        .iter()
        .filter(|r| body(r)["idempotency_key"] == first_key)
        .collect();
    assert_eq!(
        retried.len(),
        2,
        "the failed text was retried with the same idempotency key"
    );
    let texts = store.notifications(None).unwrap();
    assert_eq!(texts.iter().map(|t| t.attempts).sum::<u32>(), 3);
    let retried = texts
        .iter()
        .find(|t| t.attempts == 2)
        .expect("the retried text");
    let history: Vec<String> = store
        .notification_attempts(retried.id)
        .unwrap()
        .into_iter()
        .map(|attempt| attempt.outcome)
        .collect();
    assert_eq!(history, ["retry", "sent"], "every attempt is recorded");
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_committed_but_not_sent_before_a_stop_is_sent_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let config = alert_config(dir.path(), &unreachable);
    let gateway = start_gateway(&config).await;
    publish_hourly(&gateway, &silent_day()).await;
    let store = gateway.store.clone();
    wait_until(
        "the texts are queued and their first attempt failed",
        || {
            let store = store.clone();
            async move {
                let texts = store.notifications(None).unwrap();
                texts.len() == 2
                    && texts
                        .iter()
                        .all(|t| t.state == "pending" && t.attempts >= 1)
            }
        },
    )
    .await;
    gateway.stop().await.unwrap();

    let server = mock_gateway().await;
    let mut config = config;
    config.sms.provider = ProviderChoice::Webhook {
        url: format!("{}/sms", server.uri()),
        token: None,
    };
    let gateway = start_gateway(&config).await;
    wait_until("both texts are delivered after the restart", || {
        let store = store.clone();
        async move {
            store
                .notifications(None)
                .unwrap()
                .iter()
                .all(|t| t.state == "sent")
        }
    })
    .await;
    let requests = server.received_requests().await.unwrap();
    let mut recipients: Vec<String> = requests
        .iter()
        .map(|r| body(r)["to"].as_str().unwrap().to_string())
        .collect();
    recipients.sort();
    assert_eq!(recipients, [STEP_1, STEP_2], "each text exactly once");
    assert_eq!(
        store.list_alerts(true, 10).unwrap().len(),
        1,
        "the restart opened no second alert"
    );
    gateway.stop().await.unwrap();
}

/// Alerts as replay must reproduce them (wall-clock columns left out).
fn alert_shapes(store: &Store) -> Vec<(String, String, String, i64, i64, String)> {
    store
        .list_alerts(true, 100)
        .unwrap()
        .into_iter()
        .map(|a| (a.kind, a.severity, a.state, a.since, a.opened_at, a.detail))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_readings_at_different_speeds_give_identical_alerts() {
    // Silence (an alert opens), use (it resolves), silence again, a tap left running.
    let mut litres = silent_day();
    litres.extend([30, 5, 0, 0]);
    litres.extend(vec![0; 14]);
    litres.extend([150, 150, 150]);
    let payloads = hourly_payloads(&litres);

    // Live: one message an hour, as the meter would send them.
    let server = mock_gateway().await;
    let live_dir = tempfile::tempdir().unwrap();
    let live = start_gateway(&alert_config(live_dir.path(), &server.uri())).await;
    publish_hourly(&live, &litres).await;

    // Replay: the whole history in one batch message.
    let replay_dir = tempfile::tempdir().unwrap();
    let replay = start_gateway(&alert_config(replay_dir.path(), &server.uri())).await;
    let readings: Vec<serde_json::Value> = payloads
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let mut meter = Publisher::connect(replay.mqtt_addr, "meter-replay").await;
    meter
        .send(
            "meters/ZS-0001/reading",
            serde_json::json!({ "readings": readings }).to_string(),
        )
        .await;
    meter.flush().await;
    wait_until_evaluated(&replay.store, litres.len()).await;

    let live_alerts = alert_shapes(&live.store);
    assert!(live_alerts.len() >= 3, "{live_alerts:#?}");
    assert!(live_alerts.iter().any(|a| a.0 == "continuous_flow"));
    assert!(live_alerts
        .iter()
        .any(|a| a.0 == "no_usage" && a.2 == "resolved"));
    assert_eq!(alert_shapes(&replay.store), live_alerts);
    // The served gateway learns the household's routine, the same reading by
    // reading as in one batch.
    let routine = |store: &Store| {
        let state = store.meter_state("ZS-0001").unwrap().unwrap();
        stillwater::detect::Routine::decode(&state.routine.expect("a routine is stored"))
            .expect("a readable routine")
    };
    let learned = routine(&live.store);
    assert!(learned.days_seen() >= 1, "{learned:?}");
    assert_eq!(routine(&replay.store), learned);
    live.stop().await.unwrap();
    replay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_error_is_json_and_the_bearer_scheme_is_case_insensitive() {
    let server = mock_gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&alert_config(dir.path(), &server.uri())).await;
    let client = reqwest::Client::new();
    let inbound = format!("http://{}/sms/inbound", gateway.http_addr);
    let cases = [
        (
            client.get(format!("http://{}/no/such/page", gateway.http_addr)),
            404,
        ),
        (client.get(&inbound), 405),
        (
            client
                .post(&inbound)
                .header("authorization", format!("Bearer {INBOUND_TOKEN}"))
                .body("{not json"),
            400,
        ),
    ];
    for (request, status) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let answer: serde_json::Value = response.json().await.expect("a JSON body");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    // Too large (an SMS reply is a few hundred bytes): the whole request is
    // written at once, and what comes back is read even if the gateway then
    // resets the connection over the unread rest.
    let mut stream = tokio::net::TcpStream::connect(gateway.http_addr)
        .await
        .unwrap();
    let request = format!(
        "POST /sms/inbound HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {INBOUND_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        20_000,
        "x".repeat(20_000)
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n @ 1..) = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await {
        response.extend_from_slice(&buffer[..n]);
    }
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    let body: serde_json::Value =
        serde_json::from_str(response.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let (status, answer) = reply(&gateway, "13800138000", "1", INBOUND_TOKEN).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("unknown_code"))
    );
    let lower = client
        .post(&inbound)
        .header("authorization", format!("bearer {INBOUND_TOKEN}"))
        .json(&serde_json::json!({ "from": "13800138000", "text": "1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        lower.status().as_u16(),
        200,
        "a lower-case scheme is accepted"
    );
    gateway.stop().await.unwrap();
}

/// A detector that fails the way a bug would.
struct Broken;

impl stillwater::detect::Detector for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn history_s(&self, _: &stillwater::detect::Policy) -> i64 {
        86_400
    }
    fn assess(
        &self,
        _: &[stillwater::domain::StoredReading],
        _: usize,
        _: &stillwater::detect::Policy,
    ) -> stillwater::detect::Assessment {
        panic!("a bug in detection")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_alert_engine_is_never_silent() {
    let server = mock_gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let parts = stillwater::app::Parts {
        detector: Box::new(Broken),
        ..Default::default()
    };
    let gateway = start_gateway_with_parts(&alert_config(dir.path(), &server.uri()), parts).await;
    let health = format!("http://{}/healthz", gateway.http_addr);
    assert_eq!(reqwest::get(&health).await.unwrap().status().as_u16(), 200);
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-zs-0001").await;
    meter
        .send("meters/ZS-0001/reading", hourly_payloads(&[6]).remove(0))
        .await;
    meter.flush().await;
    let metrics = gateway.metrics.clone();
    wait_until("the engine's death is recorded", || {
        let metrics = metrics.clone();
        async move { metrics.failure().is_some() }
    })
    .await;
    let response = reqwest::get(&health).await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "failed");
    assert!(
        body["failure"]
            .as_str()
            .unwrap()
            .contains("the alert engine panicked: a bug in detection"),
        "{body}"
    );
    let stopped = gateway.run_until_stopped().await;
    let error = stopped
        .expect_err("the gateway stops with an error")
        .to_string();
    assert!(error.contains("the alert engine panicked"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_that_never_gets_through_is_marked_failed_where_people_look() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = alert_config(dir.path(), &server.uri());
    config.sms.max_attempts = 2;
    let clock = ManualClock::starting_now();
    let gateway = start_gateway_with(&config, clock.clone()).await;
    publish_hourly(&gateway, &silent_day()).await;
    wait_for_requests(&server, 2).await; // the first attempt at each text
    clock.advance(2); // past the first retry delay (1 s)
    let store = gateway.store.clone();
    wait_for_texts_in_state(&store, 2, "failed").await;
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        4,
        "max_attempts each"
    );
    let events = store.alert_events(1).unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.action == "text_failed")
        .collect();
    assert_eq!(failed.len(), 2, "{events:?}");
    assert!(
        failed[0].detail.contains("after 2 attempt"),
        "{}",
        failed[0].detail
    );
    assert_eq!(
        gateway
            .metrics
            .sms_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_scores_what_the_gateway_did_against_ground_truth() {
    let server = mock_gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let config = alert_config(dir.path(), &server.uri());
    let gateway = start_gateway(&config).await;
    publish_hourly(&gateway, &silent_day()).await;
    wait_for_requests(&server, 2).await;
    gateway.stop().await.unwrap();
    // The data shows no use from its first reading (hour 0): the incident is
    // put at hour 1; ZS-0002 never had an alert.
    let start = (chrono::Utc::now().timestamp() - 3 * 86_400) / 3600 * 3600;
    let at = |ts: i64| {
        chrono::DateTime::from_timestamp(ts, 0)
            .unwrap()
            .to_rfc3339()
    };
    let truth = dir.path().join("truth.jsonl");
    std::fs::write(
        &truth,
        format!(
            "{{\"meter\": \"ZS-0001\", \"kind\": \"incapacitation\", \"start\": \"{}\"}}\n{{\"meter\": \"ZS-0002\", \"kind\": \"incapacitation\", \"start\": \"{}\"}}\n",
            at(start + 3600),
            at(start + 3600)
        ),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .arg("--db")
        .arg(config.store.file().unwrap())
        .args([
            "evaluate",
            "--truth",
            truth.to_str().unwrap(),
            "--from",
            &at(start),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let score: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let incapacitation = &score["by_incident"]["incapacitation"];
    assert_eq!(incapacitation["incidents"], 2);
    assert_eq!(incapacitation["found"], 1, "{score}");
    assert_eq!(
        incapacitation["to_alert_s"][0],
        11 * 3600,
        "the warning opens when 12 quiet hours have passed since hour 0"
    );
    assert_eq!(score["contact_texts"], 2, "{score}");
    assert!(
        score["false_alerts"].as_object().unwrap().is_empty(),
        "{score}"
    );
}
