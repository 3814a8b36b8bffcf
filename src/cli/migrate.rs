//! `stillwater migrate`: a SQLite store into PostgreSQL.

use std::process::ExitCode;
use std::sync::Arc;

use stillwater::config::{StoreLocation, DB_PASSWORD_ENV};
use stillwater::metrics::Metrics;
use stillwater::store::migrate;
use stillwater::store::writer::Writer;
use stillwater::store::{shown_url, Store};

/// `--from sqlite:PATH` (or a plain path) `--to postgres://…`.
pub(crate) fn migrate(from: &str, to: &str, rejected_keep: u32) -> anyhow::Result<ExitCode> {
    let path = from.strip_prefix("sqlite:").unwrap_or(from);
    if path.contains("://") {
        anyhow::bail!("--from {from}: the source is a SQLite file, as sqlite:PATH");
    }
    let source = Store::open_existing(path)?;
    // Readings the writer logged but had not folded into their chunks yet.
    let folded = Writer::open(&source, rejected_keep, Arc::new(Metrics::default()))?.recover()?;
    if folded > 0 {
        out!("folded {folded} logged reading(s) into the store first");
    }
    let StoreLocation::Postgres { url, password } =
        StoreLocation::postgres(to, std::env::var(DB_PASSWORD_ENV).ok())
            .map_err(|why| anyhow::anyhow!("--to {}: {why}", shown_url(to)))?
    else {
        unreachable!("a PostgreSQL location");
    };
    let target = Store::open_postgres(&url, password.as_ref().map(|p| p.expose()))?;
    out!("copying {} into {}", path, shown_url(&url));
    let counts = migrate::copy(&source, &target, &mut |count| {
        out!(
            "  {:<22} {:>10} row(s), {:>10} copied now{}",
            count.table,
            count.source,
            count.copied,
            if count.matches() {
                ""
            } else {
                "  — counts differ"
            }
        );
    })?;
    let differ: Vec<_> = counts.iter().filter(|count| !count.matches()).collect();
    if differ.is_empty() {
        out!(
            "count check: all {} tables match ({} rows); point [store] at the new database",
            counts.len(),
            counts.iter().map(|count| count.source).sum::<i64>()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for count in &differ {
        eprintln!(
            "error: {} has {} row(s) in the source and {} in the target (was the gateway still writing to the source? stop it and run migrate again)",
            count.table, count.source, count.target
        );
    }
    Ok(ExitCode::FAILURE)
}
