//! Loading and validating configuration files.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn the_embedded_default_is_valid() {
    let config = Config::default_config();
    assert_eq!(
        config.mqtt.broker,
        BrokerChoice::Embedded {
            listen: "127.0.0.1:1883".parse().unwrap()
        }
    );
    assert_eq!(config.mqtt.topics, Topics::default());
    assert_eq!(config.registry.timezone, chrono_tz::Asia::Shanghai);
}

#[test]
fn a_partial_file_overrides_only_its_keys() {
    let config = Config::from_toml(
        "[mqtt]\nmode = \"external\"\nurl = \"mqtt://broker.local:1884\"\n",
        &no_env,
    )
    .unwrap();
    assert_eq!(
        config.mqtt.broker,
        BrokerChoice::External {
            host: "broker.local".into(),
            port: 1884
        }
    );
    assert_eq!(config.store.rejected_keep, 10_000);
}

#[test]
fn unknown_keys_are_named() {
    let error = Config::from_toml("[mqtt]\nbroker_port = 1\n", &no_env).unwrap_err();
    assert!(error.to_string().contains("broker_port"), "{error}");
    let error = Config::from_toml("[smtp]\nhost = \"mail\"\n", &no_env).unwrap_err();
    assert!(error.to_string().contains("smtp"), "{error}");
}

#[test]
fn bad_values_name_key_value_and_what_is_allowed() {
    let cases = [
        ("[mqtt]\nmode = \"cloud\"", "mqtt.mode", "\"cloud\""),
        (
            "[mqtt]\nlisten = \"localhost\"",
            "mqtt.listen",
            "address and port",
        ),
        (
            "[mqtt]\nmode = \"external\"\nurl = \"http://x\"",
            "mqtt.url",
            "mqtt://",
        ),
        (
            "[mqtt]\nnative_prefix = \"a/+\"",
            "mqtt.native_prefix",
            "wildcards",
        ),
        (
            "[mqtt]\nkeep_alive_secs = 1",
            "mqtt.keep_alive_secs",
            "5 to 3600",
        ),
        (
            "[mqtt]\nmax_clock_ahead_secs = -1",
            "mqtt.max_clock_ahead_secs",
            "0 to 86400",
        ),
        (
            "[mqtt]\ntls_listen = \"0.0.0.0:8883\"",
            "mqtt.tls_key_file",
            "PEM file",
        ),
        (
            "[mqtt]\ntls_listen = \"8883\"\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"",
            "mqtt.tls_listen",
            "address and port",
        ),
        (
            "[registry]\ndefault_timezone = \"Mars/Base\"",
            "registry.default_timezone",
            "IANA",
        ),
        (
            "[registry]\ndefault_reporting_interval_min = 0",
            "registry.default_reporting_interval_min",
            "1 to 1440",
        ),
        (
            "[store]\nrejected_keep = 0",
            "store.rejected_keep",
            "at least 1",
        ),
    ];
    for (text, key, phrase) in cases {
        let error = Config::from_toml(text, &no_env).unwrap_err().to_string();
        assert!(
            error.contains(key) && error.contains(phrase),
            "{text}: {error}"
        );
    }
    let error = Config::from_toml("[store]\nrejected_keep = \"many\"", &no_env).unwrap_err();
    assert!(error.to_string().contains("rejected_keep"), "{error}");
}

#[test]
fn category_rules_override_the_global_ones() {
    let config = Config::from_toml(
        "[rules.categories.special_hardship]\nwarning_window = \"8h\"\nmin_litres = 5\n",
        &no_env,
    )
    .unwrap();
    let policy = config.rules.policy_for("special_hardship");
    assert_eq!((policy.warning_window_s, policy.min_litres), (8 * 3600, 5));
    assert_eq!(
        config.rules.policy_for("elderly_alone"),
        config.rules.global
    );
    let error = Config::from_toml("[rules.categories.x]\nwarning = \"8h\"\n", &no_env).unwrap_err();
    assert!(
        error.to_string().contains("x.warning") && error.to_string().contains("warning_window"),
        "{error}"
    );
    let error = Config::from_toml("[rules]\nwarning_window = \"12\"\n", &no_env).unwrap_err();
    assert!(
        error.to_string().contains("rules.warning_window") && error.to_string().contains("\"12h\""),
        "{error}"
    );
}

