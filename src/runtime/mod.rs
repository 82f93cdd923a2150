//! The composition root: builds the plugins, binds the listeners and sockets, spawns
//! the media driver, the SIP user agent and the sources, and carries out what the
//! core outputs.
//!
//! [`Hub`] owns the sans-IO [`Gateway`] behind a mutex that is never held across an
//! `await`, and routes what the gateway outputs: events to WebSocket connections or
//! to the long polls waiting on a session, commands to the media engine, requests of
//! the ingest side to new tasks; ingest events go to the plugins through it.
//! [`start`] binds every listener and the media socket and runs until shut down. The
//! transports (`crate::transport`) reach the gateway only through the hub.

mod config_file;
pub mod events;
mod streaming_io;
pub use streaming_io::HostIo;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

use crate::api::{ConnId, Gateway, Output, SessionId, SourceId};
use crate::clock::Clock;
use crate::config::Config;
use crate::contain::lock;
use crate::ingest::IngestEvent;
use crate::media::webrtc::engine::LocalAddrs;
use crate::media::webrtc::queue::{self, MediaTx, COMMAND_QUEUE, EVENT_QUEUE, PACKET_QUEUE};
use crate::media::webrtc::{self, MediaCommand, WebrtcFactory};
use crate::plugin::echotest::EchoTest;
use crate::plugin::streaming::Streaming;
use crate::plugin::IngestRequest;
use crate::transport::{bind_tcp, http, metrics, snapshot, spawn_serve, web, whep, ws};

/// How long a shutdown waits for SIP peers to answer its BYEs and unregistrations.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long clients get to take their `hangup` events before the listeners close.
const EVENTS_FLUSH: Duration = Duration::from_millis(300);
/// Longest wait at shutdown for the event handlers to take the last events.
const EVENTS_FLUSH_MAX: Duration = Duration::from_secs(2);

/// How a running source is stopped.
enum SourceTask {
    /// An async ingest task.
    Task(tokio::task::AbortHandle),
    /// A thread (CPU-bound, e.g. an encoder) watching a stop flag.
    Thread(Arc<AtomicBool>),
}

/// Hands an ingest event to every plugin, through the core.
fn deliver_ingest_event(g: &mut Gateway, now: Instant, ev: IngestEvent) {
    match ev {
        IngestEvent::Sip(ev) => {
            g.broadcast_to_plugins(now, "SIP event", |p, ctx| p.sip_event(ctx, &ev));
        }
        IngestEvent::SourceTracks {
            source,
            tracks,
            unoffered,
        } => g.broadcast_to_plugins(now, "source tracks", |p, ctx| {
            p.source_tracks(ctx, source, &tracks, &unoffered)
        }),
        IngestEvent::SourceState { source, connected } => {
            g.broadcast_to_plugins(now, "source state", |p, ctx| {
                p.source_state(ctx, source, connected)
            });
        }
    }
}

/// A callback applying the admin API's `set_log_level` (0..=7) to the process's logger.
pub type LogControl = Box<dyn Fn(u8) + Send + Sync>;

/// Shared state of the control side.
pub struct Hub {
    gateway: Mutex<Gateway>,
    clock: Arc<dyn Clock>,
    media: MediaTx,
    /// Where the ingest side (sources, the SIP user agent) reports to the plugins.
    events: mpsc::Sender<IngestEvent>,
    /// The SIP user agent's commands, when it runs.
    sip: Option<mpsc::Sender<crate::ingest::sip::SipCommand>>,
    conns: Mutex<HashMap<ConnId, mpsc::Sender<String>>>,
    waiters: Mutex<HashMap<SessionId, Arc<Notify>>>,
    sources: Mutex<HashMap<SourceId, SourceTask>>,
    next_conn: AtomicU64,
    log_control: Option<LogControl>,
    /// Each source's latest keyframe, published by the media engine.
    pub(crate) keyframes: Arc<crate::media::snapshot::Keyframes>,
    /// The pictures made of them.
    pub(crate) snapshots: snapshot::Snapshots,
    pub(crate) config: Config,
    /// Flips to true on shutdown; long polls and WebSockets watch it.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The event handlers (webhooks, NATS), when configured.
    pub(crate) event_sink: Option<events::EventSink>,
}

