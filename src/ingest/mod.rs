//! How messages come in: from meters connected to the embedded MQTT server
//! ([`server`]), or from an external broker through the subscription loop
//! here — broker → decode → writer, and acknowledgements back to the broker
//! only after the writer has committed.
//!
//! With an external broker the gateway is a client (rumqttc). The session is
//! persistent (clean session off) and acknowledgements are manual,
//! so a reading the gateway has not committed is redelivered by the broker after
//! a reconnect or restart. Subscriptions are renewed on every ConnAck, and a lost
//! connection is retried with capped exponential back-off. This loop never
//! touches SQL; a payload that does not decode is passed on as a rejection, to be
//! recorded and acknowledged like any other message.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter, SubscribeReasonCode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::Secret;
use crate::domain::Timestamp;
use crate::metrics::Metrics;
use crate::pipeline::{Ack, Decoded, Message, REJECTED_PAYLOAD_BYTES};
use crate::wire::{self, Topics};

pub mod server;

/// Largest packet the gateway takes from an external broker.
const MAX_INCOMING_PACKET: usize = server::MAX_PACKET;

/// Where Mosquitto says how many queued messages it has dropped since it
/// started (for a subscriber that fell behind or was away: `max_queued_messages`).
pub const BROKER_DROPPED_TOPIC: &str = "$SYS/broker/publish/messages/dropped";

/// First and largest pause before reconnecting.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where and how to subscribe.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub credentials: Option<(String, Secret)>,
    pub topics: Topics,
    pub keep_alive: Duration,
    /// How far ahead of the gateway's clock a reading may be dated, seconds.
    pub max_clock_ahead_s: i64,
    /// Listen to the broker's own count of dropped messages
    /// ([`BROKER_DROPPED_TOPIC`]) and warn when it grows: external brokers.
    pub watch_broker_drops: bool,
    /// Subscribe as one of a group of gateways (`$share/GROUP/…`): the broker
    /// hands each message to one of them.
    pub share_group: Option<String>,
}

impl Subscription {
    /// The filters this gateway subscribes to: the readings' topics, shared
    /// in the group when there is one.
    pub fn filters(&self) -> Vec<String> {
        let filters = self.topics.filters();
        match &self.share_group {
            Some(group) => filters
                .into_iter()
                .map(|filter| format!("$share/{group}/{filter}"))
                .collect(),
            None => filters,
        }
    }
}

