//! The HTTP API under `/api/v1`, for the people who act on alerts from a
//! phone or an office: every request carries a token
//! (`Authorization: Bearer sw_…`, made with `stillwater tokens add`), which
//! names its holder and role; each endpoint maps onto the same action as the
//! command line, which checks the role.
//!
//! - `GET /api/v1/alerts[?all=true&limit=N]`, `GET /api/v1/alerts/{id}` (its
//!   history and texts);
//! - `POST /api/v1/alerts/{id}/acknowledge`, `…/resolve`, `…/close`
//!   (`{"disposition": "safe", "note": "…"}`);
//! - `GET /api/v1/reports/monthly?month=2026-11[&format=csv|html]`;
//! - `GET /api/v1/audit[?since=2026-11-01&limit=N]`;
//! - `GET /api/v1/meters`, `GET /api/v1/meters/{id}` (the installation
//!   check), `POST /api/v1/meters/import` (the installation CSV, all or
//!   none, every problem by row and column), `GET /api/v1/meters/unregistered`;
//! - `POST /api/v1/absences` (`{"meters": [...], "reason", "from", "until"}`);
//! - `GET /api/v1/thresholds?category=C|meter=ID` (those in force and where
//!   each comes from), `POST /api/v1/thresholds`
//!   (`{"category"|"meter": …, "settings": {"warning_window": "8h"}}`),
//!   checked as the configuration file is and applied without a restart.
//!
//! 401 says what is wrong with the token (missing, unknown, revoked); 403
//! says which role may not do what. Failed attempts from one address are
//! limited (`FAILURES_PER_MINUTE`), bodies to 64 KiB.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

mod households;
mod registry;

use super::{bearer_token, error, session, HttpState, Refusal};
use crate::actions::{self, tokens, ActionError};
use crate::domain::{mask_phone, Actor, Disposition};
use crate::store::prelude::*;

/// Failed token checks from one address in a minute before it is refused (429).
pub const FAILURES_PER_MINUTE: u32 = 20;

const BODY_LIMIT: usize = 64 * 1024;

/// Failed token checks per address, in the current minute.
#[derive(Default)]
pub struct Failures(Mutex<HashMap<IpAddr, (Instant, u32)>>);

impl Failures {
    fn blocked(&self, ip: IpAddr) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip).is_some_and(|(since, count)| {
            since.elapsed() < Duration::from_secs(60) && *count >= FAILURES_PER_MINUTE
        })
    }

    fn failed(&self, ip: IpAddr) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/{id}", get(alert))
        .route("/api/v1/alerts/{id}/{action}", post(act))
        .route("/api/v1/reports/monthly", get(monthly))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/meters/unregistered", get(unregistered))
        .merge(registry::routes())
        .merge(households::routes())
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
}

/// Who is asking: the holder of the bearer token, or of the dashboard
/// session whose cookie the request carries (then a change must also carry
/// the session's CSRF token).
async fn who(
    state: &HttpState,
    headers: &HeaderMap,
    peer: SocketAddr,
    changes: bool,
) -> Result<Actor, Refusal> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    if let Some(token) = bearer {
        return check_token(state, peer, token).await;
    }
    if let Some(id) = session::cookie(headers) {
        let (token, _) = session::token_of(state, headers, id, changes)?;
        return check_token(state, peer, &token).await.map(session::web);
    }
    check_token(state, peer, "").await
}

/// The actor `token` names, or why not; failures from one address are counted.
pub(super) async fn check_token(
    state: &HttpState,
    peer: SocketAddr,
    token: &str,
) -> Result<Actor, Refusal> {
    if state.api_failures.blocked(peer.ip()) {
        return Err(Refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts from this address; wait a minute".into(),
        ));
    }
    let refuse = |why: &str| {
        state.api_failures.failed(peer.ip());
        Err(Refusal(StatusCode::UNAUTHORIZED, why.to_string()))
    };
    if token.is_empty() {
        return refuse(
            "missing bearer token (Authorization: Bearer sw_…; `stillwater tokens add` makes one)",
        );
    }
    let (store, token) = (state.store.clone(), token.to_string());
    match tokio::task::spawn_blocking(move || tokens::presented(&store, &token)).await {
        Ok(Ok(tokens::Presented::Valid(actor))) => Ok(actor),
        Ok(Ok(tokens::Presented::Revoked)) => refuse("this token has been revoked"),
        Ok(Ok(tokens::Presented::Unknown)) => refuse("unknown token"),
        _ => Err(Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "tokens cannot be checked now".into(),
        )),
    }
}

