//! Cardea: a gateway that speaks the Janus Gateway API and bridges SIP, RTSP cameras
//! and plain RTP into WebRTC sessions in ordinary browsers.
//!
//! # Architecture map
//!
//! ```text
//!  browser (janus.js) ──HTTP/long poll, WebSocket──▶ transport/ ─hub─▶ api::Gateway (sans-IO)
//!                                                      │   ▲            │ plugin calls
//!                          ingest requests (Output) ◀──┘   │ events     ▼
//!                          ingest events ─────────────────▶│       plugin/ (echotest, streaming, sip)
//!                                                          │            │ accept_offer → str0m Rtc
//!  browser ◀─ a UDP socket per shard ─▶ media/webrtc/driver ×N ◀─commands─┘ (to the peer's shard)
//!                                     media/webrtc/engine (sans-IO, the shard's peers)
//!                                       ▲ source packets │ frames ▲ relay
//!  ingest/ (RTP, RTSP, demo, SIP calls) ┘                ▼        │
//!                                     media::handler::MediaHandler (per handle, lock-free;
//!                                     the plugins implement it)
//! ```
//!
//! The public surface is what the binary, the tests, the benches and the fuzz targets
//! use; the rest is `pub(crate)` (`unreachable_pub` is denied in CI).
//!
//! Dependencies point one way (`tests/layering.rs` checks it): `media` names none of
//! `plugin`, `api`, `ingest`, `transport`; `ingest` names only `media` and the shared
//! modules; `api` names `plugin` and `media`, never `ingest` or `transport`; `plugin`
//! never names `transport`. `api` and `plugin` do no I/O of their own (no files, sockets,
//! tasks): they return outputs, or use a port the runtime supplies (the streaming
//! plugin's `StreamingIo`). [`runtime`] is the composition root: it builds the plugins,
//! binds sockets, spawns the drivers and sources, and carries out the core's outputs;
//! the transports reach the gateway through its hub.
//!
//! * [`ids`]: every id newtype, shared by every layer.
//! * `fields`: reading a request's JSON fields, for the API core and every plugin.
//! * [`config`]: typed TOML, `deny_unknown_fields`, defaults equal `conf/cardea.toml`.
//! * [`api`]: the Janus API core: sessions, handles, transactions, auth, admin API,
//!   error codes. No sockets, no clock: `now` comes in, outputs are polled.
//! * [`plugin`]: the plugin boundary (Janus's `plugin.h` as traits) and the plugins;
//!   what a plugin asks of the ingest side is a [`plugin::IngestRequest`].
//! * [`media`]: what carries packets: the WebRTC layer over str0m (N shards, each a
//!   thread with its peers on one UDP socket, demultiplexed by ICE ufrag then source
//!   address), the GOP cache, the
//!   keyframe store for snapshots, and the `media::handler` port plugins implement.
//! * [`ingest`]: where media and signalling enter from outside WebRTC: plain RTP,
//!   RTSP cameras (retina), the demo source, and the SIP user agent (rsipstack behind
//!   `ingest::sip`'s own command and event types; each call's decisions a sans-IO
//!   state machine driven by its task); it reports to the plugins with
//!   [`ingest::IngestEvent`] on its own channel.
//! * [`runtime`]: the composition root ([`start`], the hub, ingest requests and events,
//!   the host's sockets and configuration file for the streaming plugin).
//! * `transport`: HTTP (REST + long poll), WebSocket, the admin listeners, the pages
//!   and snapshots.
//! * [`clock`]: the one place the control side reads time.
//! * `secret`: constant-time comparison of every secret a request carries.
//! * `contain`: panic containment: a panic costs one request or one peer, never the gateway.
//! * `fuzzing` (feature `fuzzing`, on for `fuzz/`): the parsers the fuzz targets
//!   drive that are otherwise internal.
//! * `cardea_codecs` (the `codecs/` crate): the RTP header parser, G.711/G.722,
//!   H.264/H.265 packetizers, keyframe detection, AAC and Opus transcoding, JPEG snapshots.

pub mod api;
pub mod clock;
pub mod config;
pub(crate) mod contain;
pub(crate) mod fields;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod ids;
pub mod ingest;
pub mod media;
pub mod plugin;
pub mod runtime;
pub(crate) mod secret;
pub(crate) mod transport;

pub use config::Config;
pub use runtime::{start, Running, StartOptions};

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
