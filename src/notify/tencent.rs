//! The `tencent` provider: Tencent Cloud SMS `SendSms` (API 3.0, version
//! 2021-01-11), signed with TC3-HMAC-SHA256. It sends the approved template
//! mapped to the text's `<kind>.<purpose>` with its values in order as
//! `TemplateParamSet`, and our idempotency key as `SessionContext`. The answer
//! has a status per number (`SendStatusSet`): only our number's counts.

use super::{
    excerpt, exchange, params, sign, unreadable, SendError, SendFuture, Sent, Sms, SmsProvider,
};
use crate::clock::SharedClock;
use crate::config::TencentConfig;

const CONTENT_TYPE: &str = "application/json; charset=utf-8";

pub struct TencentProvider {
    config: TencentConfig,
    client: reqwest::Client,
    clock: SharedClock,
    /// Whether its receipts can reach us (the callback token is set).
    receipts: bool,
}

impl TencentProvider {
    pub fn new(
        config: TencentConfig,
        client: reqwest::Client,
        clock: SharedClock,
        receipts: bool,
    ) -> Self {
        Self {
            config,
            client,
            clock,
            receipts,
        }
    }

    /// The request body for `sms`.
    pub fn body(&self, sms: &Sms) -> Result<String, SendError> {
        let template = params::template_for("tencent", &self.config.templates, sms)?;
        let values: Vec<String> = params::values(template, sms, self.config.param_max_chars)
            .into_iter()
            .map(|(_, value)| value)
            .collect();
        Ok(serde_json::json!({
            "PhoneNumberSet": [sms.to],
            "SmsSdkAppId": self.config.sdk_app_id,
            "SignName": self.config.sign_name,
            "TemplateId": template.code,
            "TemplateParamSet": values,
            "SessionContext": sms.idempotency_key,
        })
        .to_string())
    }

    /// The `Host` the request goes to, as it is signed.
    fn host(&self) -> String {
        match reqwest::Url::parse(&self.config.endpoint) {
            Ok(url) => match (url.host_str(), url.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_string(),
                _ => String::new(),
            },
            Err(_) => String::new(),
        }
    }
}

#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(rename = "Response")]
    response: Answer,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(default)]
    error: Option<Status>,
    #[serde(default)]
    send_status_set: Vec<Status>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Status {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    serial_no: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
}

/// What Tencent's error `Code` means for the text.
pub fn classify(code: &str, message: &str) -> SendError {
    let said = format!("Tencent Cloud answered {code}: {message}");
    let number_problem = [
        "InvalidParameterValue.IncorrectPhoneNumber",
        "FailedOperation.PhoneNumberInBlacklist",
        "UnsupportedOperation.UnsupportedRegion",
        "FailedOperation.PhoneNumberParseFail",
    ];
    if code.starts_with("LimitExceeded") || code == "RequestLimitExceeded" {
        SendError::RateLimited(said)
    } else if number_problem.contains(&code) {
        SendError::Permanent(said)
    } else if code.starts_with("InternalError") || code == "ResourceUnavailable" {
        SendError::Transient(said)
    } else {
        SendError::Account(said)
    }
}

impl SmsProvider for TencentProvider {
    fn name(&self) -> &'static str {
        "tencent"
    }

    fn receipts(&self) -> bool {
        self.receipts
    }

    fn rate_per_second(&self) -> Option<u32> {
        Some(self.config.rate_per_second)
    }

    fn send<'a>(&'a self, sms: &'a Sms) -> SendFuture<'a> {
        Box::pin(async move {
            let body = self.body(sms)?;
            let timestamp = self.clock.now().secs();
            let host = self.host();
            let signed = sign::tc3_sign(&sign::Tc3Request {
                secret_id: &self.config.secret_id,
                secret_key: self.config.secret_key.expose(),
                service: "sms",
                host: &host,
                content_type: CONTENT_TYPE,
                timestamp,
                payload: body.as_bytes(),
            });
            let request = self
                .client
                .post(&self.config.endpoint)
                .header("Authorization", signed.authorization)
                .header("Content-Type", CONTENT_TYPE)
                .header("Host", host)
                .header("X-TC-Action", "SendSms")
                .header("X-TC-Version", "2021-01-11")
                .header("X-TC-Region", &self.config.region)
                .header("X-TC-Timestamp", timestamp.to_string())
                .body(body);
            let (status, text) = exchange("Tencent Cloud", request).await?;
            let answer = match serde_json::from_str::<Envelope>(&text) {
                Ok(envelope) => envelope.response,
                Err(_) => return Err(unreadable("Tencent Cloud", status, &text)),
            };
            if let Some(error) = answer.error {
                return Err(classify(&error.code, &error.message));
            }
            let ours = answer
                .send_status_set
                .iter()
                .find(|s| s.phone_number.as_deref() == Some(sms.to.as_str()))
                .or(answer.send_status_set.first());
            match ours {
                Some(status) if status.code == "Ok" => Ok(Sent {
                    reference: status.serial_no.clone(),
                }),
                Some(status) => Err(classify(&status.code, &status.message)),
                None => Err(SendError::MaybeSent(format!(
                    "Tencent Cloud's answer has no status for the number: {}",
                    excerpt(&text)
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_decide_what_happens_next() {
        for (code, what) in [
            ("LimitExceeded.PhoneNumberDailyLimit", "rate_limited"),
            ("InvalidParameterValue.IncorrectPhoneNumber", "permanent"),
            ("InternalError.Timeout", "transient"),
            ("AuthFailure.SignatureFailure", "account"),
            ("FailedOperation.InsufficientBalanceInSmsPackage", "account"),
        ] {
            assert_eq!(classify(code, "").label(), what, "{code}");
        }
    }
}
