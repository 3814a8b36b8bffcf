//! Reading past a PUBLISH too large to take: its header, parsed by hand
//! as the bytes arrive (the codec only frames packets it will read whole).

use rumqttc::mqttbytes::v4::Packet;
use rumqttc::mqttbytes::QoS;

use super::MAX_PACKET;

/// The parts of an oversize PUBLISH read before its payload.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct OversizeHeader {
    pub topic: String,
    pub qos: QoS,
    pub pkid: u16,
    /// Bytes from the packet's start to its payload.
    pub payload_at: usize,
    /// The whole packet, bytes.
    pub frame_len: usize,
}

/// The header of the too-large packet at the start of `buf`: `None` until
/// enough has arrived, an error when it is not a PUBLISH one can read past.
pub(super) fn oversize_header(buf: &[u8]) -> Option<Result<OversizeHeader, String>> {
    let byte1 = *buf.first()?;
    if byte1 >> 4 != 3 {
        return Some(Err(format!(
            "a packet of type {} longer than {MAX_PACKET} bytes",
            byte1 >> 4
        )));
    }
    let qos = match (byte1 >> 1) & 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => return Some(Err("a PUBLISH with QoS 3".into())),
    };
    let mut remaining = 0usize;
    let mut at = 1;
    loop {
        let byte = *buf.get(at)?;
        remaining |= usize::from(byte & 0x7F) << (7 * (at - 1));
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return Some(Err("a malformed remaining length".into()));
        }
    }
    let topic_len = usize::from(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]));
    let topic_at = at + 2;
    let pkid_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let payload_at = topic_at + topic_len + pkid_len;
    if payload_at > at + remaining {
        return Some(Err("a PUBLISH shorter than its topic".into()));
    }
    if buf.len() < payload_at {
        return None;
    }
    let topic = String::from_utf8_lossy(&buf[topic_at..topic_at + topic_len]).into_owned();
    let pkid = if pkid_len == 2 {
        u16::from_be_bytes([buf[topic_at + topic_len], buf[topic_at + topic_len + 1]])
    } else {
        0
    };
    Some(Ok(OversizeHeader {
        topic,
        qos,
        pkid,
        payload_at,
        frame_len: at + remaining,
    }))
}

pub(super) fn packet_name(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(_) => "a second CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::PubAck(_) => "PUBACK (nothing is ever delivered to it)",
        Packet::PubRec(_) => "PUBREC (nothing is ever delivered to it)",
        Packet::PubComp(_) => "PUBCOMP (nothing is ever delivered to it)",
        Packet::SubAck(_) => "SUBACK",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingResp => "PINGRESP",
        _ => "that packet",
    }
}

/// The protocol level a CONNECT at the start of `buf` asks for (4: MQTT
/// 3.1.1, 5: MQTT 5), read from its bytes without parsing the rest.
pub(super) fn protocol_level(buf: &[u8]) -> Option<u8> {
    if buf.first()? >> 4 != 1 {
        return None;
    }
    // The remaining length's bytes, then the protocol name ("MQTT", length-prefixed).
    let mut at = 1;
    while buf.get(at)? & 0x80 != 0 {
        at += 1;
    }
    let name_len = usize::from(u16::from_be_bytes([*buf.get(at + 1)?, *buf.get(at + 2)?]));
    buf.get(at + 3 + name_len).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversize_publish_header_is_read_as_it_arrives() {
        // PUBLISH QoS 1, remaining length 200,000 (3 bytes), topic "m/A", packet id 7.
        let mut packet = vec![0x32];
        let mut remaining = 200_000usize;
        while remaining > 0 {
            let mut byte = (remaining % 128) as u8;
            remaining /= 128;
            if remaining > 0 {
                byte |= 0x80;
            }
            packet.push(byte);
        }
        packet.extend_from_slice(&[0, 3, b'm', b'/', b'A', 0, 7, b'{']);
        for cut in 0..packet.len() - 1 {
            assert_eq!(oversize_header(&packet[..cut]), None, "{cut} bytes");
        }
        let header = oversize_header(&packet).unwrap().unwrap();
        assert_eq!(
            header,
            OversizeHeader {
                topic: "m/A".into(),
                qos: QoS::AtLeastOnce,
                pkid: 7,
                payload_at: 11,
                frame_len: 4 + 200_000,
            }
        );
        // Not a PUBLISH: cannot be read past.
        assert!(oversize_header(&[0x82, 0xFF, 0xFF, 0x7F]).unwrap().is_err());
    }

    #[test]
    fn the_protocol_level_is_read_from_a_connect() {
        // CONNECT, remaining length 16, "MQTT", level 5, flags, keep-alive, …
        let v5 = [
            0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0, 0, 1, b'a',
        ];
        assert_eq!(protocol_level(&v5), Some(5));
        let mut v4 = v5;
        v4[8] = 4;
        assert_eq!(protocol_level(&v4), Some(4));
        assert_eq!(protocol_level(&v5[..5]), None);
        assert_eq!(protocol_level(&[0x30, 0]), None, "not a CONNECT");
    }
}
