//! A viewer's sequence numbers and timestamps, per track: the source's rewritten so a
//! source restart, an SSRC change or a switch to another source looks like one continuous
//! stream to the browser, and mapped back when the browser asks (NACK) for one again.
//! Sans-IO, tested below.

use crate::ids::SourceId;

/// Rewrites one track's sequence numbers and timestamps, and maps a sequence number it
/// gave back to the source packet.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rewriter {
    last: Option<Last>,
    /// Next extended sequence number to send.
    out_seq: u64,
    /// Added to the source timestamp.
    ts_offset: u32,
    /// Which of the last [`WINDOW`] sequence numbers were sent (duplicates are not,
    /// and the viewer may only ask again for what it was sent).
    sent: SentWindow,
    /// The latest runs of one source stream, each with its own offsets.
    segments: [Option<Segment>; SEGMENTS],
    next_segment: usize,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    source: SourceId,
    ssrc: u32,
    seq: u16,
    out_ts: u32,
}

/// A run of one source stream: from `first_out` on, sequence numbers and timestamps
/// are the source's plus fixed offsets.
#[derive(Debug, Clone, Copy)]
struct Segment {
    first_out: u64,
    source: SourceId,
    ssrc: u32,
    first_seq: u16,
    ts_offset: u32,
}

/// The source packet behind a sequence number sent to a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Original {
    pub source: SourceId,
    pub ssrc: u32,
    pub seq: u16,
    /// Added to its timestamp when it was sent.
    pub ts_offset: u32,
}

/// Why a NACKed sequence number has no source packet to send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotSent {
    /// Never sent to this viewer: skipped (paused, muted, waiting for a keyframe, lost
    /// upstream), or not sent yet.
    Never,
    /// Older than what the viewer may ask again for.
    TooOld,
}

/// Largest sequence jump still taken as loss within one stream; larger is a restart.
pub(crate) const MAX_GAP: i32 = 3000;
/// Timestamp step assumed across a restart: one 30 fps frame at 90 kHz. Exact
/// pacing across a restart is unknowable; the browser's jitter buffer absorbs it.
const RESTART_TS_STEP: u32 = 3000;
/// Sequence numbers a viewer may ask again for: the last 1024 sent, more than a second
/// of any camera the history keeps (1 s) at up to 1,000 packets/s.
const WINDOW: u64 = 1024;
/// Source stream runs remembered (restarts within the window).
const SEGMENTS: usize = 4;
/// A packet further behind the newest sent is too late to place.
const MAX_LATE: u32 = 64;

/// One bit per sequence number, for the last [`WINDOW`] of them.
#[derive(Debug, Clone)]
struct SentWindow {
    bits: [u64; (WINDOW / 64) as usize],
    /// The newest sequence number marked (0: none yet; sequence numbers start at 1).
    newest: u64,
}

impl Default for SentWindow {
    fn default() -> Self {
        SentWindow {
            bits: [0; (WINDOW / 64) as usize],
            newest: 0,
        }
    }
}

impl SentWindow {
    fn slot(seq: u64) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn contains(&self, seq: u64) -> bool {
        if seq > self.newest || self.newest - seq >= WINDOW {
            return false;
        }
        let (word, bit) = Self::slot(seq);
        self.bits[word] & bit != 0
    }

    /// Marks `seq` sent; a `seq` past the newest moves the window, forgetting what falls out.
    fn mark(&mut self, seq: u64) {
        if seq > self.newest {
            if seq - self.newest >= WINDOW {
                self.bits = [0; (WINDOW / 64) as usize];
            } else {
                for s in self.newest + 1..seq {
                    let (word, bit) = Self::slot(s);
                    self.bits[word] &= !bit;
                }
            }
            self.newest = seq;
        } else if self.newest - seq >= WINDOW {
            return;
        }
        let (word, bit) = Self::slot(seq);
        self.bits[word] |= bit;
    }

    fn clear(&mut self) {
        *self = SentWindow::default();
    }
}

