//! Wiring: builds the running gateway from a [`Config`] and runs it until shutdown.
//!
//! Start order: store (migrations) → writer (recovers per-meter state, folds
//! the reading log a crash left) → alert engine and SMS provider built → HTTP
//! listener bound → embedded MQTT server bound (if configured) → then the
//! threads and tasks: writer, alert engine (evaluates what was committed but
//! not yet evaluated), self-watch, notifier (delivers the outbox), ingest, HTTP. Whatever can fail on bad settings fails before any
//! thread starts. One cancellation token stops everything; if any part stops on
//! its own — a task ending, or a supervised thread panicking — the whole gateway
//! stops with the reason (and `/healthz` says it) rather than run half alive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alert::Engine;
use crate::clock::{self, SharedClock};
use crate::config::{BrokerChoice, Config};
use crate::detect::Detector;
use crate::http;
use crate::ingest::{self, server, Subscription};
use crate::metrics::Metrics;
use crate::notify;
use crate::pipeline::TouchedMeters;
use crate::store::writer::Writer;
use crate::store::Store;

/// Messages that may wait between ingest and the writer.
const INBOX_CAPACITY: usize = 8192;

/// A running gateway.
pub struct Gateway {
    /// Where meters publish: the embedded server's real address, or the broker's.
    pub mqtt_addr: SocketAddr,
    /// The embedded server's TLS address, when it has one.
    pub mqtt_tls_addr: Option<SocketAddr>,
    /// Where `/healthz` and `/metrics` are served.
    pub http_addr: SocketAddr,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// The wall time (Unix seconds) the alert engine's timer last ran for.
    pub engine_tick: Arc<std::sync::atomic::AtomicI64>,
    shutdown: CancellationToken,
    ingest: JoinHandle<()>,
    http: JoinHandle<std::io::Result<()>>,
    notifier: JoinHandle<()>,
    watch: JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
    engine: std::thread::JoinHandle<()>,
    /// Names a supervised thread that stopped on its own.
    threads_died: mpsc::UnboundedReceiver<String>,
}

