//! The port between the media engine and whoever drives a peer's media (the plugins):
//! [`MediaHandler`] is called by the engine for every frame, keyframe request and
//! source packet of one peer, and answers through [`MediaOut`], which touches only that
//! peer. It runs on the media task with no lock, and must not block.

use std::time::Instant;

use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaData, Mid, ResendRequest};
use str0m::Rtc;

use super::history::Retained;
use super::resend::Refusal;
use super::source::SourcePacket;

/// What became of one NACKed packet (counted per peer and in the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendOutcome {
    /// Sent again.
    Sent,
    /// No longer held: the source's history has moved past it.
    Missed,
    /// Not sent again, and why.
    Refused(Refusal),
}

/// The media half of one handle, called by the media driver. Must not block.
pub trait MediaHandler: Send {
    /// A frame arrived from the peer (Janus's `incoming_rtp`).
    fn incoming_media(&mut self, out: &mut MediaOut<'_>, data: &MediaData);
    /// An RTP packet arrived from the peer (RTP-mode peers only: a publisher's media,
    /// forwarded as it came).
    fn incoming_rtp(&mut self, _out: &mut MediaOut<'_>, _packet: &str0m::rtp::RtpPacket) {}
    /// The peer asked for a keyframe on media we send it (PLI or FIR).
    fn keyframe_request(&mut self, _out: &mut MediaOut<'_>, _req: &KeyframeRequest) {}
    /// A packet from a source this peer subscribes to (Janus's `relay_rtp` from a mountpoint).
    fn source_packet(&mut self, _out: &mut MediaOut<'_>, _packet: &SourcePacket) {}
    /// Called about every 100 ms while the PeerConnection is up, for periodic feedback such as REMB.
    fn tick(&mut self, _out: &mut MediaOut<'_>, _now: Instant) {}
    /// Whether this peer's NACKs come to [`Self::resend_request`] (a fan-out viewer,
    /// answered from its sources' packets) instead of str0m's resend cache (one copy of
    /// every packet per peer).
    fn answers_nacks(&self) -> bool {
        false
    }
    /// The peer asked (NACK) for a packet sent on `req.mid` again; `retained` is what its
    /// sources still hold. Only for handlers that [answer NACKs](Self::answers_nacks).
    fn resend_request(
        &mut self,
        _out: &mut MediaOut<'_>,
        _req: &ResendRequest,
        _retained: &Retained<'_>,
        _now: Instant,
    ) -> ResendOutcome {
        ResendOutcome::Refused(Refusal::UnknownMid)
    }
}

/// What a [`MediaHandler`] may do to its own PeerConnection.
pub struct MediaOut<'a> {
    pub(crate) rtc: &'a mut Rtc,
    /// Tracks of the subscribed sources that need a keyframe (see [`Self::request_source_keyframe`]).
    pub(crate) source_keyframes: &'a mut Vec<u8>,
}

impl MediaOut<'_> {
    /// Asks the sources this peer subscribes to for a keyframe on `track` (an RTCP PLI
    /// to RTP sources that have an RTCP port; other sources ignore it).
    pub fn request_source_keyframe(&mut self, track: u8) {
        if !self.source_keyframes.contains(&track) {
            self.source_keyframes.push(track);
        }
    }

    /// Sends a frame on `mid` with the codec matching `data` (Janus's `relay_rtp`).
    /// Returns false when `mid` cannot send it (no such mid, codec not negotiated).
    pub fn relay(&mut self, mid: Mid, data: &MediaData) -> bool {
        let Some(writer) = self.rtc.writer(mid) else {
            return false;
        };
        let Some(pt) = writer.match_params(data.params) else {
            return false;
        };
        writer
            .write(pt, data.network_time, data.time, &data.data[..])
            .is_ok()
    }

    /// Sends source packet `p` on `mid` (RTP-mode peers only) with payload type `pt`,
    /// sequence number `seq` and timestamp `ts`, its payload shared with every other
    /// viewer. str0m keeps no copy for NACKs: a fan-out viewer's are answered from its
    /// source's history ([`MediaHandler::resend_request`]) by sending the packet `again`
    /// with the same fields, which str0m sends as RTX (RFC 4588: its own SSRC and
    /// sequence numbers, the original's first in the payload) when the peer agreed to
    /// RTX, as the same packet otherwise. False when `mid` sends nothing.
    #[allow(clippy::too_many_arguments)] // the RTP header fields, one each
    pub fn write_rtp(
        &mut self,
        mid: Mid,
        pt: u8,
        seq: u64,
        ts: u32,
        p: &SourcePacket,
        again: bool,
    ) -> bool {
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        let rtp =
            str0m::rtp::RtpWrite::new(pt.into(), seq.into(), ts, p.arrival, p.payload.clone())
                .marker(p.header.marker);
        if again {
            tx.write_resend(rtp);
        } else {
            tx.write_rtp(rtp);
        }
        true
    }

    /// Sends one audio frame on `mid` with the negotiated payload type of `codec`;
    /// `rtp_time` counts at that codec's clock rate. False when `mid` cannot send it.
    pub fn write_audio(
        &mut self,
        mid: Mid,
        codec: str0m::format::Codec,
        wallclock: Instant,
        rtp_time: u64,
        payload: &std::sync::Arc<[u8]>,
    ) -> bool {
        let Some(writer) = self.rtc.writer(mid) else {
            return false;
        };
        let Some((pt, rate)) = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| (p.pt(), p.spec().clock_rate))
        else {
            return false;
        };
        writer
            .write(
                pt,
                wallclock,
                str0m::media::MediaTime::new(rtp_time, rate),
                payload.clone(),
            )
            .is_ok()
    }

    /// Asks the peer for a keyframe on media it sends us on `mid` (Janus's `send_pli`).
    pub fn request_keyframe(&mut self, mid: Mid, kind: KeyframeRequestKind) {
        if let Some(mut writer) = self.rtc.writer(mid) {
            // Fails only when `mid` receives nothing yet: then there is nothing to refresh.
            let _ = writer.request_keyframe(None, kind);
        }
    }

    /// [`Self::request_keyframe`] for RTP-mode peers (a publisher), whose str0m has no
    /// frame writer: an RTCP PLI on the stream received on `mid`.
    pub fn request_rtp_keyframe(&mut self, mid: Mid) -> bool {
        let mut api = self.rtc.direct_api();
        let Some(rx) = api.stream_rx_by_mid(mid, None) else {
            return false;
        };
        rx.request_keyframe(KeyframeRequestKind::Pli);
        true
    }

    /// Caps what the peer sends us on `mid` with a REMB (Janus's `send_remb`).
    pub fn send_remb(&mut self, mid: Mid, bits_per_second: u64) {
        if let Some(rx) = self.rtc.direct_api().stream_rx_by_mid(mid, None) {
            rx.request_remb(str0m::bwe::Bitrate::bps(bits_per_second));
        }
    }
}
