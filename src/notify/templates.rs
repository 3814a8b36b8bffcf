//! SMS texts: built-in templates in Simplified Chinese and English, overridable
//! per alert kind and language in `[sms.templates]`.
//!
//! A text says who, where, what, since when, and how to acknowledge. Pure: the
//! caller supplies every value, times already in the household's zone.

use std::collections::HashMap;

use crate::config::Language;
use crate::detect::Kind;

/// The values a template may use, as `{name}` placeholders; stored beside
/// each text (JSON) so template-based providers can send them as parameters.
pub use crate::domain::TemplateValues as Values;

/// What a text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Alert,
    /// The resident's own check-in question.
    CheckIn,
    /// Water use resumed / the condition cleared by itself.
    Resolved,
}

impl Purpose {
    /// The name stored in the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Alert => "alert",
            Purpose::CheckIn => "check_in",
            Purpose::Resolved => "resolved",
        }
    }
}

/// The template key stored beside a text: `<kind>.<purpose>`.
pub fn template_key(kind: Kind, purpose: &str) -> String {
    format!("{}.{purpose}", kind.as_str())
}

fn builtin(kind: Kind, language: Language) -> &'static str {
    match (kind, language) {
        (Kind::NoUsage, Language::Zh) => "【水表关爱】{name}（{address}）家自 {since} 起 {hours} 小时未用水{usual}，请尽快联系或上门查看。回复 {code} 确认。",
        (Kind::NoUsage, Language::En) => "[Stillwater] {name} ({address}) has used no water for {hours} h, since {since}{usual}. Please call or visit. Reply {code} to acknowledge.",
        (Kind::ContinuousFlow, Language::Zh) => "【水表关爱】{name}（{address}）家自 {since} 起持续用水 {hours} 小时（{litres} 升），可能忘关水龙头或有人摔倒，请尽快联系或上门查看。回复 {code} 确认。",
        (Kind::ContinuousFlow, Language::En) => "[Stillwater] Water has run continuously at {name}'s ({address}) for {hours} h since {since} ({litres} L): a tap left open or a fall? Please call or visit. Reply {code} to acknowledge.",
        (Kind::HighUsage, Language::Zh) => "【水表关爱】{name}（{address}）家 24 小时用水 {litres} 升，远超平常，可能爆管或异常，请尽快联系查看。回复 {code} 确认。",
        (Kind::HighUsage, Language::En) => "[Stillwater] {name} ({address}) used {litres} L in 24 h, far above normal: a burst pipe? Please check. Reply {code} to acknowledge.",
        (Kind::Leak, Language::Zh) => "【水表维护】{name}（{address}）家自 {since} 起每小时都有用水（{litres} 升），疑似漏水，请安排检修。回复 {code} 确认。",
        (Kind::Leak, Language::En) => "[Stillwater maintenance] Water used every hour since {since} at {name}'s ({address}), {litres} L: probably a leak. Reply {code} to acknowledge.",
        (Kind::MeterOffline, Language::Zh) => "【水表维护】水表 {meter}（{name}，{address}）自 {since} 起无读数，请检查设备。回复 {code} 确认。",
        (Kind::MeterOffline, Language::En) => "[Stillwater maintenance] Meter {meter} ({name}, {address}) has sent no reading since {since}. Please check it. Reply {code} to acknowledge.",
        (Kind::DeviceFault, Language::Zh) => "【水表维护】水表 {meter}（{name}，{address}）报告故障：{flags}，请安排检修。回复 {code} 确认。",
        (Kind::DeviceFault, Language::En) => "[Stillwater maintenance] Meter {meter} ({name}, {address}) reports {flags}. Please repair it. Reply {code} to acknowledge.",
        (Kind::ReadingsLost, Language::Zh) => "【水表维护】水表 {meter}（{name}，{address}）近 24 小时只收到 {flags} 条应有读数，请检查信号或通信模块。回复 {code} 确认。",
        (Kind::ReadingsLost, Language::En) => "[Stillwater maintenance] Meter {meter} ({name}, {address}): only {flags} of its readings arrived in the last 24 h. Please check its signal or modem. Reply {code} to acknowledge.",
    }
}

