//! rumqttd started in-process: a general-purpose MQTT broker that the tests
//! and benchmarks use as an external broker (one that outlives a killed
//! gateway), and whose own publish → subscribe rate the ingest benchmark
//! measures the gateway against.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use thiserror::Error;

/// Un-acknowledged QoS 1 messages the broker lets one connection hold.
pub const MAX_INFLIGHT: usize = 100;
/// Largest payload the broker accepts, bytes.
pub const MAX_PAYLOAD: usize = 2 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("cannot start rumqttd on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("rumqttd did not start listening on {0} within 10 s")]
    NotListening(SocketAddr),
    #[error("rumqttd failed: {0}")]
    Broker(String),
}

/// A running rumqttd.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker {
    /// Where it listens (the real port when port 0 was asked for).
    pub addr: SocketAddr,
}

/// Starts rumqttd on `listen` (port 0 picks a free port) and waits until it accepts connections.
pub fn start(listen: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
    // rumqttd logs a failed bind on its own thread and carries on; probing first
    // turns a taken port into an error the operator sees.
    let addr = TcpListener::bind(listen)
        .and_then(|probe| probe.local_addr())
        .map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        })?;
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: MAX_INFLIGHT,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "stillwater-v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 100_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 64 * 1024 * 1024,
            max_segment_count: 8,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("v4".to_string(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            if let Err(error) = broker.start() {
                eprintln!("rumqttd stopped: {error}");
            }
        })
        .map_err(|error| BrokerError::Broker(error.to_string()))?;
    wait_until_listening(addr)?;
    Ok(EmbeddedBroker { addr })
}

fn wait_until_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_millis(1);
    loop {
        if answers_mqtt(addr) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BrokerError::NotListening(addr));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// An MQTT 3.1.1 CONNECT packet: client id "probe", clean session, 10 s keep-alive.
const PROBE_CONNECT: [u8; 19] = [
    0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 5, b'p', b'r', b'o', b'b', b'e',
];

/// Sends an MQTT CONNECT and waits for the CONNACK, so the probe looks like a
/// short-lived client rather than a broken connection in the broker's log.
fn answers_mqtt(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut connack = [0u8; 4];
    let answered = stream.write_all(&PROBE_CONNECT).is_ok()
        && stream.read_exact(&mut connack).is_ok()
        && connack[0] == 0x20;
    let _ = stream.write_all(&[0xE0, 0]); // DISCONNECT
    answered
}
