//! `janus.plugin.streaming`: mountpoints fed by sources, watched by WebRTC viewers.
//!
//! Requests as Janus's (../shared/janus-api.md §3). Synchronous: list, info, create,
//! destroy, enable, disable, kick_all. Asynchronous: watch (server offers), start
//! (with the answer, or to resume), pause, stop. Today's sources: plain RTP.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use str0m::media::Mid;

use super::{MediaHandler, Plugin, PluginCtx, PluginInfo, PluginMessage, PluginResult};
use crate::api::{ApiError, HandleId, JsepKind};
use crate::ingest::rtp::SourceCounters;

mod mountpoint;
mod viewer;

use mountpoint::{Mountpoint, Refusal};
use viewer::{Rewriter, ViewerMedia, ViewerShared, ViewerTrack};

/// The streaming plugin's error codes.
pub(crate) mod err {
    pub(crate) const INVALID_REQUEST: u16 = 452;
    pub(crate) const MISSING_ELEMENT: u16 = 453;
    pub(crate) const INVALID_ELEMENT: u16 = 454;
    pub(crate) const NO_SUCH_MOUNTPOINT: u16 = 455;
    pub(crate) const CANT_CREATE: u16 = 456;
    pub(crate) const UNAUTHORIZED: u16 = 457;
    pub(crate) const INVALID_STATE: u16 = 460;
    pub(crate) const INVALID_SDP: u16 = 461;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ViewerState {
    Idle,
    /// Offer sent, waiting for `start` with the answer.
    Offered,
    Streaming,
    Paused,
}

struct Viewer {
    mountpoint: Option<u64>,
    state: ViewerState,
    /// The mid of each of the mountpoint's tracks in this viewer's PeerConnection.
    mids: Vec<Option<Mid>>,
    shared: Arc<ViewerShared>,
}

/// The plugin.
pub struct Streaming {
    mountpoints: BTreeMap<u64, Mountpoint>,
    /// Declared in the configuration; created by `init`.
    configured: Vec<crate::config::MountpointConfig>,
    viewers: HashMap<HandleId, Viewer>,
    admin_key: Option<String>,
    bind_ip: IpAddr,
}

impl Streaming {
    /// `admin_key`: required on `create` when set; `bind_ip`: where RTP ports are bound.
    /// `configured`: mountpoints to create at start.
    pub fn new(
        admin_key: Option<String>,
        bind_ip: IpAddr,
        configured: Vec<crate::config::MountpointConfig>,
    ) -> Self {
        Streaming {
            mountpoints: BTreeMap::new(),
            configured,
            viewers: HashMap::new(),
            admin_key,
            bind_ip,
        }
    }
}

fn event(result: Value) -> Value {
    json!({"streaming": "event", "result": result})
}

fn error(code: u16, text: impl Into<String>) -> Value {
    json!({"streaming": "event", "error_code": code, "error": text.into()})
}

fn mountpoint_id(body: &Map<String, Value>) -> Result<u64, Refusal> {
    match body.get("id") {
        None => Err((
            err::MISSING_ELEMENT,
            "Missing mandatory element (id)".into(),
        )),
        Some(v) => v.as_u64().ok_or((
            err::INVALID_ELEMENT,
            "Invalid element (id should be a positive integer)".into(),
        )),
    }
}

fn optional_str(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Refusal> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err((
            err::INVALID_ELEMENT,
            format!("Invalid element ({key} should be a string)"),
        )),
    }
}

impl Streaming {
    fn mountpoint(&self, id: u64) -> Result<&Mountpoint, Refusal> {
        self.mountpoints.get(&id).ok_or((
            err::NO_SUCH_MOUNTPOINT,
            format!("No such mountpoint/stream {id}"),
        ))
    }

    /// Checks the mountpoint's secret when it has one.
    fn authorized(&self, id: u64, body: &Map<String, Value>) -> Result<&Mountpoint, Refusal> {
        let mp = self.mountpoint(id)?;
        if let Some(secret) = &mp.secret {
            if body.get("secret").and_then(Value::as_str) != Some(secret) {
                return Err((err::UNAUTHORIZED, "Unauthorized (wrong secret)".into()));
            }
        }
        Ok(mp)
    }

