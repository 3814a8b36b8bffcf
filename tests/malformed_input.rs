//! Malformed input never panics: a short run, in the ordinary test suite, of
//! what the fuzz targets in `fuzz/` do at length (docs/operations.md: fuzzing).
//! Each entry point gets deterministic mutations of real samples — bytes
//! flipped, cut, repeated, spliced — and must return, whatever it returns.

use stillwater::config::{Config, RegistryDefaults};
use stillwater::domain::Timestamp;
use stillwater::wire::{decode, Arrival, Topics};

/// A small deterministic generator (xorshift), so a failure is repeatable.
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// `seed` with one to four random edits.
    fn mutate(&mut self, seed: &[u8], others: &[&[u8]]) -> Vec<u8> {
        let mut out = seed.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(6) {
                0 if !out.is_empty() => {
                    let i = at.min(out.len() - 1);
                    out[i] ^= 1 << self.below(8);
                }
                1 => out.truncate(at),
                2 => {
                    let byte = b"{}[]\",:0123456789.-eE \n\\ntuflasx\xff\xc3\xa9"[self.below(32)];
                    out.insert(at, byte);
                }
                3 if !out.is_empty() => {
                    let end = (at + self.below(16)).min(out.len());
                    let piece = out[at.min(end)..end].to_vec();
                    out.splice(at..at, piece);
                }
                4 => {
                    let other = others[self.below(others.len())];
                    let from = self.below(other.len());
                    out.splice(at.., other[from..].iter().copied());
                }
                _ => {
                    let end = (at + self.below(8)).min(out.len());
                    out.drain(at.min(end)..end);
                }
            }
        }
        out
    }
}

fn run(rounds: usize, seeds: &[&[u8]], salt: u64, mut each: impl FnMut(&[u8])) {
    let mut mutator = Mutator(0x9E37_79B9_7F4A_7C15 ^ salt);
    for seed in seeds {
        each(seed);
    }
    for round in 0..rounds {
        let input = mutator.mutate(seeds[round % seeds.len()], seeds);
        each(&input);
    }
}

#[test]
fn meter_payloads() {
    let seeds: Vec<&[u8]> = vec![
        include_bytes!("fixtures/native/single.json"),
        include_bytes!("fixtures/native/batch.json"),
        include_bytes!("fixtures/native/total_m3.json"),
        include_bytes!("fixtures/wmbusmeters/iperl.json"),
        include_bytes!("fixtures/wmbusmeters/multical21.json"),
    ];
    let now = Arrival::at(Timestamp::from_secs(1_795_400_000));
    let topics = Topics::default();
    run(20_000, &seeds, 1, |payload| {
        for topic in ["meters/WM-1/reading", "wmbusmeters/kitchen"] {
            let decoded = decode(&topics, topic, payload, now);
            assert!(decoded.readings.len() + decoded.rejections.len() > 0);
        }
    });
}

#[test]
fn installation_csvs() {
    let seeds: Vec<&[u8]> = vec![
        include_bytes!("fixtures/csv/good.csv"),
        include_bytes!("fixtures/csv/bad.csv"),
    ];
    run(5_000, &seeds, 2, |bytes| {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let _ = stillwater::registry::parse_csv(text, &RegistryDefaults::default());
        }
    });
}

#[test]
fn configuration_files() {
    let seeds: Vec<&[u8]> = vec![
        include_bytes!("../config/stillwater.toml"),
        b"[rules]\nwarning_window = \"8h\"\n[rules.categories.elderly_alone]\nurgent_window = \"20h\"\n",
    ];
    run(1_000, &seeds, 3, |bytes| {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let _ = Config::from_toml(text, &|_| Some("secret".into()));
        }
    });
}

#[test]
fn inbound_sms_bodies() {
    let seeds: Vec<&[u8]> = vec![
        br#"{"from": "+8613800138000", "text": "1"}"#,
        "{\"from\": \"13800138000\", \"text\": \"确认 ２\"}".as_bytes(),
    ];
    run(20_000, &seeds, 4, |body| {
        if let Ok((_, text)) = stillwater::http::parse_inbound(body) {
            let _ = stillwater::actions::replies::parse_code(&text);
        }
    });
}
