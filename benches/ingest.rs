//! Ingest benchmark: prints figures, asserts nothing about speed.
//!
//! `cargo bench --bench ingest` measures, in one run on loopback:
//! 1. a broker's own QoS 1 publish → subscribe rate (rumqttd in-process, with a
//!    counting subscriber that acknowledges at once): the ceiling any gateway
//!    behind a broker could reach;
//! 2. the gateway's durable ingest rate, the same publishers connected to its
//!    embedded MQTT server (every reading committed to SQLite before its
//!    PUBACK, and counted once folded into its chunk), and the ratio of the
//!    two — parts 1 and 2 take turns three times (BENCH_PAIRS), and the median
//!    ratio counts;
//! 3. start-up (recovery) time and resident memory of the `stillwater` binary
//!    with 1,000,000 registered meters that all have per-meter state and a
//!    learned routine;
//! 4. bytes on disk per stored reading after 10,000,000 readings;
//! 5. alert latency: from publishing the reading that decides an urgent
//!    `no_usage` to the SMS webhook receiving the text, over 50 households.
//!
//! Sizes can be lowered for a quick look: BENCH_READINGS, BENCH_METERS,
//! BENCH_REGISTERED, BENCH_STORED, BENCH_LATENCY_HOMES. BENCH_GATEWAY_ONLY=1
//! runs part 2 alone, for a profiler; BENCH_RATIO_ONLY=1 parts 1 and 2;
//! BENCH_STORE_ONLY=1 part 4 alone (the store writer, for an instruction count);
//! BENCH_STARTUP_ONLY=1 part 3 alone.
//!
//! BENCH_POSTGRES=postgres://USER@HOST/DB runs part 4 against PostgreSQL
//! instead (in a schema of its own, dropped after; BENCH_STORED readings,
//! 1,000,000 unless set): the bytes of every table and index per reading, and
//! the rate of one writer.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stillwater::app::Gateway;
use stillwater::config::{BrokerChoice, Config, StoreLocation};
use stillwater::domain::{Litres, MeterId, Reading, StatusFlags, Timestamp};
use stillwater::metrics::Metrics;
use stillwater::pipeline::{Decoded, Message};
use stillwater::store::prelude::*;
use stillwater::store::writer::Writer;
use stillwater::store::Store;

#[path = "../tests/support/rumqttd.rs"]
mod broker;
mod support;

use support::{bench_actor, env_size, free_port, in_schema, publish_all, sample_households};

