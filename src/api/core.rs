//! The core's own state changes that plugins reach through `PluginCtx`: auth checks,
//! event delivery to a session's owner, PeerConnection setup from an offer, trickle,
//! and hangup.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};

use str0m::media::Mid;

use super::{
    code, no_handle, ApiError, Core, Deferred, HandleId, Jsep, JsepKind, Output, Owner, Pc, PeerId,
    PendingOffer, SessionId, SourceId,
};
use crate::media::webrtc::mids::MidMap;
use crate::media::webrtc::{MediaCommand, NewPeer, OfferTrack, PeerStats, MAX_REMOTE_CANDIDATES};
use crate::plugin::{MediaHandler, Plugin, PluginCtx};
use crate::secret;

/// Events an internal (WHEP) session keeps: nobody polls it.
const INTERNAL_QUEUE: usize = 8;

impl Core {
    pub(super) fn check_auth(&self, body: &Map<String, Value>) -> Result<(), ApiError> {
        let g = &self.config.general;
        let secret_set = !g.api_secret.is_empty();
        if !secret_set && !g.token_auth {
            return Ok(());
        }
        let secret_ok = secret_set
            && secret::given_eq(body.get("apisecret").and_then(Value::as_str), &g.api_secret);
        let token_ok = g.token_auth
            && body
                .get("token")
                .and_then(Value::as_str)
                .is_some_and(|t| self.token(t).is_some());
        if secret_ok || token_ok {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    }

    /// The plugins a stored token may use, found by comparing it with every token in
    /// constant time (a map lookup would tell how close a guess came).
    fn token(&self, given: &str) -> Option<&std::collections::BTreeSet<String>> {
        let mut found = None;
        for (t, plugins) in &self.tokens {
            if secret::eq(given, t) {
                found = Some(plugins);
            }
        }
        found
    }

    /// With token auth, a token limited to some plugins may attach only to those (405).
    pub(super) fn check_token_plugin(
        &self,
        body: &Map<String, Value>,
        plugin: &str,
    ) -> Result<(), ApiError> {
        if !self.config.general.token_auth {
            return Ok(());
        }
        let g = &self.config.general;
        if !g.api_secret.is_empty()
            && secret::given_eq(body.get("apisecret").and_then(Value::as_str), &g.api_secret)
        {
            return Ok(());
        }
        let allowed = body
            .get("token")
            .and_then(Value::as_str)
            .and_then(|t| self.token(t))
            .is_some_and(|plugins| plugins.contains(plugin));
        if allowed {
            Ok(())
        } else {
            Err(ApiError::new(
                code::UNAUTHORIZED_PLUGIN,
                format!("Provided token can't access plugin '{plugin}'"),
            ))
        }
    }

    /// Sends an event to whoever owns the session.
    pub(super) fn deliver(&mut self, sid: SessionId, msg: Value) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.owner == Owner::Internal {
            // Nobody polls; the WHEP layer reads the answer to its own request at once.
            if s.queue.len() >= INTERNAL_QUEUE {
                s.queue.pop_front();
            }
            s.queue.push_back(msg);
            self.outputs.push_back(Output::Wake(sid));
            return;
        }
        if matches!(s.owner, Owner::Http | Owner::Orphan(_))
            && s.queue.len() >= self.config.general.max_queued_events
        {
            // Nobody polls: the oldest event goes, not the gateway's memory.
            s.queue.pop_front();
            self.dropped_events += 1;
            if self.dropped_events.is_power_of_two() {
                tracing::warn!(session = %sid, dropped = self.dropped_events, "event queue full: oldest events dropped");
            }
        }
        match s.owner {
            Owner::Websocket(conn) => self.outputs.push_back(Output::Deliver { conn, msg }),
            Owner::Http => {
                s.queue.push_back(msg);
                self.outputs.push_back(Output::Wake(sid));
            }
            Owner::Orphan(_) | Owner::Internal => s.queue.push_back(msg),
        }
    }

