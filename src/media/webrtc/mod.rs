//! The WebRTC media layer over str0m: N shards (see [`shard`]), each a thread whose
//! one UDP socket serves its peers.
//!
//! * `demux` classifies datagrams (RFC 7983) and reads the STUN USERNAME, sans-IO.
//! * [`engine::Engine`] owns every peer's `str0m::Rtc`, routes datagrams to them by
//!   ICE ufrag then source address, and turns str0m events into [`MediaEvent`]s.
//! * `driver` is the only code touching the socket and the clock.
//!
//! The control side (the API core, through its plugins) creates a peer with [`WebrtcFactory::accept_offer`]
//! (str0m is sans-IO, so this is plain computation), then moves it to the engine
//! with [`MediaCommand::AddPeer`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::{Candidate, Rtc, RtcConfig};

use crate::config::MediaConfig;
use crate::ids::{HandleId, PeerId, SessionId, SourceId};
use crate::media::handler::MediaHandler;
pub use crate::media::source::SourcePacket;

pub(crate) mod demux;
pub(crate) mod driver;
mod early;
pub mod engine;
pub(crate) mod local_addrs;
pub mod mids;
#[cfg(test)]
mod nack_tests;
mod outbox;
mod peer;
pub(crate) mod queue;
mod refusal;
mod replay;
pub mod shard;
mod timers;
mod tracks;

pub(crate) use refusal::{sdp_guard, sdp_refusal};
pub use shard::Placement;
use tracks::add_track_codecs;
#[cfg(feature = "fuzzing")]
pub(crate) use tracks::offered_mlines;
pub use tracks::{OfferTrack, TrackFlow, TrackPlacement};

/// Why a PeerConnection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// str0m could not parse the SDP.
    #[error("SDP error: {0}")]
    Sdp(String),
    /// str0m refused the offer (e.g. no codec in common).
    #[error("cannot accept offer: {0}")]
    Offer(String),
}

/// A command from the control side to the media engine.
pub enum MediaCommand {
    /// Start serving a new PeerConnection.
    AddPeer(Box<NewPeer>),
    /// A remote ICE candidate (trickled).
    RemoteCandidate {
        /// The PeerConnection.
        peer: PeerId,
        /// The candidate.
        candidate: Candidate,
    },
    /// A packet from a media source, for every peer subscribed to it.
    SourcePacket(std::sync::Arc<SourcePacket>),
    /// Point a peer at other sources (the streaming plugin's `switch`), or at the same
    /// ones again: either way their GOP caches are replayed to it.
    Resubscribe {
        /// The PeerConnection.
        peer: PeerId,
        /// The sources it now views.
        subscriptions: Vec<SourceId>,
    },
    /// Where keyframe requests for a source's tracks go (RTP sources with an RTCP port).
    KeyframeRequests {
        /// The source.
        source: SourceId,
        /// Receives the track index each time a viewer needs a keyframe.
        tx: tokio::sync::mpsc::Sender<u8>,
    },
    /// A source stopped: its GOP cache and keyframe channel are dropped.
    DropSource(SourceId),
    /// Restart ICE on a peer (new credentials): the engine answers [`MediaEvent::RestartOffer`].
    IceRestart {
        /// The PeerConnection.
        peer: PeerId,
    },
    /// The peer's answer to the restart offer.
    RestartAnswer {
        /// The PeerConnection.
        peer: PeerId,
        /// The SDP answer.
        sdp: String,
    },
    /// A new offer from the peer on its PeerConnection (renegotiation, e.g. an ICE
    /// restart after a network change): the engine answers [`MediaEvent::Renegotiated`].
    RemoteOffer {
        /// The PeerConnection.
        peer: PeerId,
        /// The SDP offer.
        sdp: String,
    },
    /// Close a PeerConnection; the engine answers [`MediaEvent::Closed`].
    ClosePeer {
        /// The PeerConnection.
        peer: PeerId,
        /// Why, for logs.
        reason: String,
    },
}

