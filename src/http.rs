//! The HTTP listener: `/healthz`, Prometheus `/metrics`, and inbound SMS replies.
//!
//! The API and dashboard of later issues join this router. Handlers read shared
//! state or make one short store call; they never block ingest. This module owns
//! the JSON shapes of the HTTP interface.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::config::{Language, Secret};
use crate::domain::{mask_phone, PhoneNumber};
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub store: Store,
    /// Bearer token required by POST /sms/inbound; `None` disables it.
    pub inbound_token: Option<Secret>,
    pub language: Language,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/sms/inbound", post(inbound_sms))
        .with_state(state)
}

/// 200 while the gateway is connected to its broker, 503 otherwise.
async fn healthz(State(state): State<HttpState>) -> impl IntoResponse {
    let connected = state.metrics.mqtt_connected.load(Relaxed);
    let status = if connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if connected { "ok" } else { "degraded" },
        "mqtt_connected": connected,
        "meters_known": state.metrics.meters_known.load(Relaxed),
        "readings_accepted": state.metrics.readings_accepted.load(Relaxed),
    });
    (status, Json(body))
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// An SMS reply as an in-house gateway forwards it.
#[derive(Deserialize)]
struct InboundSms {
    from: String,
    text: String,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// POST /sms/inbound `{"from": "+86…", "text": "1"}` → `{"result", "reply", "alert_id"}`.
///
/// The text is a reply code from one of our texts. It acknowledges the open
/// alert that code stands for on that phone; from the resident's own check-in
/// phone it closes the alert as `safe`. Unknown and stale codes get a reply
/// that says so, never a wrong acknowledgement. `reply` is the text to send back.
async fn inbound_sms(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
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
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented != Some(token.expose()) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let sms: InboundSms = match serde_json::from_slice(&body) {
        Ok(sms) => sms,
        Err(problem) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("body must be {{\"from\": \"+86…\", \"text\": \"…\"}}: {problem}"),
            )
        }
    };
    let phone = match PhoneNumber::parse(&sms.from) {
        Ok(phone) => phone,
        Err(problem) => return error(StatusCode::BAD_REQUEST, &format!("`from`: {problem}")),
    };
    let store = state.store.clone();
    let language = state.language;
    let answer =
        tokio::task::spawn_blocking(move || handle_reply(&store, &phone, &sms.text, language))
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

/// The outcome of one reply.
#[derive(Debug, serde::Serialize, PartialEq, Eq)]
pub struct ReplyOutcome {
    /// `acknowledged`, `safe`, `stale`, `unknown_code` or `not_a_code`.
    pub result: &'static str,
    pub alert_id: Option<i64>,
    /// What to text back.
    pub reply: String,
}

/// Acts on a reply text from `phone`.
pub fn handle_reply(
    store: &Store,
    phone: &PhoneNumber,
    text: &str,
    language: Language,
) -> Result<ReplyOutcome, crate::store::StoreError> {
    let zh = language == Language::Zh;
    let cleaned = text
        .trim()
        .trim_start_matches('#')
        .trim_end_matches(['.', '。'])
        .trim();
    let Ok(code) = cleaned.parse::<i64>() else {
        return Ok(ReplyOutcome {
            result: "not_a_code",
            alert_id: None,
            reply: if zh {
                "未能识别您的回复。请回复短信中的数字编号（例如 1）确认预警。".into()
            } else {
                "Sorry, that is not a reply code. Reply with the number from the alert text (e.g. 1).".into()
            },
        });
    };
    let now = chrono::Utc::now().timestamp();
    let who = store
        .contact_name(phone.as_str())?
        .unwrap_or_else(|| mask_phone(phone.as_str()));
    let Some((alert_id, state)) = store.alert_for_code(phone.as_str(), code)? else {
        return Ok(ReplyOutcome {
            result: "unknown_code",
            alert_id: None,
            reply: if zh {
                format!("编号 {code} 没有对应的预警。请核对短信中的编号。")
            } else {
                format!("No alert has code {code} for this number. Please check the code in the alert text.")
            },
        });
    };
    if state != "open" {
        return Ok(stale(alert_id, &state, zh));
    }
    if store.is_check_in_phone(alert_id, phone.as_str())? {
        store.close_alert(
            alert_id,
            "safe",
            "the resident replied to the check-in",
            &who,
            "sms",
            now,
        )?;
        return Ok(ReplyOutcome {
            result: "safe",
            alert_id: Some(alert_id),
            reply: if zh {
                "谢谢，已记录您平安。".into()
            } else {
                "Thank you, we have noted that you are fine.".into()
            },
        });
    }
    match store.acknowledge_alert(alert_id, &who, "sms", now) {
        Ok(()) => {}
        // Someone else acted between the look-up and now.
        Err(crate::store::StoreError::Action(crate::store::alerts::ActionError::AlreadyDone {
            state,
            ..
        })) => return Ok(stale(alert_id, &state, zh)),
        Err(other) => return Err(other),
    }
    Ok(ReplyOutcome {
        result: "acknowledged",
        alert_id: Some(alert_id),
        reply: if zh {
            format!("已确认预警 #{alert_id}，谢谢。请处理后记录结果。")
        } else {
            format!("Alert #{alert_id} acknowledged. Thank you; please record what you found.")
        },
    })
}

/// The answer to a code whose alert someone has already acted on.
fn stale(alert_id: i64, state: &str, zh: bool) -> ReplyOutcome {
    ReplyOutcome {
        result: "stale",
        alert_id: Some(alert_id),
        reply: if zh {
            format!("预警 #{alert_id} 已处理（{state}），无需再次确认。")
        } else {
            format!("Alert #{alert_id} is already {state}; nothing more to do.")
        },
    }
}
