//! Tracks a peer receives from a source: the codecs configured for them, and the
//! answer to a peer that offers first (a WHEP player), placing each track on one of its
//! m-lines.

use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::{Rtc, RtcConfig};

use super::{sdp_guard, MediaError, Placement, WebrtcFactory};

/// A track a viewer receives from a source (the gateway's offer, or its answer to the
/// viewer's).
#[derive(Debug, Clone)]
pub struct OfferTrack {
    /// Audio or video.
    pub kind: str0m::media::MediaKind,
    /// The codec, as the source sends it.
    pub codec: str0m::format::Codec,
    /// The payload type, as the source sends it (kept end to end).
    pub pt: u8,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Audio channels.
    pub channels: Option<u8>,
    /// Codec parameters (H.264 profile and packetization mode, Opus FEC...).
    pub format: str0m::format::FormatParams,
    /// Stream id for a=msid.
    pub msid: String,
    /// The mid the peer sees for this m-line (a mountpoint's configured mid); `None`
    /// leaves str0m's own.
    pub mid: Option<String>,
}

/// Which way a peer's tracks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackFlow {
    /// A viewer: we send the source's tracks to the peer.
    ToPeer,
    /// A publisher: the peer sends them to us (WHIP).
    FromPeer,
}

/// Where each track offered to a peer went in its PeerConnection: its mid and payload
/// type, or `None` when the peer's offer had no room for it.
pub type TrackPlacement = Vec<Option<(str0m::media::Mid, u8)>>;

/// Configures each of `tracks`' codecs with its payload type. Tracks of one codec share
/// one payload type (see the streaming plugin's `watch`): it is configured once. Video
/// gets an RTX payload type too (RFC 4588), so a peer that agrees has lost packets sent
/// again on a stream of their own.
pub(super) fn add_track_codecs(
    config: &mut RtcConfig,
    tracks: &[OfferTrack],
) -> Result<(), MediaError> {
    let mut rtx_taken: Vec<u8> = Vec::new();
    for (i, t) in tracks.iter().enumerate() {
        if tracks[..i].iter().any(|o| o.pt == t.pt) {
            continue;
        }
        let rtx = (t.kind == str0m::media::MediaKind::Video)
            .then(|| rtx_payload_type(t.pt, tracks, &rtx_taken))
            .flatten();
        rtx_taken.extend(rtx);
        config.codec_config().add_config(
            t.pt.into(),
            rtx.map(Into::into),
            t.codec,
            str0m::media::Frequency::new(t.clock_rate)
                .ok_or_else(|| MediaError::Offer(format!("bad clock rate {}", t.clock_rate)))?,
            t.channels,
            t.format,
        );
    }
    Ok(())
}

/// A dynamic payload type (96-127) for the RTX of `pt`: the next free one after it,
/// wrapping; `None` when the tracks and other RTX streams took them all.
fn rtx_payload_type(pt: u8, tracks: &[OfferTrack], taken: &[u8]) -> Option<u8> {
    let after = pt.clamp(95, 127) + 1;
    (after..=127)
        .chain(96..after)
        .find(|c| !taken.contains(c) && !tracks.iter().any(|t| t.pt == *c))
}

/// The kind and mid of each m-line of an SDP, in order (m-lines of other kinds, or
/// without a mid, are left out). At most 16: more is no player's offer.
pub(crate) fn offered_mlines(sdp: &str) -> Vec<(str0m::media::MediaKind, String)> {
    let mut out = Vec::new();
    let mut kind = None;
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            kind = match m.split(' ').next() {
                Some("audio") => Some(str0m::media::MediaKind::Audio),
                Some("video") => Some(str0m::media::MediaKind::Video),
                _ => None,
            };
        } else if let (Some(k), Some(mid)) = (kind, line.strip_prefix("a=mid:")) {
            if out.len() < 16 {
                out.push((k, mid.trim().to_owned()));
            }
            kind = None;
        }
    }
    out
}

impl WebrtcFactory {
    /// Answers a peer's offer to receive `tracks` (a WHEP player's, or any client that
    /// offers first): RTP mode, only the tracks' codecs. Each track goes to the first
    /// m-line of its kind, not yet taken, that receives and agreed on its codec; returns
    /// the instance, the answer, and per track its mid and payload type in this
    /// PeerConnection (`None`: no m-line could carry it). An offer that can carry none
    /// of them is refused.
    pub fn accept_offer_for_tracks(
        &self,
        now: Instant,
        offer: &str,
        tracks: &[OfferTrack],
        flow: TrackFlow,
        shard: &Placement,
    ) -> Result<(Rtc, String, TrackPlacement), MediaError> {
        let lines = offered_mlines(offer);
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| MediaError::Sdp(super::sdp_refusal(&e)))?;
        let mut config = self.config.clone().set_rtp_mode(true).clear_codecs();
        if flow == TrackFlow::ToPeer {
            config = config.set_extension_map(super::viewer_extensions(true));
        }
        add_track_codecs(&mut config, tracks)?;
        let mut rtc = config.build(now);
        self.add_candidates(&mut rtc, shard);
        let answer = sdp_guard(|| rtc.sdp_api().accept_offer(offer)).map_err(MediaError::Offer)?;
        let params = rtc.codec_config().params().to_vec();
        let mut taken = vec![false; lines.len()];
        let mut placed = vec![None; tracks.len()];
        for (t, slot) in tracks.iter().zip(&mut placed) {
            for (i, (kind, mid)) in lines.iter().enumerate() {
                if taken[i] || *kind != t.kind {
                    continue;
                }
                let mid = str0m::media::Mid::from(mid.as_str());
                let Some(media) = rtc.media(mid) else {
                    continue;
                };
                let fits = match flow {
                    TrackFlow::ToPeer => media.direction().is_sending(),
                    TrackFlow::FromPeer => media.direction().is_receiving(),
                };
                if !fits {
                    continue;
                }
                let agreed = media.remote_pts().iter().find_map(|pt| {
                    params.iter().find(|p| {
                        p.pt() == *pt
                            && p.spec().codec == t.codec
                            && p.spec().clock_rate.get() == t.clock_rate
                    })
                });
                if let Some(p) = agreed {
                    taken[i] = true;
                    *slot = Some((mid, *p.pt()));
                    break;
                }
            }
        }
        if placed.iter().all(Option::is_none) {
            return Err(MediaError::Offer(
                "the offer can receive none of the stream's media (kinds or codecs)".into(),
            ));
        }
        Ok((rtc, answer.to_sdp_string(), placed))
    }
}
