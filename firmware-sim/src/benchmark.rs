//! The detection benchmark, end to end: a seeded town of homes with incidents
//! of every kind, published through a real gateway (its embedded MQTT server, its
//! store, its alert engine on the simulation's clock, its SMS webhook to the
//! simulated phones, the phones answering through its inbound SMS), then
//! scored with `stillwater evaluate` — and the same stored readings replayed
//! under the plain rules for comparison.
//!
//! The gateway is driven through its command line only, as an operator would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Context;

use crate::answer::{self, Answering, Holder};
use crate::publish::{self, Broker, Pace, Publisher, SimClock, Source};
use crate::scenario::rfc3339;
use crate::sim::Simulation;

/// What to run.
pub struct Benchmark {
    pub sim: Simulation,
    /// The `stillwater` executable.
    pub gateway: PathBuf,
    /// Where the data set, configuration, database and results go.
    pub dir: PathBuf,
    /// Simulated seconds per real second.
    pub speed: f64,
    pub resident_rate: f64,
    pub contact_rate: f64,
}

/// The configurations scored, after the live run: a name and the arguments
/// `stillwater evaluate` is given (docs/detection-quality.md).
pub fn variants() -> Vec<(&'static str, Vec<&'static str>)> {
    let replay = ["--replay", "--acknowledged-after", "15m"];
    let answering = ["--residents-answer-after", "5m", "--answer-rate", "0.8"];
    let twelve = ["--set", "warning_window=6h", "--set", "urgent_window=12h"];
    vec![
        ("default (live, through the gateway)", vec![]),
        ("default (replayed)", [&replay[..], &answering].concat()),
        (
            "warning level texts contacts",
            [&replay[..], &["--no-check-in", "--notify-warning"]].concat(),
        ),
        (
            "plain 12 h rule",
            [&replay[..], &["--no-check-in"], &twelve].concat(),
        ),
        (
            "plain 24 h rule",
            [&replay[..], &["--no-check-in"]].concat(),
        ),
    ]
}

