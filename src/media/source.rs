//! What every source hands the media layer: one packet, its payload shared by every
//! viewer it reaches.

use std::sync::Arc;
use std::time::Instant;

use cardea_codecs::rtp::RtpHeader;

use crate::ids::SourceId;

/// One packet from a media source (plain RTP, an RTSP camera, a SIP call, the demo), shared by every viewer: the
/// payload is reference-counted, never copied per viewer.
#[derive(Debug)]
pub struct SourcePacket {
    /// The source.
    pub source: SourceId,
    /// Which of the source's tracks.
    pub track: u8,
    /// Its RTP header as received.
    pub header: RtpHeader,
    /// The RTP payload.
    pub payload: Arc<[u8]>,
    /// For video whose keyframes we can recognise: whether this packet starts one.
    /// `None` for audio and for codecs we cannot read.
    pub keyframe: Option<bool>,
    /// When it arrived.
    pub arrival: Instant,
}
