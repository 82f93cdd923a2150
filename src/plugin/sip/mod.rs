//! `janus.plugin.sip`: a web page registers to a PBX or SIP trunk through the gateway.
//!
//! Every request is asynchronous, as in Janus: an `ack`, then a `{"sip":"event"}`
//! carrying the result or `error_code`/`error` (440–499, Janus's codes). This
//! plugin validates and keeps per-handle state; the SIP itself happens in the user
//! agent (`crate::ingest::sip`), which it drives with commands and hears from
//! through [`Plugin::sip_event`].
//!
//! Registration: `register` (digest with `secret`, `authuser`, `proxy`/`outbound_proxy`,
//! `register_ttl` with automatic refresh, `type: guest`, `send_register: false`,
//! custom `headers`, `transcode: false` for PCMU end to end on all the account's
//! calls), `unregister`, `registration_failed` with the SIP code.
//!
//! Calls: `call` (with the browser's JSEP offer; `transcode: false` keeps G.711 end
//! to end), incoming calls (`incomingcall` with our JSEP offer, `missed_call` when
//! busy), `accept`, `progress` (early media: a 183 with our SDP, `accept` later
//! sends the 200), `decline`, `send_ringing`, `hangup`, `hold`/`unhold`,
//! `update` (the browser's new offer, e.g. an ICE restart, answered on its
//! PeerConnection; the SIP leg is left as it is), `dtmf_info`, `info`, `message` (in
//! the call), `transfer` (blind REFER). The
//! browser's own DTMF (telephone-events) reaches the phone as RFC 4733; the
//! phone's becomes a `dtmf` event. The media half (`media::CallMediaHandler`) passes the
//! browser's frames to the call's bridge and the bridge's audio to the browser.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};
use str0m::media::{MediaData, Mid};
use tokio::sync::mpsc;

use super::{MediaHandler, MediaOut, Plugin, PluginCtx, PluginInfo, PluginMessage, PluginResult};
use crate::api::{ApiError, HandleId, Jsep, JsepKind, SourceId};
use crate::ingest::sip::bridge::{BridgeStats, BrowserCodec, BrowserFrame};
use crate::ingest::sip::sdp::Direction;
use crate::ingest::sip::srtp::Suite;
use crate::ingest::sip::{
    check_header, split_sip_uri, Account, CallEvent, CallMedia, CallOp, SipCommand, SipEvent,
    SrtpMode,
};
use crate::media::webrtc::VoiceLeg;

mod events;
mod fields;
mod media;
mod requests;
mod state;

use fields::*;
use media::*;
use state::*;

/// What a SIP request is refused with: the variant is Janus's SIP error code
/// (`code()`), the text is what the client reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    /// 442: a request the plugin does not know, or not allowed by the configuration.
    #[error("{0}")]
    InvalidRequest(String),
    /// 443: a required field is missing.
    #[error("{0}")]
    MissingElement(String),
    /// 444: a field has the wrong type or value.
    #[error("{0}")]
    InvalidElement(String),
    /// 445: the handle is registered (or registering) already.
    #[error("{0}")]
    AlreadyRegistered(String),
    /// 446: not a SIP address.
    #[error("{0}")]
    InvalidAddress(String),
    /// 447: not possible in the handle's call state.
    #[error("{0}")]
    WrongState(String),
    /// 448: a JSEP offer or answer is missing or unusable.
    #[error("{0}")]
    MissingSdp(String),
    /// 452: refused by a stricter default than Janus's (an opt-in allows it).
    #[error("{0}")]
    TooStrict(String),
    /// 499: anything else.
    #[error("{0}")]
    Unknown(String),
}

impl SipError {
    /// Janus's SIP error code.
    pub fn code(&self) -> u16 {
        match self {
            SipError::InvalidRequest(_) => 442,
            SipError::MissingElement(_) => 443,
            SipError::InvalidElement(_) => 444,
            SipError::AlreadyRegistered(_) => 445,
            SipError::InvalidAddress(_) => 446,
            SipError::WrongState(_) => 447,
            SipError::MissingSdp(_) => 448,
            SipError::TooStrict(_) => 452,
            SipError::Unknown(_) => 499,
        }
    }
}

