//! The fan-out's per-viewer half: a source's packets out on one viewer's mids, with
//! sequence numbers and timestamps rewritten so a source restart or SSRC change looks
//! like one continuous stream to the browser ([`Rewriter`], sans-IO), video starting
//! on a keyframe, pause/mute/switch controls shared with the control side
//! ([`ViewerShared`]), the viewer's keyframe requests passed on to its sources, and its
//! NACKs answered from the sources' packets ([`Retained`], within a [`ResendBudget`]).
//! The engine ([`super::webrtc::engine`]) keeps the subscriptions and replays the GOP
//! cache; any plugin that fans a source out to viewers (streaming today) uses this.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use std::time::Instant;

use str0m::media::Mid;

use super::handler::{MediaHandler, MediaOut, ResendOutcome};
use super::history::Retained;
use super::resend::{Refusal, ResendBudget};
use super::rewriter::{NotSent, Rewriter};
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
    /// What it may have sent again.
    pub resends: ResendBudget,
}

impl ViewerMedia {
    /// A viewer of `tracks` (indexed as its source's), controlled through `shared`.
    pub(crate) fn new(tracks: Vec<Option<ViewerTrack>>, shared: Arc<ViewerShared>) -> ViewerMedia {
        ViewerMedia {
            tracks,
            shared,
            resends: ResendBudget::default(),
        }
    }
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
            out.write_rtp(w.mid, w.pt, w.seq, w.ts, p, false);
        }
    }

    fn answers_nacks(&self) -> bool {
        true
    }

    fn resend_request(
        &mut self,
        out: &mut MediaOut<'_>,
        req: &str0m::media::ResendRequest,
        retained: &Retained<'_>,
        now: Instant,
    ) -> ResendOutcome {
        match self.resend(req.mid, *req.seq_no, retained, now) {
            Ok((w, p)) if out.write_rtp(w.mid, w.pt, w.seq, w.ts, p, true) => ResendOutcome::Sent,
            Ok(_) => ResendOutcome::Refused(Refusal::UnknownMid),
            Err(Refusal::Evicted) => ResendOutcome::Missed,
            Err(why) => ResendOutcome::Refused(why),
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
                Some(true) if !t.rewriter.is_behind(p.source, h.ssrc, h.seq) => {
                    t.wait_keyframe = false
                }
                None => t.wait_keyframe = false,
                _ => return None,
            }
        }
        let (seq, ts) = t.rewriter.rewrite(p.source, h.ssrc, h.seq, h.timestamp)?;
        self.resends.earn();
        Some(Write {
            mid: t.mid,
            pt: t.pt,
            seq,
            ts,
        })
    }

    /// The decision for one NACKed sequence number `seq` on `mid`, sans-IO: the packet
    /// to send again and where (the same sequence number and timestamp as the first
    /// time), or why not.
    pub(crate) fn resend<'r>(
        &mut self,
        mid: Mid,
        seq: u64,
        retained: &Retained<'r>,
        now: Instant,
    ) -> Result<(Write, &'r Arc<SourcePacket>), Refusal> {
        let (i, t) = self
            .tracks
            .iter()
            .enumerate()
            .find_map(|(i, t)| Some((i, t.as_ref().filter(|t| t.mid == mid)?)))
            .ok_or(Refusal::UnknownMid)?;
        let orig = t.rewriter.original(seq).map_err(|e| match e {
            NotSent::Never => Refusal::NeverSent,
            NotSent::TooOld => Refusal::TooOld,
        })?;
        let track = i as u8; // indexed as the source's tracks, which a u8 numbers
        self.resends.spend(track, seq)?;
        let p = retained
            .get(orig.source, track, orig.ssrc, orig.seq, now)
            .ok_or(Refusal::Evicted)?;
        let write = Write {
            mid: t.mid,
            pt: t.pt,
            seq,
            ts: p.header.timestamp.wrapping_add(orig.ts_offset),
        };
        Ok((write, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    use std::collections::HashMap;

    use cardea_codecs::rtp::RtpHeader;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::ids::SourceId;
    use crate::media::gop::GopCache;
    use crate::media::history::SourceHistory;

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
        arrival: Instant,
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
        ViewerMedia::new(
            vec![track("v", 102, true), track("a", 111, false)],
            Arc::default(),
        )
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

    /// A source's history and GOP cache, fed what the camera sends.
    #[derive(Default)]
    struct Held {
        history: HashMap<SourceId, SourceHistory>,
        gop: HashMap<SourceId, GopCache>,
    }

    impl Held {
        fn keep(&mut self, p: &SourcePacket) -> Arc<SourcePacket> {
            let p = Arc::new(SourcePacket {
                payload: p.payload.clone(),
                ..*p
            });
            self.history
                .entry(p.source)
                .or_insert_with(|| SourceHistory::new(Duration::from_secs(1)))
                .push(&p);
            self.gop.entry(p.source).or_default().push(&p);
            p
        }

        fn retained(&self) -> Retained<'_> {
            Retained {
                history: &self.history,
                gop: &self.gop,
            }
        }
    }

    /// Sends `p` to the viewer (kept by the source too); the sequence number it got.
    fn send(v: &mut ViewerMedia, held: &mut Held, p: SourcePacket) -> Option<u64> {
        let p = held.keep(&p);
        v.route(&p, &mut KeyframeAsks::default()).map(|w| w.seq)
    }

    #[test]
    fn a_nack_is_answered_with_the_same_packet_and_numbers() {
        let (mut cam, mut v, mut held) = (Camera::new(), viewer(), Held::default());
        let first = cam.video(true);
        send(&mut v, &mut held, first);
        let mut sent = Vec::new();
        for _ in 0..10 {
            let p = cam.video(false);
            let ts = p.header.timestamp;
            let seq = send(&mut v, &mut held, p).unwrap();
            sent.push((seq, ts));
        }
        let now = cam.clock.now();
        let (seq, ts) = sent[4];
        let (w, p) = v
            .resend(Mid::from("v"), seq, &held.retained(), now)
            .unwrap();
        assert_eq!((w.mid, w.pt, w.seq, w.ts), (Mid::from("v"), 102, seq, ts));
        assert_eq!(
            p.header.seq,
            65_531u16.wrapping_add(5),
            "the source's packet"
        );
        // What the history no longer holds (older than 1 s) is a miss; the GOP cache
        // holds it only while its GOP lasts: a new keyframe ends that.
        cam.clock.advance(Duration::from_secs(2));
        let later = cam.clock.now();
        assert!(
            v.resend(Mid::from("v"), seq, &held.retained(), later)
                .is_ok(),
            "in the GOP"
        );
        send(&mut v, &mut held, cam.video(true));
        assert_eq!(
            v.resend(Mid::from("v"), seq, &held.retained(), later).err(),
            Some(Refusal::Evicted)
        );
    }

    #[test]
    fn what_a_viewer_was_never_sent_is_refused() {
        let (mut cam, mut v, mut held) = (Camera::new(), viewer(), Held::default());
        send(&mut v, &mut held, cam.video(true));
        for _ in 0..9 {
            send(&mut v, &mut held, cam.video(false));
        }
        // Paused for 5 packets: the source has them, this viewer was not sent them; the
        // next one leaves a gap in its numbers, which its browser will NACK.
        v.shared.paused.store(true, Ordering::Relaxed);
        for _ in 0..5 {
            assert_eq!(send(&mut v, &mut held, cam.video(false)), None);
        }
        v.shared.paused.store(false, Ordering::Relaxed);
        assert_eq!(send(&mut v, &mut held, cam.video(false)), Some(16));
        let now = cam.clock.now();
        let ask = |v: &mut ViewerMedia, mid: &str, seq| {
            v.resend(Mid::from(mid), seq, &held.retained(), now).err()
        };
        for gap in 11..=15 {
            assert_eq!(ask(&mut v, "v", gap), Some(Refusal::NeverSent));
        }
        assert_eq!(ask(&mut v, "v", 17), Some(Refusal::NeverSent), "not yet");
        assert_eq!(ask(&mut v, "v", u64::MAX), Some(Refusal::NeverSent));
        assert_eq!(ask(&mut v, "x", 7), Some(Refusal::UnknownMid));
        assert_eq!(ask(&mut v, "v", 16), None, "the packet after the pause");
        assert_eq!(ask(&mut v, "v", 10), None, "the packet before it");
        assert_eq!(
            ask(&mut v, "a", 1),
            Some(Refusal::NeverSent),
            "no audio sent"
        );
    }

    #[test]
    fn a_nack_across_a_source_restart_finds_each_runs_packet() {
        let (mut cam, mut v, mut held) = (Camera::new(), viewer(), Held::default());
        send(&mut v, &mut held, cam.video(true));
        for _ in 0..9 {
            send(&mut v, &mut held, cam.video(false));
        }
        let before = cam.video(false);
        let before_seq = before.header.seq;
        let out_before = send(&mut v, &mut held, before).unwrap();
        // The camera restarts: a new SSRC, sequence and clock.
        cam.ssrc = 0xBEEF;
        cam.seq = 17;
        cam.ts = 5;
        let after = cam.video(true);
        let out_after = send(&mut v, &mut held, after).unwrap();
        let now = cam.clock.now();
        let (_, p) = v
            .resend(Mid::from("v"), out_before, &held.retained(), now)
            .unwrap();
        assert_eq!((p.header.ssrc, p.header.seq), (0xCAFE, before_seq));
        let (w, p) = v
            .resend(Mid::from("v"), out_after, &held.retained(), now)
            .unwrap();
        assert_eq!((p.header.ssrc, p.header.seq), (0xBEEF, 18));
        assert_eq!(w.seq, out_before + 1, "numbers continue across the restart");
    }

    #[test]
    fn a_nack_storm_gets_refusals_not_a_loop() {
        let (mut cam, mut v, mut held) = (Camera::new(), viewer(), Held::default());
        send(&mut v, &mut held, cam.video(true));
        for _ in 0..29 {
            send(&mut v, &mut held, cam.video(false));
        }
        let now = cam.clock.now();
        let mut ask = |seq| v.resend(Mid::from("v"), seq, &held.retained(), now).err();
        // The same packet, again and again: three times, then refused.
        let outcomes: Vec<_> = (0..5).map(|_| ask(20)).collect();
        assert_eq!(
            outcomes,
            [
                None,
                None,
                None,
                Some(Refusal::Repeated),
                Some(Refusal::Repeated)
            ]
        );
        // Everything it was sent: a third of its 30 packets in all (3 spent above).
        let granted = (1..=30).filter(|s| ask(*s).is_none()).count();
        assert_eq!(granted, 10 - 3);
        assert_eq!(ask(21), Some(Refusal::OverBudget));
    }
}
