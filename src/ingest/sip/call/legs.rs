//! The two directions of a call's media: the bridge's audio to the browser's
//! PeerConnection, and RTP/RTCP (plain or SDES-SRTP) to the phone.

use super::*;

/// The call's audio toward the browser: a source the browser's PeerConnection reads.
pub(super) struct ToBrowser {
    pub(super) engine: MediaTx,
    pub(super) source: crate::ids::SourceId,
    pub(super) pt: u8,
    pub(super) seq: u16,
}

impl ToBrowser {
    pub(super) fn send(&mut self, payload: &[u8], ts: u32) {
        self.seq = self.seq.wrapping_add(1);
        let _ = self.engine.packet(SourcePacket {
            source: self.source,
            track: 0,
            header: RtpHeader {
                pt: self.pt,
                marker: false,
                seq: self.seq,
                timestamp: ts,
                ssrc: 0,
                payload_offset: 0,
                payload_end: payload.len(),
            },
            payload: Arc::from(payload),
            keyframe: None,
            arrival: now(),
        });
    }
}

/// The call's packets toward the SIP peer: plain RTP, or SRTP through the call's
/// leg once both sides gave keys (SDES, RFC 4568).
pub(super) struct ToPeer<'a> {
    pub(super) rtp: &'a UdpSocket,
    pub(super) rtcp: &'a UdpSocket,
    /// Where refused SRTP packets are counted.
    pub(super) stats: &'a BridgeStats,
}

impl ToPeer<'_> {
    pub(super) fn send(&mut self, srtp: Option<&mut SrtpLeg>, dest: Dest, packet: &[u8]) {
        let (socket, addr, rtcp) = match dest {
            Dest::Rtp(a) => (self.rtp, a, false),
            Dest::Rtcp(a) => (self.rtcp, a, true),
        };
        let packet = match srtp {
            Some(leg) => match leg.protect(rtcp, packet) {
                Some(p) => p,
                None => return,
            },
            None => packet,
        };
        if let Err(e) = socket.try_send_to(packet, addr) {
            tracing::trace!(error = %e, "SIP media send failed");
        }
    }

    /// What arrived in `buf[..n]`, unprotected in place on a keyed leg: its length,
    /// or None (counted) when it fails authentication or the replay check.
    pub(super) fn received(
        &mut self,
        srtp: Option<&mut SrtpLeg>,
        rtcp: bool,
        buf: &mut [u8],
        n: usize,
    ) -> Option<usize> {
        let Some(leg) = srtp else {
            return Some(n);
        };
        match leg.unprotect(rtcp, buf, n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.stats
                    .dropped_srtp
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                None
            }
        }
    }
}
