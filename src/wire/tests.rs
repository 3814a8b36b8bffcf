use super::*;
use crate::pipeline::RejectReason;

const NOW_S: i64 = 1_795_400_000;
// 2026-11-23T02:13:20Z, two hours after the fixtures' readings
const NOW: Arrival = Arrival {
    at: Timestamp::from_secs(NOW_S),
    max_ahead_s: DEFAULT_MAX_CLOCK_AHEAD_S,
};
/// A day later: 2026-11-24T02:13:20Z.
const NEXT_DAY: Arrival = Arrival {
    at: Timestamp::from_secs(NOW_S + 86_400),
    ..NOW
};

fn native(payload: &str) -> Decoded {
    decode(
        &Topics::default(),
        "meters/WM-1/reading",
        payload.as_bytes(),
        NEXT_DAY,
    )
}

fn wmbus(payload: &str) -> Decoded {
    decode(
        &Topics::default(),
        "wmbusmeters/MyTapWater",
        payload.as_bytes(),
        NOW,
    )
}

fn only_rejection(decoded: &Decoded) -> &Rejection {
    assert!(decoded.readings.is_empty(), "{decoded:?}");
    assert_eq!(decoded.rejections.len(), 1, "{decoded:?}");
    &decoded.rejections[0]
}

#[test]
fn the_documented_single_reading_decodes() {
    let decoded = native(include_str!("../../tests/fixtures/native/single.json"));
    assert!(decoded.rejections.is_empty());
    let reading = &decoded.readings[0];
    assert_eq!(reading.meter.as_str(), "WM-1");
    assert_eq!(reading.ts.secs(), 1_795_392_000); // 2026-11-23T00:00:00Z
    assert_eq!(reading.total.get(), 123_456);
    assert_eq!(reading.flow_lph, Some(0));
    assert_eq!(reading.battery_pct, Some(87));
    assert!(reading.status.contains(StatusFlag::LowBattery));
}

#[test]
fn a_batch_gives_every_reading_in_order() {
    let decoded = native(include_str!("../../tests/fixtures/native/batch.json"));
    assert!(decoded.rejections.is_empty());
    let totals: Vec<i64> = decoded.readings.iter().map(|r| r.total.get()).collect();
    assert_eq!(totals, [123_440, 123_451, 123_456]);
    assert_eq!(decoded.readings[1].ts - decoded.readings[0].ts, 3600);
}

