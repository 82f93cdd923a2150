//! Encoded frames to source packets, for sources that deliver frames rather than RTP
//! (RTSP via retina, the demo encoder): sequence numbers, RTP timestamps, H.264
//! packetization with keyframe starts marked, marker bits.

use std::sync::Arc;
use std::time::Instant;

use cardea_codecs::h264::{annex_b_nal_units, ParameterSetInserter};
use cardea_codecs::keyframe::{KeyframeStarts, VideoCodec};

use crate::ids::SourceId;
use crate::media::source::SourcePacket;
use cardea_codecs::rtp::RtpHeader;

/// Largest RTP payload produced; leaves room for SRTP and header extensions.
pub(crate) const MAX_PAYLOAD: usize = 1200;

/// One track of a frame-based source.
pub(crate) struct TrackPacketizer {
    source: SourceId,
    track: u8,
    pt: u8,
    ssrc: u32,
    seq: u16,
    video: VideoCodec,
    keyframes: KeyframeStarts,
    /// H.264 SPS/PPS put before keyframes that lack them (sources that do not do it).
    sets: Option<ParameterSetInserter>,
    scratch: Vec<u8>,
}

impl TrackPacketizer {
    /// A track sending payload type `pt` with this SSRC, starting at a random sequence number.
    pub(crate) fn new(source: SourceId, track: u8, pt: u8, ssrc: u32) -> Self {
        TrackPacketizer {
            source,
            track,
            pt,
            ssrc,
            seq: rand::random(),
            video: VideoCodec::H264,
            keyframes: KeyframeStarts::new(VideoCodec::H264),
            sets: None,
            scratch: Vec::with_capacity(MAX_PAYLOAD),
        }
    }

    /// Video in `codec` (H.264, the default, or H.265) for [`Self::access_unit`].
    pub(crate) fn with_video(mut self, codec: VideoCodec) -> Self {
        self.video = codec;
        self.keyframes = KeyframeStarts::new(codec);
        self
    }

    /// H.264 access units get the SPS and PPS (from `sets`, or learned in-band) before
    /// every keyframe that lacks them; None when the source already does that.
    pub(crate) fn set_parameter_sets(&mut self, sets: Option<ParameterSetInserter>) {
        self.sets = sets;
    }

    /// A new stream (the camera reconnected): new SSRC, sequence numbers go on.
    pub(crate) fn set_ssrc(&mut self, ssrc: u32) {
        self.ssrc = ssrc;
    }

    fn packet(
        &mut self,
        payload: &[u8],
        ts: u32,
        marker: bool,
        keyframe: Option<bool>,
        arrival: Instant,
    ) -> SourcePacket {
        let header = RtpHeader {
            pt: self.pt,
            marker,
            seq: self.seq,
            timestamp: ts,
            ssrc: self.ssrc,
            payload_offset: 12,
            payload_end: 12 + payload.len(),
        };
        self.seq = self.seq.wrapping_add(1);
        SourcePacket {
            source: self.source,
            track: self.track,
            header,
            payload: Arc::from(payload),
            keyframe,
            arrival,
        }
    }

    /// One H.264 or H.265 access unit in Annex B; `emit` returns false to stop.
    pub(crate) fn access_unit(
        &mut self,
        annex_b: &[u8],
        ts: u32,
        arrival: Instant,
        emit: &mut dyn FnMut(SourcePacket) -> bool,
    ) -> bool {
        let nals: Vec<&[u8]> = annex_b_nal_units(annex_b).collect();
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut sets = self.sets.take();
        let mut ok = true;
        for (n, nal) in nals.iter().enumerate() {
            let last_nal = n + 1 == nals.len();
            let packetize = match self.video {
                VideoCodec::H265 => cardea_codecs::h265::packetize_nal,
                _ => cardea_codecs::h264::packetize_nal,
            };
            packetize(nal, MAX_PAYLOAD, &mut scratch, &mut |payload, last| {
                if let Some(stap) = sets.as_mut().and_then(|s| s.inspect(payload, ts)) {
                    let key = Some(self.keyframes.is_start(stap, ts));
                    let p = self.packet(stap, ts, false, key, arrival);
                    ok &= emit(p);
                }
                let key = Some(self.keyframes.is_start(payload, ts));
                let p = self.packet(payload, ts, last_nal && last, key, arrival);
                ok &= emit(p);
            });
        }
        self.scratch = scratch;
        self.sets = sets;
        ok
    }

    /// A frame sent whole in one packet (G.711, Opus).
    pub(crate) fn whole(
        &mut self,
        payload: &[u8],
        ts: u32,
        arrival: Instant,
        emit: &mut dyn FnMut(SourcePacket) -> bool,
    ) -> bool {
        let p = self.packet(payload, ts, false, None, arrival);
        emit(p)
    }
}