impl Hub {
    /// Runs `f` on the gateway with the current time, then routes what it output.
    pub fn with_gateway<R>(&self, f: impl FnOnce(&mut Gateway, Instant) -> R) -> R {
        // The core contains its own panics (a failed request is answered with an error),
        // so the lock is never left mid-update.
        let mut g = lock(&self.gateway);
        let r = f(&mut g, self.clock.now());
        while let Some(out) = g.poll_output() {
            self.route(out);
        }
        r
    }

    /// A core event (Janus type 256): 1 startup, 2 shutdown.
    fn core_event(&self, subtype: u32, event: serde_json::Value) {
        if let Some(sink) = &self.event_sink {
            if self.config.events.mask() & crate::api::events::CORE != 0 {
                sink.send(&crate::api::events::core_event(subtype, event));
            }
        }
    }

    /// Waits (at most `limit`) until the event handlers' queues are empty.
    async fn flush_events(&self, limit: Duration) {
        let Some(sink) = &self.event_sink else { return };
        let step = Duration::from_millis(20);
        let mut waited = Duration::ZERO;
        while waited < limit && sink.counters.sinks.iter().any(|(_, c)| c.queued() > 0) {
            tokio::time::sleep(step).await;
            waited += step;
        }
        // The last batch's POST or publish.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Carries out a plugin's request of the ingest side.
    fn ingest(&self, request: IngestRequest) {
        match request {
            IngestRequest::StartRtp {
                id,
                ports,
                counters,
            } => {
                let task = tokio::spawn(crate::ingest::rtp::run(
                    id,
                    ports,
                    counters,
                    self.media.clone(),
                ));
                lock(&self.sources).insert(id, SourceTask::Task(task.abort_handle()));
            }
            IngestRequest::StartRtsp { id, spec, status } => {
                let task = tokio::spawn(crate::ingest::rtsp::run(
                    id,
                    *spec,
                    status,
                    self.media.clone(),
                    self.events.clone(),
                ));
                lock(&self.sources).insert(id, SourceTask::Task(task.abort_handle()));
            }
            IngestRequest::StartWebrtcSource {
                id,
                mut packets,
                keyframes,
            } => {
                let _ = self.media.command(MediaCommand::KeyframeRequests {
                    source: id,
                    tx: keyframes,
                });
                let media = self.media.clone();
                // Ends with the publisher (its handler holds the sender).
                let task = tokio::spawn(async move {
                    while let Some(p) = packets.recv().await {
                        if media.packet(p).is_err() {
                            break;
                        }
                    }
                });
                let old = lock(&self.sources).insert(id, SourceTask::Task(task.abort_handle()));
                if let Some(SourceTask::Task(t)) = old {
                    t.abort();
                }
            }
            IngestRequest::StartDemo {
                id,
                viewers,
                counters,
            } => {
                let stop = Arc::new(AtomicBool::new(false));
                let (flag, media) = (stop.clone(), self.media.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("demo-source-{id}"))
                    .spawn(move || crate::ingest::demo::run(id, viewers, counters, flag, media));
                match spawned {
                    Ok(_) => {
                        lock(&self.sources).insert(id, SourceTask::Thread(stop));
                    }
                    Err(e) => {
                        tracing::error!(source = %id, error = %e, "cannot start the demo source")
                    }
                }
            }
            IngestRequest::Sip(cmd) => match &self.sip {
                Some(tx) => crate::ingest::sip::driver::submit(tx, &self.events, *cmd),
                None => tracing::warn!(?cmd, "SIP command while the user agent is off"),
            },
        }
    }

    fn route(&self, out: Output) {
        match out {
            Output::Deliver { conn, msg } => {
                let mut conns = lock(&self.conns);
                if let Some(tx) = conns.get(&conn) {
                    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(msg.to_string()) {
                        // It does not read: dropping its sender ends its connection loop.
                        tracing::warn!(%conn, "WebSocket client does not read its events: disconnecting it");
                        conns.remove(&conn);
                    }
                }
            }
            Output::Wake(sid) => {
                if let Some(n) = lock(&self.waiters).get(&sid) {
                    n.notify_waiters();
                }
            }
            Output::Media(cmd) => {
                let _ = self.media.command(cmd);
            }
            Output::Ingest(request) => self.ingest(request),
            Output::StopSource(id) => {
                match lock(&self.sources).remove(&id) {
                    Some(SourceTask::Task(task)) => task.abort(),
                    Some(SourceTask::Thread(stop)) => stop.store(true, Ordering::Relaxed),
                    None => {}
                }
                let _ = self.media.command(MediaCommand::DropSource(id));
                self.snapshots.forget(id);
            }
            Output::SetLogLevel(level) => {
                if let Some(f) = &self.log_control {
                    f(level);
                }
            }
            Output::HandlerEvent(e) => {
                if let Some(sink) = &self.event_sink {
                    sink.send(&e);
                }
            }
        }
    }

    pub(crate) fn register_conn(&self) -> (ConnId, mpsc::Receiver<String>) {
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed) + 1);
        let (tx, rx) = mpsc::channel(self.config.websocket.max_queued_messages.max(1));
        lock(&self.conns).insert(id, tx);
        (id, rx)
    }

    pub(crate) fn unregister_conn(&self, id: ConnId) {
        lock(&self.conns).remove(&id);
        self.with_gateway(|g, now| g.connection_closed(now, id));
    }

    pub(crate) fn waiter(&self, sid: SessionId) -> Arc<Notify> {
        lock(&self.waiters).entry(sid).or_default().clone()
    }

    fn forget_dead_waiters(&self) {
        let mut w = lock(&self.waiters);
        w.retain(|_, n| Arc::strong_count(n) > 1);
    }
}

