//! Typed configuration, read from TOML.
//!
//! Every section denies unknown keys so a typo is an error that names the key, not
//! a silently ignored setting. `Config::default()` is the documented default, and
//! the shipped `conf/cardea.toml` must parse to exactly that (a test checks it).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod events;
mod media;

pub use events::{EventsConfig, NatsConfig, WebhookConfig};
pub use media::{IceServerConfig, MediaConfig};

/// The whole gateway configuration.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Janus API core: sessions, secrets, tokens.
    pub general: GeneralConfig,
    /// HTTP REST + long-poll transport (main and admin API) and the built-in web page.
    pub http: HttpConfig,
    /// WebSocket transport (main and admin API).
    pub websocket: WebsocketConfig,
    /// The WebRTC media layer: the one UDP socket and the candidates advertised.
    pub media: MediaConfig,
    /// Built-in web page.
    pub web: WebConfig,
    /// `janus.plugin.streaming`.
    pub streaming: StreamingConfig,
    /// `janus.plugin.sip`: the gateway's SIP user agent.
    pub sip: SipConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// Janus-style event handlers: webhooks and NATS.
    pub events: EventsConfig,
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` (Prometheus text exposition format).
    pub enabled: bool,
    /// A listener of its own; `None`: served by the HTTP admin listener.
    pub bind: Option<SocketAddr>,
    /// When set, a scrape must carry `Authorization: Bearer <token>`.
    pub token: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            bind: None,
            token: String::new(),
        }
    }
}

/// `[sip]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Run the SIP plugin and its user agent.
    pub enabled: bool,
    /// Address of the SIP UDP socket and of calls' RTP sockets; the PBX and phones must reach it.
    pub local_ip: IpAddr,
    /// Its port; 0 picks a free one.
    pub local_port: u16,
    /// Address put in Via, Contact and calls' SDP instead of `local_ip` (gateway behind NAT).
    pub advertised_ip: Option<IpAddr>,
    /// Registration lifetime asked for when `register` gives no `register_ttl`, seconds.
    pub register_ttl: u32,
    /// User-Agent header of requests.
    pub user_agent: String,
    /// Who may send INVITEs and MESSAGEs besides the registrar or proxy of the account
    /// they are for: addresses, or `"any"` (Janus's behaviour). Others get 403.
    pub accept_from: Vec<String>,
    /// Latch a call's media to the address it comes from, once answered, when that is
    /// not the address in the phone's SDP (phones behind NAT). Off: only the SDP address.
    pub symmetric_rtp_nat: bool,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            enabled: true,
            local_ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            local_port: 0,
            advertised_ip: None,
            register_ttl: 3600,
            user_agent: "Cardea".into(),
            accept_from: Vec::new(),
            symmetric_rtp_nat: false,
        }
    }
}

/// `[streaming]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingConfig {
    /// When non-empty, mountpoint administration (`create`, `edit`, `destroy`, `enable`,
    /// `disable`, `kick_all`, `permanent`) may carry this `admin_key`.
    pub admin_key: String,
    /// Janus's looser rule, by explicit choice: anyone may `create` (unless `admin_key` is
    /// set), and a mountpoint without a `secret` may be edited or destroyed by anyone.
    /// Off: administration needs the `admin_key` (or, per mountpoint, its `secret`).
    pub open_admin: bool,
    /// Hosts an RTSP mountpoint's `url` may name (names or addresses, compared exactly,
    /// case-insensitively); empty = any host.
    pub rtsp_allow: Vec<String>,
    /// Most mountpoints created through the API at once (configured ones not counted).
    pub max_api_mountpoints: usize,
    /// Address RTP mountpoint ports are bound on.
    pub rtp_bind_ip: IpAddr,
    /// Mountpoints created at start, as `create` requests would.
    pub mountpoints: Vec<MountpointConfig>,
}