impl MediaCommand {
    /// The peer a command is for; `None` for a source's or a new peer's.
    pub fn peer(&self) -> Option<PeerId> {
        match self {
            MediaCommand::RemoteCandidate { peer, .. }
            | MediaCommand::Resubscribe { peer, .. }
            | MediaCommand::IceRestart { peer }
            | MediaCommand::RestartAnswer { peer, .. }
            | MediaCommand::RemoteOffer { peer, .. }
            | MediaCommand::ClosePeer { peer, .. } => Some(*peer),
            MediaCommand::AddPeer(_)
            | MediaCommand::SourcePacket(_)
            | MediaCommand::KeyframeRequests { .. }
            | MediaCommand::DropSource(_) => None,
        }
    }
}

impl std::fmt::Debug for MediaCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaCommand::AddPeer(p) => write!(f, "AddPeer({})", p.id),
            MediaCommand::RemoteCandidate { peer, candidate } => {
                write!(f, "RemoteCandidate({peer}, {})", candidate.addr())
            }
            MediaCommand::ClosePeer { peer, reason } => write!(f, "ClosePeer({peer}, {reason})"),
            MediaCommand::SourcePacket(p) => write!(f, "SourcePacket({}, {})", p.source, p.track),
            MediaCommand::Resubscribe {
                peer,
                subscriptions,
            } => write!(f, "Resubscribe({peer}, {subscriptions:?})"),
            MediaCommand::KeyframeRequests { source, .. } => {
                write!(f, "KeyframeRequests({source})")
            }
            MediaCommand::DropSource(s) => write!(f, "DropSource({s})"),
            MediaCommand::IceRestart { peer } => write!(f, "IceRestart({peer})"),
            MediaCommand::RestartAnswer { peer, .. } => write!(f, "RestartAnswer({peer})"),
            MediaCommand::RemoteOffer { peer, .. } => write!(f, "RemoteOffer({peer})"),
        }
    }
}

/// Everything the engine needs for a new PeerConnection.
pub struct NewPeer {
    /// Its id.
    pub id: PeerId,
    /// The session it belongs to (for logs).
    pub session: SessionId,
    /// The handle it belongs to.
    pub handle: HandleId,
    /// The str0m instance, offer already accepted.
    pub rtc: Rtc,
    /// The plugin's media half.
    pub handler: Box<dyn MediaHandler>,
    /// Counters shared with the control side (admin `handle_info`).
    pub stats: std::sync::Arc<PeerStats>,
    /// Candidates trickled before the PeerConnection existed.
    pub remote_candidates: Vec<Candidate>,
    /// Media sources whose packets go to this peer's handler.
    pub subscriptions: Vec<SourceId>,
    /// The mids the peer sees, when not str0m's: SDP in and out is rewritten.
    pub mids: mids::MidMap,
    /// The shard its `rtc` was built for.
    pub shard: Placement,
}

/// What the engine tells the control side.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// ICE and DTLS are up: Janus's `webrtcup`.
    Connected {
        /// The PeerConnection.
        peer: PeerId,
        /// Its handle.
        handle: HandleId,
    },
    /// Media started (or stopped) arriving on a mid: Janus's `media` event.
    Receiving {
        /// The PeerConnection.
        peer: PeerId,
        /// Its handle.
        handle: HandleId,
        /// The mid.
        mid: String,
        /// "audio" or "video".
        kind: &'static str,
        /// Whether media is flowing.
        receiving: bool,
    },
    /// The offer that restarts ICE on a peer, for its handle's plugin to send.
    RestartOffer {
        /// The PeerConnection.
        peer: PeerId,
        /// Its handle.
        handle: HandleId,
        /// The SDP offer (new ICE credentials, same media).
        sdp: String,
    },
    /// The answer to a [`MediaCommand::RemoteOffer`], or why the offer was refused
    /// (the PeerConnection then goes on as it was).
    Renegotiated {
        /// The PeerConnection.
        peer: PeerId,
        /// Its handle.
        handle: HandleId,
        /// The SDP answer, or the error.
        answer: Result<String, String>,
    },
    /// The PeerConnection is gone: Janus's `hangup`.
    Closed {
        /// The PeerConnection.
        peer: PeerId,
        /// Its handle.
        handle: HandleId,
        /// Why, e.g. "ICE failed".
        reason: String,
    },
}

