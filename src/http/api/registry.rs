//! The registry's side of the API: meters (the list, the installation
//! check, the installation CSV, a household's consumption, what ingest
//! rejected), absences, thresholds.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::households::{self, personal};
use super::{body, read, refused, run, Caller, Refusals};
use crate::actions::{self, ActionError};
use crate::domain::{mask_address, mask_name, mask_phone};
use crate::http::{error, HttpState, Refusal};
use crate::store::prelude::*;
use crate::store::rules::RuleScope;

pub(super) fn routes() -> OpenApiRouter<HttpState> {
    let (schemas, paths, import) = routes!(import);
    OpenApiRouter::new()
        .routes(routes!(meters, households::register))
        .routes((
            schemas,
            paths,
            import.layer(axum::extract::DefaultBodyLimit::max(CSV_LIMIT)),
        ))
        .routes(routes!(meter, households::remove))
        .routes(routes!(consumption))
        .routes(routes!(rejected))
        .routes(routes!(households::absences, absence))
        .routes(routes!(thresholds, set_thresholds))
}

/// The installation CSV may be larger than other bodies: a district's households.
const CSV_LIMIT: usize = 1024 * 1024;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MetersQuery {
    /// Words that must all appear in the meter id, resident, address or category.
    #[serde(default)]
    q: String,
    /// From 1.
    #[serde(default = "first_page")]
    #[param(minimum = 1)]
    page: usize,
    /// 1 to 500; 50 unless said.
    #[serde(default = "page_size")]
    #[param(minimum = 1, maximum = 500)]
    per_page: usize,
    /// Only active meters that need an installer.
    #[serde(default)]
    #[param(inline)]
    needs: Option<Need>,
}

/// What a meter may need an installer for.
#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Need {
    /// No valid reading for as long as makes a `meter_offline` alert.
    Offline,
    /// Its newest reading says under `LOW_BATTERY_PCT` or carries the low-battery flag.
    LowBattery,
    /// Readings its counter says never arrived, or messages rejected.
    Losing,
}

/// A battery below this (percent) is low on the devices page.
const LOW_BATTERY_PCT: u8 = 20;

fn needs(
    need: Need,
    meter: &crate::store::MeterSummary,
    settings: &crate::alert::lifecycle::Settings,
    now: i64,
) -> bool {
    if meter.status != "active" {
        return false;
    }
    let flags = crate::domain::StatusFlags::from_bits(meter.last_status);
    match need {
        Need::Offline => {
            let since = meter.last_reading_ts.unwrap_or(meter.registered_at);
            now - since >= settings.offline_after_s(meter.reporting_interval_min)
        }
        Need::LowBattery => {
            meter
                .last_battery_pct
                .is_some_and(|pct| pct < LOW_BATTERY_PCT)
                || flags.contains(crate::domain::StatusFlag::LowBattery)
        }
        Need::Losing => meter.missing > 0 || meter.rejected > 0,
    }
}

fn first_page() -> usize {
    1
}

fn page_size() -> usize {
    50
}

