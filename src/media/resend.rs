//! What one viewer may have sent again: its NACKs are answered from the source's
//! history (`history`), and a viewer that NACKs in a loop (the same packet again and
//! again, or everything) gets counted refusals, not a loop. Sans-IO, no clock: the
//! bounds count packets.
//!
//! * Each packet sent to the viewer earns a credit; each packet looked up for it again
//!   costs [`COST`] (found or not): retransmissions stay under a third of what it was
//!   sent, however it asks, with a burst of [`BURST`] allowed.
//! * One packet is sent again at most [`MAX_PER_PACKET`] times (a browser asks again
//!   when a retransmission was lost too; three losses in a row at 5 % loss is 1 in 8,000).

/// Credits a lookup costs.
const COST: u32 = 3;
/// Lookups a viewer may save up credit for.
const BURST: u32 = 256;
/// Times one packet may be sent again to one viewer.
const MAX_PER_PACKET: u8 = 3;
/// Packets sent again whose count is remembered.
const RECENT: usize = 16;

/// Why a NACKed packet is not sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a mid this viewer is sent a source's track on.
    UnknownMid,
    /// Never sent to this viewer (skipped, lost upstream, not sent yet).
    NeverSent,
    /// Older than what the viewer may ask again for.
    TooOld,
    /// Sent again [`MAX_PER_PACKET`] times already.
    Repeated,
    /// The viewer asked for more than its share.
    OverBudget,
    /// No longer held by the source's history (nor its GOP cache): a miss.
    Evicted,
}

/// One viewer's allowance (see the module's doc).
#[derive(Debug, Clone)]
pub(crate) struct ResendBudget {
    credits: u32,
    /// (track and the low 24 bits of the sequence number, times sent again), the oldest
    /// overwritten first: 8 bytes each, for every viewer.
    recent: [(u32, u8); RECENT],
    next: u8,
}

impl Default for ResendBudget {
    fn default() -> Self {
        ResendBudget {
            credits: 0,
            recent: [(u32::MAX, 0); RECENT],
            next: 0,
        }
    }
}

impl ResendBudget {
    /// A packet was sent to the viewer.
    pub(crate) fn earn(&mut self) {
        if self.credits < BURST * COST {
            self.credits += 1;
        }
    }

    /// Whether the viewer may have `seq` of `track` looked up again; charges it if so.
    pub(crate) fn spend(&mut self, track: u8, seq: u64) -> Result<(), Refusal> {
        let key = (u32::from(track) << 24) | (seq as u32 & 0x00ff_ffff);
        let slot = self.recent.iter().position(|(k, _)| *k == key);
        if slot.is_some_and(|i| self.recent[i].1 >= MAX_PER_PACKET) {
            return Err(Refusal::Repeated);
        }
        if self.credits < COST {
            return Err(Refusal::OverBudget);
        }
        self.credits -= COST;
        match slot {
            Some(i) => self.recent[i].1 += 1,
            None => {
                self.recent[usize::from(self.next)] = (key, 1);
                self.next = (self.next + 1) % RECENT as u8;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn earned(packets: u32) -> ResendBudget {
        let mut b = ResendBudget::default();
        for _ in 0..packets {
            b.earn();
        }
        b
    }

    #[test]
    fn a_third_of_what_was_sent() {
        let mut b = earned(300);
        let granted = (0..1000u64).filter(|s| b.spend(0, *s).is_ok()).count();
        assert_eq!(granted, 100);
        assert_eq!(b.spend(0, 5000), Err(Refusal::OverBudget));
        for _ in 0..3 {
            b.earn();
        }
        assert_eq!(b.spend(0, 5000), Ok(()));
    }

    #[test]
    fn saved_credit_is_capped() {
        let mut b = earned(1_000_000);
        let granted = (0..10_000u64).filter(|s| b.spend(1, *s).is_ok()).count();
        assert_eq!(granted, BURST as usize);
    }

    #[test]
    fn one_packet_at_most_three_times_per_track() {
        let mut b = earned(1000);
        for _ in 0..3 {
            assert_eq!(b.spend(0, 42), Ok(()));
        }
        assert_eq!(b.spend(0, 42), Err(Refusal::Repeated));
        assert_eq!(b.spend(0, 42), Err(Refusal::Repeated), "and stays refused");
        assert_eq!(b.spend(1, 42), Ok(()), "another track's 42");
        assert_eq!(b.spend(0, 43), Ok(()));
        // Huge sequence numbers do not spill into the track.
        assert_eq!(b.spend(0, u64::MAX), Ok(()));
        assert_eq!(b.spend(255, u64::MAX), Ok(()));
    }
}
