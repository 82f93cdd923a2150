//! The Janus API core, sans-IO.
//!
//! [`Gateway`] takes requests as bytes with the time they arrived and returns the
//! synchronous reply; everything asynchronous (events for a session, media commands,
//! log-level changes) is queued as [`Output`] and drained by the transport driver
//! with [`Gateway::poll_output`]. Session timeouts advance only through
//! [`Gateway::handle_timeout`], so tests drive them with a fake clock.
//!
//! Contract: after every `handle_*` call, drain `poll_output` until it returns `None`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::contain::contain;
use crate::media::webrtc::{MediaCommand, MediaEvent, PeerStats, WebrtcFactory};
use crate::plugin::{Plugin, PluginCtx};

mod admin;
mod core;
mod error;
pub mod events;
pub mod metrics;
mod request;
mod requests;
pub mod sdpfrag;
pub mod whep;

use crate::ids;
pub use crate::ids::{ConnId, HandleId, PeerId, SessionId, SourceId};
pub use error::{code, ApiError};
pub use request::{parse_request, Jsep, JsepKind, ParseError, Request, Target, TransportKind};

/// Version reported by `info`: Janus 1.1.2's API, which janus.js 1.x speaks.
const VERSION: u32 = 1102;
const VERSION_STRING: &str = "1.1.2";
/// How long a `timeout` event waits for the long poll that will carry it.
const FAREWELL_KEEP: Duration = Duration::from_secs(60);

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Transport kind.
    pub transport: TransportKind,
    /// The WebSocket connection, `None` for HTTP.
    pub conn: Option<ConnId>,
    /// The client's address, when the transport knows it (sessions per client).
    pub client: Option<IpAddr>,
}

impl Origin {
    /// An HTTP request from an unknown address.
    pub const HTTP: Origin = Origin {
        transport: TransportKind::Http,
        conn: None,
        client: None,
    };

    /// An HTTP request from `client`.
    pub fn http_from(client: IpAddr) -> Origin {
        Origin {
            client: Some(client),
            ..Origin::HTTP
        }
    }

    /// A request on WebSocket connection `conn`.
    pub fn websocket(conn: ConnId) -> Origin {
        Origin {
            transport: TransportKind::Websocket,
            conn: Some(conn),
            client: None,
        }
    }

    /// A request on WebSocket connection `conn` from `client`.
    pub fn websocket_from(conn: ConnId, client: IpAddr) -> Origin {
        Origin {
            client: Some(client),
            ..Origin::websocket(conn)
        }
    }
}

