//! The plugin boundary, mirroring Janus's `plugin.h` as two halves.
//!
//! * [`Plugin`] is what the core calls on the control path (`create_session`,
//!   `handle_message`, `setup_media`, `hangup_media`, `destroy_session`,
//!   `query_session`), always under the core's lock and never on the media path.
//! * [`PluginCtx`] is what a plugin may call back on the control path
//!   (`push_event`, `accept_offer`, `close_pc`, `end_session`).
//! * [`MediaHandler`] (the media layer's port, `media::handler`) is the media half of
//!   one handle: the media driver calls it for every incoming frame (`incoming_rtp`)
//!   and keyframe request, and it answers through [`MediaOut`] (`relay_rtp`,
//!   `send_pli`, `send_remb`). It runs on the media task with no lock; the two halves
//!   share state through atomics.

use std::time::Instant;

use serde_json::Value;
use str0m::media::Mid;

use crate::api::{ApiError, HandleId, Jsep};
pub use crate::media::handler::{MediaHandler, MediaOut};

pub mod echotest;
pub mod sip;
pub mod streaming;

/// What a plugin asks of the ingest side through [`PluginCtx`]: the core passes it on
/// (`Output::Ingest`, in order with its other outputs) and the runtime carries it out.
#[derive(Debug)]
pub enum IngestRequest {
    /// Start reading a plain-RTP source from these bound ports.
    StartRtp {
        /// The source's id.
        id: crate::ids::SourceId,
        /// The ports, bound.
        ports: Vec<crate::ingest::rtp::RtpPort>,
        /// Counters the plugin reads.
        counters: std::sync::Arc<crate::ingest::rtp::SourceCounters>,
    },
    /// Start the built-in demo source; it encodes while `viewers` is non-zero.
    StartDemo {
        /// The source's id.
        id: crate::ids::SourceId,
        /// How many viewers watch it.
        viewers: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        /// What it sent, for `info` and metrics.
        counters: std::sync::Arc<crate::ingest::rtp::SourceCounters>,
    },
    /// Start pulling an RTSP camera.
    StartRtsp {
        /// The source's id.
        id: crate::ids::SourceId,
        /// What to pull.
        spec: Box<crate::ingest::rtsp::RtspSpec>,
        /// Connection state the plugin reads.
        status: std::sync::Arc<crate::ingest::rtsp::RtspStatus>,
    },
    /// A WebRTC publisher (WHIP) feeds source `id`: forward its `packets` to the media
    /// engine, and route the viewers' keyframe requests for `id` to `keyframes`.
    StartWebrtcSource {
        /// The source's id.
        id: crate::ids::SourceId,
        /// What the publisher's PeerConnection receives.
        packets: tokio::sync::mpsc::Receiver<crate::media::source::SourcePacket>,
        /// Where keyframe requests for the source go (the publisher's handler).
        keyframes: tokio::sync::mpsc::Sender<u8>,
    },
    /// A command for the SIP user agent (boxed: the largest by far, and not per packet).
    Sip(Box<crate::ingest::sip::SipCommand>),
}

/// What a plugin answers to a message, as Janus's `janus_plugin_result`.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginResult {
    /// Synchronous answer: goes back as `success` with `plugindata`.
    Ok(Value),
    /// Asynchronous: `ack` now (with an optional hint), an event later via [`PluginCtx::push_event`].
    OkWait(Option<String>),
    /// A severe failure: the core answers error 462 with this text.
    Error(String),
}

/// Name, version and description of a plugin, listed by `info`.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// Package name, e.g. `janus.plugin.echotest`.
    pub package: &'static str,
    /// Human name.
    pub name: &'static str,
    /// Short description.
    pub description: &'static str,
    /// Numeric version.
    pub version: u32,
    /// Version string.
    pub version_string: &'static str,
}

/// A `message` request handed to a plugin.
#[derive(Debug, Clone)]
pub struct PluginMessage {
    /// The handle it is for.
    pub handle: HandleId,
    /// Its transaction, to put on the asynchronous answer.
    pub transaction: String,
    /// The `body` object.
    pub body: serde_json::Map<String, Value>,
    /// The validated `jsep`, if any.
    pub jsep: Option<Jsep>,
}

