//! Alerts through the API: the list (active, or all; one household's), one
//! alert with its history and texts, and acknowledging, resolving and
//! closing with what was found.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{default_limit, households, read, run, Caller, Refusals};
use crate::actions::{self, ActionError};
use crate::domain::{mask_phone, Disposition};
use crate::http::{error, HttpState};
use crate::store::prelude::*;

/// An alert as lists show it.
#[derive(Serialize, ToSchema)]
pub(super) struct AlertJson {
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Closed and resolved alerts too.
    #[serde(default)]
    all: bool,
    /// At most this many, newest first (up to 1000).
    #[serde(default = "default_limit")]
    #[param(minimum = 0)]
    limit: usize,
    /// One household's alerts only.
    #[serde(default)]
    meter: Option<String>,
    /// One kind only (no_usage, continuous_flow, …).
    #[serde(default)]
    kind: Option<String>,
    /// One state only (open, acknowledged, resolved, closed).
    #[serde(default)]
    state: Option<String>,
}

/// Alerts, newest first: the active ones, or all with `all=true`; filtered
/// by household, kind or state.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(ListQuery),
    responses((status = 200, body = [AlertJson]), Refusals), security(("token" = []), ("session" = [])))]
pub(super) async fn alerts(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Query(query): Query<ListQuery>,
) -> Response {
    let limit = query.limit.min(1000);
    let show = actions::sees_personal_data(&actor);
    let filter = crate::store::alerts::AlertFilter {
        all: query.all,
        meter: query.meter,
        kind: query.kind,
        state: query.state,
    };
    let listed = read(&state, &actor, "alerts.read", move |store| {
        Ok(store.find_alerts(&filter, limit)?)
    })
    .await;
    match listed {
        Ok(list) => Json(
            list.into_iter()
                .map(|a| AlertJson::shown(a, show))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(refusal) => refusal,
    }
}

/// One alert with its history (who did what, through which channel) and its texts.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "The alert")),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
pub(super) async fn alert(
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
    let show = actions::sees_personal_data(&actor);
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

/// What was found when an alert is closed.
#[derive(Deserialize, Default, ToSchema)]
pub(super) struct CloseBody {
    /// safe, away, needed_help, hospitalised, deceased, device_fault or other.
    #[schema(pattern = "^(safe|away|needed_help|hospitalised|deceased|device_fault|other)$")]
    disposition: String,
    #[serde(default)]
    note: String,
}

/// An alert's new state.
#[derive(Serialize, ToSchema)]
pub(super) struct Moved {
    id: i64,
    state: String,
}

/// Acknowledges an open alert: its escalation and reminders stop.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts",
    params(("id" = i64, Path, description = "The alert")),
    responses((status = 200, body = Moved), Refusals), security(("token" = []), ("session" = [])))]
pub(super) async fn acknowledge(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path(id): Path<i64>,
) -> Response {
    plainly(
        state,
        actor,
        id,
        "acknowledged",
        actions::alerts::acknowledge,
    )
    .await
}

/// Resolves an open or acknowledged alert.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/resolve", tag = "alerts",
    params(("id" = i64, Path, description = "The alert")),
    responses((status = 200, body = Moved), Refusals), security(("token" = []), ("session" = [])))]
pub(super) async fn resolve(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path(id): Path<i64>,
) -> Response {
    plainly(state, actor, id, "resolved", actions::alerts::resolve).await
}

/// An action on an alert that takes nothing but the alert.
async fn plainly(
    state: HttpState,
    actor: crate::domain::Actor,
    id: i64,
    to: &str,
    action: fn(&crate::store::Store, &crate::domain::Actor, i64, i64) -> Result<(), ActionError>,
) -> Response {
    let now = state.clock.now().secs();
    moved(
        id,
        to,
        run(&state, move |store| action(store, &actor, id, now)).await,
    )
}

/// Closes an alert with what was found (resolving it first if still active).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/close", tag = "alerts",
    params(("id" = i64, Path, description = "The alert")), request_body = CloseBody,
    responses((status = 200, body = Moved), Refusals), security(("token" = []), ("session" = [])))]
pub(super) async fn close(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path(id): Path<i64>,
    bytes: axum::body::Bytes,
) -> Response {
    let close: CloseBody = match super::body(&bytes, "{\"disposition\": \"safe\", \"note\": \"…\"}")
    {
        Ok(close) => close,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(disposition) = Disposition::parse(&close.disposition) else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "disposition {:?}: must be one of {}",
                close.disposition,
                Disposition::names()
            ),
        );
    };
    let now = state.clock.now().secs();
    moved(
        id,
        "closed",
        run(&state, move |store| {
            actions::alerts::close(store, &actor, id, disposition, &close.note, now)
        })
        .await,
    )
}

fn moved(id: i64, state: &str, done: Result<(), Response>) -> Response {
    match done {
        Ok(()) => Json(Moved {
            id,
            state: state.to_string(),
        })
        .into_response(),
        Err(refusal) => refusal,
    }
}
