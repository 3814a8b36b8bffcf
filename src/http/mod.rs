//! The HTTP listener (HTTPS with `tls` when configured): `/healthz`,
//! Prometheus `/metrics`, inbound SMS replies, the SMS providers' callbacks
//! (`sms`), the carrier IoT platforms' pushes of meter readings
//! (`platforms`), the API for people (`api`, with its OpenAPI document) and
//! the web dashboard that uses it (`dashboard`, signed in through `session`).
//!
//! Handlers read shared state or make one short store call away from the
//! async threads; they never block ingest. This module owns the JSON shapes
//! of the HTTP interface.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

mod api;
mod dashboard;
mod platforms;
mod session;
mod sms;
mod tls;

pub use api::{openapi, Failures as ApiFailures, FAILURES_PER_MINUTE as API_FAILURES_PER_MINUTE};

pub use platforms::{settings as push_settings, Pushes};
pub use session::Sessions;
pub use sms::{settings as callback_settings, Callbacks};
pub use tls::TlsListener;

use crate::actions::replies;
use crate::clock::SharedClock;
use crate::config::{Language, Secret};
use crate::domain::PhoneNumber;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub store: Store,
    /// Bearer token required by POST /sms/inbound; `None` disables it.
    pub inbound_token: Option<Secret>,
    pub language: Language,
    pub clock: SharedClock,
    /// The SMS providers' callbacks.
    pub callbacks: Arc<Callbacks>,
    /// The carrier IoT platforms' pushes.
    pub pushes: Arc<Pushes>,
    /// Failed API token checks per address.
    pub api_failures: Arc<ApiFailures>,
    /// Household defaults for imports through the API.
    pub registry: crate::config::RegistryDefaults,
    /// The thresholds of the configuration file (stored overrides win).
    pub rules: crate::config::RulesConfig,
    /// Escalation and reminders, for the threshold preview's replay.
    pub alerts: crate::config::AlertsConfig,
    /// The dashboard's signed-in browsers.
    pub sessions: Arc<session::Sessions>,
    /// The listener speaks HTTPS: the session cookie is marked `Secure`.
    pub secure_cookies: bool,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/sms/inbound",
            post(inbound_sms).layer(axum::extract::DefaultBodyLimit::max(INBOUND_LIMIT)),
        )
        .merge(sms::routes())
        .merge(platforms::routes())
        .merge(api::routes())
        .merge(dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Every error is JSON, including those for paths and methods we do not serve.
async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such path")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "this path does not take that method",
    )
}

/// 200 while MQTT is up (the embedded server listens, or the broker is
/// connected and subscribed), every part runs and the database takes writes;
/// 503 otherwise (with the reason when a part has stopped). The open system
/// alerts are listed either way.
pub(crate) async fn healthz(State(state): State<HttpState>) -> Response {
    let connected = state.metrics.mqtt_connected.load(Relaxed);
    let failure = state.metrics.failure().or_else(|| {
        let system = state.metrics.system_alerts();
        system
            .iter()
            .any(|alert| alert == "store_unwritable")
            .then(|| "the database cannot be written".to_string())
    });
    let status = if connected && failure.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": match (&failure, connected) {
            (Some(_), _) => "failed",
            (None, true) => "ok",
            (None, false) => "degraded",
        },
        "failure": failure,
        "mqtt_connected": connected,
        "meters_known": state.metrics.meters_known.load(Relaxed),
        "readings_accepted": state.metrics.readings_accepted.load(Relaxed),
        "system_alerts": state.metrics.system_alerts(),
    });
    (status, Json(body)).into_response()
}

pub(crate) async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// An SMS reply as an in-house gateway forwards it.
#[derive(Deserialize)]
struct InboundSms {
    from: String,
    text: String,
}

/// An inbound SMS body: the sender's number and the text, or what is wrong
/// with it in a sentence.
pub fn parse_inbound(body: &[u8]) -> Result<(PhoneNumber, String), String> {
    let sms: InboundSms = serde_json::from_slice(body).map_err(|problem| {
        format!("body must be {{\"from\": \"+86…\", \"text\": \"…\"}}: {problem}")
    })?;
    let phone = PhoneNumber::parse(&sms.from).map_err(|problem| format!("`from`: {problem}"))?;
    Ok((phone, sms.text))
}

/// The token of an `Authorization: Bearer …` header; the scheme's name is
/// case-insensitive (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The address a request came from (the listener records it); loopback for
/// a router served without it.
fn peer(extensions: &axum::http::Extensions) -> std::net::SocketAddr {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), |info| {
            info.0
        })
}

/// Why a caller was turned away: small, so checks can return it.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The largest inbound SMS body taken: a reply is a few hundred bytes.
const INBOUND_LIMIT: usize = 16 * 1024;

/// POST /sms/inbound `{"from": "+86…", "text": "1"}` → `{"result", "reply", "alert_id"}`.
///
/// The text is a reply code from one of our texts. It acknowledges the open
/// alert that code stands for on that phone; from the resident's own check-in
/// phone it closes the alert as `safe`. Unknown and stale codes get a reply
/// that says so, never a wrong acknowledgement. `reply` is the text to send back.
async fn inbound_sms(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    let Some(token) = &state.inbound_token else {
        return error(
            StatusCode::NOT_FOUND,
            "inbound SMS is not enabled (set STILLWATER_SMS_INBOUND_TOKEN)",
        );
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    if !presented.is_some_and(|presented| crate::domain::same_secret(presented, token.expose())) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let body = match body {
        Ok(body) => body,
        // Too large (over INBOUND_LIMIT) or unreadable: said in JSON too.
        Err(rejection) => return error(rejection.status(), &rejection.body_text()),
    };
    let (phone, text) = match parse_inbound(&body) {
        Ok(sms) => sms,
        Err(problem) => return error(StatusCode::BAD_REQUEST, &problem),
    };
    let store = state.store.clone();
    let language = state.language;
    let now = state.clock.now();
    let answer = tokio::task::spawn_blocking(move || {
        replies::handle_reply(&store, &phone, &text, language, now)
    })
    .await;
    match answer {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(problem)) => {
            tracing::error!(%problem, "could not handle an SMS reply");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the reply could not be recorded; ask the sender to try again",
            )
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the reply could not be handled",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
