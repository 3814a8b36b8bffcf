//! OneNET's envelope: who sent a push, and what it holds.
//!
//! OneNET signs with `Base64(MD5(token + nonce + msg))` — the URL check
//! (`GET ?msg&nonce&signature`, answered by echoing `msg`) and every push.
//! The legacy generation (`msg_signature`) signs the `msg` value exactly as it
//! sits in the body, so it is checked on those raw bytes, never on a
//! re-serialised copy; OneNET Studio (`signature`) sends `msg` as a string.
//! Secure mode encrypts: legacy AES-256-CBC with a 43-character key (plain
//! text: 16 random bytes, a 4-byte length, the message), Studio AES-128-CBC
//! with a 16-character key that is also the IV; the signature covers the
//! cipher text. Pure.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use base64::Engine as _;
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::platform::{self, Item};

/// Why a push was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The signature does not match: not from OneNET (or another token).
    Signature(String),
    /// The body cannot be read.
    Unreadable(String),
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `Base64(MD5(token + nonce + msg))`.
pub fn signature(token: &str, nonce: &str, msg: &[u8]) -> String {
    let mut md5 = Md5::new();
    md5.update(token.as_bytes());
    md5.update(nonce.as_bytes());
    md5.update(msg);
    base64(&md5.finalize())
}

/// Whether `presented` signs `msg`. A `+` that arrived unencoded in a URL
/// reads as a space: put back before comparing. Compared as digests, so
/// the time taken says nothing about where they differ.
pub fn signed(token: &str, nonce: &str, msg: &[u8], presented: &str) -> bool {
    let presented = presented.trim().replace(' ', "+");
    crate::domain::same_secret(&presented, &signature(token, nonce, msg))
}

type Aes256Cbc = cbc::Decryptor<aes::Aes256>;
type Aes128Cbc = cbc::Decryptor<aes::Aes128>;

/// The legacy secure mode: the 43-character EncodingAESKey.
pub fn decrypt_legacy(encoding_key: &str, enc_msg: &str) -> Result<Vec<u8>, String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(format!("{encoding_key}="))
        .map_err(|_| "the AES key is not OneNET's 43-character key".to_string())?;
    if key.len() != 32 {
        return Err("the AES key is not OneNET's 43-character key".into());
    }
    let cipher = base64::engine::general_purpose::STANDARD
        .decode(enc_msg.trim())
        .map_err(|error| format!("enc_msg is not base64: {error}"))?;
    let plain = Aes256Cbc::new_from_slices(&key, &key[..16])
        .map_err(|error| error.to_string())?
        .decrypt_padded_vec_mut::<Pkcs7>(&cipher)
        .map_err(|_| "enc_msg does not decrypt with this key".to_string())?;
    // 16 random bytes, the length (big-endian), the message.
    if plain.len() < 20 {
        return Err("the decrypted message is too short".into());
    }
    let length = u32::from_be_bytes([plain[16], plain[17], plain[18], plain[19]]) as usize;
    plain
        .get(20..20 + length)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "the decrypted message is shorter than it says".into())
}

/// OneNET Studio's secure mode: the 16-character key, which is also the IV.
pub fn decrypt_studio(key: &str, msg: &str) -> Result<Vec<u8>, String> {
    let cipher = base64::engine::general_purpose::STANDARD
        .decode(msg.trim())
        .map_err(|error| format!("msg is not base64: {error}"))?;
    Aes128Cbc::new_from_slices(key.as_bytes(), key.as_bytes())
        .map_err(|_| "the AES key must be OneNET Studio's 16 characters".to_string())?
        .decrypt_padded_vec_mut::<Pkcs7>(&cipher)
        .map_err(|_| "msg does not decrypt with this key".to_string())
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    msg: Option<&'a RawValue>,
    #[serde(default)]
    enc_msg: Option<String>,
    #[serde(default)]
    msg_signature: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    nonce: String,
}

/// A push's messages, once its signature is checked (and its message
/// decrypted when `aes_key` is set).
pub fn open(body: &[u8], token: &str, aes_key: Option<&str>) -> Result<Vec<Item>, Refused> {
    let unreadable = |why: String| Refused::Unreadable(why);
    let envelope: Envelope<'_> = serde_json::from_slice(body)
        .map_err(|error| unreadable(format!("the OneNET push is not its JSON: {error}")))?;
    let check = |signed_text: &[u8], presented: &str| {
        if signed(token, &envelope.nonce, signed_text, presented) {
            Ok(())
        } else {
            Err(Refused::Signature(
                "the signature does not match the token (is it OneNET's, with our token?)".into(),
            ))
        }
    };
    match (&envelope.msg_signature, &envelope.signature) {
        // Legacy: `msg` is an object or array, signed as it is in the body.
        (Some(presented), _) => {
            let text = match (&envelope.enc_msg, envelope.msg) {
                (Some(enc_msg), _) => {
                    check(enc_msg.as_bytes(), presented)?;
                    let key = aes_key.ok_or_else(|| {
                        unreadable("an encrypted push, but no AES key is configured".into())
                    })?;
                    decrypt_legacy(key, enc_msg).map_err(unreadable)?
                }
                (None, Some(raw)) => {
                    check(raw.get().as_bytes(), presented)?;
                    raw.get().as_bytes().to_vec()
                }
                (None, None) => return Err(unreadable("a push without msg or enc_msg".into())),
            };
            let msg: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|error| unreadable(format!("msg is not JSON: {error}")))?;
            Ok(platform::onenet_legacy(&msg))
        }
        // Studio: `msg` is a string.
        (None, Some(presented)) => {
            let raw = envelope
                .msg
                .ok_or_else(|| unreadable("a push without msg".into()))?;
            let msg: String = serde_json::from_str(raw.get())
                .map_err(|_| unreadable("OneNET Studio's msg must be a string".into()))?;
            check(msg.as_bytes(), presented)?;
            let text = match aes_key {
                Some(key) => {
                    let plain = decrypt_studio(key, &msg).map_err(unreadable)?;
                    String::from_utf8(plain).map_err(|_| unreadable("msg is not UTF-8".into()))?
                }
                None => msg,
            };
            Ok(vec![platform::onenet_studio(&text).map_err(unreadable)?])
        }
        (None, None) => Err(Refused::Signature("the push is not signed".into())),
    }
}

