//! What one household's stored readings would have caused with other
//! thresholds, against the settings in force: `stillwater replay` and the
//! dashboard's threshold preview. It reads only: nothing is stored or sent.

use super::lifecycle::Settings;
use super::replay::{replay_with, Assume, Tally};
use crate::config::RulesConfig;
use crate::detect::{warm_up_s, Learned};
use crate::policy::Setting;
use crate::store::prelude::*;
use crate::store::rules::RuleScope;
use crate::store::{Store, StoreError};

/// One household's replay, or why there is none.
#[derive(Debug)]
pub enum WhatIf {
    /// (resident, with the settings in force, with the tried ones).
    Replayed(String, Tally, Tally),
    Unregistered,
    /// The tried settings would not hold for this household.
    Refused(String),
}

/// Replays `meter`'s household from `from` to `to` (meter clock) with the
/// settings in force and with `tried` laid over them.
pub fn what_if(
    store: &Store,
    rules: &RulesConfig,
    settings: &Settings,
    meter: &str,
    tried: &[Setting],
    from: i64,
    to: i64,
) -> Result<WhatIf, StoreError> {
    let Some(household) = store.household(meter)? else {
        return Ok(WhatIf::Unregistered);
    };
    let stored = store.rule_overrides(&RuleScope::Meter(meter.to_string()))?;
    let current = crate::thresholds::in_force(rules, &household.category, &stored);
    let trial = current.policy.clone().with(tried);
    if let Err(problem) = trial.check() {
        return Ok(WhatIf::Refused(format!("for meter {meter}: {problem}")));
    }
    let history = warm_up_s(&current.policy).max(warm_up_s(&trial));
    let readings = store.readings(meter, from - history, to)?;
    // As live: no alert inside a declared absence, and the routine learns
    // nothing from it or from alerts closed as away.
    let periods = store.not_routine(household.id)?;
    let assume = Assume {
        absences: &periods.declared,
        not_learned: &periods.closed_away,
        ..Assume::default()
    };
    let now = replay_with(
        &readings,
        &Learned,
        &current.policy,
        settings,
        &household,
        &assume,
    );
    // The background is the same for both unless its window is what changed.
    let known =
        (trial.background_s == current.policy.background_s).then_some(now.backgrounds.as_slice());
    let assume = Assume {
        backgrounds: known,
        ..assume
    };
    let then = replay_with(&readings, &Learned, &trial, settings, &household, &assume);
    Ok(WhatIf::Replayed(
        household.resident_name.clone(),
        now.tally(from, &household),
        then.tally(from, &household),
    ))
}

/// [`what_if`] for each of `meters`, in order: households are independent,
/// so they are replayed on every core.
pub fn what_if_each(
    store: &Store,
    rules: &RulesConfig,
    settings: &Settings,
    meters: &[String],
    tried: &[Setting],
    from: i64,
    to: i64,
) -> Vec<Result<WhatIf, StoreError>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = meters.len().div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = meters
            .chunks(chunk)
            .map(|meters| {
                scope.spawn(move || {
                    meters
                        .iter()
                        .map(|meter| what_if(store, rules, settings, meter, tried, from, to))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a replay thread"))
            .collect()
    })
}
