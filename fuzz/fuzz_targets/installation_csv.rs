//! An installer's CSV: every row is accepted or named with its problem.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stillwater::config::RegistryDefaults;
use stillwater::registry::parse_csv;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_csv(text, &RegistryDefaults::default());
    }
});
