//! Stillwater: a smart water-meter welfare alarm gateway.
//!
//! Water meters in the homes of people who live alone publish readings over
//! MQTT; Stillwater stores them durably, notices when the water stays still for
//! too long, and tells the people who can go and look.
//!
//! # Layout
//!
//! Modules in the order data flows through them (ARCHITECTURE.md has the map):
//!
//! - [`domain`] — meter ids, times, litres, phone numbers, readings, actors (no I/O).
//! - [`clock`] — the one way to read the time; a manual clock for tests.
//! - [`pipeline`] — what travels from the broker to the writer and the engine.
//! - [`config`] — the commented default TOML, merged user files, validation.
//! - [`wire`] — topic + payload → readings or a rejection (native, wmbusmeters).
//! - [`ingest`] — how readings come in: the embedded MQTT server, or the subscription
//!   to an external broker; either acknowledges only after commit.
//! - [`store`] — SQLite, the only module that knows SQL; the writer thread.
//! - [`policy`], [`thresholds`] — thresholds, typed, and the ones in force.
//! - [`detect`] — the detector seam and the fixed rules, pure, in event time.
//! - [`alert`] — the pure lifecycle and the engine that applies it.
//! - [`notify`] — SMS providers, templates, and the notifier that delivers texts.
//! - [`watch`] — the alarm watching itself: system alerts, the daily heartbeat.
//! - [`report`] — the monthly report for the civil-affairs bureau.
//! - [`registry`] — households, contacts and the installation CSV.
//! - [`actions`] — everything people do, with roles and an audit record.
//! - [`metrics`] and [`http`] — `/metrics`, `/healthz`, SMS replies.
//! - [`app`] — wiring everything from a [`config::Config`] until shutdown.
//! - [`evaluate`] — scoring alerts against ground truth.
//! - [`demo`] — the zero-set-up demonstration behind `stillwater demo`.
//!
//! The `stillwater` binary (`src/main.rs`, `src/cli/`) is only the command line.

pub mod actions;
pub mod alert;
pub mod app;
pub mod clock;
pub mod config;
pub mod demo;
pub mod detect;
pub mod domain;
pub mod evaluate;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub mod policy;
pub mod registry;
pub mod report;
pub mod store;
pub mod thresholds;
pub mod watch;
pub mod wire;
