//! `firmware-sim`: simulated homes and meters — publish them to a broker,
//! write them to a data set, run the detection benchmark through a gateway,
//! or inject incidents into real meter history.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use firmware_sim::benchmark::Benchmark;
use firmware_sim::meter::Faults;
use firmware_sim::publish::{self, Broker, Pace, Publisher, SimClock, Source};
use firmware_sim::sim::{Meters, Mix, Plan, Simulation};

#[derive(Parser)]
#[command(
    version,
    about = "Simulated homes and smart water meters for Stillwater"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One NB-IoT meter's hourly readings pushed as a carrier IoT platform
    /// would (CTWing, OneNET, IoTDA) to a gateway's push endpoint.
    Push {
        #[arg(long, value_enum)]
        platform: firmware_sim::platform::Platform,
        /// The gateway's endpoint, e.g. http://127.0.0.1:9464/ingest/ctwing/TOKEN.
        #[arg(long)]
        url: String,
        /// The meter's number (its CJ/T 188 address, 14 digits).
        #[arg(long, default_value = "00000012345678")]
        address: String,
        #[arg(long, default_value = "meter-device-1")]
        device_id: String,
        #[arg(long, default_value = "15114816")]
        product_id: String,
        #[arg(long, default_value = "862592051651472")]
        imei: String,
        /// OneNET's signing token.
        #[arg(long, default_value = "")]
        token: String,
        /// Hours of readings, ending now.
        #[arg(long, default_value_t = 26)]
        hours: usize,
        /// Litres used in each hour before this one; none after it (a silent home).
        #[arg(long, default_value_t = 26)]
        silent_from: usize,
    },
    /// Simulate and publish to an MQTT broker.
    Run {
        #[command(flatten)]
        town: Town,
        #[command(flatten)]
        broker: BrokerArgs,
        #[command(flatten)]
        pace: PaceArgs,
        /// Write the ground truth (and the rest of a data set but the messages) here at the end.
        #[arg(long)]
        truth_dir: Option<PathBuf>,
    },
    /// Write a data set to a directory instead of publishing it.
    Generate {
        #[command(flatten)]
        town: Town,
        /// messages.jsonl, readings.csv, households.csv, truth.jsonl, absences.csv, replacements.csv, plan.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// Publish a data set's messages.jsonl to an MQTT broker.
    Publish {
        /// The data set's directory.
        dir: PathBuf,
        #[command(flatten)]
        broker: BrokerArgs,
        #[command(flatten)]
        pace: PaceArgs,
    },
    /// The detection benchmark: a data set through a real gateway, scored.
    Benchmark {
        #[command(flatten)]
        town: Town,
        /// The stillwater executable (default: next to this one).
        #[arg(long)]
        gateway: Option<PathBuf>,
        /// Where the data set, database and results go.
        #[arg(long, default_value = "benchmark")]
        dir: PathBuf,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 3600.0)]
        speed: f64,
        /// Share of check-ins a resident who is fine answers.
        #[arg(long, default_value_t = 0.8)]
        answer_rate: f64,
        /// Share of alert texts a contact acknowledges.
        #[arg(long, default_value_t = 0.9)]
        ack_rate: f64,
    },
    /// Inject incapacitations into a readings CSV (meter_id,ts,total_l) of real homes.
    Inject {
        input: PathBuf,
        /// Writes readings.csv, truth.jsonl and households.csv here.
        #[arg(long)]
        out: PathBuf,
        /// Time zone of local timestamps (IANA name).
        #[arg(long, default_value = "Asia/Shanghai")]
        timezone: String,
        /// Days between incidents in a home (± a third).
        #[arg(long, default_value_t = 21.0)]
        every_days: f64,
        /// Days of history before the first incident.
        #[arg(long, default_value_t = 14)]
        warm_up_days: i64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Give every household a check-in phone (the resident asked first).
        #[arg(long)]
        check_in: bool,
    },
}