/// ICE/DTLS state as shown by admin `handle_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PeerState {
    /// Created, no connectivity yet.
    New = 0,
    /// ICE checking.
    Checking = 1,
    /// ICE connected, DTLS not done.
    IceConnected = 2,
    /// DTLS done, media can flow.
    Connected = 3,
    /// ICE lost the peer.
    Disconnected = 4,
    /// Closed.
    Closed = 5,
}

/// Per-peer counters, written by the media engine, read by the admin API. Lock-free.
#[derive(Debug)]
pub struct PeerStats {
    /// Datagrams received from the peer.
    pub packets_in: AtomicU64,
    /// Bytes received from the peer.
    pub bytes_in: AtomicU64,
    /// Datagrams sent to the peer.
    pub packets_out: AtomicU64,
    /// Bytes sent to the peer.
    pub bytes_out: AtomicU64,
    /// NACK messages received from the peer.
    pub nacks: AtomicU64,
    /// Packets sent to it again (RTX or repeated), answering its NACKs.
    pub retransmitted: AtomicU64,
    /// Packets it NACKed that were no longer held (fan-out viewers).
    pub retransmit_missed: AtomicU64,
    /// Packets it NACKed that were not sent again: never sent to it, too old, asked for
    /// too often or beyond its share (fan-out viewers).
    pub retransmit_refused: AtomicU64,
    state: AtomicU8,
}

impl Default for PeerStats {
    fn default() -> Self {
        PeerStats {
            packets_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            packets_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            nacks: AtomicU64::new(0),
            retransmitted: AtomicU64::new(0),
            retransmit_missed: AtomicU64::new(0),
            retransmit_refused: AtomicU64::new(0),
            state: AtomicU8::new(PeerState::New as u8),
        }
    }
}

impl PeerState {
    /// Every state, in order of their numbers.
    pub const ALL: [PeerState; 6] = [
        PeerState::New,
        PeerState::Checking,
        PeerState::IceConnected,
        PeerState::Connected,
        PeerState::Disconnected,
        PeerState::Closed,
    ];

    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            PeerState::New => "new",
            PeerState::Checking => "checking",
            PeerState::IceConnected => "ice_connected",
            PeerState::Connected => "connected",
            PeerState::Disconnected => "disconnected",
            PeerState::Closed => "closed",
        }
    }
}

impl PeerStats {
    /// Current state.
    pub fn state(&self) -> PeerState {
        match self.state.load(Ordering::Relaxed) {
            0 => PeerState::New,
            1 => PeerState::Checking,
            2 => PeerState::IceConnected,
            3 => PeerState::Connected,
            4 => PeerState::Disconnected,
            _ => PeerState::Closed,
        }
    }

