//! What the benchmarks share: sizes from the environment, the readings
//! publishers send, and households to register.

#![allow(dead_code)] // each benchmark uses its part

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stillwater::domain::MeterId;
use stillwater::registry::{Contact, NewHousehold};

/// MQTT clients publishing at once.
pub const PUBLISHERS: usize = 4;

pub fn env_size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn payload(meter: usize, index: usize, per_meter: usize) -> String {
    let now = chrono::Utc::now().timestamp() / 3600 * 3600;
    let ts = chrono::DateTime::from_timestamp(now - (per_meter - index) as i64 * 3600, 0).unwrap();
    format!(
        r#"{{"ts":"{}","total_l":{},"battery_pct":90}}"#,
        ts.to_rfc3339(),
        1000 + index * 7 + meter % 5
    )
}

/// Publishes `readings` QoS 1 messages from PUBLISHERS clients, round-robin over `meters`.
pub async fn publish_all(addr: SocketAddr, readings: usize, meters: usize) -> anyhow::Result<()> {
    let per_meter = readings.div_ceil(meters);
    let mut tasks = Vec::new();
    for publisher in 0..PUBLISHERS {
        let mut options = MqttOptions::new(
            format!("bench-pub-{publisher}"),
            addr.ip().to_string(),
            addr.port(),
        );
        options
            .set_keep_alive(Duration::from_secs(60))
            .set_inflight(100);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let share: Vec<usize> = (publisher..readings).step_by(PUBLISHERS).collect();
        let expected = share.len();
        tasks.push(tokio::spawn(async move {
            let poller = tokio::spawn(async move {
                let mut acked = 0;
                while acked < expected {
                    if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await? {
                        acked += 1;
                    }
                }
                anyhow::Ok(())
            });
            for n in share {
                let (meter, index) = (n % meters, n / meters);
                let topic = format!("meters/BENCH-{meter:07}/reading");
                client
                    .publish(
                        topic,
                        QoS::AtLeastOnce,
                        false,
                        payload(meter, index, per_meter),
                    )
                    .await?;
            }
            poller.await??;
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

pub fn sample_households(prefix: &str, count: usize) -> Vec<NewHousehold> {
    let phone = stillwater::domain::PhoneNumber::parse("13800138000").unwrap();
    (0..count)
        .map(|n| NewHousehold {
            row: n + 2,
            meter: MeterId::parse(&format!("{prefix}{n:07}")).unwrap(),
            resident_name: format!("住户{n}"),
            address: format!("中山市石岐区民生路{n}号"),
            category: "elderly_alone".into(),
            timezone: chrono_tz::Asia::Shanghai,
            reporting_interval_min: 60,
            contacts: vec![Contact {
                name: "社工".into(),
                phone: phone.clone(),
                step: 1,
            }],
            notes: String::new(),
            check_in_phone: None,
            imei: None,
            platform_device_id: None,
        })
        .collect()
}

/// A loopback port nothing listens on just now (for a process started later).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs `work` in a new PostgreSQL schema `name` of the database at `url`,
/// dropped after whatever happens; `work` gets a client and the URL that
/// puts a connection in the schema.
pub fn in_schema<T>(
    url: &str,
    name: &str,
    work: impl FnOnce(&mut postgres::Client, &str) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    client.batch_execute(&format!("CREATE SCHEMA {name}"))?;
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{name}");
    let result = work(&mut client, &scoped);
    client.batch_execute(&format!("DROP SCHEMA {name} CASCADE"))?;
    result
}

/// The benchmarks register households as an administrator would.
pub fn bench_actor() -> stillwater::domain::Actor {
    use stillwater::domain::{Actor, Channel, Role};
    Actor::new("bench", Role::Admin, Channel::Cli)
}