/// How to start: the clock, how often timeouts are checked, the logger hook.
pub struct StartOptions {
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// How often session timeouts are checked.
    pub timer_tick: Duration,
    /// Applies `set_log_level`.
    pub log_control: Option<LogControl>,
    /// The configuration file, which the streaming plugin's `permanent: true` updates.
    pub config_path: Option<std::path::PathBuf>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            clock: Arc::new(crate::clock::SystemClock),
            timer_tick: Duration::from_secs(1),
            log_control: None,
            config_path: None,
        }
    }
}

/// A running gateway: its bound addresses and the way to stop it.
pub struct Running {
    /// Main HTTP API (and web page).
    pub http: Option<SocketAddr>,
    /// Admin HTTP API.
    pub admin_http: Option<SocketAddr>,
    /// Main WebSocket API.
    pub ws: Option<SocketAddr>,
    /// Admin WebSocket API.
    pub admin_ws: Option<SocketAddr>,
    /// Where `GET /metrics` is served (its own listener, or the admin HTTP one).
    pub metrics: Option<SocketAddr>,
    /// The first media shard's UDP socket.
    pub udp: SocketAddr,
    /// Every media shard's UDP socket, in shard order.
    pub media_addrs: Vec<SocketAddr>,
    /// Every media shard's counters, in shard order (benches read sends per datagram).
    pub media_counters: Vec<Arc<webrtc::MediaCounters>>,
    /// The SIP user agent's address (UDP and TCP), when `[sip]` is enabled.
    pub sip: Option<SocketAddr>,
    /// Shared state, for in-process inspection (tests, benches).
    pub hub: Arc<Hub>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops the gateway in order: every client's PeerConnection is hung up (a `hangup`
    /// event each), SIP calls get their BYE and registrations their removal (waiting at
    /// most `grace` for the answers), clients get a moment to take their events; then
    /// every listener and the media engine stop, and this waits for them.
    pub async fn shutdown(self) {
        self.shutdown_within(SHUTDOWN_GRACE).await;
    }

    /// [`Running::shutdown`] with another bound on the wait for SIP peers.
    pub async fn shutdown_within(mut self, grace: Duration) {
        self.drain(grace).await;
        self.hub
            .core_event(2, serde_json::json!({"status": "shutdown"}));
        self.hub.flush_events(EVENTS_FLUSH_MAX).await;
        let _ = self.shutdown.send(true);
        for (_, task) in lock(&self.hub.sources).drain() {
            match task {
                SourceTask::Task(t) => t.abort(),
                SourceTask::Thread(stop) => stop.store(true, Ordering::Relaxed),
            }
        }
        while self.tasks.join_next().await.is_some() {}
    }

