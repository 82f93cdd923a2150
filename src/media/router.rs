//! The fan-out's per-viewer half: a source's packets out on one viewer's mids, with
//! sequence numbers and timestamps rewritten so a source restart or SSRC change looks
//! like one continuous stream to the browser ([`Rewriter`], sans-IO), video starting
//! on a keyframe, pause/mute/switch controls shared with the control side
//! ([`ViewerShared`]), and the viewer's keyframe requests passed on to its sources.
//! The engine ([`super::webrtc::engine`]) keeps the subscriptions and replays the GOP
//! cache; any plugin that fans a source out to viewers (streaming today) uses this.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use str0m::media::Mid;

use super::handler::{MediaHandler, MediaOut};
use super::source::SourcePacket;

/// State shared between the control half (pause, configure, switch) and the media half.
#[derive(Debug, Default)]
pub(crate) struct ViewerShared {
    pub paused: AtomicBool,
    /// The mountpoint is disabled: nothing is sent.
    pub disabled: AtomicBool,
    /// Bit i: track i is not sent (`configure` with `send: false`).
    pub muted: AtomicU64,
    /// Bit i: track i must start again from a keyframe (after `switch`, or being
    /// unmuted); the media half takes the bits and asks the source for one.
    pub rekey: AtomicU64,
}

/// The bit of track `i` in [`ViewerShared::muted`] and [`ViewerShared::rekey`].
pub(crate) fn track_bit(i: usize) -> u64 {
    1u64.checked_shl(i as u32).unwrap_or(0)
}

/// Rewrites one track's sequence numbers and timestamps (sans-IO, tested below).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rewriter {
    last: Option<Last>,
    /// Next extended sequence number to send.
    out_seq: u64,
    /// Added to the source timestamp.
    ts_offset: u32,
    /// Bit i: the packet `i` before the newest one was sent (duplicates are not).
    sent: u64,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    ssrc: u32,
    seq: u16,
    out_ts: u32,
}

/// Largest sequence jump still taken as loss within one stream; larger is a restart.
const MAX_GAP: i32 = 3000;
/// Timestamp step assumed across a restart: one 30 fps frame at 90 kHz. Exact
/// pacing across a restart is unknowable; the browser's jitter buffer absorbs it.
const RESTART_TS_STEP: u32 = 3000;

impl Rewriter {
    /// Output (extended sequence number, timestamp) for a source packet, or `None`
    /// for a duplicate or a packet too late to place. A packet that arrives after
    /// later ones (reordered by the network) keeps its place: it gets the sequence
    /// number it would have had, and the browser's jitter buffer puts it back in order.
    pub(crate) fn rewrite(&mut self, ssrc: u32, seq: u16, ts: u32) -> Option<(u64, u32)> {
        match self.last {
            None => {
                self.out_seq = 1;
                self.ts_offset = 0;
                self.sent = 0;
            }
            Some(last) if last.ssrc == ssrc => {
                let delta = seq.wrapping_sub(last.seq) as i16 as i32;
                if delta <= 0 {
                    return self.late(-delta, ts);
                }
                if delta > MAX_GAP {
                    self.restart(last.out_ts, ts);
                } else {
                    self.out_seq += (delta - 1) as u64;
                    self.sent = self.sent.checked_shl((delta - 1) as u32).unwrap_or(0);
                }
            }
            Some(last) => self.restart(last.out_ts, ts),
        }
        let out_ts = ts.wrapping_add(self.ts_offset);
        let seq_out = self.out_seq;
        self.out_seq += 1;
        self.sent = (self.sent << 1) | 1;
        self.last = Some(Last { ssrc, seq, out_ts });
        Some((seq_out, out_ts))
    }

    /// Whether a packet is older than the newest one sent (same stream).
    pub(crate) fn is_behind(&self, ssrc: u32, seq: u16) -> bool {
        self.last
            .is_some_and(|l| l.ssrc == ssrc && (seq.wrapping_sub(l.seq) as i16) <= 0)
    }

    /// A packet `behind` places before the newest one sent.
    fn late(&mut self, behind: i32, ts: u32) -> Option<(u64, u32)> {
        let behind = behind as u32;
        let newest = self.out_seq - 1;
        if behind >= 64 || u64::from(behind) >= newest || self.sent & (1 << behind) != 0 {
            return None;
        }
        self.sent |= 1 << behind;
        Some((newest - u64::from(behind), ts.wrapping_add(self.ts_offset)))
    }

