//! Request signing for the SMS providers, and checking the signature Twilio
//! puts on its webhooks. Pure functions over strings: the hashing and HMAC
//! come from `ring`; the tests reproduce every vector the providers publish.

use base64::Engine as _;
use ring::{digest, hmac};

use crate::domain::hex;

/// RFC 3986 percent-encoding as Aliyun's RPC signature wants it: everything
/// but `A-Za-z0-9-_.~` is encoded, UTF-8 byte by byte (a space is `%20`, `*`
/// is `%2A`).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The query string of an Aliyun RPC request: every parameter, sorted by key,
/// percent-encoded, joined with `&`.
pub fn aliyun_canonical_query(params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted
        .iter()
        .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Aliyun RPC signature V1: `StringToSign = METHOD&%2F&encode(query)`.
pub fn aliyun_string_to_sign(method: &str, params: &[(&str, &str)]) -> String {
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&aliyun_canonical_query(params))
    )
}

/// `Base64(HMAC-SHA1(secret + "&", string_to_sign))`.
pub fn aliyun_signature(access_key_secret: &str, string_to_sign: &str) -> String {
    let key = hmac::Key::new(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        format!("{access_key_secret}&").as_bytes(),
    );
    base64(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hmac_sha256(key: &[u8], message: &str) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, message.as_bytes()).as_ref().to_vec()
}

/// A Tencent Cloud API 3.0 request to sign (POST, JSON body).
pub struct Tc3Request<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    /// e.g. `sms`.
    pub service: &'a str,
    /// e.g. `sms.tencentcloudapi.com`.
    pub host: &'a str,
    pub content_type: &'a str,
    /// Unix seconds; the credential scope uses its UTC date.
    pub timestamp: i64,
    pub payload: &'a [u8],
}

/// Every step of a TC3-HMAC-SHA256 signature, so tests can check each one.
#[derive(Debug, PartialEq, Eq)]
pub struct Tc3Signature {
    pub hashed_payload: String,
    pub canonical_request: String,
    pub hashed_canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
    /// The `Authorization` header.
    pub authorization: String,
}

/// Signs a Tencent Cloud API 3.0 POST request (TC3-HMAC-SHA256).
pub fn tc3_sign(request: &Tc3Request<'_>) -> Tc3Signature {
    let hashed_payload = sha256_hex(request.payload);
    let canonical_request = format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\n\ncontent-type;host\n{hashed_payload}",
        request.content_type, request.host
    );
    let hashed_canonical_request = sha256_hex(canonical_request.as_bytes());
    // The UTC date: Tencent refuses a signature dated in UTC+8 around midnight.
    let date = chrono::DateTime::from_timestamp(request.timestamp, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let scope = format!("{date}/{}/tc3_request", request.service);
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{}\n{scope}\n{hashed_canonical_request}",
        request.timestamp
    );
    let secret_date = hmac_sha256(format!("TC3{}", request.secret_key).as_bytes(), &date);
    let secret_service = hmac_sha256(&secret_date, request.service);
    let secret_signing = hmac_sha256(&secret_service, "tc3_request");
    let signature = hex(&hmac_sha256(&secret_signing, &string_to_sign));
    let authorization = format!(
        "TC3-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=content-type;host, Signature={signature}",
        request.secret_id
    );
    Tc3Signature {
        hashed_payload,
        canonical_request,
        hashed_canonical_request,
        string_to_sign,
        signature,
        authorization,
    }
}

/// Twilio's `X-Twilio-Signature`: `Base64(HMAC-SHA1(auth_token, url +
/// name1 + value1 + name2 + value2 …))` over every POST parameter sorted by
/// name. `url` is exactly the URL Twilio called, query string included.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    base64(hmac::sign(&key, twilio_data(url, params).as_bytes()).as_ref())
}

