//! A client for the HTTP API, with a bearer token; tokens made as
//! `stillwater tokens add` makes them.

use stillwater::actions::tokens;
use stillwater::app::Gateway;
use stillwater::domain::{Actor, Channel, Role};

pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(gateway: &Gateway) -> Self {
        Self {
            base: format!("http://{}", gateway.http_addr),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        self.call("GET", path, token, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// Any method, with or without a token and a JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }
}

/// A new token for `name` in `role`.
pub fn token(gateway: &Gateway, name: &str, role: Role) -> String {
    let admin = Actor::new("cli", Role::Admin, Channel::Cli);
    tokens::add(&gateway.store, &admin, name, role, 0)
        .unwrap()
        .1
}

/// A gateway with the sample household (`home::register_household`)
/// registered, its database in `dir`, and a client for its API.
pub async fn with_household(dir: &std::path::Path) -> (Gateway, Client) {
    let config = super::test_config(dir);
    super::home::register_household(&config);
    let gateway = super::start_gateway(&config).await;
    let client = Client::new(&gateway);
    (gateway, client)
}

/// An SMS gateway that takes every text, set as `config`'s provider.
pub async fn sms_sink(config: &mut stillwater::config::Config) -> wiremock::MockServer {
    let sms = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&sms)
        .await;
    config.sms.provider = stillwater::config::ProviderChoice::Webhook {
        url: format!("{}/sms", sms.uri()),
        token: None,
    };
    sms
}