    /// A new stream (camera restart, SSRC change): continue just after the last packet.
    fn restart(&mut self, last_out_ts: u32, ts: u32) {
        self.sent = 0;
        self.ts_offset = last_out_ts.wrapping_add(RESTART_TS_STEP).wrapping_sub(ts);
    }
}

/// One track of the viewer's PeerConnection.
pub(crate) struct ViewerTrack {
    pub mid: Mid,
    pub pt: u8,
    pub rewriter: Rewriter,
    pub video: bool,
    /// Video starts on a keyframe: nothing before one is sent (the GOP cache
    /// usually supplies one at once).
    pub wait_keyframe: bool,
}

impl ViewerTrack {
    /// A track on `mid` with payload type `pt`; video waits for a keyframe.
    pub(crate) fn new(mid: Mid, pt: u8, video: bool) -> ViewerTrack {
        ViewerTrack {
            mid,
            pt,
            rewriter: Rewriter::default(),
            video,
            wait_keyframe: video,
        }
    }
}

/// The viewer's media half.
pub(crate) struct ViewerMedia {
    pub tracks: Vec<Option<ViewerTrack>>,
    pub shared: Arc<ViewerShared>,
}

impl MediaHandler for ViewerMedia {
    fn incoming_media(&mut self, _out: &mut MediaOut<'_>, _data: &str0m::media::MediaData) {}

    fn keyframe_request(&mut self, out: &mut MediaOut<'_>, req: &str0m::media::KeyframeRequest) {
        let track = self
            .tracks
            .iter()
            .position(|t| t.as_ref().is_some_and(|t| t.mid == req.mid));
        if let Some(i) = track {
            out.request_source_keyframe(i as u8);
        }
    }

    fn source_packet(&mut self, out: &mut MediaOut<'_>, p: &SourcePacket) {
        let mut keyframes = KeyframeAsks::default();
        let write = self.route(p, &mut keyframes);
        for track in keyframes.tracks() {
            out.request_source_keyframe(track);
        }
        if let Some(w) = write {
            out.write_rtp(
                w.mid,
                w.pt,
                w.seq,
                w.ts,
                p.arrival,
                p.header.marker,
                &p.payload,
            );
        }
    }
}

/// Where one source packet goes on a viewer's PeerConnection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Write {
    pub mid: Mid,
    pub pt: u8,
    /// The rewritten extended sequence number.
    pub seq: u64,
    /// The rewritten timestamp.
    pub ts: u32,
}

/// The tracks a viewer needs a keyframe on, asked of its source (a bit per track).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyframeAsks(u64);

impl KeyframeAsks {
    fn ask(&mut self, track: usize) {
        self.0 |= track_bit(track);
    }

    /// The tracks, lowest first (nothing to walk when none: this runs per packet).
    pub(crate) fn tracks(self) -> impl Iterator<Item = u8> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            let track = (bits != 0).then(|| bits.trailing_zeros() as u8)?;
            bits &= bits - 1;
            Some(track)
        })
    }
}

