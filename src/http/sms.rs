//! The SMS providers' callbacks: replies and delivery receipts.
//!
//! - Aliyun: `POST /sms/aliyun/{token}/reply` (SmsUp) and `/sms/aliyun/{token}/report` (SmsReport);
//! - Tencent Cloud: `POST /sms/tencent/{token}/reply` and `/sms/tencent/{token}/status`;
//! - Twilio: `POST /sms/twilio/inbound` and `/sms/twilio/status`, each checked
//!   against its `X-Twilio-Signature`.
//!
//! Aliyun and Tencent sign nothing, so their paths carry the unguessable token
//! of `STILLWATER_SMS_CALLBACK_TOKEN`; `sms.callback_allow` limits every
//! callback to the providers' addresses. A provider's callbacks exist only
//! while it is configured. Replies act through the same action as
//! `/sms/inbound`; receipts move a text to delivered or undelivered in its
//! alert's history. Each answer is the one the provider documents; a batch
//! with entries that cannot be read is still answered as taken (they are
//! logged), because the provider would only send them again.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::{error, HttpState, Refusal};
use crate::actions::replies;
use crate::config::{AddressBlock, Secret};
use crate::domain::same_secret;
use crate::notify::callbacks::{self, InboundReply, Read};
use crate::notify::sign;
use crate::store::outbox::Receipt;
use crate::store::prelude::*;

/// What the callbacks need to know of the SMS settings.
#[derive(Clone, Default)]
pub struct Callbacks {
    /// The configured providers' names.
    pub providers: Vec<&'static str>,
    pub token: Option<Secret>,
    pub allow: Vec<AddressBlock>,
    pub twilio_token: Option<Secret>,
    /// The gateway's base URL as providers reach it ("" when not set).
    pub public_url: String,
}

pub fn routes() -> Router<HttpState> {
    Router::new()
        // Aliyun: reply (SmsUp), report (SmsReport); Tencent: reply, status.
        .route("/sms/{provider}/{token}/{what}", post(unsigned_callback))
        .route("/sms/twilio/inbound", post(twilio_inbound))
        .route("/sms/twilio/status", post(twilio_status))
        .layer(axum::extract::DefaultBodyLimit::max(CALLBACK_LIMIT))
}

/// The largest callback body taken: a batch of receipts is a few kilobytes.
const CALLBACK_LIMIT: usize = 256 * 1024;

/// Whether this caller may use `provider`'s callbacks: the provider is
/// configured, the caller's address is allowed, and (for unsigned
/// callbacks) the path holds the token.
fn admit(
    callbacks: &Callbacks,
    provider: &str,
    peer: SocketAddr,
    token: Option<&str>,
) -> Result<(), Refusal> {
    if !callbacks.providers.contains(&provider) {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("{provider} is not a configured SMS provider"),
        ));
    }
    if !AddressBlock::allows(&callbacks.allow, peer.ip()) {
        tracing::warn!(%peer, provider, "SMS callback refused: address not in sms.callback_allow");
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "callbacks are not taken from this address (sms.callback_allow)".into(),
        ));
    }
    if let Some(presented) = token {
        let Some(expected) = &callbacks.token else {
            return Err(Refusal(
                StatusCode::NOT_FOUND,
                "provider callbacks are not enabled (set STILLWATER_SMS_CALLBACK_TOKEN)".into(),
            ));
        };
        if !same_secret(presented, expected.expose()) {
            tracing::warn!(%peer, provider, "SMS callback refused: wrong path token");
            return Err(Refusal(StatusCode::NOT_FOUND, "no such path".into()));
        }
    }
    Ok(())
}