    pub(crate) fn set_state(&self, s: PeerState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    /// (ICE state, DTLS state) as Janus names them.
    pub fn state_names(&self) -> (&'static str, &'static str) {
        match self.state() {
            PeerState::New => ("new", "created"),
            PeerState::Checking => ("checking", "created"),
            PeerState::IceConnected => ("connected", "trying"),
            PeerState::Connected => ("connected", "connected"),
            PeerState::Disconnected => ("disconnected", "connected"),
            PeerState::Closed => ("closed", "closed"),
        }
    }
}

/// Most remote candidates one peer may have (trickled or in its SDP): a browser sends a
/// handful; more is an attack on the ICE agent, whose pair list grows with each.
pub const MAX_REMOTE_CANDIDATES: usize = 64;

/// Engine-wide counters: what the one socket saw and dropped.
#[derive(Debug, Default)]
pub struct MediaCounters {
    /// Datagrams read from the socket.
    pub datagrams_in: AtomicU64,
    /// Their bytes.
    pub bytes_in: AtomicU64,
    /// Datagrams that were none of STUN, DTLS, RTP/RTCP, or malformed STUN.
    pub dropped_garbage: AtomicU64,
    /// Well-formed datagrams for no known peer (unknown ufrag or source address).
    pub dropped_unknown_peer: AtomicU64,
    /// Datagrams a peer refused (bad DTLS record, SRTP failure reported by str0m).
    pub dropped_rejected: AtomicU64,
    /// Peers currently served.
    pub peers: AtomicU64,
    /// Peers closed because handling their media panicked (always a bug to report).
    pub peer_panics: AtomicU64,
    /// Source packets dropped because the engine was a whole queue behind.
    pub dropped_queue_full: AtomicU64,
    /// Control commands refused because the engine was a whole queue behind.
    pub dropped_commands: AtomicU64,
    /// Peers placed on this shard whose str0m instance has not reached it yet.
    pub placing: AtomicU64,
    /// Datagrams sent.
    pub datagrams_out: AtomicU64,
    /// Their bytes.
    pub bytes_out: AtomicU64,
    /// System calls that sent them (one per GSO burst).
    pub send_calls: AtomicU64,
    /// Keyframe requests (RTCP PLI or FIR) from peers.
    pub keyframe_requests: AtomicU64,
    /// Timeouts str0m asked for and was given (its timers: RTCP, NACK, pacing, ICE...).
    pub peer_timeouts: AtomicU64,
    /// NACK messages from peers.
    pub nacks: AtomicU64,
    /// Packets sent again to peers, answering their NACKs.
    pub retransmitted: AtomicU64,
    /// NACKed packets no longer held by their source's history.
    pub retransmit_missed: AtomicU64,
    /// NACKed packets refused (never sent to that viewer, too old, asked for too
    /// often, beyond the viewer's share).
    pub retransmit_refused: AtomicU64,
}

impl MediaCounters {
    /// Every shard's counters added up, with each shard's peers, as JSON for the admin API.
    pub fn to_json(shards: &[std::sync::Arc<MediaCounters>]) -> serde_json::Value {
        let sum = |f: fn(&MediaCounters) -> &AtomicU64| -> u64 {
            shards.iter().map(|c| f(c).load(Ordering::Relaxed)).sum()
        };
        serde_json::json!({
            "datagrams_in": sum(|c| &c.datagrams_in),
            "dropped_garbage": sum(|c| &c.dropped_garbage),
            "dropped_unknown_peer": sum(|c| &c.dropped_unknown_peer),
            "dropped_rejected": sum(|c| &c.dropped_rejected),
            "peers": sum(|c| &c.peers),
            "peer_panics": sum(|c| &c.peer_panics),
            "dropped_queue_full": sum(|c| &c.dropped_queue_full),
            "dropped_commands": sum(|c| &c.dropped_commands),
            "datagrams_out": sum(|c| &c.datagrams_out),
            "bytes_in": sum(|c| &c.bytes_in),
            "bytes_out": sum(|c| &c.bytes_out),
            "send_calls": sum(|c| &c.send_calls),
            "peer_timeouts": sum(|c| &c.peer_timeouts),
            "keyframe_requests": sum(|c| &c.keyframe_requests),
            "nacks": sum(|c| &c.nacks),
            "retransmitted": sum(|c| &c.retransmitted),
            "retransmit_missed": sum(|c| &c.retransmit_missed),
            "retransmit_refused": sum(|c| &c.retransmit_refused),
            "shards": shards.iter().map(|c| serde_json::json!({
                "peers": c.peers.load(Ordering::Relaxed),
            })).collect::<Vec<_>>(),
        })
    }
}

/// A viewer's header extensions: str0m's standard ones less the RIDs (no simulcast),
/// the MID when `with_mid` (not when the peer sees other mids than str0m's, see
/// `mids`), and abs-send-time and transport-wide sequence numbers. Those two feed a
/// sender's bandwidth estimation, which a fan-out of a source's one bitrate does not
/// do; without them each packet is smaller, and one sent again without RTX is the same
/// bytes as the first time (SRTP protects it again under the same index: it must be).
fn viewer_extensions(with_mid: bool) -> str0m::rtp::ExtensionMap {
    use str0m::rtp::Extension;
    let mut exts = str0m::rtp::ExtensionMap::empty();
    exts.set(1, Extension::AudioLevel);
    if with_mid {
        exts.set(4, Extension::RtpMid);
    }
    exts.set(13, Extension::VideoOrientation);
    exts
}

/// The codecs of a call's browser leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceLeg {
    /// Opus (transcoded to and from the SIP leg's G.711).
    Opus,
    /// PCMU end to end (`transcode: false`).
    G711,
}

