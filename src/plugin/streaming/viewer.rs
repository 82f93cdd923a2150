//! The media half of one viewer: source packets out on the viewer's mids, with
//! sequence numbers and timestamps rewritten so a source restart or SSRC change
//! looks like one continuous stream to the browser.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use str0m::media::Mid;

use crate::media::webrtc::SourcePacket;
use crate::plugin::{MediaHandler, MediaOut};

/// State shared between the control half (pause, enable) and the media half.
#[derive(Debug, Default)]
pub(super) struct ViewerShared {
    pub(super) paused: AtomicBool,
}

/// Rewrites one track's sequence numbers and timestamps (sans-IO, tested below).
#[derive(Debug, Clone, Default)]
pub(super) struct Rewriter {
    last: Option<Last>,
    /// Next extended sequence number to send.
    out_seq: u64,
    /// Added to the source timestamp.
    ts_offset: u32,
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
    /// Output (extended sequence number, timestamp) for a source packet, or `None` for
    /// a late duplicate or a packet from before the last one (already sent on).
    pub(super) fn rewrite(&mut self, ssrc: u32, seq: u16, ts: u32) -> Option<(u64, u32)> {
        match self.last {
            None => {
                self.out_seq = 1;
                self.ts_offset = 0;
            }
            Some(last) if last.ssrc == ssrc => {
                let delta = seq.wrapping_sub(last.seq) as i16 as i32;
                if delta <= 0 {
                    return None;
                }
                if delta > MAX_GAP {
                    self.restart(last.out_ts, ts);
                } else {
                    self.out_seq += (delta - 1) as u64;
                }
            }
            Some(last) => self.restart(last.out_ts, ts),
        }
        let out_ts = ts.wrapping_add(self.ts_offset);
        let seq_out = self.out_seq;
        self.out_seq += 1;
        self.last = Some(Last { ssrc, seq, out_ts });
        Some((seq_out, out_ts))
    }

    /// A new stream (camera restart, SSRC change): continue just after the last packet.
    fn restart(&mut self, last_out_ts: u32, ts: u32) {
        self.ts_offset = last_out_ts.wrapping_add(RESTART_TS_STEP).wrapping_sub(ts);
    }
}

/// One track of the viewer's PeerConnection.
pub(super) struct ViewerTrack {
    pub(super) mid: Mid,
    pub(super) pt: u8,
    pub(super) rewriter: Rewriter,
    /// Video starts on a keyframe: nothing before one is sent (the GOP cache
    /// usually supplies one at once).
    pub(super) wait_keyframe: bool,
}

/// The viewer's media half.
pub(super) struct ViewerMedia {
    pub(super) tracks: Vec<Option<ViewerTrack>>,
    pub(super) shared: Arc<ViewerShared>,
    pub(super) enabled: Arc<AtomicBool>,
}

impl MediaHandler for ViewerMedia {
    fn incoming_media(&mut self, _out: &mut MediaOut<'_>, _data: &str0m::media::MediaData) {}

    fn source_packet(&mut self, out: &mut MediaOut<'_>, p: &SourcePacket) {
        if self.shared.paused.load(Ordering::Relaxed) || !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let Some(Some(t)) = self.tracks.get_mut(p.track as usize) else {
            return;
        };
        if t.wait_keyframe {
            match p.keyframe {
                Some(true) | None => t.wait_keyframe = false,
                Some(false) => return,
            }
        }
        let h = &p.header;
        if let Some((seq, ts)) = t.rewriter.rewrite(h.ssrc, h.seq, h.timestamp) {
            out.write_rtp(t.mid, t.pt, seq, ts, p.arrival, h.marker, &p.payload);
        }
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
        // Late and duplicate packets are not sent again.
        assert_eq!(r.rewrite(7, 0, 5500), None);
        assert_eq!(r.rewrite(7, 1, 7000), None);
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
}