fn json_answer(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Acts on each reply; `Err` when one could not be recorded (the provider
/// should send the batch again). Returns what to text back to each sender.
async fn act_on(
    state: &HttpState,
    provider: &str,
    read: Read<InboundReply>,
) -> Result<Vec<String>, Response> {
    for problem in &read.problems {
        tracing::warn!(provider, %problem, "an SMS reply could not be read; skipped");
    }
    let mut answers = Vec::new();
    for reply in read.items {
        let (store, language, now) = (state.store.clone(), state.language, state.clock.now());
        let InboundReply { from, text } = reply;
        let masked = from.masked();
        let outcome = tokio::task::spawn_blocking(move || {
            replies::handle_reply(&store, &from, &text, language, now)
        })
        .await;
        match outcome {
            Ok(Ok(outcome)) => {
                tracing::info!(provider, from = %masked, result = outcome.result, alert = ?outcome.alert_id, "SMS reply");
                answers.push(outcome.reply);
            }
            Ok(Err(problem)) => {
                tracing::error!(provider, %problem, "could not handle an SMS reply");
                return Err(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the reply could not be recorded; send it again",
                ));
            }
            Err(_) => {
                return Err(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the reply could not be handled",
                ))
            }
        }
    }
    Ok(answers)
}

/// Records each receipt; `Err` when one could not be recorded.
async fn record(
    state: &HttpState,
    provider: &'static str,
    read: Read<Receipt>,
) -> Result<(), Response> {
    for problem in &read.problems {
        tracing::warn!(provider, %problem, "a delivery receipt could not be read; skipped");
    }
    for receipt in read.items {
        state.metrics.record_receipt(provider);
        let (store, now) = (state.store.clone(), state.clock.now().secs());
        let recorded = tokio::task::spawn_blocking(move || {
            let found = store.record_receipt(&receipt, now);
            (receipt, found)
        })
        .await;
        match recorded {
            Ok((_, Ok(Some(_)))) => {}
            Ok((receipt, Ok(None))) => tracing::info!(
                provider,
                reference = ?receipt.reference,
                "a delivery receipt for a text this gateway does not know; ignored"
            ),
            Ok((_, Err(problem))) => {
                tracing::error!(provider, %problem, "could not record a delivery receipt");
                return Err(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the receipt could not be recorded; send it again",
                ));
            }
            Err(_) => {
                return Err(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the receipt could not be handled",
                ))
            }
        }
    }
    Ok(())
}

/// A body the provider sent that cannot be read at all: said in its answer,
/// with a 400 — resending it would not help, and the log says so too.
fn unreadable(provider: &str, problem: String) -> Response {
    tracing::warn!(provider, %problem, "an SMS callback could not be read");
    error(StatusCode::BAD_REQUEST, &problem)
}

/// What an unsigned callback carries, and how its body is read.
enum Unsigned {
    Replies(fn(&[u8]) -> Result<Read<InboundReply>, String>),
    Receipts(fn(&[u8]) -> Result<Read<Receipt>, String>),
}