    fn sync_request(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        request: &str,
        body: &Map<String, Value>,
    ) -> Result<Value, Refusal> {
        match request {
            "list" => Ok(json!({"streaming": "list", "list": self
                .mountpoints
                .values()
                .filter(|m| !m.is_private)
                .map(Mountpoint::list_entry)
                .collect::<Vec<_>>()})),
            "info" => {
                let id = mountpoint_id(body)?;
                let mp = self.mountpoint(id)?;
                let with_secret = mp.secret.is_none()
                    || body.get("secret").and_then(Value::as_str) == mp.secret.as_deref();
                Ok(json!({"streaming": "info", "info": mp.info(with_secret)}))
            }
            "create" => self.create(ctx, body),
            "destroy" => {
                let id = mountpoint_id(body)?;
                self.authorized(id, body)?;
                let Some(mp) = self.mountpoints.remove(&id) else {
                    return Err((
                        err::NO_SUCH_MOUNTPOINT,
                        format!("No such mountpoint/stream {id}"),
                    ));
                };
                ctx.stop_source(mp.source);
                for h in &mp.viewers {
                    ctx.push_event(*h, None, event(json!({"status": "stopped"})), None);
                    ctx.close_pc(*h);
                    if let Some(v) = self.viewers.get_mut(h) {
                        v.mountpoint = None;
                        v.state = ViewerState::Idle;
                    }
                }
                tracing::info!(mountpoint = id, "mountpoint destroyed");
                Ok(json!({"streaming": "destroyed", "destroyed": id}))
            }
            "enable" | "disable" => {
                let id = mountpoint_id(body)?;
                let mp = self.authorized(id, body)?;
                mp.enabled.store(request == "enable", Ordering::Relaxed);
                Ok(json!({"streaming": "ok"}))
            }
            "kick_all" => {
                let id = mountpoint_id(body)?;
                self.authorized(id, body)?;
                let viewers: Vec<HandleId> = self.mountpoint(id)?.viewers.iter().copied().collect();
                for h in viewers {
                    ctx.push_event(h, None, event(json!({"status": "kicked_all"})), None);
                    ctx.close_pc(h);
                }
                Ok(json!({"streaming": "kicked_all"}))
            }
            _ => unreachable!("only called for synchronous requests"),
        }
    }

