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

/// The call's packets toward the SIP peer: plain RTP, or SRTP once both sides gave
/// keys (SDES, RFC 4568).
pub(super) struct ToPeer<'a> {
    pub(super) rtp: &'a UdpSocket,
    pub(super) rtcp: &'a UdpSocket,
    pub(super) srtp: Option<SrtpLeg>,
    /// Where refused SRTP packets are counted.
    pub(super) stats: &'a BridgeStats,
}

impl ToPeer<'_> {
    pub(super) fn send(&mut self, dest: Dest, packet: &[u8]) {
        let (socket, addr, rtcp) = match dest {
            Dest::Rtp(a) => (self.rtp, a, false),
            Dest::Rtcp(a) => (self.rtcp, a, true),
        };
        let packet = match self.srtp.as_mut() {
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
    pub(super) fn received(&mut self, rtcp: bool, buf: &mut [u8], n: usize) -> Option<usize> {
        let Some(leg) = self.srtp.as_mut() else {
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

    /// Keys from the peer's SDP (the answer to ours, its offer we answered, or a
    /// later offer): SRTP starts when both sides gave a key of the same suite, the
    /// peer's new key replaces its old one. Without a key from the peer the call stays
    /// plain unless we (or it) asked for RTP/SAVP; then our own key is dropped so
    /// later offers are plain too.
    pub(super) fn key(
        &mut self,
        ours: &mut LocalAudio,
        remote: &RemoteAudio,
    ) -> Result<(), String> {
        let Some(mine) = ours.crypto.as_mut() else {
            return match remote.secure {
                true => Err("the peer asks for SRTP that was not offered".into()),
                false => Ok(()),
            };
        };
        // The line with our tag; in a new offer from the peer, any of our suite
        // (the answer then carries its tag).
        let same_suite = |c: &&Crypto| c.key.suite == mine.key.suite;
        let theirs = (remote.crypto.iter().filter(same_suite))
            .find(|c| c.tag == mine.tag)
            .or_else(|| remote.crypto.iter().find(same_suite));
        match (theirs, self.srtp.as_mut()) {
            (Some(t), Some(leg)) => {
                mine.tag = t.tag;
                leg.set_inbound(&t.key).map_err(|e| e.to_string())
            }
            (Some(t), None) => {
                mine.tag = t.tag;
                self.srtp = Some(SrtpLeg::new(&mine.key, &t.key).map_err(|e| e.to_string())?);
                tracing::debug!(suite = t.key.suite.name(), "SIP media keyed (SDES-SRTP)");
                Ok(())
            }
            (None, Some(_)) => Err("the peer's SDP drops the SRTP keys".into()),
            (None, None) if ours.secure || remote.secure => {
                Err("SDES-SRTP required but the SDP has no matching a=crypto".into())
            }
            (None, None) => {
                ours.crypto = None;
                Ok(())
            }
        }
    }
}
