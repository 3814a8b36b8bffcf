//! Every endpoint of the API against every role: the OpenAPI document and
//! this table list the same endpoints, each role is allowed exactly where
//! the table says (any answer but 401/403/5xx) and refused 403 elsewhere,
//! naming the role. Then the dashboard's session: an HttpOnly, SameSite
//! cookie, changes refused without the CSRF token, ended by signing out or
//! revoking the token. Then households: search and paging, an edit checked
//! field by field and audited old → new with personal data masked, a meter
//! replaced, bulk absences by category, bodies over the limit refused.

mod common;

use std::collections::BTreeSet;

use common::api::{token, with_household};
use common::home::*;
use common::*;
use serde_json::json;
use stillwater::actions::tokens;
use stillwater::domain::{Actor, Channel, Role};
use stillwater::store::prelude::*;

const A: u8 = 1; // admin
const O: u8 = 2; // operator
const I: u8 = 4; // installer
const M: u8 = 8; // monitor
const ALL: u8 = A | O | I | M;
/// No token needed.
const PUBLIC: u8 = 16;

/// (method, path as the OpenAPI document names it, the path requested, body, who may).
fn table(
    alert: i64,
    month: &str,
) -> Vec<(
    &'static str,
    &'static str,
    String,
    Option<serde_json::Value>,
    u8,
)> {
    let close = json!({"disposition": "safe", "note": "上门查看"});
    let household = json!({"meter_id": "ZS-0900", "resident_name": "王兰", "address": "中山市东区1号",
        "contacts": [{"name": "王强", "phone": "13500135000"}]});
    let absence = json!({"meters": ["ZS-0001"], "reason": "住院", "until": chrono::Utc::now().timestamp() + 86_400});
    let thresholds = json!({"category": "general", "settings": {"warning_window": "12h"}});
    vec![
        (
            "get",
            "/api/v1/alerts",
            "/api/v1/alerts".into(),
            None,
            A | O | M,
        ),
        (
            "get",
            "/api/v1/alerts/{id}",
            format!("/api/v1/alerts/{alert}"),
            None,
            A | O | M,
        ),
        (
            "post",
            "/api/v1/alerts/{id}/acknowledge",
            "/api/v1/alerts/999999/acknowledge".into(),
            None,
            A | O | M,
        ),
        (
            "post",
            "/api/v1/alerts/{id}/resolve",
            "/api/v1/alerts/999999/resolve".into(),
            None,
            A | O | M,
        ),
        (
            "post",
            "/api/v1/alerts/{id}/close",
            "/api/v1/alerts/999999/close".into(),
            Some(close),
            A | O | M,
        ),
        (
            "get",
            "/api/v1/reports/monthly",
            format!("/api/v1/reports/monthly?month={month}"),
            None,
            A | O,
        ),
        ("get", "/api/v1/audit", "/api/v1/audit".into(), None, A | O),
        (
            "get",
            "/api/v1/meters/unregistered",
            "/api/v1/meters/unregistered".into(),
            None,
            A | I,
        ),
        ("get", "/api/v1/meters", "/api/v1/meters".into(), None, ALL),
        (
            "post",
            "/api/v1/meters",
            "/api/v1/meters".into(),
            Some(household),
            A | I,
        ),
        (
            "post",
            "/api/v1/meters/import",
            "/api/v1/meters/import".into(),
            None,
            A | I,
        ),
        (
            "get",
            "/api/v1/meters/{id}",
            "/api/v1/meters/ZS-0001".into(),
            None,
            ALL,
        ),
        (
            "delete",
            "/api/v1/meters/{id}",
            "/api/v1/meters/ZS-0999".into(),
            None,
            A | I,
        ),
        (
            "get",
            "/api/v1/meters/{id}/consumption",
            "/api/v1/meters/ZS-0001/consumption".into(),
            None,
            ALL,
        ),
        (
            "patch",
            "/api/v1/meters/{id}/household",
            "/api/v1/meters/ZS-0999/household".into(),
            Some(json!({"notes": "x"})),
            A | I,
        ),
        (
            "post",
            "/api/v1/meters/{id}/replace",
            "/api/v1/meters/ZS-0999/replace".into(),
            Some(json!({"new_meter": "ZS-0998"})),
            A | I,
        ),
        (
            "get",
            "/api/v1/meters/{id}/routine",
            "/api/v1/meters/ZS-0001/routine".into(),
            None,
            ALL,
        ),
        (
            "get",
            "/api/v1/ingest/rejected",
            "/api/v1/ingest/rejected".into(),
            None,
            A | I,
        ),
        (
            "get",
            "/api/v1/absences",
            "/api/v1/absences".into(),
            None,
            ALL,
        ),
        (
            "post",
            "/api/v1/absences",
            "/api/v1/absences".into(),
            Some(absence),
            A | O,
        ),
        (
            "delete",
            "/api/v1/absences/{id}",
            "/api/v1/absences/999999".into(),
            None,
            A | O,
        ),
        (
            "get",
            "/api/v1/thresholds",
            "/api/v1/thresholds?category=general".into(),
            None,
            A | O,
        ),
        (
            "post",
            "/api/v1/thresholds",
            "/api/v1/thresholds".into(),
            Some(thresholds.clone()),
            A | O,
        ),
        (
            "post",
            "/api/v1/thresholds/preview",
            "/api/v1/thresholds/preview".into(),
            Some(thresholds),
            A | O,
        ),
        (
            "get",
            "/api/v1/session",
            "/api/v1/session".into(),
            None,
            ALL,
        ),
        (
            "get",
            "/api/v1/health",
            "/api/v1/health".into(),
            None,
            ALL | PUBLIC,
        ),
        (
            "get",
            "/api/v1/metrics",
            "/api/v1/metrics".into(),
            None,
            ALL | PUBLIC,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_allows_exactly_its_roles() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, api) = with_household(dir.path()).await;
    publish_hourly(&gateway, &silent_day()).await;
    let alert = gateway.store.list_alerts(false, 1).unwrap()[0].id;
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let table = table(alert, &month);

    // The table and the OpenAPI document list the same endpoints.
    let (status, document) = api.get("/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(|method| (method.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let tested: BTreeSet<(String, String)> = table
        .iter()
        .map(|(method, path, ..)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(
        documented, tested,
        "every documented endpoint is in the role table"
    );
    assert_eq!(
        stillwater::http::openapi().paths.paths.len(),
        document["paths"].as_object().unwrap().len(),
        "`stillwater openapi` prints what is served"
    );

    let roles = [
        (A, Role::Admin),
        (O, Role::Operator),
        (I, Role::Installer),
        (M, Role::Monitor),
    ];
    let mut tokens = Vec::new();
    for (bit, role) in roles {
        tokens.push((bit, role, token(&gateway, role.as_str(), role)));
    }
    for (method, documented, path, body, may) in &table {
        let (status, answer) = api.call(method, path, None, body.clone()).await;
        if may & PUBLIC != 0 {
            assert!(
                status == 200 || status == 503,
                "{method} {path} is public: {status}"
            );
        } else {
            assert_eq!(status, 401, "{method} {path} without a token: {answer}");
        }
        for (bit, role, token) in &tokens {
            let (status, answer) = api.call(method, path, Some(token), body.clone()).await;
            if may & bit != 0 {
                assert!(
                    ![401, 403].contains(&status) && status < 500,
                    "{role:?} may {method} {documented}: {status} {answer}"
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{role:?} may not {method} {documented}: {answer}"
                );
                let said = answer["error"].as_str().unwrap_or_default();
                assert!(
                    said.contains(role.as_str()),
                    "the refusal names the role: {said}"
                );
            }
        }
    }
    gateway.stop().await.unwrap();
}

/// The session cookie's attributes and its id.
fn session_cookie(response: &reqwest::Response) -> (String, String) {
    let header = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    let id = header.split(';').next().unwrap().trim().to_string();
    (header, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_session_is_an_httponly_cookie_and_changes_need_its_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, api) = with_household(dir.path()).await;
    publish_hourly(&gateway, &silent_day()).await;
    let alert = gateway.store.list_alerts(false, 1).unwrap()[0].id;
    let monitor = token(&gateway, "李敏", Role::Monitor);
    let login = |token: String| {
        api.http
            .post(format!("{}/ui/login", api.base))
            .json(&json!({ "token": token }))
            .send()
    };
    let refused = login("sw_wrong".into()).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert!(refused.headers().get("set-cookie").is_none());

    let response = login(monitor.clone()).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (header, cookie) = session_cookie(&response);
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Strict"),
        "{header}"
    );
    assert!(!header.contains(&monitor), "the cookie is not the token");
    let who: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (who["name"].as_str(), who["role"].as_str()),
        (Some("李敏"), Some("monitor"))
    );
    let csrf = who["csrf"].as_str().unwrap().to_string();
    assert_eq!(csrf.len(), 64);

    let with_cookie = |method: reqwest::Method, path: &str| {
        api.http
            .request(method, format!("{}{path}", api.base))
            .header("cookie", &cookie)
    };
    let (status, listed) = {
        let r = with_cookie(reqwest::Method::GET, "/api/v1/alerts")
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap(),
        )
    };
    assert_eq!(status, 200, "reading needs only the cookie");
    assert_eq!(listed[0]["id"], alert);
    let acknowledge = format!("/api/v1/alerts/{alert}/acknowledge");
    let forged = with_cookie(reqwest::Method::POST, &acknowledge)
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status().as_u16(),
        403,
        "a change without the CSRF token"
    );
    let said = forged.json::<serde_json::Value>().await.unwrap();
    assert!(said["error"].as_str().unwrap().contains("CSRF"), "{said}");
    let wrong = with_cookie(reqwest::Method::POST, &acknowledge)
        .header("x-csrf-token", "0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 403);
    assert_eq!(gateway.store.alert(alert).unwrap().unwrap().state, "open");
    let done = with_cookie(reqwest::Method::POST, &acknowledge)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status().as_u16(), 200);
    let events = gateway.store.alert_events(alert).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "acknowledged" && e.channel == "web" && e.actor == "李敏"),
        "{events:?}"
    );

    // Signing out ends the session (not from another site: it needs the
    // CSRF token too); so does revoking its token.
    let forged = with_cookie(reqwest::Method::POST, "/ui/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let out = with_cookie(reqwest::Method::POST, "/ui/logout")
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    let after = with_cookie(reqwest::Method::GET, "/api/v1/alerts")
        .send()
        .await
        .unwrap();
    assert_eq!(after.status().as_u16(), 401);
    let again = with_cookie(reqwest::Method::POST, "/ui/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status().as_u16(),
        204,
        "an ended session just clears the cookie"
    );
    let response = login(monitor.clone()).await.unwrap();
    let (_, cookie) = session_cookie(&response);
    let admin = Actor::new("cli", Role::Admin, Channel::Cli);
    let id = gateway
        .store
        .tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.name == "李敏")
        .unwrap()
        .id;
    tokens::revoke(&gateway.store, &admin, id, 0).unwrap();
    let revoked = api
        .http
        .get(format!("{}/api/v1/alerts", api.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 401);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installers_edit_households_and_every_change_is_audited_old_to_new() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, api) = with_household(dir.path()).await;
    let installer = token(&gateway, "装表员", Role::Installer);
    let operator = token(&gateway, "值班员", Role::Operator);
    let admin = token(&gateway, "管理员", Role::Admin);

    // Two more households, one per call; a bad one names each field.
    for (meter, name, category) in [
        ("ZS-0002", "李淑珍", "special_hardship"),
        ("ZS-0003", "黄志强", "elderly_alone"),
    ] {
        let (status, body) = api
            .post(
                "/api/v1/meters",
                &installer,
                json!({"meter_id": meter, "resident_name": name, "address": "中山市西区沙朗路3号",
                       "category": category, "contacts": [{"name": "社区网格员", "phone": "13600136000"}]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = api
        .post(
            "/api/v1/meters",
            &installer,
            json!({"meter_id": "ZS 4", "resident_name": "", "address": "x", "contacts": [{"name": "a", "phone": "123"}]}),
        )
        .await;
    assert_eq!(status, 400);
    let fields: BTreeSet<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert!(
        ["meter_id", "resident_name", "contact1_phone"]
            .iter()
            .all(|f| fields.contains(f)),
        "{body}"
    );
    let (status, _) = api
        .post(
            "/api/v1/meters",
            &installer,
            json!({"meter_id": "ZS-0002", "resident_name": "x", "address": "y", "contacts": [{"name": "a", "phone": "13600136000"}]}),
        )
        .await;
    assert_eq!(status, 409, "already registered");

    // Search and paging.
    let (_, page) = api
        .get(
            "/api/v1/meters?q=ZS-000&per_page=2&page=2",
            Some(&installer),
        )
        .await;
    assert_eq!(
        (
            page["total"].as_u64(),
            page["meters"].as_array().unwrap().len()
        ),
        (Some(3), 1),
        "{page}"
    );
    assert_eq!(page["meters"][0]["meter"], "ZS-0003");
    let (_, found) = api
        .get("/api/v1/meters?q=special_hardship", Some(&installer))
        .await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["meters"][0]["resident"], "李淑珍");
    let (status, _) = api.get("/api/v1/meters?page=0", Some(&installer)).await;
    assert_eq!(status, 400);

    // An edit: a bad phone refused by field, nothing changed; then a good one.
    let edit = |body: serde_json::Value| {
        api.call(
            "PATCH",
            "/api/v1/meters/ZS-0001/household",
            Some(&installer),
            Some(body),
        )
    };
    let (status, body) = edit(json!({"contacts": [{"name": "李敏", "phone": "555"}]})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["problems"][0]["field"], "contact1_phone", "{body}");
    let (status, body) = edit(json!({
        "address": "中山市石岐区民生路14号2楼",
        "contacts": [{"name": "李敏", "phone": "13800138000"}, {"name": "陈刚", "phone": "13700137001"}],
        "check_in_phone": "13300133000",
    }))
    .await;
    assert_eq!((status, body["changed"].as_u64()), (200, Some(3)), "{body}");
    let (status, body) = edit(json!({"reporting_interval_min": 30.5})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("reporting_interval_min"),
        "{body}"
    );
    let (status, body) = edit(json!({"reporting_interval_min": 30.0})).await;
    assert_eq!(
        (status, body["changed"].as_u64()),
        (200, Some(1)),
        "JSON's 30.0 is 30: {body}"
    );
    let (_, same) = edit(json!({"address": "中山市石岐区民生路14号2楼"})).await;
    assert_eq!(same["changed"], 0, "nothing new, nothing audited");
    let details = gateway.store.meter_details("ZS-0001", 0).unwrap().unwrap();
    let registration = details.registration.unwrap();
    assert_eq!(registration.address, "中山市石岐区民生路14号2楼");
    assert_eq!(registration.contacts[1].2, "+8613700137001");
    assert_eq!(
        registration.check_in_phone.as_deref(),
        Some("+8613300133000")
    );

    // The meter replaced; the old one's registration ends.
    let (status, _) = api
        .post(
            "/api/v1/meters/ZS-0003/replace",
            &installer,
            json!({"new_meter": "ZS-0004"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .post(
            "/api/v1/meters/ZS-0004/replace",
            &installer,
            json!({"new_meter": "ZS-0001"}),
        )
        .await;
    assert_eq!(status, 409, "the new meter is someone else's");

    // Absences for a whole category, listed and one ended.
    let until = chrono::Utc::now().timestamp() + 3 * 86_400;
    let (status, body) = api
        .post(
            "/api/v1/absences",
            &operator,
            json!({"category": "elderly_alone", "reason": "春节返乡", "until": until}),
        )
        .await;
    assert_eq!(
        (status, body["households"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    let (_, listed) = api.get("/api/v1/absences", Some(&operator)).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        listed[0]["resident"].as_str().unwrap().contains('*'),
        "masked for operators: {listed}"
    );
    let id = listed[0]["id"].as_i64().unwrap();
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/api/v1/absences/{id}"),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (_, listed) = api.get("/api/v1/absences", Some(&operator)).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Everything is in the audit log, old → new, personal data masked.
    let (_, log) = api.get("/api/v1/audit", Some(&admin)).await;
    let entries: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["subject"].as_str().unwrap(),
                e["detail"].as_str().unwrap()
            )
        })
        .collect();
    let has = |needle: &str| entries.iter().any(|e| e.contains(needle));
    assert!(
        has("装表员 household.update ZS-0001 address: 中山市石岐区*** → 中山市石岐区***"),
        "{entries:#?}"
    );
    assert!(
        has("check_in_phone: (none) → +86133****3000"),
        "{entries:#?}"
    );
    assert!(has("contacts: 李* +86138****8000, 张* +86139****9000 → 李* +86138****8000, 陈* +86137****7001"), "{entries:#?}");
    assert!(
        has("装表员 meter.replace ZS-0003 active → replaced by ZS-0004"),
        "{entries:#?}"
    );
    assert!(has("值班员 absence.declare ZS-0001"), "{entries:#?}");
    assert!(
        has(&format!("值班员 absence.end {id} current → ended")),
        "{entries:#?}"
    );
    assert!(
        has("cli token.add 3 (none) → 管理员 (admin), active"),
        "{entries:#?}"
    );
    assert!(
        !entries
            .iter()
            .any(|e| e.contains("13800138000") || e.contains("民生路")),
        "no phone or address in full: {entries:#?}"
    );

    // A threshold change, old → new.
    let (status, _) = api
        .post(
            "/api/v1/thresholds",
            &operator,
            json!({"category": "elderly_alone", "settings": {"warning_window": "10h"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .post(
            "/api/v1/thresholds",
            &operator,
            json!({"category": "elderly_alone", "settings": {"warning_window": "9h"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, log) = api.get("/api/v1/audit?limit=2", Some(&admin)).await;
    assert_eq!(log[0]["detail"], "warning_window: 10h → 9h", "{log}");
    assert_eq!(log[1]["detail"], "warning_window: (default) → 10h", "{log}");

    // Bodies over the limit are refused before they are read.
    let big = "x".repeat(100 * 1024);
    let (status, _) = api
        .call(
            "PATCH",
            "/api/v1/meters/ZS-0001/household",
            Some(&installer),
            Some(json!({"notes": big})),
        )
        .await;
    assert_eq!(status, 413);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_dashboard_speak_https_with_secure_cookies_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    config.http.tls = Some((fixtures.join("server.pem"), fixtures.join("server.key")));
    let gateway = start_gateway(&config).await;
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(fixtures.join("ca.pem")).unwrap()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let base = format!("https://{}", gateway.http_addr);
    // A client that never finishes its handshake holds up nobody.
    let _silent = tokio::net::TcpStream::connect(gateway.http_addr)
        .await
        .unwrap();
    let health = https
        .get(format!("{base}/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let monitor = token(&gateway, "李敏", Role::Monitor);
    let login = https
        .post(format!("{base}/ui/login"))
        .json(&json!({ "token": monitor }))
        .send()
        .await
        .unwrap();
    let (header, _) = session_cookie(&login);
    assert!(header.contains("; Secure"), "{header}");
    let plain = reqwest::get(format!("http://{}/api/v1/health", gateway.http_addr)).await;
    assert!(plain.is_err(), "plain HTTP is not served: {plain:?}");
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_are_set_for_everyone_a_category_or_a_household_the_particular_winning() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, api) = with_household(dir.path()).await;
    let operator = token(&gateway, "值班员", Role::Operator);
    let window = |shown: &serde_json::Value| {
        let row = shown["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == "warning_window")
            .unwrap()
            .clone();
        (
            row["value"].as_str().unwrap().to_string(),
            row["from"].as_str().unwrap().to_string(),
        )
    };
    let set = |settings: serde_json::Value| api.post("/api/v1/thresholds", &operator, settings);

    // For everyone: neither a category nor a meter.
    let (status, body) = set(json!({"settings": {"warning_window": "10h"}})).await;
    assert_eq!(status, 200, "{body}");
    let (_, everyone) = api.get("/api/v1/thresholds", Some(&operator)).await;
    let (value, from) = window(&everyone);
    assert_eq!(value, "10h");
    assert!(from.contains("every household"), "{from}");
    let (_, household) = api
        .get("/api/v1/thresholds?meter=ZS-0001", Some(&operator))
        .await;
    assert_eq!(window(&household).0, "10h", "a household starts from it");

    // The category's own value wins over everyone's; the household's over both.
    set(json!({"category": "elderly_alone", "settings": {"warning_window": "9h"}})).await;
    let (_, household) = api
        .get("/api/v1/thresholds?meter=ZS-0001", Some(&operator))
        .await;
    assert_eq!(window(&household).0, "9h");
    set(json!({"meter": "ZS-0001", "settings": {"warning_window": "7h"}})).await;
    let (_, household) = api
        .get("/api/v1/thresholds?meter=ZS-0001", Some(&operator))
        .await;
    assert_eq!(window(&household).0, "7h");
    let (_, everyone) = api.get("/api/v1/thresholds", Some(&operator)).await;
    assert_eq!(window(&everyone).0, "10h", "everyone's is unchanged");

    // A global value that would not hold is refused, naming where.
    let (status, body) = set(json!({"settings": {"warning_window": "30h"}})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("for category"),
        "{body}"
    );
    let (status, _) = api
        .get(
            "/api/v1/thresholds?meter=ZS-0001&category=general",
            Some(&operator),
        )
        .await;
    assert_eq!(status, 400, "not both");
    let (status, body) = api
        .get("/api/v1/thresholds?meter=ZS-9999", Some(&operator))
        .await;
    assert_eq!(status, 404, "an unknown household: {body}");
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devices_lists_are_chosen_by_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, api) = with_household(dir.path()).await;
    let installer = token(&gateway, "装表员", Role::Installer);
    let (status, _) = api
        .post(
            "/api/v1/meters",
            &installer,
            json!({"meter_id": "ZS-0002", "resident_name": "李淑珍", "address": "中山市东区兴文路8号",
                   "contacts": [{"name": "王芳", "phone": "13900139000"}]}),
        )
        .await;
    assert_eq!(status, 201);
    // ZS-0001 fell silent two days ago; ZS-0002 reports now, on a low battery,
    // and one of its messages is rejected.
    publish_hourly(&gateway, &silent_day()).await;
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-zs-0002").await;
    let now = chrono::Utc::now().to_rfc3339();
    meter
        .send(
            "meters/ZS-0002/reading",
            format!(r#"{{"ts":"{now}","total_l":120,"battery_pct":15}}"#),
        )
        .await;
    meter.send("meters/ZS-0002/reading", "not json").await;
    meter.flush().await;
    wait_for_readings(&gateway.store, 27).await;
    let needing = |need: &'static str| {
        let api = &api;
        let installer = installer.clone();
        async move {
            let (status, found) = api
                .get(&format!("/api/v1/meters?needs={need}"), Some(&installer))
                .await;
            assert_eq!(status, 200, "{found}");
            found["meters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["meter"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(needing("offline").await, ["ZS-0001"]);
    assert_eq!(needing("low_battery").await, ["ZS-0002"]);
    wait_until("the rejected message is counted", || async {
        gateway
            .store
            .meter_state("ZS-0002")
            .unwrap()
            .is_some_and(|s| s.rejected == 1)
    })
    .await;
    assert_eq!(needing("losing").await, ["ZS-0002"]);
    let (status, _) = api
        .get("/api/v1/meters?needs=broken", Some(&installer))
        .await;
    assert_eq!(status, 400);
    gateway.stop().await.unwrap();
}
