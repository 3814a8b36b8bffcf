//! The body of `POST /sms/inbound`, and the reply code in its text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, text)) = stillwater::http::parse_inbound(data) {
        let _ = stillwater::actions::replies::parse_code(&text);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = stillwater::actions::replies::parse_code(text);
    }
});