/// `base` with a call's browser-leg codecs instead of its own: audio only (Opus, or
/// PCMU for `transcode: false`), with telephone-events for DTMF.
pub fn voice_config(base: RtcConfig, leg: VoiceLeg) -> RtcConfig {
    use str0m::format::{Codec, FormatParams};
    use str0m::media::Frequency;
    let mut config = base.clear_codecs();
    let codecs = config.codec_config();
    let (tele_pt, tele_rate) = match leg {
        VoiceLeg::Opus => {
            codecs.enable_opus(true, false);
            (110, Frequency::FORTY_EIGHT_KHZ)
        }
        VoiceLeg::G711 => {
            codecs.enable_pcmu(true, false);
            (126, Frequency::EIGHT_KHZ)
        }
    };
    codecs.add_config(
        tele_pt.into(),
        None,
        Codec::Tele,
        tele_rate,
        None,
        FormatParams::default(),
    );
    config
}

/// Builds str0m instances with the gateway's candidates and its one DTLS certificate,
/// each placed on a media shard (see [`shard`]).
pub struct WebrtcFactory {
    config: RtcConfig,
    /// Each shard's host candidates (its socket's port).
    candidates: Vec<Vec<Candidate>>,
    /// Each shard's counters: its load, for placing new peers.
    counters: Vec<std::sync::Arc<MediaCounters>>,
    /// Peers placed so far: which equally loaded shard is next.
    turn: std::sync::atomic::AtomicUsize,
}

impl WebrtcFactory {
    /// One shard: `port` is the UDP socket's actual port; `addrs` the local host
    /// addresses (see [`candidate_addrs`] for what is offered).
    pub fn new(cfg: &MediaConfig, port: u16, addrs: &[IpAddr]) -> WebrtcFactory {
        WebrtcFactory::sharded(cfg, &[port], addrs)
    }

    /// One shard per socket port in `ports`, each with counters of its own.
    pub fn sharded(cfg: &MediaConfig, ports: &[u16], addrs: &[IpAddr]) -> WebrtcFactory {
        let provider = str0m::crypto::from_feature_flags();
        // Generating an ECDSA key pair cannot fail with aws-lc-rs short of memory exhaustion.
        let cert: DtlsCert = provider
            .dtls_provider
            .generate_certificate()
            .expect("DTLS certificate generation");
        let config = RtcConfig::new()
            .set_crypto_provider(std::sync::Arc::new(provider))
            .set_dtls_cert(cert)
            .set_ice_lite(cfg.ice_lite);
        let candidates = ports
            .iter()
            .enumerate()
            .map(|(shard, port)| {
                candidate_addrs(cfg, shard, *port, addrs)
                    .into_iter()
                    .filter_map(|a| Candidate::host(a, "udp").ok())
                    .collect()
            })
            .collect();
        let counters = ports.iter().map(|_| Default::default()).collect();
        WebrtcFactory {
            config,
            candidates,
            counters,
            turn: Default::default(),
        }
    }