/// What the core calls. One instance serves every handle attached to the plugin.
pub trait Plugin: Send {
    /// Identity, for `info` and `attach`.
    fn info(&self) -> PluginInfo;
    /// Called once at start, before any request; an error stops the start (e.g. a
    /// mountpoint of the configuration that cannot be created).
    fn init(&mut self, _ctx: &mut PluginCtx<'_>) -> Result<(), String> {
        Ok(())
    }
    /// A handle attached.
    fn create_session(&mut self, ctx: &mut PluginCtx<'_>, handle: HandleId)
        -> Result<(), ApiError>;
    /// A `message` arrived for a handle.
    fn handle_message(&mut self, ctx: &mut PluginCtx<'_>, msg: PluginMessage) -> PluginResult;
    /// An admin `message_plugin` request; `None` when the plugin takes none.
    fn handle_admin_message(&mut self, _ctx: &mut PluginCtx<'_>, _body: &Value) -> Option<Value> {
        None
    }
    /// For readers of a plugin's media over HTTP (snapshots): the source and video
    /// track that `id` names, if `credentials` (a `pin`, or the `secret`) let the caller
    /// watch it.
    fn viewable_video(
        &self,
        _id: crate::ids::MountpointId,
        _credentials: &serde_json::Map<String, Value>,
    ) -> Result<ViewableVideo, ViewRefusal> {
        Err(ViewRefusal::NotFound("nothing to view here".into()))
    }
    /// For viewers over HTTP signalling (WHEP): whether the one credential a request
    /// carries (`bearer`) lets it watch `id`. `privileged`: that credential is the API's
    /// (api_secret or a stored token). A private or pinned mountpoint refuses without.
    fn watch_access(
        &self,
        _id: crate::ids::MountpointId,
        _bearer: Option<&str>,
        _privileged: bool,
    ) -> Result<(), ViewRefusal> {
        Err(ViewRefusal::NotFound("nothing to watch here".into()))
    }
    /// For publishers over HTTP signalling (WHIP): whether `bearer` lets it publish
    /// into `id` (checked before its offer is even read).
    fn publish_access(
        &self,
        _id: crate::ids::MountpointId,
        _bearer: Option<&str>,
    ) -> Result<(), ViewRefusal> {
        Err(ViewRefusal::NotFound("nothing to publish to here".into()))
    }
    /// A camera added by URL alone was described: its tracks, and what is not offered.
    fn source_tracks(
        &mut self,
        _ctx: &mut PluginCtx<'_>,
        _source: crate::api::SourceId,
        _tracks: &[crate::ingest::rtsp::DiscoveredTrack],
        _unoffered: &[crate::ingest::rtsp::Unoffered],
    ) {
    }
    /// A source lost (`false`) or regained (`true`) its input, e.g. an RTSP camera.
    fn source_state(
        &mut self,
        _ctx: &mut PluginCtx<'_>,
        _source: crate::api::SourceId,
        _connected: bool,
    ) {
    }
    /// The SIP user agent reports on something a handle of this plugin asked for.
    fn sip_event(&mut self, _ctx: &mut PluginCtx<'_>, _ev: &crate::ingest::sip::SipEvent) {}
    /// An ICE restart asked with [`PluginCtx::restart_ice`] produced this offer for the peer.
    fn restart_offer(&mut self, _ctx: &mut PluginCtx<'_>, _handle: HandleId, _offer: Jsep) {}
    /// The peer's new offer handed over with [`PluginCtx::renegotiate`] was answered
    /// (the answer for the peer) or refused (why).
    fn renegotiated(
        &mut self,
        _ctx: &mut PluginCtx<'_>,
        _handle: HandleId,
        _answer: Result<Jsep, String>,
    ) {
    }
    /// The handle's PeerConnection is up (ICE and DTLS done).
    fn setup_media(&mut self, _ctx: &mut PluginCtx<'_>, _handle: HandleId) {}
    /// The handle's PeerConnection is gone (hangup request, ICE failure, DTLS alert).
    fn hangup_media(&mut self, _ctx: &mut PluginCtx<'_>, _handle: HandleId) {}
    /// The handle is detached or its session destroyed.
    fn destroy_session(&mut self, ctx: &mut PluginCtx<'_>, handle: HandleId);
    /// Plugin-specific state for the admin `handle_info`.
    fn query_session(&self, handle: HandleId) -> Value;
    /// Adds the plugin's families to a metrics scrape (names `cardea_<plugin>_...`).
    fn metrics(&self, _now: Instant, _out: &mut crate::api::metrics::Metrics) {}
}

/// What a plugin may call back on the control path. Built by the core for each call.
pub struct PluginCtx<'a> {
    pub(crate) core: &'a mut crate::api::Core,
    pub(crate) plugin: &'static str,
    /// The time of the request or event being handled.
    pub now: Instant,
}

impl PluginCtx<'_> {
    /// Sends an `event` to the handle's session, with the transaction it answers (if any) and optional JSEP.
    pub fn push_event(
        &mut self,
        handle: HandleId,
        transaction: Option<&str>,
        data: Value,
        jsep: Option<Value>,
    ) {
        self.core
            .push_plugin_event(self.plugin, handle, transaction, data, jsep);
    }

    /// Creates the handle's PeerConnection from the peer's offer and returns the SDP answer.
    /// Candidates trickled before this are applied to it.
    pub fn accept_offer(
        &mut self,
        handle: HandleId,
        offer: &Jsep,
        media: Box<dyn MediaHandler>,
    ) -> Result<Jsep, ApiError> {
        self.core
            .accept_offer(self.now, handle, offer, media, None, Vec::new())
    }

    /// Like [`Self::accept_offer`] for a peer that offers to receive `tracks` (a WHEP
    /// player): `media` builds the handler from where each track went (its mid and
    /// payload type, `None` when the offer had no room for it), which is returned too.
    pub fn accept_offer_for_tracks(
        &mut self,
        handle: HandleId,
        offer: &Jsep,
        tracks: &[crate::media::webrtc::OfferTrack],
        flow: crate::media::webrtc::TrackFlow,
        media: impl FnOnce(&[Option<(Mid, u8)>]) -> Box<dyn MediaHandler>,
        subscriptions: Vec<crate::api::SourceId>,
    ) -> Result<(Jsep, crate::media::webrtc::TrackPlacement), ApiError> {
        self.core.accept_offer_for_tracks(
            self.now,
            handle,
            offer,
            tracks,
            flow,
            media,
            subscriptions,
        )
    }

    /// Like [`Self::accept_offer`] for a call's browser leg: audio only, with the
    /// codecs of `leg`, fed by `subscriptions` (the call's audio source).
    pub fn accept_voice_offer(
        &mut self,
        handle: HandleId,
        offer: &Jsep,
        media: Box<dyn MediaHandler>,
        leg: crate::media::webrtc::VoiceLeg,
        subscriptions: Vec<crate::api::SourceId>,
    ) -> Result<Jsep, ApiError> {
        self.core
            .accept_offer(self.now, handle, offer, media, Some(leg), subscriptions)
    }

    /// A server-side offer for a call's browser leg (one sendrecv audio m-line);
    /// returns it and the audio mid. Complete it with [`Self::accept_answer`].
    pub fn create_voice_offer(
        &mut self,
        handle: HandleId,
        leg: crate::media::webrtc::VoiceLeg,
    ) -> Result<(Jsep, Mid), ApiError> {
        self.core.create_voice_offer(self.now, handle, leg)
    }

    /// A new source id for media the plugin feeds into the engine itself.
    pub fn allocate_source(&mut self) -> crate::api::SourceId {
        self.core.allocate_source()
    }

    /// Creates the handle's PeerConnection with a server-side offer of `tracks`
    /// (send-only, each with the source's codec and payload type); returns the offer
    /// and the mid given to each track. The peer starts when [`Self::accept_answer`] gets the answer.
    pub fn create_offer(
        &mut self,
        handle: HandleId,
        tracks: &[crate::media::webrtc::OfferTrack],
    ) -> Result<(Jsep, Vec<Mid>), ApiError> {
        self.core.create_offer(self.now, handle, tracks)
    }

    /// Completes a server-side offer with the peer's answer and starts the
    /// PeerConnection, fed by `subscriptions`.
    pub fn accept_answer(
        &mut self,
        handle: HandleId,
        answer: &Jsep,
        media: Box<dyn MediaHandler>,
        subscriptions: Vec<crate::api::SourceId>,
    ) -> Result<(), ApiError> {
        self.core
            .accept_answer(handle, answer, media, subscriptions)
    }

    /// Starts reading a plain-RTP source from already bound ports; returns its id.
    pub fn start_rtp_source(
        &mut self,
        ports: Vec<crate::ingest::rtp::RtpPort>,
        counters: std::sync::Arc<crate::ingest::rtp::SourceCounters>,
    ) -> crate::api::SourceId {
        let id = self.core.new_source_id();
        self.core.ingest(IngestRequest::StartRtp {
            id,
            ports,
            counters,
        });
        id
    }

    /// Connects a WebRTC publisher's packets to source `id` (see
    /// [`IngestRequest::StartWebrtcSource`]).
    pub fn start_webrtc_source(
        &mut self,
        id: crate::api::SourceId,
        packets: tokio::sync::mpsc::Receiver<crate::media::source::SourcePacket>,
        keyframes: tokio::sync::mpsc::Sender<u8>,
    ) {
        self.core.ingest(IngestRequest::StartWebrtcSource {
            id,
            packets,
            keyframes,
        });
    }

    /// Starts the built-in demo source (test pattern and tone); it encodes only while
    /// `viewers` is non-zero.
    pub fn start_demo_source(
        &mut self,
        viewers: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        counters: std::sync::Arc<crate::ingest::rtp::SourceCounters>,
    ) -> crate::api::SourceId {
        let id = self.core.new_source_id();
        self.core.ingest(IngestRequest::StartDemo {
            id,
            viewers,
            counters,
        });
        id
    }

    /// Starts pulling an RTSP camera (reconnecting with backoff); returns its id.
    pub fn start_rtsp_source(
        &mut self,
        spec: crate::ingest::rtsp::RtspSpec,
        status: std::sync::Arc<crate::ingest::rtsp::RtspStatus>,
    ) -> crate::api::SourceId {
        let id = self.core.new_source_id();
        self.core.ingest(IngestRequest::StartRtsp {
            id,
            spec: Box::new(spec),
            status,
        });
        id
    }

    /// Stops a source started with [`Self::start_rtp_source`] or [`Self::start_demo_source`].
    pub fn stop_source(&mut self, source: crate::api::SourceId) {
        self.core.stop_source(source)
    }

    /// Points the handle's PeerConnection at other sources (or the same again) and
    /// replays their GOP caches to it; false when the handle has no PeerConnection.
    pub fn resubscribe(
        &mut self,
        handle: HandleId,
        subscriptions: Vec<crate::api::SourceId>,
    ) -> bool {
        self.core.resubscribe(handle, subscriptions)
    }

    /// Restarts ICE on the handle's PeerConnection (Janus's `restart`); the offer
    /// arrives in [`Plugin::restart_offer`]. False when the handle has none.
    pub fn restart_ice(&mut self, handle: HandleId) -> bool {
        self.core.ice_restart(handle)
    }

    /// Hands the peer's answer to an ICE restart offer to its PeerConnection.
    pub fn accept_restart_answer(
        &mut self,
        handle: HandleId,
        answer: &Jsep,
    ) -> Result<(), ApiError> {
        self.core.restart_answer(handle, answer)
    }

    /// Hands the peer's new offer to its PeerConnection (renegotiation, e.g. an ICE
    /// restart); the answer arrives in [`Plugin::renegotiated`].
    pub fn renegotiate(&mut self, handle: HandleId, offer: &Jsep) -> Result<(), ApiError> {
        self.core.remote_offer(handle, offer)
    }

    /// Hands a command to the SIP user agent; its outcome comes back through
    /// [`Plugin::sip_event`].
    pub fn sip(&mut self, cmd: crate::ingest::sip::SipCommand) {
        self.core.ingest(IngestRequest::Sip(Box::new(cmd)));
    }

    /// Closes the handle's PeerConnection; `hangup_media` follows.
    pub fn close_pc(&mut self, handle: HandleId) {
        self.core.defer_close_pc(handle, "Close PC");
    }

    /// Detaches the handle, as if the client had sent `detach`.
    pub fn end_session(&mut self, handle: HandleId) {
        self.core.defer_detach(handle);
    }
}

/// A source's video track, for readers outside WebRTC (snapshots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewableVideo {
    /// The source.
    pub source: crate::api::SourceId,
    /// Its video track.
    pub track: u8,
    /// The track's codec.
    pub codec: cardea_codecs::keyframe::VideoCodec,
}

/// Why a [`ViewableVideo`] is not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewRefusal {
    /// No such thing, or nothing to show (HTTP 404).
    NotFound(String),
    /// The credentials do not let the caller watch it (HTTP 403).
    Forbidden(String),
    /// Not known yet (a camera not described yet): ask again (HTTP 503).
    NotYet(String),
}