#[test]
fn total_m3_becomes_exact_litres() {
    let decoded = native(include_str!("../../tests/fixtures/native/total_m3.json"));
    assert_eq!(decoded.readings[0].total.get(), 123_529);
    let decoded = native(r#"{"ts":"2026-11-23T00:00:00Z","total_m3":0.0015}"#);
    assert_eq!(decoded.readings[0].total.get(), 2);
    let decoded = native(r#"{"ts":"2026-11-23T00:00:00Z","total_m3":1e2}"#);
    assert_eq!(decoded.readings[0].total.get(), 100_000);
}

#[test]
fn wmbusmeters_readme_samples_decode() {
    let decoded = wmbus(include_str!("../../tests/fixtures/wmbusmeters/iperl.json"));
    let reading = &decoded.readings[0];
    assert_eq!(reading.meter.as_str(), "33225544");
    assert_eq!(reading.total.get(), 123_529);
    assert_eq!(reading.ts.secs(), 1_709_491_020); // 2024-03-03T18:37:00Z
    assert!(reading.status.is_empty());

    let decoded = wmbus(include_str!(
        "../../tests/fixtures/wmbusmeters/multical21.json"
    ));
    let reading = &decoded.readings[0];
    assert_eq!(reading.meter.as_str(), "12345678");
    assert_eq!(reading.total.get(), 6_388);
    assert!(reading.status.contains(StatusFlag::Dry));
}

#[test]
fn wmbusmeters_test_harness_timestamps_are_rejected_but_name_the_meter() {
    for sample in [
        include_str!("../../tests/fixtures/wmbusmeters/kamwater.json"),
        include_str!("../../tests/fixtures/wmbusmeters/apatorna1.json"),
    ] {
        let decoded = wmbus(sample);
        let rejection = only_rejection(&decoded);
        assert_eq!(rejection.reason, RejectReason::BadTimestamp);
        assert!(rejection.detail.contains("before 2000"), "{rejection:?}");
        assert!(decoded.meter.is_some());
    }
}

#[test]
fn every_rejection_reason_is_reachable_with_a_clear_detail() {
    let cases: Vec<(Decoded, RejectReason, &str)> = vec![
        (
            decode(
                &Topics::default(),
                "meters/WM-1/reading",
                &vec![b' '; MAX_PAYLOAD_BYTES + 1],
                NOW,
            ),
            RejectReason::Oversize,
            "limit",
        ),
        (
            native("{not json"),
            RejectReason::InvalidJson,
            "not valid JSON",
        ),
        (native("[1,2]"), RejectReason::InvalidJson, "an array"),
        (
            native(r#"{"total_l": 5}"#),
            RejectReason::MissingField,
            "`ts` is missing",
        ),
        (
            native(r#"{"ts":"2026-11-23T00:00:00Z"}"#),
            RejectReason::MissingField,
            "total_l",
        ),
        (
            decode(&Topics::default(), "meters/bad.id/reading", b"{}", NOW),
            RejectReason::BadMeterId,
            "bad.id",
        ),
        (
            wmbus(r#"{"id":"has space","total_m3":1,"timestamp":"2024-03-03T18:37:00Z"}"#),
            RejectReason::BadMeterId,
            "has space",
        ),
        (
            native(r#"{"ts":"2026-11-23 08:00","total_l":1}"#),
            RejectReason::BadTimestamp,
            "RFC 3339",
        ),
        (
            native(r#"{"ts":"2036-11-23T08:00:00Z","total_l":1}"#),
            RejectReason::FutureTs,
            "ahead of the gateway's clock",
        ),
        (
            native(r#"{"ts":"2026-11-23T00:00:00Z","total_l":-1}"#),
            RejectReason::AbsurdValue,
            "register",
        ),
        (
            native(r#"{"ts":"2026-11-23T00:00:00Z","total_l":12.5}"#),
            RejectReason::AbsurdValue,
            "whole number",
        ),
        (
            native(r#"{"ts":"2026-11-23T00:00:00Z","total_l":1,"battery_pct":140}"#),
            RejectReason::AbsurdValue,
            "battery_pct",
        ),
        (
            native(r#"{"ts":"2026-11-23T00:00:00Z","total_l":1,"flow_lph":1e9}"#),
            RejectReason::AbsurdValue,
            "flow",
        ),
        (
            native(r#"{"readings":[]}"#),
            RejectReason::EmptyBatch,
            "empty",
        ),
        (
            decode(&Topics::default(), "somewhere/else", b"{}", NOW),
            RejectReason::UnknownTopic,
            "somewhere/else",
        ),
        (
            platform_item(platform::Content::Bytes(vec![0x68, 0x10])),
            RejectReason::BadFrame,
            "CJ/T 188",
        ),
        (
            platform_item(platform::Content::Fields(serde_json::Map::new())),
            RejectReason::UnknownProduct,
            "[platforms.products]",
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for (decoded, reason, phrase) in cases {
        let rejection = only_rejection(&decoded);
        assert_eq!(rejection.reason, reason, "{rejection:?}");
        assert!(
            rejection.detail.contains(phrase),
            "{:?} should mention {phrase:?}",
            rejection.detail
        );
        seen.insert(reason);
    }
    // `not_permitted` is the embedded server's (a meter's own login used for
    // another meter's topic): tests/ingest.rs reaches it; `bad_signature` is
    // the OneNET endpoint's: tests/platforms.rs.
    let decoded_reasons = RejectReason::ALL
        .iter()
        .filter(|reason| ![RejectReason::NotPermitted, RejectReason::BadSignature].contains(reason))
        .count();
    assert_eq!(seen.len(), decoded_reasons, "a reason has no case");
}

#[test]
fn a_bad_entry_in_a_batch_keeps_the_good_ones() {
    let decoded = native(
        r#"{"readings":[{"ts":"2026-11-23T00:00:00Z","total_l":1},{"ts":"x","total_l":2},7]}"#,
    );
    assert_eq!(decoded.readings.len(), 1);
    assert_eq!(decoded.rejections.len(), 2);
    assert!(decoded.rejections[0].detail.starts_with("readings[1]:"));
    assert!(decoded.rejections[1].detail.starts_with("readings[2]:"));
}

#[test]
fn topic_prefixes_are_configurable() {
    let topics = Topics {
        native_prefix: "site-7/meters".into(),
        wmbusmeters_prefix: "wm".into(),
    };
    assert_eq!(topics.filters(), ["site-7/meters/#", "wm/#"]);
    let decoded = decode(
        &topics,
        "site-7/meters/A1/reading",
        br#"{"ts":"2026-11-23T00:00:00Z","total_l":1}"#,
        NOW,
    );
    assert_eq!(decoded.readings.len(), 1);
    let decoded = decode(&topics, "meters/A1/reading", b"{}", NOW);
    assert_eq!(only_rejection(&decoded).reason, RejectReason::UnknownTopic);
}

#[test]
fn a_reading_dated_ahead_of_the_gateways_clock_is_future_ts() {
    let at = |ts: &str| format!(r#"{{"ts":"{ts}","total_l":5}}"#);
    let within = native(&at("2026-11-24T02:23:00Z"));
    assert!(
        within.rejections.is_empty(),
        "9 min 40 s ahead is allowed: {within:?}"
    );
    let ahead = native(&at("2026-11-25T01:13:20Z"));
    let rejection = only_rejection(&ahead);
    assert_eq!(rejection.reason, RejectReason::FutureTs);
    assert_eq!(rejection.reason.as_str(), "future_ts");
    assert!(
        rejection.detail.contains("23.0 h ahead") && rejection.detail.contains("10 min allowed"),
        "{rejection:?}"
    );
    assert_eq!(ahead.meter.map(|m| m.to_string()).as_deref(), Some("WM-1"));
    // The allowance is the operator's: none at all.
    let strict = Arrival {
        max_ahead_s: 0,
        ..NEXT_DAY
    };
    let decoded = decode(
        &Topics::default(),
        "meters/WM-1/reading",
        at("2026-11-24T02:13:21Z").as_bytes(),
        strict,
    );
    assert_eq!(only_rejection(&decoded).reason, RejectReason::FutureTs);
    // One reading of a batch too far ahead is rejected alone.
    let batch = native(
        r#"{"readings":[{"ts":"2026-11-23T00:00:00Z","total_l":5},{"ts":"2026-11-25T00:00:00Z","total_l":6}]}"#,
    );
    assert_eq!(batch.readings.len(), 1);
    assert_eq!(batch.rejections[0].reason, RejectReason::FutureTs);
}

#[test]
fn the_quick_path_for_a_plain_reading_decodes_exactly_as_the_general_one() {
    let ts = r#""ts":"2026-11-23T10:00:00+08:00""#;
    let cases = [
        format!(r#"{{{ts},"total_l":123456}}"#),
        format!(r#"{{{ts},"total_l":123456,"flow_lph":12.6,"battery_pct":100,"seq":7}}"#),
        format!(r#"{{{ts},"total_l":5,"flow_lph":null,"battery_pct":null,"seq":null}}"#),
        format!(r#"{{{ts},"total_l":5,"battery_pct":101}}"#),
        format!(r#"{{{ts},"total_l":5,"battery_pct":87.0}}"#),
        format!(r#"{{{ts},"total_l":5,"battery_pct":-1}}"#),
        format!(r#"{{{ts},"total_l":5,"seq":-1}}"#),
        format!(r#"{{{ts},"total_l":5,"seq":1.5}}"#),
        format!(r#"{{{ts},"total_l":5.5}}"#),
        format!(r#"{{{ts},"total_l":-1}}"#),
        format!(r#"{{{ts},"total_l":null,"total_m3":1.25}}"#),
        format!(r#"{{{ts},"total_l":5,"flow_lph":-3}}"#),
        format!(r#"{{{ts},"total_l":5,"total_l":6}}"#),
        format!(r#"{{{ts},"total_l":5,"status":["LEAK"]}}"#),
        format!(r#"{{{ts},"total_l":5,"vendor":{{"rssi":-80}}}}"#),
        r#"{"ts":"2026-11-23T10:00:00\u002B08:00","total_l":5}"#.to_string(),
        r#"{"ts":"2026-11-29T10:00:00+08:00","total_l":5}"#.to_string(),
        r#"{"ts":"1999-12-31T23:00:00Z","total_l":5}"#.to_string(),
        r#"{"ts":1795392000,"total_l":5}"#.to_string(),
        r#"{"total_l":5}"#.to_string(),
        r#"{"ts":"2026-11-23T10:00:00+08:00"}"#.to_string(),
        r#"[1,2]"#.to_string(),
        r#"{"#.to_string(),
    ];
    for payload in &cases {
        let meter = MeterId::parse("WM-1").unwrap();
        assert_eq!(
            native::decode(meter.clone(), payload.as_bytes(), NEXT_DAY),
            native::general(meter, payload.as_bytes(), NEXT_DAY),
            "{payload}"
        );
    }
    // The cases reach both outcomes of the quick path's checks.
    let quick = native(&cases[1]);
    assert_eq!(quick.readings[0].flow_lph, Some(13));
    assert_eq!(quick.readings[0].battery_pct, Some(100));
    assert_eq!(quick.readings[0].seq, Some(7));
    assert_eq!(
        only_rejection(&native(&cases[3])).reason,
        RejectReason::AbsurdValue
    );
}

/// A CTWing item from device D1 of product P1 carrying `content`, decoded
/// with no registered meter and no product settings.
fn platform_item(content: platform::Content) -> Decoded {
    let item = platform::Item {
        device: platform::Device {
            platform: platform::Platform::Ctwing,
            product_id: "P1".into(),
            device_id: "D1".into(),
            imei: None,
        },
        at_ms: Some(1_795_000_000_000),
        content,
    };
    platform::decode_item(&item, None, None, chrono_tz::Asia::Shanghai, NOW)
}
