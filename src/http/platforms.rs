//! The carrier IoT platforms' pushes: NB-IoT meters' readings arriving over
//! HTTP instead of MQTT.
//!
//! - CTWing: `POST /ingest/ctwing/{token}`;
//! - OneNET: `GET /ingest/onenet?msg&nonce&signature` (the URL check, answered
//!   by echoing `msg`) and `POST /ingest/onenet`, signed;
//! - IoTDA: `POST /ingest/iotda/{token}`.
//!
//! A push is admitted (the platform enabled, its address allowed, its token or
//! signature right), read into items (`wire::platform`), each item's device
//! found in the registry (its platform device id, then its IMEI) and decoded
//! by its product's decoder, and handed to the store's writer like an MQTT
//! message. The platform gets its 200 only after the writer has committed
//! every message of the push — the same promise as a PUBACK — so a push the
//! gateway could not store is asked for again (503), and a platform's retry
//! of a stored push stores nothing twice (the same meter and second). What
//! cannot be read is recorded in `ingest rejected` (topic
//! `<platform>/<device id>`) and still answered 200: sending it again would
//! not help. Only a wrong signature is refused (403), and recorded.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot};

use super::{error, HttpState, Refusal};
use crate::config::{AddressBlock, PlatformsConfig, Secret};
use crate::domain::{same_secret, MeterId};
use crate::metrics::Metrics;
use crate::pipeline::{Decoded, Message, RejectReason, Rejection};
use crate::store::prelude::*;
use crate::store::PlatformDevice;
use crate::wire::platform::{self, Content, Item, Platform};
use crate::wire::{onenet, Arrival};

/// What the push endpoints need.
#[derive(Clone)]
pub struct Pushes {
    pub config: PlatformsConfig,
    /// The store writer's inbox; `None` when there is no writer (tests of other parts).
    pub writer: Option<mpsc::Sender<Message>>,
    /// The zone of meter clocks in CJ/T 188 frames.
    pub zone: chrono_tz::Tz,
    pub max_clock_ahead_s: i64,
    /// (meter, device) pairs already written to `platform_devices` by this run.
    pub noted: Arc<std::sync::Mutex<std::collections::HashSet<(String, String)>>>,
}

/// The largest push taken.
const PUSH_LIMIT: usize = 256 * 1024;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/ingest/ctwing/{token}", post(ctwing))
        .route("/ingest/onenet", get(onenet_check).post(onenet_push))
        .route("/ingest/iotda/{token}", post(iotda))
        .layer(axum::extract::DefaultBodyLimit::max(PUSH_LIMIT))
}

/// Whether this caller may push as `platform`: enabled (its secret set), from
/// an allowed address, and (for a path token) with the right token.
fn admit<'a>(
    pushes: &'a Pushes,
    platform: Platform,
    peer: SocketAddr,
    token: Option<&str>,
) -> Result<&'a Secret, Refusal> {
    let config = &pushes.config;
    let secret = match platform {
        Platform::Ctwing => config.ctwing_token.as_ref(),
        Platform::Onenet => config.onenet_token.as_ref(),
        Platform::Iotda => config.iotda_token.as_ref(),
    };
    let Some(secret) = secret else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("{} pushes are not enabled", platform.as_str()),
        ));
    };
    if !AddressBlock::allows(&config.allow, peer.ip()) {
        tracing::warn!(%peer, platform = platform.as_str(), "push refused: address not in platforms.allow");
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "pushes are not taken from this address (platforms.allow)".into(),
        ));
    }
    if let Some(token) = token {
        if !same_secret(token, secret.expose()) {
            tracing::warn!(%peer, platform = platform.as_str(), "push refused: wrong path token");
            return Err(Refusal(StatusCode::NOT_FOUND, "no such path".into()));
        }
    }
    Ok(secret)
}

/// Hands messages to the writer and waits until every one is committed.
async fn commit(pushes: &Pushes, messages: Vec<Message>) -> Result<(), Response> {
    let Some(writer) = &pushes.writer else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "readings cannot be stored now; send again",
        ));
    };
    let mut committed = Vec::new();
    for mut message in messages {
        let (done, wait) = oneshot::channel();
        message.ack = Some(Box::new(move || {
            let _ = done.send(());
        }));
        if writer.send(message).await.is_err() {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway is stopping; send again",
            ));
        }
        committed.push(wait);
    }
    for wait in committed {
        // The writer drops a message's acknowledgement only when it could not
        // commit it: the platform must send the push again.
        if wait.await.is_err() {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "readings could not be stored; send again",
            ));
        }
    }
    Ok(())
}