/// Something the driver must do after a call into the core.
#[derive(Debug)]
pub enum Output {
    /// Send `msg` on WebSocket connection `conn`.
    Deliver {
        /// The connection.
        conn: ConnId,
        /// The event.
        msg: Value,
    },
    /// Events were queued for an HTTP-owned session: wake its long polls.
    Wake(SessionId),
    /// A command for the media engine.
    Media(MediaCommand),
    /// The admin API changed the log level (0 = none … 7 = trace, as Janus).
    SetLogLevel(u8),
    /// What a plugin asked of the ingest side (a source to start, a SIP command), in order.
    Ingest(crate::plugin::IngestRequest),
    /// Stop a source.
    StopSource(SourceId),
    /// An event for the event handlers (webhooks, NATS), to stamp and send.
    HandlerEvent(Box<events::HandlerEvent>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Http,
    Websocket(ConnId),
    /// Its WebSocket closed; waiting for a claim until the reclaim timeout.
    Orphan(Instant),
    /// Made by the gateway for a viewer over HTTP signalling (WHEP): no inactivity
    /// timeout, no claim, its last few events kept; it ends with its PeerConnection.
    Internal,
}

struct Session {
    owner: Owner,
    /// The address that created it (counted against `max_sessions_per_client`).
    client: Option<IpAddr>,
    created: Instant,
    last_activity: Instant,
    handles: BTreeSet<HandleId>,
    /// Events waiting for a long poll (HTTP-owned or orphaned sessions).
    queue: VecDeque<Value>,
}

struct Pc {
    peer: PeerId,
    stats: Arc<PeerStats>,
    connected: bool,
}

/// A server-side offer waiting for the peer's answer.
struct PendingOffer {
    rtc: str0m::Rtc,
    pending: str0m::change::SdpPendingOffer,
    /// The mids the peer sees, when not str0m's.
    mids: crate::media::webrtc::mids::MidMap,
    /// The media shard `rtc` was built for.
    shard: crate::media::webrtc::Placement,
}

struct Handle {
    session: SessionId,
    pending_offer: Option<PendingOffer>,
    plugin: usize,
    opaque_id: Option<String>,
    created: Instant,
    pc: Option<Pc>,
    /// Trickled candidates that arrived before the offer created the PeerConnection.
    pending_candidates: Vec<str0m::Candidate>,
    /// Candidates trickled since the last hangup (bounded by `MAX_REMOTE_CANDIDATES`).
    trickled: usize,
    trickle_completed: bool,
}

/// A WHEP viewer's internal session and handle, and the credential its `POST` carried.
struct WhepEntry {
    session: SessionId,
    handle: HandleId,
    /// A WHIP publisher, not a WHEP viewer.
    publisher: bool,
    bearer: Option<String>,
    /// The player's offer with its current ICE credentials: an ICE restart by `PATCH`
    /// is applied as this offer with new ones.
    offer: String,
    /// The player's current ICE ufrag (a `PATCH` with another one restarts ICE).
    remote_ufrag: Option<String>,
    /// Ours, the resource's `ETag`.
    etag: String,
}

enum Deferred {
    ClosePc(HandleId, &'static str),
    Detach(HandleId),
    /// An internal session whose PeerConnection ended.
    EndSession(SessionId),
}

/// Everything a plugin callback may touch: the core's state minus the plugins.
pub struct Core {
    config: Config,
    sessions: HashMap<SessionId, Session>,
    handles: HashMap<HandleId, Handle>,
    tokens: BTreeMap<String, BTreeSet<String>>,
    accepting: bool,
    session_timeout: Option<Duration>,
    outputs: VecDeque<Output>,
    farewells: HashMap<SessionId, (Instant, Value)>,
    /// Live sessions per client address.
    per_client: HashMap<IpAddr, usize>,
    /// WHEP viewers: resource id (random, in the `Location` URL) to their internal
    /// session and handle. Bounded by `max_sessions`.
    whep: HashMap<String, WhepEntry>,
    /// Events dropped from full long-poll queues.
    dropped_events: u64,
    webrtc: Arc<WebrtcFactory>,
    deferred: Vec<Deferred>,
    next_peer: u64,
    next_source: u64,
    log_level: u8,
    started: Instant,
    /// Event types reported to event handlers (Janus's bits; 0: none).
    event_mask: u32,
}

/// The API core: sessions, handles, plugins.
pub struct Gateway {
    core: Core,
    plugins: Vec<Box<dyn Plugin>>,
}

impl Gateway {
    /// A gateway with the given plugins. `now` is the start time (for uptime).
    pub fn new(
        config: Config,
        plugins: Vec<Box<dyn Plugin>>,
        webrtc: Arc<WebrtcFactory>,
        now: Instant,
    ) -> Gateway {
        let session_timeout = config.session_timeout();
        let accepting = config.general.accept_new_sessions;
        let event_mask = config.events.mask();
        Gateway {
            core: Core {
                config,
                sessions: HashMap::new(),
                handles: HashMap::new(),
                tokens: BTreeMap::new(),
                accepting,
                session_timeout,
                outputs: VecDeque::new(),
                farewells: HashMap::new(),
                per_client: HashMap::new(),
                whep: HashMap::new(),
                dropped_events: 0,
                webrtc,
                deferred: Vec::new(),
                next_peer: 1,
                next_source: 1,
                log_level: 4,
                started: now,
                event_mask,
            },
            plugins,
        }
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.core.outputs.pop_front()
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.core.sessions.len()
    }

