//! Households through the API: register one (`POST /api/v1/meters`), edit
//! its details, contacts and check-in phone (`PATCH …/{id}/household`),
//! replace or remove its meter, its learned routine; absences (list, end);
//! the threshold preview; who the caller is.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{body, read, refused, run, Caller, Refusals};
use crate::actions::households::{EditError, HouseholdEdit};
use crate::actions::{self, ActionError};
use crate::domain::{mask_name, MeterId};
use crate::http::{error, session, HttpState};
use crate::registry::{HouseholdFields, RowError};
use crate::store::prelude::*;
use crate::store::rules::RuleScope;

pub(super) fn routes() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(edit))
        .routes(routes!(replace))
        .routes(routes!(routine))
        .routes(routes!(end_absence))
        .routes(routes!(preview))
}

/// Who the caller is; with a dashboard session, the CSRF token to send.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn whoami(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Caller(actor): Caller,
) -> Response {
    let csrf = session::cookie(&headers)
        .and_then(|id| session::token_of(&state, &headers, id, false).ok())
        .map(|(_, csrf)| csrf)
        .unwrap_or_default();
    Json(session::whoami(&actor, &csrf)).into_response()
}

/// A person to alert.
#[derive(Deserialize, Clone, ToSchema)]
pub(super) struct ContactBody {
    name: String,
    phone: String,
}

/// One household and its meter, as a row of the installation CSV.
#[derive(Deserialize, ToSchema)]
pub(super) struct NewHouseholdBody {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    meter_id: String,
    #[schema(pattern = "\\S")]
    resident_name: String,
    /// Where the monitoring team goes.
    #[schema(pattern = "\\S")]
    address: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    timezone: String,
    #[serde(default, deserialize_with = "whole_minutes")]
    reporting_interval_min: Option<u32>,
    /// In escalation order: step 1 first; at least one.
    #[serde(default)]
    #[schema(min_items = 1)]
    contacts: Vec<ContactBody>,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    check_in_phone: String,
    #[serde(default)]
    imei: String,
    #[serde(default)]
    platform_device_id: String,
}

/// Minutes as JSON writes a whole number: `60` or `60.0` (JSON does not
/// tell them apart); anything else is refused by the field's name.
fn whole_minutes<'de, D: serde::Deserializer<'de>>(from: D) -> Result<Option<u32>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(from)? else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
            .map(|f| f as u64)
    });
    whole
        .and_then(|m| u32::try_from(m).ok())
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "reporting_interval_min {number} is not a whole number of minutes"
            ))
        })
}

/// Every problem with the fields, by field; nothing was changed.
fn problems(rows: &[RowError]) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({
            "error": "nothing was changed: every problem is listed",
            "problems": rows.iter().map(|r| serde_json::json!({
                "field": r.column, "reason": r.reason,
            })).collect::<Vec<_>>(),
        })),
    )
        .into_response()
}

/// `POST /api/v1/meters`: registers one household at the door.
#[utoipa::path(post, path = "/api/v1/meters", tag = "households", request_body = NewHouseholdBody,
    responses((status = 201, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
pub(super) async fn register(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    bytes: axum::body::Bytes,
) -> Response {
    let new: NewHouseholdBody = match body(
        &bytes,
        "{\"meter_id\", \"resident_name\", \"address\", \"contacts\": [{\"name\", \"phone\"}], …}",
    ) {
        Ok(new) => new,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(problem) = actions::require(&actor, "meters.register") {
        return refused(problem);
    }
    let fields = HouseholdFields {
        meter_id: new.meter_id,
        resident_name: new.resident_name,
        address: new.address,
        category: new.category,
        timezone: new.timezone,
        reporting_interval_min: new
            .reporting_interval_min
            .map(|m| m.to_string())
            .unwrap_or_default(),
        contacts: new
            .contacts
            .into_iter()
            .map(|c| (c.name, c.phone))
            .collect(),
        notes: new.notes,
        check_in_phone: new.check_in_phone,
        imei: new.imei,
        platform_device_id: new.platform_device_id,
    };
    let household = match fields.validate(0, &state.registry) {
        Ok(household) => household,
        Err(rows) => return problems(&rows),
    };
    let meter = household.meter.to_string();
    let now = state.clock.now().secs();
    match run(&state, move |store| {
        actions::meters::register(store, &actor, &[household], now)
    })
    .await
    {
        Ok(()) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "meter": meter, "registered_at": now })),
        )
            .into_response(),
        Err(refusal) => refusal,
    }
}