    pub(crate) fn push_plugin_event(
        &mut self,
        plugin: &str,
        hid: HandleId,
        transaction: Option<&str>,
        data: Value,
        jsep: Option<Value>,
    ) {
        let Some(h) = self.handles.get(&hid) else {
            return;
        };
        let sid = h.session;
        let mut msg = json!({"janus": "event", "session_id": sid.0, "sender": hid.0,
                             "plugindata": {"plugin": plugin, "data": data}});
        if let Some(t) = transaction {
            msg["transaction"] = Value::String(t.into());
        }
        if self.reports(super::events::PLUGIN) {
            let event = json!({"plugin": plugin, "data": data_for_events(&msg)});
            self.emit(super::events::PLUGIN, None, Some(sid), Some(hid), event);
        }
        if let Some(j) = jsep {
            self.emit_jsep(sid, hid, "local", &j);
            msg["jsep"] = j;
        }
        self.deliver(sid, msg);
    }

    /// The handle exists and has no PeerConnection yet (renegotiation comes later).
    fn ensure_no_pc(&self, hid: HandleId) -> Result<(), ApiError> {
        let h = self.handles.get(&hid).ok_or_else(|| no_handle(hid))?;
        if h.pc.is_some() {
            return Err(ApiError::new(
                code::WEBRTC_STATE,
                "Renegotiation of an existing PeerConnection is not supported yet",
            ));
        }
        Ok(())
    }

    pub(crate) fn accept_offer(
        &mut self,
        now: Instant,
        hid: HandleId,
        offer: &Jsep,
        media: Box<dyn MediaHandler>,
        voice: Option<crate::media::webrtc::VoiceLeg>,
        subscriptions: Vec<SourceId>,
    ) -> Result<Jsep, ApiError> {
        self.ensure_no_pc(hid)?;
        let shard = self.webrtc.place();
        let (rtc, answer) = self
            .webrtc
            .accept_offer(now, &offer.sdp, voice, &shard)
            .map_err(|e| ApiError::new(code::JSEP_INVALID_SDP, e.to_string()))?;
        self.start_peer(hid, rtc, media, subscriptions, shard)?;
        Ok(Jsep {
            kind: JsepKind::Answer,
            sdp: answer,
            trickle: false,
            restart: false,
        })
    }

    /// Gives the handle a PeerConnection made of `rtc` and hands it to the media engine
    /// (with the candidates trickled before it existed).
    fn start_peer(
        &mut self,
        hid: HandleId,
        rtc: str0m::Rtc,
        handler: Box<dyn MediaHandler>,
        subscriptions: Vec<SourceId>,
        shard: crate::media::webrtc::Placement,
    ) -> Result<(), ApiError> {
        let peer = PeerId(self.next_peer);
        self.next_peer += 1;
        let stats = Arc::new(PeerStats::default());
        let h = self.handles.get_mut(&hid).ok_or_else(|| no_handle(hid))?;
        h.pc = Some(Pc {
            peer,
            stats: stats.clone(),
            connected: false,
        });
        let remote_candidates = std::mem::take(&mut h.pending_candidates);
        self.outputs
            .push_back(Output::Media(MediaCommand::AddPeer(Box::new(NewPeer {
                id: peer,
                session: h.session,
                handle: hid,
                rtc,
                handler,
                stats,
                remote_candidates,
                subscriptions,
                mids: MidMap::default(),
                shard,
            }))));
        Ok(())
    }

    /// A PeerConnection from a peer's offer to receive `tracks` (see
    /// `WebrtcFactory::accept_offer_for_tracks`); `media` builds its handler from
    /// where each track went. Returns the answer and that placement.
    #[allow(clippy::too_many_arguments)] // the request's parts, one each, as the plugin gives them
    pub(crate) fn accept_offer_for_tracks(
        &mut self,
        now: Instant,
        hid: HandleId,
        offer: &Jsep,
        tracks: &[OfferTrack],
        flow: crate::media::webrtc::TrackFlow,
        media: impl FnOnce(&[Option<(Mid, u8)>]) -> Box<dyn MediaHandler>,
        subscriptions: Vec<SourceId>,
    ) -> Result<(Jsep, crate::media::webrtc::TrackPlacement), ApiError> {
        self.ensure_no_pc(hid)?;
        let shard = self.webrtc.place();
        let (rtc, answer, placed) = self
            .webrtc
            .accept_offer_for_tracks(now, &offer.sdp, tracks, flow, &shard)
            .map_err(|e| ApiError::new(code::JSEP_INVALID_SDP, e.to_string()))?;
        self.start_peer(hid, rtc, media(&placed), subscriptions, shard)?;
        let answer = Jsep {
            kind: JsepKind::Answer,
            sdp: answer,
            trickle: false,
            restart: false,
        };
        Ok((answer, placed))
    }

