//! The monthly report a civil-affairs bureau asks for (信息报送): households
//! covered, meters installed and reporting, alerts by kind and severity, time
//! to acknowledge, what people found (dispositions), device faults, texts and
//! what drives their cost — as JSON, CSV and a printable page.
//!
//! Pure: computed from a month's rows (`store::report::MonthFacts`); the
//! command line and (later) the API only load the rows and choose a format.

use std::collections::BTreeMap;

use chrono::TimeZone;
use serde::Serialize;

use crate::store::report::MonthFacts;

mod consumption;
mod render;

pub use consumption::consumption;
pub use render::{csv, html};

/// A month in a zone: its first and last instant as Unix seconds [from, to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// `"2026-11"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (year, month) = text
            .split_once('-')
            .ok_or_else(|| format!("{text:?} is not a month: write it as 2026-11"))?;
        let year: i32 = year
            .parse()
            .map_err(|_| format!("{text:?} is not a month: write it as 2026-11"))?;
        let month: u32 = month
            .parse()
            .ok()
            .filter(|m| (1..=12).contains(m))
            .ok_or_else(|| format!("{text:?} is not a month: write it as 2026-11"))?;
        Ok(Self { year, month })
    }

    /// [from, to) in `zone`.
    pub fn bounds(self, zone: chrono_tz::Tz) -> (i64, i64) {
        let start = |year: i32, month: u32| {
            zone.with_ymd_and_hms(year, month, 1, 0, 0, 0)
                .earliest()
                .map_or(0, |t| t.timestamp())
        };
        let (next_year, next_month) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        (start(self.year, self.month), start(next_year, next_month))
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Count {
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindCount {
    pub kind: String,
    pub severity: String,
    pub count: u64,
}

/// Minutes from an alert's opening to its acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acknowledgement {
    pub acknowledged: u64,
    pub not_acknowledged: u64,
    pub median_minutes: Option<f64>,
    pub p90_minutes: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Texts {
    pub queued: u64,
    pub sent: u64,
    pub failed: u64,
    /// SMS segments sent: what the providers bill.
    pub segments: u64,
    pub delivered: u64,
    pub undelivered: u64,
    pub by_provider: Vec<Count>,
    pub by_purpose: Vec<Count>,
}

/// The month's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthlyReport {
    pub month: String,
    pub zone: String,
    pub households_covered: u64,
    pub meters_installed: u64,
    pub meters_reporting: u64,
    /// Alerts about households, by kind and severity.
    pub alerts: Vec<KindCount>,
    pub alerts_total: u64,
    pub acknowledgement: Acknowledgement,
    /// Closed alerts by what was found.
    pub dispositions: Vec<Count>,
    /// The resident was fine (`safe`, `away`).
    pub false_alarms: u64,
    /// Someone needed help (`needed_help`, `hospitalised`, `deceased`).
    pub needed_help: u64,
    /// Maintenance alerts: device faults, offline meters, lost readings, leaks.
    pub device_faults: Vec<Count>,
    /// Alerts about the gateway itself.
    pub system_alerts: u64,
    pub texts: Texts,
}

const MAINTENANCE: [&str; 4] = ["device_fault", "meter_offline", "readings_lost", "leak"];

fn counts(items: impl Iterator<Item = String>) -> Vec<Count> {
    let mut map: BTreeMap<String, u64> = BTreeMap::new();
    for item in items {
        *map.entry(item).or_default() += 1;
    }
    map.into_iter()
        .map(|(name, count)| Count { name, count })
        .collect()
}

/// The value below which `share` of `sorted` lies (nearest rank).
fn percentile(sorted: &[f64], share: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((share * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some((sorted[rank - 1] * 10.0).round() / 10.0)
}

/// The report for `month` from its rows.
pub fn monthly(month: Month, zone: chrono_tz::Tz, facts: &MonthFacts) -> MonthlyReport {
    let homes: Vec<_> = facts.alerts.iter().filter(|a| !a.system).collect();
    let mut by_kind: BTreeMap<(String, String), u64> = BTreeMap::new();
    for alert in &homes {
        *by_kind
            .entry((alert.kind.clone(), alert.severity.clone()))
            .or_default() += 1;
    }
    let mut minutes: Vec<f64> = homes
        .iter()
        .filter_map(|a| {
            a.acknowledged_at
                .map(|at| (at - a.created_at).max(0) as f64 / 60.0)
        })
        .collect();
    minutes.sort_by(f64::total_cmp);
    let dispositions = counts(homes.iter().filter_map(|a| a.disposition.clone()));
    let tally = |names: &[&str]| {
        dispositions
            .iter()
            .filter(|d| names.contains(&d.name.as_str()))
            .map(|d| d.count)
            .sum()
    };
    let sent: Vec<_> = facts.texts.iter().filter(|t| t.state == "sent").collect();
    MonthlyReport {
        month: month.to_string(),
        zone: zone.name().to_string(),
        households_covered: facts.households_covered,
        meters_installed: facts.meters_installed,
        meters_reporting: facts.meters_reporting,
        alerts: by_kind
            .into_iter()
            .map(|((kind, severity), count)| KindCount {
                kind,
                severity,
                count,
            })
            .collect(),
        alerts_total: homes.len() as u64,
        acknowledgement: Acknowledgement {
            acknowledged: minutes.len() as u64,
            not_acknowledged: (homes.len() - minutes.len()) as u64,
            median_minutes: percentile(&minutes, 0.5),
            p90_minutes: percentile(&minutes, 0.9),
        },
        false_alarms: tally(&["safe", "away"]),
        needed_help: tally(&["needed_help", "hospitalised", "deceased"]),
        dispositions,
        device_faults: counts(
            homes
                .iter()
                .filter(|a| MAINTENANCE.contains(&a.kind.as_str()))
                .map(|a| a.kind.clone()),
        ),
        system_alerts: facts.alerts.iter().filter(|a| a.system).count() as u64,
        texts: Texts {
            queued: facts.texts.len() as u64,
            sent: sent.len() as u64,
            failed: facts.texts.iter().filter(|t| t.state == "failed").count() as u64,
            segments: sent
                .iter()
                .map(|t| u64::from(t.segments.unwrap_or(1)))
                .sum(),
            delivered: sent
                .iter()
                .filter(|t| t.delivery.as_deref() == Some("delivered"))
                .count() as u64,
            undelivered: sent
                .iter()
                .filter(|t| t.delivery.as_deref() == Some("undelivered"))
                .count() as u64,
            by_provider: counts(
                sent.iter()
                    .map(|t| t.provider.clone().unwrap_or_else(|| "-".into())),
            ),
            by_purpose: counts(sent.iter().map(|t| t.purpose.clone())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Language;
    use crate::store::report::{AlertFact, TextFact};

    fn alert(
        kind: &str,
        created: i64,
        ack_after_min: Option<i64>,
        disposition: Option<&str>,
    ) -> AlertFact {
        AlertFact {
            kind: kind.into(),
            severity: "urgent".into(),
            system: false,
            created_at: created,
            acknowledged_at: ack_after_min.map(|m| created + m * 60),
            disposition: disposition.map(Into::into),
        }
    }

    fn text(state: &str, provider: &str, segments: u32) -> TextFact {
        TextFact {
            purpose: "alert".into(),
            state: state.into(),
            provider: Some(provider.into()),
            segments: Some(segments),
            delivery: (state == "sent").then(|| "delivered".into()),
        }
    }

    #[test]
    fn a_month_is_counted_as_a_bureau_reads_it() {
        let mut system = alert("sms_failing", 0, None, None);
        system.system = true;
        let facts = MonthFacts {
            households_covered: 120,
            meters_installed: 7,
            meters_reporting: 118,
            alerts: vec![
                alert("no_usage", 0, Some(4), Some("safe")),
                alert("no_usage", 100, Some(10), Some("needed_help")),
                alert("no_usage", 200, Some(30), Some("away")),
                alert("device_fault", 300, None, Some("device_fault")),
                system,
            ],
            texts: vec![
                text("sent", "aliyun", 2),
                text("sent", "webhook", 1),
                text("failed", "aliyun", 1),
            ],
        };
        let report = monthly(
            Month::parse("2026-11").unwrap(),
            chrono_tz::Asia::Shanghai,
            &facts,
        );
        assert_eq!(report.alerts_total, 4);
        assert_eq!(report.system_alerts, 1);
        assert_eq!(report.acknowledgement.acknowledged, 3);
        assert_eq!(report.acknowledgement.not_acknowledged, 1);
        assert_eq!(report.acknowledgement.median_minutes, Some(10.0));
        assert_eq!(report.acknowledgement.p90_minutes, Some(30.0));
        assert_eq!((report.false_alarms, report.needed_help), (2, 1));
        assert_eq!(
            report.device_faults,
            vec![Count {
                name: "device_fault".into(),
                count: 1
            }]
        );
        assert_eq!(
            (
                report.texts.sent,
                report.texts.failed,
                report.texts.segments
            ),
            (2, 1, 3)
        );
        let csv = csv(&report);
        assert!(csv.contains("alerts,no_usage/urgent,3\n"), "{csv}");
        assert!(csv.contains("texts,segments,3\n"), "{csv}");
        let page = html(&report, Language::Zh);
        assert!(
            page.contains("独居人员用水监测月报 2026-11")
                && page.contains("<td class=\"n\">120</td>")
        );
    }

    #[test]
    fn consumption_by_hour_and_by_day() {
        use crate::domain::{StoredReading, Timestamp};
        let reading = |ts: i64, total_l: i64, register_reset: bool| StoredReading {
            ts: Timestamp::from_secs(ts),
            total_l,
            flow_lph: None,
            battery_pct: None,
            status: 0,
            register_reset,
        };
        // 2026-12-01 00:00 +08:00, hourly: 5 L, 0 L, a reset, 7 L.
        let t0 = 1_796_054_400;
        let readings = [
            reading(t0, 100, false),
            reading(t0 + 3600, 105, false),
            reading(t0 + 7200, 105, false),
            reading(t0 + 10_800, 3, true),
            reading(t0 + 14_400, 10, false),
        ];
        let hours = consumption(
            &readings,
            t0,
            t0 + 5 * 3600,
            false,
            chrono_tz::Asia::Shanghai,
        );
        assert_eq!(
            hours.iter().map(|(_, used)| *used).collect::<Vec<_>>(),
            [Some(5), Some(0), None, Some(7), None]
        );
        let days = consumption(
            &readings,
            t0,
            t0 + 2 * 86_400,
            true,
            chrono_tz::Asia::Shanghai,
        );
        assert_eq!(days, [(t0, Some(12)), (t0 + 86_400, None)]);
    }

    #[test]
    fn months_in_a_zone() {
        let month = Month::parse("2026-12").unwrap();
        let (from, to) = month.bounds(chrono_tz::Asia::Shanghai);
        assert_eq!(from, 1_796_054_400); // 2026-12-01 00:00 +08:00
        assert_eq!(to - from, 31 * 86_400);
        assert!(Month::parse("2026-13").is_err());
        assert!(Month::parse("November").unwrap_err().contains("2026-11"));
    }
}