#[test]
fn the_mqtt_password_comes_from_the_environment_and_is_never_printed() {
    let error = Config::from_toml("[mqtt]\nusername = \"gw\"", &no_env).unwrap_err();
    assert!(error.to_string().contains(MQTT_PASSWORD_ENV));
    let env = |name: &str| (name == MQTT_PASSWORD_ENV).then(|| "hunter2".to_string());
    let config = Config::from_toml("[mqtt]\nusername = \"gw\"", &env).unwrap();
    let (user, password) = config.mqtt.credentials.clone().unwrap();
    assert_eq!((user.as_str(), password.expose()), ("gw", "hunter2"));
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn postgres_is_chosen_with_a_url_and_its_password_from_the_environment() {
    let text = "[store]\nbackend = \"postgres\"\nurl = \"postgres://sw@db.example:5432/sw\"\nlease = \"45s\"\n[mqtt]\nmode = \"external\"\nshare_group = \"gateways\"";
    let env = |name: &str| (name == DB_PASSWORD_ENV).then(|| "s3cret".to_string());
    let config = Config::from_toml(text, &env).unwrap();
    match &config.store.location {
        StoreLocation::Postgres { url, password } => {
            assert_eq!(url, "postgres://sw@db.example:5432/sw");
            assert_eq!(password.as_ref().map(Secret::expose), Some("s3cret"));
        }
        other => panic!("expected PostgreSQL, got {other:?}"),
    }
    assert_eq!(config.store.lease, Duration::from_secs(45));
    assert_eq!(config.store.file(), None);
    assert_eq!(config.mqtt.share_group.as_deref(), Some("gateways"));
    assert!(!format!("{config:?}").contains("s3cret"));

    for (text, key, says) in [
        (
            "[store]\nbackend = \"mysql\"",
            "store.backend",
            "\"sqlite\" or \"postgres\"",
        ),
        (
            "[store]\nbackend = \"postgres\"",
            "store.url",
            "postgres://",
        ),
        (
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://sw:hunter2@db/sw\"",
            "store.url",
            DB_PASSWORD_ENV,
        ),
        ("[store]\nlease = \"1s\"", "store.lease", "5 s to 1 h"),
        (
            "[store]\nlease = \"10s\"\n[sms]\ntimeout = \"10s\"",
            "store.lease",
            "longest attempt",
        ),
        (
            "[mqtt]\nshare_group = \"gateways\"",
            "mqtt.share_group",
            "external",
        ),
        (
            "[mqtt]\nmode = \"external\"\nshare_group = \"a/b\"",
            "mqtt.share_group",
            "'/'",
        ),
    ] {
        let error = Config::from_toml(text, &no_env).unwrap_err().to_string();
        assert!(
            error.contains(key) && error.contains(says),
            "{text}: {error}"
        );
        assert!(
            !error.contains("hunter2"),
            "the password is never shown: {error}"
        );
    }
}

#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    let text = "[mqtt]\nmode = \"cloud\"\nbogus = 1\n[alerts]\nescalate_after = \"0s\"\nrepeat_after = \"abc\"\ncheck_ins_per_day = \"3\"\n[smtp]\nhost = \"x\"\n";
    let error = Config::from_toml(text, &no_env).unwrap_err();
    let problems: Vec<String> = error.problems().iter().map(|p| p.to_string()).collect();
    assert!(
        problems.iter().any(|p| p.contains("mqtt.bogus")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("smtp")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("alerts.check_ins_per_day") && p.contains("a whole number")),
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 6, "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("mqtt.mode")));
    assert!(problems
        .iter()
        .any(|p| p.contains("alerts.escalate_after") && p.contains("must be positive")));
    assert!(problems.iter().any(|p| p.contains("alerts.repeat_after")));
    for problem in &problems {
        assert!(!problem.contains("Raw"), "no internal names: {problem}");
    }
}

#[test]
fn a_misspelled_template_placeholder_is_refused_by_name() {
    let text = "[sms.templates]\n\"no_usage.zh\" = \"{nme}（{adress}）{hours} 小时未用水。回复 {code} 确认。\"\n";
    let error = Config::from_toml(text, &no_env).unwrap_err().to_string();
    assert!(
        error.contains("{nme}") && error.contains("{adress}"),
        "{error}"
    );
    assert!(
        error.contains("{name}"),
        "says which placeholders exist: {error}"
    );
    let good =
        "[sms.templates]\n\"no_usage.zh\" = \"{name}（{address}）{hours} 小时。回复 {code}\"\n";
    assert!(Config::from_toml(good, &no_env).is_ok());
}

#[test]
fn a_moved_key_says_where_it_went() {
    let error = Config::from_toml("[sms]\nwebhook_url = \"http://x\"\n", &no_env).unwrap_err();
    assert!(error.to_string().contains("[sms.webhook] url"), "{error}");
}

#[test]
fn category_rules_are_bounded_and_consistent_like_the_global_ones() {
    let error = Config::from_toml(
        "[rules.categories.special]\nurgent_window = \"100000d\"\n",
        &no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("special.urgent_window") && error.contains("14d"),
        "{error}"
    );
    let error = Config::from_toml(
        "[rules.categories.special]\nwarning_window = \"30h\"\n",
        &no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("must be at least warning_window"), "{error}");
}

#[test]
fn a_platform_needs_its_secret_and_products_name_a_decoder() {
    let text = r#"
[platforms.ctwing]
enabled = true
[platforms.products]
"15114816" = { decoder = "cjt188", status_bits = "high" }
"15014772" = { decoder = "fields", total = "currentReading", unit = "gallons" }
"1" = { decoder = "magic" }
"#;
    let problems = Config::from_toml(text, &|_| None).unwrap_err().to_string();
    assert!(
        problems.contains("platforms.ctwing.enabled")
            && problems.contains("STILLWATER_CTWING_TOKEN"),
        "{problems}"
    );
    assert!(
        problems.contains("platforms.products.15014772: unit = Some(\"gallons\")"),
        "{problems}"
    );
    assert!(
        problems.contains("platforms.products.1: decoder"),
        "{problems}"
    );
    let good = text
        .replace("\"gallons\"", "\"L\"")
        .replace("\"1\" = { decoder = \"magic\" }\n", "");
    let env = |name: &str| (name == "STILLWATER_CTWING_TOKEN").then(|| "t0k3n".to_string());
    let config = Config::from_toml(&good, &env).unwrap();
    assert_eq!(config.platforms.ctwing_token.unwrap().expose(), "t0k3n");
    assert_eq!(config.platforms.products.len(), 2);
    assert!(config.platforms.onenet_token.is_none(), "OneNET stays off");
}