/// Meters and their households, active first, searched and paged; each with
/// what the devices page needs (last reading, battery, readings lost).
#[utoipa::path(get, path = "/api/v1/meters", tag = "households", params(MetersQuery),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn meters(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Query(query): Query<MetersQuery>,
) -> Response {
    if query.page == 0 || !(1..=500).contains(&query.per_page) {
        return error(
            StatusCode::BAD_REQUEST,
            "page starts at 1; per_page is 1 to 500",
        );
    }
    let show = actions::sees_personal_data(&actor);
    let list = match read(&state, &actor, "households.read", |store| {
        Ok(store.list_meters()?)
    })
    .await
    {
        Ok(list) => list,
        Err(refusal) => return refusal,
    };
    let words: Vec<String> = query.q.split_whitespace().map(str::to_lowercase).collect();
    let settings = crate::alert::lifecycle::Settings::new(&state.alerts, &state.rules);
    let now = state.clock.now().secs();
    let found: Vec<_> = list
        .into_iter()
        .filter(|m| {
            query
                .needs
                .is_none_or(|need| needs(need, m, &settings, now))
        })
        .filter(|m| {
            let text = format!(
                "{} {} {} {}",
                m.meter_id, m.resident_name, m.address, m.category
            )
            .to_lowercase();
            words.iter().all(|w| text.contains(w.as_str()))
        })
        .collect();
    let total = found.len();
    let page: Vec<_> = found
        .into_iter()
        .skip((query.page - 1).saturating_mul(query.per_page))
        .take(query.per_page)
        .map(|m| {
            let flags = crate::domain::StatusFlags::from_bits(m.last_status);
            serde_json::json!({
                "meter": m.meter_id,
                "resident": personal(show, &m.resident_name, mask_name),
                "address": personal(show, &m.address, mask_address),
                "category": m.category, "status": m.status,
                "last_reading_ts": m.last_reading_ts, "last_message": m.last_message,
                "battery_pct": m.last_battery_pct,
                "flags": flags.iter().map(|f| f.name()).collect::<Vec<_>>(),
                "readings_missing": m.missing, "rejected": m.rejected,
            })
        })
        .collect();
    Json(serde_json::json!({
        "total": total, "page": query.page, "per_page": query.per_page, "meters": page,
    }))
    .into_response()
}

