//! The GOP cache: per source, the video packets since the last keyframe, so a new
//! viewer starts from that keyframe at once instead of waiting for the next one.
//! Sans-IO. Packets are shared (`Arc`), never copied; steady state allocates nothing
//! (the vectors keep their capacity across keyframes).

use std::sync::Arc;

use crate::media::webrtc::SourcePacket;

/// Most packets kept per track (about 10 s of 2 Mbit/s video).
const MAX_PACKETS: usize = 4096;
/// Most payload bytes kept per track.
const MAX_BYTES: usize = 4 << 20;

#[derive(Debug, Default)]
struct TrackCache {
    packets: Vec<Arc<SourcePacket>>,
    bytes: usize,
    /// A keyframe was seen and everything since fits.
    open: bool,
}

/// The cache of one source.
#[derive(Debug, Default)]
pub struct GopCache {
    tracks: Vec<TrackCache>,
}

impl GopCache {
    /// Takes note of a packet from the source.
    pub fn push(&mut self, p: &Arc<SourcePacket>) {
        let Some(keyframe) = p.keyframe else {
            return;
        };
        let i = p.track as usize;
        if self.tracks.len() <= i {
            self.tracks.resize_with(i + 1, TrackCache::default);
        }
        let t = &mut self.tracks[i];
        if keyframe {
            t.packets.clear();
            t.bytes = 0;
            t.open = true;
        }
        if !t.open {
            return;
        }
        if t.packets.len() >= MAX_PACKETS || t.bytes + p.payload.len() > MAX_BYTES {
            // A GOP this long is not worth replaying; wait for the next keyframe.
            t.packets.clear();
            t.bytes = 0;
            t.open = false;
            return;
        }
        t.bytes += p.payload.len();
        t.packets.push(p.clone());
    }

    /// The cached packets, track by track, each track from its last keyframe on.
    pub fn packets(&self) -> impl Iterator<Item = &Arc<SourcePacket>> {
        self.tracks.iter().flat_map(|t| t.packets.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SourceId;
    use crate::ingest::rtp::RtpHeader;

    fn packet(track: u8, seq: u16, keyframe: Option<bool>) -> Arc<SourcePacket> {
        #[allow(clippy::disallowed_methods)] // a timestamp for a test packet
        let arrival = std::time::Instant::now();
        Arc::new(SourcePacket {
            source: SourceId(1),
            track,
            header: RtpHeader {
                pt: 96,
                marker: false,
                seq,
                timestamp: 0,
                ssrc: 1,
                payload_offset: 12,
                payload_end: 112,
            },
            payload: Arc::from(&[0u8; 100][..]),
            keyframe,
            arrival,
        })
    }

    fn seqs(c: &GopCache) -> Vec<u16> {
        c.packets().map(|p| p.header.seq).collect()
    }

    #[test]
    fn keeps_from_the_last_keyframe() {
        let mut c = GopCache::default();
        c.push(&packet(1, 1, Some(false)));
        assert!(seqs(&c).is_empty(), "nothing before the first keyframe");
        c.push(&packet(1, 2, Some(true)));
        c.push(&packet(1, 3, Some(false)));
        c.push(&packet(0, 50, None));
        assert_eq!(seqs(&c), [2, 3], "audio is not cached");
        c.push(&packet(1, 4, Some(true)));
        c.push(&packet(1, 5, Some(false)));
        assert_eq!(seqs(&c), [4, 5]);
    }

    #[test]
    fn an_overlong_gop_is_dropped_until_the_next_keyframe() {
        let mut c = GopCache::default();
        c.push(&packet(0, 0, Some(true)));
        for i in 1..=MAX_PACKETS as u16 {
            c.push(&packet(0, i, Some(false)));
        }
        assert!(seqs(&c).is_empty());
        c.push(&packet(0, 9, Some(false)));
        assert!(seqs(&c).is_empty());
        c.push(&packet(0, 10, Some(true)));
        assert_eq!(seqs(&c), [10]);
    }
}