fn main() -> anyhow::Result<()> {
    let readings = env_size("BENCH_READINGS", 1_000_000);
    let meters = env_size("BENCH_METERS", 10_000);
    let registered = env_size("BENCH_REGISTERED", 1_000_000);
    let stored = env_size("BENCH_STORED", 10_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    println!(
        "stillwater ingest benchmark ({} cores)",
        std::thread::available_parallelism()?.get()
    );

    if std::env::var("BENCH_STARTUP_ONLY").is_ok() {
        let (startup, rss_mib, peak_mib) = startup(dir.path(), registered)?;
        println!("3. start-up with {registered} meters:     {startup:>10.2} s to healthy; resident {rss_mib:.0} MiB (peak {peak_mib:.0} MiB)");
        return Ok(());
    }
    if let Ok(url) = std::env::var("BENCH_POSTGRES") {
        let count = env_size("BENCH_STORED", 1_000_000);
        let (bytes, write_rate) = postgres_bytes_per_reading(&url, count)?;
        println!("4. PostgreSQL after {count} readings:   {bytes:>10.2} bytes per reading, tables and indexes (one writer: {write_rate:.0} readings/s without MQTT)");
        return Ok(());
    }
    if std::env::var("BENCH_STORE_ONLY").is_ok() {
        // The writer alone, for an instruction count: valgrind --tool=callgrind.
        let (bytes, write_rate) = bytes_per_reading(dir.path(), stored)?;
        println!("4. on disk after {stored} readings:   {bytes:>10.2} bytes per reading (store writes {write_rate:.0} readings/s without MQTT)");
        return Ok(());
    }
    if std::env::var("BENCH_GATEWAY_ONLY").is_ok() {
        // For profiling the gateway alone.
        let rate = runtime.block_on(gateway(dir.path(), readings, meters))?;
        println!("2. gateway durable ingest:           {rate:>10.0} readings/s");
        return Ok(());
    }
    // Runs on this shared machine vary by ±20 %: the broker and the gateway
    // take turns, BENCH_PAIRS times (3), and the median pair's ratio counts.
    let mut ratios = Vec::new();
    for pair in 1..=env_size("BENCH_PAIRS", 3) {
        let pair_dir = dir.path().join(format!("pair-{pair}"));
        std::fs::create_dir_all(&pair_dir)?;
        let (broker_rate, gateway_rate) = runtime.block_on(async {
            let broker_rate = broker_only(readings, meters).await?;
            let gateway_rate = gateway(&pair_dir, readings, meters).await?;
            anyhow::Ok((broker_rate, gateway_rate))
        })?;
        println!("1. broker (rumqttd), QoS 1 pub→sub:  {broker_rate:>10.0} msg/s ({readings} readings, {meters} meters)");
        println!("2. gateway durable ingest:           {gateway_rate:>10.0} readings/s (committed, acknowledged, folded)");
        println!(
            "   ratio ingest / broker, pair {pair}:    {:>10.2}",
            gateway_rate / broker_rate
        );
        ratios.push(gateway_rate / broker_rate);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "   ratio ingest / broker, median:    {:>10.2} (of {:.2?})",
        ratios[ratios.len() / 2],
        ratios
    );
    if std::env::var("BENCH_RATIO_ONLY").is_ok() {
        return Ok(());
    }

    let (startup, rss_mib, peak_mib) = startup(dir.path(), registered)?;
    println!("3. start-up with {registered} meters:     {startup:>10.2} s to healthy; resident {rss_mib:.0} MiB (peak {peak_mib:.0} MiB)");

    let (bytes, write_rate) = bytes_per_reading(dir.path(), stored)?;
    println!("4. on disk after {stored} readings:   {bytes:>10.2} bytes per reading (store writes {write_rate:.0} readings/s without MQTT)");

    let homes = env_size("BENCH_LATENCY_HOMES", 50);
    let mut latencies = runtime.block_on(alert_latency(dir.path(), homes))?;
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0
    };
    println!(
        "5. alert latency (reading → SMS webhook), {homes} homes: median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.9),
        at(1.0)
    );
    Ok(())
}

/// A minimal HTTP server that answers 200 to every request and reports when
/// each request's body arrived, with the body.
async fn sms_receiver() -> anyhow::Result<(
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(Instant, String)>,
)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buffer.len() < end + 4 + length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body =
                        String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned();
                    let _ = tx.send((Instant::now(), body));
                    buffer.drain(..end + 4 + length);
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok((addr, rx))
}