    pub(crate) fn create_offer(
        &mut self,
        now: Instant,
        hid: HandleId,
        tracks: &[OfferTrack],
    ) -> Result<(Jsep, Vec<Mid>), ApiError> {
        self.ensure_no_pc(hid)?;
        let shard = self.webrtc.place();
        let (rtc, offer, pending, mids, map) = self
            .webrtc
            .create_offer(now, tracks, &shard)
            .map_err(|e| ApiError::new(code::UNKNOWN, e.to_string()))?;
        let pending = PendingOffer {
            rtc,
            pending,
            mids: map,
            shard,
        };
        let jsep = self.hold_offer(hid, pending, offer)?;
        Ok((jsep, mids))
    }

    /// Like [`Self::create_offer`] for a call's browser leg: one sendrecv audio m-line.
    pub(crate) fn create_voice_offer(
        &mut self,
        now: Instant,
        hid: HandleId,
        leg: crate::media::webrtc::VoiceLeg,
    ) -> Result<(Jsep, Mid), ApiError> {
        self.ensure_no_pc(hid)?;
        let shard = self.webrtc.place();
        let (rtc, offer, pending, mid) = self
            .webrtc
            .create_voice_offer(now, leg, &shard)
            .map_err(|e| ApiError::new(code::UNKNOWN, e.to_string()))?;
        let pending = PendingOffer {
            rtc,
            pending,
            mids: MidMap::default(),
            shard,
        };
        let jsep = self.hold_offer(hid, pending, offer)?;
        Ok((jsep, mid))
    }

    /// Gives the handle a PeerConnection whose server-side offer waits for the
    /// peer's answer ([`Self::accept_answer`]); the offer as JSEP.
    fn hold_offer(
        &mut self,
        hid: HandleId,
        pending: PendingOffer,
        offer: String,
    ) -> Result<Jsep, ApiError> {
        let peer = PeerId(self.next_peer);
        self.next_peer += 1;
        let h = self.handles.get_mut(&hid).ok_or_else(|| no_handle(hid))?;
        h.pc = Some(Pc {
            peer,
            stats: Arc::new(PeerStats::default()),
            connected: false,
        });
        h.pending_offer = Some(pending);
        Ok(Jsep {
            kind: JsepKind::Offer,
            sdp: offer,
            trickle: false,
            restart: false,
        })
    }

    /// A source id for a source the plugin feeds itself (a call's audio).
    pub(crate) fn allocate_source(&mut self) -> SourceId {
        let id = SourceId(self.next_source);
        self.next_source += 1;
        id
    }

    pub(crate) fn accept_answer(
        &mut self,
        hid: HandleId,
        answer: &Jsep,
        media: Box<dyn MediaHandler>,
        subscriptions: Vec<SourceId>,
    ) -> Result<(), ApiError> {
        let Some(h) = self.handles.get_mut(&hid) else {
            return Err(no_handle(hid));
        };
        if answer.kind != JsepKind::Answer {
            return Err(ApiError::new(
                code::JSEP_UNKNOWN_TYPE,
                "Expected an SDP answer",
            ));
        }
        let (
            Some(PendingOffer {
                mut rtc,
                pending,
                mids,
                shard,
            }),
            Some(pc),
        ) = (h.pending_offer.take(), &h.pc)
        else {
            return Err(ApiError::new(
                code::UNEXPECTED_ANSWER,
                "Unexpected ANSWER (did we offer?)",
            ));
        };
        let sdp = str0m::change::SdpAnswer::from_sdp_string(&mids.from_wire(&answer.sdp)).map_err(
            |e| {
                let why = crate::media::webrtc::sdp_refusal(&e);
                ApiError::new(code::JSEP_INVALID_SDP, format!("JSEP error: {why}"))
            },
        )?;
        crate::media::webrtc::sdp_guard(|| rtc.sdp_api().accept_answer(pending, sdp))
            .map_err(|e| ApiError::new(code::JSEP_INVALID_SDP, format!("JSEP error: {e}")))?;
        let remote_candidates = std::mem::take(&mut h.pending_candidates);
        self.outputs
            .push_back(Output::Media(MediaCommand::AddPeer(Box::new(NewPeer {
                id: pc.peer,
                session: h.session,
                handle: hid,
                rtc,
                handler: media,
                stats: pc.stats.clone(),
                remote_candidates,
                subscriptions,
                mids,
                shard,
            }))));
        Ok(())
    }

