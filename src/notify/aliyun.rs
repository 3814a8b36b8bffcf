//! The `aliyun` provider: Alibaba Cloud SMS `SendSms` (dysmsapi 2017-05-25),
//! signed with RPC signature V1 (HMAC-SHA1). It sends the approved template
//! mapped to the text's `<kind>.<purpose>` with its values as `TemplateParam`
//! (string values only), and our idempotency key as `OutId`, which delivery
//! receipts echo.

use super::{exchange, params, sign, unreadable, SendError, SendFuture, Sent, Sms, SmsProvider};
use crate::clock::SharedClock;
use crate::config::AliyunConfig;

pub struct AliyunProvider {
    config: AliyunConfig,
    client: reqwest::Client,
    clock: SharedClock,
    /// Whether its receipts can reach us (the callback token is set).
    receipts: bool,
}

impl AliyunProvider {
    pub fn new(
        config: AliyunConfig,
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

    /// The signed query of a SendSms request for `sms`, at `timestamp`
    /// (Unix seconds), with `nonce`.
    pub fn query(&self, sms: &Sms, timestamp: i64, nonce: &str) -> Result<String, SendError> {
        let template = params::template_for("aliyun", &self.config.templates, sms)?;
        let values: serde_json::Map<String, serde_json::Value> =
            params::values(template, sms, self.config.param_max_chars)
                .into_iter()
                .map(|(variable, value)| (variable, serde_json::Value::String(value)))
                .collect();
        let template_param = serde_json::Value::Object(values).to_string();
        let time = chrono::DateTime::from_timestamp(timestamp, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let phone = phone_number(&sms.to);
        let params = [
            ("AccessKeyId", self.config.access_key_id.as_str()),
            ("Action", "SendSms"),
            ("Format", "JSON"),
            ("OutId", sms.idempotency_key.as_str()),
            ("PhoneNumbers", phone.as_str()),
            ("RegionId", self.config.region.as_str()),
            ("SignName", self.config.sign_name.as_str()),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", nonce),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", template.code.as_str()),
            ("TemplateParam", template_param.as_str()),
            ("Timestamp", time.as_str()),
            ("Version", "2017-05-25"),
        ];
        let string_to_sign = sign::aliyun_string_to_sign("GET", &params);
        let signature =
            sign::aliyun_signature(self.config.access_key_secret.expose(), &string_to_sign);
        Ok(format!(
            "Signature={}&{}",
            sign::percent_encode(&signature),
            sign::aliyun_canonical_query(&params)
        ))
    }
}

/// A mainland number as Aliyun takes it (11 digits); others as `00` + digits.
fn phone_number(e164: &str) -> String {
    match e164.strip_prefix("+86") {
        Some(national) => national.to_string(),
        None => format!("00{}", e164.trim_start_matches('+')),
    }
}

fn nonce() -> String {
    // The system's random source does not fail on the platforms we run on;
    // a fixed nonce would only make Aliyun refuse a replayed request.
    crate::domain::random_hex(16).unwrap_or_else(|| "0".repeat(32))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    biz_id: Option<String>,
}

/// What Aliyun's `Code` means for the text.
pub fn classify(code: &str, message: &str) -> SendError {
    let said = format!("Aliyun answered {code}: {message}");
    match code {
        "isv.BUSINESS_LIMIT_CONTROL" | "Throttling.User" | "Throttling" => {
            SendError::RateLimited(said)
        }
        "isv.MOBILE_NUMBER_ILLEGAL"
        | "isv.BLACK_KEY_CONTROL_LIMIT"
        | "isv.MOBILE_COUNT_OVER_LIMIT" => SendError::Permanent(said),
        "isp.RAM_PERMISSION_DENY" => SendError::Account(said),
        code if code.starts_with("isp.") || code == "ServiceUnavailable" => {
            SendError::Transient(said)
        }
        // Balance, signature, template, parameters, credentials: someone must
        // fix the account or the settings; another provider may send meanwhile.
        _ => SendError::Account(said),
    }
}

impl SmsProvider for AliyunProvider {
    fn name(&self) -> &'static str {
        "aliyun"
    }

    fn receipts(&self) -> bool {
        self.receipts
    }

    fn rate_per_second(&self) -> Option<u32> {
        Some(self.config.rate_per_second)
    }

    fn daily_cap(&self, sms: &Sms) -> Option<u32> {
        let whitelisted = self.config.whitelist.iter().any(|p| p.as_str() == sms.to);
        (!whitelisted).then_some(self.config.daily_cap)
    }

    fn send<'a>(&'a self, sms: &'a Sms) -> SendFuture<'a> {
        Box::pin(async move {
            let query = self.query(sms, self.clock.now().secs(), &nonce())?;
            let separator = if self.config.endpoint.contains('?') {
                '&'
            } else {
                '?'
            };
            let url = format!("{}{separator}{query}", self.config.endpoint);
            let (status, body) = exchange("Aliyun", self.client.get(url)).await?;
            match serde_json::from_str::<Answer>(&body) {
                Ok(answer) if answer.code == "OK" => Ok(Sent {
                    reference: answer.biz_id,
                }),
                Ok(answer) => Err(classify(&answer.code, &answer.message)),
                Err(_) => Err(unreadable("Aliyun", status, &body)),
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
            ("isv.BUSINESS_LIMIT_CONTROL", "rate_limited"),
            ("isv.MOBILE_NUMBER_ILLEGAL", "permanent"),
            ("isp.SYSTEM_ERROR", "transient"),
            ("isv.AMOUNT_NOT_ENOUGH", "account"),
            ("isv.SMS_TEMPLATE_ILLEGAL", "account"),
            ("isp.RAM_PERMISSION_DENY", "account"),
        ] {
            assert_eq!(classify(code, "").label(), what, "{code}");
        }
        assert_eq!(phone_number("+8613800138000"), "13800138000");
        assert_eq!(phone_number("+85291234567"), "0085291234567");
    }
}