/// Changes to a household; a field left out keeps its value.
#[derive(Deserialize, ToSchema)]
struct EditBody {
    resident_name: Option<String>,
    address: Option<String>,
    category: Option<String>,
    timezone: Option<String>,
    #[serde(default, deserialize_with = "whole_minutes")]
    reporting_interval_min: Option<u32>,
    notes: Option<String>,
    /// `""` stops asking the resident first.
    check_in_phone: Option<String>,
    /// The whole list, step 1 first.
    contacts: Option<Vec<ContactBody>>,
}

/// Edits the household a meter is registered to; every problem is named by field.
#[utoipa::path(patch, path = "/api/v1/meters/{id}/household", tag = "households",
    params(("id" = String, Path, description = "The meter")), request_body = EditBody,
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn edit(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path(meter): Path<String>,
    bytes: axum::body::Bytes,
) -> Response {
    let edit: EditBody = match body(
        &bytes,
        "{\"address\": \"…\", \"contacts\": [{\"name\", \"phone\"}], \"check_in_phone\": \"…\", …}",
    ) {
        Ok(edit) => edit,
        Err(refusal) => return refusal.into_response(),
    };
    let edit = HouseholdEdit {
        resident_name: edit.resident_name,
        address: edit.address,
        category: edit.category,
        timezone: edit.timezone,
        reporting_interval_min: edit.reporting_interval_min.map(|m| m.to_string()),
        notes: edit.notes,
        check_in_phone: edit.check_in_phone,
        contacts: edit
            .contacts
            .map(|list| list.into_iter().map(|c| (c.name, c.phone)).collect()),
    };
    let (store, defaults, now) = (
        state.store.clone(),
        state.registry.clone(),
        state.clock.now().secs(),
    );
    let wanted = meter.clone();
    let done = tokio::task::spawn_blocking(move || {
        actions::households::update(&store, &actor, &wanted, &edit, &defaults, now)
    })
    .await;
    match done {
        Ok(Ok(changed)) => {
            Json(serde_json::json!({ "meter": meter, "changed": changed })).into_response()
        }
        Ok(Err(EditError::Fields(rows))) => problems(&rows),
        Ok(Err(EditError::Action(problem))) => refused(problem),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"),
    }
}

#[derive(Deserialize, ToSchema)]
struct ReplaceBody {
    /// The meter put in.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    new_meter: String,
}

/// Moves a household to a new meter; the old one's active alerts are resolved.
#[utoipa::path(post, path = "/api/v1/meters/{id}/replace", tag = "households",
    params(("id" = String, Path, description = "The meter taken out")), request_body = ReplaceBody,
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn replace(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path(old): Path<String>,
    bytes: axum::body::Bytes,
) -> Response {
    let new = match body::<ReplaceBody>(&bytes, "{\"new_meter\": \"ZS-0002\"}") {
        Ok(body) => match MeterId::parse(body.new_meter.trim()) {
            Ok(new) => new.to_string(),
            Err(problem) => {
                return error(StatusCode::BAD_REQUEST, &format!("new_meter: {problem}"))
            }
        },
        Err(refusal) => return refusal.into_response(),
    };
    let now = state.clock.now().secs();
    let (from, to) = (old.clone(), new.clone());
    match run(&state, move |store| {
        actions::meters::replace(store, &actor, &from, &to, now)
    })
    .await
    {
        Ok(()) => Json(serde_json::json!({ "meter": old, "replaced_by": new })).into_response(),
        Err(refusal) => refusal,
    }
}

