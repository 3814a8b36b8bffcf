//! The HTTP listener: `/healthz` and Prometheus `/metrics`.
//!
//! The API and dashboard of later issues join this router. Handlers read shared
//! state; they never block ingest.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
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
