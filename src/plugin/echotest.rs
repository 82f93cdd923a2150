//! `janus.plugin.echotest`: the peer's own audio and video come back to it.
//!
//! Requests (one unnamed, asynchronous message): `audio` / `video` (bool) toggle
//! what is echoed, `bitrate` (bits/s, 0 = none) caps the peer's video with REMB; a
//! JSEP offer sets up the PeerConnection. Keyframe requests from the peer are
//! forwarded back to it, as Janus does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaData, Mid};

use super::{MediaHandler, MediaOut, Plugin, PluginCtx, PluginInfo, PluginMessage, PluginResult};
use crate::api::{ApiError, HandleId, JsepKind};

/// Janus's echotest error codes.
mod err {
    pub(super) const INVALID_ELEMENT: u16 = 413;
    pub(super) const INVALID_SDP: u16 = 414;
}

/// How often REMB is repeated while a cap is set.
const REMB_EVERY: Duration = Duration::from_secs(1);

/// State shared by the control half and the media half of one handle.
#[derive(Debug)]
struct Settings {
    audio: AtomicBool,
    video: AtomicBool,
    /// 0 = no cap.
    bitrate: AtomicU64,
    frames_echoed: AtomicU64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            audio: AtomicBool::new(true),
            video: AtomicBool::new(true),
            bitrate: AtomicU64::new(0),
            frames_echoed: AtomicU64::new(0),
        }
    }
}

/// The plugin.
#[derive(Default)]
pub struct EchoTest {
    sessions: HashMap<HandleId, Arc<Settings>>,
    default_bitrate: u64,
}

impl EchoTest {
    /// `default_bitrate`: REMB cap applied until the client sets one (0 = none).
    pub fn new(default_bitrate: u64) -> Self {
        EchoTest {
            sessions: HashMap::new(),
            default_bitrate,
        }
    }
}

fn error_event(code: u16, text: impl Into<String>) -> Value {
    json!({"echotest": "event", "error_code": code, "error": text.into()})
}

impl Plugin for EchoTest {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            package: "janus.plugin.echotest",
            name: "JANUS EchoTest plugin",
            description: "Sends back to the peer what it sends: audio, video, keyframe requests",
            version: 7,
            version_string: "0.0.7",
        }
    }

    fn create_session(
        &mut self,
        _ctx: &mut PluginCtx<'_>,
        handle: HandleId,
    ) -> Result<(), ApiError> {
        let s = Settings::default();
        s.bitrate.store(self.default_bitrate, Ordering::Relaxed);
        self.sessions.insert(handle, Arc::new(s));
        Ok(())
    }

    fn handle_message(&mut self, ctx: &mut PluginCtx<'_>, msg: PluginMessage) -> PluginResult {
        let Some(settings) = self.sessions.get(&msg.handle).cloned() else {
            return PluginResult::Error("No session associated with this handle".into());
        };
        let tx = Some(msg.transaction.as_str());
        let body = &msg.body;
        // Validate everything before changing anything.
        let mut audio = None;
        let mut video = None;
        let mut bitrate = None;
        for (key, value) in body {
            let ok = match key.as_str() {
                "audio" => value.as_bool().map(|b| audio = Some(b)).is_some(),
                "video" => value.as_bool().map(|b| video = Some(b)).is_some(),
                "bitrate" => value.as_u64().map(|b| bitrate = Some(b)).is_some(),
                _ => true,
            };
            if !ok {
                let expected = if key == "bitrate" {
                    "a positive integer"
                } else {
                    "a boolean"
                };
                ctx.push_event(
                    msg.handle,
                    tx,
                    error_event(
                        err::INVALID_ELEMENT,
                        format!("Invalid element ({key} should be {expected})"),
                    ),
                    None,
                );
                return PluginResult::OkWait(None);
            }
        }
        if audio.is_none() && video.is_none() && bitrate.is_none() && msg.jsep.is_none() {
            ctx.push_event(
                msg.handle,
                tx,
                error_event(
                    err::INVALID_ELEMENT,
                    "Message error: no supported attributes (audio, video, bitrate) found",
                ),
                None,
            );
            return PluginResult::OkWait(None);
        }
        let mut answer = None;
        if let Some(jsep) = &msg.jsep {
            if jsep.kind != JsepKind::Offer {
                ctx.push_event(
                    msg.handle,
                    tx,
                    error_event(err::INVALID_SDP, "Expected an SDP offer"),
                    None,
                );
                return PluginResult::OkWait(None);
            }
            let media = Box::new(EchoMedia::new(settings.clone()));
            match ctx.accept_offer(msg.handle, jsep, media) {
                Ok(a) => answer = Some(a.to_json()),
                Err(e) => {
                    ctx.push_event(
                        msg.handle,
                        tx,
                        error_event(err::INVALID_SDP, e.reason),
                        None,
                    );
                    return PluginResult::OkWait(None);
                }
            }
        }
        if let Some(a) = audio {
            settings.audio.store(a, Ordering::Relaxed);
        }
        if let Some(v) = video {
            settings.video.store(v, Ordering::Relaxed);
        }
        if let Some(b) = bitrate {
            settings.bitrate.store(b, Ordering::Relaxed);
        }
        ctx.push_event(
            msg.handle,
            tx,
            json!({"echotest": "event", "result": "ok"}),
            answer,
        );
        PluginResult::OkWait(None)
    }

    fn hangup_media(&mut self, ctx: &mut PluginCtx<'_>, handle: HandleId) {
        if let Some(s) = self.sessions.get(&handle) {
            s.audio.store(true, Ordering::Relaxed);
            s.video.store(true, Ordering::Relaxed);
            s.bitrate.store(self.default_bitrate, Ordering::Relaxed);
            ctx.push_event(
                handle,
                None,
                json!({"echotest": "event", "result": "done"}),
                None,
            );
        }
    }

    fn destroy_session(&mut self, _ctx: &mut PluginCtx<'_>, handle: HandleId) {
        self.sessions.remove(&handle);
    }

    fn query_session(&self, handle: HandleId) -> Value {
        match self.sessions.get(&handle) {
            None => Value::Null,
            Some(s) => json!({
                "audio_active": s.audio.load(Ordering::Relaxed),
                "video_active": s.video.load(Ordering::Relaxed),
                "bitrate": s.bitrate.load(Ordering::Relaxed),
                "frames_echoed": s.frames_echoed.load(Ordering::Relaxed),
            }),
        }
    }
}