impl Rewriter {
    /// Output (extended sequence number, timestamp) for a packet of `source`, or `None`
    /// for a duplicate or a packet too late to place. A packet that arrives after later
    /// ones (reordered by the network) keeps its place: it gets the sequence number it
    /// would have had, and the browser's jitter buffer puts it back in order. Another
    /// source, another SSRC or a jump in sequence numbers starts a new run just after the
    /// last packet sent.
    pub(crate) fn rewrite(
        &mut self,
        source: SourceId,
        ssrc: u32,
        seq: u16,
        ts: u32,
    ) -> Option<(u64, u32)> {
        match self.last {
            None => {
                self.out_seq = 1;
                self.ts_offset = 0;
                self.sent.clear();
                self.start_segment(source, ssrc, seq);
            }
            Some(last) if last.source == source && last.ssrc == ssrc => {
                let delta = seq.wrapping_sub(last.seq) as i16 as i32;
                if delta <= 0 {
                    return self.late(-delta, ts);
                }
                if delta > MAX_GAP {
                    self.restart(last.out_ts, source, ssrc, seq, ts);
                } else {
                    self.out_seq += (delta - 1) as u64;
                }
            }
            Some(last) => self.restart(last.out_ts, source, ssrc, seq, ts),
        }
        let out_ts = ts.wrapping_add(self.ts_offset);
        let seq_out = self.out_seq;
        self.out_seq += 1;
        self.sent.mark(seq_out);
        self.last = Some(Last {
            source,
            ssrc,
            seq,
            out_ts,
        });
        Some((seq_out, out_ts))
    }

    /// Whether a packet is older than the newest one sent (same stream).
    pub(crate) fn is_behind(&self, source: SourceId, ssrc: u32, seq: u16) -> bool {
        self.last.is_some_and(|l| {
            l.source == source && l.ssrc == ssrc && (seq.wrapping_sub(l.seq) as i16) <= 0
        })
    }

    /// The source packet behind `out_seq`, a sequence number this viewer was sent.
    pub(crate) fn original(&self, out_seq: u64) -> Result<Original, NotSent> {
        let newest = self.sent.newest;
        if out_seq > newest || out_seq == 0 {
            return Err(NotSent::Never);
        }
        if newest - out_seq >= WINDOW {
            return Err(NotSent::TooOld);
        }
        if !self.sent.contains(out_seq) {
            return Err(NotSent::Never);
        }
        // The run it belongs to: the latest that started at or before it (one that
        // started before every run remembered is forgotten).
        let s = self
            .segments
            .iter()
            .flatten()
            .filter(|s| s.first_out <= out_seq)
            .max_by_key(|s| s.first_out)
            .ok_or(NotSent::TooOld)?;
        Ok(Original {
            source: s.source,
            ssrc: s.ssrc,
            // A run's offset is fixed: the distance in one is the distance in the other.
            seq: s.first_seq.wrapping_add((out_seq - s.first_out) as u16),
            ts_offset: s.ts_offset,
        })
    }

    /// A packet `behind` places before the newest one sent. Its place must be in the
    /// current run and not taken: a sequence number is never sent for two packets (SRTP
    /// would encrypt two payloads under one index).
    fn late(&mut self, behind: i32, ts: u32) -> Option<(u64, u32)> {
        let behind = behind as u32;
        let newest = self.out_seq - 1;
        let seq = newest.checked_sub(u64::from(behind))?;
        let run_start = self.current_run().map_or(1, |s| s.first_out);
        if behind >= MAX_LATE || seq < run_start || self.sent.contains(seq) {
            return None;
        }
        self.sent.mark(seq);
        Some((seq, ts.wrapping_add(self.ts_offset)))
    }

    /// A new stream (camera restart, SSRC change, another source): continue just after
    /// the last packet.
    fn restart(&mut self, last_out_ts: u32, source: SourceId, ssrc: u32, seq: u16, ts: u32) {
        self.ts_offset = last_out_ts.wrapping_add(RESTART_TS_STEP).wrapping_sub(ts);
        self.start_segment(source, ssrc, seq);
    }

    fn current_run(&self) -> Option<&Segment> {
        self.segments.iter().flatten().max_by_key(|s| s.first_out)
    }

    fn start_segment(&mut self, source: SourceId, ssrc: u32, seq: u16) {
        self.segments[self.next_segment] = Some(Segment {
            first_out: self.out_seq,
            source,
            ssrc,
            first_seq: seq,
            ts_offset: self.ts_offset,
        });
        self.next_segment = (self.next_segment + 1) % SEGMENTS;
    }
}

