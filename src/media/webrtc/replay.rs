//! A viewer's GOP replay, a chunk per turn. A viewer that connects (or switches
//! source) gets what its sources cached since their last keyframe; given all at once
//! (hundreds of packets at 720p with a 2 s GOP), one viewer's replay held up every other
//! peer of its shard, and a crowd joining together waited for each other's. A cursor
//! walks the caches instead, [`CHUNK`] packets per turn, and the live packets it has
//! not reached yet (they are in the cache too) wait for it.
//!
//! Sans-IO: the engine calls [`Replay::step`] with the peer's handler and the caches.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ids::SourceId;
use crate::media::gop::GopCache;
use crate::media::handler::{MediaHandler, MediaOut};
use crate::media::source::SourcePacket;

/// Packets replayed to one viewer per turn: a keyframe's worth at 720p.
pub(super) const CHUNK: usize = 32;

/// Where a viewer's replay is: its `source`-th subscription, that source's `track`, the
/// `index`-th cached packet of the cache's `generation` (`None`: not started on it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Replay {
    source: usize,
    track: usize,
    index: usize,
    generation: Option<u64>,
}

impl Replay {
    /// Replays up to [`CHUNK`] packets to `handler`; `false` once the replay is done.
    pub(super) fn step(
        &mut self,
        subscriptions: &[SourceId],
        gop: &HashMap<SourceId, GopCache>,
        handler: &mut dyn MediaHandler,
        out: &mut MediaOut<'_>,
    ) -> bool {
        let mut budget = CHUNK;
        loop {
            let Some(source) = subscriptions.get(self.source) else {
                return false;
            };
            let Some(cache) = gop.get(source).filter(|c| self.track < c.tracks()) else {
                self.next_source();
                continue;
            };
            let (packets, generation) = cache.track(self.track);
            if self.generation != Some(generation) {
                // Started, or the cache started over at a newer keyframe: from its start.
                self.generation = Some(generation);
                self.index = 0;
            }
            for p in packets.iter().skip(self.index).take(budget) {
                handler.source_packet(out, p);
                self.index += 1;
                budget -= 1;
            }
            if self.index < packets.len() {
                return true;
            }
            self.track += 1;
            self.index = 0;
            self.generation = None;
        }
    }

    /// Whether live packet `p` (from the viewer's `source`-th subscription) is left to
    /// the replay: it is cached and the cursor has not passed its track yet.
    pub(super) fn will_replay(&self, source: usize, p: &SourcePacket, cached: bool) -> bool {
        cached && (source, p.track as usize) >= (self.source, self.track)
    }

    fn next_source(&mut self) {
        *self = Replay {
            source: self.source + 1,
            ..Replay::default()
        };
    }
}

/// Whether `packet` is left to `replay` for a viewer subscribed to `subscriptions`
/// (`recent`: packets pushed to the caches this turn).
pub(super) fn left_to_replay(
    replay: Option<&Replay>,
    subscriptions: &[SourceId],
    gop: &HashMap<SourceId, GopCache>,
    packet: &Arc<SourcePacket>,
    recent: usize,
) -> bool {
    let Some(r) = replay else {
        return false;
    };
    let Some(source) = subscriptions.iter().position(|s| *s == packet.source) else {
        return false;
    };
    let cached = gop
        .get(&packet.source)
        .is_some_and(|c| c.holds(packet, recent));
    r.will_replay(source, packet, cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the (track, seq) of what it is given.
    #[derive(Default)]
    struct Seen(Vec<(u8, u16)>);

    impl MediaHandler for Seen {
        fn incoming_media(&mut self, _: &mut MediaOut<'_>, _: &str0m::media::MediaData) {}
        fn source_packet(&mut self, _: &mut MediaOut<'_>, p: &SourcePacket) {
            self.0.push((p.track, p.header.seq));
        }
    }

    fn packet(track: u8, seq: u16, keyframe: bool) -> Arc<SourcePacket> {
        packet_of(track, seq, Some(keyframe))
    }

    fn packet_of(track: u8, seq: u16, keyframe: Option<bool>) -> Arc<SourcePacket> {
        crate::media::gop::test_packet(track, seq, keyframe)
    }

    #[test]
    fn a_replay_goes_a_chunk_at_a_time_track_by_track_and_restarts_at_a_newer_keyframe() {
        #[allow(clippy::disallowed_methods)] // str0m's clock origin
        let mut rtc = str0m::RtcConfig::new().build(std::time::Instant::now());
        let mut keyframes = Vec::new();
        let mut out = MediaOut {
            rtc: &mut rtc,
            source_keyframes: &mut keyframes,
        };
        let subs = [SourceId(1)];
        let mut gop: HashMap<SourceId, GopCache> = HashMap::new();
        let cache = gop.entry(SourceId(1)).or_default();
        for seq in 0..40u16 {
            cache.push(&packet(0, seq, seq == 0));
        }
        for seq in 0..3u16 {
            cache.push(&packet(1, 100 + seq, seq == 0));
        }
        let mut seen = Seen::default();
        let mut replay = Replay::default();
        assert!(
            replay.step(&subs, &gop, &mut seen, &mut out),
            "more to come"
        );
        assert_eq!(seen.0.len(), CHUNK);
        // A live packet of track 0 arrives: cached, the cursor is still on track 0, so
        // the replay gives it; one of a track not cached goes live.
        let live = packet(0, 40, false);
        gop.get_mut(&SourceId(1)).unwrap().push(&live);
        let cache = &gop[&SourceId(1)];
        assert!(left_to_replay(Some(&replay), &subs, &gop, &live, 1));
        let audio = packet_of(2, 7, None);
        assert!(!cache.holds(&audio, 1));
        assert!(!left_to_replay(Some(&replay), &subs, &gop, &audio, 1));
        assert!(!left_to_replay(None, &subs, &gop, &live, 1));
        assert!(!replay.step(&subs, &gop, &mut seen, &mut out), "done");
        let expected: Vec<(u8, u16)> = (0..=40)
            .map(|s| (0, s))
            .chain((0..3).map(|s| (1, 100 + s)))
            .collect();
        assert_eq!(seen.0, expected);

        // A newer keyframe while a replay is under way: it goes on from there.
        let mut seen = Seen::default();
        let mut replay = Replay::default();
        assert!(replay.step(&subs, &gop, &mut seen, &mut out));
        let cache = gop.get_mut(&SourceId(1)).unwrap();
        for seq in 50..53u16 {
            cache.push(&packet(0, seq, seq == 50));
        }
        assert!(!replay.step(&subs, &gop, &mut seen, &mut out));
        let after: Vec<(u8, u16)> = seen.0[CHUNK..].to_vec();
        assert_eq!(
            after,
            [(0, 50), (0, 51), (0, 52), (1, 100), (1, 101), (1, 102)]
        );
    }
}