/// A message that only records why (part of) a push was not taken.
fn rejection(
    topic: String,
    reason: RejectReason,
    detail: String,
    body: &[u8],
    now: crate::domain::Timestamp,
) -> Message {
    crate::ingest::message(
        topic,
        Decoded::rejected(None, Rejection::new(reason, detail)),
        body,
        now,
        None,
    )
}

/// Each item found in the registry, decoded, and made a message. A registry
/// that cannot be read fails the push (503): stored under a guessed meter, a
/// reading would be lost to its household.
async fn messages(
    state: &HttpState,
    pushes: &Pushes,
    items: Vec<Item>,
    body: &[u8],
) -> Result<Vec<Message>, Response> {
    let now = state.clock.now();
    let arrival = Arrival {
        at: now,
        max_ahead_s: pushes.max_clock_ahead_s,
    };
    let mut out = Vec::new();
    for item in items {
        let platform = item.device.platform.as_str();
        record_kind(&state.metrics, platform, &item.content);
        let (store, device_id, imei) = (
            state.store.clone(),
            item.device.device_id.clone(),
            item.device.imei.clone(),
        );
        let found = tokio::task::spawn_blocking(move || {
            store.meter_for_device(&device_id, imei.as_deref())
        })
        .await;
        let registered = match found {
            Ok(Ok(meter)) => meter.and_then(|meter| MeterId::parse(&meter).ok()),
            Ok(Err(problem)) => {
                tracing::error!(%problem, "cannot look up a platform device in the registry");
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the registry cannot be read now; send again",
                ));
            }
            Err(_) => return Err(error(StatusCode::SERVICE_UNAVAILABLE, "send again")),
        };
        let decoder = pushes.config.products.get(&item.device.product_id);
        let decoded =
            platform::decode_item(&item, registered.as_ref(), decoder, pushes.zone, arrival);
        note_device(state, pushes, &item, decoded.meter.as_ref(), now.secs()).await;
        if decoded.readings.is_empty() && decoded.rejections.is_empty() {
            continue; // online/offline, a command's result: counted above
        }
        let topic = format!("{platform}/{}", item.device.device_id);
        out.push(crate::ingest::message(topic, decoded, body, now, None));
    }
    Ok(out)
}

/// Remembers how the platform names the meter (once per run) and what it
/// says of the device's presence (every time), for `meters show` and
/// `meters unregistered`.
async fn note_device(
    state: &HttpState,
    pushes: &Pushes,
    item: &Item,
    meter: Option<&MeterId>,
    now: i64,
) {
    let Some(meter) = meter else { return };
    let presence = match item.content {
        Content::Online(online) => Some((online, item.at_ms.map_or(now, |ms| ms.div_euclid(1000)))),
        _ => None,
    };
    let key = (meter.to_string(), item.device.device_id.clone());
    let new = pushes
        .noted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key);
    if !new && presence.is_none() {
        return;
    }
    let device = PlatformDevice {
        platform: item.device.platform.as_str().to_string(),
        product_id: item.device.product_id.clone(),
        device_id: item.device.device_id.clone(),
        imei: item.device.imei.clone(),
        presence,
    };
    let (store, meter) = (state.store.clone(), meter.to_string());
    let noted =
        tokio::task::spawn_blocking(move || store.note_platform_device(&meter, &device, now)).await;
    if !matches!(noted, Ok(Ok(()))) {
        tracing::warn!("could not note a platform device");
    }
}

fn record_kind(metrics: &Metrics, platform: &'static str, content: &Content) {
    let kind = match content {
        Content::Bytes(_) | Content::Fields(_) => "data",
        Content::Online(true) => "online",
        Content::Online(false) => "offline",
        Content::Other(_) => "other",
        Content::Unreadable(_) => "unreadable",
    };
    metrics.record_push(platform, kind);
}