    /// The first half of a shutdown, with the listeners still up: new sessions are
    /// refused, every PeerConnection is hung up (each client gets `hangup`, reason
    /// "Shutdown"), every SIP call gets its BYE (or CANCEL) and every registration its
    /// removal, waiting at most `grace` for the answers; then clients get a moment to
    /// take their events.
    pub async fn drain(&self, grace: Duration) {
        self.hub.with_gateway(|g, now| g.begin_shutdown(now));
        if let Some(sip) = &self.hub.sip {
            let (done, finished) = tokio::sync::oneshot::channel();
            if sip
                .send(crate::ingest::sip::SipCommand::Shutdown { grace, done })
                .await
                .is_ok()
            {
                let _ = tokio::time::timeout(grace + Duration::from_secs(1), finished).await;
            }
        }
        // Long polls woken by the hangups come back for them before the listeners go.
        tokio::time::sleep(EVENTS_FLUSH).await;
    }

    /// Resolves when any task ends (they end only on shutdown or a fatal error),
    /// saying how it ended.
    pub async fn wait(&mut self) -> String {
        match self.tasks.join_next().await {
            Some(Ok(())) => "a gateway task ended".to_owned(),
            Some(Err(e)) if e.is_panic() => format!(
                "a gateway task panicked: {}",
                crate::contain::panic_message(e.into_panic().as_ref())
            ),
            Some(Err(e)) => format!("a gateway task failed: {e}"),
            None => "no gateway task is running".to_owned(),
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The SIP user agent could not start.
    #[error("SIP: {0}")]
    Sip(String),
    /// The configuration is not safe or not valid (also for one built in code).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A plugin could not set up what the configuration declares (a mountpoint).
    #[error("{0}")]
    Plugin(String),
}

/// One UDP socket per media shard: `udp_bind`'s port and the ones after it (or ports
/// of the OS's choosing, for port 0), each with the address it is bound to.
fn bind_media_sockets(
    media: &crate::config::MediaConfig,
) -> Result<Vec<(std::net::UdpSocket, SocketAddr)>, StartError> {
    (0..media.shard_count())
        .map(|k| {
            let mut addr = media.udp_bind;
            if addr.port() != 0 {
                // Validated: the range fits.
                addr.set_port(addr.port().saturating_add(k as u16));
            }
            let bound = std::net::UdpSocket::bind(addr).and_then(|s| {
                let local = s.local_addr()?;
                Ok((s, local))
            });
            bound.map_err(|source| StartError::Bind {
                what: "media UDP socket",
                addr,
                source,
            })
        })
        .collect()
}

/// Binds everything in `config` and runs the gateway until [`Running::shutdown`].
pub async fn start(config: Config, opts: StartOptions) -> Result<Running, StartError> {
    let source = opts
        .config_path
        .clone()
        .unwrap_or_else(|| "(configuration given in code)".into());
    config.validate(&source)?;
    crate::check_plugins(&config, &source)?;
    let sockets = bind_media_sockets(&config.media)?;
    let media_addrs: Vec<SocketAddr> = sockets.iter().map(|(_, a)| *a).collect();
    let ports: Vec<u16> = media_addrs.iter().map(SocketAddr::port).collect();
    let host_addrs = webrtc::host_addresses(&config.media);
    let factory = Arc::new(WebrtcFactory::sharded(&config.media, &ports, &host_addrs));
    tracing::info!(
        udp = ?media_addrs,
        candidates = ?factory.candidates().iter().flatten().map(|c| c.addr()).collect::<Vec<_>>(),
        "media shards bound"
    );
    let sip_endpoint = if config.sip.enabled {
        let settings = crate::ingest::sip::driver::SipSettings {
            bind: SocketAddr::new(config.sip.local_ip, config.sip.local_port),
            advertised_ip: config.sip.advertised_ip,
            user_agent: config.sip.user_agent.clone(),
            media_ip: config.sip.local_ip,
            sdp_ip: config.sip.advertised_ip.unwrap_or(config.sip.local_ip),
            accept_from: accept_from(&config.sip.accept_from),
            symmetric_rtp_nat: config.sip.symmetric_rtp_nat,
        };
        let ep = crate::ingest::sip::driver::bind(&settings)
            .await
            .map_err(StartError::Sip)?;
        tracing::info!(udp = %ep.local, "SIP user agent bound");
        Some(ep)
    } else {
        None
    };
    let sip_addr = sip_endpoint.as_ref().map(|e| e.local);
    let plugins: Vec<Box<dyn crate::plugin::Plugin>> = vec![
        Box::new(EchoTest::new(config.media.default_remb_bitrate)),
        Box::new(Streaming::new(
            &config.streaming,
            Box::new(HostIo::new(opts.config_path.clone())),
        )),
        Box::new(crate::plugin::sip::Sip::new(
            sip_endpoint.is_some(),
            config.sip.register_ttl,
        )),
    ];
    let gateway = Gateway::new(config.clone(), plugins, factory.clone(), opts.clock.now());
    let keyframes = Arc::new(crate::media::snapshot::Keyframes::default());
    let (media_tx, media_rx) = queue::channel(PACKET_QUEUE, COMMAND_QUEUE, factory.counters());
    let (events_tx, mut events_rx) = mpsc::channel(EVENT_QUEUE);
    let (ingest_tx, mut ingest_rx) = mpsc::channel(EVENT_QUEUE);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (sip_tx, sip_rx) = mpsc::channel(crate::ingest::sip::driver::COMMAND_QUEUE);
    let mut tasks = JoinSet::new();
    let event_sink = events::EventSink::start(&config.events, &mut tasks, shutdown_rx.clone());
    let hub = Arc::new(Hub {
        gateway: Mutex::new(gateway),
        clock: opts.clock.clone(),
        media: media_tx.clone(),
        events: ingest_tx.clone(),
        sip: sip_endpoint.is_some().then_some(sip_tx),
        conns: Mutex::new(HashMap::new()),
        waiters: Mutex::new(HashMap::new()),
        sources: Mutex::new(HashMap::new()),
        next_conn: AtomicU64::new(0),
        log_control: opts.log_control,
        keyframes: keyframes.clone(),
        snapshots: Default::default(),
        config: config.clone(),
        shutdown: shutdown_rx.clone(),
        event_sink,
    });

    if let Err(message) = hub.with_gateway(|g, now| g.init_plugins(now)) {
        return Err(StartError::Plugin(message));
    }
    if let Some(ep) = sip_endpoint {
        tasks.spawn(crate::ingest::sip::driver::run(
            ep,
            sip_rx,
            ingest_tx.clone(),
            media_tx.clone(),
            shutdown_rx.clone(),
        ));
    }
    for (index, ((socket, addr), queues)) in sockets.into_iter().zip(media_rx).enumerate() {
        let shard = webrtc::driver::Shard {
            index,
            socket,
            local: LocalAddrs::from_candidates(
                addr.port(),
                &webrtc::candidate_addrs(&config.media, index, addr.port(), &host_addrs),
            ),
            counters: factory.counters()[index].clone(),
            queues,
            events: events_tx.clone(),
            keyframes: (index == 0).then(|| keyframes.clone()),
            nack_history: Duration::from_millis(config.media.nack_history_ms),
            shutdown: shutdown_rx.clone(),
        };
        let done = webrtc::driver::spawn(shard).map_err(|source| StartError::Bind {
            what: "media shard",
            addr,
            source,
        })?;
        tasks.spawn(async move {
            let _ = done.await;
        });
    }
    drop(events_tx);
    {
        let hub = hub.clone();
        let mut shutdown = shutdown_rx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    ev = events_rx.recv() => match ev {
                        Some(ev) => hub.with_gateway(|g, now| g.handle_media_event(now, ev)),
                        None => break,
                    },
                    // The hub holds a sender: this channel never closes before shutdown.
                    Some(ev) = ingest_rx.recv() => {
                        hub.with_gateway(|g, now| deliver_ingest_event(g, now, ev));
                    }
                    _ = shutdown.changed() => break,
                }
            }
        });
    }
    {
        let hub = hub.clone();
        let mut shutdown = shutdown_rx.clone();
        let tick = opts.timer_tick;
        tasks.spawn(async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                tokio::select! {
                    _ = interval.tick() => {
                        hub.with_gateway(|g, now| g.handle_timeout(now));
                        hub.forget_dead_waiters();
                    }
                    _ = shutdown.changed() => break,
                }
            }
        });
    }

    let mut running = Running {
        http: None,
        admin_http: None,
        ws: None,
        admin_ws: None,
        metrics: None,
        udp: media_addrs[0],
        media_addrs,
        media_counters: factory.counters().to_vec(),
        sip: sip_addr,
        hub: hub.clone(),
        shutdown: shutdown_tx,
        tasks,
    };
    let g = &config.general;
    let open_api = g.api_secret.is_empty() && !g.token_auth;
    for (on, bind, what) in [
        (config.http.enabled, config.http.bind, "HTTP"),
        (config.websocket.enabled, config.websocket.bind, "WebSocket"),
    ] {
        if on && open_api && !bind.ip().is_loopback() {
            tracing::warn!(%bind, "the {what} API is open to anyone who reaches it: set general.api_secret or token_auth");
        }
    }
    let h = &config.http;
    let shared_http = h.enabled && h.admin_enabled && h.bind == h.admin_bind;
    let mx = &config.metrics;
    // Metrics ride on the admin HTTP listener unless they have their own.
    let metrics_on_admin = mx.enabled && mx.bind.is_none();
    if h.enabled {
        let (l, addr) = bind_tcp("HTTP API", h.bind).await?;
        let mut router = http::main_router(hub.clone()).route(
            "/snapshot/{file}",
            axum::routing::get(snapshot::snapshot).with_state(hub.clone()),
        );
        if shared_http {
            router = router.merge(http::admin_router(hub.clone()));
            running.admin_http = Some(addr);
            if metrics_on_admin {
                router = router.merge(metrics::router(hub.clone()));
                running.metrics = Some(addr);
            }
        }
        if config.web.enabled {
            router = router.merge(web::router(hub.clone()));
        }
        if !h.whep_path.is_empty() || !h.whip_path.is_empty() {
            router = router.merge(whep::router(hub.clone()));
        }
        running.http = Some(addr);
        tracing::info!(%addr, base = %h.base_path, "HTTP API listening");
        spawn_serve(&mut running.tasks, l, router, h, shutdown_rx.clone());
    }
    if h.admin_enabled && !shared_http {
        let (l, addr) = bind_tcp("HTTP admin API", h.admin_bind).await?;
        running.admin_http = Some(addr);
        tracing::info!(%addr, base = %h.admin_base_path, "HTTP admin API listening");
        let mut router = http::admin_router(hub.clone());
        if metrics_on_admin {
            router = router.merge(metrics::router(hub.clone()));
            running.metrics = Some(addr);
        }
        spawn_serve(&mut running.tasks, l, router, h, shutdown_rx.clone());
    }
    if let (true, Some(bind)) = (mx.enabled, mx.bind) {
        let (l, addr) = bind_tcp("metrics", bind).await?;
        running.metrics = Some(addr);
        if mx.token.is_empty() && !bind.ip().is_loopback() {
            tracing::warn!(%bind, "metrics are open to anyone who reaches them: set metrics.token");
        }
        let router = metrics::router(hub.clone());
        spawn_serve(&mut running.tasks, l, router, h, shutdown_rx.clone());
    }
    match running.metrics {
        Some(addr) => tracing::info!(%addr, "Prometheus metrics at /metrics"),
        None if mx.enabled => tracing::warn!(
            "metrics.enabled but no listener serves them: enable http.admin_enabled or set metrics.bind"
        ),
        None => {}
    }
    let w = &config.websocket;
    if w.enabled {
        let (l, addr) = bind_tcp("WebSocket API", w.bind).await?;
        running.ws = Some(addr);
        tracing::info!(%addr, "WebSocket API listening (janus-protocol)");
        spawn_serve(
            &mut running.tasks,
            l,
            ws::router(hub.clone(), false),
            h,
            shutdown_rx.clone(),
        );
    }
    if w.admin_enabled {
        let (l, addr) = bind_tcp("WebSocket admin API", w.admin_bind).await?;
        running.admin_ws = Some(addr);
        tracing::info!(%addr, "WebSocket admin API listening (janus-admin-protocol)");
        spawn_serve(
            &mut running.tasks,
            l,
            ws::router(hub.clone(), true),
            h,
            shutdown_rx.clone(),
        );
    }
    hub.core_event(
        1,
        serde_json::json!({"status": "started", "info": {
            "name": config.general.server_name, "version": env!("CARGO_PKG_VERSION"),
            "http": running.http, "websocket": running.ws, "media": running.media_addrs,
        }}),
    );
    Ok(running)
}

/// `sip.accept_from` (validated with the configuration) as the driver takes it.
fn accept_from(list: &[String]) -> crate::ingest::sip::driver::AcceptFrom {
    use crate::ingest::sip::driver::AcceptFrom;
    if list.iter().any(|a| a == "any") {
        return AcceptFrom::Any;
    }
    let ips: Vec<std::net::IpAddr> = list.iter().filter_map(|a| a.parse().ok()).collect();
    if ips.is_empty() {
        AcceptFrom::Registrars
    } else {
        AcceptFrom::Also(ips)
    }
}