    /// A new source's id (the plugin then asks the ingest side to start it).
    pub(crate) fn new_source_id(&mut self) -> SourceId {
        let id = SourceId(self.next_source);
        self.next_source += 1;
        id
    }

    /// Passes a plugin's request on to the ingest side, in order with the other outputs.
    pub(crate) fn ingest(&mut self, request: crate::plugin::IngestRequest) {
        self.outputs.push_back(Output::Ingest(request));
    }

    /// Restarts ICE on the handle's PeerConnection; false when it has none. The offer
    /// comes back through the plugin's `restart_offer`.
    pub(crate) fn ice_restart(&mut self, hid: HandleId) -> bool {
        let Some(pc) = self.handles.get(&hid).and_then(|h| h.pc.as_ref()) else {
            return false;
        };
        self.outputs
            .push_back(Output::Media(MediaCommand::IceRestart { peer: pc.peer }));
        true
    }

    /// The peer's answer to an ICE restart offer.
    pub(crate) fn restart_answer(&mut self, hid: HandleId, answer: &Jsep) -> Result<(), ApiError> {
        if answer.kind != JsepKind::Answer {
            return Err(ApiError::new(
                code::JSEP_UNKNOWN_TYPE,
                "Expected an SDP answer",
            ));
        }
        let Some(pc) = self.handles.get(&hid).and_then(|h| h.pc.as_ref()) else {
            return Err(no_handle(hid));
        };
        self.outputs
            .push_back(Output::Media(MediaCommand::RestartAnswer {
                peer: pc.peer,
                sdp: answer.sdp.clone(),
            }));
        Ok(())
    }

    /// A new offer from the peer on the handle's PeerConnection (renegotiation); the
    /// answer comes back through the plugin's `renegotiated`.
    pub(crate) fn remote_offer(&mut self, hid: HandleId, offer: &Jsep) -> Result<(), ApiError> {
        if offer.kind != JsepKind::Offer {
            return Err(ApiError::new(
                code::JSEP_UNKNOWN_TYPE,
                "Expected an SDP offer",
            ));
        }
        let h = self.handles.get(&hid).ok_or_else(|| no_handle(hid))?;
        let Some(pc) = &h.pc else {
            return Err(ApiError::new(
                code::WEBRTC_STATE,
                "No PeerConnection to renegotiate",
            ));
        };
        if h.pending_offer.is_some() {
            return Err(ApiError::new(
                code::WEBRTC_STATE,
                "An offer of ours still waits for its answer",
            ));
        }
        self.outputs
            .push_back(Output::Media(MediaCommand::RemoteOffer {
                peer: pc.peer,
                sdp: offer.sdp.clone(),
            }));
        Ok(())
    }

    /// Points the handle's PeerConnection at other sources; false when it has none.
    pub(crate) fn resubscribe(&mut self, hid: HandleId, subscriptions: Vec<SourceId>) -> bool {
        let Some(pc) = self.handles.get(&hid).and_then(|h| h.pc.as_ref()) else {
            return false;
        };
        self.outputs
            .push_back(Output::Media(MediaCommand::Resubscribe {
                peer: pc.peer,
                subscriptions,
            }));
        true
    }

    pub(crate) fn stop_source(&mut self, id: SourceId) {
        self.outputs.push_back(Output::StopSource(id));
    }