    /// A shard for a new peer: the least-loaded.
    pub fn place(&self) -> Placement {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        Placement::least_loaded(&self.counters, turn)
    }

    /// Each shard's counters, in shard order.
    pub fn counters(&self) -> &[std::sync::Arc<MediaCounters>] {
        &self.counters
    }

    fn add_candidates(&self, rtc: &mut Rtc, shard: &Placement) {
        for c in &self.candidates[shard.shard()] {
            rtc.add_local_candidate(c.clone());
        }
    }

    /// Creates a str0m instance that has accepted `offer`; returns it and the SDP answer.
    /// `voice`: a call's audio-only codec set instead of the default codecs.
    pub fn accept_offer(
        &self,
        now: Instant,
        offer: &str,
        voice: Option<VoiceLeg>,
        shard: &Placement,
    ) -> Result<(Rtc, String), MediaError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| MediaError::Sdp(sdp_refusal(&e)))?;
        let config = match voice {
            Some(leg) => voice_config(self.config.clone(), leg),
            None => self.config.clone(),
        };
        let mut rtc = config.build(now);
        self.add_candidates(&mut rtc, shard);
        let answer = sdp_guard(|| rtc.sdp_api().accept_offer(offer)).map_err(MediaError::Offer)?;
        Ok((rtc, answer.to_sdp_string()))
    }

    /// Creates a str0m instance in RTP mode that offers `tracks` send-only, each with
    /// exactly the source's codec and payload type; returns it, the offer, the pending
    /// offer to complete with the answer, and the mid of each track.
    pub fn create_offer(
        &self,
        now: Instant,
        tracks: &[OfferTrack],
        shard: &Placement,
    ) -> Result<
        (
            Rtc,
            String,
            str0m::change::SdpPendingOffer,
            Vec<str0m::media::Mid>,
            mids::MidMap,
        ),
        MediaError,
    > {
        // The MID header extension would carry str0m's mids, not the peer's (see
        // `mids`): the peer binds streams by the offer's SSRCs instead.
        let remapped = tracks.iter().any(|t| t.mid.is_some());
        let mut config = self
            .config
            .clone()
            .set_rtp_mode(true)
            .clear_codecs()
            .set_extension_map(viewer_extensions(!remapped));
        add_track_codecs(&mut config, tracks)?;
        let mut rtc = config.build(now);
        self.add_candidates(&mut rtc, shard);
        let mut change = rtc.sdp_api();
        let mids: Vec<_> = tracks
            .iter()
            .map(|t| {
                change.add_media(
                    t.kind,
                    str0m::media::Direction::SendOnly,
                    Some(t.msid.clone()),
                    None,
                    None,
                )
            })
            .collect();
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| MediaError::Offer("nothing to offer".into()))?;
        let map = mids::MidMap::new(
            mids.iter()
                .zip(tracks)
                .filter_map(|(ours, t)| Some((*ours, t.mid.clone()?))),
        );
        let offer = map.to_wire(&offer.to_sdp_string());
        Ok((rtc, offer, pending, mids, map))
    }

    /// A server-side offer for a call's browser leg (one audio m-line, sendrecv);
    /// returns the instance, the offer, the pending offer and the audio mid.
    pub fn create_voice_offer(
        &self,
        now: Instant,
        leg: VoiceLeg,
        shard: &Placement,
    ) -> Result<
        (
            Rtc,
            String,
            str0m::change::SdpPendingOffer,
            str0m::media::Mid,
        ),
        MediaError,
    > {
        let mut rtc = voice_config(self.config.clone(), leg).build(now);
        self.add_candidates(&mut rtc, shard);
        let mut change = rtc.sdp_api();
        let mid = change.add_media(
            str0m::media::MediaKind::Audio,
            str0m::media::Direction::SendRecv,
            Some("cardea-call".into()),
            None,
            None,
        );
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| MediaError::Offer("nothing to offer".into()))?;
        Ok((rtc, offer.to_sdp_string(), pending, mid))
    }

    /// The candidates offered by each shard, for logs and `info`.
    pub fn candidates(&self) -> &[Vec<Candidate>] {
        &self.candidates
    }
}