/// `POST /sms/{provider}/{token}/{what}`: Aliyun's and Tencent's callbacks,
/// admitted, read, acted on, and answered as the provider documents.
async fn unsigned_callback(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((provider, token, what)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    use callbacks::{ALIYUN_ANSWER, TENCENT_ANSWER};
    let (provider, answer, kind) = match (provider.as_str(), what.as_str()) {
        ("aliyun", "reply") => (
            "aliyun",
            ALIYUN_ANSWER,
            Unsigned::Replies(callbacks::aliyun_replies),
        ),
        ("aliyun", "report") => (
            "aliyun",
            ALIYUN_ANSWER,
            Unsigned::Receipts(callbacks::aliyun_receipts),
        ),
        ("tencent", "reply") => (
            "tencent",
            TENCENT_ANSWER,
            Unsigned::Replies(callbacks::tencent_replies),
        ),
        ("tencent", "status") => (
            "tencent",
            TENCENT_ANSWER,
            Unsigned::Receipts(callbacks::tencent_receipts),
        ),
        _ => return error(StatusCode::NOT_FOUND, "no such path"),
    };
    if let Err(refused) = admit(&state.callbacks, provider, peer, Some(&token)) {
        return refused.into_response();
    }
    // Aliyun and Tencent send approved templates only, so the answer to a
    // reply is not texted back; the alert's history records it.
    let handled = match kind {
        Unsigned::Replies(parse) => match parse(&body) {
            Ok(read) => act_on(&state, provider, read).await.map(|_| ()),
            Err(problem) => return unreadable(provider, problem),
        },
        Unsigned::Receipts(parse) => match parse(&body) {
            Ok(read) => record(&state, provider, read).await,
            Err(problem) => return unreadable(provider, problem),
        },
    };
    match handled {
        Ok(()) => json_answer(answer),
        Err(failed) => failed,
    }
}

/// Admits a Twilio webhook: the provider is configured, the address allowed,
/// and `X-Twilio-Signature` matches the URL Twilio called and every field.
/// The form's fields.
fn twilio_fields(
    settings: &Callbacks,
    peer: SocketAddr,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, Refusal> {
    admit(settings, "twilio", peer, None)?;
    let fields = callbacks::form_fields(body);
    let Some(token) = &settings.twilio_token else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            "twilio is not a configured SMS provider".into(),
        ));
    };
    if settings.public_url.is_empty() {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "sms.public_url is not set, so Twilio's signature cannot be checked".into(),
        ));
    }
    let url = format!(
        "{}{}",
        settings.public_url,
        uri.path_and_query().map_or("", |p| p.as_str())
    );
    let presented = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if sign::twilio_signature_valid(token.expose(), &url, &fields, presented) {
        Ok(fields)
    } else {
        tracing::warn!(%url, "Twilio webhook refused: X-Twilio-Signature does not match");
        Err(Refusal(
            StatusCode::FORBIDDEN,
            "X-Twilio-Signature is missing or does not match this request".into(),
        ))
    }
}

/// A Twilio webhook's form fields, once the request is admitted and its
/// signature checked: a request that is not Twilio's never reaches a handler.
struct TwilioForm(Vec<(String, String)>);

impl axum::extract::FromRequest<HttpState> for TwilioForm {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &HttpState,
    ) -> Result<Self, Response> {
        let peer = super::peer(request.extensions());
        let (uri, headers) = (request.uri().clone(), request.headers().clone());
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        twilio_fields(&state.callbacks, peer, &uri, &headers, &body)
            .map(TwilioForm)
            .map_err(IntoResponse::into_response)
    }
}

async fn twilio_inbound(
    State(state): State<HttpState>,
    TwilioForm(fields): TwilioForm,
) -> Response {
    let reply = match callbacks::twilio_reply(&fields) {
        Ok(reply) => reply,
        Err(problem) => return unreadable("twilio", problem),
    };
    let read = Read {
        items: vec![reply],
        problems: Vec::new(),
    };
    match act_on(&state, "twilio", read).await {
        // Twilio texts the answer back to the sender.
        Ok(answers) => (
            [(header::CONTENT_TYPE, "text/xml")],
            callbacks::twiml(answers.first().map_or("", String::as_str)),
        )
            .into_response(),
        Err(failed) => failed,
    }
}

async fn twilio_status(State(state): State<HttpState>, TwilioForm(fields): TwilioForm) -> Response {
    let receipt = match callbacks::twilio_receipt(&fields) {
        Ok(receipt) => receipt,
        Err(problem) => return unreadable("twilio", problem),
    };
    let read = Read {
        items: receipt.into_iter().collect(),
        problems: Vec::new(),
    };
    match record(&state, "twilio", read).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(failed) => failed,
    }
}

/// The callbacks' settings from the SMS configuration.
pub fn settings(config: &crate::config::SmsConfig) -> Arc<Callbacks> {
    use crate::config::ProviderChoice;
    Arc::new(Callbacks {
        providers: config.providers().map(ProviderChoice::name).collect(),
        token: config.callback_token.clone(),
        allow: config.callback_allow.clone(),
        twilio_token: config.providers().find_map(|p| match p {
            ProviderChoice::Twilio(twilio) => Some(twilio.auth_token.clone()),
            _ => None,
        }),
        public_url: config.public_url.clone(),
    })
}