#[cfg(test)]
mod tests {
    //! The vectors of OneNET's own demo token and a real platform message,
    //! and own messages computed independently (see docs/platforms.md).
    use super::*;

    const REAL_MSG: &str = r#"{"at":1576828182709,"imei":"869975037677104","type":1,"ds_id":"3200_0_5750","value":"681071565022180400810CECCE09001D06B7E6282733167516","dev_id":576096445}"#;
    const DEMO_TOKEN: &str = "abcdefghijkmlnopqrstuvwxyz";

    #[test]
    fn a_real_platform_message_verifies() {
        assert_eq!(
            signature(DEMO_TOKEN, "_wk73A)a", REAL_MSG.as_bytes()),
            "H60kU2LlDEahPJB99zBj8Q=="
        );
        let body = format!(
            r#"{{"msg":{REAL_MSG},"msg_signature":"H60kU2LlDEahPJB99zBj8Q==","nonce":"_wk73A)a"}}"#
        );
        let items = open(body.as_bytes(), DEMO_TOKEN, None).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].device.imei.as_deref(), Some("869975037677104"));
        assert_eq!(items[0].device.device_id, "576096445");
        // Another token: refused.
        assert!(matches!(
            open(body.as_bytes(), "another-token", None),
            Err(Refused::Signature(_))
        ));
        // The same message re-serialised with its keys in another order would
        // not verify: the raw bytes are what is signed.
        let reordered = r#"{"msg":{"type":1,"at":1576828182709,"imei":"869975037677104","ds_id":"3200_0_5750","value":"681071565022180400810CECCE09001D06B7E6282733167516","dev_id":576096445},"msg_signature":"H60kU2LlDEahPJB99zBj8Q==","nonce":"_wk73A)a"}"#;
        assert!(open(reordered.as_bytes(), DEMO_TOKEN, None).is_err());
    }

    #[test]
    fn the_url_check_and_a_studio_push() {
        assert_eq!(
            signature("stillwater-token", "abcdefgh", b"r4nd0mMsg"),
            "VRXKBvIME+XO03VL4vhIaw=="
        );
        // A `+` that arrived as a space.
        assert!(signed(
            "stillwater-token",
            "abcdefgh",
            b"r4nd0mMsg",
            "VRXKBvIME XO03VL4vhIaw=="
        ));
        let msg = r#"{"projectId":"P1","productId":"PROD1","deviceName":"meter-0001","messageType":"notify","notifyType":"property","data":{"id":"1","params":{"totalFlow":{"value":1234.56,"time":1700000000000}}}}"#;
        assert_eq!(
            signature("stillwater-token", "Zx8Kq2Lp", msg.as_bytes()),
            "eDB37v2GFqr/lCabu29hjA=="
        );
        let body = serde_json::json!({"msg": msg, "nonce": "Zx8Kq2Lp",
            "signature": "eDB37v2GFqr/lCabu29hjA==", "time": 1_700_000_000_123_i64, "id": "3799902"});
        let items = open(body.to_string().as_bytes(), "stillwater-token", None).unwrap();
        assert_eq!(items[0].device.device_id, "meter-0001");
        let platform::Content::Fields(fields) = &items[0].content else {
            panic!("fields: {:?}", items[0].content)
        };
        assert_eq!(fields["totalFlow"], serde_json::json!(1234.56));
    }

    #[test]
    fn secure_modes_decrypt() {
        let cipher = "TuZobCK3WRLNeKu+pUg6vgR9tbeM0xdDrBHyouM1I50=";
        assert_eq!(
            decrypt_studio("0123456789abcdef", cipher).unwrap(),
            br#"{"hello":"stillwater"}"#
        );
        assert_eq!(
            signature("stillwater-token", "Zx8Kq2Lp", cipher.as_bytes()),
            "7sME66ztSHnZloxHp0ODmw=="
        );
        assert_eq!(
            decrypt_legacy(
                "TVRJek5EVTJOemd4TWpNME5UWTNPREV5TXpRMU5qYzQ",
                "c571oxwPNH7tBtS/eBm56ycOp1m0lMNAVLVI+BinJds="
            )
            .unwrap(),
            br#"{"type":1}"#
        );
        assert!(decrypt_studio("fedcba9876543210", cipher).is_err());
    }
}
