//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`), on a phone-sized window.
//! A monitor signs in, sees the alert a silent home's published readings
//! open appear by itself, acknowledges it and sees its state change; an
//! installer registers a meter at the door; an operator sees the silent
//! meter among the offline devices, previews a threshold against the stored
//! readings, saves it, and finds the change in the audit log beside the
//! month's report. Screenshots of each
//! step are kept under the target directory (`dashboard-screenshots/`).
//!
//! Enabled by `STILLWATER_TEST_BROWSER=1` (`.ci/run` sets it and installs the
//! packages); when it is set, a missing browser fails the test.

mod common;
#[path = "support/webdriver.rs"]
mod webdriver;

use common::home::*;
use common::*;
use stillwater::actions::tokens;
use stillwater::domain::{Actor, Channel, Role};
use stillwater::store::prelude::*;
use stillwater::store::rules::RuleScope;
use webdriver::{Browser, Driver};

/// A phone: 390 × 844 CSS pixels.
const PHONE: (u32, u32) = (390, 844);

fn enabled() -> bool {
    if std::env::var_os("STILLWATER_TEST_BROWSER").is_some() {
        return true;
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "dashboard browser test not run: set STILLWATER_TEST_BROWSER=1 (needs chromium and chromium-driver)"
    );
    false
}

fn shots() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.go(&format!("{base}/ui/")).await;
    browser.find("#token").await.type_text(token).await;
    browser.find("#sign-in").await.click().await;
    browser.find("#nav a").await;
}