/// The plugin.
pub struct Sip {
    /// False when the user agent is off or could not bind its socket.
    enabled: bool,
    default_ttl: u32,
    handles: HashMap<HandleId, SipHandle>,
    /// Calls ended, by final SIP status code (0: a code outside 100-699). At most 601
    /// entries.
    ended: BTreeMap<u16, u64>,
}

impl Sip {
    /// `enabled`: whether the user agent runs; `default_ttl`: registration lifetime
    /// asked for when a request gives none.
    pub fn new(enabled: bool, default_ttl: u32) -> Self {
        Sip {
            enabled,
            default_ttl,
            handles: HashMap::new(),
            ended: BTreeMap::new(),
        }
    }
}

impl Plugin for Sip {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            package: "janus.plugin.sip",
            name: "JANUS SIP plugin",
            description:
                "Registers web pages to SIP servers and bridges their calls (Opus to G.711)",
            version: 8,
            version_string: "0.0.8",
        }
    }

    fn create_session(
        &mut self,
        _ctx: &mut PluginCtx<'_>,
        _handle: HandleId,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    fn handle_message(&mut self, ctx: &mut PluginCtx<'_>, msg: PluginMessage) -> PluginResult {
        if let Err(e) = self.message(
            ctx,
            msg.handle,
            &msg.transaction,
            &msg.body,
            msg.jsep.as_ref(),
        ) {
            ctx.push_event(msg.handle, Some(&msg.transaction), error_event(&e), None);
        }
        PluginResult::OkWait(None)
    }

    fn sip_event(&mut self, ctx: &mut PluginCtx<'_>, ev: &SipEvent) {
        match ev {
            SipEvent::Registered {
                handle,
                expires,
                first,
            } => {
                let Some(h) = self.handles.get_mut(handle) else {
                    return;
                };
                if h.registration != Registration::Registering {
                    return;
                }
                h.registration = Registration::Registered { sent: true };
                if *first {
                    tracing::info!(%handle, uri = %h.uri, expires, "SIP registered");
                    let user = h.user.clone();
                    ctx.push_event(
                        *handle,
                        None,
                        result(
                            json!({"event": "registered", "username": user, "register_sent": true}),
                        ),
                        None,
                    );
                }
            }
            SipEvent::RegistrationFailed {
                handle,
                code,
                reason,
            } => {
                let Some(h) = self.handles.remove(handle) else {
                    return;
                };
                tracing::info!(%handle, uri = %h.uri, code, %reason, "SIP registration failed");
                ctx.push_event(
                    *handle,
                    None,
                    result(json!({"event": "registration_failed", "code": code, "reason": reason})),
                    None,
                );
            }
            SipEvent::Call { handle, what } => self.call_event(ctx, *handle, what),
            SipEvent::MessageDelivery {
                handle,
                call_id,
                code,
                reason,
            } => {
                if self.handles.contains_key(handle) {
                    let mut data =
                        result(json!({"event": "messagedelivery", "code": code, "reason": reason}));
                    data["call_id"] = json!(call_id);
                    ctx.push_event(*handle, None, data, None);
                }
            }
            SipEvent::OutOfDialogMessage {
                handle,
                sender,
                display_name,
                content_type,
                content,
            } => {
                if self.handles.contains_key(handle) {
                    ctx.push_event(
                        *handle,
                        None,
                        result(json!({"event": "message", "sender": sender, "displayname": display_name, "content_type": content_type, "content": content})),
                        None,
                    );
                }
            }
            SipEvent::Unregistered { handle } => {
                let Some(h) = self.handles.remove(handle) else {
                    return;
                };
                ctx.push_event(
                    *handle,
                    None,
                    result(
                        json!({"event": "unregistered", "username": h.user, "register_sent": true}),
                    ),
                    None,
                );
            }
        }
    }

    fn hangup_media(&mut self, ctx: &mut PluginCtx<'_>, handle: HandleId) {
        // The browser's PeerConnection went away: a call on it cannot go on.
        if let Some(call) = self.handles.get_mut(&handle).and_then(|h| h.call.as_mut()) {
            if matches!(
                call.state,
                CallState::Calling
                    | CallState::Progressing
                    | CallState::Accepting
                    | CallState::InCall
            ) {
                call.state = CallState::Ending;
                ctx.sip(SipCommand::InCall {
                    handle,
                    op: CallOp::Hangup,
                });
            }
        }
    }

    fn renegotiated(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        answer: Result<Jsep, String>,
    ) {
        let Some(call) = self.handles.get_mut(&handle).and_then(|h| h.call.as_mut()) else {
            return;
        };
        let Some(tx) = call.updating.take() else {
            return;
        };
        match answer {
            Ok(jsep) => {
                let mut data = result(json!({"event": "updated"}));
                if let Some(id) = &call.call_id {
                    data["call_id"] = json!(id);
                }
                ctx.push_event(handle, Some(&tx), data, Some(jsep.to_json()));
            }
            Err(e) => ctx.push_event(
                handle,
                Some(&tx),
                error_event(&SipError::MissingSdp(format!("Error parsing SDP: {e}"))),
                None,
            ),
        }
    }

    fn destroy_session(&mut self, ctx: &mut PluginCtx<'_>, handle: HandleId) {
        if let Some(h) = self.handles.remove(&handle) {
            if let Some(call) = h.call {
                ctx.stop_source(call.source);
            }
            ctx.sip(SipCommand::Forget { handle });
        }
    }

    fn query_session(&self, handle: HandleId) -> Value {
        match self.handles.get(&handle) {
            None => json!({"registration_status": "unregistered"}),
            Some(h) => json!({
                "username": h.uri,
                "registration_status": match h.registration {
                    Registration::Registering => "registering",
                    Registration::Registered { .. } => "registered",
                    Registration::Unregistering => "unregistering",
                },
                "call_status": h.call.as_ref().map(|c| c.state.name()),
                "callee": h.call.as_ref().map(|c| c.peer.clone()),
                "call_id": h.call.as_ref().and_then(|c| c.call_id.clone()),
                "media": h.call.as_ref().map(|c| c.stats.to_json()),
            }),
        }
    }

    fn metrics(&self, _now: Instant, m: &mut crate::api::metrics::Metrics) {
        let mut registrations = [0u32; 3];
        let mut calls = [0u32; CallState::ALL.len()];
        for h in self.handles.values() {
            registrations[match h.registration {
                Registration::Registering => 0,
                Registration::Registered { .. } => 1,
                Registration::Unregistering => 2,
            }] += 1;
            if let Some(c) = &h.call {
                calls[c.state as usize] += 1;
            }
        }
        let f = m.gauge(
            "cardea_sip_registrations",
            "SIP plugin handles with an account, by registration state.",
        );
        for (state, n) in ["registering", "registered", "unregistering"]
            .iter()
            .zip(registrations)
        {
            f.with(&[("state", state)], n);
        }
        let f = m.gauge("cardea_sip_calls", "SIP calls going on, by state.");
        for (state, n) in CallState::ALL.iter().zip(calls) {
            f.with(&[("state", state.name())], n);
        }
        let f = m.counter(
            "cardea_sip_calls_ended",
            "SIP calls ended, by final status code (200: answered, then hung up).",
        );
        for (code, n) in &self.ended {
            f.with(&[("code", &code.to_string())], *n as f64);
        }
        let f = m.gauge(
            "cardea_transcoders",
            "Transcoders running in the process, by kind (calls' voice, cameras' AAC).",
        );
        for kind in cardea_codecs::live::Kind::ALL {
            f.with(&[("kind", kind.name())], kind.live() as f64);
        }
    }
}