/// The embedded server's persistent MQTT sessions, kept in the database and
/// known in memory (a reconnecting meter costs no write).
struct StoredSessions {
    store: Store,
    clock: SharedClock,
    known: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl StoredSessions {
    fn load(store: Store, clock: SharedClock) -> anyhow::Result<Self> {
        let known = store
            .mqtt_sessions()
            .context("cannot read the MQTT sessions")?
            .into_iter()
            .collect();
        Ok(Self {
            store,
            clock,
            known: std::sync::Mutex::new(known),
        })
    }

    fn known(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl server::SessionBook for StoredSessions {
    fn meter_login(&self, meter: &str) -> Result<Option<Vec<u8>>, String> {
        self.store
            .meter_login(meter)
            .map_err(|error| error.to_string())
    }

    fn remember(&self, client_id: &str) -> Result<bool, String> {
        if self.known().contains(client_id) {
            return Ok(true);
        }
        self.store
            .remember_mqtt_session(client_id, self.clock.now().secs())
            .map_err(|error| error.to_string())?;
        self.known().insert(client_id.to_string());
        Ok(false)
    }

    fn forget(&self, client_id: &str) -> Result<(), String> {
        if self.known().remove(client_id) {
            self.store
                .forget_mqtt_session(client_id)
                .map_err(|error| error.to_string())?;
        }
        Ok(())
    }
}

/// Where a local client reaches `listener`: its address, with 127.0.0.1 for
/// a listener on every interface.
fn local_address(listener: &tokio::net::TcpListener) -> std::io::Result<SocketAddr> {
    let mut addr = listener.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip([127, 0, 0, 1].into());
    }
    Ok(addr)
}

/// Where readings come in.
enum Door {
    /// The embedded MQTT server's listener, its TLS listener, and its clients' sessions.
    Server(
        tokio::net::TcpListener,
        Option<server::TlsDoor>,
        Arc<StoredSessions>,
    ),
    /// An external broker's host and port.
    Broker(String, u16),
}

/// What a gateway is built with besides its configuration.
pub struct Parts {
    pub clock: SharedClock,
    pub detector: Box<dyn Detector>,
}

impl Default for Parts {
    fn default() -> Self {
        Self {
            clock: clock::system(),
            detector: Box::new(crate::detect::Learned),
        }
    }
}

/// Runs the gateway's threads so that none can die silently: a panic, or a
/// stop before shutdown was asked, is logged, recorded for `/healthz`, and
/// stops the gateway with an error.
struct Supervisor {
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    died: mpsc::UnboundedSender<String>,
}

impl Supervisor {
    fn spawn(
        &self,
        name: &str,
        what: &'static str,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let (shutdown, metrics, died) = (
            self.shutdown.clone(),
            self.metrics.clone(),
            self.died.clone(),
        );
        std::thread::Builder::new().name(name.into()).spawn(move || {
            let why = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
                Ok(()) if shutdown.is_cancelled() => return,
                Ok(()) => format!("{what} stopped"),
                Err(panic) => format!("{what} panicked: {}", panic_message(panic.as_ref())),
            };
            tracing::error!(reason = %why, "a part of the gateway stopped; stopping the gateway");
            metrics.record_failure(&why);
            let _ = died.send(why);
        })
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

impl Gateway {
    /// Starts every part; returns once the embedded server (if any) and HTTP are listening.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        Self::start_with(config, Parts::default()).await
    }

    /// Starts every part with `parts` (tests pass a manual clock, or a detector).
    pub async fn start_with(config: &Config, parts: Parts) -> anyhow::Result<Self> {
        let Parts { clock, detector } = parts;
        let store = Store::from_config(&config.store).with_context(|| {
            format!(
                "cannot open the store {}",
                crate::store::shown_url(&config.store.location.describe())
            )
        })?;
        let metrics = Arc::new(Metrics::default());
        let recovery = Instant::now();
        let mut writer = Writer::open(&store, config.store.rejected_keep, metrics.clone())?;
        let folded = writer
            .recover()
            .context("cannot fold the reading log left by the last run")?;
        tracing::info!(
            meters = writer.meters_known(),
            folded,
            millis = recovery.elapsed().as_millis() as u64,
            path = %store.describe(),
            "store open; per-meter state recovered"
        );
        // Everything that can fail on the operator's settings comes first, before
        // any thread or task runs, so a failed start leaves nothing behind (the
        // embedded server's listener comes last of these).
        let wake_notifier = Arc::new(Notify::new());
        let engine = Engine::new(
            &store,
            config.rules.clone(),
            config.alerts.clone(),
            &config.sms,
            wake_notifier.clone(),
            clock.clone(),
        )?
        .with_detector(detector)
        .in_cluster(crate::alert::Cluster {
            holder: config.mqtt.client_id.clone(),
            lease_s: config.store.lease.as_secs() as i64,
        });
        let last_tick = engine.last_tick();
        let providers = notify::build(&config.sms, &clock)?;
        for problem in notify::check(&config.sms) {
            tracing::warn!(%problem, "SMS settings");
        }
        if config.watch.admins.is_empty() {
            tracing::info!("[watch] admins is empty: system alerts (readings stopped, disk full, SMS failing, …) are recorded but nobody is texted");
        }
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot serve HTTP on {} (set [http] listen to a free address)",
                    config.http.listen
                )
            })?;
        // Where meters connect: the embedded server's listener, or the broker.
        let mut mqtt_tls_addr = None;
        let (door, mqtt_addr) = match &config.mqtt.broker {
            BrokerChoice::Embedded { listen } => {
                let bound = server::bind(*listen).await?;
                let addr = local_address(&bound)?;
                let sessions = StoredSessions::load(store.clone(), clock.clone())?;
                let tls = match &config.mqtt.tls {
                    Some(files) => {
                        let acceptor = server::tls_acceptor("mqtt", &files.cert, &files.key)
                            .map_err(anyhow::Error::msg)?;
                        let listener = server::bind(files.listen).await?;
                        let tls_addr = local_address(&listener)?;
                        mqtt_tls_addr = Some(tls_addr);
                        tracing::info!(addr = %tls_addr, "embedded MQTT server listening for TLS");
                        Some(server::TlsDoor { listener, acceptor })
                    }
                    None => None,
                };
                tracing::info!(%addr, "embedded MQTT server listening");
                (Door::Server(bound, tls, Arc::new(sessions)), addr)
            }
            BrokerChoice::External { host, port } => {
                let addr = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], *port)));
                (Door::Broker(host.clone(), *port), addr)
            }
        };

        let shutdown = CancellationToken::new();
        let touched = Arc::new(TouchedMeters::default());
        let writer = writer.with_listener(touched.clone());
        let (outbox, inbox) = mpsc::channel(INBOX_CAPACITY);
        // Carrier platforms' pushes reach the same writer over HTTP.
        let pushes = http::push_settings(config, Some(outbox.clone()));
        let (died, threads_died) = mpsc::unbounded_channel();
        let supervisor = Supervisor {
            shutdown: shutdown.clone(),
            metrics: metrics.clone(),
            died,
        };
        let writer = supervisor.spawn("store-writer", "the store writer", move || {
            writer.run(inbox)
        })?;
        let engine_shutdown = shutdown.clone();
        let engine = supervisor.spawn("alert-engine", "the alert engine", move || {
            engine.run(touched, engine_shutdown)
        })?;
        let watch = tokio::spawn(
            crate::watch::Watch {
                store: store.clone(),
                metrics: metrics.clone(),
                clock: clock.clone(),
                config: config.watch.clone(),
                language: config.sms.language,
                timezone: config.registry.timezone,
                providers: providers.clone(),
                engine_tick: last_tick.clone(),
                notifier: wake_notifier.clone(),
            }
            .run(shutdown.clone()),
        );
        let notifier = tokio::spawn(
            notify::notifier::Notifier {
                store: store.clone(),
                providers,
                wake: wake_notifier,
                metrics: metrics.clone(),
                clock: clock.clone(),
                max_attempts: config.sms.max_attempts,
                parallel: config.sms.parallel,
                claim: crate::store::outbox::Claim {
                    holder: config.mqtt.client_id.clone(),
                    lease_s: config.store.lease.as_secs() as i64,
                },
            }
            .run(shutdown.clone()),
        );

        let ingest = match door {
            Door::Server(listener, tls, sessions) => tokio::spawn(server::serve(
                listener,
                tls,
                server::Settings {
                    credentials: config.mqtt.credentials.clone(),
                    topics: config.mqtt.topics.clone(),
                    max_clock_ahead_s: config.mqtt.max_clock_ahead_s,
                    meter_logins: config.mqtt.meter_logins,
                    sessions,
                },
                outbox,
                metrics.clone(),
                clock.clone(),
                shutdown.clone(),
            )),
            Door::Broker(host, port) => tokio::spawn(ingest::run(
                Subscription {
                    host,
                    port,
                    client_id: config.mqtt.client_id.clone(),
                    credentials: config.mqtt.credentials.clone(),
                    topics: config.mqtt.topics.clone(),
                    keep_alive: config.mqtt.keep_alive,
                    max_clock_ahead_s: config.mqtt.max_clock_ahead_s,
                    watch_broker_drops: true,
                    share_group: config.mqtt.share_group.clone(),
                },
                outbox,
                metrics.clone(),
                clock.clone(),
                shutdown.clone(),
            )),
        };

        let http_addr = listener.local_addr()?;
        let app = http::router(http::HttpState {
            metrics: metrics.clone(),
            store: store.clone(),
            inbound_token: config.sms.inbound_token.clone(),
            language: config.sms.language,
            clock: clock.clone(),
            callbacks: http::callback_settings(&config.sms),
            pushes,
            api_failures: Arc::default(),
            registry: config.registry.clone(),
            rules: config.rules.clone(),
            alerts: config.alerts.clone(),
            sessions: Arc::default(),
            secure_cookies: config.http.tls.is_some(),
        });
        let http_shutdown = shutdown.clone();
        let stopped = async move { http_shutdown.cancelled().await };
        let http = match &config.http.tls {
            None => tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(stopped)
                .await
            }),
            Some((cert, key)) => {
                use axum::serve::ListenerExt;
                let acceptor =
                    server::tls_acceptor("http", cert, key).map_err(anyhow::Error::msg)?;
                let listener = http::TlsListener::new(listener, acceptor)?.tap_io(|_| {});
                tokio::spawn(async move {
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(stopped)
                    .await
                })
            }
        };
        tracing::info!(
            %http_addr,
            https = config.http.tls.is_some(),
            "serving the dashboard (/ui/), the API (/api/v1), /healthz and /metrics"
        );
        Ok(Self {
            mqtt_addr,
            mqtt_tls_addr,
            http_addr,
            store,
            metrics,
            engine_tick: last_tick,
            shutdown,
            ingest,
            http,
            notifier,
            watch,
            writer,
            engine,
            threads_died,
        })
    }

    /// A token that stops the gateway when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs until the shutdown token is cancelled or a part stops on its own,
    /// then stops the rest: ingest first, then the writer commits what it holds.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            shutdown,
            mut ingest,
            mut http,
            mut notifier,
            mut watch,
            writer,
            engine,
            mut threads_died,
            ..
        } = self;
        let (failure, ingest_done, http_done, notifier_done, watch_done) = tokio::select! {
            biased; // a requested stop is not a failure, even when the parts have stopped too
            _ = shutdown.cancelled() => (None, false, false, false, false),
            Some(why) = threads_died.recv() => (Some(why), false, false, false, false),
            _ = &mut ingest => (Some("MQTT ingest stopped".to_string()), true, false, false, false),
            _ = &mut http => (Some("the HTTP listener stopped".to_string()), false, true, false, false),
            _ = &mut notifier => (Some("the SMS notifier stopped".to_string()), false, false, true, false),
            _ = &mut watch => (Some("the self-watch stopped".to_string()), false, false, false, true),
        };
        shutdown.cancel();
        if !ingest_done {
            let _ = ingest.await;
        }
        if !http_done {
            let _ = http.await;
        }
        if !notifier_done {
            let _ = notifier.await;
        }
        if !watch_done {
            let _ = watch.await;
        }
        // Ingest and the HTTP listener held the only senders: the writer drains and returns.
        // The supervised threads catch their own panics and report them.
        let _ = tokio::task::spawn_blocking(move || writer.join()).await?;
        let _ = tokio::task::spawn_blocking(move || engine.join()).await?;
        let failure = failure.or_else(|| threads_died.try_recv().ok());
        match failure {
            Some(what) => Err(anyhow::anyhow!("{what}; the gateway stopped")),
            None => Ok(()),
        }
    }

    /// Stops the gateway and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.run_until_stopped().await
    }
}