    fn create(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        body: &Map<String, Value>,
    ) -> Result<Value, Refusal> {
        if let Some(key) = &self.admin_key {
            match body.get("admin_key").and_then(Value::as_str) {
                None => {
                    return Err((
                        err::MISSING_ELEMENT,
                        "Missing mandatory element (admin_key)".into(),
                    ))
                }
                Some(k) if k != key => {
                    return Err((err::UNAUTHORIZED, "Unauthorized (wrong admin_key)".into()))
                }
                Some(_) => {}
            }
        }
        let kind = optional_str(body, "type")?.ok_or((
            err::MISSING_ELEMENT,
            "Missing mandatory element (type)".to_owned(),
        ))?;
        if !matches!(kind.as_str(), "rtp" | "rtsp" | "demo") {
            return Err((
                err::INVALID_ELEMENT,
                format!("Unsupported mountpoint type '{kind}' (rtp, rtsp or demo, for now)"),
            ));
        }
        let id = match body.get("id") {
            None | Some(Value::Null) => loop {
                let id = rand::random::<u32>() as u64;
                if id > 0 && !self.mountpoints.contains_key(&id) {
                    break id;
                }
            },
            Some(v) => {
                let id = v.as_u64().filter(|id| *id > 0).ok_or((
                    err::INVALID_ELEMENT,
                    "Invalid element (id should be a positive integer)".to_owned(),
                ))?;
                if self.mountpoints.contains_key(&id) {
                    return Err((
                        err::CANT_CREATE,
                        format!("A stream with the provided ID {id} already exists"),
                    ));
                }
                id
            }
        };
        let name = optional_str(body, "name")?.unwrap_or_else(|| id.to_string());
        let description = optional_str(body, "description")?.unwrap_or_else(|| name.clone());
        let counters = Arc::new(SourceCounters::default());
        let viewer_count = Arc::new(AtomicUsize::new(0));
        let mut rtsp = None;
        let (media, source) = if kind == "demo" {
            (
                Mountpoint::demo_media(),
                ctx.start_demo_source(viewer_count.clone()),
            )
        } else if kind == "rtsp" {
            let (media, spec) = Mountpoint::parse_rtsp(body)?;
            let status = Arc::new(crate::ingest::rtsp::RtspStatus::default());
            rtsp = Some(status.clone());
            (media, ctx.start_rtsp_source(spec, status))
        } else {
            let (media, ports) = Mountpoint::parse_media(body, self.bind_ip)?;
            (media, ctx.start_rtp_source(ports, counters.clone()))
        };
        let mp = Mountpoint {
            id,
            name: name.clone(),
            description,
            metadata: optional_str(body, "metadata")?,
            secret: optional_str(body, "secret")?,
            pin: optional_str(body, "pin")?,
            is_private: body
                .get("is_private")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            enabled: Arc::new(AtomicBool::new(true)),
            media,
            source,
            counters,
            viewers: Default::default(),
            viewer_count,
            rtsp,
        };
        tracing::info!(mountpoint = id, %name, %kind, ports = ?mp.media.iter().map(|m| m.port).collect::<Vec<_>>(), "mountpoint created");
        let reply = json!({"streaming": "created", "created": name, "permanent": false, "stream": mp.created()});
        self.mountpoints.insert(id, mp);
        Ok(reply)
    }