/// The caller, as their token names them; a request without a valid
/// token is refused before the handler runs.
pub struct Caller(Actor);

impl axum::extract::FromRequestParts<HttpState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &HttpState,
    ) -> Result<Self, Response> {
        let peer = super::peer(&parts.extensions);
        let changes = !matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        who(state, &parts.headers, peer, changes)
            .await
            .map(Caller)
            .map_err(IntoResponse::into_response)
    }
}

/// An action's refusal as HTTP.
fn refused(problem: ActionError) -> Response {
    let status = match &problem {
        ActionError::NotAllowed { .. } => StatusCode::FORBIDDEN,
        ActionError::NoSuchAlert(_) | ActionError::NotRegistered(_) => StatusCode::NOT_FOUND,
        ActionError::AlreadyDone { .. } | ActionError::AlreadyRegistered { .. } => {
            StatusCode::CONFLICT
        }
        ActionError::Invalid(_) => StatusCode::BAD_REQUEST,
        ActionError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &problem.to_string())
}

/// Runs `read` on the store after checking `actor` may do `what`.
async fn read<T: Send + 'static>(
    state: &HttpState,
    actor: &Actor,
    what: &'static str,
    read: impl FnOnce(&crate::store::Store) -> Result<T, ActionError> + Send + 'static,
) -> Result<T, Response> {
    actions::require(actor, what).map_err(refused)?;
    run(state, read).await
}

/// Runs `work` on the store away from the async threads; its refusal as HTTP.
async fn run<T: Send + 'static>(
    state: &HttpState,
    work: impl FnOnce(&crate::store::Store) -> Result<T, ActionError> + Send + 'static,
) -> Result<T, Response> {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || work(&store)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(problem)) => Err(refused(problem)),
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed",
        )),
    }
}

#[derive(Serialize)]
struct AlertJson {
    id: i64,
    meter: String,
    resident: Option<String>,
    kind: String,
    severity: String,
    state: String,
    since: i64,
    opened_at: i64,
    detail: String,
    disposition: Option<String>,
    note: Option<String>,
}

