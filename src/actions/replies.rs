//! Replies to our texts: a contact's code acknowledges the alert it stands for,
//! the resident's reply to a check-in closes it as `safe`.
//!
//! The rules of what a reply means live here; `http` only maps a request to
//! [`handle_reply`], and the demo calls it the same way. Every answer text is
//! wholly in the configured language. The sender is the actor: a contact acts
//! as a monitor, the resident as a resident, both through the SMS channel.

use super::ActionError;
use crate::config::Language;
use crate::domain::{mask_phone, Actor, Channel, PhoneNumber, Role, Timestamp};
use crate::store::prelude::*;
use crate::store::Store;

/// The outcome of one reply.
#[derive(Debug, serde::Serialize, PartialEq, Eq)]
pub struct ReplyOutcome {
    /// `acknowledged`, `safe`, `stale`, `unknown_code` or `not_a_code`.
    pub result: &'static str,
    pub alert_id: Option<i64>,
    /// What to text back.
    pub reply: String,
}

/// Acts on a reply text from `phone`.
pub fn handle_reply(
    store: &Store,
    phone: &PhoneNumber,
    text: &str,
    language: Language,
    now: Timestamp,
) -> Result<ReplyOutcome, ActionError> {
    let zh = language == Language::Zh;
    let now = now.secs();
    let Some(code) = parse_code(text) else {
        return Ok(ReplyOutcome {
            result: "not_a_code",
            alert_id: None,
            reply: if zh {
                "未能识别您的回复。请回复短信中的数字编号（例如 1）确认预警。".into()
            } else {
                "Sorry, that is not a reply code. Reply with the number from the alert text (e.g. 1).".into()
            },
        });
    };
    let who = store
        .contact_name(phone.as_str())?
        .unwrap_or_else(|| mask_phone(phone.as_str()));
    let Some((alert_id, state)) = store.alert_for_code(phone.as_str(), code)? else {
        return Ok(ReplyOutcome {
            result: "unknown_code",
            alert_id: None,
            reply: if zh {
                format!("编号 {code} 没有对应的预警。请核对短信中的编号。")
            } else {
                format!("No alert has code {code} for this number. Please check the code in the alert text.")
            },
        });
    };
    if state != "open" {
        return Ok(stale(alert_id, &state, zh));
    }
    if store.is_check_in_phone(alert_id, phone.as_str())? {
        let resident = Actor::new(who, Role::Resident, Channel::Sms);
        match super::alerts::safe(store, &resident, alert_id, now) {
            Ok(()) => {}
            // Closed or resolved between the look-up and now (water was used,
            // a contact acted): the answer is stale, not an error.
            Err(ActionError::AlreadyDone { state, .. }) => return Ok(stale(alert_id, &state, zh)),
            Err(other) => return Err(other),
        }
        return Ok(ReplyOutcome {
            result: "safe",
            alert_id: Some(alert_id),
            reply: if zh {
                "谢谢，已记录您平安。".into()
            } else {
                "Thank you, we have noted that you are fine.".into()
            },
        });
    }
    let contact = Actor::new(who, Role::Monitor, Channel::Sms);
    match super::alerts::acknowledge(store, &contact, alert_id, now) {
        Ok(()) => {}
        // Someone else acted between the look-up and now.
        Err(ActionError::AlreadyDone { state, .. }) => return Ok(stale(alert_id, &state, zh)),
        Err(other) => return Err(other),
    }
    Ok(ReplyOutcome {
        result: "acknowledged",
        alert_id: Some(alert_id),
        reply: if zh {
            format!("已确认预警 #{alert_id}，谢谢。请处理后记录结果。")
        } else {
            format!("Alert #{alert_id} acknowledged. Thank you; please record what you found.")
        },
    })
}

/// The answer to a code whose alert someone has already acted on.
fn stale(alert_id: i64, state: &str, zh: bool) -> ReplyOutcome {
    ReplyOutcome {
        result: "stale",
        alert_id: Some(alert_id),
        reply: if zh {
            format!("预警 #{alert_id} {}，无需再次确认。", state_zh(state))
        } else {
            format!("Alert #{alert_id} is already {state}; nothing more to do.")
        },
    }
}

/// An alert state as a Chinese reply says it.
fn state_zh(state: &str) -> &'static str {
    match state {
        "acknowledged" => "已有人确认",
        "resolved" => "已解除",
        "closed" => "已结案",
        _ => "已处理",
    }
}

/// The reply code in a text, as people type it: `1`, `１` (full-width, as
/// Chinese input methods type it), `#1`, `1.`, `【1】`, ` 1 。`. Only digits,
/// with nothing but spaces and punctuation around them, are a code.
pub fn parse_code(text: &str) -> Option<i64> {
    let mut digits = String::new();
    let mut ended = false;
    for c in text.chars() {
        let digit = match c {
            '0'..='9' => Some(c),
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
            _ => None,
        };
        match digit {
            Some(d) if !ended => digits.push(d),
            Some(_) => return None, // two numbers: not one code
            None if c.is_whitespace() || is_punctuation(c) => ended |= !digits.is_empty(),
            None => return None,
        }
    }
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    digits.parse().ok()
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '。' | '，'
                | '、'
                | '！'
                | '？'
                | '；'
                | '：'
                | '＃'
                | '【'
                | '】'
                | '（'
                | '）'
                | '．'
        )
}

#[cfg(test)]
mod tests {
    use super::parse_code;

    #[test]
    fn codes_are_read_as_people_type_them() {
        for (text, code) in [
            ("1", Some(1)),
            ("１", Some(1)),
            ("１２", Some(12)),
            (" #1 ", Some(1)),
            ("1.", Some(1)),
            ("【1】", Some(1)),
            ("1。", Some(1)),
            ("\u{3000}３\u{3000}", Some(3)),
            ("好的", None),
            ("1 2", None),
            ("ok 1", None),
            ("", None),
            ("12345678901", None),
        ] {
            assert_eq!(parse_code(text), code, "{text:?}");
        }
    }
}
