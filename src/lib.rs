//! Cardea: a gateway that speaks the Janus Gateway API and bridges SIP, RTSP cameras
//! and plain RTP into WebRTC sessions in ordinary browsers.
//!
//! # Architecture map
//!
//! ```text
//!  browser (janus.js) ──HTTP/long poll, WebSocket──▶ transport/ ──▶ api::Gateway (sans-IO)
//!                                                         ▲            │ plugin calls
//!                                                         │ events     ▼
//!                                                         │       plugin/ (echotest, streaming, sip)  ──commands──▶ ingest/sip (rsipstack)
//!                                                         │            │ accept_offer → str0m Rtc
//!  browser ◀──── one UDP socket ────▶ media/webrtc/driver ◀─commands───┘
//!                                     media/webrtc/engine (sans-IO, every peer's Rtc)
//!                                          │ frames ▲ relay
//!                                          ▼        │
//!                                     plugin MediaHandler (per handle, lock-free)
//! ```
//!
//! * [`config`]: typed TOML, `deny_unknown_fields`, defaults equal `conf/cardea.toml`.
//! * [`api`]: the Janus API core: sessions, handles, transactions, auth, admin API,
//!   error codes. No sockets, no clock: `now` comes in, outputs are polled.
//! * [`plugin`]: the plugin boundary (Janus's `plugin.h` as traits) and the plugins.
//! * [`media`]: the WebRTC layer over str0m, one UDP socket for every peer,
//!   demultiplexed by ICE ufrag then source address.
//! * [`ingest`]: where media and signalling enter from outside WebRTC: plain RTP,
//!   RTSP cameras (retina), the demo source, and the SIP user agent (rsipstack behind
//!   `ingest::sip`'s own command and event types).
//! * [`transport`]: HTTP (REST + long poll), WebSocket, the admin listeners and the
//!   demo page; the only async code on the control side.
//! * [`clock`]: the one place the control side reads time.
//! * [`secret`]: constant-time comparison of every secret a request carries.
//! * [`contain`]: panic containment: a panic costs one request or one peer, never the gateway.

pub mod api;
pub mod clock;
pub mod config;
pub mod contain;
pub mod ingest;
pub mod media;
pub mod plugin;
pub mod secret;
pub mod transport;

pub use config::Config;
pub use transport::{start, Running, StartOptions};

/// What `--check-config` and a start check beyond the file's own rules: each plugin's
/// configured objects as the plugin would take them (mountpoints, today).
pub fn check_plugins(config: &Config, path: &std::path::Path) -> Result<(), config::ConfigError> {
    plugin::streaming::check_configured(&config.streaming).map_err(|message| {
        config::ConfigError::Invalid {
            path: path.to_owned(),
            key: "streaming.mountpoints",
            message,
        }
    })
}
