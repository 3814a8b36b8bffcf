//! A configuration file: valid, or every problem named; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stillwater::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml(text, &|_| Some("secret".into()));
    }
});
