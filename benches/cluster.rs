//! Several gateways on PostgreSQL behind Mosquitto: prints figures, asserts
//! nothing about speed.
//!
//! `BENCH_POSTGRES=postgres://USER@HOST/DB cargo bench --bench cluster`
//! starts a private Mosquitto (the `mosquitto` binary, on a free loopback
//! port) and, for 1, 2 and 3 gateways (BENCH_GATEWAYS, e.g. "1,2,3"):
//!
//! 1. the broker's own rate: as many in-process subscribers as gateways, in
//!    one shared-subscription group, acknowledging every QoS 1 message at
//!    once;
//! 2. the gateways' rate: that many `stillwater serve` processes in the
//!    group, each committing to PostgreSQL before it acknowledges, timed
//!    until every reading is in the database; and the ratio of the two.
//!
//! Every round works in a PostgreSQL schema of its own (dropped after) with
//! BENCH_CLUSTER_METERS registered meters (2,000) and BENCH_CLUSTER_READINGS
//! readings (60,000). Everything shares this machine's cores: the broker,
//! the database, the publishers and the gateways.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stillwater::store::prelude::*;
use stillwater::store::Store;

mod support;

use support::{bench_actor, env_size, free_port, in_schema, publish_all, sample_households};

fn main() -> anyhow::Result<()> {
    let Ok(url) = std::env::var("BENCH_POSTGRES") else {
        println!("cluster benchmark: set BENCH_POSTGRES=postgres://USER@HOST/DB to run it");
        return Ok(());
    };
    let meters = env_size("BENCH_CLUSTER_METERS", 2_000);
    let readings = env_size("BENCH_CLUSTER_READINGS", 60_000);
    let counts: Vec<usize> = std::env::var("BENCH_GATEWAYS")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(dir.path())?;
    println!(
        "stillwater cluster benchmark ({} cores): {readings} readings from {meters} meters, Mosquitto shared subscription, PostgreSQL",
        std::thread::available_parallelism()?.get()
    );
    for gateways in counts {
        let raw = runtime.block_on(broker_only(broker.addr, gateways, readings, meters))?;
        let (rate, per_gateway) = cluster(
            &runtime,
            dir.path(),
            &url,
            broker.addr,
            gateways,
            readings,
            meters,
        )?;
        println!(
            "{gateways} gateway(s): {rate:>8.0} readings/s stored; broker alone {raw:>8.0} msg/s to {gateways} subscriber(s); ratio {:.3}; messages per gateway {per_gateway:?}",
            rate / raw
        );
    }
    Ok(())
}

/// A private Mosquitto that queues without limit; killed when dropped.
struct Mosquitto {
    child: Child,
    addr: SocketAddr,
}

impl Mosquitto {
    fn start(dir: &std::path::Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 1000\n"
            ),
        )?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, addr })
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `subscribers` in-process clients in one shared group, acknowledging at once.
async fn broker_only(
    addr: SocketAddr,
    subscribers: usize,
    readings: usize,
    meters: usize,
) -> anyhow::Result<f64> {
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let group = format!("raw{subscribers}");
    let mut loops = Vec::new();
    for n in 0..subscribers {
        let mut options =
            MqttOptions::new(format!("bench-raw-{n}"), addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(60));
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        client
            .subscribe(format!("$share/{group}/meters/+/reading"), QoS::AtLeastOnce)
            .await?;
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
                break;
            }
        }
        let received = received.clone();
        loops.push(tokio::spawn(async move {
            loop {
                if let Ok(Event::Incoming(Packet::Publish(_))) = eventloop.poll().await {
                    received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    let started = Instant::now();
    publish_all(addr, readings, meters).await?;
    while received.load(std::sync::atomic::Ordering::Relaxed) < readings {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = readings as f64 / started.elapsed().as_secs_f64();
    for task in loops {
        task.abort();
    }
    Ok(rate)
}

/// A gateway process; killed when dropped.
struct GatewayProcess(Child);

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gateways` processes on a fresh schema: (readings stored a second,
/// messages each gateway took).
fn cluster(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    url: &str,
    broker: SocketAddr,
    gateways: usize,
    readings: usize,
    meters: usize,
) -> anyhow::Result<(f64, Vec<u64>)> {
    let schema = format!("sw_cluster_bench_{}_{gateways}", std::process::id());
    in_schema(url, &schema, |_, scoped| {
        let store = Store::open_postgres(scoped, None)?;
        stillwater::actions::meters::register(
            &store,
            &bench_actor(),
            &sample_households("BENCH-", meters),
            chrono::Utc::now().timestamp(),
        )?;
        let mut processes = Vec::new();
        let mut http = Vec::new();
        for n in 0..gateways {
            let port = free_port()?;
            let config = dir.join(format!("bench-gw-{gateways}-{n}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[mqtt]\nmode = \"external\"\nurl = \"mqtt://{broker}\"\nclient_id = \"bench-gw-{gateways}-{n}\"\n\
                     share_group = \"bench{gateways}\"\n\
                     [store]\nbackend = \"postgres\"\nurl = \"{scoped}\"\n\
                     [http]\nlisten = \"127.0.0.1:{port}\"\n[watch]\nadmins = []\n"
                ),
            )?;
            processes.push(GatewayProcess(
                Command::new(env!("CARGO_BIN_EXE_stillwater"))
                    .arg("--config")
                    .arg(&config)
                    .arg("serve")
                    .env("RUST_LOG", "error")
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()?,
            ));
            http.push(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        runtime.block_on(async {
            for addr in &http {
                while metric(*addr, "stillwater_mqtt_connected").await != Some(1) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let started = Instant::now();
            publish_all(broker, readings, meters).await?;
            let store = store.clone();
            loop {
                let check = store.clone();
                let stored = tokio::task::spawn_blocking(move || check.reading_count()).await??;
                if stored >= readings as i64 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let rate = readings as f64 / started.elapsed().as_secs_f64();
            let mut taken = Vec::new();
            for addr in &http {
                taken.push(
                    metric(*addr, "stillwater_mqtt_messages_received_total")
                        .await
                        .unwrap_or(0),
                );
                let batches = metric(*addr, "stillwater_commit_batch_messages_count")
                    .await
                    .unwrap_or(0);
                println!("   ({addr}: {batches} commits)");
            }
            anyhow::Ok((rate, taken))
        })
    })
}

/// A counter or gauge of a gateway's `/metrics`, when it answers.
async fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    body.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