async fn sign_out(browser: &Browser) {
    browser.find("#logout").await.click().await;
    browser.find("#login:not([hidden]) #token").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_installers_and_operators_work_in_a_phone_sized_browser() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let _sms = common::api::sms_sink(&mut config).await;
    register_household(&config);
    let gateway = start_gateway(&config).await;
    let base = format!("http://{}", gateway.http_addr);
    let admin = Actor::new("cli", Role::Admin, Channel::Cli);
    let token = |name: &str, role| {
        tokens::add(&gateway.store, &admin, name, role, 0)
            .unwrap()
            .1
    };
    let (monitor, installer, operator) = (
        token("李敏", Role::Monitor),
        token("装表员", Role::Installer),
        token("值班员", Role::Operator),
    );
    let shots = shots();
    let driver = Driver::start();
    let browser = driver.browser(PHONE.0, PHONE.1).await;

    // A wrong token is refused on the page.
    browser.go(&format!("{base}/ui/")).await;
    browser.find("#token").await.type_text("sw_wrong").await;
    browser.find("#sign-in").await.click().await;
    let said = browser.find("#login-error:not(:empty)").await.text().await;
    assert!(said.contains("unknown token"), "{said}");

    // The monitor: nothing open yet; then a silent home's alert appears by itself.
    browser.find("#token").await.clear().await;
    sign_in(&browser, &base, &monitor).await;
    browser.find("#alerts p.muted").await;
    // Chinese by default; English a tap away, and back.
    assert_eq!(browser.find("#nav-alerts").await.text().await, "告警");
    browser.find("#lang").await.click().await;
    assert_eq!(browser.find("#nav-alerts").await.text().await, "Alerts");
    browser.find("#lang").await.click().await;
    assert_eq!(browser.find("#nav-alerts").await.text().await, "告警");
    browser.find("#alerts p.muted").await;
    publish_hourly(&gateway, &silent_day()).await;
    let card = browser.find("article.alert[data-state='open']").await;
    let text = card.text().await;
    assert!(text.contains("张桂芳"), "the resident's name: {text}");
    browser.screenshot(&shots.join("1-monitor-alert.png")).await;
    browser
        .find("article.alert[data-state='open'] button.acknowledge")
        .await
        .click()
        .await;
    browser
        .find("article.alert[data-state='acknowledged']")
        .await;
    assert_eq!(browser.count("article.alert[data-state='open']").await, 0);
    browser
        .screenshot(&shots.join("2-monitor-acknowledged.png"))
        .await;
    let alert = gateway.store.list_alerts(false, 10).unwrap().remove(0);
    assert_eq!(alert.state, "acknowledged");
    let events = gateway.store.alert_events(alert.id).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "acknowledged" && e.actor == "李敏" && e.channel == "web"),
        "{events:?}"
    );
    // The household's page: its use chart and its contacts, to call.
    browser.go(&format!("{base}/ui/#/household/ZS-0001")).await;
    browser.find("#chart canvas").await;
    let page = browser.find("#view").await.text().await;
    assert!(page.contains("+8613800138000"), "{page}");
    browser.screenshot(&shots.join("3-household.png")).await;
    sign_out(&browser).await;

    // The installer registers a meter at the door.
    sign_in(&browser, &base, &installer).await;
    browser.go(&format!("{base}/ui/#/register")).await;
    browser.find("#f-meter").await.type_text("ZS-0042").await;
    browser
        .find("#f-resident_name")
        .await
        .type_text("陈秀英")
        .await;
    browser
        .find("#f-address")
        .await
        .type_text("中山市石岐区悦来路5号")
        .await;
    browser
        .find("#f-contact_name")
        .await
        .type_text("陈伟")
        .await;
    browser
        .find("#f-contact_phone")
        .await
        .type_text("13700137000")
        .await;
    browser.find("#do-register").await.click().await;
    let done = browser.find("#registered").await.text().await;
    assert!(done.contains("ZS-0042"), "{done}");
    browser.screenshot(&shots.join("4-installer.png")).await;
    let registered = gateway
        .store
        .meter_details("ZS-0042", 0)
        .unwrap()
        .and_then(|d| d.registration)
        .expect("registered");
    assert_eq!(registered.resident_name, "陈秀英");
    assert_eq!(registered.contacts[0].2, "+8613700137000");
    sign_out(&browser).await;

    // The operator previews a shorter warning window over the stored
    // readings (the page shows what the API's replay says), then saves it.
    sign_in(&browser, &base, &operator).await;
    // The devices page: the silent meter is offline.
    browser.go(&format!("{base}/ui/#/devices")).await;
    let offline = browser.find("#offline li").await.text().await;
    assert!(offline.contains("ZS-0001"), "{offline}");
    browser
        .screenshot(&shots.join("5-operator-devices.png"))
        .await;
    browser
        .go(&format!("{base}/ui/#/thresholds/elderly_alone"))
        .await;
    let window = browser.find("#values input[name='warning_window']").await;
    window.clear().await;
    window.type_text("20h").await;
    browser.find("#do-preview").await.click().await;
    let shown = browser.find("#preview .tried-alerts").await.text().await;
    let replayed = reqwest::Client::new()
        .post(format!("{base}/api/v1/thresholds/preview"))
        .bearer_auth(&operator)
        .json(&serde_json::json!({"category": "elderly_alone", "settings": {"warning_window": "20h"}}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert!(
        replayed["current"]["alerts"].as_u64() >= Some(1),
        "{replayed}"
    );
    assert_eq!(shown, replayed["tried"]["alerts"].to_string(), "{replayed}");
    browser
        .screenshot(&shots.join("5-operator-preview.png"))
        .await;
    browser.find("#do-save").await.click().await;
    browser.find("#preview .done").await;
    let stored = gateway
        .store
        .rule_overrides(&RuleScope::Category("elderly_alone".into()))
        .unwrap();
    assert!(
        stored
            .iter()
            .any(|o| o.key == "warning_window" && o.value == "20h"),
        "{stored:?}"
    );
    // The month's report and the audit log, with the change just made.
    browser.go(&format!("{base}/ui/#/reports")).await;
    browser.find("#report table").await;
    let audit = browser.find("#audit table").await.text().await;
    assert!(
        audit.contains("rules.set") && audit.contains("warning_window: (default) → 20h"),
        "{audit}"
    );
    browser
        .screenshot(&shots.join("7-operator-reports.png"))
        .await;
    browser.close().await;
    gateway.stop().await.unwrap();
}