impl ViewerMedia {
    /// The decision for one source packet, sans-IO: where it is written (if at
    /// all) and which tracks need a keyframe from the source.
    pub(crate) fn route(
        &mut self,
        p: &SourcePacket,
        keyframes: &mut KeyframeAsks,
    ) -> Option<Write> {
        if self.shared.paused.load(Ordering::Relaxed)
            || self.shared.disabled.load(Ordering::Relaxed)
        {
            return None;
        }
        if self.shared.rekey.load(Ordering::Relaxed) != 0 {
            let rekey = self.shared.rekey.swap(0, Ordering::Relaxed);
            for (i, t) in self.tracks.iter_mut().enumerate() {
                if let Some(t) = t.as_mut().filter(|t| t.video && rekey & track_bit(i) != 0) {
                    t.wait_keyframe = true;
                    keyframes.ask(i);
                }
            }
        }
        if self.shared.muted.load(Ordering::Relaxed) & track_bit(p.track as usize) != 0 {
            return None;
        }
        let t = self.tracks.get_mut(p.track as usize)?.as_mut()?;
        let h = &p.header;
        if t.wait_keyframe {
            // A keyframe from before what was last sent (a GOP cache replayed to a
            // viewer that resumes) is stale: wait for a new one.
            match p.keyframe {
                Some(true) if !t.rewriter.is_behind(h.ssrc, h.seq) => t.wait_keyframe = false,
                None => t.wait_keyframe = false,
                _ => return None,
            }
        }
        let (seq, ts) = t.rewriter.rewrite(h.ssrc, h.seq, h.timestamp)?;
        Some(Write {
            mid: t.mid,
            pt: t.pt,
            seq,
            ts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_stream_passes_with_gaps_kept() {
        let mut r = Rewriter::default();
        assert_eq!(r.rewrite(7, 65534, 1000), Some((1, 1000)));
        assert_eq!(r.rewrite(7, 65535, 4000), Some((2, 4000)));
        // Wraps, and a lost packet leaves a gap the browser can NACK.
        assert_eq!(r.rewrite(7, 1, 7000), Some((4, 7000)));
        // The lost packet arrives late: it takes the place it left.
        assert_eq!(r.rewrite(7, 0, 5500), Some((3, 5500)));
        // Duplicates are not sent again.
        assert_eq!(r.rewrite(7, 0, 5500), None);
        assert_eq!(r.rewrite(7, 1, 7000), None);
        assert_eq!(r.rewrite(7, 65535, 4000), None);
        // Before the first packet sent, or too far back: nowhere to put it.
        assert_eq!(r.rewrite(7, 65533, 0), None);
        for s in 2..80u16 {
            r.rewrite(7, s, 7000 + u32::from(s));
        }
        assert_eq!(r.rewrite(7, 70, 7070), None, "already sent");
        assert_eq!(r.rewrite(7, 1, 7000), None, "64 or more behind");
    }

    #[test]
    fn reordered_packets_keep_their_order_numbers() {
        let mut r = Rewriter::default();
        let arrivals = [10u16, 12, 11, 13, 16, 14, 15, 17];
        let seqs: Vec<u64> = arrivals
            .iter()
            .map(|s| r.rewrite(1, *s, u32::from(*s) * 10).unwrap().0)
            .collect();
        assert_eq!(seqs, vec![1, 3, 2, 4, 7, 5, 6, 8]);
    }

    #[test]
    fn ssrc_change_continues_the_stream() {
        let mut r = Rewriter::default();
        r.rewrite(7, 100, 90_000);
        r.rewrite(7, 101, 93_000);
        // The camera restarted: new SSRC, random sequence and timestamp.
        let (seq, ts) = r.rewrite(99, 40_000, 5).unwrap();
        assert_eq!(seq, 3);
        assert_eq!(ts, 96_000);
        assert_eq!(r.rewrite(99, 40_001, 3005), Some((4, 99_000)));
    }

    #[test]
    fn huge_jump_in_one_ssrc_is_a_restart() {
        let mut r = Rewriter::default();
        r.rewrite(7, 100, 1000);
        let (seq, ts) = r.rewrite(7, 30_000, 777_777).unwrap();
        assert_eq!((seq, ts), (2, 4000));
    }

    #[test]
    fn keyframe_asks_list_their_tracks_lowest_first() {
        let mut asks = KeyframeAsks::default();
        assert_eq!(asks.tracks().count(), 0);
        for t in [63, 0, 5, 5] {
            asks.ask(t);
        }
        assert_eq!(asks.tracks().collect::<Vec<_>>(), [0, 5, 63]);
        asks.ask(64);
        assert_eq!(asks.tracks().collect::<Vec<_>>(), [0, 5, 63]);
    }

    #[test]
    fn track_bits_cover_64_tracks_and_no_more() {
        assert_eq!(track_bit(0), 1);
        assert_eq!(track_bit(63), 1 << 63);
        assert_eq!(track_bit(64), 0);
        assert_eq!(track_bit(usize::MAX), 0);
    }
}

#[cfg(test)]
mod viewer_tests {
    use std::time::Duration;

    use cardea_codecs::rtp::RtpHeader;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::ids::SourceId;

    /// A camera's packets at 30 fps (video, track 0) with 50 audio packets/s (track 1),
    /// stamped by a fake clock.
    struct Camera {
        clock: ManualClock,
        ssrc: u32,
        seq: u16,
        ts: u32,
    }

    impl Camera {
        fn new() -> Camera {
            Camera {
                clock: ManualClock::new(),
                ssrc: 0xCAFE,
                seq: 65_530,
                ts: 90_000,
            }
        }

        fn video(&mut self, keyframe: bool) -> SourcePacket {
            self.clock.advance(Duration::from_millis(33));
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(3000);
            packet(
                0,
                self.ssrc,
                self.seq,
                self.ts,
                Some(keyframe),
                self.clock.now(),
            )
        }

        fn audio(&mut self, seq: u16) -> SourcePacket {
            self.clock.advance(Duration::from_millis(20));
            packet(1, 0xA0D1, seq, u32::from(seq) * 960, None, self.clock.now())
        }
    }

    fn packet(
        track: u8,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        keyframe: Option<bool>,
        arrival: std::time::Instant,
    ) -> SourcePacket {
        SourcePacket {
            source: SourceId(1),
            track,
            header: RtpHeader {
                pt: 96,
                marker: true,
                seq,
                timestamp,
                ssrc,
                payload_offset: 0,
                payload_end: 3,
            },
            payload: Arc::from(&[1u8, 2, 3][..]),
            keyframe,
            arrival,
        }
    }

    fn viewer() -> ViewerMedia {
        let track = |mid: &str, pt, video| Some(ViewerTrack::new(Mid::from(mid), pt, video));
        ViewerMedia {
            tracks: vec![track("v", 102, true), track("a", 111, false)],
            shared: Arc::default(),
        }
    }

    fn route(v: &mut ViewerMedia, p: &SourcePacket) -> (Option<u64>, Vec<u8>) {
        let mut asks = KeyframeAsks::default();
        let w = v.route(p, &mut asks);
        (w.map(|w| w.seq), asks.tracks().collect())
    }

    #[test]
    fn video_starts_on_a_keyframe_audio_at_once() {
        let (mut cam, mut v) = (Camera::new(), viewer());
        assert_eq!(route(&mut v, &cam.video(false)), (None, vec![]));
        assert_eq!(route(&mut v, &cam.audio(7)).0, Some(1));
        let key = cam.video(true);
        let w = v.route(&key, &mut KeyframeAsks::default()).unwrap();
        assert_eq!(
            (w.mid, w.pt, w.seq, w.ts),
            (Mid::from("v"), 102, 1, key.header.timestamp)
        );
        // The camera's sequence wraps: the viewer's goes on.
        let seqs: Vec<_> = (0..8).map(|_| route(&mut v, &cam.video(false)).0).collect();
        assert_eq!(seqs, (2..10).map(Some).collect::<Vec<_>>());
    }

    #[test]
    fn pause_mute_and_rekey() {
        let (mut cam, mut v) = (Camera::new(), viewer());
        route(&mut v, &cam.video(true));
        v.shared.paused.store(true, Ordering::Relaxed);
        assert_eq!(route(&mut v, &cam.video(false)), (None, vec![]));
        assert_eq!(route(&mut v, &cam.audio(1)), (None, vec![]));
        // Resumed with a rekey (as `start` after `pause` does): the source is asked
        // once, video waits for the keyframe, audio flows.
        v.shared.paused.store(false, Ordering::Relaxed);
        v.shared
            .rekey
            .store(track_bit(0) | track_bit(1), Ordering::Relaxed);
        assert_eq!(route(&mut v, &cam.video(false)), (None, vec![0]));
        assert_eq!(route(&mut v, &cam.audio(2)), (Some(1), vec![]));
        assert!(route(&mut v, &cam.video(true)).0.is_some());
        // Audio muted: video goes on.
        v.shared.muted.store(track_bit(1), Ordering::Relaxed);
        assert_eq!(route(&mut v, &cam.audio(3)).0, None);
        assert!(route(&mut v, &cam.video(false)).0.is_some());
        // Disabled mountpoint: nothing.
        v.shared.disabled.store(true, Ordering::Relaxed);
        assert_eq!(route(&mut v, &cam.video(true)).0, None);
    }

    #[test]
    fn a_replayed_keyframe_older_than_what_was_sent_is_not_a_start() {
        let (mut cam, mut v) = (Camera::new(), viewer());
        let old_key = cam.video(true);
        route(&mut v, &old_key);
        route(&mut v, &cam.video(false));
        // Switched back to this source: the GOP cache replays its keyframe, already
        // sent; the viewer waits for the next one and asks for it.
        v.shared.rekey.store(track_bit(0), Ordering::Relaxed);
        assert_eq!(route(&mut v, &old_key), (None, vec![0]));
        assert!(route(&mut v, &cam.video(true)).0.is_some());
    }

    #[test]
    fn packets_for_tracks_the_viewer_lacks_are_dropped() {
        let (mut cam, mut v) = (Camera::new(), viewer());
        let mut p = cam.video(true);
        for track in [2, 63, 64, 255] {
            p.track = track;
            assert_eq!(route(&mut v, &p), (None, vec![]));
        }
        v.tracks[1] = None;
        assert_eq!(route(&mut v, &cam.audio(1)), (None, vec![]));
    }
}
