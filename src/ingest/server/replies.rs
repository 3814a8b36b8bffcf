//! Writing replies to a client: CONNACK, PUBACK and the rest, in the order
//! they come, as many as are ready per write.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// A packet for the client, with the permit its acknowledgement held.
pub(super) type Reply = (Packet, Option<tokio::sync::OwnedSemaphorePermit>);

/// Acknowledgements one connection may have pending (committing, or waiting
/// to be written); MQTT clients keep far fewer in flight (rumqttc: 100,
/// Mosquitto's clients: 20).
pub(super) const MAX_UNACKNOWLEDGED: usize = 1024;

/// Writes `replies` to `write` until the channel closes, or after a refused
/// CONNACK; then shuts the connection down.
pub(super) async fn write(
    mut write: impl AsyncWrite + Unpin,
    mut replies: mpsc::UnboundedReceiver<Reply>,
) {
    let mut buf = BytesMut::with_capacity(1024);
    // Held until their acknowledgements are written.
    let mut permits = Vec::new();
    while let Some(first) = replies.recv().await {
        let mut next = Some(first);
        let mut last = false;
        while let Some((packet, permit)) = next {
            last |=
                matches!(&packet, Packet::ConnAck(ack) if ack.code != ConnectReturnCode::Success);
            if packet.write(&mut buf, usize::MAX).is_err() {
                return;
            }
            permits.extend(permit);
            next = replies.try_recv().ok();
        }
        if write.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
        permits.clear();
        if last {
            break;
        }
    }
    let _ = write.shutdown().await;
}