fn check_in(language: Language) -> &'static str {
    match language {
        Language::Zh => "【水表关爱】{name}您好，您家 {hours} 小时未用水。如一切安好，请回复 {code}。",
        Language::En => "[Stillwater] Hello {name}, no water has been used at home for {hours} h. If you are fine, please reply {code}.",
    }
}

fn resolved(kind: Kind, language: Language) -> &'static str {
    match (kind, language) {
        (Kind::NoUsage, Language::Zh) => "【水表关爱】{name}（{address}）家已恢复用水，预警解除。",
        (Kind::NoUsage, Language::En) => {
            "[Stillwater] Water use has resumed at {name}'s ({address}); the alert is resolved."
        }
        (_, Language::Zh) => "【水表关爱】{name}（{address}）家的异常已消除，预警解除。",
        (_, Language::En) => {
            "[Stillwater] The condition at {name}'s ({address}) has cleared; the alert is resolved."
        }
    }
}

/// Renders the text for `kind` and `purpose`, using an override from
/// `overrides` (`"<kind>.<language>"`) for alert texts when there is one.
pub fn render(
    kind: Kind,
    purpose: Purpose,
    language: Language,
    overrides: &HashMap<String, String>,
    values: &Values,
) -> String {
    let template = match purpose {
        Purpose::Alert => overrides
            .get(&format!("{}.{}", kind.as_str(), language.as_str()))
            .map(String::as_str)
            .unwrap_or_else(|| builtin(kind, language)),
        Purpose::CheckIn => check_in(language),
        Purpose::Resolved => resolved(kind, language),
    };
    fill(template, values)
}

/// A system alert to the administrators: `{flags}` says what is wrong.
pub fn system_alert(language: Language, values: &Values) -> String {
    fill(
        match language {
            Language::Zh => "【水表关爱·系统】{flags}。回复 {code} 确认。",
            Language::En => "[Stillwater system] {flags}. Reply {code} to acknowledge.",
        },
        values,
    )
}

/// A system alert that cannot be acknowledged by reply (the database that
/// would record the reply cannot be written).
pub fn system_notice(language: Language, values: &Values) -> String {
    fill(
        match language {
            Language::Zh => "【水表关爱·系统】{flags}。",
            Language::En => "[Stillwater system] {flags}.",
        },
        values,
    )
}

/// The daily heartbeat through one provider (`{meter}` names it).
pub fn heartbeat(language: Language, values: &Values) -> String {
    fill(
        match language {
            Language::Zh => "【水表关爱·系统】每日自检：经 {meter} 的短信通道正常，预警服务运行中。",
            Language::En => "[Stillwater system] Daily check: texts through {meter} work and the alarm is running.",
        },
        values,
    )
}

/// A reminder: the original text, marked as the n-th reminder.
pub fn reminder(n: u32, language: Language, original: &str) -> String {
    match language {
        Language::Zh => format!("（第{n}次提醒）{original}"),
        Language::En => format!("(Reminder {n}) {original}"),
    }
}

fn fill(template: &str, values: &Values) -> String {
    let mut text = template.to_string();
    for name in Values::PLACEHOLDERS {
        let placeholder = format!("{{{name}}}");
        if text.contains(&placeholder) {
            text = text.replace(&placeholder, &values.get(name).unwrap_or_default());
        }
    }
    text
}

/// Why the household's routine found the quiet abnormal, as the `{usual}`
/// phrase: "; usually uses water by 07:40" / "（平时 07:40 前会用水）".
pub fn habit_phrase(habit: Option<crate::detect::Habit>, language: Language) -> String {
    use crate::detect::Habit;
    match (habit, language) {
        (None, _) => String::new(),
        (Some(Habit::NotUpYet { usual_by_min }), Language::En) => format!(
            "; usually uses water by {:02}:{:02}",
            usual_by_min / 60,
            usual_by_min % 60
        ),
        (Some(Habit::NotUpYet { usual_by_min }), Language::Zh) => format!(
            "（平时 {:02}:{:02} 前会用水）",
            usual_by_min / 60,
            usual_by_min % 60
        ),
        (Some(Habit::Rare { once_in_days }), Language::En) => {
            format!("; this home is this quiet about once in {once_in_days} days")
        }
        (Some(Habit::Rare { once_in_days }), Language::Zh) => {
            format!("（此家约 {once_in_days} 天才有一次这样久不用水）")
        }
    }
}

