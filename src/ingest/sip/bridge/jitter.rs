//! The adaptive jitter buffer toward the browser, by sequence number, with the
//! reception statistics RTCP reports.

use cardea_codecs::voice::PHONE_FRAME;

use super::MAX_FRAME;

/// Jitter buffer slots (a power of two); each holds one packet: up to 160 ms of
/// G.711, or the longest Opus packet (a relayed phone's).
const SLOTS: usize = 16;
pub(super) const SLOT_BYTES: usize = MAX_FRAME;
/// Jitter buffer depth bounds, in 20 ms frames.
const MIN_DEPTH: u32 = 1;
const MAX_DEPTH: u32 = 8;
/// Packets played too deep in a row (1 s) before one is skipped.
const DEEP_TICKS: u32 = 50;

/// A packet waiting for playout.
#[derive(Clone, Copy)]
pub(super) struct Slot {
    seq: u16,
    len: u16,
    full: bool,
    data: [u8; SLOT_BYTES],
}

/// The adaptive jitter buffer toward the browser, by sequence number.
pub(super) struct JitterBuffer {
    slots: Box<[Slot; SLOTS]>,
    /// Next sequence number to play; None until primed.
    next: Option<u16>,
    buffered: u32,
    /// Depth to reach before playout starts, in packets.
    target: u32,
    /// RFC 3550 interarrival jitter, in RTP clock units ×16.
    jitter16: u32,
    /// The RTP clock, kHz (8, or 48 for Opus).
    clock_khz: u32,
    last_transit: Option<i64>,
    /// Consecutive ticks found empty.
    empty_ticks: u32,
    /// Consecutive packets played with the buffer deeper than it should be.
    deep_ticks: u32,
    /// Bytes of the last packet played, to size a gap.
    last_len: u16,
    /// Highest sequence seen (extended) and the first, for RTCP.
    base_seq: Option<u32>,
    max_seq: u32,
    received: u32,
}

pub(super) enum Played {
    Packet,
    Lost(u16),
    Nothing,
}

impl JitterBuffer {
    pub(super) fn new(clock_khz: u32) -> Self {
        JitterBuffer {
            slots: Box::new(
                [Slot {
                    seq: 0,
                    len: 0,
                    full: false,
                    data: [0; SLOT_BYTES],
                }; SLOTS],
            ),
            next: None,
            buffered: 0,
            target: 2,
            jitter16: 0,
            clock_khz,
            last_transit: None,
            empty_ticks: 0,
            deep_ticks: 0,
            last_len: PHONE_FRAME as u16,
            base_seq: None,
            max_seq: 0,
            received: 0,
        }
    }

    /// Stores a packet (`arrival` in RTP clock units); false when it is late or
    /// cannot be kept.
    pub(super) fn push(&mut self, seq: u16, ts: u32, arrival: i64, payload: &[u8]) -> bool {
        // RFC 3550 A.8 jitter, to size the buffer.
        let transit = arrival - ts as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last)
                .unsigned_abs()
                .min(10_000 * self.clock_khz as u64) as u32;
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
        self.note_seq(seq);
        if payload.len() > SLOT_BYTES || payload.is_empty() {
            return false;
        }
        if let Some(next) = self.next {
            let ahead = seq.wrapping_sub(next) as i16;
            if ahead < 0 {
                return false;
            }
            if ahead as usize >= SLOTS {
                // The peer jumped (a new stream after a re-INVITE, or a long gap): start over.
                self.reset_playout();
            }
        }
        let slot = &mut self.slots[seq as usize % SLOTS];
        if slot.full && slot.seq == seq {
            return false;
        }
        if !slot.full {
            self.buffered += 1;
        }
        slot.seq = seq;
        slot.len = payload.len() as u16;
        slot.full = true;
        slot.data[..payload.len()].copy_from_slice(payload);
        true
    }

    pub(super) fn note_seq(&mut self, seq: u16) {
        self.received = self.received.wrapping_add(1);
        match self.base_seq {
            None => {
                self.base_seq = Some(seq as u32);
                self.max_seq = seq as u32;
            }
            Some(_) => {
                let ext = self.max_seq;
                let delta = seq.wrapping_sub(ext as u16) as i16;
                if delta > 0 {
                    self.max_seq = ext.wrapping_add(delta as u32);
                }
            }
        }
    }

    pub(super) fn reset_playout(&mut self) {
        for s in self.slots.iter_mut() {
            s.full = false;
        }
        self.buffered = 0;
        self.next = None;
    }

    /// Jitter in ms (RFC 3550 estimate).
    pub(super) fn jitter_ms(&self) -> u32 {
        (self.jitter16 >> 4) / self.clock_khz
    }

    /// Takes the packet due now, if any, into `out`.
    pub(super) fn pop(&mut self, out: &mut [u8; SLOT_BYTES]) -> (Played, usize) {
        let next = match self.next {
            Some(n) => n,
            None => {
                // Prime: wait for the target depth, then start from the oldest packet.
                self.target = (self.jitter_ms() * 2)
                    .div_ceil(20)
                    .clamp(MIN_DEPTH, MAX_DEPTH);
                if self.buffered < self.target {
                    return (Played::Nothing, 0);
                }
                let Some(reference) = self.slots.iter().find(|s| s.full).map(|s| s.seq) else {
                    return (Played::Nothing, 0);
                };
                let oldest = self
                    .slots
                    .iter()
                    .filter(|s| s.full)
                    .map(|s| s.seq)
                    .min_by_key(|&s| s.wrapping_sub(reference) as i16);
                let Some(o) = oldest else {
                    return (Played::Nothing, 0);
                };
                self.next = Some(o);
                o
            }
        };
        let slot = &mut self.slots[next as usize % SLOTS];
        if slot.full && slot.seq == next {
            slot.full = false;
            self.buffered -= 1;
            let len = slot.len as usize;
            out[..len].copy_from_slice(&slot.data[..len]);
            self.last_len = slot.len;
            self.empty_ticks = 0;
            self.next = Some(next.wrapping_add(1));
            // Too deep for a second on end (the network calmed down, or the peer's
            // clock runs fast): skip one to cut the delay.
            if self.buffered > self.target + 2 {
                self.deep_ticks += 1;
            } else {
                self.deep_ticks = 0;
            }
            if self.deep_ticks >= DEEP_TICKS {
                self.deep_ticks = 0;
                let skip = self.next.unwrap_or(0);
                let s = &mut self.slots[skip as usize % SLOTS];
                if s.full && s.seq == skip {
                    s.full = false;
                    self.buffered -= 1;
                }
                self.next = Some(skip.wrapping_add(1));
            }
            return (Played::Packet, len);
        }
        if self.buffered == 0 {
            self.empty_ticks += 1;
            if self.empty_ticks >= 3 {
                // The peer stopped (hold, silence suppression): prime again when it resumes.
                self.next = None;
                return (Played::Nothing, 0);
            }
        }
        self.next = Some(next.wrapping_add(1));
        (Played::Lost(self.last_len), 0)
    }

    /// (fraction lost ×256, cumulative lost, extended highest seq, jitter in clock units).
    pub(super) fn report(&self) -> Option<(u8, u32, u32, u32)> {
        let base = self.base_seq?;
        let expected = self.max_seq.wrapping_sub(base).wrapping_add(1);
        let lost = expected.saturating_sub(self.received);
        let fraction = if expected == 0 {
            0
        } else {
            ((lost as u64 * 256) / expected as u64).min(255) as u8
        };
        Some((fraction, lost, self.max_seq, self.jitter16 >> 4))
    }
}
