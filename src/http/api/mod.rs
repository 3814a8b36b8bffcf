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

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod alerts;
mod doc;
mod households;
mod registry;

use doc::Refusals;

use super::{bearer_token, error, session, HttpState, Refusal};
use crate::actions::{self, tokens, ActionError};
use crate::domain::Actor;
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

/// The API's routes, each with its entry in the OpenAPI document.
fn api() -> OpenApiRouter<HttpState> {
    OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(routes!(alerts::alerts))
        .routes(routes!(alerts::alert))
        .routes(routes!(alerts::acknowledge))
        .routes(routes!(alerts::resolve))
        .routes(routes!(alerts::close))
        .routes(routes!(monthly))
        .routes(routes!(audit))
        .routes(routes!(unregistered))
        .routes(routes!(health))
        .routes(routes!(metrics))
        .merge(registry::routes())
        .merge(households::routes())
}

/// The gateway's health, as `/healthz` says it: 200 while it works, 503
/// (with the reason) when a part has stopped. No token needed.
#[utoipa::path(get, path = "/api/v1/health", tag = "session",
    responses((status = 200, body = serde_json::Value), (status = 503, body = serde_json::Value)))]
async fn health(state: State<HttpState>) -> Response {
    super::healthz(state).await
}

/// Prometheus metrics, as `/metrics` serves them. No token needed.
#[utoipa::path(get, path = "/api/v1/metrics", tag = "session",
    responses((status = 200, body = String, content_type = "text/plain")))]
async fn metrics(state: State<HttpState>) -> Response {
    super::metrics(state).await
}

/// The API's routes, and its OpenAPI document at `/api/v1/openapi.json`.
pub fn routes() -> Router<HttpState> {
    let (router, document) = api().split_for_parts();
    // Written once; each request gets the same bytes.
    let document = bytes::Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
    router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], document) }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(guard))
}

/// How long a request may take before it is answered 503.
pub const TIME_LIMIT: Duration = Duration::from_secs(30);

/// Answers 503 when a request takes longer than [`TIME_LIMIT`] (a store
/// read already started runs to its end; nothing half-written is kept, as
/// every change is one transaction), and makes every refusal JSON — those
/// of axum's own extractors (a malformed query or path) are plain text.
async fn guard(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = match tokio::time::timeout(TIME_LIMIT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request took longer than 30 s and was stopped; try a narrower one",
            )
        }
    };
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|kind| kind.starts_with("text/plain"));
    if !(response.status().is_client_error() && plain) {
        return response;
    }
    let status = response.status();
    let said = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    error(status, String::from_utf8_lossy(&said).trim())
}

/// The API's OpenAPI document, as `/api/v1/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
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
    // A request without a token guesses nothing: refused, not counted.
    if token.is_empty() {
        return Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "missing bearer token (Authorization: Bearer sw_…; `stillwater tokens add` makes one)"
                .into(),
        ));
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
        ActionError::NoSuchAlert(_)
        | ActionError::NoSuchAbsence(_)
        | ActionError::NotRegistered(_)
        | ActionError::Store(crate::store::StoreError::NotRegistered(_)) => StatusCode::NOT_FOUND,
        ActionError::AlreadyDone { .. } | ActionError::AlreadyRegistered { .. } => {
            StatusCode::CONFLICT
        }
        ActionError::Invalid(_) => StatusCode::BAD_REQUEST,
        ActionError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &problem.to_string())
}

/// A JSON body as `T`, or a 400 showing its `shape` and what is wrong.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8], shape: &str) -> Result<T, Refusal> {
    serde_json::from_slice(bytes).map_err(|problem| {
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("body must be {shape}: {problem}"),
        )
    })
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

pub(super) fn default_limit() -> usize {
    100
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MonthQuery {
    /// YYYY-MM, in the gateway's time zone.
    #[param(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    month: String,
    /// json (default), csv or html (a printable page).
    #[serde(default)]
    #[param(inline)]
    format: Option<Format>,
}

/// The month's report for the civil-affairs bureau: coverage, alerts by
/// kind and severity, time to acknowledge, dispositions, device faults, texts.
#[utoipa::path(get, path = "/api/v1/reports/monthly", tag = "reports", params(MonthQuery),
    responses((status = 200, content(
        (serde_json::Value = "application/json"), (String = "text/csv"), (String = "text/html"))), Refusals), security(("token" = []), ("session" = [])))]
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
    match query.format.unwrap_or(Format::Json) {
        Format::Json => Json(report).into_response(),
        Format::Csv => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::report::csv(&report),
        )
            .into_response(),
        Format::Html => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            crate::report::html(&report, state.language),
        )
            .into_response(),
    }
}

/// How the monthly report is written.
#[derive(Deserialize, utoipa::ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Format {
    Json,
    Csv,
    Html,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// From this time on (Unix seconds).
    #[serde(default)]
    since: i64,
    /// At most this many, newest first (up to 1000).
    #[serde(default = "default_limit")]
    #[param(minimum = 0)]
    limit: usize,
}

/// Every change, newest first: who, when, through which channel, what, old → new.
#[utoipa::path(get, path = "/api/v1/audit", tag = "reports", params(AuditQuery),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
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

/// Meters that publish but are not (or no longer) registered.
#[utoipa::path(get, path = "/api/v1/meters/unregistered", tag = "devices",
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
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