/// The installation check: registration, contacts (phones masked), whether
/// and when it has reported, its last values, how a platform names it.
#[utoipa::path(get, path = "/api/v1/meters/{id}", tag = "households",
    params(("id" = String, Path, description = "The meter")),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn meter(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Response {
    let wanted = id.clone();
    let found = read(&state, &actor, "households.read", move |store| {
        let details = store
            .meter_details(&wanted, 0)?
            .ok_or(ActionError::NotRegistered(wanted.clone()))?;
        Ok((details, store.platform_device(&wanted)?))
    })
    .await;
    let (details, platform) = match found {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    let show = actions::sees_personal_data(&actor);
    let registration = details.registration.map(|r| {
        serde_json::json!({
            "status": r.status, "registered_at": r.registered_at, "replaced_by": r.replaced_by,
            "resident": personal(show, &r.resident_name, mask_name),
            "address": personal(show, &r.address, mask_address),
            "category": r.category,
            "notes": personal(show, &r.notes, |_| "***".into()),
            "timezone": r.timezone, "reporting_interval_min": r.reporting_interval_min,
            "check_in_phone": r.check_in_phone.as_deref().map(|p| personal(show, p, mask_phone)),
            "contacts": r.contacts.iter().map(|(step, name, phone)| serde_json::json!({
                "step": step, "name": personal(show, name, mask_name),
                "phone": personal(show, phone, mask_phone),
            })).collect::<Vec<_>>(),
        })
    });
    let reported = details.state.map(|s| {
        serde_json::json!({
            "first_seen": s.first_seen, "last_message": s.last_message,
            "last_reading_ts": s.last_reading_ts, "last_total_l": s.last_total_l,
            "last_battery_pct": s.last_battery_pct, "readings": s.readings,
            "readings_missing": s.missing, "rejected": s.rejected,
        })
    });
    Json(serde_json::json!({
        "meter": details.meter_id,
        "registration": registration,
        "reported": reported,
        "platform": platform.map(|p| serde_json::json!({
            "platform": p.platform, "product_id": p.product_id, "device_id": p.device_id,
            "imei": p.imei, "online": p.presence.map(|(online, _)| online),
            "presence_at": p.presence.map(|(_, at)| at),
        })),
    }))
    .into_response()
}

/// The installation CSV, as the command line imports it: all or none.
#[utoipa::path(post, path = "/api/v1/meters/import", tag = "households",
    request_body(content = String, content_type = "text/csv", description = "The installation CSV (docs/registry.md)"),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn import(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    body: axum::body::Bytes,
) -> Response {
    let (store, defaults, now) = (
        state.store.clone(),
        state.registry.clone(),
        state.clock.now().secs(),
    );
    let imported = tokio::task::spawn_blocking(move || {
        actions::meters::import(&store, &actor, &body, &defaults, now)
    })
    .await;
    match imported {
        Ok(Ok(households)) => Json(serde_json::json!({ "households": households })).into_response(),
        Ok(Err(actions::meters::ImportError::Rows(rows))) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({
                "error": "nothing was imported: every problem is listed",
                "problems": rows.iter().map(|r| serde_json::json!({
                    "row": r.row, "column": r.column, "reason": r.reason,
                })).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
        Ok(Err(actions::meters::ImportError::Action(problem))) => refused(problem),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"),
    }
}

#[derive(Deserialize, ToSchema)]
struct AbsenceBody {
    /// The households' meters; or every active one of `category`.
    #[serde(default)]
    meters: Vec<String>,
    #[serde(default)]
    category: Option<String>,
    /// Why: a hospital stay, visiting family, …
    #[schema(pattern = "\\S")]
    reason: String,
    /// Unix seconds; default now.
    #[serde(default)]
    from: Option<i64>,
    until: i64,
}

/// Declares an absence for households (or every active one of a category):
/// their welfare alerts stay silent while it lasts (at most 90 days).
#[utoipa::path(post, path = "/api/v1/absences", tag = "absences", request_body = AbsenceBody,
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn absence(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    bytes: axum::body::Bytes,
) -> Response {
    let absence: AbsenceBody = match body(
        &bytes,
        "{\"meters\": [\"ZS-0001\"] or \"category\": \"…\", \"reason\": \"hospital\", \"until\": UNIX_SECONDS}",
    ) {
        Ok(absence) => absence,
        Err(refusal) => return refusal.into_response(),
    };
    let now = state.clock.now().secs();
    let declared = run(&state, move |store| {
        let mut meters = absence.meters.clone();
        if let Some(category) = &absence.category {
            meters.extend(store.active_meters(Some(category))?);
        }
        actions::absences::declare(
            store,
            &actor,
            &meters,
            &absence.reason,
            absence.from.unwrap_or(now),
            absence.until,
            now,
        )
    })
    .await;
    match declared {
        Ok(households) => Json(serde_json::json!({ "households": households })).into_response(),
        Err(refusal) => refusal,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ScopeQuery {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    meter: Option<String>,
}

/// Neither: every household; a category; one household — not both.
pub(super) fn scope(category: Option<String>, meter: Option<String>) -> Result<RuleScope, Refusal> {
    match (category, meter) {
        (None, None) => Ok(RuleScope::Global),
        (Some(category), None) => Ok(RuleScope::Category(category)),
        (None, Some(meter)) => Ok(RuleScope::Meter(meter)),
        _ => Err(Refusal(
            StatusCode::BAD_REQUEST,
            "say a category or a meter (one household), not both; neither means every household"
                .into(),
        )),
    }
}

/// The thresholds in force for every household (neither parameter), a
/// category or one household, and where each comes from.
#[utoipa::path(get, path = "/api/v1/thresholds", tag = "thresholds", params(ScopeQuery),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn thresholds(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Query(query): Query<ScopeQuery>,
) -> Response {
    let scope = match scope(query.category, query.meter) {
        Ok(scope) => scope,
        Err(refusal) => return refusal.into_response(),
    };
    let rules = state.rules.clone();
    let resolved = read(&state, &actor, "rules.read", move |store| {
        Ok(crate::thresholds::for_scope(store, &rules, &scope)?)
    })
    .await;
    match resolved {
        Ok(resolved) => Json(serde_json::json!({
            "thresholds": crate::policy::Key::ALL.iter().map(|key| serde_json::json!({
                "key": key.as_str(),
                "value": key.format(resolved.policy.get(*key)),
                "from": resolved.source(*key).to_string(),
            })).collect::<Vec<_>>(),
            "skipped": resolved.skipped,
        }))
        .into_response(),
        Err(refusal) => refusal,
    }
}

#[derive(Deserialize, ToSchema)]
struct SetBody {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    meter: Option<String>,
    settings: std::collections::BTreeMap<String, String>,
}

/// Overrides thresholds for every household (neither `category` nor
/// `meter`), a category or one household, checked as the configuration file
/// is (a global change against every category); in force at once.
#[utoipa::path(post, path = "/api/v1/thresholds", tag = "thresholds", request_body = SetBody,
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn set_thresholds(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    bytes: axum::body::Bytes,
) -> Response {
    let body: SetBody = match body(
        &bytes,
        "{\"category\": \"…\", \"settings\": {\"warning_window\": \"8h\"}}",
    ) {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let scope = match scope(body.category, body.meter) {
        Ok(scope) => scope,
        Err(refusal) => return refusal.into_response(),
    };
    let mut settings = Vec::new();
    for (key, value) in &body.settings {
        match crate::policy::Setting::parse(key, value) {
            Ok(setting) => settings.push(setting),
            Err(problem) => return error(StatusCode::BAD_REQUEST, &problem),
        }
    }
    let (rules, now) = (state.rules.clone(), state.clock.now().secs());
    let set = run(&state, move |store| {
        actions::rules::set(store, &actor, &rules, &scope, &settings, now)
    })
    .await;
    match set {
        Ok(warnings) => {
            Json(serde_json::json!({ "set": body.settings, "warnings": warnings })).into_response()
        }
        Err(refusal) => refusal,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ConsumptionQuery {
    /// `hour` (default) or `day`.
    #[serde(default)]
    #[param(inline)]
    by: Option<Bucket>,
    /// How far back: 7 days by hour, 90 by day, by default; at most 400.
    #[serde(default)]
    days: Option<i64>,
}

/// How water use is summed.
#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Bucket {
    Hour,
    Day,
}

/// A household's water use: hourly for recent days, daily for months, in
/// its own time zone; `null` where no reading says.
#[utoipa::path(get, path = "/api/v1/meters/{id}/consumption", tag = "households",
    params(("id" = String, Path, description = "The meter"), ConsumptionQuery),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn consumption(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Query(query): Query<ConsumptionQuery>,
) -> Response {
    let daily = query.by == Some(Bucket::Day);
    let days = query
        .days
        .unwrap_or(if daily { 90 } else { 7 })
        .clamp(1, 400);
    let now = state.clock.now().secs();
    let from = now - days * 86_400;
    let default_zone = state.registry.timezone;
    let meter = id.clone();
    let found = read(&state, &actor, "households.read", move |store| {
        let zone = store
            .meter_details(&meter, 0)?
            .and_then(|d| d.registration)
            .and_then(|r| r.timezone.parse().ok())
            .unwrap_or(default_zone);
        // One reading before the window, so its first bucket has a start.
        let readings = store.readings(&meter, from - 2 * 86_400, now + 1)?;
        Ok((zone, readings))
    })
    .await;
    let (zone, readings): (chrono_tz::Tz, _) = match found {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    let buckets = crate::report::consumption(&readings, from, now, daily, zone);
    Json(serde_json::json!({
        "meter": id,
        "by": if daily { "day" } else { "hour" },
        "zone": zone.name(),
        "litres": buckets.iter().map(|(start, used)| serde_json::json!({"start": start, "used": used})).collect::<Vec<_>>(),
    }))
    .into_response()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RejectedQuery {
    /// At most this many, newest first (up to 500).
    #[serde(default = "default_rejected")]
    #[param(minimum = 0)]
    limit: usize,
}

fn default_rejected() -> usize {
    50
}

/// What ingest could not use, newest first: for installers checking a meter.
#[utoipa::path(get, path = "/api/v1/ingest/rejected", tag = "devices", params(RejectedQuery),
    responses((status = 200, body = serde_json::Value), Refusals), security(("token" = []), ("session" = [])))]
async fn rejected(
    State(state): State<HttpState>,
    Caller(actor): Caller,
    Query(query): Query<RejectedQuery>,
) -> Response {
    let limit = query.limit.min(500);
    match read(&state, &actor, "meters.read", move |store| {
        Ok(store.rejected_messages(limit)?)
    })
    .await
    {
        Ok(messages) => Json(
            messages
                .into_iter()
                .map(|m| {
                    serde_json::json!({
                        "received_at": m.received_at, "topic": m.topic, "meter": m.meter_id,
                        "reason": m.reason, "detail": m.detail, "payload": m.payload,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(refusal) => refusal,
    }
}