    /// The asynchronous requests; `Ok` is the event to push (with an optional JSEP).
    fn async_request(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        request: &str,
        msg: &PluginMessage,
    ) -> Result<(Value, Option<Value>), Refusal> {
        let body = &msg.body;
        let viewer = self.viewers.get(&handle).ok_or((
            err::INVALID_STATE,
            "No session associated with this handle".to_owned(),
        ))?;
        match request {
            "watch" => {
                if viewer.state != ViewerState::Idle {
                    return Err((err::INVALID_STATE, "Already watching a stream".into()));
                }
                let id = mountpoint_id(body)?;
                let mp = self.mountpoint(id)?;
                if let Some(pin) = &mp.pin {
                    if body.get("pin").and_then(Value::as_str) != Some(pin) {
                        return Err((err::UNAUTHORIZED, "Unauthorized (wrong pin)".into()));
                    }
                }
                let wanted: Option<Vec<&str>> = body
                    .get("media")
                    .and_then(Value::as_array)
                    .map(|l| l.iter().filter_map(Value::as_str).collect());
                let chosen: Vec<usize> = (0..mp.media.len())
                    .filter(|i| {
                        wanted
                            .as_ref()
                            .is_none_or(|w| w.contains(&mp.media[*i].mid.as_str()))
                    })
                    .collect();
                if chosen.is_empty() {
                    return Err((
                        err::INVALID_ELEMENT,
                        "None of the requested media exist".into(),
                    ));
                }
                let tracks: Vec<_> = chosen
                    .iter()
                    .map(|i| mp.media[*i].offer_track(id))
                    .collect();
                let (jsep, mids) = ctx
                    .create_offer(handle, &tracks)
                    .map_err(|e| (err::INVALID_STATE, e.reason))?;
                let mut by_track = vec![None; mp.media.len()];
                for (i, mid) in chosen.iter().zip(mids) {
                    by_track[*i] = Some(mid);
                }
                let v = self.viewers.get_mut(&handle).expect("checked above");
                v.mountpoint = Some(id);
                v.mids = by_track;
                v.state = ViewerState::Offered;
                self.mountpoints
                    .get_mut(&id)
                    .expect("checked above")
                    .add_viewer(handle);
                Ok((event(json!({"status": "preparing"})), Some(jsep.to_json())))
            }
            "start" => match (viewer.state, &msg.jsep) {
                (ViewerState::Offered, Some(jsep)) if jsep.kind == JsepKind::Answer => {
                    let id = viewer
                        .mountpoint
                        .expect("offered viewers have a mountpoint");
                    let mp = self.mountpoint(id)?;
                    let media = ViewerMedia {
                        tracks: viewer
                            .mids
                            .iter()
                            .zip(&mp.media)
                            .map(|(mid, m)| {
                                mid.map(|mid| ViewerTrack {
                                    mid,
                                    pt: m.pt,
                                    rewriter: Rewriter::default(),
                                    wait_keyframe: m.codec.kind == str0m::media::MediaKind::Video,
                                })
                            })
                            .collect(),
                        shared: viewer.shared.clone(),
                        enabled: mp.enabled.clone(),
                    };
                    let media: Box<dyn MediaHandler> = Box::new(media);
                    ctx.accept_answer(handle, jsep, media, vec![mp.source])
                        .map_err(|e| (err::INVALID_SDP, e.reason))?;
                    self.viewers.get_mut(&handle).expect("checked above").state =
                        ViewerState::Streaming;
                    Ok((event(json!({"status": "starting"})), None))
                }
                (ViewerState::Offered, _) => Err((
                    err::MISSING_ELEMENT,
                    "Missing mandatory element (answer)".into(),
                )),
                (ViewerState::Paused, _) => {
                    viewer.shared.paused.store(false, Ordering::Relaxed);
                    self.viewers.get_mut(&handle).expect("checked above").state =
                        ViewerState::Streaming;
                    Ok((event(json!({"status": "starting"})), None))
                }
                _ => Err((err::INVALID_STATE, "Not watching anything".into())),
            },
            "pause" => {
                if !matches!(viewer.state, ViewerState::Streaming | ViewerState::Paused) {
                    return Err((err::INVALID_STATE, "Not streaming".into()));
                }
                viewer.shared.paused.store(true, Ordering::Relaxed);
                self.viewers.get_mut(&handle).expect("checked above").state = ViewerState::Paused;
                Ok((event(json!({"status": "pausing"})), None))
            }
            "stop" => {
                if viewer.state == ViewerState::Idle {
                    return Ok((event(json!({"status": "idle"})), None));
                }
                ctx.close_pc(handle);
                Ok((event(json!({"status": "stopping"})), None))
            }
            _ => unreachable!("only called for asynchronous requests"),
        }
    }

    fn leave(&mut self, handle: HandleId) -> bool {
        let Some(v) = self.viewers.get_mut(&handle) else {
            return false;
        };
        let was = v.mountpoint.take();
        v.state = ViewerState::Idle;
        v.mids.clear();
        v.shared.paused.store(false, Ordering::Relaxed);
        if let Some(id) = was {
            if let Some(mp) = self.mountpoints.get_mut(&id) {
                mp.remove_viewer(handle);
            }
        }
        was.is_some()
    }
}

