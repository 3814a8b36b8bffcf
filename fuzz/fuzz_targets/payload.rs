//! An MQTT message as a meter (or anyone) could send it: the first byte picks
//! the topic, the rest is the payload. Decoding must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stillwater::domain::Timestamp;
use stillwater::wire::{decode, Arrival, Topics};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let topic = match pick % 4 {
        0 => "meters/ZS-0001/reading",
        1 => "wmbusmeters/kitchen",
        2 => "meters/bad id/reading",
        _ => "meters/ZS-0001/extra/reading",
    };
    let now = Arrival::at(Timestamp::from_secs(1_795_392_000));
    let decoded = decode(&Topics::default(), topic, payload, now);
    for reading in &decoded.readings {
        assert!(reading.ts.secs() <= now.at.secs() + now.max_ahead_s);
    }
});
