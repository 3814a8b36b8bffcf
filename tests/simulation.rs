//! The simulator through the real gateway, on a clock the test moves:
//! simulated homes publish through the embedded MQTT server, the gateway texts the
//! simulated phones through its webhook provider, a resident who is fine (away
//! on a trip) answers her check-ins through `POST /sms/inbound`, and the one
//! who fell cannot — so her contacts are texted.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use firmware_sim::answer::{self, Answering, Holder, PhoneClock};
use firmware_sim::meter::Faults;
use firmware_sim::publish::{Broker, Publisher};
use firmware_sim::scenario::{Incident, IncidentKind};
use firmware_sim::sim::{Meters, Plan, Simulation};
use stillwater::actions;
use stillwater::clock::{Clock, ManualClock};
use stillwater::config::{ProviderChoice, Secret};
use stillwater::domain::{Actor, Channel, Role, Timestamp};
use stillwater::store::prelude::*;
use stillwater::store::Store;

const DAY: i64 = 86_400;
const TOKEN: &str = "simulated-phones";

/// The phones live on the test's clock and answer without real delay.
struct Phones(Arc<ManualClock>);

impl PhoneClock for Phones {
    fn now(&self) -> i64 {
        self.0.now().secs()
    }

    fn real(&self, _: f64) -> Duration {
        Duration::ZERO
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_residents_answer_their_check_ins_and_the_one_who_fell_cannot() {
    let start = (chrono::Utc::now().timestamp() - 30 * DAY) / 3600 * 3600;
    let fall = start + 2 * DAY + 10 * 3600;
    let trip = (start + DAY + 9 * 3600, start + 3 * DAY + 12 * 3600);
    let plan = Plan {
        seed: 4,
        homes: 3,
        start,
        end: Some(start + 5 * DAY),
        id_prefix: "SIM-".into(),
        topic_prefix: "meters".into(),
        incident_rate: 0.0,
        meters: Meters::Uniform {
            interval_s: 3600,
            batch: 1,
        },
        faults: Faults::default(),
        check_in_share: 1.0,
        scripted: vec![
            (
                0,
                Incident {
                    kind: IncidentKind::Incapacitation,
                    start: fall,
                    end: start + 5 * DAY,
                },
            ),
            (
                1,
                Incident {
                    kind: IncidentKind::Trip { declared: false },
                    start: trip.0,
                    end: trip.1,
                },
            ),
        ],
    };
    let mut sim = Simulation::new(plan);
    let phones = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.sms.provider = ProviderChoice::Webhook {
        url: format!("http://{}/sms", phones.local_addr().unwrap()),
        token: None,
    };
    config.sms.inbound_token = Some(Secret::new(TOKEN.into()));
    config.alerts.tick = Duration::from_millis(50);
    let store = Store::from_config(&config.store).unwrap();
    let installer = Actor::new("installer", Role::Installer, Channel::Cli);
    let csv = sim.installation_csv();
    actions::meters::import(&store, &installer, csv.as_bytes(), &config.registry, start).unwrap();

    let clock = ManualClock::at(Timestamp::from_secs(start));
    let gateway = start_gateway_with(&config, clock.clone()).await;
    let mut holders = HashMap::new();
    for resident in &sim.residents {
        let phone = resident.check_in_phone.clone().unwrap();
        let helpless = sim.helpless_stretches(&phone);
        holders.insert(phone, Holder::Resident { helpless });
        for contact in &resident.contacts {
            holders.insert(contact.clone(), Holder::Contact);
        }
    }
    let (_phones, tally) = answer::serve(
        phones,
        holders,
        Answering {
            inbound_url: format!("http://{}/sms/inbound", gateway.http_addr),
            token: TOKEN.into(),
            resident_rate: 1.0,
            contact_rate: 0.0,
            clock: Arc::new(Phones(clock.clone())),
            seed: 4,
        },
    );
    let broker = Broker {
        host: gateway.mqtt_addr.ip().to_string(),
        port: gateway.mqtt_addr.port(),
        credentials: None,
    };
    let mut meters = Publisher::connect(&broker, "simulated-meters")
        .await
        .unwrap();
    let mut published: HashMap<String, i64> = HashMap::new();
    for hour in 1..=5 * 24 {
        clock.set(Timestamp::from_secs(start + hour * 3600));
        for message in sim.advance(start + hour * 3600) {
            let meter = message.topic.split('/').nth(1).unwrap().to_string();
            *published.entry(meter).or_default() += 1;
            meters.publish(message).await.unwrap();
        }
        // Every reading judged, every text handed to a phone, every answer back.
        let (store, published, tally) = (store.clone(), published.clone(), tally.clone());
        wait_until("the hour is judged, texted and answered", move || {
            let (store, published, tally) = (store.clone(), published.clone(), tally.clone());
            async move {
                let judged = published.iter().all(|(meter, count)| {
                    store.meter_state(meter).unwrap().is_some_and(|s| {
                        s.readings == *count && s.evaluated_through == s.last_reading_ts
                    })
                });
                let texted = store
                    .notifications(None)
                    .unwrap()
                    .iter()
                    .all(|t| t.state != "pending");
                judged && texted && tally.pending.load(Ordering::SeqCst) == 0
            }
        })
        .await;
    }
    meters.finish().await.unwrap();

    let alerts = store.list_alerts(true, 100).unwrap();
    let texts = store.notifications(None).unwrap();
    let of = |meter: &str| -> Vec<_> {
        let ids: Vec<i64> = alerts
            .iter()
            .filter(|a| a.meter_id == meter)
            .map(|a| a.id)
            .collect();
        texts
            .iter()
            .filter(|t| ids.contains(&t.alert_id))
            .map(|t| (t.purpose.clone(), t.recipient.clone()))
            .collect()
    };
    // The resident away on a trip was asked and answered: nobody else heard of it.
    let away = of("SIM-00001");
    assert!(
        away.iter().any(|(purpose, _)| purpose == "check_in"),
        "{away:?}"
    );
    assert!(
        away.iter().all(|(purpose, _)| purpose == "check_in"),
        "{away:?}"
    );
    assert!(alerts
        .iter()
        .filter(|a| a.meter_id == "SIM-00001")
        .all(|a| a.disposition.as_deref() == Some("safe")));
    // The resident who fell was asked, could not answer: her contacts were texted.
    let fell = of("SIM-00000");
    assert!(
        fell.iter().any(|(purpose, _)| purpose == "check_in"),
        "{fell:?}"
    );
    assert!(
        fell.iter()
            .any(|(purpose, recipient)| purpose == "alert" && recipient != "resident"),
        "{fell:?}"
    );
    // Every check-in was answered but those to the resident on the floor.
    let helpless: Vec<i64> = alerts
        .iter()
        .filter(|a| a.meter_id == "SIM-00000" && a.opened_at > fall)
        .map(|a| a.id)
        .collect();
    let answerable = texts
        .iter()
        .filter(|t| t.purpose == "check_in" && !helpless.contains(&t.alert_id))
        .count();
    assert!(answerable >= away.len());
    assert_eq!(
        tally.answered.load(Ordering::SeqCst) as usize,
        answerable,
        "{texts:?}"
    );
    gateway.stop().await.unwrap();
}