/// The simulated town.
#[derive(Args)]
struct Town {
    /// Number of homes.
    #[arg(long, default_value_t = 10)]
    homes: usize,
    /// Simulated days (0: run until stopped; live runs only).
    #[arg(long, default_value_t = 1)]
    days: i64,
    /// Start of the simulation (RFC 3339). Default: `days` before now, so that
    /// no reading is dated ahead of the gateway's clock (it would be rejected
    /// as `future_ts`); now for a `run` in real time or without end; for
    /// `benchmark`, 2026-09-01T00:00:00+08:00 (its gateway runs on the
    /// simulation's clock).
    #[arg(long)]
    start: Option<String>,
    /// Random seed: the same seed gives the same homes, incidents and faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The chance of each kind of incident in each home over the run.
    #[arg(long, default_value_t = 0.0)]
    incident_rate: f64,
    /// Every meter reads every N minutes and sends at once (default: a
    /// utility's mix of 15-minute, hourly and daily meters, some uploading in batches).
    #[arg(long)]
    interval_min: Option<i64>,
    /// Typical network faults: lost, duplicated, delayed and garbled messages.
    #[arg(long)]
    faults: bool,
    /// Share of households with a check-in phone.
    #[arg(long, default_value_t = 0.5)]
    check_in_share: f64,
    /// Of the meters reading at least hourly, the share uploading in batches every 6 h.
    #[arg(long, default_value_t = 0.4)]
    batch_share: f64,
    /// Share of residents who sleep irregularly.
    #[arg(long, default_value_t = 0.1)]
    irregular_share: f64,
    /// Meter ids are {id-prefix}{index:05}.
    #[arg(long, default_value = "SIM-")]
    id_prefix: String,
    /// Topic prefix: readings go to {prefix}/{meter_id}/reading.
    #[arg(long, default_value = "meters")]
    prefix: String,
}

impl Town {
    fn plan(&self, default_start: i64) -> anyhow::Result<Plan> {
        let start = match &self.start {
            Some(text) => chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|e| anyhow::anyhow!("--start {text:?}: {e}"))?
                .timestamp(),
            None => default_start,
        };
        let shares = [
            self.incident_rate,
            self.check_in_share,
            self.batch_share,
            self.irregular_share,
        ];
        if shares.iter().any(|share| !(0.0..=1.0).contains(share)) {
            anyhow::bail!(
                "--incident-rate, --check-in-share, --batch-share and --irregular-share are shares from 0 to 1"
            );
        }
        Ok(Plan {
            seed: self.seed,
            homes: self.homes,
            start,
            end: (self.days > 0).then_some(start + self.days * 86_400),
            id_prefix: self.id_prefix.clone(),
            topic_prefix: self.prefix.clone(),
            incident_rate: self.incident_rate,
            meters: match self.interval_min {
                Some(minutes) if (1..=1440).contains(&minutes) => Meters::Uniform {
                    interval_s: minutes * 60,
                    batch: 1,
                },
                Some(minutes) => anyhow::bail!("--interval-min {minutes}: from 1 to 1440"),
                None => Meters::Mixed(Mix {
                    batch: self.batch_share,
                    irregular: self.irregular_share,
                }),
            },
            faults: if self.faults {
                Faults::TYPICAL
            } else {
                Faults::default()
            },
            check_in_share: self.check_in_share,
            scripted: Vec::new(),
        })
    }
}

#[derive(Args)]
struct BrokerArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Broker username (the password is read from STILLWATER_MQTT_PASSWORD).
    #[arg(long)]
    username: Option<String>,
}

impl BrokerArgs {
    fn broker(&self) -> Broker {
        Broker {
            host: self.host.clone(),
            port: self.port,
            credentials: self.username.clone().map(|user| {
                (
                    user,
                    std::env::var("STILLWATER_MQTT_PASSWORD").unwrap_or_default(),
                )
            }),
        }
    }
}

#[derive(Args)]
struct PaceArgs {
    /// Simulated seconds per real second (1: real time), or "max".
    #[arg(long, default_value = "1", conflicts_with = "rate")]
    speed: String,
    /// A load test: this many messages per second, whatever their times.
    #[arg(long)]
    rate: Option<f64>,
}

impl PaceArgs {
    /// Whether simulated time runs ahead of the wall clock.
    fn faster_than_real_time(&self) -> bool {
        self.rate.is_some()
            || self.speed == "max"
            || self.speed.parse::<f64>().is_ok_and(|speed| speed > 1.0)
    }

