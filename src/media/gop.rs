//! The GOP cache: per source, the video packets since the last keyframe, so a new
//! viewer starts from that keyframe at once instead of waiting for the next one.
//! Sans-IO. Packets are shared (`Arc`), never copied; steady state allocates nothing
//! (the vectors keep their capacity across keyframes).

use std::sync::Arc;

use crate::media::source::SourcePacket;

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
    /// Packets of the keyframe itself (its access unit: up to the marker bit), once
    /// complete; 0 while it is still arriving.
    keyframe_len: usize,
    /// Counts the times `packets` started over (a replay in progress notices).
    generation: u64,
}

/// The cache of one source.
#[derive(Debug, Default)]
pub(crate) struct GopCache {
    tracks: Vec<TrackCache>,
}

impl GopCache {
    /// Takes note of a packet from the source; `Some(track)` when it completed a
    /// keyframe of that track (see [`GopCache::keyframe`]).
    pub(crate) fn push(&mut self, p: &Arc<SourcePacket>) -> Option<u8> {
        let keyframe = p.keyframe?;
        let i = p.track as usize;
        if self.tracks.len() <= i {
            self.tracks.resize_with(i + 1, TrackCache::default);
        }
        let t = &mut self.tracks[i];
        if keyframe {
            t.packets.clear();
            t.bytes = 0;
            t.open = true;
            t.keyframe_len = 0;
            t.generation += 1;
        }
        if !t.open {
            return None;
        }
        if t.packets.len() >= MAX_PACKETS || t.bytes + p.payload.len() > MAX_BYTES {
            // A GOP this long is not worth replaying; wait for the next keyframe.
            t.packets.clear();
            t.bytes = 0;
            t.open = false;
            t.keyframe_len = 0;
            t.generation += 1;
            return None;
        }
        t.bytes += p.payload.len();
        t.packets.push(p.clone());
        let first_ts = t.packets[0].header.timestamp;
        if t.keyframe_len == 0 && p.header.marker && p.header.timestamp == first_ts {
            t.keyframe_len = t.packets.len();
            return Some(p.track);
        }
        None
    }

    /// The packets of `track`'s last keyframe (one access unit), once complete.
    pub(crate) fn keyframe(&self, track: u8) -> Option<&[Arc<SourcePacket>]> {
        let t = self.tracks.get(track as usize)?;
        (t.open && t.keyframe_len > 0).then(|| &t.packets[..t.keyframe_len])
    }

    /// The cached packets, track by track, each track from its last keyframe on.
    #[cfg(test)]
    pub(crate) fn packets(&self) -> impl Iterator<Item = &Arc<SourcePacket>> {
        self.tracks.iter().flat_map(|t| t.packets.iter())
    }

    /// Tracks seen (the highest track index with a cache, plus one).
    pub(crate) fn tracks(&self) -> usize {
        self.tracks.len()
    }

    /// `track`'s cached packets and the generation they belong to (it changes each
    /// time the cache starts over).
    pub(crate) fn track(&self, track: usize) -> (&[Arc<SourcePacket>], u64) {
        self.tracks
            .get(track)
            .map_or((&[][..], 0), |t| (&t.packets[..], t.generation))
    }

    /// The cached packet of `track` with `ssrc` and `seq`: a viewer that was replayed
    /// the GOP may ask for one again (see `history`). A GOP is shorter than half the
    /// sequence space ([`MAX_PACKETS`]), so distances from its first packet are in order
    /// but for packets that arrived out of order, looked for beside.
    pub(crate) fn find(&self, track: u8, ssrc: u32, seq: u16) -> Option<&Arc<SourcePacket>> {
        let t = self.tracks.get(track as usize).filter(|t| t.open)?;
        let first = t.packets.first()?.header.seq;
        let want = seq.wrapping_sub(first);
        let at = t
            .packets
            .partition_point(|p| p.header.seq.wrapping_sub(first) < want);
        let (lo, hi) = (at.saturating_sub(8), (at + 8).min(t.packets.len()));
        t.packets[lo..hi]
            .iter()
            .find(|p| p.header.ssrc == ssrc && p.header.seq == seq)
    }

    /// Whether `p`, one of the last `recent` packets pushed, is in the cache.
    pub(crate) fn holds(&self, p: &SourcePacket, recent: usize) -> bool {
        p.keyframe.is_some()
            && self.tracks.get(p.track as usize).is_some_and(|t| {
                t.open
                    && t.packets
                        .iter()
                        .rev()
                        .take(recent)
                        .any(|l| std::ptr::eq(&**l, p))
            })
    }
}

/// A 100-byte packet of source 1 for tests (`keyframe`: `None` for audio).
#[cfg(test)]
pub(crate) fn test_packet(track: u8, seq: u16, keyframe: Option<bool>) -> Arc<SourcePacket> {
    use crate::ids::SourceId;
    use cardea_codecs::rtp::RtpHeader;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(track: u8, seq: u16, keyframe: Option<bool>) -> Arc<SourcePacket> {
        test_packet(track, seq, keyframe)
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
    fn a_keyframe_is_complete_at_its_marker() {
        let frame = |seq, ts, marker, keyframe| {
            let mut p = Arc::try_unwrap(packet(1, seq, keyframe)).unwrap();
            p.header.timestamp = ts;
            p.header.marker = marker;
            Arc::new(p)
        };
        let mut c = GopCache::default();
        assert_eq!(c.push(&frame(1, 3000, false, Some(true))), None);
        assert!(c.keyframe(1).is_none(), "not complete yet");
        assert_eq!(c.push(&frame(2, 3000, false, Some(false))), None);
        assert_eq!(c.push(&frame(3, 3000, true, Some(false))), Some(1));
        // The next frame's packets are cached, the keyframe stays three packets.
        assert_eq!(c.push(&frame(4, 6000, true, Some(false))), None);
        let kf: Vec<u16> = c
            .keyframe(1)
            .unwrap()
            .iter()
            .map(|p| p.header.seq)
            .collect();
        assert_eq!(kf, [1, 2, 3]);
        assert!(c.keyframe(0).is_none() && c.keyframe(7).is_none());
        // A new keyframe starts over.
        c.push(&frame(5, 9000, false, Some(true)));
        assert!(c.keyframe(1).is_none());
    }

    #[test]
    fn finds_a_cached_packet_by_ssrc_and_sequence_number() {
        let mut c = GopCache::default();
        // A keyframe just before the wrap, a gap (lost upstream), two packets swapped.
        for seq in [65_534u16, 65_535, 0, 1, 40, 42, 41, 43] {
            c.push(&packet(1, seq, Some(seq == 65_534)));
        }
        for seq in [65_534u16, 0, 1, 40, 41, 42, 43] {
            assert_eq!(c.find(1, 1, seq).map(|p| p.header.seq), Some(seq));
        }
        assert!(c.find(1, 1, 2).is_none(), "lost upstream");
        assert!(c.find(1, 1, 44).is_none(), "not yet");
        assert!(c.find(1, 1, 65_533).is_none(), "before the keyframe");
        assert!(c.find(1, 2, 40).is_none(), "another SSRC");
        assert!(c.find(0, 1, 40).is_none() && c.find(9, 1, 40).is_none());
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
