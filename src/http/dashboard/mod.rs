//! The web dashboard, served by the gateway itself: one page (`/ui/`), its
//! script and style, and the chart library, all compiled into the binary —
//! nothing is fetched from elsewhere at run time. The page signs in with an
//! API token (`POST /ui/login`, see `session`) and then uses the API under
//! `/api/v1` like any client, with the session cookie and its CSRF token.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::{session, HttpState};

/// Only this origin's scripts, styles and connections; never framed.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");
const CHART: &str = include_str!("vendor/uPlot.iife.min.js");
const CHART_STYLE: &str = include_str!("vendor/uPlot.min.css");
const CHART_LICENSE: &str = include_str!("vendor/uPlot.LICENSE");

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route(
            "/ui/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/ui/vendor/uPlot.iife.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", CHART) }),
        )
        .route(
            "/ui/vendor/uPlot.min.css",
            get(|| async { asset("text/css; charset=utf-8", CHART_STYLE) }),
        )
        .route(
            "/ui/vendor/LICENSE",
            get(|| async { asset("text/plain; charset=utf-8", CHART_LICENSE) }),
        )
        .route("/ui/login", post(session::login))
        .route("/ui/logout", post(session::logout))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
