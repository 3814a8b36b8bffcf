//! The monthly report as a spreadsheet's CSV and as a printable page.

use std::fmt::Write;

use super::MonthlyReport;
use crate::config::Language;

/// `section,item,value` rows: one table a spreadsheet opens.
pub fn csv(report: &MonthlyReport) -> String {
    let mut rows = vec![
        ("month", String::new(), report.month.clone()),
        (
            "registry",
            "households_covered".into(),
            report.households_covered.to_string(),
        ),
        (
            "registry",
            "meters_installed".into(),
            report.meters_installed.to_string(),
        ),
        (
            "registry",
            "meters_reporting".into(),
            report.meters_reporting.to_string(),
        ),
        ("alerts", "total".into(), report.alerts_total.to_string()),
    ];
    for k in &report.alerts {
        rows.push((
            "alerts",
            format!("{}/{}", k.kind, k.severity),
            k.count.to_string(),
        ));
    }
    let ack = &report.acknowledgement;
    let minutes = |m: Option<f64>| m.map_or(String::new(), |m| m.to_string());
    rows.push((
        "acknowledgement",
        "acknowledged".into(),
        ack.acknowledged.to_string(),
    ));
    rows.push((
        "acknowledgement",
        "not_acknowledged".into(),
        ack.not_acknowledged.to_string(),
    ));
    rows.push((
        "acknowledgement",
        "median_minutes".into(),
        minutes(ack.median_minutes),
    ));
    rows.push((
        "acknowledgement",
        "p90_minutes".into(),
        minutes(ack.p90_minutes),
    ));
    for d in &report.dispositions {
        rows.push(("dispositions", d.name.clone(), d.count.to_string()));
    }
    rows.push((
        "dispositions",
        "false_alarms".into(),
        report.false_alarms.to_string(),
    ));
    rows.push((
        "dispositions",
        "needed_help".into(),
        report.needed_help.to_string(),
    ));
    for d in &report.device_faults {
        rows.push(("device_faults", d.name.clone(), d.count.to_string()));
    }
    rows.push((
        "system",
        "system_alerts".into(),
        report.system_alerts.to_string(),
    ));
    let t = &report.texts;
    for (item, value) in [
        ("queued", t.queued),
        ("sent", t.sent),
        ("failed", t.failed),
        ("segments", t.segments),
        ("delivered", t.delivered),
        ("undelivered", t.undelivered),
    ] {
        rows.push(("texts", item.into(), value.to_string()));
    }
    for p in &t.by_provider {
        rows.push(("texts_by_provider", p.name.clone(), p.count.to_string()));
    }
    for p in &t.by_purpose {
        rows.push(("texts_by_purpose", p.name.clone(), p.count.to_string()));
    }
    let mut out = String::from("section,item,value\n");
    for (section, item, value) in rows {
        let _ = writeln!(out, "{section},{item},{value}");
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A printable page (one HTML file, no scripts, print-friendly).
pub fn html(report: &MonthlyReport, language: Language) -> String {
    let zh = language == Language::Zh;
    let label = |zh_text: &'static str, en_text: &'static str| if zh { zh_text } else { en_text };
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{} {}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:0 0 1.5em}}\
         td,th{{border:1px solid #999;padding:.3em .8em;text-align:left}}td.n{{text-align:right}}\
         @media print{{body{{margin:0}}}}</style></head><body>",
        if zh { "zh-CN" } else { "en" },
        label("独居人员用水监测月报", "Monthly report"),
        escape(&report.month)
    );
    let _ = write!(
        page,
        "<h1>{} {}</h1><p>{}: {}</p>",
        label(
            "独居人员用水监测月报",
            "Water-use welfare alarm: monthly report"
        ),
        escape(&report.month),
        label("时区", "Time zone"),
        escape(&report.zone)
    );
    let table = |page: &mut String, title: &str, rows: Vec<(String, String)>| {
        let _ = write!(page, "<h2>{}</h2><table>", escape(title));
        for (name, value) in rows {
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
                escape(&name),
                escape(&value)
            );
        }
        page.push_str("</table>");
    };
    table(
        &mut page,
        label("覆盖情况", "Coverage"),
        vec![
            (
                label("覆盖户数", "Households covered").into(),
                report.households_covered.to_string(),
            ),
            (
                label("本月新装水表", "Meters installed").into(),
                report.meters_installed.to_string(),
            ),
            (
                label("本月有读数的水表", "Meters reporting").into(),
                report.meters_reporting.to_string(),
            ),
        ],
    );
    let mut alerts: Vec<(String, String)> = report
        .alerts
        .iter()
        .map(|k| (format!("{} ({})", k.kind, k.severity), k.count.to_string()))
        .collect();
    alerts.push((
        label("合计", "Total").into(),
        report.alerts_total.to_string(),
    ));
    table(&mut page, label("预警", "Alerts"), alerts);
    let ack = &report.acknowledgement;
    let minutes = |m: Option<f64>| m.map_or("—".to_string(), |m| format!("{m} min"));
    table(
        &mut page,
        label("响应", "Acknowledgement"),
        vec![
            (
                label("已确认", "Acknowledged").into(),
                ack.acknowledged.to_string(),
            ),
            (
                label("未确认", "Not acknowledged").into(),
                ack.not_acknowledged.to_string(),
            ),
            (
                label("确认用时中位数", "Median time to acknowledge").into(),
                minutes(ack.median_minutes),
            ),
            (
                label("确认用时 90% 分位", "90th percentile").into(),
                minutes(ack.p90_minutes),
            ),
        ],
    );
    let mut found: Vec<(String, String)> = report
        .dispositions
        .iter()
        .map(|d| (d.name.clone(), d.count.to_string()))
        .collect();
    found.push((
        label("误报（平安、外出）", "False alarms (safe, away)").into(),
        report.false_alarms.to_string(),
    ));
    found.push((
        label("需要帮助", "Needed help").into(),
        report.needed_help.to_string(),
    ));
    table(&mut page, label("处置结果", "Dispositions"), found);
    let mut devices: Vec<(String, String)> = report
        .device_faults
        .iter()
        .map(|d| (d.name.clone(), d.count.to_string()))
        .collect();
    devices.push((
        label("系统告警", "System alerts").into(),
        report.system_alerts.to_string(),
    ));
    table(
        &mut page,
        label("设备与系统", "Devices and system"),
        devices,
    );
    let t = &report.texts;
    let mut texts = vec![
        (label("已发送短信", "Texts sent").into(), t.sent.to_string()),
        (
            label("计费条数", "Segments billed").into(),
            t.segments.to_string(),
        ),
        (label("发送失败", "Failed").into(), t.failed.to_string()),
        (label("已送达", "Delivered").into(), t.delivered.to_string()),
        (
            label("未送达", "Not delivered").into(),
            t.undelivered.to_string(),
        ),
    ];
    texts.extend(t.by_provider.iter().map(|p| {
        (
            format!("{} {}", label("通道", "via"), p.name),
            p.count.to_string(),
        )
    }));
    texts.extend(t.by_purpose.iter().map(|p| {
        (
            format!("{} {}", label("用途", "for"), p.name),
            p.count.to_string(),
        )
    }));
    table(&mut page, label("短信", "Texts"), texts);
    page.push_str("</body></html>\n");
    page
}
