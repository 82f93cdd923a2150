//! `janus.plugin.streaming`: mountpoints fed by sources, watched by WebRTC viewers.
//!
//! Requests as Janus's (../shared/janus-api.md §3). Synchronous: list, info, create,
//! edit, destroy, enable, disable, kick_all. Asynchronous: watch (server offers),
//! start (with the answer, or to resume), pause, configure (`send` per mid), switch,
//! stop. Sources: plain RTP, RTSP cameras, the built-in demo.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use str0m::media::Mid;

use super::{MediaHandler, Plugin, PluginCtx, PluginInfo, PluginMessage, PluginResult};
use crate::api::{ApiError, HandleId, JsepKind};
use crate::ids::MountpointId;
use crate::ingest::rtp::SourceCounters;

mod checks;
pub mod io;
mod mountpoint;
mod offers;
mod publisher;
mod requests;

pub use checks::check_configured;
use checks::*;

use crate::media::router::{track_bit, ViewerMedia, ViewerShared, ViewerTrack};
use mountpoint::{required_str, str_field, InfoView, Mountpoint};

/// The streaming plugin's error codes.
/// What a streaming request is refused with: the variant is Janus's error code
/// (`code()`), the text is what the client reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamingError {
    /// 452: a request the plugin does not know, or one not allowed now.
    #[error("{0}")]
    InvalidRequest(String),
    /// 453: a required field is missing.
    #[error("{0}")]
    MissingElement(String),
    /// 454: a field has the wrong type or value.
    #[error("{0}")]
    InvalidElement(String),
    /// 455: no mountpoint with that id.
    #[error("{0}")]
    NoSuchMountpoint(String),
    /// 456: the mountpoint cannot be created (ports, sources, limits).
    #[error("{0}")]
    CantCreate(String),
    /// 457: wrong or missing secret/pin/admin key.
    #[error("{0}")]
    Unauthorized(String),
    /// 458: `switch` cannot move the viewer.
    #[error("{0}")]
    CantSwitch(String),
    /// 460: not possible in the viewer's state.
    #[error("{0}")]
    InvalidState(String),
    /// 461: a JSEP the plugin cannot use.
    #[error("{0}")]
    InvalidSdp(String),
    /// 470: anything else (the configuration file could not be written).
    #[error("{0}")]
    Unknown(String),
}

impl StreamingError {
    /// Janus's streaming error code.
    pub fn code(&self) -> u16 {
        match self {
            StreamingError::InvalidRequest(_) => 452,
            StreamingError::MissingElement(_) => 453,
            StreamingError::InvalidElement(_) => 454,
            StreamingError::NoSuchMountpoint(_) => 455,
            StreamingError::CantCreate(_) => 456,
            StreamingError::Unauthorized(_) => 457,
            StreamingError::CantSwitch(_) => 458,
            StreamingError::InvalidState(_) => 460,
            StreamingError::InvalidSdp(_) => 461,
            StreamingError::Unknown(_) => 470,
        }
    }

    /// The text, owned.
    pub fn into_text(mut self) -> String {
        std::mem::take(self.text_mut())
    }

    /// The same error with `context` before its text (`media[1]: ...`).
    pub fn context(mut self, context: impl std::fmt::Display) -> StreamingError {
        let t = self.text_mut();
        *t = format!("{context}: {t}");
        self
    }

    fn text_mut(&mut self) -> &mut String {
        match self {
            StreamingError::InvalidRequest(t)
            | StreamingError::MissingElement(t)
            | StreamingError::InvalidElement(t)
            | StreamingError::NoSuchMountpoint(t)
            | StreamingError::CantCreate(t)
            | StreamingError::Unauthorized(t)
            | StreamingError::CantSwitch(t)
            | StreamingError::InvalidState(t)
            | StreamingError::InvalidSdp(t)
            | StreamingError::Unknown(t) => t,
        }
    }
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
    mountpoint: Option<MountpointId>,
    state: ViewerState,
    /// The mid of each of the mountpoint's tracks in this viewer's PeerConnection.
    mids: Vec<Option<Mid>>,
    /// The payload type of each track in this viewer's PeerConnection.
    pts: Vec<u8>,
    /// An ICE restart under way (`watch` with `restart`).
    restart: Option<IceRestart>,
    /// Its PeerConnection came up (`started` was pushed): resuming answers `started`.
    started: bool,
    shared: Arc<ViewerShared>,
    /// The `webrtc` mountpoint this handle publishes to (WHIP), if any.
    publishing: Option<MountpointId>,
}