/// A time as texts show it in the household's zone: "11月23日 06:40" or "23 Nov 06:40".
pub fn format_since(ts: i64, zone: chrono_tz::Tz, language: Language) -> String {
    use chrono::TimeZone;
    let Some(local) = zone.timestamp_opt(ts, 0).single() else {
        return ts.to_string();
    };
    match language {
        Language::Zh => local.format("%-m月%-d日 %H:%M").to_string(),
        Language::En => local.format("%-d %b %H:%M").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            name: "张桂芳".into(),
            address: "中山市石岐区民生路12号3楼".into(),
            meter: "ZS-0001".into(),
            since: format_since(1_795_387_200, chrono_tz::Asia::Shanghai, Language::Zh),
            hours: 12,
            litres: 0,
            flags: String::new(),
            usual: String::new(),
            code: 1,
            reminder: 0,
        }
    }

    #[test]
    fn a_learned_alert_says_why_in_the_text() {
        let habit = Some(crate::detect::Habit::NotUpYet { usual_by_min: 460 });
        let mut values = values();
        values.usual = habit_phrase(habit, Language::Zh);
        let zh = render(
            Kind::NoUsage,
            Purpose::Alert,
            Language::Zh,
            &HashMap::new(),
            &values,
        );
        assert!(
            zh.contains("12 小时未用水（平时 07:40 前会用水），请"),
            "{zh}"
        );
        values.usual = habit_phrase(
            Some(crate::detect::Habit::Rare { once_in_days: 60 }),
            Language::En,
        );
        let en = render(
            Kind::NoUsage,
            Purpose::Alert,
            Language::En,
            &HashMap::new(),
            &values,
        );
        assert!(
            en.contains(
                "since 11月23日 06:40; this home is this quiet about once in 60 days. Please"
            ),
            "{en}"
        );
    }

    #[test]
    fn the_product_example_is_the_default_no_usage_text() {
        let text = render(
            Kind::NoUsage,
            Purpose::Alert,
            Language::Zh,
            &HashMap::new(),
            &values(),
        );
        assert_eq!(
            text,
            "【水表关爱】张桂芳（中山市石岐区民生路12号3楼）家自 11月23日 06:40 起 12 小时未用水，请尽快联系或上门查看。回复 1 确认。"
        );
    }

    #[test]
    fn every_kind_has_a_text_in_both_languages_that_says_how_to_acknowledge() {
        for &kind in Kind::ALL {
            for language in [Language::Zh, Language::En] {
                let text = render(kind, Purpose::Alert, language, &HashMap::new(), &values());
                assert!(!text.contains('{'), "{text}");
                assert!(text.contains("1"), "{kind:?} {language:?}: {text}");
                assert!(text.contains("张桂芳"), "{text}");
            }
        }
    }

    #[test]
    fn overrides_reminders_and_check_ins() {
        let overrides = HashMap::from([(
            "no_usage.en".to_string(),
            "{name}: no water since {since}, reply {code}".to_string(),
        )]);
        let mut english = values();
        english.since = format_since(1_795_387_200, chrono_tz::Asia::Shanghai, Language::En);
        let alert = render(
            Kind::NoUsage,
            Purpose::Alert,
            Language::En,
            &overrides,
            &english,
        );
        assert_eq!(
            reminder(2, Language::En, &alert),
            "(Reminder 2) 张桂芳: no water since 23 Nov 06:40, reply 1"
        );
        let check_in = render(
            Kind::NoUsage,
            Purpose::CheckIn,
            Language::Zh,
            &overrides,
            &values(),
        );
        assert!(check_in.contains("如一切安好，请回复 1"), "{check_in}");
        let resolved = render(
            Kind::NoUsage,
            Purpose::Resolved,
            Language::Zh,
            &overrides,
            &values(),
        );
        assert!(resolved.contains("已恢复用水"), "{resolved}");
    }
}
