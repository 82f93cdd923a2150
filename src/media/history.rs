//! Each source's recent packets, kept to answer viewers' NACKs: one history per source
//! (in each shard), holding the very `Arc`s its viewers were sent, so a retransmission
//! costs no copy and the history no memory per viewer. Bounded by age (the last
//! `media.nack_history_ms`, 1 s by default) and by count per track ([`MAX_PACKETS`]).
//!
//! A viewer's NACK names the sequence number *it* was sent; its rewriter maps that back
//! to the source's SSRC and sequence number (`rewriter::Rewriter::original`), which are
//! looked up here, then in the source's GOP cache ([`Retained`]): a viewer that joined
//! was replayed the GOP, whose start may be older than the history.
//!
//! Sans-IO: time is the packets' arrival and the `now` a lookup is made at.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ids::SourceId;
use crate::media::gop::GopCache;
use crate::media::rewriter::MAX_GAP;
use crate::media::source::SourcePacket;

/// How long packets are kept by default.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(1);
/// Most packets kept per track: a second of a 16 Mbit/s camera.
pub(crate) const MAX_PACKETS: usize = 2048;
/// Packets a lookup looks at on each side of where the sequence number puts it (packets
/// that arrived out of order).
const REORDER: usize = 8;
/// Streams (SSRC runs) of one track a lookup can tell apart in the window: a restarted
/// camera, an SSRC change.
const STREAMS: usize = 4;

/// One kept packet, with its place in the track's sequence: the sequence number
/// lengthened to 64 bits, continuing across SSRC changes and restarts (which leave a gap),
/// so kept packets are in `ext` order but for the reordered ones.
#[derive(Debug)]
struct Entry {
    ext: u64,
    packet: Arc<SourcePacket>,
}

/// The newest packet of one stream in the window: where its sequence numbers are.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    seq: u16,
    ext: u64,
}

#[derive(Debug, Default)]
struct TrackHistory {
    entries: VecDeque<Entry>,
    /// The streams seen lately, the oldest overwritten first.
    anchors: [Option<Anchor>; STREAMS],
    next_anchor: usize,
    max_ext: u64,
}

/// One source's history.
#[derive(Debug)]
pub(crate) struct SourceHistory {
    tracks: Vec<TrackHistory>,
    max_age: Duration,
}

/// Where a new stream's sequence starts: far from 0, so a reordered packet before it
/// cannot go below, and far past the previous stream's, so their numbers never meet.
const STREAM_BASE: u64 = 1 << 40;
const STREAM_STEP: u64 = 1 << 20;

impl SourceHistory {
    /// An empty history that keeps packets `max_age` (zero: none).
    pub(crate) fn new(max_age: Duration) -> SourceHistory {
        SourceHistory {
            tracks: Vec::new(),
            max_age,
        }
    }

    /// Keeps `p`; what is now older than the age bound, or past the count bound, goes.
    pub(crate) fn push(&mut self, p: &Arc<SourcePacket>) {
        if self.max_age.is_zero() {
            return;
        }
        let i = p.track as usize;
        if self.tracks.len() <= i {
            self.tracks.resize_with(i + 1, TrackHistory::default);
        }
        let t = &mut self.tracks[i];
        let (ssrc, seq) = (p.header.ssrc, p.header.seq);
        let ext = match t.entries.back() {
            Some(last) if last.packet.header.ssrc == ssrc => {
                let delta = i64::from(seq.wrapping_sub(last.packet.header.seq) as i16);
                if delta.abs() <= i64::from(MAX_GAP) {
                    last.ext.wrapping_add_signed(delta)
                } else {
                    t.max_ext + STREAM_STEP
                }
            }
            Some(_) => t.max_ext + STREAM_STEP,
            None => STREAM_BASE,
        };
        t.max_ext = t.max_ext.max(ext);
        match t.anchors.iter_mut().flatten().find(|a| a.ssrc == ssrc) {
            Some(a) if a.ext < ext => *a = Anchor { ssrc, seq, ext },
            Some(_) => {} // a reordered packet: the anchor is newer
            None => {
                t.anchors[t.next_anchor] = Some(Anchor { ssrc, seq, ext });
                t.next_anchor = (t.next_anchor + 1) % STREAMS;
            }
        }
        while let Some(front) = t.entries.front() {
            let aged = p.arrival.saturating_duration_since(front.packet.arrival) > self.max_age;
            if !aged && t.entries.len() < MAX_PACKETS {
                break;
            }
            t.entries.pop_front();
        }
        t.entries.push_back(Entry {
            ext,
            packet: p.clone(),
        });
    }