/// Whether `presented` is Twilio's signature of this request (checked by
/// `ring` in constant time).
pub fn twilio_signature_valid(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    presented: &str,
) -> bool {
    let Ok(presented) = base64::engine::general_purpose::STANDARD.decode(presented.trim()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    hmac::verify(&key, twilio_data(url, params).as_bytes(), &presented).is_ok()
}

fn twilio_data(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    data
}

#[cfg(test)]
mod tests {
    //! The published vectors: Aliyun's SendSms documentation example and its
    //! generic RPC (DescribeRegions) example; Tencent Cloud's TC3 example
    //! (CVM DescribeInstances), every intermediate value; Twilio's request
    //! validation examples as twilio-java and GoAlert test them.
    use super::*;

    fn aliyun_send_sms() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", r#"{"customer":"test"}"#),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ]
    }

    #[test]
    fn aliyun_send_sms_vector() {
        let mut params = aliyun_send_sms();
        params.reverse(); // the order given does not matter
        let string_to_sign = aliyun_string_to_sign("GET", &params);
        assert_eq!(
            string_to_sign,
            "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode%3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
        );
        let signature = aliyun_signature("testSecret", &string_to_sign);
        assert_eq!(signature, "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
        assert_eq!(
            percent_encode(&signature),
            "zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D"
        );
        // Case matters: the pair `testid` / `testsecret` gives another signature.
        params[13] = ("AccessKeyId", "testid");
        assert_eq!(
            aliyun_signature("testsecret", &aliyun_string_to_sign("GET", &params)),
            "LxugEBqtL8lacmz/6I2QOoMzw+Y="
        );
        params[13] = ("AccessKeyId", "testId");
        // The query of the published full URL, after its Signature.
        assert_eq!(
            aliyun_canonical_query(&params),
            "AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123&PhoneNumbers=15300000001&RegionId=cn-hangzhou&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8&SignatureMethod=HMAC-SHA1&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466&SignatureVersion=1.0&TemplateCode=SMS_71390007&TemplateParam=%7B%22customer%22%3A%22test%22%7D&Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25"
        );
    }

    #[test]
    fn aliyun_describe_regions_vector() {
        let params = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ];
        let string_to_sign = aliyun_string_to_sign("GET", &params);
        assert_eq!(
            string_to_sign,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            aliyun_signature("testsecret", &string_to_sign),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn percent_encoding_follows_rfc_3986() {
        assert_eq!(percent_encode("a b*c~d"), "a%20b%2Ac~d");
        assert_eq!(percent_encode("中"), "%E4%B8%AD");
    }

    #[test]
    fn tencent_tc3_vector_every_step() {
        // The payload's bytes exactly as published, `\u` escapes included.
        let payload = r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let signed = tc3_sign(&Tc3Request {
            secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            secret_key: "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            service: "cvm",
            host: "cvm.tencentcloudapi.com",
            content_type: "application/json; charset=utf-8",
            timestamp: 1_551_113_065,
            payload: payload.as_bytes(),
        });
        assert_eq!(
            signed.hashed_payload,
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            signed.canonical_request,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            signed.hashed_canonical_request,
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            signed.string_to_sign,
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            signed.signature,
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
        assert_eq!(
            signed.authorization,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn tencent_scope_uses_the_utc_date_even_when_beijing_is_a_day_ahead() {
        // 2026-12-02 23:50 UTC is 2026-12-03 07:50 in Beijing.
        let signed = tc3_sign(&Tc3Request {
            secret_id: "id",
            secret_key: "key",
            service: "sms",
            host: "sms.tencentcloudapi.com",
            content_type: "application/json; charset=utf-8",
            timestamp: 1_796_255_400,
            payload: b"{}",
        });
        assert!(
            signed
                .string_to_sign
                .contains("\n2026-12-02/sms/tc3_request\n"),
            "{}",
            signed.string_to_sign
        );
    }

    fn twilio_params(caller: &str) -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", caller),
            ("Digits", "1234"),
            ("From", caller),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn twilio_vectors() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let mut params = twilio_params("+14158675309");
        params.reverse();
        assert_eq!(
            twilio_signature("12345", url, &params),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            twilio_signature("12345", url, &twilio_params("+14158675310")),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        assert!(twilio_signature_valid(
            "12345",
            url,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        // Another URL, another token, or a changed parameter: not valid.
        assert!(!twilio_signature_valid(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!twilio_signature_valid(
            "12346",
            url,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        params[0].1.push('3');
        assert!(!twilio_signature_valid(
            "12345",
            url,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }
}