/// `[[streaming.mountpoints]]`: the fields of a `create` request (what `permanent: true`
/// writes back). Each key means what it means in `create`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MountpointConfig {
    /// Numeric id.
    pub id: u64,
    /// `demo` (built-in test pattern and tone), `rtp` or `rtsp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name (defaults to the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free text handed to viewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Secret needed to see ports, edit or destroy it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// PIN needed to watch it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// Hidden from `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_private: Option<bool>,
    /// `rtp`: the media and their ports; `rtsp`: the camera's tracks to take.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MountMediaConfig>,
    /// `rtp`: take packets only from this address (else from the first source heard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// `rtp`: seconds a locked source must be silent before another may take its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relock_timeout: Option<f64>,
    /// `rtsp`: the camera URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `rtsp`: user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtsp_user: Option<String>,
    /// `rtsp`: password (Basic or Digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtsp_pwd: Option<String>,
    /// `rtsp`: `tcp` (interleaved, the default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtsp_transport: Option<String>,
    /// `rtsp`: seconds before the first reconnection attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtsp_reconnect_delay: Option<f64>,
    /// `rtsp`: connect only while someone watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ondemand: Option<bool>,
    /// `rtsp` without `media`: take the camera's audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<bool>,
    /// `rtsp` without `media`: take the camera's video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<bool>,
    /// `rtsp`: the audio codec the camera sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiocodec: Option<String>,
    /// `rtsp`: payload type toward viewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiopt: Option<u8>,
    /// `rtsp`: the video codec the camera sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub videocodec: Option<String>,
    /// `rtsp`: payload type toward viewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub videopt: Option<u8>,
    /// `rtsp`: video codec parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub videofmtp: Option<String>,
}

/// One medium of a mountpoint in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MountMediaConfig {
    /// `audio` or `video`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its mid.
    pub mid: String,
    /// `rtp`: UDP port the source sends to (0: any free port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `rtp`: UDP port for RTCP with the source (receives its reports, sends it PLIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtcpport: Option<u16>,
    /// Payload type the source uses (`rtp`) or viewers get (`rtsp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pt: Option<u8>,
    /// `opus`, `pcmu`, `pcma`, `g722`, `vp8`, `vp9`, `h264`, `av1`, `h265`; `aac` (RFC 3640) and `latm`
    /// (MP4A-LATM) for cameras.
    pub codec: String,
    /// Codec parameters (H.264 profile-level-id, packetization-mode, sprop-parameter-sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmtp: Option<String>,
    /// Stream id shown to viewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msid: Option<String>,
    /// Label shown to viewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            admin_key: String::new(),
            open_admin: false,
            rtsp_allow: Vec::new(),
            max_api_mountpoints: 64,
            rtp_bind_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            mountpoints: vec![MountpointConfig {
                id: 1,
                kind: "demo".into(),
                description: Some("Cardea demo: test pattern (H.264) and tone (PCMU)".into()),
                ..MountpointConfig::default()
            }],
        }
    }
}

/// `[general]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneralConfig {
    /// Name reported by `info` and used in logs.
    pub server_name: String,
    /// Seconds of inactivity after which a session is timed out and freed (0 = never).
    pub session_timeout: u64,
    /// Seconds a session outlives its closed WebSocket, waiting for a `claim` (0 = destroyed at once).
    pub reclaim_session_timeout: u64,
    /// When non-empty, every request must carry `"apisecret"` with this value.
    pub api_secret: String,
    /// When true, requests must carry a `"token"` added through the admin API.
    pub token_auth: bool,
    /// Secret for the admin API; empty means the admin API needs none.
    pub admin_secret: String,
    /// Whether new sessions are accepted at start (admin `accept_new_sessions` toggles it).
    pub accept_new_sessions: bool,
    /// Most sessions at once; past it `create` is refused (472).
    pub max_sessions: usize,
    /// Most sessions one client address may hold at once (472 past it).
    pub max_sessions_per_client: usize,
    /// Most handles one session may attach (461 past it).
    pub max_handles_per_session: usize,
    /// Most events queued for a session's long poll; past it the oldest is dropped and
    /// counted (admin `get_status`: `dropped_events`).
    pub max_queued_events: usize,
}

/// The admin secret every Janus install ships with: fine on loopback, never beyond.
pub const WELL_KNOWN_ADMIN_SECRET: &str = "janusoverlord";