    pub(super) fn trickle_one(&mut self, hid: HandleId, c: &Value) -> Result<(), ApiError> {
        let Some(h) = self.handles.get_mut(&hid) else {
            return Err(no_handle(hid));
        };
        let obj = match c {
            Value::Null => {
                h.trickle_completed = true;
                return Ok(());
            }
            Value::Object(o) => o,
            _ => return Err(ApiError::bad_type("candidate", "an object")),
        };
        if obj.get("completed").and_then(Value::as_bool) == Some(true) {
            h.trickle_completed = true;
            return Ok(());
        }
        let line = match obj.get("candidate") {
            None => return Err(ApiError::missing("candidate")),
            Some(Value::String(s)) => s,
            Some(_) => return Err(ApiError::bad_type("candidate", "a string")),
        };
        if line.is_empty() {
            h.trickle_completed = true;
            return Ok(());
        }
        if h.trickled >= MAX_REMOTE_CANDIDATES {
            return Err(ApiError::new(
                code::UNKNOWN,
                format!(
                    "Too many candidates for this PeerConnection (limit {MAX_REMOTE_CANDIDATES})"
                ),
            ));
        }
        h.trickled += 1;
        let line = line.strip_prefix("a=").unwrap_or(line);
        let candidate = match str0m::Candidate::from_sdp_string(line) {
            Ok(c) if plausible(c.addr()) => c,
            Ok(c) => {
                tracing::debug!(handle = %hid, addr = %c.addr(), "ignoring a candidate no peer can have");
                return Ok(());
            }
            Err(e) => {
                // Janus acks candidates it cannot use (mDNS names, TCP) and carries on.
                tracing::debug!(handle = %hid, error = %e, "ignoring unusable candidate");
                return Ok(());
            }
        };
        match &h.pc {
            Some(pc) => self
                .outputs
                .push_back(Output::Media(MediaCommand::RemoteCandidate {
                    peer: pc.peer,
                    candidate,
                })),
            None => h.pending_candidates.push(candidate),
        }
        Ok(())
    }

    pub(crate) fn defer_close_pc(&mut self, hid: HandleId, reason: &'static str) {
        self.deferred.push(Deferred::ClosePc(hid, reason));
    }

    pub(crate) fn defer_detach(&mut self, hid: HandleId) {
        self.deferred.push(Deferred::Detach(hid));
    }

    pub(super) fn hangup(
        &mut self,
        now: Instant,
        plugins: &mut [Box<dyn Plugin>],
        hid: HandleId,
        reason: &str,
    ) {
        self.hangup_with(now, plugins, hid, reason, true)
    }

    /// Ends the handle's PeerConnection: `hangup` event if there was one, then the
    /// plugin's `hangup_media` (always, as Janus does for a hangup request).
    pub(super) fn hangup_with(
        &mut self,
        now: Instant,
        plugins: &mut [Box<dyn Plugin>],
        hid: HandleId,
        reason: &str,
        tell_engine: bool,
    ) {
        let Some(h) = self.handles.get_mut(&hid) else {
            return;
        };
        let (sid, index) = (h.session, h.plugin);
        h.pending_candidates.clear();
        h.trickled = 0;
        h.pending_offer = None;
        h.trickle_completed = false;
        if let Some(pc) = h.pc.take() {
            if self
                .sessions
                .get(&sid)
                .is_some_and(|s| s.owner == Owner::Internal)
            {
                self.deferred.push(Deferred::EndSession(sid));
            }
            if tell_engine {
                self.outputs
                    .push_back(Output::Media(MediaCommand::ClosePeer {
                        peer: pc.peer,
                        reason: reason.into(),
                    }));
            }
            self.deliver(
                sid,
                json!({"janus": "hangup", "session_id": sid.0, "sender": hid.0, "reason": reason}),
            );
            self.emit(
                super::events::WEBRTC,
                Some(6),
                Some(sid),
                Some(hid),
                json!({"connection": "hangup", "reason": reason}),
            );
        }
        let package = plugins[index].info().package;
        let mut ctx = PluginCtx {
            core: self,
            plugin: package,
            now,
        };
        plugins[index].hangup_media(&mut ctx, hid);
    }
}

/// Whether a peer could really send from `addr`: STUN checks go to every remote
/// candidate, so an unspecified, multicast or broadcast address, or port 0, would turn
/// the gateway's ICE agent into a packet cannon for whoever trickles it.
fn plausible(addr: std::net::SocketAddr) -> bool {
    let ip = addr.ip();
    let special = match ip {
        std::net::IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified(),
        std::net::IpAddr::V6(v6) => v6.is_multicast() || v6.is_unspecified(),
    };
    addr.port() != 0 && !special
}

/// A plugin event's data as event handlers get it (the client's copy, minus nothing:
/// plugins put no credentials in their events; JSEPs go as their own events).
fn data_for_events(msg: &Value) -> Value {
    msg["plugindata"]["data"].clone()
}