/// `DELETE /api/v1/meters/{id}`: the meter's registration ends (readings kept).
#[utoipa::path(delete, path = "/api/v1/meters/{id}", tag = "households",
    params(("id" = String, Path, description = "The meter")),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
pub(super) async fn remove(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path(meter): Path<String>,
) -> Response {
    let now = state.clock.now().secs();
    let wanted = meter.clone();
    match run(&state, move |store| {
        actions::meters::remove(store, &actor, &wanted, now)
    })
    .await
    {
        Ok(()) => Json(serde_json::json!({ "meter": meter, "status": "removed" })).into_response(),
        Err(refusal) => refusal,
    }
}

/// The learned routine: how likely water is used in each local hour, when
/// the resident usually gets up and goes to bed.
#[utoipa::path(get, path = "/api/v1/meters/{id}/routine", tag = "households",
    params(("id" = String, Path, description = "The meter")),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn routine(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path(meter): Path<String>,
) -> Response {
    let wanted = meter.clone();
    let found = read(&state, &actor, "households.read", move |store| {
        Ok(store
            .meter_state(&wanted)?
            .and_then(|s| s.routine)
            .and_then(|bytes| crate::detect::Routine::decode(&bytes)))
    })
    .await;
    let routine = match found {
        Ok(Some(routine)) => routine,
        Ok(None) => {
            return Json(serde_json::json!({ "meter": meter, "learned": false })).into_response()
        }
        Err(refusal) => return refusal,
    };
    let hours = |weekend: bool| {
        (0..24)
            .map(|hour| (routine.probability(weekend, hour) * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    };
    let minutes = |pair: Option<(u16, u16)>| pair.map(|(a, b)| [a, b]);
    Json(serde_json::json!({
        "meter": meter,
        "learned": true,
        "speaks": routine.speaks(),
        "days_seen": routine.days_seen(),
        "interval_s": routine.interval_s(),
        "weekday": hours(false),
        "weekend": hours(true),
        "wake_weekday": minutes(routine.usual_wake(false)),
        "wake_weekend": minutes(routine.usual_wake(true)),
        "bed_weekday": minutes(routine.usual_bed(false)),
        "bed_weekend": minutes(routine.usual_bed(true)),
    }))
    .into_response()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AbsencesQuery {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    meter: Option<String>,
}

/// `GET /api/v1/absences`: current and coming absences (`all`: past too).
#[utoipa::path(get, path = "/api/v1/absences", tag = "absences", params(AbsencesQuery),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
pub(super) async fn absences(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Query(query): Query<AbsencesQuery>,
) -> Response {
    let now = state.clock.now().secs();
    let shows = actions::sees_personal_data(&actor);
    match read(&state, &actor, "households.read", move |store| {
        Ok(store.absences(query.all, now)?)
    })
    .await
    {
        Ok(list) => Json(
            list.into_iter()
                .filter(|a| {
                    query
                        .meter
                        .as_deref()
                        .is_none_or(|m| a.meters.split(", ").any(|x| x == m))
                })
                .map(|a| {
                    serde_json::json!({
                        "id": a.id, "meters": a.meters,
                        "resident": personal(shows, &a.resident_name, mask_name),
                        "reason": a.reason, "from": a.starts_at, "until": a.ends_at,
                        "declared_by": a.declared_by, "ended_at": a.ended_at,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(refusal) => refusal,
    }
}

/// Ends a current absence early.
#[utoipa::path(delete, path = "/api/v1/absences/{id}", tag = "absences",
    params(("id" = i64, Path, description = "The absence")),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn end_absence(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path(id): Path<i64>,
) -> Response {
    let now = state.clock.now().secs();
    match run(&state, move |store| {
        actions::absences::end(store, &actor, id, now)
    })
    .await
    {
        Ok(()) => Json(serde_json::json!({ "id": id, "ended_at": now })).into_response(),
        Err(refusal) => refusal,
    }
}

/// A name, address or phone as `shows` allows: in full or masked.
pub(super) fn personal(shows: bool, text: &str, mask: fn(&str) -> String) -> String {
    if shows {
        text.to_string()
    } else {
        mask(text)
    }
}

#[derive(Deserialize, ToSchema)]
struct PreviewBody {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    meter: Option<String>,
    settings: std::collections::BTreeMap<String, String>,
    /// How far back to replay: 30 days unless said (1 to 90).
    #[serde(default)]
    days: Option<i64>,
}

/// `POST /api/v1/thresholds/preview`: how many alerts and texts the stored
/// readings of the last days would have caused with the new values, against
/// those in force — before saving them. Nothing is stored or sent.
#[utoipa::path(post, path = "/api/v1/thresholds/preview", tag = "thresholds", request_body = PreviewBody,
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn preview(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    bytes: axum::body::Bytes,
) -> Response {
    let body: PreviewBody = match body(
        &bytes,
        "{\"category\": \"…\", \"settings\": {\"warning_window\": \"8h\"}}",
    ) {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let scope = match super::registry::scope(body.category, body.meter) {
        Ok(scope) => scope,
        Err(refusal) => return refusal.into_response(),
    };
    let mut tried = Vec::new();
    for (key, value) in &body.settings {
        match crate::policy::Setting::parse(key, value) {
            Ok(setting) => tried.push(setting),
            Err(problem) => return error(StatusCode::BAD_REQUEST, &problem),
        }
    }
    let days = body.days.unwrap_or(30).clamp(1, 90);
    let to = state.clock.now().secs();
    let from = to - days * 86_400;
    let (rules, alerts) = (state.rules.clone(), state.alerts.clone());
    let replayed = read(&state, &actor, "rules.read", move |store| {
        preview_in(store, &rules, &alerts, &scope, &tried, from, to)
    })
    .await;
    match replayed {
        Ok(mut json) => {
            json["days"] = days.into();
            Json(json).into_response()
        }
        Err(refusal) => refusal,
    }
}

fn preview_in(
    store: &crate::store::Store,
    rules: &crate::config::RulesConfig,
    alerts: &crate::config::AlertsConfig,
    scope: &RuleScope,
    tried: &[crate::policy::Setting],
    from: i64,
    to: i64,
) -> Result<serde_json::Value, ActionError> {
    use crate::alert::replay::Tally;
    use crate::alert::what_if::{what_if_each, WhatIf};
    let meters = match scope {
        RuleScope::Meter(meter) => vec![meter.clone()],
        RuleScope::Category(category) => store.active_meters(Some(category))?,
        RuleScope::Global => store.active_meters(None)?,
    };
    let settings = crate::alert::lifecycle::Settings::new(alerts, rules);
    let (mut before, mut after, mut households) = (Tally::default(), Tally::default(), 0);
    let replayed = what_if_each(store, rules, &settings, &meters, tried, from, to);
    for (meter, result) in meters.iter().zip(replayed) {
        match result? {
            WhatIf::Replayed(_, now, then) => {
                households += 1;
                before.add(&now);
                after.add(&then);
            }
            WhatIf::Unregistered => return Err(ActionError::NotRegistered(meter.clone())),
            WhatIf::Refused(problem) => return Err(ActionError::Invalid(problem)),
        }
    }
    let kinds = before.kinds(&after);
    let total = |tally: &Tally| {
        serde_json::json!({
            "alerts": tally.alert_count(),
            "contact_texts": tally.contact_texts,
            "resident_prompts": tally.resident_prompts,
            "maintenance_texts": tally.maintenance_texts,
        })
    };
    Ok(serde_json::json!({
        "households": households,
        "current": total(&before),
        "tried": total(&after),
        "by_kind": kinds.iter().map(|(kind, severity)| serde_json::json!({
            "kind": kind.as_str(), "severity": severity.as_str(),
            "current": before.alerts.get(&(*kind, *severity)).copied().unwrap_or(0),
            "tried": after.alerts.get(&(*kind, *severity)).copied().unwrap_or(0),
        })).collect::<Vec<_>>(),
    }))
}
