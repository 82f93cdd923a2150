//! A WebRTC publisher's media half (WHIP, or `publish` over the Janus API): the RTP
//! packets its PeerConnection receives become the mountpoint's source packets, as they
//! came (payload shared, keyframes marked), handed to the runtime's forwarder; the
//! viewers' keyframe requests come back and go to the publisher as RTCP PLIs, and it
//! is asked for one every 2 s besides.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use cardea_codecs::keyframe::{starts_keyframe, VideoCodec};
use cardea_codecs::rtp::RtpHeader;
use str0m::format::Codec;
use str0m::media::Mid;
use tokio::sync::mpsc;

use crate::ids::SourceId;
use crate::ingest::rtp::SourceCounters;
use crate::media::source::SourcePacket;
use crate::plugin::{MediaHandler, MediaOut};

/// One of the mountpoint's tracks as the publisher sends it.
pub(super) struct PublishedTrack {
    pub(super) mid: Mid,
    pub(super) pt: u8,
    /// Video whose keyframes can be recognised.
    pub(super) keyframes: Option<VideoCodec>,
}

pub(super) struct PublisherMedia {
    pub(super) source: SourceId,
    /// Per mountpoint track (its index is the source's track number).
    pub(super) tracks: Vec<Option<PublishedTrack>>,
    pub(super) packets: mpsc::Sender<SourcePacket>,
    /// Tracks the viewers want a keyframe on.
    pub(super) keyframe_requests: mpsc::Receiver<u8>,
    pub(super) counters: Arc<SourceCounters>,
    /// When a keyframe was last asked for on every video track (see [`KEYFRAME_EVERY`]).
    pub(super) last_ask: Option<Instant>,
}

/// How often a publisher is asked for a keyframe. Browsers' encoders send one only
/// when asked, so a GOP would last the whole session: the cache a joining viewer is
/// replayed would grow without end (and be dropped at its bound). Asked every 2 s, as
/// cameras are configured, a join replays at most 2 s (Janus's VideoRoom `pli_freq`).
const KEYFRAME_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The codec's keyframe reader, for video codecs that have one.
pub(super) fn keyframe_reader(codec: Codec) -> Option<VideoCodec> {
    match codec {
        Codec::Vp8 => Some(VideoCodec::Vp8),
        Codec::Vp9 => Some(VideoCodec::Vp9),
        Codec::H264 => Some(VideoCodec::H264),
        Codec::H265 => Some(VideoCodec::H265),
        Codec::Av1 => Some(VideoCodec::Av1),
        _ => None,
    }
}

impl PublisherMedia {
    /// The mountpoint track a packet belongs to: by its MID header extension, else by
    /// its payload type.
    fn track_of(&self, mid: Option<Mid>, pt: u8) -> Option<usize> {
        let by = |f: &dyn Fn(&PublishedTrack) -> bool| {
            self.tracks.iter().position(|t| t.as_ref().is_some_and(f))
        };
        mid.and_then(|m| by(&|t| t.mid == m))
            .or_else(|| by(&|t| t.pt == pt))
    }
}

impl MediaHandler for PublisherMedia {
    fn incoming_media(&mut self, _out: &mut MediaOut<'_>, _data: &str0m::media::MediaData) {}

    fn incoming_rtp(&mut self, _out: &mut MediaOut<'_>, packet: &str0m::rtp::RtpPacket) {
        let h = &packet.header;
        let Some(track) = self.track_of(h.ext_vals.mid, *h.payload_type) else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let keyframes = self.tracks[track].as_ref().and_then(|t| t.keyframes);
        let keyframe = keyframes.map(|codec| starts_keyframe(codec, &packet.payload));
        if keyframe == Some(true) {
            self.counters.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        self.counters
            .arrived(packet.timestamp, packet.payload.len());
        let p = SourcePacket {
            source: self.source,
            track: track as u8,
            header: RtpHeader {
                pt: *h.payload_type,
                marker: h.marker,
                seq: h.sequence_number,
                timestamp: h.timestamp,
                ssrc: *h.ssrc,
                payload_offset: 0,
                payload_end: packet.payload.len(),
            },
            payload: packet.payload.clone(),
            keyframe,
            arrival: packet.timestamp,
        };
        // Full: the forwarder is a whole queue behind; the packet goes, as a network
        // would drop it.
        if self.packets.try_send(p).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn tick(&mut self, out: &mut MediaOut<'_>, now: Instant) {
        let mut wanted: Vec<u8> = Vec::new();
        if self
            .last_ask
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_EVERY)
        {
            self.last_ask = Some(now);
            wanted.extend((0..self.tracks.len()).map(|i| i as u8));
        }
        while let Ok(track) = self.keyframe_requests.try_recv() {
            if !wanted.contains(&track) {
                wanted.push(track);
            }
        }
        for track in wanted {
            let Some(Some(t)) = self.tracks.get(track as usize) else {
                continue;
            };
            if t.keyframes.is_some() && out.request_rtp_keyframe(t.mid) {
                self.counters.plis_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
