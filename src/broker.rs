//! The embedded MQTT broker (rumqttd), for zero set-up.
//!
//! It runs on its own threads inside the gateway process. The gateway does not
//! talk to it through any back door: ingest connects to it over TCP with rumqttc
//! exactly as it connects to an external broker, so both modes share one code
//! path. This module never touches readings.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::Secret;

/// Un-acknowledged QoS 1 messages the broker lets one connection hold.
pub const MAX_INFLIGHT: usize = 100;
/// Largest payload the broker accepts, bytes: the gateway itself rejects above
/// 64 KiB, and counts and records what it rejects; a larger publish makes the
/// broker close the meter's connection (its log says `PayloadSizeLimitExceeded`).
pub const MAX_PAYLOAD: usize = 2 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error(
        "cannot start the embedded MQTT broker: {0} is already in use (another broker such as Mosquitto?). \
         Set [mqtt] listen to a free address, or mode = \"external\" to use the broker already there"
    )]
    AddressInUse(SocketAddr),
    #[error("cannot start the embedded MQTT broker on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the embedded MQTT broker did not start listening on {0} within 10 s")]
    NotListening(SocketAddr),
    #[error("the embedded MQTT broker failed: {0}")]
    Broker(String),
}

/// A running embedded broker.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker {
    /// Where it listens (the real port when port 0 was asked for).
    pub addr: SocketAddr,
}

/// Starts rumqttd on `listen` (port 0 picks a free port) and waits until it accepts connections.
pub fn start(
    listen: SocketAddr,
    credentials: Option<(String, Secret)>,
) -> Result<EmbeddedBroker, BrokerError> {
    // rumqttd logs a failed bind on its own thread and carries on; probing first
    // turns a taken port into an error the operator sees.
    let addr = match TcpListener::bind(listen) {
        Ok(probe) => probe.local_addr().map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        })?,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(BrokerError::AddressInUse(listen))
        }
        Err(source) => {
            return Err(BrokerError::Bind {
                addr: listen,
                source,
            })
        }
    };
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: MAX_INFLIGHT,
        auth: credentials
            .clone()
            .map(|(user, password)| HashMap::from([(user, password.expose().to_string())])),
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
                tracing::error!(%error, "embedded MQTT broker stopped");
            }
        })
        .map_err(|error| BrokerError::Broker(error.to_string()))?;
    wait_until_listening(addr, credentials.as_ref())?;
    tracing::info!(%addr, "embedded MQTT broker listening");
    Ok(EmbeddedBroker { addr })
}

fn wait_until_listening(
    addr: SocketAddr,
    credentials: Option<&(String, Secret)>,
) -> Result<(), BrokerError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_millis(1);
    loop {
        if answers_mqtt(addr, credentials) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BrokerError::NotListening(addr));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// An MQTT 3.1.1 CONNECT packet (clean session, 10 s keep-alive).
fn connect_packet(client_id: &str, credentials: Option<&(String, Secret)>) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut body = Vec::new();
    field(&mut body, b"MQTT");
    let flags = if credentials.is_some() { 0xC2 } else { 0x02 };
    body.extend_from_slice(&[4, flags, 0, 10]);
    field(&mut body, client_id.as_bytes());
    if let Some((user, password)) = credentials {
        field(&mut body, user.as_bytes());
        field(&mut body, password.expose().as_bytes());
    }
    let mut packet = vec![0x10];
    let mut remaining = body.len();
    loop {
        let mut byte = (remaining % 128) as u8;
        remaining /= 128;
        if remaining > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if remaining == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    packet
}

/// Sends an MQTT CONNECT and waits for the CONNACK, so the probe looks like a
/// short-lived client rather than a broken connection in the broker's log.
fn answers_mqtt(addr: SocketAddr, credentials: Option<&(String, Secret)>) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut connack = [0u8; 4];
    let answered = stream
        .write_all(&connect_packet("stillwater-probe", credentials))
        .is_ok()
        && stream.read_exact(&mut connack).is_ok()
        && connack[0] == 0x20;
    let _ = stream.write_all(&[0xE0, 0]); // DISCONNECT
    answered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_speaks_mqtt_3_1_1() {
        assert_eq!(
            connect_packet("p", None),
            [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 1, b'p']
        );
        let long = (String::from("u"), Secret::new("x".repeat(200)));
        let packet = connect_packet("p", Some(&long));
        assert_eq!(
            &packet[..3],
            [0x10, 0xDA, 0x01],
            "remaining length 218 as a two-byte varint"
        );
        assert_eq!(packet[10], 0xC2, "username and password flags");
    }
}