/// Where an ICE restart stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IceRestart {
    /// Asked by the request with this transaction; the offer is being made.
    Offering(String),
    /// The offer went out; the answer comes with `start`.
    Answering,
}

impl Viewer {
    /// The mountpoint watched, while streaming or paused.
    fn streaming(&self) -> Option<MountpointId> {
        self.mountpoint
            .filter(|_| matches!(self.state, ViewerState::Streaming | ViewerState::Paused))
    }
}

/// `tracks` (bits) of a viewer start again from a keyframe of `source`: the media
/// half waits for one and asks the source, and the source's GOP cache is replayed.
fn restart_from_keyframe(
    ctx: &mut PluginCtx<'_>,
    handle: HandleId,
    shared: &ViewerShared,
    tracks: u64,
    source: crate::api::SourceId,
) {
    shared.rekey.fetch_or(tracks, Ordering::Relaxed);
    ctx.resubscribe(handle, vec![source]);
}

/// The plugin.
pub struct Streaming {
    mountpoints: BTreeMap<MountpointId, Mountpoint>,
    /// Declared in the configuration; created by `init`.
    configured: Vec<crate::config::MountpointConfig>,
    viewers: HashMap<HandleId, Viewer>,
    /// `[streaming]`: admin_key, open_admin, rtsp_allow, limits, where ports bind.
    settings: crate::config::StreamingConfig,
    /// Ports and the configuration file.
    io: Box<dyn io::StreamingIo>,
}

/// Who sends a request: the operator (the configuration file, the admin API) or a
/// client of the Janus API, whose administrative rights depend on `[streaming]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Configuration,
    AdminApi,
    Client,
}

impl Streaming {
    /// `settings`: `[streaming]` (its mountpoints are created by `init`).
    /// `io`: where ports are bound and `permanent: true` saves.
    pub fn new(settings: &crate::config::StreamingConfig, io: Box<dyn io::StreamingIo>) -> Self {
        Streaming {
            mountpoints: BTreeMap::new(),
            configured: settings.mountpoints.clone(),
            viewers: HashMap::new(),
            settings: crate::config::StreamingConfig {
                mountpoints: Vec::new(),
                ..settings.clone()
            },
            io,
        }
    }

    /// Whether the request may administer every mountpoint: the operator, a request
    /// with the right `admin_key`, or anyone when `open_admin` is chosen and no key is set.
    fn is_admin(&self, caller: Caller, body: &Map<String, Value>) -> bool {
        let key = &self.settings.admin_key;
        match caller {
            Caller::Configuration | Caller::AdminApi => true,
            Caller::Client if key.is_empty() => self.settings.open_admin,
            Caller::Client => {
                crate::secret::given_eq(body.get("admin_key").and_then(Value::as_str), key)
            }
        }
    }

    /// Whether the request holds a key to every mountpoint: the operator, or the right
    /// `admin_key` (`open_admin` opens only what has no secret of its own).
    fn key_holder(&self, caller: Caller, body: &Map<String, Value>) -> bool {
        caller != Caller::Client
            || (!self.settings.admin_key.is_empty() && self.is_admin(caller, body))
    }

    /// Refuses what only an administrator may do, saying how to be one.
    fn require_admin(
        &self,
        caller: Caller,
        body: &Map<String, Value>,
    ) -> Result<(), StreamingError> {
        if self.is_admin(caller, body) {
            return Ok(());
        }
        if self.settings.admin_key.is_empty() {
            Err(StreamingError::Unauthorized(
                "Unauthorized (mountpoint administration is off: the operator sets \
                 streaming.admin_key, or streaming.open_admin)"
                    .into(),
            ))
        } else if body.get("admin_key").is_none() {
            Err(StreamingError::MissingElement(
                "Missing mandatory element (admin_key)".into(),
            ))
        } else {
            Err(StreamingError::Unauthorized(
                "Unauthorized (wrong admin_key)".into(),
            ))
        }
    }
}

