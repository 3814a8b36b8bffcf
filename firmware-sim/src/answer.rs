//! The residents' and contacts' phones. The gateway's `webhook` SMS provider
//! posts each text here; a resident who is fine (no incapacitation under way
//! in the simulation at that moment) answers a check-in through the gateway's
//! `POST /sms/inbound` after a while, if they answer at all; an incapacitated
//! resident never does. Contacts acknowledge alerts the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};

use crate::publish::SimClock;

/// The time the phones live in: the simulation's.
pub trait PhoneClock: Send + Sync {
    /// Simulated time now (Unix seconds).
    fn now(&self) -> i64;
    /// The real time `sim_seconds` of simulated time take.
    fn real(&self, sim_seconds: f64) -> std::time::Duration;
}

impl PhoneClock for SimClock {
    fn now(&self) -> i64 {
        SimClock::now(self)
    }

    fn real(&self, sim_seconds: f64) -> std::time::Duration {
        SimClock::real(self, sim_seconds)
    }
}
use crate::rng::Rng;

/// Who holds a phone.
#[derive(Debug, Clone)]
pub enum Holder {
    /// A resident, helpless over these stretches (simulated time).
    Resident {
        helpless: Vec<(i64, i64)>,
    },
    Contact,
}

/// How people answer.
#[derive(Clone)]
pub struct Answering {
    /// The gateway's inbound SMS URL (`http://…/sms/inbound`).
    pub inbound_url: String,
    pub token: String,
    /// Share of check-ins a resident who is fine answers.
    pub resident_rate: f64,
    /// Share of alert texts a contact acknowledges.
    pub contact_rate: f64,
    pub clock: Arc<dyn PhoneClock>,
    pub seed: u64,
}

/// What the phones did.
#[derive(Debug, Default)]
pub struct Tally {
    pub texts: AtomicU64,
    pub check_ins: AtomicU64,
    pub answered: AtomicU64,
    pub acknowledged: AtomicU64,
    pub failed: AtomicU64,
    /// Answers decided on but not yet sent.
    pub pending: AtomicU64,
}

struct Phones {
    holders: HashMap<String, Holder>,
    answering: Answering,
    rng: Mutex<Rng>,
    tally: Arc<Tally>,
    http: reqwest::Client,
}

/// Serves the phones on `listener` until the task is dropped.
pub fn serve(
    listener: tokio::net::TcpListener,
    holders: HashMap<String, Holder>,
    answering: Answering,
) -> (tokio::task::JoinHandle<()>, Arc<Tally>) {
    let tally = Arc::new(Tally::default());
    let phones = Arc::new(Phones {
        holders: holders
            .into_iter()
            .map(|(phone, holder)| (national(&phone).to_string(), holder))
            .collect(),
        rng: Mutex::new(Rng::keyed(answering.seed, &[7])),
        answering,
        tally: tally.clone(),
        http: reqwest::Client::new(),
    });
    let app = Router::new().route("/sms", post(text)).with_state(phones);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (task, tally)
}

/// `+8613800138000` and `13800138000` are the same phone.
fn national(phone: &str) -> &str {
    phone.strip_prefix("+86").unwrap_or(phone)
}

async fn text(State(phones): State<Arc<Phones>>, Json(sms): Json<serde_json::Value>) -> StatusCode {
    phones.tally.texts.fetch_add(1, Ordering::Relaxed);
    let to = national(sms["to"].as_str().unwrap_or_default()).to_string();
    let template = sms["template"].as_str().unwrap_or_default();
    let Some(code) = sms["values"]["code"]
        .as_str()
        .map(str::to_string)
        .or_else(|| sms["values"]["code"].as_i64().map(|c| c.to_string()))
    else {
        return StatusCode::OK;
    };
    let now = phones.answering.clock.now();
    let (answers, delay_s) = {
        let mut rng = phones.rng.lock().expect("the phones' generator");
        match phones.holders.get(&to) {
            Some(Holder::Resident { helpless }) if template.ends_with(".check_in") => {
                phones.tally.check_ins.fetch_add(1, Ordering::Relaxed);
                let fine = !helpless.iter().any(|&(s, e)| now >= s && now < e);
                let answers = fine && rng.chance(phones.answering.resident_rate);
                (answers, rng.lognormal(300.0, 0.8).clamp(30.0, 1500.0))
            }
            Some(Holder::Contact) if template.ends_with(".alert") => (
                rng.chance(phones.answering.contact_rate),
                rng.lognormal(900.0, 0.7).clamp(60.0, 3600.0),
            ),
            _ => (false, 0.0),
        }
    };
    if answers {
        let phones = phones.clone();
        phones.tally.pending.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            tokio::time::sleep(phones.answering.clock.real(delay_s)).await;
            let sent = phones
                .http
                .post(&phones.answering.inbound_url)
                .bearer_auth(&phones.answering.token)
                .json(&serde_json::json!({"from": to, "text": code}))
                .send()
                .await;
            let counter = match sent {
                Ok(response) if response.status().is_success() => {
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    match body["result"].as_str() {
                        Some("safe") => Some(&phones.tally.answered),
                        Some("acknowledged") => Some(&phones.tally.acknowledged),
                        _ => None,
                    }
                }
                _ => Some(&phones.tally.failed),
            };
            if let Some(counter) = counter {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            phones.tally.pending.fetch_sub(1, Ordering::SeqCst);
        });
    }
    StatusCode::OK
}