/// `[http]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve the main API (and the web page) over HTTP.
    pub enabled: bool,
    /// Address of the main HTTP listener (API at `base_path`, web page at `/`).
    pub bind: SocketAddr,
    /// Path of the main API.
    pub base_path: String,
    /// Serve the admin API over HTTP.
    pub admin_enabled: bool,
    /// Address of the admin HTTP listener.
    pub admin_bind: SocketAddr,
    /// Path of the admin API.
    pub admin_base_path: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a long poll is held when no event is pending.
    pub long_poll_seconds: u64,
    /// `Access-Control-Allow-Origin` value.
    pub allow_origin: String,
    /// Connections open at once on each listener (HTTP, WebSocket, admin); past it a new
    /// connection is closed at once.
    pub max_connections: usize,
    /// Connections open at once from one client address, on each listener.
    pub max_connections_per_client: usize,
    /// Seconds a client has to send a request's header (slow-loris), and that an idle
    /// kept-alive connection stays open.
    pub header_read_timeout_seconds: u64,
    /// WHEP endpoints on the main listener (`<whep_path>/<mountpoint id>`); "" = off.
    pub whep_path: String,
    /// WHIP endpoints (publishers into `webrtc` mountpoints); "" = off.
    pub whip_path: String,
}

/// `[websocket]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebsocketConfig {
    /// Serve the main API over WebSocket (subprotocol `janus-protocol`).
    pub enabled: bool,
    /// Address of the main WebSocket listener.
    pub bind: SocketAddr,
    /// Serve the admin API over WebSocket (subprotocol `janus-admin-protocol`).
    pub admin_enabled: bool,
    /// Address of the admin WebSocket listener.
    pub admin_bind: SocketAddr,
    /// Messages queued toward one WebSocket client; a client that lets it fill (or
    /// does not take a message within `send_timeout_seconds`) is disconnected, and
    /// its sessions end as on any close.
    pub max_queued_messages: usize,
    /// Seconds one message may take to reach a client's socket.
    pub send_timeout_seconds: u64,
}

/// `[web]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve the demo page at `/` of the main HTTP listener.
    pub enabled: bool,
    /// Where `npm install` put janus.js and its adapter (the setup command does this).
    pub node_modules: PathBuf,
    /// What the lab page's phone form starts filled in with.
    pub phone: PhoneConfig,
}

/// `[web.phone]`: the lab page's phone form, filled in (the docker-compose lab's PBX
/// account). Served in `/settings.js` to every browser that opens the page, the password
/// too: for labs, never for a real account.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhoneConfig {
    /// The SIP address to register, e.g. "sip:alice@pbx".
    pub user: String,
    /// Its password.
    pub secret: String,
    /// Outbound proxy, e.g. "sip:10.0.0.2:5060"; "" = the address's host.
    pub proxy: String,
    /// The address the call field starts with, e.g. "sip:1000@pbx".
    pub dial: String,
}

impl std::fmt::Debug for PhoneConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneConfig")
            .field("user", &self.user)
            .field(
                "secret",
                &if self.secret.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("proxy", &self.proxy)
            .field("dial", &self.dial)
            .finish()
    }
}

impl PhoneConfig {
    /// What is wrong with it, if anything: the key and why.
    fn problem(&self) -> Option<(&'static str, &'static str)> {
        let not_sip = |uri: &str| {
            !(uri.is_empty() || uri.starts_with("sip:") || uri.starts_with("sips:"))
                || uri.chars().any(char::is_control)
        };
        [
            ("web.phone.user", &self.user),
            ("web.phone.proxy", &self.proxy),
            ("web.phone.dial", &self.dial),
        ]
        .into_iter()
        .find(|(_, uri)| not_sip(uri))
        .map(|(key, _)| (key, "must be a sip: or sips: URI (or \"\")"))
    }
}

impl Default for GeneralConfig {
    fn default() -> Self {
        GeneralConfig {
            server_name: "Cardea".into(),
            session_timeout: 60,
            reclaim_session_timeout: 0,
            api_secret: String::new(),
            token_auth: false,
            admin_secret: WELL_KNOWN_ADMIN_SECRET.into(),
            accept_new_sessions: true,
            max_sessions: 10_000,
            max_sessions_per_client: 200,
            max_handles_per_session: 64,
            max_queued_events: 1_000,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            bind: ([0, 0, 0, 0], 8088).into(),
            base_path: "/janus".into(),
            admin_enabled: true,
            admin_bind: ([127, 0, 0, 1], 7088).into(),
            admin_base_path: "/admin".into(),
            max_body_bytes: 64 * 1024,
            long_poll_seconds: 30,
            allow_origin: "*".into(),
            max_connections: 1024,
            max_connections_per_client: 256,
            header_read_timeout_seconds: 10,
            whep_path: "/whep".into(),
            whip_path: "/whip".into(),
        }
    }
}