/// Stores a push's items and answers `ok` once they are committed.
async fn take(
    state: &HttpState,
    pushes: &Pushes,
    items: Vec<Item>,
    body: &[u8],
    answer: &'static str,
) -> Response {
    let messages = match messages(state, pushes, items, body).await {
        Ok(messages) => messages,
        Err(failed) => return failed,
    };
    match commit(pushes, messages).await {
        Ok(()) => (StatusCode::OK, answer).into_response(),
        Err(failed) => failed,
    }
}

/// A push that cannot be read at all: recorded, and answered 200 so the
/// platform does not send it again.
async fn unreadable(
    pushes: &Pushes,
    platform: Platform,
    problem: String,
    body: &[u8],
    now: crate::domain::Timestamp,
) -> Response {
    tracing::warn!(platform = platform.as_str(), %problem, "a platform push could not be read");
    let message = rejection(
        platform.as_str().to_string(),
        RejectReason::BadFrame,
        problem,
        body,
        now,
    );
    match commit(pushes, vec![message]).await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(failed) => failed,
    }
}

/// A push guarded by a path token (CTWing, IoTDA): admitted, read by
/// `read`, stored.
async fn token_push(
    state: HttpState,
    platform: Platform,
    peer: SocketAddr,
    token: &str,
    body: &[u8],
    read: fn(&[u8]) -> Result<Vec<Item>, String>,
) -> Response {
    let pushes = state.pushes.clone();
    if let Err(refused) = admit(&pushes, platform, peer, Some(token)) {
        return refused.into_response();
    }
    match read(body) {
        Ok(items) => take(&state, &pushes, items, body, "ok").await,
        Err(problem) => unreadable(&pushes, platform, problem, body, state.clock.now()).await,
    }
}

async fn ctwing(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let read = |body: &[u8]| platform::ctwing(body).map(|item| vec![item]);
    token_push(state, Platform::Ctwing, peer, &token, &body, read).await
}

async fn iotda(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    token_push(state, Platform::Iotda, peer, &token, &body, platform::iotda).await
}

#[derive(serde::Deserialize)]
struct Check {
    msg: String,
    nonce: String,
    signature: String,
}

/// OneNET's URL check: the signature over `msg`, answered with `msg` itself.
async fn onenet_check(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    check: Result<Query<Check>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let token = match admit(&state.pushes, Platform::Onenet, peer, None) {
        Ok(token) => token,
        Err(refused) => return refused.into_response(),
    };
    let Ok(Query(check)) = check else {
        return error(
            StatusCode::BAD_REQUEST,
            "the URL check needs msg, nonce and signature",
        );
    };
    if onenet::signed(
        token.expose(),
        &check.nonce,
        check.msg.as_bytes(),
        &check.signature,
    ) {
        // Exactly `msg`: no quotes, no newline.
        (
            [(axum::http::header::CONTENT_TYPE, "text/plain")],
            check.msg,
        )
            .into_response()
    } else {
        tracing::warn!(%peer, "OneNET URL check refused: the signature does not match the token");
        error(
            StatusCode::FORBIDDEN,
            "the signature does not match the token",
        )
    }
}

async fn onenet_push(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let pushes = state.pushes.clone();
    let token = match admit(&pushes, Platform::Onenet, peer, None) {
        Ok(token) => token.clone(),
        Err(refused) => return refused.into_response(),
    };
    let key = pushes.config.onenet_aes_key.as_ref().map(Secret::expose);
    match onenet::open(&body, token.expose(), key) {
        Ok(items) => take(&state, &pushes, items, &body, "ok").await,
        Err(onenet::Refused::Unreadable(problem)) => {
            unreadable(&pushes, Platform::Onenet, problem, &body, state.clock.now()).await
        }
        Err(onenet::Refused::Signature(problem)) => {
            tracing::warn!(%peer, %problem, "OneNET push refused");
            let message = rejection(
                "onenet".into(),
                RejectReason::BadSignature,
                problem.clone(),
                &body,
                state.clock.now(),
            );
            let _ = commit(&pushes, vec![message]).await;
            error(StatusCode::FORBIDDEN, &problem)
        }
    }
}

/// The push endpoints' settings.
pub fn settings(
    config: &crate::config::Config,
    writer: Option<mpsc::Sender<Message>>,
) -> Arc<Pushes> {
    Arc::new(Pushes {
        config: config.platforms.clone(),
        writer,
        zone: config.registry.timezone,
        max_clock_ahead_s: config.mqtt.max_clock_ahead_s,
        noted: Arc::default(),
    })
}
