//! The embedded MQTT server: meters connect to the gateway itself, and a
//! PUBLISH is acknowledged only after what it carried — its readings, or the
//! record of its rejection — is committed.
//!
//! A general-purpose broker acknowledges a meter's PUBLISH as soon as it holds
//! the message, before any subscriber has stored it: a crash between the two
//! loses readings the meter was told were safe. Here the acknowledgement is the
//! writer's, run after COMMIT, and PUBACKs go out in the order the PUBLISHes
//! came in (the writer commits in arrival order).
//!
//! MQTT 3.1.1 over TCP, framed by rumqttc's packet codec. QoS 0, 1 and 2
//! publishes; keep-alive; username and password; one connection per client id
//! (a new one replaces the old); persistent sessions, remembered across
//! restarts ([`SessionBook`]): a meter that reconnects with clean session off
//! is told its session is present, so it sends again what was not
//! acknowledged — a client told otherwise must discard it. Not done, on
//! purpose: delivering messages to subscribers (each SUBSCRIBE filter is
//! refused), retained messages and wills. A PUBLISH larger than the gateway
//! takes is read past, recorded as `oversize` and acknowledged: the connection
//! survives it.
//!
//! Long on purpose: one connection's whole life — CONNECT, each packet, the
//! path of an acknowledgement — reads in one place; framing, logins, TLS and
//! the reply writer are in `server/`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, Publish, SubAck,
    SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Secret;
use crate::metrics::Metrics;
use crate::pipeline::{Ack, Message};
use crate::wire::{self, Arrival, Topics};

mod frame;
mod login;
mod replies;
mod tls;
use frame::oversize_header;
use replies::{Reply, MAX_UNACKNOWLEDGED};
pub use tls::{tls_acceptor, TlsDoor};

/// Largest packet read whole: the largest payload the gateway decodes, a
/// topic of any length and the headers. A larger PUBLISH is read past.
pub const MAX_PACKET: usize = wire::MAX_PAYLOAD_BYTES + 64 * 1024 + 16;
/// How long a new connection may take to send its CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(
        "cannot start the embedded MQTT server: {0} is already in use (another broker such as Mosquitto?). \
         Set [mqtt] listen to a free address, or mode = \"external\" to use the broker already there"
    )]
    AddressInUse(SocketAddr),
    #[error("cannot start the embedded MQTT server on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Where the server remembers which clients have a persistent session (the
/// gateway's database). Calls may block: the server makes them off its tasks.
pub trait SessionBook: Send + Sync {
    /// The hash of `meter`'s own login (`domain::login_hash`), if it has one.
    fn meter_login(&self, meter: &str) -> Result<Option<Vec<u8>>, String>;
    /// Records `client_id`'s persistent session; whether it existed already.
    fn remember(&self, client_id: &str) -> Result<bool, String>;
    /// Ends `client_id`'s persistent session, if it had one.
    fn forget(&self, client_id: &str) -> Result<(), String>;
}

/// What the server checks and decodes with.
#[derive(Clone)]
pub struct Settings {
    /// Required of every client when set.
    pub credentials: Option<(String, Secret)>,
    pub topics: Topics,
    /// How far ahead of the gateway's clock a reading may be dated, seconds.
    pub max_clock_ahead_s: i64,
    /// Meters may log in with their own login, and then publish only their
    /// own readings.
    pub meter_logins: bool,
    pub sessions: Arc<dyn SessionBook>,
}

/// Binds `listen` (port 0 picks a free port).
pub async fn bind(listen: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(listen).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServerError::AddressInUse(listen)
        } else {
            ServerError::Bind {
                addr: listen,
                source,
            }
        }
    })
}

/// Everything the connections share.
struct Shared {
    settings: Settings,
    outbox: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    /// The live connection of each client id: (connection number, its stop).
    clients: Mutex<HashMap<String, (u64, CancellationToken)>>,
    next_connection: AtomicU64,
}

/// Accepts meters on `listener` (and over TLS on `tls`) until `shutdown`,
/// handing every message to the writer through `outbox`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsDoor>,
    settings: Settings,
    outbox: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        settings,
        outbox,
        metrics: metrics.clone(),
        clock,
        clients: Mutex::new(HashMap::new()),
        next_connection: AtomicU64::new(1),
    });
    metrics.mqtt_connected.store(true, Relaxed);
    let secure = tls.map(|door| {
        tokio::spawn(accept(
            door.listener,
            Some(door.acceptor),
            shared.clone(),
            shutdown.clone(),
        ))
    });
    accept(listener, None, shared, shutdown).await;
    if let Some(secure) = secure {
        let _ = secure.await;
    }
    metrics.mqtt_connected.store(false, Relaxed);
}

