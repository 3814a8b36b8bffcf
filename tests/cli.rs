//! The `stillwater` command line as an installer and an operator use it: real
//! binary, real files, and the messages they read.

use std::path::Path;
use std::process::{Command, Output};

fn stillwater(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("the stillwater binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A new database in a temporary directory, with the households of `good.csv`.
fn registered() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    assert!(stillwater(&db, &["meters", "import", &fixture("good.csv")])
        .status
        .success());
    (dir, db)
}

/// Imports readings (a readings CSV's text) into `db` through a file in `dir`.
fn import_history(db: &Path, dir: &Path, history: &str) {
    let file = dir.join("history.csv");
    std::fs::write(&file, history).unwrap();
    let imported = stillwater(db, &["readings", "import", file.to_str().unwrap()]);
    assert!(imported.status.success(), "{}", text(&imported));
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/csv/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_bad_csv_imports_nothing_and_names_every_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let output = stillwater(&db, &["meters", "import", &fixture("bad.csv")]);
    assert!(!output.status.success());
    let message = text(&output);
    assert!(
        message.contains("nothing imported; 8 problems"),
        "{message}"
    );
    assert!(
        message.contains("row 4, column contact1_phone"),
        "{message}"
    );
    assert!(
        message.contains("row 6, column timezone: \"Beijing\""),
        "{message}"
    );
    let list = stillwater(&db, &["meters", "list"]);
    assert!(
        text(&list).contains("no meters registered"),
        "the good first row must not be imported either"
    );
}

#[test]
fn a_good_csv_registers_meters_that_show_their_installation_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let output = stillwater(&db, &["meters", "import", &fixture("good.csv")]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("imported 3 meters"));

    let again = stillwater(&db, &["meters", "import", &fixture("good.csv")]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("row 2, column meter_id: ZS-0001 is already registered"),
        "{}",
        text(&again)
    );

    let show = text(&stillwater(&db, &["meters", "show", "ZS-0001"]));
    assert!(show.contains("NO MESSAGE YET"), "{show}");
    assert!(show.contains("meters/ZS-0001/reading"), "{show}");
    assert!(
        show.contains("+86138****8000"),
        "phone numbers are masked: {show}"
    );
    assert!(!show.contains("13800138000"), "{show}");

    let replaced = stillwater(&db, &["meters", "replace", "ZS-0001", "ZS-0001B"]);
    assert!(replaced.status.success(), "{}", text(&replaced));
    let show = text(&stillwater(&db, &["meters", "show", "ZS-0001B"]));
    assert!(
        show.contains("registration: active") && show.contains("张桂芳"),
        "{show}"
    );
    let removed = stillwater(&db, &["meters", "remove", "ZS-0404"]);
    assert!(!removed.status.success());
    assert!(text(&removed).contains("meter ZS-0404 is not registered"));
}

#[test]
fn adding_a_meter_by_hand_validates_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let bad = stillwater(
        &db,
        &[
            "meters",
            "add",
            "--meter",
            "A 1",
            "--name",
            "",
            "--address",
            "x",
            "--contact",
            "李敏,12345",
        ],
    );
    assert!(!bad.status.success());
    let message = text(&bad);
    assert!(
        message.contains("meter_id")
            && message.contains("resident_name")
            && message.contains("contact1_phone"),
        "{message}"
    );
    let good = stillwater(
        &db,
        &[
            "meters",
            "add",
            "--meter",
            "A1",
            "--name",
            "王芳",
            "--address",
            "兴文路8号",
            "--contact",
            "李敏,13800138000",
        ],
    );
    assert!(good.status.success(), "{}", text(&good));
}

