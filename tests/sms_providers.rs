//! Each SMS provider against a local mock of its API (wiremock): the request
//! it sends (checked field by field, its signature recomputed from what the
//! server received), and what it makes of success, the provider's error codes,
//! 5xx, a timeout and a malformed answer. The providers are built from the
//! sample configurations in config/examples, which must pass check-config.

use std::sync::Arc;
use std::time::Duration;

use stillwater::clock::{ManualClock, SharedClock};
use stillwater::config::Config;
use stillwater::domain::Timestamp;
use stillwater::notify::{self, sign, Sent, Sms, SmsProvider};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRETS: [(&str, &str); 6] = [
    ("STILLWATER_ALIYUN_ACCESS_KEY_ID", "testId"),
    ("STILLWATER_ALIYUN_ACCESS_KEY_SECRET", "testSecret"),
    ("STILLWATER_TENCENT_SECRET_ID", "AKIDtest"),
    ("STILLWATER_TENCENT_SECRET_KEY", "tencent-key"),
    ("STILLWATER_TWILIO_AUTH_TOKEN", "twilio-token"),
    ("STILLWATER_SMS_CALLBACK_TOKEN", "callback-token"),
];

fn env(name: &str) -> Option<String> {
    SECRETS
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

fn sample(name: &str) -> String {
    let path = format!("{}/config/examples/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// A sample configuration with the provider's endpoint at `endpoint`.
fn config(name: &str, endpoint: &str) -> Config {
    let mut config = Config::from_toml(&sample(name), &env).expect("the sample is valid");
    config.sms.timeout = Duration::from_millis(500);
    match &mut config.sms.provider {
        stillwater::config::ProviderChoice::Aliyun(aliyun) => aliyun.endpoint = endpoint.into(),
        stillwater::config::ProviderChoice::Tencent(tencent) => tencent.endpoint = endpoint.into(),
        stillwater::config::ProviderChoice::Twilio(twilio) => twilio.endpoint = endpoint.into(),
        other => panic!("not a provider sample: {other:?}"),
    }
    config
}

/// 2026-12-02 23:50:00 UTC (07:50 on the 3rd in Beijing).
const NOW: i64 = 1_796_255_400;

fn provider(config: &Config) -> Arc<dyn SmsProvider> {
    let clock: SharedClock = ManualClock::at(Timestamp::from_secs(NOW));
    notify::build_one(&config.sms.provider, &config.sms, &clock).unwrap()
}

fn sms(template: &str) -> Sms {
    Sms {
        to: "+8613800138000".into(),
        text: "【水表关爱】张桂芳（中山市石岐区民生路12号3楼）家自 12月2日 06:40 起 24 小时未用水，请尽快联系或上门查看。回复 1 确认。".into(),
        alert_id: 7,
        kind: "no_usage".into(),
        idempotency_key: "a7-s1-+8613800138000-alert".into(),
        template: template.into(),
        values: serde_json::json!({
            "name": "张桂芳", "address": "中山市石岐区民生路12号3楼", "meter": "ZS-0001",
            "since": "12月2日 06:40", "hours": 24, "litres": 0, "flags": "", "usual": "",
            "code": 1, "reminder": 0
        }),
    }
}

async fn answering(status: u16, body: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(status).set_body_string(body.to_string()))
        .mount(&server)
        .await;
    server
}

async fn only_request(server: &MockServer) -> Request {
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "one request per attempt");
    requests.into_iter().next().unwrap()
}

#[test]
fn every_sample_configuration_passes_check_config() {
    for name in ["aliyun", "tencent", "twilio"] {
        let config = Config::from_toml(&sample(name), &env)
            .unwrap_or_else(|problem| panic!("{name}: {problem}"));
        assert_eq!(notify::check(&config.sms), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn check_config_names_the_texts_without_a_template_and_the_missing_secret() {
    let text = sample("aliyun").replace(
        "\"leak.alert\" = { code = \"SMS_400100007\", params = [\"name\", \"address\", \"since\", \"litres\", \"code\"] }\n",
        "",
    );
    let config = Config::from_toml(&text, &env).unwrap();
    let problems = notify::check(&config.sms);
    assert_eq!(
        problems,
        ["sms.aliyun.templates: no template for \"leak.alert\": those texts cannot be sent through this provider"]
    );
    let no_secret = |name: &str| {
        if name == "STILLWATER_ALIYUN_ACCESS_KEY_SECRET" {
            None
        } else {
            env(name)
        }
    };
    let problem = Config::from_toml(&sample("aliyun"), &no_secret)
        .unwrap_err()
        .to_string();
    assert!(
        problem.contains("sms.aliyun.access_key_secret_file")
            && problem.contains("STILLWATER_ALIYUN_ACCESS_KEY_SECRET"),
        "{problem}"
    );
    let unknown = sample("tencent").replace("\"no_usage.check_in\"", "\"no_usage.check_out\"");
    let problem = Config::from_toml(&unknown, &env).unwrap_err().to_string();
    assert!(
        problem.contains("sms.tencent.templates.no_usage.check_out"),
        "{problem}"
    );
}

#[test]
fn a_secret_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aliyun.secret");
    std::fs::write(&file, "testSecret\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!(
        "{}\n",
        sample("aliyun").replace(
            "sign_name = \"水表关爱\"",
            &format!(
                "sign_name = \"水表关爱\"\naccess_key_secret_file = {:?}",
                file.display().to_string()
            )
        )
    );
    let without_env = |name: &str| {
        if name == "STILLWATER_ALIYUN_ACCESS_KEY_SECRET" {
            None
        } else {
            env(name)
        }
    };
    let problem = Config::from_toml(&text, &without_env)
        .unwrap_err()
        .to_string();
    assert!(
        problem.contains("chmod 600") && problem.contains("644"),
        "{problem}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = Config::from_toml(&text, &without_env).unwrap();
    let stillwater::config::ProviderChoice::Aliyun(aliyun) = &config.sms.provider else {
        panic!("aliyun")
    };
    assert_eq!(aliyun.access_key_secret.expose(), "testSecret");
    // The secret never shows in the configuration's debug form.
    assert!(!format!("{config:?}").contains("testSecret"));
}

// --- Aliyun ---

fn query(request: &Request) -> Vec<(String, String)> {
    request.url.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn aliyun_sends_the_signed_template_request() {
    let server = answering(
        200,
        r#"{"Code":"OK","Message":"OK","BizId":"900619746936498440^0","RequestId":"F655A8D5-B967-440B-8683-DAD6FF8DE990"}"#,
    )
    .await;
    let provider = provider(&config("aliyun", &format!("{}/", server.uri())));
    let sent = provider.send(&sms("no_usage.alert")).await.unwrap();
    assert_eq!(
        sent,
        Sent {
            reference: Some("900619746936498440^0".into())
        }
    );
    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "GET");
    let fields = query(&request);
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(get("Action"), "SendSms");
    assert_eq!(get("PhoneNumbers"), "13800138000");
    assert_eq!(get("SignName"), "水表关爱");
    assert_eq!(get("TemplateCode"), "SMS_400100001");
    assert_eq!(get("OutId"), "a7-s1-+8613800138000-alert");
    assert_eq!(get("Timestamp"), "2026-12-02T23:50:00Z");
    let params: serde_json::Value = serde_json::from_str(&get("TemplateParam")).unwrap();
    assert_eq!(
        params,
        serde_json::json!({"name": "张桂芳", "address": "中山市石岐区民生路12号3楼",
            "since": "12月2日 06:40", "hours": "24", "code": "1"}),
        "every value a string, as Aliyun requires"
    );
    // The signature, recomputed from what arrived, with the secret.
    let unsigned: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let expected =
        sign::aliyun_signature("testSecret", &sign::aliyun_string_to_sign("GET", &unsigned));
    assert_eq!(get("Signature"), expected);
}

#[tokio::test]
async fn aliyun_failures_say_what_happens_next() {
    for (status, body, expect) in [
        (
            200,
            r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发分钟级流控Permits:1"}"#,
            "rate_limited",
        ),
        (
            200,
            r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL","Message":"非法手机号"}"#,
            "permanent",
        ),
        (
            200,
            r#"{"Code":"isv.AMOUNT_NOT_ENOUGH","Message":"账户余额不足"}"#,
            "account",
        ),
        (
            400,
            r#"{"Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched"}"#,
            "account",
        ),
        (500, "Internal Server Error", "transient"),
        (200, "<html>proxy login</html>", "maybe_sent"),
    ] {
        let server = answering(status, body).await;
        let provider = provider(&config("aliyun", &format!("{}/", server.uri())));
        let error = provider.send(&sms("no_usage.alert")).await.unwrap_err();
        assert_eq!(error.label(), expect, "{status} {body}: {error}");
    }
}

#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_may_have_taken_the_text() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    for name in ["aliyun", "tencent", "twilio"] {
        let provider = provider(&config(name, &format!("{}/", server.uri())));
        let error = provider.send(&sms("no_usage.alert")).await.unwrap_err();
        assert_eq!(error.label(), "maybe_sent", "{name}: {error}");
    }
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_did_not_take_the_text() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    for name in ["aliyun", "tencent", "twilio"] {
        let provider = provider(&config(name, &format!("http://{closed}/")));
        let error = provider.send(&sms("no_usage.alert")).await.unwrap_err();
        assert_eq!(error.label(), "transient", "{name}: {error}");
    }
}

#[tokio::test]
async fn a_text_without_a_template_is_the_account_settings_problem() {
    let server = answering(200, r#"{"Code":"OK"}"#).await;
    let mut config = config("aliyun", &format!("{}/", server.uri()));
    let stillwater::config::ProviderChoice::Aliyun(aliyun) = &mut config.sms.provider else {
        unreachable!()
    };
    aliyun.templates.remove("leak.alert");
    let error = provider(&config)
        .send(&sms("leak.alert"))
        .await
        .unwrap_err();
    assert_eq!(error.label(), "account", "{error}");
    assert!(
        error.to_string().contains("[sms.aliyun.templates]"),
        "{error}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

// --- Tencent Cloud ---

#[tokio::test]
async fn tencent_sends_the_signed_template_request() {
    let server = answering(
        200,
        r#"{"Response":{"SendStatusSet":[{"SerialNo":"5000:1045710669157053657849499619","PhoneNumber":"+8613800138000","Fee":2,"SessionContext":"a7","Code":"Ok","Message":"send success","IsoCode":"CN"}],"RequestId":"a0aabda6-cf91-4f3e-a81f-9198114a2279"}}"#,
    )
    .await;
    let provider = provider(&config("tencent", &format!("{}/", server.uri())));
    let sent = provider.send(&sms("no_usage.alert")).await.unwrap();
    assert_eq!(
        sent.reference.as_deref(),
        Some("5000:1045710669157053657849499619")
    );
    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "POST");
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(header("x-tc-action"), "SendSms");
    assert_eq!(header("x-tc-version"), "2021-01-11");
    assert_eq!(header("x-tc-region"), "ap-guangzhou");
    assert_eq!(header("x-tc-timestamp"), NOW.to_string());
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "PhoneNumberSet": ["+8613800138000"],
            "SmsSdkAppId": "1400000000",
            "SignName": "水表关爱",
            "TemplateId": "1900018",
            // param_max_chars = 12: the address is cut.
            "TemplateParamSet": ["张桂芳", "中山市石岐区民生路12…", "12月2日 06:40", "24", "1"],
            "SessionContext": "a7-s1-+8613800138000-alert",
        })
    );
    // The signature, recomputed from the bytes that arrived; the scope's
    // date is the UTC date (Beijing is already on the 3rd).
    let host = header("host");
    let expected = sign::tc3_sign(&sign::Tc3Request {
        secret_id: "AKIDtest",
        secret_key: "tencent-key",
        service: "sms",
        host: &host,
        content_type: "application/json; charset=utf-8",
        timestamp: NOW,
        payload: &request.body,
    });
    assert_eq!(header("authorization"), expected.authorization);
    assert!(expected
        .authorization
        .contains("/2026-12-02/sms/tc3_request"));
}

#[tokio::test]
async fn tencent_failures_say_what_happens_next() {
    for (status, body, expect) in [
        (
            200,
            r#"{"Response":{"SendStatusSet":[{"SerialNo":"","PhoneNumber":"+8613800138000","Fee":0,"Code":"LimitExceeded.PhoneNumberDailyLimit","Message":"the number of sms messages sent from a single mobile number every day exceeds the upper limit"}],"RequestId":"r"}}"#,
            "rate_limited",
        ),
        (
            200,
            r#"{"Response":{"SendStatusSet":[{"PhoneNumber":"+8613800138000","Code":"InvalidParameterValue.IncorrectPhoneNumber","Message":"invalid number"}],"RequestId":"r"}}"#,
            "permanent",
        ),
        (
            200,
            r#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"The provided credentials could not be validated."},"RequestId":"r"}}"#,
            "account",
        ),
        (
            200,
            r#"{"Response":{"Error":{"Code":"InternalError.Timeout","Message":"timeout"},"RequestId":"r"}}"#,
            "transient",
        ),
        (502, "Bad Gateway", "transient"),
        (200, r#"{"Response":{"RequestId":"r"}}"#, "maybe_sent"),
        (200, "not json", "maybe_sent"),
    ] {
        let server = answering(status, body).await;
        let provider = provider(&config("tencent", &format!("{}/", server.uri())));
        let error = provider.send(&sms("no_usage.alert")).await.unwrap_err();
        assert_eq!(error.label(), expect, "{status} {body}: {error}");
    }
}

// --- Twilio ---

#[tokio::test]
async fn twilio_sends_the_text_with_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(
            "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_string(
            r#"{"sid":"SM1f0e8ae6ade43cb3c0ce4525424e404f","status":"queued","num_segments":"2","error_code":null}"#,
        ))
        .mount(&server)
        .await;
    let provider = provider(&config("twilio", &server.uri()));
    let sent = provider.send(&sms("no_usage.alert")).await.unwrap();
    assert_eq!(
        sent.reference.as_deref(),
        Some("SM1f0e8ae6ade43cb3c0ce4525424e404f")
    );
    let request = only_request(&server).await;
    let auth = request
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    use base64::Engine as _;
    assert_eq!(
        auth,
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode("AC00000000000000000000000000000000:twilio-token")
        )
    );
    let form: Vec<(String, String)> = form_urlencoded::parse(&request.body).into_owned().collect();
    assert_eq!(
        form,
        vec![
            ("To".to_string(), "+8613800138000".to_string()),
            ("From".to_string(), "+15005550006".to_string()),
            ("Body".to_string(), sms("").text),
            (
                "StatusCallback".to_string(),
                "https://stillwater.example.org/sms/twilio/status".to_string()
            ),
        ]
    );
}

#[tokio::test]
async fn twilio_failures_say_what_happens_next() {
    for (status, body, expect) in [
        (
            400,
            r#"{"code": 21211, "message": "The 'To' number +861 is not a valid phone number.", "status": 400}"#,
            "permanent",
        ),
        (
            401,
            r#"{"code": 20003, "message": "Authenticate", "status": 401}"#,
            "account",
        ),
        (
            429,
            r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
            "rate_limited",
        ),
        (503, "", "transient"),
        (201, "{}", "maybe_sent"),
    ] {
        let server = answering(status, body).await;
        let provider = provider(&config("twilio", &server.uri()));
        let error = provider.send(&sms("no_usage.alert")).await.unwrap_err();
        assert_eq!(error.label(), expect, "{status} {body}: {error}");
    }
}