impl AlertJson {
    /// An alert as `show` allows its resident's name to be seen.
    fn shown(alert: crate::store::alerts::AlertRecord, show: bool) -> Self {
        Self {
            id: alert.id,
            meter: alert.meter_id,
            resident: alert
                .resident_name
                .map(|name| households::personal(show, &name, crate::domain::mask_name)),
            kind: alert.kind,
            severity: alert.severity,
            state: alert.state,
            since: alert.since,
            opened_at: alert.opened_at,
            detail: alert.detail,
            disposition: alert.disposition,
            note: alert.note,
        }
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
    #[serde(default = "default_limit")]
    limit: usize,
    /// One household's alerts only.
    #[serde(default)]
    meter: Option<String>,
}

fn default_limit() -> usize {
    100
}

async fn alerts(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Query(query): Query<ListQuery>,
) -> Response {
    let limit = query.limit.min(1000);
    let show = households::shows(&actor);
    let meter = query.meter.clone();
    let listed = read(&state, &actor, "alerts.read", move |store| {
        // One household's: from all of them, newest first.
        let cap = if meter.is_some() { 100_000 } else { limit };
        Ok(store.list_alerts(query.all, cap)?)
    })
    .await;
    match listed {
        Ok(list) => Json(
            list.into_iter()
                .filter(|a| query.meter.as_deref().is_none_or(|m| a.meter_id == m))
                .take(limit)
                .map(|a| AlertJson::shown(a, show))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(refusal) => refusal,
    }
}

async fn alert(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path(id): Path<i64>,
) -> Response {
    let found = read(&state, &actor, "alerts.read", move |store| {
        let alert = store.alert(id)?.ok_or(ActionError::NoSuchAlert(id))?;
        Ok((
            alert,
            store.alert_events(id)?,
            store.notifications(Some(id))?,
        ))
    })
    .await;
    let show = households::shows(&actor);
    match found {
        Ok((alert, events, texts)) => Json(serde_json::json!({
            "alert": AlertJson::shown(alert, show),
            "history": events.iter().map(|e| serde_json::json!({
                "at": e.at, "actor": e.actor, "channel": e.channel,
                "action": e.action, "detail": e.detail,
            })).collect::<Vec<_>>(),
            "texts": texts.iter().map(|t| serde_json::json!({
                "to": households::personal(show, &t.phone, mask_phone),
                "recipient": households::personal(show, &t.recipient, crate::domain::mask_name),
                "step": t.step,
                "purpose": t.purpose, "state": t.state, "attempts": t.attempts,
                "provider": t.provider, "delivery": t.delivery,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(refusal) => refusal,
    }
}

#[derive(Deserialize, Default)]
struct CloseBody {
    disposition: String,
    #[serde(default)]
    note: String,
}

async fn act(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path((id, action)): Path<(i64, String)>,
    body: axum::body::Bytes,
) -> Response {
    let now = state.clock.now().secs();
    let close = if action == "close" {
        match serde_json::from_slice::<CloseBody>(&body) {
            Ok(close) => match Disposition::parse(&close.disposition) {
                Some(disposition) => Some((disposition, close.note)),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "disposition {:?}: must be safe, away, needed_help, hospitalised, deceased, device_fault or other",
                            close.disposition
                        ),
                    )
                }
            },
            Err(problem) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("body must be {{\"disposition\": \"safe\", \"note\": \"…\"}}: {problem}"),
                )
            }
        }
    } else {
        None
    };
    let done = run(&state, move |store| match (action.as_str(), close) {
        ("acknowledge", _) => {
            actions::alerts::acknowledge(store, &actor, id, now).map(|()| "acknowledged")
        }
        ("resolve", _) => actions::alerts::resolve(store, &actor, id, now).map(|()| "resolved"),
        ("close", Some((disposition, note))) => {
            actions::alerts::close(store, &actor, id, disposition, &note, now).map(|()| "closed")
        }
        (other, _) => Err(ActionError::Invalid(format!(
            "{other:?} is not an action on alerts: acknowledge, resolve or close"
        ))),
    })
    .await;
    match done {
        Ok(state) => Json(serde_json::json!({"id": id, "state": state})).into_response(),
        Err(refusal) => refusal,
    }
}

#[derive(Deserialize)]
struct MonthQuery {
    month: String,
    #[serde(default)]
    format: Option<String>,
}

async fn monthly(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Query(query): Query<MonthQuery>,
) -> Response {
    let month = match crate::report::Month::parse(&query.month) {
        Ok(month) => month,
        Err(problem) => return error(StatusCode::BAD_REQUEST, &format!("month: {problem}")),
    };
    let zone = state.pushes.zone;
    let (from, to) = month.bounds(zone);
    let facts = read(&state, &actor, "reports.monthly", move |store| {
        Ok(store.month_facts(from, to)?)
    })
    .await;
    let report = match facts {
        Ok(facts) => crate::report::monthly(month, zone, &facts),
        Err(refusal) => return refusal,
    };
    match query.format.as_deref().unwrap_or("json") {
        "json" => Json(report).into_response(),
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::report::csv(&report),
        )
            .into_response(),
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            crate::report::html(&report, state.language),
        )
            .into_response(),
        other => error(
            StatusCode::BAD_REQUEST,
            &format!("format {other:?}: must be json, csv or html"),
        ),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    since: i64,
    #[serde(default = "default_limit")]
    limit: usize,
}

async fn audit(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Query(query): Query<AuditQuery>,
) -> Response {
    let limit = query.limit.min(1000);
    match read(&state, &actor, "audit.read", move |store| {
        Ok(store.audit_log(query.since, limit)?)
    })
    .await
    {
        Ok(entries) => Json(
            entries
                .into_iter()
                .map(|e| {
                    serde_json::json!({
                        "at": e.at, "actor": e.actor, "role": e.role, "channel": e.channel,
                        "action": e.action, "subject": e.subject, "detail": e.detail,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(refusal) => refusal,
    }
}

async fn unregistered(State(state): State<HttpState>, Caller(actor): Caller) -> Response {
    match read(&state, &actor, "meters.read", |store| {
        Ok(store.unregistered_meters()?)
    })
    .await
    {
        Ok(meters) => Json(
            meters
                .into_iter()
                .map(|m| {
                    serde_json::json!({
                        "meter": m.meter_id, "first_seen": m.first_seen,
                        "last_message": m.last_message, "readings": m.readings,
                        "former_status": m.former_status,
                        "platform": m.platform.map(|p| serde_json::json!({
                            "platform": p.platform, "product_id": p.product_id,
                            "device_id": p.device_id, "imei": p.imei,
                        })),
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(refusal) => refusal,
    }
}