    /// Number of live handles.
    pub fn handle_count(&self) -> usize {
        self.core.handles.len()
    }

    /// A request to the main API. Over HTTP, `url_target` is read from the path.
    pub fn handle_request(
        &mut self,
        now: Instant,
        origin: Origin,
        url_target: Option<Target>,
        body: &[u8],
    ) -> Value {
        self.answer(now, origin, url_target, body, Self::dispatch)
    }

    /// Parses, dispatches, runs what plugins deferred, and shapes the reply or error.
    fn answer(
        &mut self,
        now: Instant,
        origin: Origin,
        url_target: Option<Target>,
        body: &[u8],
        dispatch: fn(&mut Self, Instant, Origin, &Request) -> Result<Value, ApiError>,
    ) -> Value {
        let req = match parse_request(body, origin.transport, url_target) {
            Ok(r) => r,
            Err(e) => return error_reply(None, e.transaction.as_deref(), &e.error),
        };
        let reply = match contain(|| dispatch(self, now, origin, &req)) {
            Ok(reply) => reply,
            Err(panic) => {
                tracing::error!(
                    request = %req.janus, session = ?req.target.session.map(|s| s.0),
                    handle = ?req.target.handle.map(|h| h.0), %panic,
                    "request handler panicked: answered with an internal error"
                );
                Err(ApiError::new(
                    code::UNKNOWN,
                    "Internal error while handling the request (logged)",
                ))
            }
        };
        self.contained("deferred work", |g| g.run_deferred(now));
        match reply {
            Ok(v) => v,
            Err(e) => error_reply(req.target.session, Some(&req.transaction), &e),
        }
    }

    fn run_deferred(&mut self, now: Instant) {
        while let Some(d) = self.core.deferred.pop() {
            match d {
                Deferred::ClosePc(hid, reason) => {
                    self.core.hangup(now, &mut self.plugins, hid, reason)
                }
                Deferred::Detach(hid) => self.detach(now, hid),
                Deferred::EndSession(sid) => self.destroy_session(now, sid),
            }
        }
    }

    /// Runs `f` on plugin `index` with a context for its callbacks.
    fn call_plugin<R>(
        &mut self,
        index: usize,
        now: Instant,
        f: impl FnOnce(&mut dyn Plugin, &mut PluginCtx<'_>) -> R,
    ) -> R {
        let plugin = &mut self.plugins[index];
        let mut ctx = PluginCtx {
            core: &mut self.core,
            plugin: plugin.info().package,
            now,
        };
        f(plugin.as_mut(), &mut ctx)
    }

    /// What plugin `package` says `id` shows to a reader with `credentials` (snapshots).
    pub fn viewable_video(
        &self,
        package: &str,
        id: ids::MountpointId,
        credentials: &Map<String, Value>,
    ) -> Result<crate::plugin::ViewableVideo, crate::plugin::ViewRefusal> {
        use crate::plugin::ViewRefusal;
        self.core
            .check_auth(credentials)
            .map_err(|e| ViewRefusal::Forbidden(e.reason))?;
        let index = self
            .plugin_index(package)
            .map_err(|e| ViewRefusal::NotFound(e.reason))?;
        let plugin = &self.plugins[index];
        contain(|| plugin.viewable_video(id, credentials))
            .unwrap_or_else(|panic| Err(ViewRefusal::NotFound(format!("internal error: {panic}"))))
    }

    /// The plugin with this package name, or 460.
    fn plugin_index(&self, name: &str) -> Result<usize, ApiError> {
        self.plugins
            .iter()
            .position(|p| p.info().package == name)
            .ok_or_else(|| {
                ApiError::new(code::PLUGIN_NOT_FOUND, format!("No such plugin '{name}'"))
            })
    }

    /// Runs `f`, containing a panic: logged with `what`, and the work plugins deferred
    /// during it dropped (it may be what panicked). The core's tables stay usable: each
    /// entry is inserted or removed whole, so a panic leaves at worst a session or handle
    /// its client can destroy.
    fn contained(&mut self, what: &str, f: impl FnOnce(&mut Self)) {
        if let Err(panic) = contain(|| f(self)) {
            tracing::error!(%what, %panic, "panic contained in the API core");
            self.core.deferred.clear();
        }
    }

    /// Lets every plugin set itself up (e.g. mountpoints declared in the configuration);
    /// the first plugin's error, if any (the start must stop).
    pub fn init_plugins(&mut self, now: Instant) -> Result<(), String> {
        let mut failed = None;
        for i in 0..self.plugins.len() {
            self.contained("plugin init", |g| {
                if let Err(e) = g.call_plugin(i, now, |p, ctx| p.init(ctx)) {
                    failed.get_or_insert(e);
                }
            });
        }
        failed.map_or(Ok(()), Err)
    }

    /// Time passed: time out idle sessions and orphans whose reclaim time is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.contained("timeout", |g| g.timeout(now));
    }