    /// The packet of `track` with `ssrc` and `seq`, if it is still kept at `now`.
    pub(crate) fn get(
        &self,
        track: u8,
        ssrc: u32,
        seq: u16,
        now: Instant,
    ) -> Option<&Arc<SourcePacket>> {
        let t = self.tracks.get(track as usize)?;
        let a = t.anchors.iter().flatten().find(|a| a.ssrc == ssrc)?;
        let want = a
            .ext
            .wrapping_add_signed(i64::from(seq.wrapping_sub(a.seq) as i16));
        let at = t.entries.partition_point(|e| e.ext < want);
        let (lo, hi) = (
            at.saturating_sub(REORDER),
            (at + REORDER).min(t.entries.len()),
        );
        let e = t.entries.range(lo..hi).find(|e| {
            e.ext == want && e.packet.header.ssrc == ssrc && e.packet.header.seq == seq
        })?;
        (now.saturating_duration_since(e.packet.arrival) <= self.max_age).then_some(&e.packet)
    }

    /// Packets kept for `track`.
    #[cfg(test)]
    fn len(&self, track: u8) -> usize {
        self.tracks
            .get(track as usize)
            .map_or(0, |t| t.entries.len())
    }

    /// Packets kept, every track.
    #[cfg(test)]
    pub(crate) fn packets(&self) -> usize {
        self.tracks.iter().map(|t| t.entries.len()).sum()
    }
}

/// What a shard still holds of its sources' packets, for viewers' NACKs: each source's
/// history, then its GOP cache.
#[derive(Clone, Copy)]
pub struct Retained<'a> {
    pub(crate) history: &'a HashMap<SourceId, SourceHistory>,
    pub(crate) gop: &'a HashMap<SourceId, GopCache>,
}