    fn pace(&self, start: i64) -> anyhow::Result<Pace> {
        if let Some(rate) = self.rate {
            anyhow::ensure!(rate > 0.0, "--rate {rate}: a positive number");
            return Ok(Pace::Rate(rate));
        }
        Ok(match self.speed.as_str() {
            "max" => Pace::Max,
            text => {
                let speed = text
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && s.is_finite())
                    .with_context(|| format!("--speed {text:?}: a positive number or \"max\""))?;
                Pace::Clock(SimClock {
                    start,
                    origin_ms: chrono::Utc::now().timestamp_millis(),
                    speed,
                })
            }
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let now = chrono::Utc::now().timestamp();
    match Cli::parse().command {
        Command::Push {
            platform,
            url,
            address,
            device_id,
            product_id,
            imei,
            token,
            hours,
            silent_from,
        } => {
            use firmware_sim::platform::{push_hours, Device, Hours};
            let target = Hours {
                platform,
                url,
                device: Device {
                    product_id,
                    device_id,
                    imei,
                },
                address,
                token,
                zone: chrono_tz::Asia::Shanghai,
            };
            let litres: Vec<i64> = (0..hours)
                .map(|h| if h < silent_from { 12 } else { 0 })
                .collect();
            let start = (now / 3600 - hours as i64 + 1) * 3600;
            push_hours(&target, start, 10_000, &litres).await?;
            println!("{hours} readings pushed");
        }
        Command::Run {
            town,
            broker,
            pace,
            truth_dir,
        } => {
            let default_start = if town.days > 0 && pace.faster_than_real_time() {
                now - town.days * 86_400
            } else {
                now
            };
            let plan = town.plan(default_start)?;
            let start = plan.start;
            let pace = pace.pace(start)?;
            let client_id = format!("firmware-sim-{}-{}", std::process::id(), plan.seed);
            let mut publisher = Publisher::connect(&broker.broker(), &client_id).await?;
            let mut source = Source::Simulation(Box::new(Simulation::new(plan)));
            let published =
                publish::publish(&mut source, start, pace, &mut publisher, |_, _| Ok(())).await?;
            publisher.finish().await?;
            if let (Some(dir), Source::Simulation(sim)) = (truth_dir, &source) {
                std::fs::create_dir_all(&dir)?;
                publish::write_companions(sim, &dir)?;
            }
            println!("published {published} messages");
        }
        Command::Generate { town, out } => {
            anyhow::ensure!(town.days > 0, "a data set needs --days");
            let plan = town.plan(now - town.days * 86_400)?;
            let written = publish::write_data_set(Simulation::new(plan), &out)?;
            println!(
                "wrote {written} messages and the ground truth to {}",
                out.display()
            );
        }
        Command::Publish { dir, broker, pace } => {
            let plan: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("plan.json"))
                    .context("the data set's plan.json")?,
            )?;
            let start =
                chrono::DateTime::parse_from_rfc3339(plan["start"].as_str().unwrap_or_default())
                    .context("plan.json: start")?
                    .timestamp();
            let pace = pace.pace(start)?;
            let mut publisher = Publisher::connect(
                &broker.broker(),
                &format!("firmware-sim-{}", std::process::id()),
            )
            .await?;
            let mut source = Source::file(&dir.join("messages.jsonl"))?;
            let published =
                publish::publish(&mut source, start, pace, &mut publisher, |_, _| Ok(())).await?;
            publisher.finish().await?;
            println!("published {published} messages");
        }
        Command::Benchmark {
            town,
            gateway,
            dir,
            speed,
            answer_rate,
            ack_rate,
        } => {
            anyhow::ensure!(town.days >= 12, "the benchmark needs --days 12 or more");
            let gateway = match gateway {
                Some(path) => path,
                None => std::env::current_exe()?.with_file_name("stillwater"),
            };
            let plan = town.plan(BENCHMARK_START)?;
            Benchmark {
                sim: Simulation::new(plan),
                gateway,
                dir,
                speed,
                resident_rate: answer_rate,
                contact_rate: ack_rate,
            }
            .run()
            .await?;
        }
        Command::Inject {
            input,
            out,
            timezone,
            every_days,
            warm_up_days,
            seed,
            check_in,
        } => {
            let zone: chrono_tz::Tz = timezone
                .parse()
                .map_err(|_| anyhow::anyhow!("--timezone {timezone:?}: not an IANA time zone"))?;
            let done = firmware_sim::inject::inject(
                &input,
                &out,
                zone,
                every_days,
                warm_up_days,
                seed,
                check_in,
            )?;
            println!(
                "{} meters, {} readings ({} rows skipped: clock changes, out of order), {} incapacitations injected; readings.csv, truth.jsonl and households.csv in {}",
                done.meters,
                done.readings,
                done.skipped,
                done.incidents,
                out.display()
            );
        }
    }
    Ok(())
}

/// The benchmark's default start, 2026-09-01T00:00:00+08:00: a fixed start
/// keeps the data set the same from one run to the next.
const BENCHMARK_START: i64 = 1_788_192_000;
