//! The API's OpenAPI document, `GET /api/v1/openapi.json`: built from the
//! handlers' own annotations as the router is built (`utoipa`), so a route
//! cannot exist without its entry nor an entry without its route.

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// Every refusal: what is wrong, in words a person can act on.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, e.g. `monitor (monitor) may not meters.register`.
    pub error: String,
}

/// The refusals every endpoint may answer with, all as [`ErrorBody`].
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum Refusals {
    /// The request is malformed or its values would not hold.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No token, an unknown or revoked one, or an ended session.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller's role may not do this, or a session's CSRF token is missing.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such alert, meter or absence.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Already done (an alert already acknowledged, a meter already registered).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is larger than 64 KiB (1 MiB for the installation CSV).
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Too many failed token checks from this address in the last minute.
    #[response(status = 429)]
    TooMany(ErrorBody),
    /// The store could not answer, or the request took longer than its limit.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stillwater API",
        description = "The welfare alarm gateway's API for monitoring teams, installers and operators. Every request carries a token (`Authorization: Bearer sw_…`, made with `stillwater tokens add`) or the dashboard's session cookie; a change made with the cookie also carries `X-CSRF-Token`. Times are Unix seconds.",
    ),
    modifiers(&Security),
    components(schemas(ErrorBody)),
    tags(
        (name = "alerts", description = "Open alerts, their history and texts; acknowledge, resolve, close"),
        (name = "households", description = "Households and meters: register, edit, replace, remove, the installation check, water use, routine"),
        (name = "devices", description = "Rejected messages, unregistered meters"),
        (name = "thresholds", description = "Thresholds in force, overrides, and a replayed preview"),
        (name = "absences", description = "Declared absences: one household or a category"),
        (name = "reports", description = "The monthly report and the audit log"),
        (name = "session", description = "Who the caller is"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sw_…")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("sw_session"))),
        );
    }
}