/// Accepts connections on `listener` until `shutdown`; over TLS with `tls`.
async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(%error, "could not accept an MQTT connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (shared, stop) = (shared.clone(), shutdown.child_token());
        let Some(acceptor) = tls.clone() else {
            let (read, write) = stream.into_split();
            tokio::spawn(connection(read, write, peer, shared, stop));
            continue;
        };
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let (read, write) = tokio::io::split(stream);
                    connection(read, write, peer, shared, stop).await;
                }
                Ok(Err(error)) => {
                    shared.metrics.mqtt_errors.fetch_add(1, Relaxed);
                    tracing::warn!(%peer, %error, "a TLS handshake failed");
                }
                Err(_) => tracing::info!(%peer, "no TLS handshake in time"),
            }
        });
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// DISCONNECT, or the client closed the connection.
    Closed,
    /// Replaced by a newer connection with the same client id, or shutdown.
    Stopped,
    /// Nothing within the keep-alive (or CONNECT) time.
    Silent,
    /// Refused at CONNECT.
    Refused,
    /// Broke the protocol.
    Protocol(String),
    /// The writer is gone: the gateway is stopping.
    WriterGone,
}

/// One meter's connection: a task reading packets (this one) and a task
/// writing replies, which acknowledgements reach through a channel.
async fn connection<R, W>(
    mut read: R,
    write: W,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, replies) = mpsc::unbounded_channel::<Reply>();
    let writer = tokio::spawn(replies::write(write, replies));
    let mut session = Session {
        shared: shared.clone(),
        peer,
        out,
        client_id: None,
        meter: None,
        unacknowledged: Arc::new(tokio::sync::Semaphore::new(MAX_UNACKNOWLEDGED)),
        number: shared.next_connection.fetch_add(1, Relaxed),
        stop,
        buf: BytesMut::with_capacity(4096),
    };
    let end = session.run(&mut read).await;
    match &end {
        End::Closed | End::Stopped => {
            tracing::debug!(%peer, client = ?session.client_id, ?end, "MQTT connection ended")
        }
        End::Silent | End::Refused => {
            tracing::info!(%peer, client = ?session.client_id, ?end, "MQTT connection ended")
        }
        End::Protocol(why) => {
            shared.metrics.mqtt_errors.fetch_add(1, Relaxed);
            tracing::warn!(%peer, client = ?session.client_id, %why, "closed an MQTT connection that broke the protocol");
        }
        End::WriterGone => {}
    }
    if let Some(id) = &session.client_id {
        let mut clients = shared.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.get(id).is_some_and(|(n, _)| *n == session.number) {
            clients.remove(id);
        }
    }
    // The writer ends once every pending acknowledgement has run or been
    // dropped; a client that stopped reading gets a little time, no more.
    drop(session);
    drop(shared);
    let abort = writer.abort_handle();
    if tokio::time::timeout(CONNECT_TIMEOUT, writer).await.is_err() {
        abort.abort();
    }
}

/// What came off the wire.
enum Incoming {
    Packet(Packet),
    /// A PUBLISH larger than [`MAX_PACKET`], read past.
    Oversize {
        topic: String,
        qos: QoS,
        pkid: u16,
        payload_len: usize,
        head: Vec<u8>,
    },
}

struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// Replies to the client (the writer task sends them).
    out: mpsc::UnboundedSender<Reply>,
    /// One permit per acknowledgement not yet written: a client that publishes
    /// without reading its PUBACKs is read no further once it holds them all.
    unacknowledged: Arc<tokio::sync::Semaphore>,
    client_id: Option<String>,
    /// The meter this client logged in as, when it used a meter's own login:
    /// it may publish that meter's readings only.
    meter: Option<String>,
    number: u64,
    /// Cancelled at shutdown, or by a newer connection with the same client id.
    stop: CancellationToken,
    buf: BytesMut,
}