/// Consumes until `shutdown`, handing every message to the writer through `outbox`.
pub async fn run(
    subscription: Subscription,
    outbox: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut options = MqttOptions::new(
        &subscription.client_id,
        &subscription.host,
        subscription.port,
    );
    options
        .set_keep_alive(subscription.keep_alive)
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024);
    if let Some((user, password)) = &subscription.credentials {
        options.set_credentials(user, password.expose());
    }
    // Acks and subscriptions queue here; the broker bounds un-acked messages per
    // connection far below this, so the writer's `try_ack` never finds it full.
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    let broker = format!("{}:{}", subscription.host, subscription.port);
    let mut backoff = BACKOFF_START;
    let mut failing = false;
    let mut dropped: Option<u64> = None;
    // Which connection a message came on: its acknowledgement is sent only on
    // that connection. A broker redelivers what was not acknowledged when the
    // session resumes (stored once, acknowledged then, in its new order); an
    // old message's ack on a new connection is out of order to it (rumqttd
    // drops the connection for that, again and again).
    let connection = Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(publish)))
                if subscription.watch_broker_drops && publish.topic == BROKER_DROPPED_TOPIC =>
            {
                watch_drops(&broker, &publish.payload, &mut dropped, &metrics);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                metrics.messages_received.fetch_add(1, Relaxed);
                let received_at = clock.now();
                let decoded = wire::decode(
                    &subscription.topics,
                    &publish.topic,
                    &publish.payload,
                    wire::Arrival {
                        at: received_at,
                        max_ahead_s: subscription.max_clock_ahead_s,
                    },
                );
                let ack_client = client.clone();
                let (topic, payload) = (publish.topic.clone(), publish.payload.clone());
                let (current, came_on) = (connection.clone(), connection.load(Relaxed));
                let ack: Ack = Box::new(move || {
                    if current.load(Relaxed) != came_on {
                        tracing::debug!("a committed message came on an earlier connection; the broker redelivers it");
                    } else if let Err(error) = ack_client.try_ack(&publish) {
                        tracing::warn!(%error, "could not acknowledge a committed message; the broker will redeliver it");
                    }
                });
                let message = message(topic, decoded, &payload, received_at, Some(ack));
                if outbox.send(message).await.is_err() {
                    break; // the writer has stopped: shutting down
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                metrics.mqtt_connections.fetch_add(1, Relaxed);
                backoff = BACKOFF_START;
                failing = false;
                tracing::info!(%broker, session_present = connack.session_present, "connected to the MQTT broker");
                // Subscribe on every ConnAck: a broker that lost our session (restarted
                // without persistence) would otherwise leave us connected and deaf.
                let filters = subscription
                    .filters()
                    .into_iter()
                    .map(|filter| SubscribeFilter::new(filter, QoS::AtLeastOnce));
                if let Err(error) = client.try_subscribe_many(filters) {
                    tracing::error!(%error, "could not queue the subscription");
                }
                // A SUBSCRIBE of its own: in the same packet as the readings'
                // filters, a broker without `$SYS` (rumqttd) fails them all.
                if subscription.watch_broker_drops {
                    if let Err(error) = client.try_subscribe(BROKER_DROPPED_TOPIC, QoS::AtMostOnce)
                    {
                        tracing::debug!(%error, "could not queue the broker-drops subscription");
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(suback))) => {
                if suback.return_codes.len() == 1 && subscription.watch_broker_drops {
                    // The broker-drops subscription: brokers without it refuse or never publish.
                } else if suback
                    .return_codes
                    .iter()
                    .any(|code| matches!(code, SubscribeReasonCode::Failure))
                {
                    tracing::error!(%broker, "the broker refused a subscription: check its ACL for the gateway's user");
                } else {
                    metrics.mqtt_connected.store(true, Relaxed);
                    tracing::info!(%broker, filters = ?subscription.filters(), "subscribed");
                }
            }
            Ok(_) => {}
            Err(error) => {
                // Acks of this connection's messages are not sent on the next.
                connection.fetch_add(1, Relaxed);
                metrics.mqtt_connected.store(false, Relaxed);
                metrics.mqtt_errors.fetch_add(1, Relaxed);
                if !failing {
                    tracing::warn!(%broker, %error, "lost the MQTT broker; reconnecting with back-off");
                    failing = true;
                } else {
                    tracing::debug!(%broker, %error, retry_in = ?backoff, "still cannot reach the MQTT broker");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    metrics.mqtt_connected.store(false, Relaxed);
}

/// Takes the broker's count of dropped messages: kept in `/metrics`, and a
/// warning when it is not zero at first sight or has grown since (a broker
/// that restarted counts from zero again).
fn watch_drops(broker: &str, payload: &[u8], last: &mut Option<u64>, metrics: &Metrics) {
    let Some(count) = std::str::from_utf8(payload)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
    else {
        return;
    };
    metrics
        .broker_dropped
        .store(i64::try_from(count).unwrap_or(i64::MAX), Relaxed);
    let new = count.saturating_sub(last.unwrap_or(0));
    if new > 0 {
        tracing::warn!(
            %broker,
            dropped = new,
            since_start = count,
            "the broker reports dropping queued messages: readings meant for the gateway may be lost. \
             Let it queue without limit for the gateway's session (Mosquitto: max_queued_messages 0; see docs/operations.md)"
        );
    }
    *last = Some(count);
}

/// A decoded message for the writer; the rejections in it are logged and the
/// head of `payload` kept for `stillwater ingest rejected`.
pub(crate) fn message(
    topic: String,
    decoded: Decoded,
    payload: &[u8],
    received_at: Timestamp,
    ack: Option<Ack>,
) -> Message {
    let payload_head = if decoded.rejections.is_empty() {
        Vec::new()
    } else {
        for rejection in &decoded.rejections {
            tracing::info!(%topic, reason = rejection.reason.as_str(), detail = %rejection.detail, "rejected a message");
        }
        payload[..payload.len().min(REJECTED_PAYLOAD_BYTES)].to_vec()
    };
    Message {
        topic,
        received_at,
        received: Instant::now(),
        decoded,
        payload_head,
        ack,
    }
}
