//! What the providers post back, read into replies and delivery receipts,
//! and the answers they expect. Pure: the HTTP handlers (`http::sms`) check
//! the caller and act on the result.
//!
//! A batch with one bad entry still yields the good ones; the bad ones are
//! named so the handler can log them — a provider retries a batch it was
//! refused, and an entry that cannot be read would never get better.

use serde::Deserialize;

use crate::domain::PhoneNumber;
use crate::store::outbox::Receipt;

/// A text a phone sent us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundReply {
    pub from: PhoneNumber,
    pub text: String,
}

/// What was read from a post: the entries, and a sentence for each that
/// could not be.
#[derive(Debug, PartialEq, Eq)]
pub struct Read<T> {
    pub items: Vec<T>,
    pub problems: Vec<String>,
}

/// The answer Aliyun wants for SmsUp and SmsReport pushes.
pub const ALIYUN_ANSWER: &str = r#"{"code":0,"msg":"接收成功"}"#;
/// The answer Tencent Cloud wants for its reply and status callbacks.
pub const TENCENT_ANSWER: &str = r#"{"result":0,"errmsg":"OK"}"#;

/// A JSON array of entries, or a single entry, each read by `read`.
fn entries<T>(
    body: &[u8],
    what: &str,
    read: impl Fn(serde_json::Value) -> Result<T, String>,
) -> Result<Read<T>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("the {what} is not JSON: {error}"))?;
    let list = match value {
        serde_json::Value::Array(list) => list,
        one @ serde_json::Value::Object(_) => vec![one],
        _ => return Err(format!("the {what} must be a JSON array or object")),
    };
    let mut out = Read {
        items: Vec::new(),
        problems: Vec::new(),
    };
    for (index, entry) in list.into_iter().enumerate() {
        match read(entry) {
            Ok(item) => out.items.push(item),
            Err(problem) => out
                .problems
                .push(format!("{what} entry {index}: {problem}")),
        }
    }
    Ok(out)
}

fn phone(text: &str, nation: Option<&str>) -> Result<PhoneNumber, String> {
    let full = match nation {
        Some(code) if !code.is_empty() && code != "86" && !text.starts_with('+') => {
            format!("+{code}{text}")
        }
        _ => text.to_string(),
    };
    PhoneNumber::parse(&full).map_err(|problem| problem.to_string())
}

#[derive(Deserialize)]
struct AliyunUp {
    phone_number: String,
    content: String,
}

/// Aliyun SmsUp: `[{"phone_number", "content", "send_time", "dest_code", "sequence_id"}]`.
pub fn aliyun_replies(body: &[u8]) -> Result<Read<InboundReply>, String> {
    entries(body, "Aliyun SmsUp push", |entry| {
        let up: AliyunUp = serde_json::from_value(entry).map_err(|e| e.to_string())?;
        Ok(InboundReply {
            from: phone(&up.phone_number, None)?,
            text: up.content,
        })
    })
}

#[derive(Deserialize)]
struct AliyunReport {
    success: bool,
    #[serde(default)]
    biz_id: Option<String>,
    #[serde(default)]
    out_id: Option<String>,
    #[serde(default)]
    err_code: String,
    #[serde(default)]
    err_msg: String,
}

/// Aliyun SmsReport: `[{"success", "err_code", "err_msg", "biz_id", "out_id", …}]`.
pub fn aliyun_receipts(body: &[u8]) -> Result<Read<Receipt>, String> {
    entries(body, "Aliyun SmsReport push", |entry| {
        let report: AliyunReport = serde_json::from_value(entry).map_err(|e| e.to_string())?;
        if report.biz_id.is_none() && report.out_id.is_none() {
            return Err("neither biz_id nor out_id".into());
        }
        Ok(Receipt {
            provider: "aliyun",
            reference: report.biz_id,
            key: report.out_id,
            delivered: report.success,
            detail: format!("{} {}", report.err_code, report.err_msg)
                .trim()
                .to_string(),
        })
    })
}

#[derive(Deserialize)]
struct TencentReply {
    mobile: String,
    #[serde(default)]
    nationcode: String,
    text: String,
}

/// Tencent Cloud's reply callback: `{"mobile", "nationcode", "text", "sign", "time", "extend"}`.
pub fn tencent_replies(body: &[u8]) -> Result<Read<InboundReply>, String> {
    entries(body, "Tencent Cloud reply callback", |entry| {
        let reply: TencentReply = serde_json::from_value(entry).map_err(|e| e.to_string())?;
        Ok(InboundReply {
            from: phone(&reply.mobile, Some(&reply.nationcode))?,
            text: reply.text,
        })
    })
}

#[derive(Deserialize)]
struct TencentStatus {
    sid: String,
    report_status: String,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    description: String,
}

/// Tencent Cloud's status callback: `[{"sid", "report_status", "errmsg", "description", …}]`.
pub fn tencent_receipts(body: &[u8]) -> Result<Read<Receipt>, String> {
    entries(body, "Tencent Cloud status callback", |entry| {
        let status: TencentStatus = serde_json::from_value(entry).map_err(|e| e.to_string())?;
        Ok(Receipt {
            provider: "tencent",
            reference: Some(status.sid),
            key: None,
            delivered: status.report_status.eq_ignore_ascii_case("SUCCESS"),
            detail: format!("{} {}", status.errmsg, status.description)
                .trim()
                .to_string(),
        })
    })
}