impl Benchmark {
    pub async fn run(self) -> anyhow::Result<()> {
        let Benchmark {
            sim,
            gateway,
            dir,
            speed,
            resident_rate,
            contact_rate,
        } = self;
        std::fs::create_dir_all(&dir)?;
        let start = sim.plan.start;
        let end = sim.plan.end().context("the benchmark needs --days")?;
        let (mqtt_port, http_port) = (free_port()?, free_port()?);
        let phones = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let phones_addr = phones.local_addr()?;
        let db = dir.join("benchmark.db");
        for stale in ["benchmark.db", "benchmark.db-wal", "benchmark.db-shm"] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
        let config = dir.join("stillwater.toml");
        std::fs::write(
            &config,
            format!(
                "[mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n\n[store]\npath = {db:?}\n\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n\
                 [log]\nfilter = \"warn\"\n\n[alerts]\ntick = \"5m\"\n\n[sms]\nprovider = \"webhook\"\ntimeout = \"30s\"\n\n\
                 [sms.webhook]\nurl = \"http://{phones_addr}/sms\"\n"
            ),
        )?;
        std::fs::write(dir.join("households.csv"), sim.installation_csv())?;
        let stillwater = |args: &[&str]| run_gateway(&gateway, &config, args);
        let households = dir.join("households.csv");
        stillwater(&["meters", "import", path(&households)?])?;
        for (meter, from, until) in sim.declared_absences() {
            stillwater(&[
                "absences",
                "add",
                "--meter",
                &meter,
                "--from",
                &rfc3339(from),
                "--until",
                &rfc3339(until),
                "--reason",
                "hospital stay",
            ])?;
        }
        let mut holders = HashMap::new();
        for resident in &sim.residents {
            if let Some(phone) = &resident.check_in_phone {
                holders.insert(
                    phone.clone(),
                    Holder::Resident {
                        helpless: Vec::new(),
                    },
                );
            }
            for phone in &resident.contacts {
                holders.insert(phone.clone(), Holder::Contact);
            }
        }
        for (phone, holder) in holders.iter_mut() {
            if let Holder::Resident { helpless } = holder {
                *helpless = sim.helpless_stretches(phone);
            }
        }
        let token = format!("benchmark-{}", sim.plan.seed);
        // The gateway starts a few seconds from now on the simulation's clock.
        let clock = SimClock {
            start,
            origin_ms: chrono::Utc::now().timestamp_millis() + 3000,
            speed,
        };
        let origin = chrono::DateTime::from_timestamp_millis(clock.origin_ms)
            .context("a valid origin")?
            .to_rfc3339();
        let log = std::fs::File::create(dir.join("gateway.log"))?;
        let mut child = Command::new(&gateway)
            .arg("--config")
            .arg(&config)
            .args([
                "serve",
                "--clock-start",
                &rfc3339(start),
                "--clock-origin",
                &origin,
            ])
            .args(["--clock-speed", &speed.to_string()])
            .env("STILLWATER_SMS_INBOUND_TOKEN", &token)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", gateway.display()))?;
        let result = async {
            let health = format!("http://127.0.0.1:{http_port}/healthz");
            wait_for(&health, &mut child).await?;
            let (_phones, tally) = answer::serve(
                phones,
                holders,
                Answering {
                    inbound_url: format!("http://127.0.0.1:{http_port}/sms/inbound"),
                    token: token.clone(),
                    resident_rate,
                    contact_rate,
                    clock: std::sync::Arc::new(clock),
                    seed: sim.plan.seed,
                },
            );
            let broker = Broker { host: "127.0.0.1".into(), port: mqtt_port, credentials: None };
            let mut publisher = Publisher::connect(&broker, "firmware-sim-benchmark").await?;
            let mut replacements = sim.replacements().into_iter().peekable();
            let homes = sim.plan.homes;
            let days = sim.plan.days();
            eprintln!(
                "benchmark: {homes} homes × {days} days at {speed}× ({:.0} min), gateway log in {}",
                (end - start) as f64 / speed / 60.0,
                dir.join("gateway.log").display()
            );
            let mut source = Source::Simulation(Box::new(sim));
            let mut last_report = start;
            let mut behind_s = 0;
            let mut installers = Vec::new();
            let mut backlog_s = 0;
            let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], http_port));
            let published = publish::publish(&mut source, start, Pace::Clock(clock), &mut publisher, |until, sent| {
                while replacements.peek().is_some_and(|(at, _, _)| *at <= until + 900) {
                    let (_, old, new) = replacements.next().expect("peeked");
                    // The installer works beside the meters, not in their way.
                    let (gateway, config) = (gateway.clone(), config.clone());
                    installers.push(std::thread::spawn(move || replace(&gateway, &config, &old, &new)));
                }
                // How far publishing lags the clock the gateway runs on: if the
                // gateway cannot keep up, its timers run ahead of the readings.
                let lag = clock.now() - until;
                behind_s = behind_s.max(lag);
                if until - last_report >= 86_400 {
                    last_report = until;
                    // The broker acknowledges on receipt: how many messages the
                    // gateway has yet to take, in simulated time at this rate.
                    let received = metric(metrics, "stillwater_mqtt_messages_received_total")?;
                    let waiting = sent.saturating_sub(received);
                    let waiting_s = (waiting as f64 * (until - start) as f64 / sent.max(1) as f64) as i64;
                    backlog_s = backlog_s.max(waiting_s);
                    if (until - start) % (5 * 86_400) < 86_400 {
                        eprintln!(
                            "  … day {} of {days} (publishing {} s behind the clock; the gateway {} messages, {} s behind)",
                            (until - start) / 86_400,
                            lag.max(0),
                            waiting,
                            waiting_s
                        );
                    }
                }
                Ok(())
            })
            .await?;
            publisher.finish().await?;
            for installer in installers {
                installer.join().expect("an installer's thread")?;
            }
            // Let the timers of the last hours run (check-in waits, escalation).
            clock.sleep_until(end + 6 * 3600).await;
            let Source::Simulation(sim) = source else { unreachable!("a simulation") };
            eprintln!(
                "benchmark: {published} messages published; phones got {} texts, {} check-ins, answered {}, acknowledged {} ({} failed)",
                tally.texts.load(Relaxed),
                tally.check_ins.load(Relaxed),
                tally.answered.load(Relaxed),
                tally.acknowledged.load(Relaxed),
                tally.failed.load(Relaxed)
            );
            if backlog_s > 900 {
                eprintln!(
                    "benchmark: warning: the gateway fell up to {} min behind the messages; its timers ran ahead of the readings; run slower (--speed)",
                    backlog_s / 60
                );
            }
            if behind_s > 900 {
                eprintln!(
                    "benchmark: warning: publishing fell up to {} min behind the gateway's clock; run slower (--speed)",
                    behind_s / 60
                );
            }
            Ok::<_, anyhow::Error>(sim)
        }
        .await;
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        let sim = result?;
        publish::write_companions(&sim, &dir)?;
        let truth = dir.join("truth.jsonl");
        let (from, to) = (rfc3339(start), rfc3339(end));
        let mut results = serde_json::Map::new();
        for (name, args) in variants() {
            let mut all = vec![
                "evaluate",
                "--truth",
                path(&truth)?,
                "--from",
                &from,
                "--to",
                &to,
            ];
            all.extend_from_slice(&args);
            println!("== {name}: stillwater evaluate {}", args.join(" "));
            print!("{}", stillwater(&all)?);
            all.push("--json");
            let json: serde_json::Value = serde_json::from_str(&stillwater(&all)?)?;
            results.insert(name.to_string(), json);
            println!();
        }
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(&results)?,
        )?;
        println!("data set, database and results.json in {}", dir.display());
        Ok(())
    }
}

fn path(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("a path that is not UTF-8")
}

/// `stillwater meters replace OLD NEW`, as an installer would run it. A gateway
/// this busy can hold the database longer than a command waits: the installer
/// tries again.
fn replace(gateway: &Path, config: &Path, old: &str, new: &str) -> anyhow::Result<()> {
    for attempt in 1.. {
        match run_gateway(gateway, config, &["meters", "replace", old, new]) {
            Ok(_) => return Ok(()),
            Err(error) if attempt < 5 && error.to_string().contains("locked") => {
                eprintln!("  … meters replace {old} {new}: the database is busy; trying again");
            }
            Err(error) => return Err(error),
        }
    }
    unreachable!("the loop returns")
}

/// `stillwater --config CONFIG ARGS…`: what it printed, or why it failed.
fn run_gateway(gateway: &Path, config: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(gateway)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", gateway.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "stillwater {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One counter from the gateway's `/metrics`.
fn metric(addr: std::net::SocketAddr, name: &str) -> anyhow::Result<u64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map(|value| value as u64)
        .with_context(|| format!("the gateway's /metrics has no {name}"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until the gateway answers `/healthz`, or says why it stopped.
async fn wait_for(url: &str, child: &mut Child) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the gateway stopped ({status}); see its log");
        }
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the gateway did not answer {url} within a minute")
}