/// For each of `homes` households: 24 silent hours are published and evaluated,
/// then the reading that makes it a day is timed until its text arrives.
async fn alert_latency(dir: &std::path::Path, homes: usize) -> anyhow::Result<Vec<Duration>> {
    let (receiver, mut texts) = sms_receiver().await?;
    let mut config = Config::default_config();
    config.mqtt.broker = BrokerChoice::Embedded {
        listen: "127.0.0.1:0".parse()?,
    };
    config.http.listen = "127.0.0.1:0".parse()?;
    config.store.location = StoreLocation::Sqlite(dir.join("latency.db"));
    config.sms.provider = stillwater::config::ProviderChoice::Webhook {
        url: format!("http://{receiver}/sms"),
        token: None,
    };
    let store = Store::from_config(&config.store)?;
    let households = sample_households("LAT-", homes);
    stillwater::actions::meters::register(
        &store,
        &bench_actor(),
        &households,
        chrono::Utc::now().timestamp(),
    )?;
    let gateway = Gateway::start(&config).await?;
    while !gateway.metrics.mqtt_connected.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut options = MqttOptions::new(
        "bench-latency",
        gateway.mqtt_addr.ip().to_string(),
        gateway.mqtt_addr.port(),
    );
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let start = (chrono::Utc::now().timestamp() - 3 * 86_400) / 3600 * 3600;
    let reading = |hour: i64| {
        let ts = chrono::DateTime::from_timestamp(start + hour * 3600, 0).unwrap();
        format!(r#"{{"ts":"{}","total_l":5000}}"#, ts.to_rfc3339())
    };
    let mut latencies = Vec::new();
    for household in &households {
        let topic = format!("meters/{}/reading", household.meter);
        for hour in 0..24 {
            client
                .publish(&topic, QoS::AtLeastOnce, false, reading(hour))
                .await?;
        }
        let meter = household.meter.as_str().to_string();
        loop {
            let state = store.meter_state(&meter)?;
            if state.is_some_and(|s| s.readings == 24 && s.evaluated_through == s.last_reading_ts) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let published = Instant::now();
        client
            .publish(&topic, QoS::AtLeastOnce, false, reading(24))
            .await?;
        loop {
            let (arrived, body) = tokio::time::timeout(Duration::from_secs(30), texts.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the SMS receiver stopped"))?;
            if body.contains("\"kind\":\"no_usage\"") && body.contains(&household.resident_name) {
                latencies.push(arrived - published);
                break;
            }
        }
    }
    gateway.stop().await?;
    Ok(latencies)
}

/// A native reading for meter `meter`'s `index`-th hour, ending about now.
async fn broker_only(readings: usize, meters: usize) -> anyhow::Result<f64> {
    let broker = broker::start("127.0.0.1:0".parse()?)?;
    let mut options = MqttOptions::new(
        "bench-sub",
        broker.addr.ip().to_string(),
        broker.addr.port(),
    );
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    client
        .subscribe("meters/+/reading", QoS::AtLeastOnce)
        .await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    let counter = tokio::spawn(async move {
        let mut received = 0;
        while received < readings {
            if let Event::Incoming(Packet::Publish(_)) = eventloop.poll().await? {
                received += 1;
            }
        }
        anyhow::Ok(Instant::now())
    });
    let started = Instant::now();
    publish_all(broker.addr, readings, meters).await?;
    let done = counter.await??;
    Ok(readings as f64 / (done - started).as_secs_f64())
}

async fn gateway(dir: &std::path::Path, readings: usize, meters: usize) -> anyhow::Result<f64> {
    let mut config = Config::default_config();
    config.mqtt.broker = BrokerChoice::Embedded {
        listen: "127.0.0.1:0".parse()?,
    };
    config.http.listen = "127.0.0.1:0".parse()?;
    config.store.location = StoreLocation::Sqlite(dir.join("ingest.db"));
    let gateway = Gateway::start(&config).await?;
    while !gateway.metrics.mqtt_connected.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    publish_all(gateway.mqtt_addr, readings, meters).await?;
    // Committed and acknowledged, then folded into chunks and meter state (the
    // writer's deferred work counts too).
    while gateway.metrics.readings_accepted.load(Relaxed) < readings as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let acknowledged = started.elapsed();
    while gateway.store.reading_count()? < readings as i64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "   (all acknowledged after {:.2} s, folded after {:.2} s)",
        acknowledged.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    let body = gateway.metrics.render();
    let metric = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or("?")
            .to_string()
    };
    let batches = metric("stillwater_commit_batch_messages_count");
    let folds = metric("stillwater_store_folds_total");
    println!("   (gateway committed in {batches} transactions and {folds} folds)");
    gateway.stop().await?;
    Ok(readings as f64 / elapsed.as_secs_f64())
}

fn message(readings: Vec<Reading>) -> Message {
    Message {
        topic: String::new(),
        received_at: Timestamp::from_secs(chrono::Utc::now().timestamp()),
        received: Instant::now(),
        decoded: Decoded {
            meter: None,
            readings,
            rejections: Vec::new(),
        },
        payload_head: Vec::new(),
        ack: None,
    }
}

fn reading(meter: &str, ts: i64, total_l: i64) -> Reading {
    Reading {
        meter: MeterId::parse(meter).unwrap(),
        ts: Timestamp::from_secs(ts),
        total: Litres::new(total_l),
        flow_lph: Some(0),
        battery_pct: Some(90),
        status: StatusFlags::default(),
        seq: None,
    }
}

/// `count` one-contact households with meters `{prefix}0000000`, ….
/// Registers `count` households and gives every meter a reading, then starts the
/// release binary on that database and waits for /healthz.
fn startup(dir: &std::path::Path, count: usize) -> anyhow::Result<(f64, f64, f64)> {
    let db = dir.join("registry.db");
    let store = Store::open(&db)?;
    let now = chrono::Utc::now().timestamp();
    let households = sample_households("REG-", count);
    stillwater::actions::meters::register(&store, &bench_actor(), &households, now)?;
    let mut writer = Writer::open(&store, 100, Arc::new(Metrics::default()))?;
    for chunk in households.chunks(4096) {
        let batch: Vec<Message> = chunk
            .iter()
            .map(|h| message(vec![reading(h.meter.as_str(), now - 3600, 1000)]))
            .collect();
        writer.write_batch(&batch)?;
    }
    drop(writer);
    // Every meter with a routine learned over four weeks, as after a month
    // of operation (the engine keeps it with the meter's state).
    let mut routine = stillwater::detect::Routine::default();
    let mut total = 1000;
    for hour in 0..28 * 24 {
        if matches!(hour % 24, 7 | 12 | 19) {
            total += 20;
        }
        let reading =
            stillwater::domain::StoredReading::plain(now - (28 * 24 - hour) * 3600, total);
        routine.observe(&reading, 0, chrono_tz::Asia::Shanghai, &[]);
    }
    let blob = routine.encode();
    {
        let mut connection = rusqlite::Connection::open(&db)?;
        let tx = connection.transaction()?;
        tx.execute(
            "UPDATE meter_state SET routine = ?1, evaluated_through = last_reading_ts",
            [&blob],
        )?;
        tx.commit()?;
    }
    store.checkpoint()?;

    let port = free_port()?;
    let http_port = free_port()?;
    let config = dir.join("startup.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nlisten = \"127.0.0.1:{port}\"\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n[store]\npath = \"{}\"\n[log]\nfilter = \"warn\"\n",
            db.display()
        ),
    )?;
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .spawn()?;
    let healthy = loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", http_port)) {
            use std::io::{Read, Write};
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            if response.starts_with("HTTP/1.1 200") {
                break started.elapsed();
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the gateway did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    let (rss, peak) = (field("VmRSS:"), field("VmHWM:"));
    child.kill()?;
    child.wait()?;
    Ok((healthy.as_secs_f64(), rss, peak))
}

/// Stores `count` hourly readings over 10,000 meters in arrival order and
/// returns the file's bytes per reading and the write rate.
fn bytes_per_reading(dir: &std::path::Path, count: usize) -> anyhow::Result<(f64, f64)> {
    let store = Store::open(dir.join("size.db"))?;
    let (written, rate) = write_hourly(&store, count, 10_000)?;
    store.checkpoint()?;
    let bytes = std::fs::metadata(store.path().unwrap())?.len() as f64;
    Ok((bytes / written as f64, rate))
}

/// Part 4 on PostgreSQL: 1,000 meters' hourly readings in a new schema.
fn postgres_bytes_per_reading(url: &str, count: usize) -> anyhow::Result<(f64, f64)> {
    let schema = format!("sw_bench_{}", std::process::id());
    in_schema(url, &schema, |client, scoped| {
        let store = Store::open_postgres(scoped, None)?;
        let (written, rate) = write_hourly(&store, count, 1_000)?;
        client.batch_execute("VACUUM ANALYZE")?;
        let bytes: i64 = client
            .query_one(
                "SELECT CAST(sum(pg_total_relation_size(c.oid)) AS BIGINT) FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relkind = 'r'",
                &[&schema],
            )?
            .get(0);
        Ok((bytes as f64 / written as f64, rate))
    })
}

/// Writes `count` hourly readings of up to `most_meters` meters through the
/// store's writer, 4,096 to a batch; (readings written, readings a second).
fn write_hourly(store: &Store, count: usize, most_meters: usize) -> anyhow::Result<(usize, f64)> {
    let meters = most_meters.min(count);
    let hours = count / meters;
    let mut writer = Writer::open(store, 100, Arc::new(Metrics::default()))?;
    let ids: Vec<String> = (0..meters).map(|m| format!("SIZE-{m:05}")).collect();
    let start = chrono::Utc::now().timestamp() / 3600 * 3600 - hours as i64 * 3600;
    let mut rng = firmware_sim::Rng::new(7);
    let mut totals: Vec<i64> = (0..meters)
        .map(|_| 10_000 + (rng.next_u64() % 500_000) as i64)
        .collect();
    let began = Instant::now();
    let mut batch = Vec::with_capacity(4096);
    for hour in 0..hours {
        for (meter, id) in ids.iter().enumerate() {
            totals[meter] += (rng.next_u64() % 30) as i64 * i64::from(rng.next_f64() < 0.5);
            batch.push(message(vec![reading(
                id,
                start + hour as i64 * 3600,
                totals[meter],
            )]));
            if batch.len() == 4096 {
                writer.write_batch(&batch)?;
                batch.clear();
            }
        }
    }
    writer.write_batch(&batch)?;
    let elapsed = began.elapsed();
    let written = hours * meters;
    Ok((written, written as f64 / elapsed.as_secs_f64()))
}
