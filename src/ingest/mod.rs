//! Ingest: where media and signalling enter the gateway from outside WebRTC: plain RTP
//! over UDP (`rtp`), RTSP cameras (`rtsp`), the built-in demo source (`demo`) and the
//! SIP user agent (`sip`).

use crate::ids::SourceId;

pub(crate) mod demo;
pub(crate) mod packetizer;
pub mod rtp;
pub mod rtsp;
pub mod sip;

/// What the ingest side tells the plugins, on its own channel (not the media engine's):
/// the runtime hands each to every plugin through the API core.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestEvent {
    /// The SIP user agent's news.
    Sip(sip::SipEvent),
    /// A camera added by URL alone was described: the tracks it will send, and the
    /// streams it has that are not offered.
    SourceTracks {
        /// The source.
        source: SourceId,
        /// Its tracks, in order (track n of its packets is `tracks[n]`).
        tracks: Vec<rtsp::DiscoveredTrack>,
        /// The camera's other streams.
        unoffered: Vec<rtsp::Unoffered>,
    },
    /// A source lost or regained its input (an RTSP camera went away or came back).
    SourceState {
        /// The source.
        source: SourceId,
        /// Whether it is delivering media again.
        connected: bool,
    },
}