impl Default for WebsocketConfig {
    fn default() -> Self {
        WebsocketConfig {
            enabled: true,
            bind: ([0, 0, 0, 0], 8188).into(),
            admin_enabled: true,
            admin_bind: ([127, 0, 0, 1], 7188).into(),
            max_queued_messages: 1_000,
            send_timeout_seconds: 10,
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            node_modules: PathBuf::from("web/node_modules"),
            phone: PhoneConfig::default(),
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown or a value has the wrong type; the message names the key.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said, with the key and line.
        message: String,
    },
    /// A value parses but cannot work.
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted key, e.g. `http.base_path`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl Config {
    /// Applies the environment's overrides (`var` looks one up; the process passes
    /// `std::env::var`), then validates again: `CARDEA_PUBLIC_ADDRESS` sets
    /// `media.public_address` (a container learns its address at run time),
    /// `CARDEA_MEDIA_SHARDS` `media.shards` (the container image fixes it, so that the
    /// UDP port range it publishes is the one the gateway binds).
    pub fn with_env(
        mut self,
        var: impl Fn(&str) -> Option<String>,
        path: &Path,
    ) -> Result<Config, ConfigError> {
        if let Some(v) = var("CARDEA_PUBLIC_ADDRESS") {
            self.media.public_address = v.trim().to_owned();
        }
        if let Some(v) = var("CARDEA_MEDIA_SHARDS") {
            self.media.shards = v.trim().parse().map_err(|_| ConfigError::Invalid {
                path: path.to_owned(),
                key: "media.shards",
                message: "CARDEA_MEDIA_SHARDS must be a number of shards (0: one per core)".into(),
            })?;
        }
        self.validate(path)?;
        Ok(self)
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates TOML text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: describe(text, &e),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks what types alone cannot; `path` names the file in errors.
    pub(crate) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message: message.to_owned(),
        };
        for (key, base) in [
            ("http.base_path", &self.http.base_path),
            ("http.admin_base_path", &self.http.admin_base_path),
        ] {
            if !base.starts_with('/') || base.len() < 2 || base.ends_with('/') {
                return Err(invalid(key, "must start with '/' and not end with '/'"));
            }
        }
        for (key, path) in [
            ("http.whep_path", &self.http.whep_path),
            ("http.whip_path", &self.http.whip_path),
        ] {
            if path.is_empty() {
                continue;
            }
            if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') {
                return Err(invalid(
                    key,
                    "must start with '/' and not end with '/' (or be \"\" to turn it off)",
                ));
            }
            let taken = [&self.http.base_path, &self.http.admin_base_path].contains(&path)
                || ["/lab", "/snapshot", "/vendor", "/metrics", "/player"].contains(&path.as_str());
            if taken || (key == "http.whip_path" && *path == self.http.whep_path) {
                return Err(invalid(key, "is a path the gateway already serves"));
            }
        }
        if let Some((key, problem)) = self.media.problem() {
            return Err(invalid(key, problem));
        }
        if let Some((key, problem)) = self.events.problem() {
            return Err(invalid(key, &problem));
        }
        if let Some((key, problem)) = self.web.phone.problem() {
            return Err(invalid(key, problem));
        }
        for a in &self.sip.accept_from {
            if a != "any" && a.parse::<IpAddr>().is_err() {
                return Err(invalid("sip.accept_from", "takes IP addresses, or \"any\""));
            }
        }
        if self.general.admin_secret == WELL_KNOWN_ADMIN_SECRET {
            let exposed = [
                (self.http.admin_enabled, self.http.admin_bind),
                (self.websocket.admin_enabled, self.websocket.admin_bind),
            ]
            .into_iter()
            .any(|(on, bind)| on && !bind.ip().is_loopback());
            if exposed {
                return Err(invalid(
                    "general.admin_secret",
                    "is the well-known default while an admin listener is bound beyond \
                     loopback: set your own secret, or bind the admin listeners on 127.0.0.1",
                ));
            }
        }
        if self.http.base_path == self.http.admin_base_path
            && self.http.bind == self.http.admin_bind
        {
            return Err(invalid(
                "http.admin_base_path",
                "must differ from http.base_path when both share a listener",
            ));
        }
        for (key, n) in [
            ("http.max_connections", self.http.max_connections),
            (
                "http.max_connections_per_client",
                self.http.max_connections_per_client,
            ),
            ("general.max_sessions", self.general.max_sessions),
            (
                "general.max_sessions_per_client",
                self.general.max_sessions_per_client,
            ),
            (
                "general.max_handles_per_session",
                self.general.max_handles_per_session,
            ),
            ("general.max_queued_events", self.general.max_queued_events),
            (
                "websocket.max_queued_messages",
                self.websocket.max_queued_messages,
            ),
        ] {
            if n == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.http.max_body_bytes < 1024 {
            return Err(invalid("http.max_body_bytes", "must be at least 1024"));
        }
        if self.http.long_poll_seconds == 0 || self.http.long_poll_seconds > 300 {
            return Err(invalid("http.long_poll_seconds", "must be 1..=300"));
        }
        Ok(())
    }

    /// Every listener and the media socket on 127.0.0.1 with ports the OS picks, and
    /// 127.0.0.1 as the only host candidate: for tests, benches and embedding.
    pub fn on_loopback_ephemeral_ports(mut self) -> Config {
        let lo = SocketAddr::from(([127, 0, 0, 1], 0));
        self.http.bind = lo;
        self.http.admin_bind = lo;
        self.websocket.bind = lo;
        self.websocket.admin_bind = lo;
        self.media.udp_bind = lo;
        self.media.host_addresses = vec![lo.ip()];
        self.streaming.rtp_bind_ip = lo.ip();
        self
    }

    /// The session inactivity timeout, `None` when disabled.
    pub fn session_timeout(&self) -> Option<Duration> {
        (self.general.session_timeout > 0)
            .then(|| Duration::from_secs(self.general.session_timeout))
    }
}

/// The error with its line and key, but never the offending line itself: it may hold a secret.
fn describe(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.message().to_owned();
    };
    let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line
        .split('=')
        .next()
        .map(str::trim)
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    match key {
        Some(k) if line.contains('=') => format!("line {line_no}, key `{k}`: {}", e.message()),
        _ => format!("line {line_no}: {}", e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_equals_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/cardea.toml");
        let shipped = Config::load(&path).expect("shipped config parses");
        assert_eq!(shipped, Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            Config::parse("[http]\nbindd = \"0.0.0.0:1\"\n", Path::new("x.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bindd"), "{msg}");
    }

    #[test]
    fn errors_never_echo_the_line() {
        let err = Config::parse(
            "[general]\nadmin_secret = \"hunter2\nx = 1\n",
            Path::new("x.toml"),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = Config::parse(
            "[general]\napi_secret = [\"hunter2\"]\n",
            Path::new("x.toml"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("api_secret") && !msg.contains("hunter2"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_section_is_named() {
        let err = Config::parse("[htpp]\n", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("htpp"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let err =
            Config::parse("[http]\nbase_path = \"janus\"\n", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("http.base_path"), "{err}");
        let err = Config::parse(
            "[general]\nsession_timeout = \"soon\"\n",
            Path::new("x.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("session_timeout"), "{err}");
    }

    #[test]
    fn the_public_address_comes_from_the_environment_and_is_checked() {
        let path = Path::new("x.toml");
        let env =
            |v: &'static str| move |k: &str| (k == "CARDEA_PUBLIC_ADDRESS").then(|| v.to_owned());
        let c = Config::default()
            .with_env(env(" 203.0.113.7 "), path)
            .unwrap();
        assert_eq!(c.media.public_address, "203.0.113.7");
        let unset = Config::default().with_env(|_| None, path).unwrap();
        assert_eq!(unset.media.public_address, "");
        for bad in [
            "cam.example.org",
            "0.0.0.0",
            "224.0.0.1",
            "203.0.113.7:10000",
        ] {
            let e = Config::default().with_env(env(bad), path).unwrap_err();
            assert!(e.to_string().contains("media.public_address"), "{bad}: {e}");
        }
        let shards =
            |v: &'static str| move |k: &str| (k == "CARDEA_MEDIA_SHARDS").then(|| v.to_owned());
        let c = Config::default().with_env(shards(" 4\n"), path).unwrap();
        assert_eq!(c.media.shard_count(), 4);
        for bad in ["four", "-1", "65", "99999999999999999999999"] {
            let e = Config::default().with_env(shards(bad), path).unwrap_err();
            assert!(e.to_string().contains("media.shards"), "{bad}: {e}");
        }
    }

    #[test]
    fn ice_servers_are_checked_and_secrets_never_shown() {
        let ok = "[[media.ice_servers]]\nurls = [\"stun:stun.lan:3478\"]\n\
                  [[media.ice_servers]]\nurls = [\"turn:turn.lan:3478\"]\nrest_secret = \"s3cr3t\"\n\
                  [[media.ice_servers]]\nurls = [\"turns:turn.lan:5349\"]\nusername = \"u\"\ncredential = \"p4ss\"\n";
        let c = Config::parse(ok, Path::new("x.toml")).unwrap();
        assert_eq!(c.media.ice_servers.len(), 3);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("p4ss"),
            "{shown}"
        );
        for bad in [
            "urls = []",
            "urls = [\"http://turn.lan\"]",
            "urls = [\"turn:turn.lan\"]",
            "urls = [\"turn:turn.lan\"]\nusername = \"u\"",
            "urls = [\"turn:turn.lan\"]\nusername = \"u\"\ncredential = \"p\"\nrest_secret = \"s\"",
            "urls = [\"stun:a b\"]",
            "urls = [\"stun:\"]",
            "urls = [\"turn:t\"]\nrest_secret = \"s\"\nrest_ttl = 5",
            "urls = [\"turn:t\"]\nrest_secret = \"s\"\nrest_user = \"a:b\"",
        ] {
            let text = format!("[[media.ice_servers]]\n{bad}\n");
            let e = Config::parse(&text, Path::new("x.toml")).unwrap_err();
            assert!(e.to_string().contains("media.ice_servers"), "{bad}: {e}");
        }
    }

    #[test]
    fn media_shards_are_bounded_and_their_port_range_must_fit() {
        let c = Config::parse("[media]\nshards = 3\n", Path::new("x.toml")).unwrap();
        assert_eq!(c.media.shard_count(), 3);
        let auto = Config::parse("[media]\nshards = 0\n", Path::new("x.toml")).unwrap();
        assert!((1..=64).contains(&auto.media.shard_count()));
        for (bad, key) in [
            ("shards = 65", "media.shards"),
            ("shards = -1", "shards"),
            ("shards = 2\nudp_bind = \"0.0.0.0:65535\"", "media.udp_bind"),
            ("shards = 4\npublic_port = 65533", "media.public_port"),
        ] {
            let text = format!("[media]\n{bad}\n");
            let e = Config::parse(&text, Path::new("x.toml")).unwrap_err();
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
        // The last port of the range is 65535: room enough.
        let edge = "[media]\nshards = 2\nudp_bind = \"0.0.0.0:65534\"\n";
        assert!(Config::parse(edge, Path::new("x.toml")).is_ok());
    }

    #[test]
    fn the_nack_history_is_bounded() {
        for ok in [0u64, 1000, 10_000] {
            let text = format!("[media]\nnack_history_ms = {ok}\n");
            let c = Config::parse(&text, Path::new("x.toml")).unwrap();
            assert_eq!(c.media.nack_history_ms, ok);
        }
        for bad in ["10001", "-1", "18446744073709551616", "\"1s\""] {
            let text = format!("[media]\nnack_history_ms = {bad}\n");
            let e = Config::parse(&text, Path::new("x.toml")).unwrap_err();
            assert!(e.to_string().contains("nack_history_ms"), "{bad}: {e}");
        }
    }
}