#[test]
fn config_errors_name_the_key_and_print_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let printed = stillwater(&db, &["print-config"]);
    let default = dir.path().join("default.toml");
    std::fs::write(&default, &printed.stdout).unwrap();
    let check = stillwater(&db, &["check-config", default.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[mqtt]\nmode = \"cloud\"\n").unwrap();
    let check = stillwater(&db, &["check-config", bad.to_str().unwrap()]);
    assert!(!check.status.success());
    assert!(text(&check).contains("mqtt.mode"), "{}", text(&check));

    // The provider checks its own section, in the same report.
    std::fs::write(
        &bad,
        "[sms]\nprovider = \"webhook\"\n[sms.webhook]\nurl = \"ftp://gw\"\n",
    )
    .unwrap();
    let check = stillwater(&db, &["check-config", bad.to_str().unwrap()]);
    assert!(!check.status.success());
    assert!(
        text(&check).contains("sms.webhook.url") && text(&check).contains("http://"),
        "{}",
        text(&check)
    );

    std::fs::write(&bad, "[mqtt]\nmode = \"embedded\"\nport = 1883\n").unwrap();
    let serve = Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .args(["--config", bad.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert!(!serve.status.success());
    assert!(
        text(&serve).contains("mqtt.port: unknown setting"),
        "{}",
        text(&serve)
    );
}

#[test]
fn the_sample_provider_configurations_pass_check_config_with_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    for (name, secrets) in [
        (
            "aliyun",
            &[
                ("STILLWATER_SMS_CALLBACK_TOKEN", "cb-token-0f6d2a"),
                ("STILLWATER_ALIYUN_ACCESS_KEY_ID", "LTAI5t000000"),
                ("STILLWATER_ALIYUN_ACCESS_KEY_SECRET", "s3cr3t-aliyun"),
            ][..],
        ),
        (
            "tencent",
            &[
                ("STILLWATER_SMS_CALLBACK_TOKEN", "cb-token-0f6d2a"),
                ("STILLWATER_TENCENT_SECRET_ID", "AKID000000"),
                ("STILLWATER_TENCENT_SECRET_KEY", "s3cr3t-tencent"),
            ][..],
        ),
        (
            "twilio",
            &[("STILLWATER_TWILIO_AUTH_TOKEN", "s3cr3t-twilio")][..],
        ),
    ] {
        let sample = format!("{}/config/examples/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let check = Command::new(env!("CARGO_BIN_EXE_stillwater"))
            .arg("--db")
            .arg(&db)
            .args(["check-config", &sample])
            .envs(secrets.iter().copied())
            .output()
            .unwrap();
        assert!(check.status.success(), "{name}: {}", text(&check));
        // Without its secret, the report names the variable to set.
        let missing = Command::new(env!("CARGO_BIN_EXE_stillwater"))
            .arg("--db")
            .arg(&db)
            .args(["check-config", &sample])
            .output()
            .unwrap();
        assert!(!missing.status.success(), "{name}");
        assert!(
            text(&missing).contains(secrets.last().unwrap().0),
            "{}",
            text(&missing)
        );
        for (_, secret) in secrets.iter() {
            assert!(!text(&check).contains(secret) && !text(&missing).contains(secret));
        }
    }
}

#[test]
fn the_demo_shows_reading_alert_text_and_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("demo.toml");
    std::fs::write(
        &config,
        "[mqtt]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .args(["--config", config.to_str().unwrap(), "--db"])
        .arg(dir.path().join("demo.db"))
        .args(["demo", "--once", "--speed", "36000"])
        .output()
        .expect("the demo runs");
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    // Other simulated residents may have a quiet warning of their own first
    // (recorded, not texted): the resident's alert is the one texted.
    let id = printed
        .split("SMS → +86138****8000 (alert ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("the first contact is texted: {printed}"));
    assert!(
        printed.contains(&format!(
            "SMS → +86138****8000 (alert {id}): 【水表关爱】张桂芳"
        )),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("replies \"1\" → 已确认预警 #{id}")),
        "{printed}"
    );
    assert!(printed.contains(&format!("alerts show {id}")), "{printed}");
    assert!(printed.contains("is now acknowledged"), "{printed}");
    // The month's report for the bureau counts the demo's alert, its
    // acknowledgement and its texts.
    // The demo's clock starts hours back: near the turn of a month its alert
    // may fall in the month before.
    let db = dir.path().join("demo.db");
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let months =
        [today - chrono::Duration::days(3), today].map(|day| day.format("%Y-%m").to_string());
    let reports: Vec<serde_json::Value> = months
        .iter()
        .map(|month| {
            let report = stillwater(&db, &["report", "--month", month]);
            assert!(report.status.success(), "{}", text(&report));
            serde_json::from_slice(&report.stdout).unwrap()
        })
        .collect();
    let report = reports
        .iter()
        .find(|r| r["alerts_total"].as_u64().unwrap() >= 1)
        .unwrap_or_else(|| panic!("the demo's alert is in a report: {reports:?}"));
    let month = report["month"].as_str().unwrap().to_string();
    assert!(
        report["households_covered"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(report["alerts_total"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        report["meters_reporting"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(
        report["acknowledgement"]["acknowledged"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(report["texts"]["sent"].as_u64().unwrap() >= 2, "{report}");
    let page = stillwater(&db, &["report", "--month", &month, "--format", "html"]);
    assert!(String::from_utf8_lossy(&page.stdout).contains("独居人员用水监测月报"));
    let bad = stillwater(&db, &["report", "--month", "11/2026"]);
    assert!(
        !bad.status.success() && text(&bad).contains("2026-11"),
        "{}",
        text(&bad)
    );
    // Started by cargo (as `cargo run -- demo` is), the hints say how to run it again.
    assert!(printed.contains("cargo run -- --db "), "{printed}");
    assert!(
        printed.contains("the texts count") && printed.contains("the quiet from the last reading"),
        "the banner explains the time the texts give: {printed}"
    );
    assert!(
        !printed.contains('\x1b'),
        "no colour codes into a pipe: {printed}"
    );
    let alerts = stillwater(&dir.path().join("demo.db"), &["alerts", "show", id]);
    let shown = text(&alerts);
    assert!(
        shown.contains("no_usage (urgent) — acknowledged"),
        "{shown}"
    );
    assert!(
        shown.contains("acknowledged") && shown.contains("via sms"),
        "{shown}"
    );
}

#[test]
fn operators_set_show_and_unset_thresholds() {
    let (_dir, db) = registered();
    let set = stillwater(
        &db,
        &[
            "rules",
            "set",
            "--category",
            "elderly_alone",
            "warning_window=8h",
        ],
    );
    assert!(set.status.success(), "{}", text(&set));
    let set = stillwater(&db, &["rules", "set", "--meter", "ZS-0001", "min_litres=5"]);
    assert!(set.status.success(), "{}", text(&set));
    let shown = text(&stillwater(&db, &["rules", "show", "--meter", "ZS-0001"]));
    assert!(
        shown.contains("warning_window       8h") && shown.contains("category elderly_alone"),
        "{shown}"
    );
    assert!(
        shown.contains("min_litres           5") && shown.contains("this household"),
        "{shown}"
    );
    assert!(
        shown.contains("urgent_window        1d       default"),
        "{shown}"
    );
    let bad = stillwater(
        &db,
        &["rules", "set", "--meter", "ZS-0001", "warning_window=8"],
    );
    assert!(!bad.status.success());
    assert!(text(&bad).contains("must be a duration"), "{}", text(&bad));
    // The same checks as the configuration file.
    for (args, phrase) in [
        (
            vec!["--meter", "ZS-0001", "warning_window=30h"],
            "urgent_window (1d) must be at least warning_window (30h)",
        ),
        (
            vec![
                "--meter",
                "ZS-0001",
                "warning_window=30h",
                "urgent_window=6h",
            ],
            "must be at least warning_window",
        ),
        (
            vec!["--meter", "ZS-0001", "urgent_window=100000d"],
            "from 1h to 14d",
        ),
        (
            vec!["--category", "Elderly Alone", "min_litres=5"],
            "a-z, 0-9",
        ),
        (vec!["--meter", "NO-SUCH", "min_litres=5"], "not registered"),
    ] {
        let mut command = vec!["rules", "set"];
        command.extend(args.iter().copied());
        let refused = stillwater(&db, &command);
        assert!(!refused.status.success(), "{args:?}");
        assert!(
            text(&refused).contains(phrase),
            "{args:?}: {}",
            text(&refused)
        );
    }
    let unused = stillwater(
        &db,
        &[
            "rules",
            "set",
            "--category",
            "elderly-alone",
            "min_litres=5",
        ],
    );
    assert!(unused.status.success());
    assert!(
        text(&unused).contains("no registered household has category \"elderly-alone\"")
            && text(&unused).contains("elderly_alone"),
        "a category no household has is a warning naming those in use: {}",
        text(&unused)
    );
    let unset = stillwater(&db, &["rules", "unset", "--meter", "ZS-0001", "min_litres"]);
    assert!(unset.status.success());
    let shown = text(&stillwater(&db, &["rules", "show", "--meter", "ZS-0001"]));
    assert!(
        shown.contains("min_litres           10       default"),
        "{shown}"
    );
}

#[test]
fn a_closed_pipe_ends_a_listing_quietly() {
    let (_dir, db) = registered();
    // The reader is gone before the command writes a byte (`… | head -0`).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .arg("--db")
        .arg(&db)
        .args(["meters", "show", "ZS-0001"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_mistyped_database_path_is_an_error_not_a_new_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing_dir = dir.path().join("no-such-dir").join("cli.db");
    let missing_file = dir.path().join("cli.db");
    for db in [&missing_dir, &missing_file] {
        let list = stillwater(db, &["meters", "list"]);
        assert!(!list.status.success());
        assert!(text(&list).contains("no database at"), "{}", text(&list));
    }
    let import = stillwater(&missing_dir, &["meters", "import", &fixture("good.csv")]);
    assert!(!import.status.success());
    assert!(
        text(&import).contains("does not exist"),
        "{}",
        text(&import)
    );
    assert!(
        !missing_dir.parent().unwrap().exists(),
        "no directory was created"
    );
    assert!(!missing_file.exists(), "no file was created");
    // Importing creates the database in an existing directory.
    let import = stillwater(&missing_file, &["meters", "import", &fixture("good.csv")]);
    assert!(import.status.success(), "{}", text(&import));
}

#[test]
fn absences_name_their_meters_and_counts_read_as_words() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let import = stillwater(&db, &["meters", "import", &fixture("good.csv")]);
    assert!(
        text(&import).contains("imported 3 meters"),
        "{}",
        text(&import)
    );
    let until = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let add = stillwater(
        &db,
        &[
            "absences", "add", "--meter", "ZS-0001", "--reason", "住院", "--until", &until,
        ],
    );
    assert!(add.status.success(), "{}", text(&add));
    assert!(
        text(&add).contains("absence declared for 1 household,"),
        "{}",
        text(&add)
    );
    let list = text(&stillwater(&db, &["absences", "list"]));
    assert!(list.contains("张桂芳 (ZS-0001)"), "{list}");
}

/// A meter connecting and disconnecting by the book, as raw MQTT 3.1.1.
fn connect_and_disconnect(port: u16, client: &str) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut connect = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c];
    connect.extend([0x00, client.len() as u8]);
    connect.extend(client.as_bytes());
    let mut packet = vec![0x10, connect.len() as u8];
    packet.extend(connect);
    stream.write_all(&packet).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "accepted");
    stream.write_all(&[0xe0, 0x00]).unwrap(); // DISCONNECT
                                              // The broker closes the connection; only then does the meter hang up.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

#[test]
fn a_meter_that_disconnects_normally_is_not_an_error_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (mqtt, http) = (free_port(), free_port());
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!("[mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n"),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .arg("--config")
        .arg(&config)
        .arg("--db")
        .arg(dir.path().join("serve.db"))
        .arg("serve")
        // The server's DEBUG line for each connection's end tells the test when it happened.
        .env("RUST_LOG", "info,stillwater::ingest::server=debug")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let wait_for = |what: &str, times: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while read_log().matches(what).count() < times {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what:?} in: {}",
                read_log()
            );
            std::thread::park_timeout(std::time::Duration::from_millis(20));
        }
    };
    wait_for("embedded MQTT server listening", 1);
    connect_and_disconnect(mqtt, "meter-a");
    connect_and_disconnect(mqtt, "meter-b");
    // meter-a's disconnect (and anything logged about it) came before meter-b's.
    wait_for("client=Some(\"meter-b\") end=Closed", 1);
    serve.kill().unwrap();
    serve.wait().unwrap();
    let log = read_log();
    assert!(!log.contains("ERROR") && !log.contains("WARN"), "{log}");
}

#[test]
fn a_utilitys_history_imports_once_and_all_or_nothing() {
    let (dir, db) = registered();
    // Two days of hourly registers in local time: a morning's use, then silence.
    let start = chrono::Local::now().date_naive() - chrono::Duration::days(5);
    let mut history = String::from("meter_id,ts,total_m3,status\n");
    for hour in 0..48 {
        let ts = start.and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::hours(hour);
        let m3 = if hour < 8 { 123.400 } else { 123.456 };
        history.push_str(&format!(
            "ZS-0001,{},{m3:.3},\n",
            ts.format("%Y-%m-%d %H:%M")
        ));
    }
    let file = dir.path().join("history.csv");
    std::fs::write(&file, &history).unwrap();
    let file = file.to_str().unwrap();
    let args = ["readings", "import", file, "--timezone", "Asia/Shanghai"];
    let first = stillwater(&db, &args);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("48 rows read, 48 readings stored, 0 already there, 1 meter"),
        "{}",
        text(&first)
    );
    let again = stillwater(&db, &args);
    assert!(
        text(&again).contains("0 readings stored, 48 already there"),
        "{}",
        text(&again)
    );
    let shown = text(&stillwater(&db, &["meters", "show", "ZS-0001"]));
    assert!(shown.contains("123456 L"), "{shown}");
    // 48 hourly readings: the last day is complete against its hourly schedule.
    assert!(
        shown.contains("the last 24 h:       24 of the 24 its schedule expects (every 60 min)"),
        "{shown}"
    );

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "meter_id,ts,total_l\nZS-0002,2026-11-20T08:00:00+08:00,100\nZS-0002,yesterday,101\nZS 0002,2026-11-20T10:00:00+08:00,102\nZS-0002,2026-11-20T11:00:00+08:00,lots\n",
    )
    .unwrap();
    let refused = stillwater(&db, &["readings", "import", bad.to_str().unwrap()]);
    assert!(!refused.status.success());
    let message = text(&refused);
    assert!(
        message.contains("nothing imported; 3 problems"),
        "{message}"
    );
    assert!(message.contains("row 3, column ts"), "{message}");
    assert!(message.contains("row 4, column (reading)"), "{message}");
    assert!(message.contains("row 5, column total_l"), "{message}");
    let untouched = text(&stillwater(&db, &["meters", "show", "ZS-0002"]));
    assert!(
        !untouched.contains("100 L"),
        "the good row was not stored either: {untouched}"
    );
}

#[test]
fn replay_shows_what_a_threshold_change_would_have_caused_and_changes_nothing() {
    let (dir, db) = registered();
    // Ten days of a resident using water at 07:00, 13:00 and 21:00: ten quiet
    // hours a night, fine at the default 12 h warning window.
    let start = chrono::Utc::now().date_naive() - chrono::Duration::days(11);
    let mut history = String::from("meter_id,ts,total_l\n");
    let mut total = 5_000;
    for hour in 0..10 * 24 {
        if matches!(hour % 24, 7 | 13 | 21) {
            total += 30;
        }
        let ts = start.and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::hours(hour);
        history.push_str(&format!(
            "ZS-0001,{}Z,{total}\n",
            ts.format("%Y-%m-%dT%H:%M:%S")
        ));
    }
    import_history(&db, dir.path(), &history);
    // The fixed windows for this household (its routine would judge these
    // nights normal, whatever the warning window).
    let set = stillwater(
        &db,
        &["rules", "set", "--meter", "ZS-0001", "detector=rules"],
    );
    assert!(set.status.success(), "{}", text(&set));
    let from = (start + chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let same = text(&stillwater(
        &db,
        &["replay", "--from", &from, "--meter", "ZS-0001"],
    ));
    assert!(!same.contains("no_usage (warning)"), "{same}");
    let tried = stillwater(
        &db,
        &[
            "replay",
            "--from",
            &from,
            "--meter",
            "ZS-0001",
            "--set",
            "warning_window=8h",
        ],
    );
    assert!(tried.status.success(), "{}", text(&tried));
    let report = text(&tried);
    let line = report
        .lines()
        .find(|l| l.contains("no_usage (warning)"))
        .unwrap_or_else(|| panic!("{report}"));
    let (now, then) = line.split_once('→').unwrap();
    let before: usize = now.split_whitespace().last().unwrap().parse().unwrap();
    let after: usize = then.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(before, 0, "{line}");
    assert!((7..=9).contains(&after), "one warning a night: {line}");
    assert!(report.contains("nothing was stored or sent"), "{report}");
    let refused = stillwater(
        &db,
        &["replay", "--from", &from, "--set", "urgent_window=6h"],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("must be at least warning_window"),
        "{}",
        text(&refused)
    );
    let alerts = text(&stillwater(&db, &["alerts", "list", "--all"]));
    assert!(
        alerts.contains("no alerts"),
        "replay writes no alert: {alerts}"
    );
}

#[test]
fn evaluate_scores_a_replay_of_imported_history_against_ground_truth() {
    let (dir, db) = registered();
    // Seven days and more of use in every hour from 07:00 to 21:00 in
    // Shanghai (23:00 to 13:00 UTC), then none from day 8 at 14:00 UTC.
    let start = chrono::Utc::now().date_naive() - chrono::Duration::days(11);
    let midnight = start.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    let fell = midnight + (7 * 24 + 14) * 3600;
    let mut history = String::from("meter_id,ts,total_l\n");
    let mut total = 5_000;
    for hour in 0..10 * 24 {
        let ts = midnight + hour * 3600;
        if ts < fell && (hour % 24 == 23 || hour % 24 <= 13) {
            total += 30;
        }
        let at = chrono::DateTime::from_timestamp(ts, 0)
            .unwrap()
            .to_rfc3339();
        history.push_str(&format!("ZS-0001,{at},{total}\n"));
    }
    import_history(&db, dir.path(), &history);
    let truth = dir.path().join("truth.jsonl");
    let at = |ts: i64| {
        chrono::DateTime::from_timestamp(ts, 0)
            .unwrap()
            .to_rfc3339()
    };
    std::fs::write(
        &truth,
        format!(
            "{{\"meter\": \"ZS-0001\", \"kind\": \"incapacitation\", \"start\": \"{}\"}}\n",
            at(fell)
        ),
    )
    .unwrap();
    let (from, to) = (at(midnight + 2 * 86_400), at(midnight + 10 * 86_400));
    let evaluate = |extra: &[&str]| {
        let mut args = vec![
            "evaluate",
            "--truth",
            truth.to_str().unwrap(),
            "--from",
            &from,
            "--to",
            &to,
            "--json",
            "--replay",
        ];
        args.extend_from_slice(extra);
        let output = stillwater(&db, &args);
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    // The plain 24 h rule: found, contacts texted when the last use is 24 h old.
    let plain = evaluate(&["--no-check-in", "--set", "detector=rules"]);
    let found = &plain["by_incident"]["incapacitation"];
    assert_eq!(found["found"], 1, "{plain}");
    assert_eq!(found["to_contact_s"][0], 23 * 3600, "{plain}");
    // The learned routine (the default) knows this home uses water every
    // morning from 07:00: the contacts hear the next morning, long before
    // the fixed 24 h.
    let learned = evaluate(&["--no-check-in"]);
    let to_contact = learned["by_incident"]["incapacitation"]["to_contact_s"][0]
        .as_i64()
        .unwrap();
    assert!(to_contact <= 14 * 3600, "{learned}");
    // Texting at the warning: contacts hear 12 h after the last use.
    let warning = evaluate(&[
        "--no-check-in",
        "--notify-warning",
        "--set",
        "detector=rules",
    ]);
    assert_eq!(
        warning["by_incident"]["incapacitation"]["to_contact_s"][0],
        11 * 3600,
        "{warning}"
    );
    let alerts = text(&stillwater(&db, &["alerts", "list", "--all"]));
    assert!(
        alerts.contains("no alerts"),
        "a replay writes nothing: {alerts}"
    );
    let refused = stillwater(
        &db,
        &[
            "evaluate",
            "--truth",
            truth.to_str().unwrap(),
            "--from",
            &from,
            "--replay",
            "--acknowledged-after",
            "soon",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("--acknowledged-after"),
        "{}",
        text(&refused)
    );
}

#[test]
fn installers_give_a_meter_its_own_login() {
    let (_dir, db) = registered();
    let given = stillwater(&db, &["meters", "login", "ZS-0001"]);
    assert!(given.status.success(), "{}", text(&given));
    let printed = text(&given);
    let password = printed
        .lines()
        .find_map(|line| line.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("{printed}"));
    assert_eq!(password.len(), 26);
    assert!(printed.contains("username: ZS-0001"), "{printed}");
    assert!(printed.contains("meter_logins is off"), "{printed}");
    let again = text(&stillwater(&db, &["meters", "login", "ZS-0001"]));
    assert!(!again.contains(password), "a new password each time");
    let unknown = stillwater(&db, &["meters", "login", "ZS-9999"]);
    assert!(!unknown.status.success());
    assert!(text(&unknown).contains("ZS-9999"), "{}", text(&unknown));
    let shown = text(&stillwater(&db, &["meters", "show", "ZS-0001"]));
    assert!(shown.contains("MQTT login:   its own, but"), "{shown}");
    let removed = stillwater(&db, &["meters", "login", "ZS-0001", "--remove"]);
    assert!(text(&removed).contains("removed"), "{}", text(&removed));
    let shown = text(&stillwater(&db, &["meters", "show", "ZS-0001"]));
    assert!(shown.contains("MQTT login:   none of its own"), "{shown}");
}

#[test]
fn the_audit_log_says_who_changed_what() {
    let (_dir, db) = registered();
    let until = (chrono::Utc::now() + chrono::Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let added = stillwater(
        &db,
        &[
            "absences", "add", "--meter", "ZS-0001", "--reason", "hospital", "--until", &until,
        ],
    );
    let log = stillwater(&db, &["audit"]);
    assert!(log.status.success(), "{}", text(&log));
    let log = text(&log);
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("meter.register")
            && l.contains("ZS-0001")
            && l.contains("via cli")),
        "{log}"
    );
    assert!(added.status.success(), "{}", text(&added));
    assert!(lines[0].contains("absence.declare"), "newest first: {log}");
    let none = stillwater(&db, &["audit", "--since", "2999-01-01"]);
    assert!(
        text(&none).contains("no changes recorded"),
        "{}",
        text(&none)
    );
    let bad = stillwater(&db, &["audit", "--since", "yesterday"]);
    assert!(
        !bad.status.success() && text(&bad).contains("is not a date"),
        "{}",
        text(&bad)
    );
}

#[test]
fn tokens_are_shown_once_listed_without_their_secret_and_revoked() {
    let (_dir, db) = registered();
    let added = stillwater(
        &db,
        &["tokens", "add", "--name", "李敏", "--role", "monitor"],
    );
    assert!(added.status.success(), "{}", text(&added));
    let shown = text(&added);
    let secret = shown
        .split_whitespace()
        .find(|word| word.starts_with("sw_"))
        .unwrap_or_else(|| panic!("the secret is shown: {shown}"));
    let list = text(&stillwater(&db, &["tokens", "list"]));
    assert!(list.contains("李敏") && list.contains("monitor"), "{list}");
    assert!(!list.contains(secret), "never shown again: {list}");
    assert!(stillwater(&db, &["tokens", "revoke", "1"]).status.success());
    assert!(text(&stillwater(&db, &["tokens", "list"])).contains("REVOKED"));
    let again = stillwater(&db, &["tokens", "revoke", "1"]);
    assert!(!again.status.success() && text(&again).contains("no active token 1"));
    let bad = stillwater(&db, &["tokens", "add", "--name", "x", "--role", "resident"]);
    assert!(!bad.status.success() && text(&bad).contains("admin, operator, installer or monitor"));
    assert!(text(&stillwater(&db, &["audit"])).contains("token.add"));
}

#[test]
fn a_backup_is_a_complete_database_and_never_overwrites_a_file() {
    let (dir, db) = registered();
    let backup = dir.path().join("backup.db");
    let made = stillwater(&db, &["backup", backup.to_str().unwrap()]);
    assert!(made.status.success(), "{}", text(&made));
    let listed = text(&stillwater(&backup, &["meters", "list"]));
    assert!(
        listed.contains("ZS-0001"),
        "the copy holds the registry: {listed}"
    );
    let again = stillwater(&db, &["backup", backup.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));
}