impl<'a> Retained<'a> {
    /// Packet `seq` of `ssrc` on `source`'s `track`, if still held at `now`.
    pub(crate) fn get(
        &self,
        source: SourceId,
        track: u8,
        ssrc: u32,
        seq: u16,
        now: Instant,
    ) -> Option<&'a Arc<SourcePacket>> {
        self.history
            .get(&source)
            .and_then(|h| h.get(track, ssrc, seq, now))
            .or_else(|| self.gop.get(&source)?.find(track, ssrc, seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::gop::test_packet;

    /// Packet `seq` of stream `ssrc` on track 0, arriving `ms` after `t0`.
    fn packet(t0: Instant, ms: u64, ssrc: u32, seq: u16) -> Arc<SourcePacket> {
        let mut p = Arc::try_unwrap(test_packet(0, seq, Some(false))).unwrap();
        p.header.ssrc = ssrc;
        p.arrival = t0 + Duration::from_millis(ms);
        Arc::new(p)
    }

    fn t0() -> Instant {
        test_packet(0, 0, None).arrival
    }

    #[test]
    fn keeps_the_last_second_and_finds_by_sequence_number() {
        let t0 = t0();
        let mut h = SourceHistory::new(DEFAULT_MAX_AGE);
        // 100 packets/s for 3 s.
        for i in 0..300u16 {
            h.push(&packet(t0, u64::from(i) * 10, 7, 1000 + i));
        }
        let now = t0 + Duration::from_millis(2990);
        assert_eq!(h.len(0), 101, "1 s of packets, both ends included");
        assert!(h.get(0, 7, 1000 + 299, now).is_some());
        assert!(h.get(0, 7, 1000 + 199, now).is_some(), "exactly 1 s old");
        assert!(h.get(0, 7, 1000 + 198, now).is_none(), "evicted");
        assert!(h.get(0, 8, 1000 + 250, now).is_none(), "another SSRC");
        assert!(h.get(1, 7, 1000 + 250, now).is_none(), "another track");
        // Kept, but too old by the time it is asked for (the source went quiet).
        let later = now + Duration::from_millis(900);
        assert!(h.get(0, 7, 1000 + 210, later).is_none());
        assert!(h.get(0, 7, 1000 + 290, later).is_some());
    }

    #[test]
    fn a_nack_for_a_packet_just_evicted_misses() {
        let t0 = t0();
        let mut h = SourceHistory::new(Duration::from_millis(100));
        for i in 0..20u16 {
            h.push(&packet(t0, u64::from(i) * 10, 7, i));
        }
        // Oldest kept: seq 9 (100 ms before seq 19); seq 8 went with the last push.
        let now = t0 + Duration::from_millis(190);
        assert!(h.get(0, 7, 9, now).is_some());
        assert!(h.get(0, 7, 8, now).is_none());
    }

    #[test]
    fn bounded_by_count_whatever_the_age() {
        let t0 = t0();
        let mut h = SourceHistory::new(Duration::from_secs(10));
        for i in 0..(MAX_PACKETS as u16 + 500) {
            h.push(&packet(t0, 0, 7, i));
        }
        assert_eq!(h.len(0), MAX_PACKETS);
        assert!(h.get(0, 7, 499, t0).is_none());
        assert!(h.get(0, 7, 500, t0).is_some());
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = t0();
        let mut h = SourceHistory::new(DEFAULT_MAX_AGE);
        for i in 0..40u16 {
            h.push(&packet(t0, u64::from(i), 7, 65_520u16.wrapping_add(i)));
        }
        let now = t0 + Duration::from_millis(40);
        for seq in [65_520u16, 65_535, 0, 1, 23] {
            let p = h.get(0, 7, seq, now).expect("kept across the wrap");
            assert_eq!(p.header.seq, seq);
        }
        assert!(h.get(0, 7, 24, now).is_none(), "not sent yet");
        assert!(h.get(0, 7, 65_519, now).is_none(), "before the first");
    }

    #[test]
    fn gaps_and_reordering_are_found_where_they_are() {
        let t0 = t0();
        let mut h = SourceHistory::new(DEFAULT_MAX_AGE);
        // 100 packets lost upstream after 10; 205 arrives after 206.
        let order = (0..=10u16)
            .chain(111..=204)
            .chain([206, 205])
            .chain(207..=220);
        for (i, seq) in order.enumerate() {
            h.push(&packet(t0, i as u64, 7, seq));
        }
        let now = t0 + Duration::from_millis(200);
        for seq in [0u16, 10, 111, 150, 205, 206, 220] {
            assert_eq!(h.get(0, 7, seq, now).map(|p| p.header.seq), Some(seq));
        }
        assert!(h.get(0, 7, 50, now).is_none(), "never arrived");
    }

    #[test]
    fn streams_before_a_restart_are_still_found() {
        let t0 = t0();
        let mut h = SourceHistory::new(DEFAULT_MAX_AGE);
        // A camera restarts twice: a new SSRC, then the same SSRC with a jump.
        for i in 0..30u16 {
            h.push(&packet(t0, u64::from(i), 7, 100 + i));
        }
        for i in 0..30u16 {
            h.push(&packet(t0, 30 + u64::from(i), 9, 50_000 + i));
        }
        for i in 0..30u16 {
            h.push(&packet(t0, 60 + u64::from(i), 7, 20_000 + i));
        }
        let now = t0 + Duration::from_millis(100);
        assert_eq!(h.get(0, 9, 50_010, now).map(|p| p.header.ssrc), Some(9));
        assert!(h.get(0, 7, 20_029, now).is_some());
        // SSRC 7's first run: its anchor moved to the second run, so it is not found
        // (a miss, not a wrong packet).
        assert!(h.get(0, 7, 110, now).is_none());
    }

    #[test]
    fn zero_age_keeps_nothing() {
        let t0 = t0();
        let mut h = SourceHistory::new(Duration::ZERO);
        h.push(&packet(t0, 0, 7, 1));
        assert_eq!(h.len(0), 0);
        assert!(h.get(0, 7, 1, t0).is_none());
    }
}