/// The host candidates offered to every peer: with `media.public_address`, that address
/// alone (at `public_port`, or the bound port), the address a NAT or Docker's port
/// mapping makes the socket reachable at; otherwise each local address (see
/// [`host_addresses`]) at the bound port. Loopback ones (`include_loopback`) are kept
/// either way, for peers on the same machine.
/// Shard `shard` advertises `public_port + shard`.
pub fn candidate_addrs(
    cfg: &MediaConfig,
    shard: usize,
    bound_port: u16,
    local: &[IpAddr],
) -> Vec<SocketAddr> {
    let loopback = local
        .iter()
        .filter(|a| a.is_loopback())
        .map(|a| SocketAddr::new(*a, bound_port));
    match cfg.public_address.parse::<IpAddr>() {
        Ok(public) => {
            let port = if cfg.public_port == 0 {
                bound_port
            } else {
                // Validated: the range fits.
                cfg.public_port.saturating_add(shard as u16)
            };
            std::iter::once(SocketAddr::new(public, port))
                .chain(loopback)
                .collect()
        }
        Err(_) => local
            .iter()
            .map(|a| SocketAddr::new(*a, bound_port))
            .collect(),
    }
}

/// Host addresses to offer: the configured ones, or every interface address; plus loopback if asked.
pub fn host_addresses(cfg: &MediaConfig) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = if cfg.host_addresses.is_empty() {
        if !cfg.udp_bind.ip().is_unspecified() {
            vec![cfg.udp_bind.ip()]
        } else {
            if_addrs::get_if_addrs()
                .map(|v| {
                    v.into_iter()
                        .map(|i| i.ip())
                        .filter(|ip| !ip.is_loopback() && ip.is_ipv4())
                        .collect()
                })
                .unwrap_or_default()
        }
    } else {
        cfg.host_addresses.clone()
    };
    if cfg.include_loopback && !addrs.iter().any(|a| a.is_loopback()) {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        if cfg.udp_bind.ip().is_unspecified() || cfg.udp_bind.ip() == lo {
            addrs.push(lo);
        }
    }
    addrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_address_is_the_only_host_candidate_but_loopback() {
        let lan: IpAddr = "192.168.1.5".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let mut cfg = MediaConfig::default();
        let addrs = |cfg: &MediaConfig| {
            candidate_addrs(cfg, 0, 10000, &[lan, lo])
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(addrs(&cfg), ["192.168.1.5:10000", "127.0.0.1:10000"]);
        cfg.public_address = "203.0.113.7".into();
        assert_eq!(addrs(&cfg), ["203.0.113.7:10000", "127.0.0.1:10000"]);
        cfg.public_port = 20000; // Docker: -p 20000:10000/udp
        assert_eq!(addrs(&cfg), ["203.0.113.7:20000", "127.0.0.1:10000"]);
        // The engine hands str0m the public address as where a LAN peer's datagram
        // arrived, so its checks pair with the one candidate it was offered.
        let local = engine::LocalAddrs::from_candidates(
            10000,
            &candidate_addrs(&cfg, 0, 10000, &[lan, lo]),
        );
        let factory = WebrtcFactory::new(&cfg, 10000, &[lan, lo]);
        let offered: Vec<String> = factory.candidates()[0]
            .iter()
            .map(|c| c.addr().to_string())
            .collect();
        assert_eq!(offered, ["203.0.113.7:20000", "127.0.0.1:10000"]);
        let from = |a: &str| local.for_source(a.parse().unwrap()).to_string();
        assert_eq!(from("192.168.1.9:5000"), "203.0.113.7:20000");
        assert_eq!(from("127.0.0.1:5000"), "127.0.0.1:10000");
    }
}
