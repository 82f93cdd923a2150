//! The requests that come with the peer's own SDP offer, answered at once: `watch`
//! with an offer (a WHEP player) and `publish` (a WHIP publisher into a `webrtc`
//! mountpoint).

use super::*;

/// Source packets from a publisher waiting for the forwarder.
const PUBLISHER_QUEUE: usize = 512;

impl Streaming {
    /// `publish` (Cardea's, what WHIP does): the handle's offer sends a `webrtc`
    /// mountpoint's media; answered at once. Needs the mountpoint's secret (or the admin
    /// key; with `open_admin`, nothing for a mountpoint without a secret). One publisher
    /// at a time; when it leaves, viewers stay and the next one resumes them.
    pub(super) fn publish(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        msg: &PluginMessage,
    ) -> Result<(Value, Option<Value>), StreamingError> {
        use super::publisher::{keyframe_reader, PublishedTrack, PublisherMedia};
        let Some(offer) = msg.jsep.as_ref().filter(|j| j.kind == JsepKind::Offer) else {
            return Err(StreamingError::MissingElement(
                "Missing mandatory element (an SDP offer)".into(),
            ));
        };
        let v = self.viewer(handle)?;
        if v.state != ViewerState::Idle || v.publishing.is_some() {
            return Err(StreamingError::InvalidState(
                "Already watching or publishing".into(),
            ));
        }
        let id = mountpoint_id(&msg.body)?;
        let mp = self.authorized(Caller::Client, id, &msg.body)?;
        if mp.kind != "webrtc" {
            return Err(StreamingError::InvalidRequest(
                "Only a mountpoint of type webrtc takes a publisher".into(),
            ));
        }
        if mp.publisher.is_some() {
            return Err(StreamingError::InvalidState(
                "The mountpoint has a publisher already".into(),
            ));
        }
        let tracks: Vec<_> = mp.media.iter().map(|m| m.offer_track(id)).collect();
        let readers: Vec<_> = mp
            .media
            .iter()
            .map(|m| keyframe_reader(m.codec.codec))
            .collect();
        let (source, counters) = (mp.source, mp.counters.clone());
        let (packets, forwarded) = tokio::sync::mpsc::channel(PUBLISHER_QUEUE);
        let (requests, keyframe_requests) = tokio::sync::mpsc::channel(16);
        let build = |placed: &[Option<(Mid, u8)>]| -> Box<dyn MediaHandler> {
            Box::new(PublisherMedia {
                source,
                tracks: placed
                    .iter()
                    .zip(&readers)
                    .map(|(p, keyframes)| {
                        p.map(|(mid, pt)| PublishedTrack {
                            mid,
                            pt,
                            keyframes: *keyframes,
                        })
                    })
                    .collect(),
                packets,
                keyframe_requests,
                counters,
                last_ask: None,
            })
        };
        let (jsep, _) = ctx
            .accept_offer_for_tracks(
                handle,
                offer,
                &tracks,
                crate::media::webrtc::TrackFlow::FromPeer,
                build,
                Vec::new(),
            )
            .map_err(|e| StreamingError::InvalidSdp(e.reason))?;
        ctx.start_webrtc_source(source, forwarded, requests);
        if let Some(mp) = self.mountpoints.get_mut(&id) {
            mp.publisher = Some(handle);
        }
        if let Some(v) = self.viewers.get_mut(&handle) {
            v.publishing = Some(id);
        }
        tracing::info!(mountpoint = %id, %handle, "publisher joined");
        Ok((event(json!({"status": "publishing"})), Some(jsep.to_json())))
    }

    /// `watch` with the viewer's own offer (Cardea's extension, what WHEP players do):
    /// answered at once, the viewer streaming as soon as its PeerConnection is up.
    /// Tracks the offer has no room for (kind or codec) are left out.
    pub(super) fn watch_offer(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        id: MountpointId,
        chosen: &[usize],
        tracks: &[crate::media::webrtc::OfferTrack],
        offer: &crate::api::Jsep,
    ) -> Result<(Value, Option<Value>), StreamingError> {
        let mp = self.mountpoint(id)?;
        let (source, enabled, count) = (mp.source, mp.enabled, mp.media.len());
        let video: Vec<bool> = mp
            .media
            .iter()
            .map(|m| m.codec.kind == str0m::media::MediaKind::Video)
            .collect();
        let shared = self.viewer(handle)?.shared.clone();
        let build = |placed: &[Option<(Mid, u8)>]| -> Box<dyn MediaHandler> {
            let mut by_track: Vec<Option<ViewerTrack>> = (0..count).map(|_| None).collect();
            for (i, p) in chosen.iter().zip(placed) {
                by_track[*i] = p.map(|(mid, pt)| ViewerTrack::new(mid, pt, video[*i]));
            }
            Box::new(ViewerMedia::new(by_track, shared.clone()))
        };
        let (jsep, placed) = ctx
            .accept_offer_for_tracks(
                handle,
                offer,
                tracks,
                crate::media::webrtc::TrackFlow::ToPeer,
                build,
                vec![source],
            )
            .map_err(|e| StreamingError::InvalidSdp(e.reason))?;
        let mut mids = vec![None; count];
        let mut pts = vec![0; count];
        for (i, p) in chosen.iter().zip(&placed) {
            if let Some((mid, pt)) = p {
                mids[*i] = Some(*mid);
                pts[*i] = *pt;
            }
        }
        let v = self.viewers.get_mut(&handle).expect("checked above");
        v.shared.disabled.store(!enabled, Ordering::Relaxed);
        self.seat(handle, id, mids, pts, ViewerState::Streaming);
        Ok((event(json!({"status": "starting"})), Some(jsep.to_json())))
    }
}