/// A form body's fields, in order, decoded.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Twilio's inbound message webhook: `From` and `Body`.
pub fn twilio_reply(fields: &[(String, String)]) -> Result<InboundReply, String> {
    let from = field(fields, "From").ok_or("no From field")?;
    Ok(InboundReply {
        from: phone(from, None)?,
        text: field(fields, "Body").unwrap_or_default().to_string(),
    })
}

/// Twilio's status callback: a receipt once the status is final (`delivered`,
/// `undelivered`, `failed`); `None` for the steps before (`queued`, `sent`, …).
pub fn twilio_receipt(fields: &[(String, String)]) -> Result<Option<Receipt>, String> {
    let sid = field(fields, "MessageSid").ok_or("no MessageSid field")?;
    let status = field(fields, "MessageStatus").ok_or("no MessageStatus field")?;
    let delivered = match status {
        "delivered" => true,
        "undelivered" | "failed" => false,
        _ => return Ok(None),
    };
    let detail = match field(fields, "ErrorCode") {
        Some(code) if !code.is_empty() => format!("{status}, error {code}"),
        _ => status.to_string(),
    };
    Ok(Some(Receipt {
        provider: "twilio",
        reference: Some(sid.to_string()),
        key: None,
        delivered,
        detail,
    }))
}

/// A TwiML answer that texts `reply` back to the sender.
pub fn twiml(reply: &str) -> String {
    let escaped = reply
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{escaped}</Message></Response>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliyun_pushes_as_documented() {
        let up = r#"[{"phone_number":"13811112222","content":"1","send_time":"2017-09-01 00:00:00","dest_code":"1234","sequence_id":1234567890},
                     {"phone_number":"1381111****","content":"2"}]"#;
        let read = aliyun_replies(up.as_bytes()).unwrap();
        assert_eq!(read.items.len(), 1);
        assert_eq!(read.items[0].from.as_str(), "+8613811112222");
        assert_eq!(read.items[0].text, "1");
        assert_eq!(read.problems.len(), 1, "{:?}", read.problems);
        let report = r#"[{"phone_number":"13811112222","send_time":"2017-01-01 00:00:00","report_time":"2017-01-01 00:00:00","success":true,"err_code":"DELIVERED","err_msg":"用户接收成功","sms_size":"1","biz_id":"12345^0","out_id":"k-1"}]"#;
        let read = aliyun_receipts(report.as_bytes()).unwrap();
        assert_eq!(
            read.items,
            vec![Receipt {
                provider: "aliyun",
                reference: Some("12345^0".into()),
                key: Some("k-1".into()),
                delivered: true,
                detail: "DELIVERED 用户接收成功".into(),
            }]
        );
        assert!(aliyun_receipts(b"not json").is_err());
    }

    #[test]
    fn tencent_callbacks_as_documented() {
        let reply = r#"{"extend":"","mobile":"13811112222","nationcode":"86","sign":"签名","text":"１","time":1457336869}"#;
        let read = tencent_replies(reply.as_bytes()).unwrap();
        assert_eq!(read.items[0].from.as_str(), "+8613811112222");
        let hk = r#"{"mobile":"91234567","nationcode":"852","text":"1"}"#;
        assert_eq!(
            tencent_replies(hk.as_bytes()).unwrap().items[0]
                .from
                .as_str(),
            "+85291234567"
        );
        let status = r#"[{"user_receive_time":"2015-10-17 08:03:04","nationcode":"86","mobile":"13811112222","report_status":"FAIL","errmsg":"MK:0001","description":"用户关机","sid":"s-9"}]"#;
        let read = tencent_receipts(status.as_bytes()).unwrap();
        assert!(!read.items[0].delivered);
        assert_eq!(read.items[0].reference.as_deref(), Some("s-9"));
        assert_eq!(read.items[0].detail, "MK:0001 用户关机");
    }

    #[test]
    fn twilio_webhooks() {
        let fields = form_fields(b"MessageSid=SM1&From=%2B8613811112222&Body=1&To=%2B15005550006");
        let reply = twilio_reply(&fields).unwrap();
        assert_eq!(
            (reply.from.as_str(), reply.text.as_str()),
            ("+8613811112222", "1")
        );
        let sent = form_fields(b"MessageSid=SM1&MessageStatus=sent");
        assert_eq!(twilio_receipt(&sent).unwrap(), None);
        let failed = form_fields(b"MessageSid=SM1&MessageStatus=undelivered&ErrorCode=30003");
        let receipt = twilio_receipt(&failed).unwrap().unwrap();
        assert!(!receipt.delivered);
        assert_eq!(receipt.detail, "undelivered, error 30003");
        assert_eq!(twiml("a<b & c"), "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>a&lt;b &amp; c</Message></Response>");
    }
}
