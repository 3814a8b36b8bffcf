//! The dashboard's sessions. A person signs in once with their API token
//! (`POST /ui/login`); the browser then holds only a random session id in an
//! `HttpOnly`, `SameSite=Strict` cookie, and every state-changing request
//! must also carry the session's CSRF token in `X-CSRF-Token` (a page of
//! another site can neither read it nor set the header). Sessions live in
//! memory: a restart signs everyone out. They end after `SESSION_S` of
//! inactivity, on sign-out, or when their token is revoked (checked on
//! every request).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{error, HttpState, Refusal};
use crate::domain::{random_hex, same_secret, Actor, Channel};

/// Idle time after which a session ends (seconds).
pub const SESSION_S: i64 = 12 * 3600;

/// The cookie's name.
pub const COOKIE: &str = "sw_session";

/// The header a state-changing request made with the cookie must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// One signed-in browser.
#[derive(Clone)]
struct Session {
    /// The token it signed in with, checked again on every request.
    token: String,
    csrf: String,
    last_seen: i64,
}

/// The sessions by id.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn open(&self, token: String, now: i64) -> Option<(String, String)> {
        let (id, csrf) = (random_hex(32)?, random_hex(32)?);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| now - s.last_seen < SESSION_S);
        map.insert(
            id.clone(),
            Session {
                token,
                csrf: csrf.clone(),
                last_seen: now,
            },
        );
        Some((id, csrf))
    }

    /// The session `id` names, touched; `None` when unknown or expired.
    fn find(&self, id: &str, now: i64) -> Option<Session> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let session = map.get_mut(id)?;
        if now - session.last_seen >= SESSION_S {
            map.remove(id);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    fn close(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// The session id in a request's cookies.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// How a request with a session cookie is answered: the token it stands
/// for, or why not. `changes` is whether the request changes anything (then
/// the CSRF header must match).
pub fn token_of(
    state: &HttpState,
    headers: &HeaderMap,
    id: &str,
    changes: bool,
) -> Result<(String, String), Refusal> {
    let now = state.clock.now().secs();
    let Some(session) = state.sessions.find(id, now) else {
        return Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "the session has ended; sign in again".into(),
        ));
    };
    if changes {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same_secret(sent, &session.csrf) {
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token: a change made with the session cookie must carry the session's CSRF token".into(),
            ));
        }
    }
    Ok((session.token, session.csrf))
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /ui/login` (`{"token": "sw_…"}`): a session for the token's holder.
pub async fn login(
    State(state): State<HttpState>,
    connect: axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(Login { token }) = serde_json::from_slice(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "body must be {\"token\": \"sw_…\"}",
        );
    };
    let actor = match super::api::check_token(&state, connect.0, token.trim()).await {
        Ok(actor) => actor,
        Err(refusal) => return refusal.into_response(),
    };
    let now = state.clock.now().secs();
    let Some((id, csrf)) = state.sessions.open(token.trim().to_string(), now) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no randomness for a session id",
        );
    };
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_S}{secure}");
    let mut response = Json(whoami(&actor, &csrf)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /ui/logout`: ends the session (a live one only with its CSRF
/// token, so another site cannot sign anyone out), clears the cookie.
pub async fn logout(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers) {
        match token_of(&state, &headers, id, true) {
            Ok(_) => state.sessions.close(id),
            Err(Refusal(StatusCode::UNAUTHORIZED, _)) => {} // already ended
            Err(refusal) => return refusal.into_response(),
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sw_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

/// Who a session is, for the page: name, role, the CSRF token to send.
pub fn whoami(actor: &Actor, csrf: &str) -> serde_json::Value {
    serde_json::json!({
        "name": actor.name,
        "role": actor.role.as_str(),
        "csrf": csrf,
        "sees_personal_data": crate::actions::sees_personal_data(actor),
    })
}

/// The actor a token names, as the web dashboard acts.
pub fn web(actor: Actor) -> Actor {
    Actor {
        channel: Channel::Web,
        ..actor
    }
}