impl Session {
    async fn run(&mut self, read: &mut (impl AsyncRead + Unpin)) -> End {
        let connect = match self.next(read, Some(CONNECT_TIMEOUT)).await {
            Ok(Incoming::Packet(Packet::Connect(connect)))
                if connect.protocol == rumqttc::mqttbytes::Protocol::V4 =>
            {
                connect
            }
            Ok(Incoming::Packet(Packet::Connect(_))) => return self.refuse_version(),
            Ok(_) => return End::Protocol("the first packet was not CONNECT".into()),
            // An MQTT 5 CONNECT may not even frame as 3.1.1: say which version we speak.
            Err(End::Protocol(_)) if frame::protocol_level(&self.buf) == Some(5) => {
                return self.refuse_version()
            }
            Err(end) => return end,
        };
        let keep_alive = match self.accept(connect).await {
            Ok(keep_alive) => keep_alive,
            Err(end) => return end,
        };
        loop {
            let incoming = match self.next(read, keep_alive).await {
                Ok(incoming) => incoming,
                Err(end) => return end,
            };
            let outcome = match incoming {
                Incoming::Packet(Packet::Publish(publish)) => self.publish(publish).await,
                Incoming::Oversize {
                    topic,
                    qos,
                    pkid,
                    payload_len,
                    head,
                } => {
                    let topics = &self.shared.settings.topics;
                    let decoded = self
                        .refused(&topic)
                        .unwrap_or_else(|| wire::oversize(topics, &topic, payload_len));
                    let at = self.arrival().at;
                    self.hand_over(topic, decoded, &head, qos, pkid, at).await
                }
                Incoming::Packet(Packet::PubRel(pubrel)) => {
                    self.reply(Packet::PubComp(PubComp::new(pubrel.pkid)));
                    Ok(())
                }
                Incoming::Packet(Packet::PingReq) => {
                    self.reply(Packet::PingResp);
                    Ok(())
                }
                Incoming::Packet(Packet::Subscribe(subscribe)) => {
                    tracing::info!(peer = %self.peer, client = ?self.client_id, filters = ?subscribe.filters.iter().map(|f| &f.path).collect::<Vec<_>>(),
                        "refused a subscription: the embedded server takes readings and delivers nothing");
                    let refused = vec![SubscribeReasonCode::Failure; subscribe.filters.len()];
                    self.reply(Packet::SubAck(SubAck::new(subscribe.pkid, refused)));
                    Ok(())
                }
                Incoming::Packet(Packet::Unsubscribe(unsubscribe)) => {
                    self.reply(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)));
                    Ok(())
                }
                Incoming::Packet(Packet::Disconnect) => Err(End::Closed),
                Incoming::Packet(other) => Err(End::Protocol(format!(
                    "a client may not send {}",
                    frame::packet_name(&other)
                ))),
            };
            if let Err(end) = outcome {
                return end;
            }
        }
    }

    /// Checks a CONNECT and answers it; the keep-alive to enforce.
    async fn accept(&mut self, connect: Connect) -> Result<Option<Duration>, End> {
        let Connect {
            keep_alive,
            client_id,
            clean_session,
            login,
            ..
        } = connect;
        match login::check(&self.shared.settings, login.as_ref()).await {
            Ok(meter) => self.meter = meter,
            Err(()) => {
                self.shared.metrics.mqtt_auth_failures.fetch_add(1, Relaxed);
                tracing::warn!(peer = %self.peer, client = %client_id, username = ?login.as_ref().map(|l| &l.username),
                    "refused an MQTT client: wrong or missing username and password");
                self.refuse(ConnectReturnCode::BadUserNamePassword);
                return Err(End::Refused);
            }
        }
        let client_id = if client_id.is_empty() {
            if !clean_session {
                // MQTT 3.1.1, 3.1.3-8: an empty id needs a clean session.
                self.refuse(ConnectReturnCode::BadClientId);
                return Err(End::Refused);
            }
            format!("anonymous-{}", self.number)
        } else {
            client_id
        };
        let replaced = {
            let mut clients = self
                .shared
                .clients
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            clients.insert(client_id.clone(), (self.number, self.stop.clone()))
        };
        if let Some((_, older)) = replaced {
            older.cancel();
        }
        let book = self.shared.settings.sessions.clone();
        let id = client_id.clone();
        let present = tokio::task::spawn_blocking(move || {
            if clean_session {
                book.forget(&id).map(|()| false)
            } else {
                book.remember(&id)
            }
        })
        .await
        .unwrap_or_else(|panic| Err(panic.to_string()));
        self.client_id = Some(client_id);
        let present = match present {
            Ok(present) => present,
            Err(error) => {
                // Without its session on record, a persistent client would be
                // told wrong on its next connection: refuse it for now.
                tracing::error!(peer = %self.peer, client = ?self.client_id, %error, "cannot record an MQTT session");
                self.refuse(ConnectReturnCode::ServiceUnavailable);
                return Err(End::Refused);
            }
        };
        self.reply(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            present,
        )));
        // MQTT 3.1.1, 3.1.2.10: one and a half keep-alives without a packet.
        Ok((keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500)))
    }

    /// Answers a client of another MQTT version: "unacceptable protocol
    /// version", in 3.1.1's words (MQTT 5 clients understand it).
    fn refuse_version(&self) -> End {
        tracing::info!(peer = %self.peer, "refused an MQTT client that does not speak 3.1.1");
        self.refuse(ConnectReturnCode::RefusedProtocolVersion);
        End::Refused
    }

    fn refuse(&self, code: ConnectReturnCode) {
        self.reply(Packet::ConnAck(ConnAck::new(code, false)));
    }

    fn reply(&self, packet: Packet) {
        // The writer task ends only after this session: a failed send means the
        // socket is gone, and the client will send again.
        let _ = self.out.send((packet, None));
    }

    async fn publish(&mut self, publish: Publish) -> Result<(), End> {
        let Publish {
            qos,
            topic,
            pkid,
            payload,
            ..
        } = publish;
        let now = self.arrival();
        let topics = &self.shared.settings.topics;
        let decoded = self
            .refused(&topic)
            .unwrap_or_else(|| wire::decode(topics, &topic, &payload, now));
        self.hand_over(topic, decoded, &payload, qos, pkid, now.at)
            .await
    }

    /// The `not_permitted` rejection when this client, logged in as a meter,
    /// publishes to a topic that is not that meter's.
    fn refused(&self, topic: &str) -> Option<crate::pipeline::Decoded> {
        let meter = self.meter.as_deref()?;
        let topics = &self.shared.settings.topics;
        (wire::meter_of_topic(topics, topic) != Some(meter))
            .then(|| login::not_permitted(topics, meter))
    }

    fn arrival(&self) -> Arrival {
        Arrival {
            at: self.shared.clock.now(),
            max_ahead_s: self.shared.settings.max_clock_ahead_s,
        }
    }

    /// Passes a decoded message to the writer, with the acknowledgement its
    /// QoS asks for to run after the commit.
    async fn hand_over(
        &mut self,
        topic: String,
        decoded: crate::pipeline::Decoded,
        payload: &[u8],
        qos: QoS,
        pkid: u16,
        received_at: crate::domain::Timestamp,
    ) -> Result<(), End> {
        self.shared.metrics.messages_received.fetch_add(1, Relaxed);
        let reply = match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(pkid))),
            QoS::ExactlyOnce => Some(Packet::PubRec(PubRec::new(pkid))),
        };
        let ack: Option<Ack> = match reply {
            None => None,
            Some(packet) => {
                let permit = tokio::select! {
                    permit = self.unacknowledged.clone().acquire_owned() => {
                        permit.map_err(|_| End::WriterGone)?
                    }
                    _ = self.stop.cancelled() => return Err(End::Stopped),
                };
                let out = self.out.clone();
                Some(Box::new(move || {
                    let _ = out.send((packet, Some(permit)));
                }) as Ack)
            }
        };
        let message = super::message(topic, decoded, payload, received_at, ack);
        self.shared
            .outbox
            .send(message)
            .await
            .map_err(|_| End::WriterGone)
    }

    /// The next packet, waiting at most `wait` for it (when given).
    async fn next(
        &mut self,
        read: &mut (impl AsyncRead + Unpin),
        wait: Option<Duration>,
    ) -> Result<Incoming, End> {
        loop {
            match Packet::read(&mut self.buf, MAX_PACKET) {
                Ok(packet) => return Ok(Incoming::Packet(packet)),
                Err(CodecError::InsufficientBytes(_)) => {}
                Err(CodecError::PayloadSizeLimitExceeded(_)) => {
                    return self.read_past(read, wait).await;
                }
                Err(error) => return Err(End::Protocol(format!("{error:?}"))),
            }
            self.fill(read, wait).await?;
        }
    }

    /// Reads more bytes into the buffer.
    async fn fill(
        &mut self,
        read: &mut (impl AsyncRead + Unpin),
        wait: Option<Duration>,
    ) -> Result<(), End> {
        let silent = async {
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.stop.cancelled() => Err(End::Stopped),
            _ = silent => Err(End::Silent),
            read = read.read_buf(&mut self.buf) => match read {
                Ok(0) | Err(_) => Err(End::Closed),
                Ok(_) => Ok(()),
            },
        }
    }

    /// Reads past a PUBLISH too large to take, keeping its topic, packet id
    /// and the head of its payload.
    async fn read_past(
        &mut self,
        read: &mut (impl AsyncRead + Unpin),
        wait: Option<Duration>,
    ) -> Result<Incoming, End> {
        let header = loop {
            match oversize_header(&self.buf) {
                Some(Ok(header)) => break header,
                Some(Err(why)) => return Err(End::Protocol(why)),
                None => self.fill(read, wait).await?,
            }
        };
        // The head of the payload that has already arrived, for installers.
        let start = header.payload_at.min(self.buf.len());
        let head_end = (header.payload_at + crate::pipeline::REJECTED_PAYLOAD_BYTES)
            .min(self.buf.len())
            .max(start);
        let head = self.buf[start..head_end].to_vec();
        let mut left = header.frame_len;
        loop {
            let take = left.min(self.buf.len());
            self.buf.advance(take);
            left -= take;
            if left == 0 {
                break;
            }
            self.fill(read, wait).await?;
        }
        Ok(Incoming::Oversize {
            topic: header.topic,
            qos: header.qos,
            pkid: header.pkid,
            payload_len: header.frame_len - header.payload_at,
            head,
        })
    }
}