    fn timeout(&mut self, now: Instant) {
        let reclaim = Duration::from_secs(self.core.config.general.reclaim_session_timeout);
        let mut expired = Vec::new();
        for (id, s) in &self.core.sessions {
            let idle = s.owner != Owner::Internal
                && self
                    .core
                    .session_timeout
                    .is_some_and(|t| now.saturating_duration_since(s.last_activity) >= t);
            let unclaimed = matches!(s.owner, Owner::Orphan(since) if now.saturating_duration_since(since) >= reclaim);
            if idle || unclaimed {
                expired.push((*id, idle));
            }
        }
        for (sid, idle) in expired {
            if idle {
                tracing::info!(session = %sid, "session timed out");
                self.core.emit(
                    events::SESSION,
                    None,
                    Some(sid),
                    None,
                    json!({"name": "timeout"}),
                );
                let msg = json!({"janus": "timeout", "session_id": sid.0});
                match self.core.sessions.get(&sid).map(|s| s.owner) {
                    Some(Owner::Websocket(conn)) => {
                        self.core.outputs.push_back(Output::Deliver { conn, msg })
                    }
                    _ => {
                        self.core.farewells.insert(sid, (now, msg));
                        self.core.outputs.push_back(Output::Wake(sid));
                    }
                }
            }
            self.destroy_session(now, sid);
        }
        self.core
            .farewells
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < FAREWELL_KEEP);
        self.run_deferred(now);
    }

    /// The gateway stops: no new sessions, and every PeerConnection is hung up, so each
    /// client gets a `hangup` (reason "Shutdown") and each plugin ends what it bridged.
    pub fn begin_shutdown(&mut self, now: Instant) {
        self.contained("shutdown", |g| {
            g.core.accepting = false;
            let live: Vec<HandleId> = g
                .core
                .handles
                .iter()
                .filter(|(_, h)| h.pc.is_some())
                .map(|(id, _)| *id)
                .collect();
            for hid in live {
                g.core.hangup(now, &mut g.plugins, hid, "Shutdown");
            }
            g.run_deferred(now);
        });
    }

    /// A WebSocket closed: its sessions end now, or after the reclaim timeout.
    pub fn connection_closed(&mut self, now: Instant, conn: ConnId) {
        self.contained("connection closed", |g| g.close_connection(now, conn));
    }

    fn close_connection(&mut self, now: Instant, conn: ConnId) {
        let owned: Vec<SessionId> = self
            .core
            .sessions
            .iter()
            .filter(|(_, s)| s.owner == Owner::Websocket(conn))
            .map(|(id, _)| *id)
            .collect();
        for sid in owned {
            if self.core.config.general.reclaim_session_timeout == 0 {
                self.destroy_session(now, sid);
            } else if let Some(s) = self.core.sessions.get_mut(&sid) {
                s.owner = Owner::Orphan(now);
            }
        }
        self.run_deferred(now);
    }

