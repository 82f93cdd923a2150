//! Events for event handlers (Janus's `janus_events_notify_handlers`): what the core
//! saw happen, as [`Output::HandlerEvent`]s, for the runtime to stamp (`emitter`,
//! `timestamp`) and deliver to webhooks and NATS. Only the types the configuration
//! asks for are made at all.
//!
//! Janus's types: 1 session, 2 handle, 8 JSEP, 16 WebRTC (subtypes 1 ICE, 5 DTLS,
//! 6 PeerConnection), 32 media (subtype 1 receiving), 64 plugin, 256 core. SDPs are
//! reported without their `a=crypto` keys and ICE passwords.

use serde_json::{json, Value};

use super::{Core, HandleId, Output, SessionId};

/// Session created, destroyed, timed out.
pub const SESSION: u32 = 1;
/// Handle attached, detached.
pub const HANDLE: u32 = 2;
/// An SDP offered or answered, by us (`local`) or the peer (`remote`).
pub const JSEP: u32 = 8;
/// ICE, DTLS and PeerConnection state.
pub const WEBRTC: u32 = 16;
/// Media flowing or not.
pub const MEDIA: u32 = 32;
/// What a plugin told its client.
pub const PLUGIN: u32 = 64;
/// Gateway started, stopping.
pub const CORE: u32 = 256;

/// One event, before the runtime stamps it.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerEvent {
    /// Janus's type.
    pub kind: u32,
    /// Janus's subtype, where the type has them.
    pub subtype: Option<u32>,
    /// The session it is about.
    pub session: Option<SessionId>,
    /// The handle it is about.
    pub handle: Option<HandleId>,
    /// The handle's `opaque_id`.
    pub opaque_id: Option<String>,
    /// The `event` object.
    pub event: Value,
}

impl HandlerEvent {
    /// Janus's envelope, with the gateway's name and the time in µs since 1970.
    pub fn envelope(&self, emitter: &str, timestamp_us: u64) -> Value {
        let mut v = json!({"emitter": emitter, "type": self.kind, "timestamp": timestamp_us,
                           "event": self.event});
        if let Some(s) = self.subtype {
            v["subtype"] = json!(s);
        }
        if let Some(s) = self.session {
            v["session_id"] = json!(s.0);
        }
        if let Some(h) = self.handle {
            v["handle_id"] = json!(h.0);
        }
        if let Some(o) = &self.opaque_id {
            v["opaque_id"] = json!(o);
        }
        v
    }
}

/// A core event (startup, shutdown), which the runtime makes itself.
pub fn core_event(subtype: u32, event: Value) -> HandlerEvent {
    HandlerEvent {
        kind: CORE,
        subtype: Some(subtype),
        session: None,
        handle: None,
        opaque_id: None,
        event,
    }
}

/// An SDP fit for events: `a=crypto` keys (SDES) and ICE passwords removed.
pub fn redact_sdp(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| !l.starts_with("a=crypto:") && !l.starts_with("a=ice-pwd:"))
        .collect()
}

impl Core {
    /// Whether events of `kind` are reported (so callers skip building them).
    pub(super) fn reports(&self, kind: u32) -> bool {
        self.event_mask & kind != 0
    }

    /// Reports an event of `kind` about `session`/`handle`, if that type is asked for.
    pub(super) fn emit(
        &mut self,
        kind: u32,
        subtype: Option<u32>,
        session: Option<SessionId>,
        handle: Option<HandleId>,
        event: Value,
    ) {
        if !self.reports(kind) {
            return;
        }
        let opaque_id = handle
            .and_then(|h| self.handles.get(&h))
            .and_then(|h| h.opaque_id.clone());
        self.outputs
            .push_back(Output::HandlerEvent(Box::new(HandlerEvent {
                kind,
                subtype,
                session,
                handle,
                opaque_id,
                event,
            })));
    }

    /// A JSEP event: `owner` is `local` (ours) or `remote` (the peer's).
    pub(super) fn emit_jsep(
        &mut self,
        session: SessionId,
        handle: HandleId,
        owner: &str,
        jsep: &Value,
    ) {
        if !self.reports(JSEP) {
            return;
        }
        let sdp = jsep["sdp"].as_str().map(redact_sdp);
        let event = json!({"owner": owner, "jsep": {"type": jsep["type"], "sdp": sdp}});
        self.emit(JSEP, None, Some(session), Some(handle), event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_janus_s() {
        let e = HandlerEvent {
            kind: HANDLE,
            subtype: None,
            session: Some(SessionId(7)),
            handle: Some(HandleId(9)),
            opaque_id: Some("echo-\u{e9}".into()),
            event: json!({"name": "attached", "plugin": "janus.plugin.echotest"}),
        };
        let v = e.envelope("MyJanusInstance", 1_582_211_094_846_980);
        assert_eq!(
            v,
            json!({"emitter": "MyJanusInstance", "type": 2, "timestamp": 1_582_211_094_846_980u64,
                   "session_id": 7, "handle_id": 9, "opaque_id": "echo-\u{e9}",
                   "event": {"name": "attached", "plugin": "janus.plugin.echotest"}})
        );
        let c = core_event(1, json!({"status": "started"})).envelope("g", 1);
        assert_eq!(c["subtype"], 1);
        assert!(c.get("session_id").is_none());
    }

    #[test]
    fn sdp_keys_and_ice_passwords_are_removed() {
        let sdp = "v=0\r\na=ice-ufrag:abcd\r\na=ice-pwd:secretpassword\r\n\
                   a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
                   a=fingerprint:sha-256 AB:CD\r\n";
        let r = redact_sdp(sdp);
        assert!(
            !r.contains("secretpassword") && !r.contains("inline:"),
            "{r}"
        );
        assert!(r.contains("a=ice-ufrag:abcd\r\n") && r.contains("a=fingerprint"));
    }
}
