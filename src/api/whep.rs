//! WHEP viewers (WebRTC-HTTP Egress Protocol) as the API core sees them: each is an
//! internal session with a streaming handle that `watch`ed the mountpoint with the
//! player's offer, so a WHEP viewer counts in `info.viewers`, gets the GOP cache's fast
//! start and the same fan-out, and is kicked by `kick_all`/`destroy` like any viewer.
//! The HTTP side (paths, headers, CORS) is `transport::whep`.
//!
//! Credentials: a request carries at most one, the `Authorization: Bearer` value. It
//! is tried as the API's (`api_secret`, or a stored token), which the API needs when
//! it has any; and as the mountpoint's `secret` or `pin`, which a pinned mountpoint
//! needs, and a private one needs unless the API's credential was given.

use std::net::IpAddr;
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::sdpfrag::{self, SdpFrag};
use super::{Gateway, HandleId, Origin, Owner, SessionId, Target};
use crate::ids::MountpointId;
use crate::plugin::ViewRefusal;

const STREAMING: &str = "janus.plugin.streaming";

/// Why a WHEP request is refused; the transport maps each to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhepError {
    /// No such mountpoint, or no such viewer resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The credential is missing or wrong (401 without one, 403 with a wrong one).
    #[error("{0}")]
    Unauthorized(String),
    /// An offer or SDP fragment that cannot be used (400).
    #[error("{0}")]
    BadRequest(String),
    /// Limits reached or the gateway not taking sessions (503).
    #[error("{0}")]
    Unavailable(String),
    /// The mountpoint has a publisher already (409).
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` names another `ETag` (412).
    #[error("{0}")]
    PreconditionFailed(String),
}

/// A viewer that was set up: its resource id and the SDP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhepViewer {
    /// Random, 128 bits in hex: the last part of the resource's URL.
    pub resource: String,
    /// The SDP answer.
    pub answer: String,
    /// The resource's `ETag` (our ICE ufrag: it changes with an ICE restart).
    pub etag: String,
}

/// What a `PATCH` started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhepPatch {
    /// Candidates trickled (or nothing to do): 204.
    Trickled,
    /// An ICE restart: its answer comes as an event of `session` (see
    /// [`Gateway::whep_restart_answer`]).
    Restarting(SessionId),
}

/// Which end of a mountpoint an HTTP-signalled peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// WHEP: it watches.
    Viewer,
    /// WHIP: it publishes (a `webrtc` mountpoint).
    Publisher,
}

impl Gateway {
    /// A WHEP `POST`: a viewer of `mountpoint` from the player's `offer`.
    pub fn whep_start(
        &mut self,
        now: Instant,
        client: Option<IpAddr>,
        mountpoint: &str,
        bearer: Option<&str>,
        offer: &str,
    ) -> Result<WhepViewer, WhepError> {
        self.http_peer_start(now, client, mountpoint, bearer, offer, Role::Viewer)
    }

    /// A WHIP `POST`: the publisher of `webrtc` mountpoint `mountpoint` from its
    /// `offer`. The bearer must be the mountpoint's secret or the streaming admin key
    /// (and the API's credential, when it has one). `PATCH`/`DELETE` of its resource are
    /// [`Self::whep_patch`]/[`Self::whep_stop`]: the same kind of resource.
    pub fn whip_start(
        &mut self,
        now: Instant,
        client: Option<IpAddr>,
        mountpoint: &str,
        bearer: Option<&str>,
        offer: &str,
    ) -> Result<WhepViewer, WhepError> {
        self.http_peer_start(now, client, mountpoint, bearer, offer, Role::Publisher)
    }

    fn http_peer_start(
        &mut self,
        now: Instant,
        client: Option<IpAddr>,
        mountpoint: &str,
        bearer: Option<&str>,
        offer: &str,
        role: Role,
    ) -> Result<WhepViewer, WhepError> {
        let credentials = credentials(bearer);
        let g = &self.core.config.general;
        let api_protected = !g.api_secret.is_empty() || g.token_auth;
        let api_ok = self.core.check_auth(&credentials).is_ok();
        // First, so a stranger learns nothing of which mountpoints exist.
        if !api_ok {
            return Err(WhepError::Unauthorized(
                "The API's credential (api_secret or a token) is needed".into(),
            ));
        }
        let id = mountpoint
            .parse::<u64>()
            .map(MountpointId)
            .map_err(|_| WhepError::NotFound("No such mountpoint".into()))?;
        let index = self
            .plugin_index(STREAMING)
            .map_err(|e| WhepError::NotFound(e.reason))?;
        {
            let plugin = &self.plugins[index];
            let privileged = api_protected && api_ok;
            crate::contain::contain(|| match role {
                Role::Viewer => plugin.watch_access(id, bearer, privileged),
                Role::Publisher => plugin.publish_access(id, bearer),
            })
            .unwrap_or_else(|panic| Err(ViewRefusal::NotFound(format!("internal error: {panic}"))))
            .map_err(|r| match r {
                ViewRefusal::NotFound(t) => WhepError::NotFound(t),
                ViewRefusal::Forbidden(t) => WhepError::Unauthorized(t),
                ViewRefusal::NotYet(t) => WhepError::Unavailable(t),
            })?;
        }

        let origin = client.map_or(Origin::HTTP, Origin::http_from);
        let mut create = credentials.clone();
        create.insert("janus".into(), json!("create"));
        create.insert("transaction".into(), json!("whep"));
        let r = self.request(now, origin, Target::default(), create);
        let sid = match r["data"]["id"].as_u64() {
            Some(s) if r["janus"] == "success" => SessionId(s),
            _ => return Err(WhepError::Unavailable(reason(&r))),
        };
        if let Some(s) = self.core.sessions.get_mut(&sid) {
            s.owner = Owner::Internal;
        }
        let bearer_value = bearer.map_or(Value::Null, |b| json!(b));
        let request = match role {
            Role::Viewer => json!({"request": "watch", "id": id.0, "pin": bearer_value,
                                   "secret": bearer_value}),
            Role::Publisher => json!({"request": "publish", "id": id.0, "secret": bearer_value,
                                      "admin_key": bearer_value}),
        };
        let started = self.offer_request(now, origin, sid, request, &credentials, offer);
        match started {
            Ok((hid, answer)) => {
                let resource = format!("{:032x}", rand::random::<u128>());
                let etag = ice_ufrag(&answer).unwrap_or_default();
                let viewer = super::WhepEntry {
                    session: sid,
                    handle: hid,
                    publisher: role == Role::Publisher,
                    bearer: bearer.map(str::to_owned),
                    offer: offer.to_owned(),
                    remote_ufrag: ice_ufrag(offer),
                    etag: etag.clone(),
                };
                self.core.whep.insert(resource.clone(), viewer);
                tracing::info!(session = %sid, handle = %hid, mountpoint = %id, ?role, "WHEP/WHIP peer started");
                Ok(WhepViewer {
                    resource,
                    answer,
                    etag,
                })
            }
            Err(e) => {
                self.destroy_session(now, sid);
                self.run_deferred(now);
                Err(e)
            }
        }
    }

    /// Attach and send `request` (`watch` or `publish`) with the offer in the internal
    /// session `sid`.
    fn offer_request(
        &mut self,
        now: Instant,
        origin: Origin,
        sid: SessionId,
        request: Value,
        credentials: &Map<String, Value>,
        offer: &str,
    ) -> Result<(HandleId, String), WhepError> {
        let session = Target {
            session: Some(sid),
            handle: None,
        };
        let mut attach = credentials.clone();
        attach.insert("janus".into(), json!("attach"));
        attach.insert("transaction".into(), json!("whep"));
        attach.insert("plugin".into(), json!(STREAMING));
        attach.insert("opaque_id".into(), json!("whep"));
        let r = self.request(now, origin, session, attach);
        let hid = match r["data"]["id"].as_u64() {
            Some(h) if r["janus"] == "success" => HandleId(h),
            _ => return Err(WhepError::Unavailable(reason(&r))),
        };
        let mut watch = credentials.clone();
        watch.insert("janus".into(), json!("message"));
        watch.insert("transaction".into(), json!("whep"));
        watch.insert("body".into(), request);
        watch.insert("jsep".into(), json!({"type": "offer", "sdp": offer}));
        let handle = Target {
            session: Some(sid),
            handle: Some(hid),
        };
        let r = self.request(now, origin, handle, watch);
        if r["janus"] == "error" {
            let code = r["error"]["code"].as_u64().unwrap_or(0);
            return Err(match code {
                // JSEP errors of the core (465: invalid SDP, 466: invalid JSEP).
                465 | 466 => WhepError::BadRequest(reason(&r)),
                _ => WhepError::Unavailable(reason(&r)),
            });
        }
        // The plugin's event (or refusal) was queued while the request ran.
        let queued: Vec<Value> = self
            .core
            .sessions
            .get_mut(&sid)
            .map(|s| s.queue.drain(..).collect())
            .unwrap_or_default();
        for ev in queued {
            if ev["sender"].as_u64() != Some(hid.0) {
                continue;
            }
            let data = &ev["plugindata"]["data"];
            if let Some(code) = data["error_code"].as_u64() {
                let text = data["error"].as_str().unwrap_or("refused").to_owned();
                return Err(match code {
                    455 => WhepError::NotFound(text),
                    457 => WhepError::Unauthorized(text),
                    452 | 453 | 454 | 461 => WhepError::BadRequest(text),
                    460 => WhepError::Conflict(text),
                    _ => WhepError::Unavailable(text),
                });
            }
            if let Some(sdp) = ev["jsep"]["sdp"].as_str() {
                return Ok((hid, sdp.to_owned()));
            }
        }
        Err(WhepError::Unavailable(
            "no answer from the streaming plugin".into(),
        ))
    }

    /// A WHEP `PATCH` with an SDP fragment: candidates are trickled; new ICE
    /// credentials restart ICE (answered later, see [`Self::whep_restart_answer`]).
    /// `if_match`: the request's `If-Match`, which must be the current `ETag` or `*`.
    pub fn whep_patch(
        &mut self,
        now: Instant,
        resource: &str,
        if_match: Option<&str>,
        frag: &SdpFrag,
    ) -> Result<WhepPatch, WhepError> {
        let w = self.whep_entry(resource)?;
        let (sid, hid, bearer) = (w.session, w.handle, w.bearer.clone());
        if let Some(tag) = if_match {
            let tag = tag.trim().trim_matches('"');
            if tag != "*" && tag != w.etag {
                return Err(WhepError::PreconditionFailed(
                    "If-Match is not the resource's ETag".into(),
                ));
            }
        }
        let restart = match (&frag.ufrag, &frag.pwd) {
            (Some(u), Some(p)) if Some(u) != w.remote_ufrag.as_ref() => {
                Some((u.clone(), p.clone()))
            }
            (Some(u), None) if Some(u) != w.remote_ufrag.as_ref() => {
                return Err(WhepError::BadRequest(
                    "An ICE restart needs a=ice-pwd with a=ice-ufrag".into(),
                ))
            }
            _ => None,
        };
        if let Some((ufrag, pwd)) = &restart {
            let offer = sdpfrag::restarted_offer(&w.offer, ufrag, pwd);
            let jsep = super::Jsep {
                kind: super::JsepKind::Offer,
                sdp: offer.clone(),
                trickle: true,
                restart: true,
            };
            // A restart's answer still on its way is replaced by this one's.
            if let Some(s) = self.core.sessions.get_mut(&sid) {
                s.queue.clear();
            }
            self.core
                .remote_offer(hid, &jsep)
                .map_err(|e| WhepError::Unavailable(e.reason))?;
            let w = self.core.whep.get_mut(resource).expect("found above");
            w.offer = offer;
            w.remote_ufrag = Some(ufrag.clone());
            tracing::info!(session = %sid, "WHEP viewer restarts ICE");
        }
        let mut list: Vec<Value> = frag
            .candidates
            .iter()
            .map(|(mid, c)| json!({"candidate": c, "sdpMid": mid}))
            .collect();
        if frag.end {
            list.push(json!({"completed": true}));
        }
        if !list.is_empty() {
            let mut body = Map::new();
            body.insert("janus".into(), json!("trickle"));
            body.insert("transaction".into(), json!("whep"));
            body.insert("candidates".into(), Value::Array(list));
            let r = self.internal_request(now, sid, hid, bearer, body);
            if !matches!(r["janus"].as_str(), Some("ack" | "success")) {
                return Err(WhepError::BadRequest(reason(&r)));
            }
        }
        Ok(match restart {
            Some(_) => WhepPatch::Restarting(sid),
            None => WhepPatch::Trickled,
        })
    }

    /// The answer to an ICE restart of `resource`, once the media engine made it:
    /// `None` while it is not there yet; the answer SDP (and the new `ETag`) or why
    /// it was refused.
    pub fn whep_restart_answer(
        &mut self,
        resource: &str,
    ) -> Option<Result<(String, String), WhepError>> {
        let (sid, hid) = {
            let w = self.core.whep.get(resource)?;
            (w.session, w.handle)
        };
        let queue = &mut self.core.sessions.get_mut(&sid)?.queue;
        let at = queue.iter().position(|ev| {
            ev["sender"].as_u64() == Some(hid.0)
                && (ev["jsep"]["type"] == "answer" || ev["plugindata"]["data"]["error"].is_string())
        })?;
        let ev = queue.remove(at)?;
        if let Some(sdp) = ev["jsep"]["sdp"].as_str() {
            let etag = ice_ufrag(sdp).unwrap_or_default();
            if let Some(w) = self.core.whep.get_mut(resource) {
                w.etag = etag.clone();
            }
            return Some(Ok((sdp.to_owned(), etag)));
        }
        let text = ev["plugindata"]["data"]["error"]
            .as_str()
            .unwrap_or("refused");
        Some(Err(WhepError::BadRequest(text.to_owned())))
    }

    /// A WHEP `DELETE`: the viewer leaves (its PeerConnection hung up, its session
    /// destroyed). False when there is no such resource.
    pub fn whep_stop(&mut self, now: Instant, resource: &str) -> bool {
        let Ok(sid) = self.whep_entry(resource).map(|w| w.session) else {
            return false;
        };
        tracing::info!(session = %sid, "WHEP/WHIP resource deleted");
        self.destroy_session(now, sid);
        self.run_deferred(now);
        true
    }

    /// WHEP viewers now (tests, metrics).
    pub fn whep_viewers(&self) -> usize {
        self.core.whep.values().filter(|w| !w.publisher).count()
    }

    /// WHIP publishers now (tests, metrics).
    pub fn whip_publishers(&self) -> usize {
        self.core.whep.values().filter(|w| w.publisher).count()
    }

    fn whep_entry(&self, resource: &str) -> Result<&super::WhepEntry, WhepError> {
        self.core
            .whep
            .get(resource)
            .ok_or_else(|| WhepError::NotFound("No such WHEP resource".into()))
    }

    /// A request on an internal session's handle with the credential given at `POST`
    /// (the resource id in the URL is what this request proved; a token removed since
    /// then refuses it, as it would a Janus client's).
    fn internal_request(
        &mut self,
        now: Instant,
        sid: SessionId,
        hid: HandleId,
        bearer: Option<String>,
        mut body: Map<String, Value>,
    ) -> Value {
        body.extend(credentials(bearer.as_deref()));
        let target = Target {
            session: Some(sid),
            handle: Some(hid),
        };
        self.request(now, Origin::HTTP, target, body)
    }

    fn request(
        &mut self,
        now: Instant,
        origin: Origin,
        target: Target,
        body: Map<String, Value>,
    ) -> Value {
        let bytes = Value::Object(body).to_string();
        self.handle_request(now, origin, Some(target), bytes.as_bytes())
    }
}

/// The bearer as the API and the streaming plugin take credentials.
fn credentials(bearer: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(b) = bearer {
        m.insert("apisecret".into(), json!(b));
        m.insert("token".into(), json!(b));
    }
    m
}

/// The first `a=ice-ufrag` of an SDP.
fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .map(|u| u.trim().to_owned())
}

/// The reason of an error reply.
fn reason(r: &Value) -> String {
    r["error"]["reason"]
        .as_str()
        .unwrap_or("refused by the gateway")
        .to_owned()
}