impl Plugin for Streaming {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            package: "janus.plugin.streaming",
            name: "JANUS Streaming plugin",
            description: "Relays RTP sources (and, next, RTSP cameras) to WebRTC viewers",
            version: 8,
            version_string: "0.0.8",
        }
    }

    fn init(&mut self, ctx: &mut PluginCtx<'_>) {
        for m in std::mem::take(&mut self.configured) {
            let body = match serde_json::to_value(&m) {
                Ok(Value::Object(b)) => b,
                _ => continue,
            };
            if let Err((code, text)) = self.create(ctx, &body) {
                tracing::error!(mountpoint = m.id, code, %text, "configured mountpoint not created");
            }
        }
    }

    fn create_session(
        &mut self,
        _ctx: &mut PluginCtx<'_>,
        handle: HandleId,
    ) -> Result<(), ApiError> {
        self.viewers.insert(
            handle,
            Viewer {
                mountpoint: None,
                state: ViewerState::Idle,
                mids: Vec::new(),
                shared: Arc::new(ViewerShared::default()),
            },
        );
        Ok(())
    }

    fn handle_message(&mut self, ctx: &mut PluginCtx<'_>, msg: PluginMessage) -> PluginResult {
        let request = match msg.body.get("request") {
            None => {
                return PluginResult::Ok(error(
                    err::MISSING_ELEMENT,
                    "Missing mandatory element (request)",
                ))
            }
            Some(Value::String(r)) => r.clone(),
            Some(_) => {
                return PluginResult::Ok(error(
                    err::INVALID_ELEMENT,
                    "Invalid element (request should be a string)",
                ))
            }
        };
        match request.as_str() {
            "list" | "info" | "create" | "destroy" | "enable" | "disable" | "kick_all" => {
                match self.sync_request(ctx, &request, &msg.body) {
                    Ok(v) => PluginResult::Ok(v),
                    Err((code, text)) => PluginResult::Ok(error(code, text)),
                }
            }
            "watch" | "start" | "pause" | "stop" => {
                let tx = Some(msg.transaction.as_str());
                match self.async_request(ctx, msg.handle, &request, &msg) {
                    Ok((data, jsep)) => ctx.push_event(msg.handle, tx, data, jsep),
                    Err((code, text)) => ctx.push_event(msg.handle, tx, error(code, text), None),
                }
                PluginResult::OkWait(None)
            }
            other => PluginResult::Ok(error(
                err::INVALID_REQUEST,
                format!("Unknown request '{other}'"),
            )),
        }
    }

    fn handle_admin_message(&mut self, ctx: &mut PluginCtx<'_>, body: &Value) -> Option<Value> {
        let body = body.as_object()?;
        let request = body.get("request").and_then(Value::as_str).unwrap_or("");
        Some(match request {
            "list" | "info" | "create" | "destroy" | "enable" | "disable" | "kick_all" => {
                match self.sync_request(ctx, request, body) {
                    Ok(v) => v,
                    Err((code, text)) => error(code, text),
                }
            }
            other => error(err::INVALID_REQUEST, format!("Unknown request '{other}'")),
        })
    }

    fn source_state(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        source: crate::api::SourceId,
        connected: bool,
    ) {
        let Some(mp) = self.mountpoints.values().find(|m| m.source == source) else {
            return;
        };
        if mp.rtsp.is_none() {
            return;
        }
        let name = if connected {
            "rtsp-reconnected"
        } else {
            "rtsp-disconnected"
        };
        tracing::info!(
            mountpoint = mp.id,
            event = name,
            viewers = mp.viewers.len(),
            "camera state"
        );
        for h in &mp.viewers {
            ctx.push_event(*h, None, json!({"event": name, "id": mp.id}), None);
        }
    }

    fn setup_media(&mut self, ctx: &mut PluginCtx<'_>, handle: HandleId) {
        if self
            .viewers
            .get(&handle)
            .is_some_and(|v| v.mountpoint.is_some())
        {
            ctx.push_event(handle, None, event(json!({"status": "started"})), None);
        }
    }

    fn hangup_media(&mut self, ctx: &mut PluginCtx<'_>, handle: HandleId) {
        if self.leave(handle) {
            ctx.push_event(handle, None, event(json!({"status": "stopped"})), None);
        }
    }

    fn destroy_session(&mut self, _ctx: &mut PluginCtx<'_>, handle: HandleId) {
        self.leave(handle);
        self.viewers.remove(&handle);
    }

    fn query_session(&self, handle: HandleId) -> Value {
        match self.viewers.get(&handle) {
            None => Value::Null,
            Some(v) => json!({
                "state": format!("{:?}", v.state).to_lowercase(),
                "mountpoint": v.mountpoint,
                "paused": v.shared.paused.load(Ordering::Relaxed),
            }),
        }
    }
}
