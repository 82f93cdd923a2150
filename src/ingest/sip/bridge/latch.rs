//! Where a call's media is accepted from and sent to: the SDP's address, or (with
//! `sip.symmetric_rtp_nat`, after the answer) one other address latched once.

use std::net::SocketAddr;

/// Packets from a new address needed, all one SSRC in sequence, before we latch to it.
const LATCH_AFTER: u8 = 3;

/// Where packets from the peer are accepted from and ours go to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Latch {
    /// From the SDP.
    pub(super) expected: SocketAddr,
    /// Where media actually comes from, once known; fixed afterwards.
    pub(super) latched: Option<SocketAddr>,
    /// A different address whose stream looks genuine so far: (addr, ssrc, last seq, count).
    pub(super) candidate: Option<(SocketAddr, u32, u16, u8)>,
    /// Whether another address may be latched (NAT latching on, call answered).
    pub(super) elsewhere: bool,
}

impl Latch {
    pub(super) fn new(expected: SocketAddr, elsewhere: bool) -> Self {
        Latch {
            expected,
            latched: None,
            candidate: None,
            elsewhere,
        }
    }

    pub(super) fn target(&self) -> SocketAddr {
        self.latched.unwrap_or(self.expected)
    }

    /// Whether a packet from `src` (already known to carry a negotiated payload type) is the peer's.
    pub(super) fn accept(&mut self, src: SocketAddr, ssrc: u32, seq: u16) -> bool {
        match self.latched {
            Some(l) => l == src,
            None if src == self.expected => {
                self.latched = Some(src);
                self.candidate = None;
                true
            }
            None if !self.elsewhere => false,
            None => {
                let next = match self.candidate {
                    Some((a, s, last, n))
                        if a == src && s == ssrc && seq == last.wrapping_add(1) =>
                    {
                        n + 1
                    }
                    _ => 1,
                };
                if next >= LATCH_AFTER {
                    tracing::info!(%src, expected = %self.expected, "SIP media latched to the address it comes from");
                    self.latched = Some(src);
                    self.candidate = None;
                    true
                } else {
                    self.candidate = Some((src, ssrc, seq, next));
                    false
                }
            }
        }
    }
}