impl Plugin for Streaming {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            package: "janus.plugin.streaming",
            name: "JANUS Streaming plugin",
            description: "Relays RTP feeds, RTSP cameras and a demo source to WebRTC viewers",
            version: 8,
            version_string: "0.0.8",
        }
    }

    fn init(&mut self, ctx: &mut PluginCtx<'_>) -> Result<(), String> {
        for m in std::mem::take(&mut self.configured) {
            let body = config_body(&m);
            if let Err(e) = self.create(ctx, Caller::Configuration, &body) {
                return Err(format!("{}: {e}", who(&m)));
            }
        }
        Ok(())
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
                pts: Vec::new(),
                restart: None,
                started: false,
                shared: Arc::new(ViewerShared::default()),
                publishing: None,
            },
        );
        Ok(())
    }

    fn handle_message(&mut self, ctx: &mut PluginCtx<'_>, msg: PluginMessage) -> PluginResult {
        let request = match msg.body.get("request") {
            None => {
                return PluginResult::Ok(error(StreamingError::MissingElement(
                    "Missing mandatory element (request)".into(),
                )))
            }
            Some(Value::String(r)) => r.clone(),
            Some(_) => {
                return PluginResult::Ok(error(StreamingError::InvalidElement(
                    "Invalid element (request should be a string)".into(),
                )))
            }
        };
        match request.as_str() {
            "list" | "info" | "create" | "edit" | "destroy" | "enable" | "disable" | "kick_all" => {
                match self.sync_request(ctx, Caller::Client, &request, &msg.body) {
                    Ok(v) => PluginResult::Ok(v),
                    Err(e) => PluginResult::Ok(error(e)),
                }
            }
            "watch" if msg.body.get("restart").and_then(Value::as_bool) == Some(true) => {
                if let Err(e) = self.restart(ctx, msg.handle, &msg.body, &msg.transaction) {
                    let tx = Some(msg.transaction.as_str());
                    ctx.push_event(msg.handle, tx, error(e), None);
                }
                PluginResult::OkWait(None)
            }
            "watch" | "start" | "pause" | "configure" | "switch" | "stop" | "publish" => {
                let tx = Some(msg.transaction.as_str());
                match self.async_request(ctx, msg.handle, &request, &msg) {
                    Ok((data, jsep)) => ctx.push_event(msg.handle, tx, data, jsep),
                    Err(e) => ctx.push_event(msg.handle, tx, error(e), None),
                }
                PluginResult::OkWait(None)
            }
            other => PluginResult::Ok(error(StreamingError::InvalidRequest(format!(
                "Unknown request '{other}'"
            )))),
        }
    }

    fn handle_admin_message(&mut self, ctx: &mut PluginCtx<'_>, body: &Value) -> Option<Value> {
        let body = body.as_object()?;
        let request = body.get("request").and_then(Value::as_str).unwrap_or("");
        Some(match request {
            "list" | "info" | "create" | "edit" | "destroy" | "enable" | "disable" | "kick_all" => {
                match self.sync_request(ctx, Caller::AdminApi, request, body) {
                    Ok(v) => v,
                    Err(e) => error(e),
                }
            }
            other => error(StreamingError::InvalidRequest(format!(
                "Unknown request '{other}'"
            ))),
        })
    }

    fn watch_access(
        &self,
        id: MountpointId,
        bearer: Option<&str>,
        privileged: bool,
    ) -> Result<(), super::ViewRefusal> {
        use super::ViewRefusal;
        let mp = self
            .mountpoint(id)
            .map_err(|e| ViewRefusal::NotFound(e.into_text()))?;
        let matches = |s: &Option<String>| {
            s.as_deref()
                .is_some_and(|s| crate::secret::given_eq(bearer, s))
        };
        if matches(&mp.secret) {
            return Ok(());
        }
        if mp.pin.is_some() {
            return match matches(&mp.pin) {
                true => Ok(()),
                false => Err(ViewRefusal::Forbidden("Unauthorized (wrong pin)".into())),
            };
        }
        if mp.is_private && !privileged {
            return Err(ViewRefusal::Forbidden(
                "A private mountpoint: its secret, or the API's credentials, needed".into(),
            ));
        }
        Ok(())
    }

    fn publish_access(
        &self,
        id: MountpointId,
        bearer: Option<&str>,
    ) -> Result<(), super::ViewRefusal> {
        use super::ViewRefusal;
        let mp = self
            .mountpoint(id)
            .map_err(|e| ViewRefusal::NotFound(e.into_text()))?;
        let mut body = Map::new();
        if let Some(b) = bearer {
            body.insert("admin_key".into(), json!(b));
            body.insert("secret".into(), json!(b));
        }
        let open = self.settings.open_admin && mp.secret.is_none();
        if open || self.key_holder(Caller::Client, &body) || Self::has_secret(mp, &body) {
            Ok(())
        } else {
            Err(ViewRefusal::Forbidden(
                "Publishing needs the mountpoint's secret or the admin key".into(),
            ))
        }
    }

    fn viewable_video(
        &self,
        id: MountpointId,
        credentials: &Map<String, Value>,
    ) -> Result<super::ViewableVideo, super::ViewRefusal> {
        use super::ViewRefusal;
        use cardea_codecs::keyframe::VideoCodec;
        let mp = self
            .mountpoint(id)
            .map_err(|e| ViewRefusal::NotFound(e.into_text()))?;
        if !Self::has_secret(mp, credentials) {
            self.viewable(id, credentials)
                .map_err(|e| ViewRefusal::Forbidden(e.into_text()))?;
        }
        if !mp.enabled {
            return Err(ViewRefusal::Forbidden("Mountpoint disabled".into()));
        }
        if mp.discovering {
            return Err(ViewRefusal::NotYet(
                "The camera has not been reached yet".into(),
            ));
        }
        mp.media
            .iter()
            .enumerate()
            .find_map(|(i, m)| {
                let codec = match m.codec.codec {
                    str0m::format::Codec::H264 => VideoCodec::H264,
                    str0m::format::Codec::H265 => VideoCodec::H265,
                    _ => return None,
                };
                Some(super::ViewableVideo {
                    source: mp.source,
                    track: i as u8,
                    codec,
                })
            })
            .ok_or_else(|| {
                ViewRefusal::NotFound("No H.264 or H.265 video to take a picture of".into())
            })
    }

    fn source_tracks(
        &mut self,
        _ctx: &mut PluginCtx<'_>,
        source: crate::api::SourceId,
        tracks: &[crate::ingest::rtsp::DiscoveredTrack],
        unoffered: &[crate::ingest::rtsp::Unoffered],
    ) {
        let Some(mp) = self.mountpoints.values_mut().find(|m| m.source == source) else {
            return;
        };
        if !mp.discovering {
            return;
        }
        mp.unoffered = unoffered.to_vec();
        if tracks.is_empty() {
            return;
        }
        mp.media = Mountpoint::discovered_media(tracks);
        mp.discovering = false;
        tracing::info!(
            mountpoint = %mp.id,
            media = ?mp.media.iter().map(|m| format!("{} {}", m.mid, m.codec.name)).collect::<Vec<_>>(),
            unoffered = mp.unoffered.len(),
            "camera tracks discovered"
        );
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
            mountpoint = %mp.id,
            event = name,
            viewers = mp.viewers.len(),
            "camera state"
        );
        for h in &mp.viewers {
            ctx.push_event(*h, None, json!({"event": name, "id": mp.id}), None);
        }
    }

    fn restart_offer(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        offer: crate::api::Jsep,
    ) {
        let Some(v) = self.viewers.get_mut(&handle) else {
            return;
        };
        let Some(IceRestart::Offering(tx)) = v.restart.clone() else {
            return;
        };
        v.restart = Some(IceRestart::Answering);
        ctx.push_event(
            handle,
            Some(&tx),
            event(json!({"status": "updating"})),
            Some(offer.to_json()),
        );
    }

    /// The viewer's own new offer (a WHEP player's ICE restart) was answered.
    fn renegotiated(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        answer: Result<crate::api::Jsep, String>,
    ) {
        if !self.viewers.contains_key(&handle) {
            return;
        }
        match answer {
            Ok(jsep) => ctx.push_event(
                handle,
                None,
                event(json!({"status": "updated"})),
                Some(jsep.to_json()),
            ),
            Err(reason) => ctx.push_event(
                handle,
                None,
                json!({"streaming": "event", "error_code": 461, "error": reason}),
                None,
            ),
        }
    }

    fn setup_media(&mut self, ctx: &mut PluginCtx<'_>, handle: HandleId) {
        if let Some(v) = self
            .viewers
            .get_mut(&handle)
            .filter(|v| v.mountpoint.is_some())
        {
            v.started = true;
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

    fn metrics(&self, now: std::time::Instant, m: &mut crate::api::metrics::Metrics) {
        m.gauge(
            "cardea_streaming_mountpoints",
            "Mountpoints, configured and created.",
        )
        .value(self.mountpoints.len() as f64);
        Mountpoint::metrics(self.mountpoints.values(), now, m);
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