/// The media half: relays each frame back on the mid it came from.
struct EchoMedia {
    settings: Arc<Settings>,
    video_mids: Vec<Mid>,
    video_was_on: bool,
    last_remb: Option<(Instant, u64)>,
}

impl EchoMedia {
    fn new(settings: Arc<Settings>) -> Self {
        EchoMedia {
            settings,
            video_mids: Vec::new(),
            video_was_on: true,
            last_remb: None,
        }
    }
}

impl MediaHandler for EchoMedia {
    fn incoming_media(&mut self, out: &mut MediaOut<'_>, data: &MediaData) {
        let audio = data.params.spec().codec.is_audio();
        if !audio && !self.video_mids.contains(&data.mid) {
            self.video_mids.push(data.mid);
        }
        let enabled = if audio {
            self.settings.audio.load(Ordering::Relaxed)
        } else {
            self.settings.video.load(Ordering::Relaxed)
        };
        if !enabled {
            return;
        }
        if !audio && !data.contiguous {
            // Frames were lost on the way in: the decoder at the far end needs a fresh keyframe.
            out.request_keyframe(data.mid, KeyframeRequestKind::Pli);
        }
        if out.relay(data.mid, data) {
            self.settings.frames_echoed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn keyframe_request(&mut self, out: &mut MediaOut<'_>, req: &KeyframeRequest) {
        // The peer's decoder needs a keyframe of what we echo: that is its own video.
        out.request_keyframe(req.mid, req.kind);
    }

    fn tick(&mut self, out: &mut MediaOut<'_>, now: Instant) {
        let video_on = self.settings.video.load(Ordering::Relaxed);
        if video_on && !self.video_was_on {
            for &mid in &self.video_mids {
                out.request_keyframe(mid, KeyframeRequestKind::Pli);
            }
        }
        self.video_was_on = video_on;
        let bitrate = self.settings.bitrate.load(Ordering::Relaxed);
        if bitrate == 0 {
            return;
        }
        let due = match self.last_remb {
            None => true,
            Some((at, b)) => b != bitrate || now.saturating_duration_since(at) >= REMB_EVERY,
        };
        if due && !self.video_mids.is_empty() {
            for &mid in &self.video_mids {
                out.send_remb(mid, bitrate);
            }
            self.last_remb = Some((now, bitrate));
        }
    }
}
