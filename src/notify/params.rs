//! Template parameters for the providers that send a registered template
//! (Aliyun, Tencent Cloud): which template a text uses, its values in the
//! template's order, within the providers' rules (no URLs, a length limit per
//! variable); and how many SMS segments a text costs.

use std::collections::HashMap;

use super::{SendError, Sms};
use crate::config::ProviderTemplate;
use crate::detect::Kind;

/// The template keys a provider needs so that every text can be sent:
/// each kind's alert and resolved texts, the resident's check-in, and the
/// administrators' system alert and heartbeat. Reminders use the alert's
/// template when they have none of their own.
pub fn required_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for kind in Kind::ALL {
        keys.push(format!("{}.alert", kind.as_str()));
        keys.push(format!("{}.resolved", kind.as_str()));
    }
    keys.push("no_usage.check_in".into());
    keys.push("system.alert".into());
    keys.push("system.heartbeat".into());
    keys
}

/// The texts that have no template in `section`, one problem each.
pub fn missing(section: &str, templates: &HashMap<String, ProviderTemplate>) -> Vec<String> {
    required_keys()
        .into_iter()
        .filter(|key| !templates.contains_key(key))
        .map(|key| {
            format!("{section}: no template for \"{key}\": those texts cannot be sent through this provider")
        })
        .collect()
}

/// The template for `sms`: its own, or for a reminder the alert's.
pub fn template_for<'a>(
    provider: &str,
    templates: &'a HashMap<String, ProviderTemplate>,
    sms: &Sms,
) -> Result<&'a ProviderTemplate, SendError> {
    let fallback = sms
        .template
        .strip_suffix(".reminder")
        .map(|kind| format!("{kind}.alert"));
    templates
        .get(&sms.template)
        .or_else(|| fallback.and_then(|key| templates.get(&key)))
        .ok_or_else(|| {
            SendError::Account(format!(
                "no {provider} template for \"{}\": add it under [sms.{provider}.templates]",
                sms.template
            ))
        })
}

/// The template's variables and their values from the text's values, each
/// cleaned of URLs and cut to `max_chars`.
pub fn values(template: &ProviderTemplate, sms: &Sms, max_chars: usize) -> Vec<(String, String)> {
    template
        .params
        .iter()
        .map(|(variable, placeholder)| {
            let raw = match sms.values.get(placeholder) {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (variable.clone(), clean(&raw, max_chars))
        })
        .collect()
}

/// A variable's value as the providers take it: no URLs (both refuse them),
/// at most `max_chars` characters (the last one "…" when cut).
pub fn clean(value: &str, max_chars: usize) -> String {
    let kept: Vec<&str> = value
        .split(' ')
        .filter(|word| {
            let lower = word.to_ascii_lowercase();
            !(lower.contains("://") || lower.starts_with("www."))
        })
        .collect();
    let text = kept.join(" ");
    if text.chars().count() <= max_chars {
        return text;
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The SMS segments a text takes: GSM-7 text 160 characters in one, 153 per
/// segment when longer; anything else (Chinese) 70 in one, 67 per segment.
pub fn segments(text: &str) -> u32 {
    let gsm = text
        .chars()
        .all(|c| c.is_ascii() && (c >= ' ' || c == '\n' || c == '\r'));
    let (single, part) = if gsm { (160, 153) } else { (70, 67) };
    let length = text.chars().count();
    if length <= single {
        1
    } else {
        length.div_ceil(part) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sms(template: &str) -> Sms {
        Sms {
            to: "+8613800138000".into(),
            text: String::new(),
            alert_id: 1,
            kind: "no_usage".into(),
            idempotency_key: "k".into(),
            template: template.into(),
            values: serde_json::json!({"name": "张桂芳", "hours": 12, "code": 3,
                "address": "中山市石岐区民生路12号3楼 www.example.org 后座"}),
        }
    }

    #[test]
    fn values_follow_the_template_and_its_rules() {
        let template = ProviderTemplate {
            code: "SMS_1".into(),
            params: vec![
                ("who".into(), "name".into()),
                ("hours".into(), "hours".into()),
                ("address".into(), "address".into()),
                ("code".into(), "code".into()),
            ],
        };
        let values = values(&template, &sms("no_usage.alert"), 12);
        assert_eq!(
            values,
            vec![
                ("who".to_string(), "张桂芳".to_string()),
                ("hours".to_string(), "12".to_string()),
                ("address".to_string(), "中山市石岐区民生路12…".to_string()),
                ("code".to_string(), "3".to_string()),
            ]
        );
        assert_eq!(clean("see https://x.example/a now", 35), "see now");
    }

    #[test]
    fn a_reminder_uses_the_alert_template_when_it_has_none() {
        let templates = HashMap::from([(
            "no_usage.alert".to_string(),
            ProviderTemplate {
                code: "SMS_1".into(),
                params: vec![],
            },
        )]);
        assert_eq!(
            template_for("aliyun", &templates, &sms("no_usage.reminder"))
                .unwrap()
                .code,
            "SMS_1"
        );
        let error = template_for("aliyun", &templates, &sms("leak.alert")).unwrap_err();
        assert!(
            matches!(&error, SendError::Account(m) if m.contains("\"leak.alert\"")),
            "{error}"
        );
        assert!(missing("sms.aliyun.templates", &templates)
            .iter()
            .any(|p| p.contains("\"leak.alert\"")));
        assert!(!missing("sms.aliyun.templates", &templates)
            .iter()
            .any(|p| p.contains("\"no_usage.alert\"")));
    }

    #[test]
    fn segments_count_chinese_by_seventy() {
        assert_eq!(segments("hello"), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"水".repeat(70)), 1);
        assert_eq!(segments(&"水".repeat(71)), 2);
        assert_eq!(segments(&"水".repeat(135)), 3);
    }
}
