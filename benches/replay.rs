//! Replay benchmark: prints figures, asserts nothing about speed.
//!
//! `cargo bench --bench replay` replays the default detector — each
//! household's learned routine with the fixed rules as floor and ceiling — and
//! the whole alert lifecycle (in memory, as `stillwater replay` does) over hourly readings of
//! simulated homes — three uses a day, some with a dripping toilet, some with a
//! silent spell — and prints meter-days per second and what that means for a
//! year of 10,000 homes (3.65 M meter-days), on one thread and on every core
//! (households are independent), then as `stillwater replay --set
//! sensitivity=high` does: the settings in force and the tried ones, the
//! background computed once for both. The store is not involved: this is
//! detection's own cost. BENCH_HOMES (default 200) and BENCH_DAYS (365) set the size.

use std::time::Instant;

use stillwater::alert::lifecycle::Settings;
use stillwater::alert::replay::{replay, replay_with, Assume};
use stillwater::config::Config;
use stillwater::detect::Learned;
use stillwater::domain::StoredReading;
use stillwater::store::engine::HouseholdInfo;

fn env_size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Hourly registers of one home for `days` days.
fn home(index: usize, days: usize) -> Vec<StoredReading> {
    let start = 1_767_225_600; // 2026-01-01T00:00:00Z
    let mut total = 10_000 + index as i64;
    let mut state = index as u64 * 2_654_435_761 + 1;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let drip = index % 7 == 0;
    (0..days * 24)
        .map(|hour| {
            let day = hour / 24;
            let silent = index % 11 == 0 && day % 60 == 30;
            if !silent && matches!(hour % 24, 7 | 12 | 19) {
                total += 10 + (random() % 40) as i64;
            }
            if drip {
                total += 2 + (random() % 2) as i64;
            }
            StoredReading::plain(start + hour as i64 * 3600, total)
        })
        .collect()
}

fn main() {
    let homes = env_size("BENCH_HOMES", 200);
    let days = env_size("BENCH_DAYS", 365);
    let config = Config::default_config();
    let settings = Settings::new(&config.alerts, &config.rules);
    let household = HouseholdInfo {
        id: 1,
        resident_name: "bench".into(),
        address: "bench".into(),
        category: "general".into(),
        timezone: "Asia/Shanghai".into(),
        reporting_interval_min: 60,
        check_in_phone: None,
        contacts: vec![(1, "a".into(), "+8613800138000".into())],
    };
    let data: Vec<Vec<StoredReading>> = (0..homes).map(|i| home(i, days)).collect();
    let meter_days = (homes * days) as f64;
    println!("replay: {homes} homes × {days} days of hourly readings ({meter_days:.0} meter-days)");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut runs = vec![1];
    if cores > 1 {
        runs.push(cores);
    }
    // What `stillwater replay --set sensitivity=high` does per household:
    // the settings in force, then the tried ones on the same background.
    let tried = config
        .rules
        .global
        .clone()
        .with(&[
            stillwater::policy::Setting::parse("sensitivity", "high").expect("a valid setting")
        ]);
    for (threads, compare) in runs
        .iter()
        .map(|&t| (t, false))
        .chain(std::iter::once((cores, true)))
    {
        let started = Instant::now();
        let chunk = data.len().div_ceil(threads);
        let alerts: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = data
                .chunks(chunk)
                .map(|homes| {
                    let (config, settings, household, tried) =
                        (&config, &settings, &household, &tried);
                    scope.spawn(move || {
                        homes
                            .iter()
                            .map(|readings| {
                                let now = replay(
                                    readings,
                                    &Learned,
                                    &config.rules.global,
                                    settings,
                                    household,
                                );
                                if !compare {
                                    return now.alerts.len();
                                }
                                let assume = Assume {
                                    backgrounds: Some(&now.backgrounds),
                                    ..Assume::default()
                                };
                                replay_with(readings, &Learned, tried, settings, household, &assume)
                                    .alerts
                                    .len()
                            })
                            .sum::<usize>()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        let seconds = started.elapsed().as_secs_f64();
        let rate = meter_days / seconds;
        let what = if compare {
            "compared with sensitivity=high"
        } else {
            "one setting"
        };
        println!(
            "  {threads} thread(s), {what}: {seconds:.2} s, {rate:.0} meter-days/s, {alerts} alerts; a year of 10,000 homes: {:.0} s",
            3_650_000.0 / rate
        );
    }
}