/// Drives one viewer track's numbering with source packets and NACKs read from `data`
/// and checks what SRTP's safety rests on: no sequence number is ever given to two
/// source packets (one index, one payload), and a NACKed number maps back to the packet
/// it was given to, or to none. Panics otherwise. For the fuzz target `viewer_numbers`
/// and the test below.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn check_numbering(data: &[u8]) {
    use std::collections::HashMap;
    let mut r = Rewriter::default();
    let mut given: HashMap<u64, (SourceId, u32, u16)> = HashMap::new();
    let mut newest = 0u64;
    for c in data.chunks_exact(5) {
        let n = u16::from_be_bytes([c[3], c[4]]);
        if c[0] % 4 == 3 {
            let asked = newest.saturating_sub(u64::from(n % 2048));
            if let Ok(o) = r.original(asked) {
                let was = given.get(&asked).copied();
                assert_eq!(
                    Some((o.source, o.ssrc, o.seq)),
                    was,
                    "{asked} maps to another packet"
                );
            }
            continue;
        }
        let (source, ssrc) = (SourceId(u64::from(c[1] % 3)), u32::from(c[2] % 3));
        if let Some((out, _)) = r.rewrite(source, ssrc, n, u32::from(n)) {
            let before = given.insert(out, (source, ssrc, n));
            assert!(before.is_none(), "{out} given to two packets");
            newest = newest.max(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: SourceId = SourceId(1);

    #[test]
    fn continuous_stream_passes_with_gaps_kept() {
        let mut r = Rewriter::default();
        assert_eq!(r.rewrite(S, 7, 65534, 1000), Some((1, 1000)));
        assert_eq!(r.rewrite(S, 7, 65535, 4000), Some((2, 4000)));
        // Wraps, and a lost packet leaves a gap the browser can NACK.
        assert_eq!(r.rewrite(S, 7, 1, 7000), Some((4, 7000)));
        // The lost packet arrives late: it takes the place it left.
        assert_eq!(r.rewrite(S, 7, 0, 5500), Some((3, 5500)));
        // Duplicates are not sent again.
        assert_eq!(r.rewrite(S, 7, 0, 5500), None);
        assert_eq!(r.rewrite(S, 7, 1, 7000), None);
        assert_eq!(r.rewrite(S, 7, 65535, 4000), None);
        // Before the first packet sent, or too far back: nowhere to put it.
        assert_eq!(r.rewrite(S, 7, 65533, 0), None);
        for s in 2..80u16 {
            r.rewrite(S, 7, s, 7000 + u32::from(s));
        }
        assert_eq!(r.rewrite(S, 7, 70, 7070), None, "already sent");
        assert_eq!(r.rewrite(S, 7, 1, 7000), None, "64 or more behind");
    }

    #[test]
    fn reordered_packets_keep_their_order_numbers() {
        let mut r = Rewriter::default();
        let arrivals = [10u16, 12, 11, 13, 16, 14, 15, 17];
        let seqs: Vec<u64> = arrivals
            .iter()
            .map(|s| r.rewrite(S, 1, *s, u32::from(*s) * 10).unwrap().0)
            .collect();
        assert_eq!(seqs, vec![1, 3, 2, 4, 7, 5, 6, 8]);
    }

    #[test]
    fn ssrc_change_continues_the_stream() {
        let mut r = Rewriter::default();
        r.rewrite(S, 7, 100, 90_000);
        r.rewrite(S, 7, 101, 93_000);
        // The camera restarted: new SSRC, random sequence and timestamp.
        let (seq, ts) = r.rewrite(S, 99, 40_000, 5).unwrap();
        assert_eq!(seq, 3);
        assert_eq!(ts, 96_000);
        assert_eq!(r.rewrite(S, 99, 40_001, 3005), Some((4, 99_000)));
    }

    #[test]
    fn huge_jump_in_one_ssrc_is_a_restart() {
        let mut r = Rewriter::default();
        r.rewrite(S, 7, 100, 1000);
        let (seq, ts) = r.rewrite(S, 7, 30_000, 777_777).unwrap();
        assert_eq!((seq, ts), (2, 4000));
    }

    #[test]
    fn a_late_packet_never_takes_a_number_of_the_previous_run() {
        let mut r = Rewriter::default();
        r.rewrite(S, 7, 100, 1000);
        r.rewrite(S, 7, 101, 4000);
        // Restart (new SSRC) at out 3; then a packet of the new stream from before its
        // first arrives: out 2 belongs to the old stream, it is not reused.
        assert_eq!(r.rewrite(S, 9, 500, 0).map(|x| x.0), Some(3));
        assert_eq!(r.rewrite(S, 9, 499, 0), None);
        assert_eq!(r.rewrite(S, 9, 501, 0).map(|x| x.0), Some(4));
    }

    #[test]
    fn another_source_is_a_new_run_even_with_the_same_ssrc() {
        let mut r = Rewriter::default();
        r.rewrite(S, 7, 100, 1000);
        let (seq, ts) = r.rewrite(SourceId(2), 7, 101, 50_000).unwrap();
        assert_eq!((seq, ts), (2, 4000));
        assert_eq!(
            r.original(2).unwrap().source,
            SourceId(2),
            "mapped back to the new source"
        );
        assert_eq!(r.original(1).unwrap().source, S);
    }

    #[test]
    fn a_nacked_number_maps_back_to_the_source_packet() {
        let mut r = Rewriter::default();
        // The source wraps, loses 3 upstream (never sent), then 2 arrive reordered.
        let order = [65_533u16, 65_534, 65_535, 0, 4, 6, 5, 7];
        for seq in order {
            r.rewrite(S, 0xCAFE, seq, 90_000).unwrap();
        }
        let orig = |out| r.original(out).map(|o| o.seq);
        assert_eq!(orig(1), Ok(65_533));
        assert_eq!(orig(4), Ok(0));
        assert_eq!(orig(8), Ok(4));
        assert_eq!(orig(9), Ok(5));
        assert_eq!(orig(10), Ok(6));
        assert_eq!(orig(11), Ok(7));
        // Lost upstream: those numbers were never sent to this viewer.
        for out in 5..=7 {
            assert_eq!(orig(out), Err(NotSent::Never));
        }
        assert_eq!(orig(0), Err(NotSent::Never));
        assert_eq!(orig(12), Err(NotSent::Never), "not sent yet");
        let o = r.original(8).unwrap();
        assert_eq!((o.source, o.ssrc, o.ts_offset), (S, 0xCAFE, 0));
    }

    #[test]
    fn a_nack_across_a_source_restart_maps_to_each_run() {
        let mut r = Rewriter::default();
        for i in 0..10u16 {
            r.rewrite(S, 7, 1000 + i, 90_000 + u32::from(i) * 3000);
        }
        // The camera restarted (new SSRC, new numbers and clock): outs 11.. are the new run.
        for i in 0..10u16 {
            r.rewrite(S, 8, 40_000 + i, 5 + u32::from(i) * 3000);
        }
        let before = r.original(10).unwrap();
        assert_eq!((before.ssrc, before.seq, before.ts_offset), (7, 1009, 0));
        let after = r.original(11).unwrap();
        assert_eq!((after.ssrc, after.seq), (8, 40_000));
        // The timestamp sent was the source's plus the run's offset.
        assert_eq!(5u32.wrapping_add(after.ts_offset), 90_000 + 9 * 3000 + 3000);
        // A jump within one SSRC is a new run too.
        r.rewrite(S, 8, 45_009, 0);
        assert_eq!(r.original(21).map(|o| o.seq), Ok(45_009));
        assert_eq!(r.original(20).map(|o| o.seq), Ok(40_009));
    }

    #[test]
    fn only_the_last_window_and_the_last_runs_can_be_asked_for() {
        let mut r = Rewriter::default();
        for i in 0..2000u16 {
            r.rewrite(S, 7, i, 0);
        }
        assert_eq!(r.original(2000).map(|o| o.seq), Ok(1999));
        assert_eq!(r.original(977).map(|o| o.seq), Ok(976), "1024th newest");
        assert_eq!(r.original(976), Err(NotSent::TooOld));
        assert_eq!(r.original(1), Err(NotSent::TooOld));
        // Five restarts of one packet each: the first runs are forgotten.
        for run in 0..5u32 {
            r.rewrite(S, 100 + run, 0, 0);
        }
        assert_eq!(r.original(2005).map(|o| o.ssrc), Ok(104));
        assert_eq!(r.original(2002).map(|o| o.ssrc), Ok(101));
        assert_eq!(
            r.original(2001),
            Err(NotSent::TooOld),
            "its run is forgotten"
        );
        assert_eq!(r.original(1990), Err(NotSent::TooOld));
    }

    #[test]
    fn no_number_is_given_twice_and_each_maps_back() {
        // Pseudo-random streams: three sources, three SSRCs, sequence numbers that mostly
        // advance, sometimes jump, go back or repeat; NACKs in between.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut seq = 0u16;
        let mut data = Vec::new();
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_be_bytes();
            seq = match b[5] % 16 {
                0 => u16::from_be_bytes([b[6], b[7]]),
                1..=3 => seq.wrapping_sub(u16::from(b[6] % 80)),
                _ => seq.wrapping_add(1 + u16::from(b[6] % 3)),
            };
            let source = if b[4].is_multiple_of(64) { b[1] } else { 0 };
            data.extend([b[0], source, if b[3].is_multiple_of(64) { b[2] } else { 0 }]);
            data.extend(seq.to_be_bytes());
        }
        check_numbering(&data);
    }

    #[test]
    fn a_jump_past_the_window_forgets_everything_sent_before() {
        let mut r = Rewriter::default();
        r.rewrite(S, 7, 0, 0);
        r.rewrite(S, 7, 2000, 0); // 1999 lost upstream: out 2001
        assert_eq!(r.original(2001).map(|o| o.seq), Ok(2000));
        assert_eq!(r.original(1), Err(NotSent::TooOld));
        assert_eq!(r.original(1500), Err(NotSent::Never));
    }
}