    /// A long poll for `sid`: up to `max` queued events, or `Err` (HTTP 404/403).
    /// Credentials come from the query string, as a request body would carry them.
    pub fn take_events(
        &mut self,
        now: Instant,
        sid: SessionId,
        credentials: &Map<String, Value>,
        max: usize,
    ) -> Result<Vec<Value>, LongPollError> {
        if self.core.check_auth(credentials).is_err() {
            return Err(LongPollError::Unauthorized);
        }
        let Some(session) = self.core.sessions.get_mut(&sid) else {
            return match self.core.farewells.remove(&sid) {
                Some((_, msg)) => Ok(vec![msg]),
                None => Err(LongPollError::NoSuchSession),
            };
        };
        if matches!(session.owner, Owner::Websocket(_)) {
            return Err(LongPollError::NoSuchSession);
        }
        session.last_activity = now;
        let n = max.max(1).min(session.queue.len());
        Ok(session.queue.drain(..n).collect())
    }

    /// News from outside the core for every plugin (the SIP user agent's, a camera's):
    /// `deliver` hands it to one plugin; the runtime makes one such call of each
    /// ingest event, so the core never names the ingest side's types.
    pub fn broadcast_to_plugins(
        &mut self,
        now: Instant,
        what: &str,
        mut deliver: impl FnMut(&mut dyn Plugin, &mut PluginCtx<'_>),
    ) {
        self.contained(what, |g| {
            for i in 0..g.plugins.len() {
                g.call_plugin(i, now, &mut deliver);
            }
        });
    }

    /// An event from the media engine.
    pub fn handle_media_event(&mut self, now: Instant, ev: MediaEvent) {
        self.contained("media event", |g| g.media_event(now, ev));
    }

    fn media_event(&mut self, now: Instant, ev: MediaEvent) {
        match ev {
            MediaEvent::Connected { peer, handle } => {
                let Some(h) = self.core.handles.get_mut(&handle) else {
                    return;
                };
                let Some(pc) = h.pc.as_mut().filter(|pc| pc.peer == peer) else {
                    return;
                };
                pc.connected = true;
                let (sid, index) = (h.session, h.plugin);
                self.core.deliver(
                    sid,
                    json!({"janus": "webrtcup", "session_id": sid.0, "sender": handle.0}),
                );
                let (s, h) = (Some(sid), Some(handle));
                self.core
                    .emit(events::WEBRTC, Some(1), s, h, json!({"ice": "connected"}));
                self.core
                    .emit(events::WEBRTC, Some(5), s, h, json!({"dtls": "connected"}));
                self.core.emit(
                    events::WEBRTC,
                    Some(6),
                    s,
                    h,
                    json!({"connection": "webrtcup"}),
                );
                self.call_plugin(index, now, |p, ctx| p.setup_media(ctx, handle));
            }
            MediaEvent::Receiving {
                peer,
                handle,
                mid,
                kind,
                receiving,
            } => {
                let Some(h) = self.core.handles.get(&handle) else {
                    return;
                };
                if h.pc.as_ref().is_some_and(|pc| pc.peer == peer) {
                    let sid = h.session;
                    self.core.emit(
                        events::MEDIA,
                        Some(1),
                        Some(sid),
                        Some(handle),
                        json!({"media": kind, "mid": mid, "receiving": receiving}),
                    );
                    self.core.deliver(
                        sid,
                        json!({"janus": "media", "session_id": sid.0, "sender": handle.0,
                               "mid": mid, "type": kind, "receiving": receiving}),
                    );
                }
            }
            MediaEvent::RestartOffer { peer, handle, sdp } => {
                let Some(h) = self.core.handles.get(&handle) else {
                    return;
                };
                if h.pc.as_ref().is_some_and(|pc| pc.peer == peer) {
                    let index = h.plugin;
                    let jsep = Jsep {
                        kind: JsepKind::Offer,
                        sdp,
                        trickle: false,
                        restart: true,
                    };
                    self.call_plugin(index, now, |p, ctx| p.restart_offer(ctx, handle, jsep));
                }
            }
            MediaEvent::Renegotiated {
                peer,
                handle,
                answer,
            } => {
                let Some(h) = self.core.handles.get(&handle) else {
                    return;
                };
                if h.pc.as_ref().is_some_and(|pc| pc.peer == peer) {
                    let index = h.plugin;
                    let answer = answer.map(|sdp| Jsep {
                        kind: JsepKind::Answer,
                        sdp,
                        trickle: false,
                        restart: false,
                    });
                    self.call_plugin(index, now, |p, ctx| p.renegotiated(ctx, handle, answer));
                }
            }
            MediaEvent::Closed {
                peer,
                handle,
                reason,
            } => {
                let current = self
                    .core
                    .handles
                    .get(&handle)
                    .and_then(|h| h.pc.as_ref())
                    .is_some_and(|pc| pc.peer == peer);
                if current {
                    self.core
                        .hangup_with(now, &mut self.plugins, handle, &reason, false);
                }
            }
        }
        self.run_deferred(now);
    }

    fn server_info(&self, tx: &str) -> Value {
        let mut plugins = Map::new();
        for p in &self.plugins {
            let i = p.info();
            plugins.insert(
                i.package.into(),
                json!({"name": i.name, "author": "Cardea", "description": i.description,
                       "version_string": i.version_string, "version": i.version}),
            );
        }
        let g = &self.core.config.general;
        let transport = |name: &str, desc: &str| {
            json!({"name": name, "author": "Cardea", "description": desc,
                   "version_string": env!("CARGO_PKG_VERSION"), "version": 1})
        };
        json!({
            "janus": "server_info", "transaction": tx,
            "name": "Cardea (Janus API)", "version": VERSION, "version_string": VERSION_STRING,
            "author": "Cardea", "cardea-version": env!("CARGO_PKG_VERSION"),
            "server-name": g.server_name, "data_channels": false, "ipv6": false, "ice-lite": false,
            "ice-tcp": false, "full-trickle": false, "session-timeout": g.session_timeout,
            "reclaim-session-timeout": g.reclaim_session_timeout, "candidates-timeout": 45,
            "api_secret": !g.api_secret.is_empty(), "auth_token": g.token_auth,
            "event_handlers": false, "opaqueid_in_api": false,
            "transports": {
                "janus.transport.http": transport("JANUS REST (HTTP/HTTPS) transport plugin", "HTTP REST and long poll"),
                "janus.transport.websockets": transport("JANUS WebSockets transport plugin", "WebSocket, subprotocol janus-protocol"),
            },
            "events": {}, "loggers": {},
            "plugins": plugins,
        })
    }
}

/// Why a long poll is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongPollError {
    /// Unknown session, or one owned by a WebSocket: HTTP 404.
    NoSuchSession,
    /// Missing or wrong credentials: HTTP 403, empty body.
    Unauthorized,
}

fn success(sid: SessionId, tx: &str) -> Value {
    json!({"janus": "success", "session_id": sid.0, "transaction": tx})
}

fn no_session(sid: SessionId) -> ApiError {
    ApiError::new(code::SESSION_NOT_FOUND, format!("No such session {sid}"))
}

fn no_handle(hid: HandleId) -> ApiError {
    ApiError::new(
        code::HANDLE_NOT_FOUND,
        format!("No such handle {hid} in session"),
    )
}

/// `{"janus":"error",...}` with the session and transaction when known.
pub fn error_reply(session: Option<SessionId>, transaction: Option<&str>, e: &ApiError) -> Value {
    let mut v = json!({"janus": "error", "error": {"code": e.code, "reason": e.reason}});
    if let Some(s) = session {
        v["session_id"] = json!(s.0);
    }
    if let Some(t) = transaction {
        v["transaction"] = json!(t);
    }
    v
}
