//! The HTTP API end to end: tokens made as `stillwater tokens add` makes them,
//! every endpoint refusing a missing, unknown or revoked token (401) and a
//! role that may not (403), a monitor acknowledging an alert a silent home
//! opened, an operator closing it and reading the month's report and the
//! audit log, and repeated failures from one address refused (429).

mod common;

use common::api::{sms_sink, token, with_household, Client};
use common::home::*;
use common::*;
use stillwater::actions::tokens;
use stillwater::domain::{Actor, Channel, Role};
use stillwater::store::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_who_may_do_what_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let _sms = sms_sink(&mut config).await;
    register_household(&config);
    let gateway = start_gateway(&config).await;
    let api = Client::new(&gateway);
    let monitor = token(&gateway, "李敏", Role::Monitor);
    let installer = token(&gateway, "装表员", Role::Installer);
    let operator = token(&gateway, "值班员", Role::Operator);
    let revoked = token(&gateway, "former", Role::Admin);
    let admin = Actor::new("cli", Role::Admin, Channel::Cli);
    let revoked_id = gateway.store.tokens().unwrap().last().unwrap().id;
    tokens::revoke(&gateway.store, &admin, revoked_id, 0).unwrap();

    // 401 says what is wrong with the token.
    let (status, body) = api.get("/api/v1/alerts", None).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("missing bearer token"),
        "{body}"
    );
    let (status, body) = api.get("/api/v1/alerts", Some("sw_guess")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unknown token"))
    );
    let (status, body) = api.get("/api/v1/alerts", Some(&revoked)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("this token has been revoked"))
    );

    // 403 says which role may not do what.
    let (status, body) = api.get("/api/v1/alerts", Some(&installer)).await;
    assert_eq!(status, 403);
    assert!(
        body["error"].as_str().unwrap().contains("installer"),
        "{body}"
    );
    let (status, _) = api
        .get("/api/v1/meters/unregistered", Some(&installer))
        .await;
    assert_eq!(status, 200);
    let (status, _) = api.get("/api/v1/meters/unregistered", Some(&monitor)).await;
    assert_eq!(status, 403);
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-zs-0001").await;
    meter.send("meters/ZS-0001/reading", "not json").await;
    meter.flush().await;
    let (status, rejected) = api.get("/api/v1/ingest/rejected", Some(&installer)).await;
    assert_eq!(status, 200);
    assert_eq!(rejected[0]["reason"], "invalid_json", "{rejected}");
    assert_eq!(rejected[0]["meter"], "ZS-0001", "{rejected}");

    // A silent home's alert, acknowledged by its monitor through the API.
    publish_hourly(&gateway, &silent_day()).await;
    let (status, alerts) = api.get("/api/v1/alerts", Some(&monitor)).await;
    assert_eq!(status, 200);
    let alert = &alerts.as_array().unwrap()[0];
    assert_eq!(
        (alert["kind"].as_str(), alert["resident"].as_str()),
        (Some("no_usage"), Some("张桂芳"))
    );
    let id = alert["id"].as_i64().unwrap();
    let (status, done) = api
        .post(
            &format!("/api/v1/alerts/{id}/acknowledge"),
            &monitor,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(
        (status, done["state"].as_str()),
        (200, Some("acknowledged"))
    );
    let (status, _) = api
        .post(
            &format!("/api/v1/alerts/{id}/acknowledge"),
            &monitor,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 409, "already acknowledged");
    let (_, acknowledged) = api
        .get("/api/v1/alerts?state=acknowledged", Some(&monitor))
        .await;
    assert_eq!(acknowledged[0]["id"], id, "filtered by state");
    let (_, flowing) = api
        .get("/api/v1/alerts?kind=continuous_flow", Some(&monitor))
        .await;
    assert_eq!(flowing, serde_json::json!([]), "filtered by kind");
    let (_, shown) = api
        .get(&format!("/api/v1/alerts/{id}"), Some(&monitor))
        .await;
    let history: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(history.contains(&"acknowledged"), "{shown}");
    assert!(
        shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "李敏" && e["channel"] == "api"),
        "the history says who, through the API: {shown}"
    );
    assert_eq!(
        shown["texts"][0]["to"], "+8613800138000",
        "the monitoring team sees the phone it may have to call"
    );
    let (_, seen_by_operator) = api
        .get(&format!("/api/v1/alerts/{id}"), Some(&operator))
        .await;
    assert!(
        seen_by_operator["texts"][0]["to"]
            .as_str()
            .unwrap()
            .contains("****"),
        "an operator does not need it: masked"
    );
    assert_eq!(seen_by_operator["alert"]["resident"], "张**");

    // The household's water use by hour: known (zero) through the silent day.
    let (status, used) = api
        .get(
            "/api/v1/meters/ZS-0001/consumption?by=hour&days=4",
            Some(&monitor),
        )
        .await;
    assert_eq!(status, 200, "{used}");
    let known: Vec<i64> = used["litres"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|bucket| bucket["used"].as_i64())
        .collect();
    assert!(known.len() >= 24 && known.iter().all(|l| *l == 0), "{used}");
    assert_eq!(used["zone"], "Asia/Shanghai");

    // The operator closes it with what was found, and reads the month.
    let (status, body) = api
        .post(
            &format!("/api/v1/alerts/{id}/close"),
            &operator,
            serde_json::json!({"disposition": "fine"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, done) = api
        .post(
            &format!("/api/v1/alerts/{id}/close"),
            &operator,
            serde_json::json!({"disposition": "safe", "note": "上门查看，老人外出买菜"}),
        )
        .await;
    assert_eq!((status, done["state"].as_str()), (200, Some("closed")));
    let month = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m")
        .to_string();
    let (status, _) = api
        .get(
            &format!("/api/v1/reports/monthly?month={month}"),
            Some(&monitor),
        )
        .await;
    assert_eq!(status, 403, "reports are the operators'");
    let (status, report) = api
        .get(
            &format!("/api/v1/reports/monthly?month={month}"),
            Some(&operator),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(report["false_alarms"], 1, "{report}");
    let (status, log) = api.get("/api/v1/audit", Some(&operator)).await;
    assert_eq!(status, 200);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "token.revoke"),
        "{log}"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_attempts_from_one_address_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    let api = Client::new(&gateway);
    let good = token(&gateway, "值班员", Role::Operator);
    for attempt in 0..stillwater::http::API_FAILURES_PER_MINUTE {
        let (status, _) = api
            .get("/api/v1/audit", Some(&format!("sw_wrong{attempt}")))
            .await;
        assert_eq!(status, 401);
    }
    let (status, body) = api.get("/api/v1/audit", Some(&good)).await;
    assert_eq!(status, 429, "even a good token waits: {body}");
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installers_register_meters_and_operators_declare_absences() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start_gateway(&test_config(dir.path())).await;
    let api = Client::new(&gateway);
    let installer = token(&gateway, "装表员", Role::Installer);
    let operator = token(&gateway, "值班员", Role::Operator);
    let http = reqwest::Client::new();
    let import = |token: String, csv: &'static str| {
        let request = http
            .post(format!("{}/api/v1/meters/import", api.base))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(csv);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    // Every problem of every row, and nothing imported.
    let bad = "meter_id,resident_name,address,contact1_name,contact1_phone
ZS-0001,张桂芳,民生路12号,李敏,13800138000
ZS-0002,,兴文路8号,王芳,12345
";
    let (status, body) = import(installer.clone(), bad).await;
    assert_eq!(status, 400, "{body}");
    let columns: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["column"].as_str().unwrap())
        .collect();
    assert!(
        columns.contains(&"resident_name") && columns.contains(&"contact1_phone"),
        "{body}"
    );
    let (status, _) = api.get("/api/v1/meters/ZS-0001", Some(&installer)).await;
    assert_eq!(status, 404, "nothing was imported");
    let good = "meter_id,resident_name,address,contact1_name,contact1_phone
ZS-0001,张桂芳,民生路12号,李敏,13800138000
";
    let (status, _) = import(operator.clone(), good).await;
    assert_eq!(status, 403, "registering meters is the installers'");
    let (status, body) = import(installer.clone(), good).await;
    assert_eq!((status, body["households"].as_u64()), (200, Some(1)));
    // The installation check: registered, its contact's phone in full for
    // the installer (masked for an operator), no report yet.
    let (status, meter) = api.get("/api/v1/meters/ZS-0001", Some(&installer)).await;
    assert_eq!(status, 200);
    assert_eq!(meter["registration"]["resident"], "张桂芳");
    assert_eq!(
        meter["registration"]["contacts"][0]["phone"],
        "+8613800138000"
    );
    let (_, masked) = api.get("/api/v1/meters/ZS-0001", Some(&operator)).await;
    assert_eq!(
        masked["registration"]["contacts"][0]["phone"],
        "+86138****8000"
    );
    assert_eq!(masked["registration"]["resident"], "张**");
    assert!(meter["reported"].is_null(), "{meter}");

    // An absence, by an operator; a monitor may not.
    let until = chrono::Utc::now().timestamp() + 7 * 86_400;
    let absence = serde_json::json!({"meters": ["ZS-0001"], "reason": "住院", "until": until});
    let monitor = token(&gateway, "李敏", Role::Monitor);
    let (status, _) = api
        .post("/api/v1/absences", &monitor, absence.clone())
        .await;
    assert_eq!(status, 403);
    let (status, body) = api.post("/api/v1/absences", &operator, absence).await;
    assert_eq!(
        (status, body["households"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let (status, body) = api
        .post(
            "/api/v1/absences",
            &operator,
            serde_json::json!({"meters": ["ZS-0001"], "reason": "住院", "until": until + 365 * 86_400}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("90 days"),
        "{body}"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_tune_thresholds_checked_as_the_configuration_is() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, api) = with_household(dir.path()).await;
    let operator = token(&gateway, "值班员", Role::Operator);
    let monitor = token(&gateway, "李敏", Role::Monitor);
    let set =
        serde_json::json!({"category": "elderly_alone", "settings": {"warning_window": "8h"}});
    let (status, _) = api.post("/api/v1/thresholds", &monitor, set.clone()).await;
    assert_eq!(status, 403);
    let (status, body) = api.post("/api/v1/thresholds", &operator, set).await;
    assert_eq!(status, 200, "{body}");
    // In force for the household, and said where it comes from.
    let (status, shown) = api
        .get("/api/v1/thresholds?meter=ZS-0001", Some(&operator))
        .await;
    assert_eq!(status, 200);
    let window = shown["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "warning_window")
        .unwrap()
        .clone();
    assert_eq!(window["value"], "8h", "{shown}");
    assert!(
        window["from"].as_str().unwrap().contains("elderly_alone"),
        "{window}"
    );
    // Refused as the configuration file would refuse it, by name.
    let (status, body) = api
        .post(
            "/api/v1/thresholds",
            &operator,
            serde_json::json!({"category": "elderly_alone", "settings": {"warning_windw": "8h"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("warning_windw"),
        "{body}"
    );
    let (status, _) = api
        .post(
            "/api/v1/thresholds",
            &operator,
            serde_json::json!({"category": "elderly_alone", "meter": "ZS-0001", "settings": {"warning_window": "8h"}}),
        )
        .await;
    assert_eq!(status, 400, "a category or a meter, not both");
    gateway.stop().await.unwrap();
}
