//! Identifiers, times, volumes, phone numbers and durations at their edges.

use super::*;

#[test]
fn meter_ids_follow_the_documented_alphabet() {
    assert!(MeterId::parse("WM-0001_a").is_ok());
    assert!(MeterId::parse(&"a".repeat(32)).is_ok());
    assert_eq!(MeterId::parse(""), Err(MeterIdError::Empty));
    assert!(matches!(
        MeterId::parse(&"a".repeat(33)),
        Err(MeterIdError::TooLong(_))
    ));
    assert!(matches!(
        MeterId::parse("meter/1"),
        Err(MeterIdError::BadCharacter(_))
    ));
    assert!(matches!(
        MeterId::parse("水表1"),
        Err(MeterIdError::BadCharacter(_))
    ));
}

#[test]
fn mainland_mobiles_become_e164() {
    assert_eq!(
        PhoneNumber::parse("13800138000").unwrap().as_str(),
        "+8613800138000"
    );
    assert_eq!(
        PhoneNumber::parse(" 138-0013-8000 ").unwrap().as_str(),
        "+8613800138000"
    );
    assert_eq!(
        PhoneNumber::parse("+8613800138000").unwrap().as_str(),
        "+8613800138000"
    );
    assert_eq!(
        PhoneNumber::parse("+447700900123").unwrap().as_str(),
        "+447700900123"
    );
}

#[test]
fn malformed_phone_numbers_are_refused() {
    for bad in [
        "12800138000",
        "1380013800",
        "+86123",
        "+8612800138000",
        "+0123456789",
        "phone",
        "+86 138 0013 800x",
    ] {
        assert!(PhoneNumber::parse(bad).is_err(), "{bad} was accepted");
    }
    assert_eq!(PhoneNumber::parse("  "), Err(PhoneError::Empty));
}

#[test]
fn personal_data_is_masked_for_logs() {
    assert_eq!(mask_phone("+8613800138000"), "+86138****8000");
    assert_eq!(mask_name("张桂芳"), "张**");
    assert_eq!(mask_name("A"), "A*");
    assert_eq!(mask_address("中山市石岐区民生路12号3楼"), "中山市石岐区***");
    assert_eq!(mask_address("x"), "x***");
    let phone = PhoneNumber::parse("13800138000").unwrap();
    assert_eq!(
        phone.to_string(),
        "+86138****8000",
        "Display never shows a number"
    );
}

#[test]
fn durations_need_a_unit_and_must_be_positive() {
    assert_eq!(parse_duration("90s"), Ok(90));
    assert_eq!(parse_duration("30m"), Ok(1800));
    assert_eq!(parse_duration(" 12h "), Ok(43_200));
    assert_eq!(parse_duration("7d"), Ok(604_800));
    for bad in ["", "12", "h", "1.5h", "2w", "时h", "１h"] {
        assert_eq!(parse_duration(bad), Err(DurationError::Malformed), "{bad}");
    }
    for zero in ["0h", "0s", "-1h"] {
        assert_eq!(
            parse_duration(zero),
            Err(DurationError::NotPositive),
            "{zero}"
        );
    }
    assert_eq!(
        parse_duration("99999999999999999999d"),
        Err(DurationError::TooLong)
    );
    for seconds in [90, 1800, 43_200, 604_800, 5400] {
        assert_eq!(parse_duration(&format_duration(seconds)), Ok(seconds));
    }
}

#[test]
fn timestamps_do_arithmetic_in_seconds() {
    let t = Timestamp::from_secs(1_000);
    assert_eq!((t + 3600) - t, 3600);
    assert_eq!((t + 7200).hours_since(t), 2);
    assert_eq!(t.hours_since(t + 7200), 0);
    assert_eq!(Timestamp::from_secs(0).to_string(), "1970-01-01T00:00:00Z");
}

#[test]
fn counts_are_pluralised() {
    assert_eq!(count(1, "meter", "meters"), "1 meter");
    assert_eq!(count(0, "meter", "meters"), "0 meters");
    assert_eq!(count(3, "household", "households"), "3 households");
}

#[test]
fn status_flags_round_trip_through_bits() {
    let mut flags = StatusFlags::default();
    flags.insert(StatusFlag::LowBattery);
    flags.insert(StatusFlag::Leak);
    assert_eq!(StatusFlags::from_bits(flags.bits()), flags);
    assert_eq!(flags.to_string(), "LEAK LOW_BATTERY");
    assert_eq!(StatusFlag::from_name("TAMPER"), Some(StatusFlag::Tamper));
    assert_eq!(StatusFlag::from_name("OK"), None);
}

#[test]
fn a_password_in_a_database_url_is_never_shown() {
    assert_eq!(
        shown_url("postgres://sw:secret@db.example:5432/sw"),
        "postgres://sw:***@db.example:5432/sw"
    );
    assert_eq!(
        shown_url("postgres://sw@127.0.0.1/test"),
        "postgres://sw@127.0.0.1/test"
    );
}
