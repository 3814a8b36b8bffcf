//! One household (ZS-0001, two contacts) and the readings that make it
//! alert: shared by the tests that follow a text from a reading to a reply.

use stillwater::actions;
use stillwater::app::Gateway;
use stillwater::config::Config;
use stillwater::domain::{Actor, Channel, Role};
use stillwater::registry::parse_csv;
use stillwater::store::prelude::*;
use stillwater::store::Store;
use wiremock::{MockServer, Request};

use super::{native, wait_until, Publisher};

pub const HOUSEHOLD: &str = "meter_id,resident_name,address,category,timezone,reporting_interval_min,contact1_name,contact1_phone,contact2_name,contact2_phone,contact3_name,contact3_phone,notes
ZS-0001,张桂芳,中山市石岐区民生路12号3楼,elderly_alone,Asia/Shanghai,60,李敏,13800138000,张伟,13900139000,,,
";
pub const STEP_1: &str = "+8613800138000";
pub const STEP_2: &str = "+8613900139000";
/// Registers the household in `config`'s database.
pub fn register_household(config: &Config) {
    let store = Store::from_config(&config.store).unwrap();
    let households = parse_csv(HOUSEHOLD, &config.registry).unwrap();
    let installer = Actor::new("installer", Role::Installer, Channel::Cli);
    actions::meters::register(
        &store,
        &installer,
        &households,
        chrono::Utc::now().timestamp(),
    )
    .unwrap();
}

/// `litres[i]` used in hour i, starting three days ago: one payload per hour.
pub fn hourly_payloads(litres: &[i64]) -> Vec<String> {
    let start = (chrono::Utc::now().timestamp() - 3 * 86_400) / 3600 * 3600;
    let mut total = 5_000;
    litres
        .iter()
        .enumerate()
        .map(|(hour, used)| {
            total += used;
            let ts = chrono::DateTime::from_timestamp(start + hour as i64 * 3600, 0).unwrap();
            native(&ts.to_rfc3339(), total)
        })
        .collect()
}

/// A day of silence after one flush: an urgent no_usage.
pub fn silent_day() -> Vec<i64> {
    let mut litres = vec![0; 26];
    litres[0] = 6;
    litres
}

pub async fn publish_hourly(gateway: &Gateway, litres: &[i64]) {
    let mut meter = Publisher::connect(gateway.mqtt_addr, "meter-zs-0001").await;
    for payload in hourly_payloads(litres) {
        meter.send("meters/ZS-0001/reading", payload).await;
    }
    meter.flush().await;
    wait_until_evaluated(&gateway.store, litres.len()).await;
}

/// Waits until the engine has evaluated the meter's newest of `count` readings.
pub async fn wait_until_evaluated(store: &Store, count: usize) {
    let store = store.clone();
    wait_until("the alert engine has evaluated every reading", || {
        let store = store.clone();
        async move {
            store.meter_state("ZS-0001").unwrap().is_some_and(|state| {
                state.readings == count as i64 && state.evaluated_through == state.last_reading_ts
            })
        }
    })
    .await;
}

pub async fn wait_for_requests(server: &MockServer, count: usize) -> Vec<Request> {
    wait_until(&format!("{count} texts reach the SMS gateway"), || async {
        server.received_requests().await.unwrap_or_default().len() >= count
    })
    .await;
    server.received_requests().await.unwrap()
}
