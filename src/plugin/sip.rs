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
//! phone's becomes a `dtmf` event. The media half ([`CallMediaHandler`]) passes the
//! browser's frames to the call's bridge and the bridge's audio to the browser.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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

/// Janus's SIP plugin error codes.
mod err {
    pub(super) const INVALID_REQUEST: u16 = 442;
    pub(super) const MISSING_ELEMENT: u16 = 443;
    pub(super) const INVALID_ELEMENT: u16 = 444;
    pub(super) const ALREADY_REGISTERED: u16 = 445;
    pub(super) const INVALID_ADDRESS: u16 = 446;
    pub(super) const WRONG_STATE: u16 = 447;
    pub(super) const MISSING_SDP: u16 = 448;
    pub(super) const TOO_STRICT: u16 = 452;
    pub(super) const UNKNOWN: u16 = 499;
}

/// Where a handle's registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registration {
    Registering,
    /// `sent`: a REGISTER went out (false for guests and `send_register: false`).
    Registered {
        sent: bool,
    },
    Unregistering,
}

#[derive(Debug)]
struct SipHandle {
    registration: Registration,
    /// The account's user part, what `registered` reports.
    user: String,
    /// The full address of record.
    uri: String,
    /// What calls are placed with (From, credentials, proxy).
    account: Account,
    /// Display name for calls.
    display_name: Option<String>,
    /// The call going on, if any.
    call: Option<Call>,
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Outgoing, INVITE sent, no final answer yet.
    Calling,
    /// Incoming, offered to the browser.
    Ringing,
    /// Incoming, the browser answered with `progress`: our 183 carries its media
    /// (early media); `accept` sends the 200.
    Progressing,
    /// Incoming, the browser accepted; our 200 is going out.
    Accepting,
    /// Answered, media flowing.
    InCall,
    /// Hangup or decline asked; the call's end is to come.
    Ending,
}

impl CallState {
    /// How errors and `handle_info` name it.
    fn name(self) -> &'static str {
        match self {
            CallState::Calling => "calling",
            CallState::Ringing => "ringing",
            CallState::Progressing => "progressing",
            CallState::Accepting => "accepting",
            CallState::InCall => "incall",
            CallState::Ending => "ending",
        }
    }
}

#[derive(Debug)]
struct Call {
    state: CallState,
    call_id: Option<String>,
    /// The other party's URI.
    peer: String,
    /// Our JSEP answer to the browser's offer, sent with `progress` or `accepted`.
    answer: Option<Value>,
    /// The audio source feeding the browser.
    source: SourceId,
    /// For incoming calls: the audio mid of our offer, and the browser codec.
    mid: Option<Mid>,
    browser: BrowserCodec,
    stats: Arc<BridgeStats>,
    /// An `update` whose browser offer the PeerConnection is answering: its transaction.
    updating: Option<String>,
    /// For incoming calls: what the caller's offer asks of SRTP (`incomingcall`'s `srtp`).
    offered_srtp: Option<&'static str>,
}

/// The plugin.
pub struct Sip {
    /// False when the user agent is off or could not bind its socket.
    enabled: bool,
    default_ttl: u32,
    handles: HashMap<HandleId, SipHandle>,
}

impl Sip {
    /// `enabled`: whether the user agent runs; `default_ttl`: registration lifetime
    /// asked for when a request gives none.
    pub fn new(enabled: bool, default_ttl: u32) -> Self {
        Sip {
            enabled,
            default_ttl,
            handles: HashMap::new(),
        }
    }
}

fn error_event(code: u16, text: impl Into<String>) -> Value {
    json!({"sip": "event", "error_code": code, "error": text.into()})
}

fn result(event: Value) -> Value {
    json!({"sip": "event", "result": event})
}

type Failure = (u16, String);

/// The request's `uri`, a SIP address: 443 when missing, 446 when not `sip:user@host`.
fn sip_uri_of(body: &Map<String, Value>) -> Result<&str, Failure> {
    let uri = address_field(body, "uri")?
        .ok_or((err::MISSING_ELEMENT, "Missing element (uri)".into()))?;
    if split_sip_uri(uri).is_none() {
        return Err((
            err::INVALID_ADDRESS,
            format!("Invalid user address ({uri})"),
        ));
    }
    Ok(uri)
}

/// `transcode`: a boolean, `default` when absent.
fn transcode_of(body: &Map<String, Value>, default: bool) -> Result<bool, Failure> {
    match body.get("transcode") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err((
            err::INVALID_ELEMENT,
            "Invalid element type (transcode should be a boolean)".into(),
        )),
    }
}

/// `srtp` (`sdes_optional` or `sdes_mandatory`) and `srtp_profile` (the suite,
/// AES_CM_128_HMAC_SHA1_80 by default): 444 for anything else.
fn srtp_of(body: &Map<String, Value>) -> Result<SrtpMode, Failure> {
    let suite = match optional_str(body, "srtp_profile")? {
        None => Suite::AesCm128HmacSha1_80,
        Some(p) => Suite::parse(p).ok_or((
            err::INVALID_ELEMENT,
            format!("Invalid element (unsupported SRTP profile {p})"),
        ))?,
    };
    match optional_str(body, "srtp")? {
        None => Ok(SrtpMode::Off),
        Some("sdes_optional") => Ok(SrtpMode::Optional(suite)),
        Some("sdes_mandatory") => Ok(SrtpMode::Mandatory(suite)),
        Some(_) => Err((
            err::INVALID_ELEMENT,
            "Invalid element (srtp can only be sdes_optional or sdes_mandatory)".into(),
        )),
    }
}

/// Longest string field but `content` (a message body, bounded by the request size).
const MAX_FIELD: usize = 2048;

/// A string field. Every one but `content` ends up in a SIP header, an SDP line or an
/// event: CR, LF or NUL would end that line and start another of the caller's choosing
/// (444, naming the field).
fn optional_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Failure> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if key == "content" => Ok(Some(s)),
        Some(Value::String(s)) if s.contains(['\r', '\n', '\0']) => Err((
            err::INVALID_ELEMENT,
            format!("Invalid element ({key} may not hold CR, LF or NUL)"),
        )),
        Some(Value::String(s)) if s.len() > MAX_FIELD => Err((
            err::INVALID_ELEMENT,
            format!("Invalid element ({key} is longer than {MAX_FIELD} bytes)"),
        )),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err((
            err::INVALID_ELEMENT,
            format!("Invalid element type ({key} should be a string)"),
        )),
    }
}

/// A SIP address field (`uri`, `username`, `proxy`, `outbound_proxy`): besides line
/// breaks, no `<`, `>`, quotes, spaces or `?` (a `?headers` part would put headers of
/// the caller's choosing in our request): 446 naming the field.
fn address_field<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Failure> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || "<>?\"\\".contains(c);
    match body.get(key) {
        Some(Value::String(s)) if s.len() > MAX_FIELD || s.contains(bad) => Err((
            err::INVALID_ADDRESS,
            format!("Invalid address ({key}: no spaces, line breaks, <, >, quotes or ?headers)"),
        )),
        _ => optional_str(body, key),
    }
}

/// A display name or auth user, written inside quotes: 444 for what would end them.
fn quoted_field<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Failure> {
    let value = optional_str(body, key)?;
    if value.is_some_and(|v| v.contains(|c: char| c.is_control() || "<>\"\\".contains(c))) {
        return Err((
            err::INVALID_ELEMENT,
            format!("Invalid element ({key} may not hold <, >, quotes or control characters)"),
        ));
    }
    Ok(value)
}

/// Headers that give a SIP message its structure and routing: the user agent writes
/// them, a request's `headers` may not.
const STRUCTURAL_HEADERS: [&str; 11] = [
    "via",
    "route",
    "record-route",
    "contact",
    "from",
    "to",
    "call-id",
    "cseq",
    "content-length",
    "content-type",
    "max-forwards",
];

/// Most custom headers one request may add (each at most 1024 bytes).
const MAX_CUSTOM_HEADERS: usize = 16;

/// The compact forms of those (RFC 3261 7.3.3): v, m, f, t, i, l, c.
const COMPACT_STRUCTURAL: [&str; 7] = ["v", "m", "f", "t", "i", "l", "c"];

/// The `headers` object of a request, each checked for what would break the message.
fn headers_of(body: &Map<String, Value>) -> Result<Vec<(String, String)>, Failure> {
    let Some(h) = body.get("headers") else {
        return Ok(Vec::new());
    };
    let Some(h) = h.as_object() else {
        return Err((
            err::INVALID_ELEMENT,
            "Invalid element type (headers should be an object)".into(),
        ));
    };
    if h.len() > MAX_CUSTOM_HEADERS {
        return Err((
            err::INVALID_ELEMENT,
            format!("Invalid element (at most {MAX_CUSTOM_HEADERS} custom headers)"),
        ));
    }
    let mut out = Vec::with_capacity(h.len());
    for (name, value) in h {
        let Some(value) = value.as_str() else {
            return Err((
                err::INVALID_ELEMENT,
                format!("Invalid element type (header '{name}' should be a string)"),
            ));
        };
        check_header(name, value)
            .map_err(|e| (err::INVALID_ELEMENT, format!("Invalid element ({e})")))?;
        let lower = name.to_ascii_lowercase();
        if STRUCTURAL_HEADERS.contains(&lower.as_str())
            || COMPACT_STRUCTURAL.contains(&lower.as_str())
        {
            return Err((
                err::INVALID_ELEMENT,
                format!(
                    "Invalid element (header '{name}' is written by the gateway, not the request)"
                ),
            ));
        }
        out.push((name.clone(), value.to_owned()));
    }
    Ok(out)
}

impl Sip {
    /// Validates a `register`; the account to register, or None when nothing is sent.
    fn register(
        &mut self,
        handle: HandleId,
        body: &Map<String, Value>,
    ) -> Result<Option<Account>, Failure> {
        match self.handles.get(&handle).map(|h| h.registration) {
            Some(Registration::Registering | Registration::Registered { .. }) => {
                return Err((err::ALREADY_REGISTERED, "Already registered".into()))
            }
            // Its `unregistered` is still to come and would end the new registration.
            Some(Registration::Unregistering) => {
                return Err((err::WRONG_STATE, "Wrong state (still unregistering)".into()))
            }
            None => {}
        }
        let kind = optional_str(body, "type")?.unwrap_or("");
        let guest = match kind {
            "" => false,
            "guest" => true,
            "helper" => {
                return Err((
                    err::INVALID_ELEMENT,
                    "Invalid element (type 'helper' is not supported yet)".into(),
                ))
            }
            other => {
                return Err((
                    err::INVALID_ELEMENT,
                    format!("Invalid element (unknown type '{other}')"),
                ))
            }
        };
        let send_register = match body.get("send_register") {
            None => !guest,
            Some(Value::Bool(b)) => *b && !guest,
            Some(_) => {
                return Err((
                    err::INVALID_ELEMENT,
                    "Invalid element type (send_register should be a boolean)".into(),
                ))
            }
        };
        let uri = address_field(body, "username")?
            .ok_or((err::MISSING_ELEMENT, "Missing element (username)".into()))?;
        let (user, domain) = split_sip_uri(uri).ok_or((
            err::INVALID_ADDRESS,
            format!("Invalid user address ({uri})"),
        ))?;
        if body.contains_key("ha1_secret") {
            return Err((
                err::INVALID_ELEMENT,
                "Invalid element (ha1_secret is not supported yet: use secret)".into(),
            ));
        }
        let secret = optional_str(body, "secret")?;
        if secret.is_none() && send_register {
            return Err((err::MISSING_ELEMENT, "Missing element (secret)".into()));
        }
        let authuser = quoted_field(body, "authuser")?;
        let proxy = address_field(body, "outbound_proxy")?.or(address_field(body, "proxy")?);
        if let Some(p) = proxy {
            if !p.starts_with("sip:") && !p.starts_with("sips:") {
                return Err((err::INVALID_ADDRESS, format!("Invalid proxy address ({p})")));
            }
        }
        let ttl = match body.get("register_ttl") {
            None => self.default_ttl,
            Some(v) => match v.as_u64() {
                Some(t) if (1..=86_400).contains(&t) => t as u32,
                _ => {
                    return Err((
                        err::INVALID_ELEMENT,
                        "Invalid element (register_ttl should be 1..86400 seconds)".into(),
                    ))
                }
            },
        };
        let headers = headers_of(body)?;
        let display_name = quoted_field(body, "display_name")?.map(str::to_owned);
        let account = Account {
            uri: uri.to_owned(),
            user: user.to_owned(),
            domain: domain.to_owned(),
            secret: secret.map(str::to_owned),
            authuser: authuser.map(str::to_owned),
            proxy: proxy.map(str::to_owned),
            ttl,
            headers,
            transcode: transcode_of(body, true)?,
        };
        self.handles.insert(
            handle,
            SipHandle {
                registration: if send_register {
                    Registration::Registering
                } else {
                    Registration::Registered { sent: false }
                },
                user: user.to_owned(),
                uri: uri.to_owned(),
                account: account.clone(),
                display_name,
                call: None,
            },
        );
        Ok(send_register.then_some(account))
    }

    /// The handle's call, when it is in one of `states`.
    fn call_in(&mut self, handle: HandleId, states: &[CallState]) -> Result<&mut Call, Failure> {
        match self.handles.get_mut(&handle).and_then(|h| h.call.as_mut()) {
            Some(c) if states.contains(&c.state) => Ok(c),
            Some(c) => Err((
                err::WRONG_STATE,
                format!("Wrong state (call is {})", c.state.name()),
            )),
            None => Err((err::WRONG_STATE, "Wrong state (not in a call)".into())),
        }
    }

    fn call(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        body: &Map<String, Value>,
        jsep: Option<&Jsep>,
    ) -> Result<(), Failure> {
        let Some(h) = self.handles.get(&handle) else {
            return Err((err::WRONG_STATE, "Wrong state (register first)".into()));
        };
        if h.registration == Registration::Unregistering {
            return Err((err::WRONG_STATE, "Wrong state (unregistering)".into()));
        }
        if h.call.is_some() {
            return Err((err::WRONG_STATE, "Wrong state (already in a call)".into()));
        }
        let uri = sip_uri_of(body)?;
        let transcode = transcode_of(body, h.account.transcode)?;
        let srtp = srtp_of(body)?;
        let headers = headers_of(body)?;
        let Some(offer) = jsep.filter(|j| j.kind == JsepKind::Offer) else {
            return Err((
                err::MISSING_SDP,
                "Missing SDP (a JSEP offer is needed)".into(),
            ));
        };
        let mid = audio_mid(&offer.sdp).ok_or((
            err::MISSING_SDP,
            "Missing SDP (the offer has no audio)".into(),
        ))?;
        let (leg, browser) = if transcode {
            (VoiceLeg::Opus, BrowserCodec::Opus)
        } else {
            (VoiceLeg::G711, BrowserCodec::Same)
        };
        let source = ctx.allocate_source();
        let (to_bridge, from_browser) = mpsc::channel(64);
        let stats = Arc::new(BridgeStats::default());
        let media = Box::new(CallMediaHandler::new(to_bridge, Some(mid), stats.clone()));
        let answer = ctx
            .accept_voice_offer(handle, offer, media, leg, vec![source])
            .map_err(|e| (err::MISSING_SDP, format!("Error parsing SDP: {}", e.reason)))?;
        let uri = uri.to_owned();
        let h = self.handles.get_mut(&handle).expect("checked above");
        h.call = Some(Call {
            state: CallState::Calling,
            call_id: None,
            peer: uri.clone(),
            answer: Some(answer.to_json()),
            source,
            mid: Some(mid),
            browser,
            stats: stats.clone(),
            updating: None,
            offered_srtp: None,
        });
        ctx.sip(SipCommand::Call {
            handle,
            uri,
            account: h.account.clone(),
            display_name: h.display_name.clone(),
            headers,
            media: CallMedia {
                source,
                from_browser,
                browser,
                stats,
                srtp,
            },
        });
        Ok(())
    }

    /// `message` with a `uri`: a MESSAGE outside any dialog from the handle's account;
    /// `messagesent` {call_id} now, `messagedelivery` {code, reason} with its answer.
    fn message_out_of_dialog(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        tx: &str,
        body: &Map<String, Value>,
        content_type: String,
        content: String,
    ) -> Result<(), Failure> {
        let uri = sip_uri_of(body)?;
        let headers = headers_of(body)?;
        let Some(h) = self.handles.get(&handle) else {
            return Err((err::WRONG_STATE, "Wrong state (register first)".into()));
        };
        let call_id = format!("{:032x}", rand::random::<u128>());
        let mut data = result(json!({"event": "messagesent"}));
        data["call_id"] = json!(call_id);
        ctx.push_event(handle, Some(tx), data, None);
        ctx.sip(SipCommand::Message {
            handle,
            uri: uri.to_owned(),
            account: h.account.clone(),
            call_id,
            content_type,
            content,
            headers,
        });
        Ok(())
    }

    /// `accept` (200) or `progress` (183 with early media) for an incoming call. The
    /// browser's JSEP answer comes with the first of them; `accept` after `progress`
    /// needs none.
    fn answer(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        tx: &str,
        body: &Map<String, Value>,
        jsep: Option<&Jsep>,
        early: bool,
    ) -> Result<(), Failure> {
        let srtp = srtp_of(body)?;
        let states: &[CallState] = if early {
            &[CallState::Ringing]
        } else {
            &[CallState::Ringing, CallState::Progressing]
        };
        let call = self.call_in(handle, states)?;
        if matches!(srtp, SrtpMode::Mandatory(_)) && call.offered_srtp.is_none() {
            return Err((
                err::TOO_STRICT,
                "Can't accept the call: SDES-SRTP required, but caller didn't offer it".into(),
            ));
        }
        let media = if call.state == CallState::Progressing {
            // The media was set up by `progress`.
            None
        } else {
            let Some(answer) = jsep.filter(|j| j.kind == JsepKind::Answer) else {
                return Err((
                    err::MISSING_SDP,
                    "Missing SDP (a JSEP answer is needed)".into(),
                ));
            };
            let (to_bridge, from_browser) = mpsc::channel(64);
            let (source, browser, stats) = (call.source, call.browser, call.stats.clone());
            let media = Box::new(CallMediaHandler::new(to_bridge, call.mid, stats.clone()));
            ctx.accept_answer(handle, answer, media, vec![source])
                .map_err(|e| (err::MISSING_SDP, format!("Error parsing SDP: {}", e.reason)))?;
            Some(CallMedia {
                source,
                from_browser,
                browser,
                stats,
                srtp,
            })
        };
        let (state, event, op) = match (early, media) {
            (true, Some(media)) => (
                CallState::Progressing,
                "progressing",
                CallOp::Progress(media),
            ),
            (_, media) => (CallState::Accepting, "accepting", CallOp::Accept(media)),
        };
        call.state = state;
        ctx.push_event(handle, Some(tx), result(json!({ "event": event })), None);
        ctx.sip(SipCommand::InCall { handle, op });
        Ok(())
    }

    fn call_event(&mut self, ctx: &mut PluginCtx<'_>, handle: HandleId, what: &CallEvent) {
        let Some(h) = self.handles.get_mut(&handle) else {
            return;
        };
        if let CallEvent::Incoming {
            call_id,
            caller,
            display_name,
            callee,
            srtp,
        } = what
        {
            if h.call.is_some() {
                // The user agent thought the handle free: refuse this one.
                ctx.sip(SipCommand::InCall {
                    handle,
                    op: CallOp::Decline(486),
                });
                return;
            }
            let (leg, browser) = if h.account.transcode {
                (VoiceLeg::Opus, BrowserCodec::Opus)
            } else {
                (VoiceLeg::G711, BrowserCodec::Same)
            };
            let (jsep, mid) = match ctx.create_voice_offer(handle, leg) {
                Ok(x) => x,
                Err(e) => {
                    tracing::info!(%handle, error = %e.reason, "incoming call refused: no PeerConnection");
                    ctx.sip(SipCommand::InCall {
                        handle,
                        op: CallOp::Decline(480),
                    });
                    return;
                }
            };
            h.call = Some(Call {
                state: CallState::Ringing,
                call_id: Some(call_id.clone()),
                peer: caller.clone(),
                answer: None,
                source: ctx.allocate_source(),
                mid: Some(mid),
                browser,
                stats: Arc::new(BridgeStats::default()),
                updating: None,
                offered_srtp: *srtp,
            });
            tracing::info!(%handle, %caller, "incoming SIP call");
            let mut data = result(json!({
                "event": "incomingcall",
                "username": caller,
                "displayname": display_name,
                "callee": callee,
            }));
            if let Some(srtp) = srtp {
                data["result"]["srtp"] = json!(srtp);
            }
            data["call_id"] = json!(call_id);
            ctx.push_event(handle, None, data, Some(jsep.to_json()));
            return;
        }
        if let CallEvent::Missed {
            caller,
            display_name,
            callee,
        } = what
        {
            ctx.push_event(
                handle,
                None,
                result(json!({"event": "missed_call", "caller": caller, "displayname": display_name, "callee": callee})),
                None,
            );
            return;
        }
        let Some(call) = h.call.as_mut() else {
            return;
        };
        let call_id = call.call_id.clone();
        let mut jsep = None;
        let event = match what {
            CallEvent::Incoming { .. } | CallEvent::Missed { .. } => return,
            CallEvent::Calling { call_id } => {
                call.call_id = Some(call_id.clone());
                json!({"event": "calling", "call_id": call_id})
            }
            CallEvent::Progress { code: 180, .. } => json!({"event": "ringing"}),
            CallEvent::Progress { code: 183, .. } => {
                jsep = call.answer.take();
                json!({"event": "progress", "username": call.peer})
            }
            CallEvent::Progress { code, reason } => {
                json!({"event": "proceeding", "code": code, "reason": reason})
            }
            CallEvent::Accepted { codec } => {
                call.state = CallState::InCall;
                jsep = call.answer.take();
                json!({"event": "accepted", "username": call.peer, "sip_codec": codec})
            }
            CallEvent::Updated { direction } => {
                json!({"event": "updated", "direction": direction.as_str()})
            }
            CallEvent::DirectionSet { direction, code } => {
                json!({"event": "updated", "direction": direction.as_str(), "code": code})
            }
            CallEvent::Dtmf {
                signal,
                duration,
                info,
            } => json!({
                "event": "dtmf",
                "sender": call.peer,
                "signal": signal.to_string(),
                "duration": duration,
                "via": if *info { "info" } else { "rfc4733" },
            }),
            CallEvent::Info {
                content_type,
                content,
            } => json!({
                "event": "info", "sender": call.peer, "type": content_type, "content": content,
            }),
            CallEvent::Message {
                content_type,
                content,
            } => json!({
                "event": "message", "sender": call.peer, "content_type": content_type, "content": content,
            }),
            CallEvent::Delivery {
                what: "message",
                code,
                reason,
            } => {
                json!({"event": "messagedelivery", "code": code, "reason": reason})
            }
            CallEvent::Delivery { what, code, reason } => {
                json!({"event": "delivery", "request": what, "code": code, "reason": reason})
            }
            CallEvent::Transfer {
                refer_to,
                referred_by,
            } => json!({
                "event": "transfer", "refer_to": refer_to, "referred_by": referred_by,
            }),
            CallEvent::Ended { code, reason } => {
                tracing::info!(%handle, code, %reason, "SIP call ended");
                // The call's audio source goes too (the engine keeps state per source).
                ctx.stop_source(call.source);
                h.call = None;
                ctx.close_pc(handle);
                json!({"event": "hangup", "code": code, "reason": reason})
            }
        };
        let mut data = result(event);
        if let Some(id) = call_id {
            data["call_id"] = json!(id);
        }
        ctx.push_event(handle, None, data, jsep);
    }

    fn message(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        tx: &str,
        body: &Map<String, Value>,
        jsep: Option<&Jsep>,
    ) -> Result<(), Failure> {
        let request = match body.get("request") {
            None => return Err((err::MISSING_ELEMENT, "Missing element (request)".into())),
            Some(Value::String(r)) => r.to_ascii_lowercase(),
            Some(_) => {
                return Err((
                    err::INVALID_ELEMENT,
                    "Invalid element type (request should be a string)".into(),
                ))
            }
        };
        if !self.enabled {
            return Err((err::UNKNOWN, "The SIP user agent is not running".into()));
        }
        match request.as_str() {
            "register" => {
                let account = self.register(handle, body)?;
                let user = self.handles.get(&handle).map(|h| h.user.clone());
                match account {
                    Some(account) => {
                        ctx.push_event(
                            handle,
                            Some(tx),
                            result(json!({"event": "registering"})),
                            None,
                        );
                        ctx.sip(SipCommand::Register { handle, account });
                    }
                    None => ctx.push_event(
                        handle,
                        Some(tx),
                        result(json!({"event": "registered", "username": user, "register_sent": false})),
                        None,
                    ),
                }
                Ok(())
            }
            "unregister" => {
                let Some(h) = self.handles.get_mut(&handle) else {
                    return Err((err::WRONG_STATE, "Wrong state (not registered)".into()));
                };
                match h.registration {
                    Registration::Registered { sent: true } | Registration::Registering => {
                        h.registration = Registration::Unregistering;
                        ctx.push_event(
                            handle,
                            Some(tx),
                            result(json!({"event": "unregistering"})),
                            None,
                        );
                        ctx.sip(SipCommand::Unregister { handle });
                        Ok(())
                    }
                    Registration::Registered { sent: false } => {
                        let user = h.user.clone();
                        self.handles.remove(&handle);
                        ctx.push_event(
                            handle,
                            Some(tx),
                            result(json!({"event": "unregistered", "username": user, "register_sent": false})),
                            None,
                        );
                        Ok(())
                    }
                    _ => Err((err::WRONG_STATE, "Wrong state (not registered)".into())),
                }
            }
            "call" => self.call(ctx, handle, body, jsep),
            "accept" => self.answer(ctx, handle, tx, body, jsep, false),
            "progress" => self.answer(ctx, handle, tx, body, jsep, true),
            "decline" => {
                let code = match body.get("code") {
                    None => 486,
                    Some(v) => match v.as_u64() {
                        Some(c) if (400..700).contains(&c) => c as u16,
                        _ => {
                            return Err((
                                err::INVALID_ELEMENT,
                                "Invalid element (code should be a SIP error code, 400..699)"
                                    .into(),
                            ))
                        }
                    },
                };
                let call = self.call_in(handle, &[CallState::Ringing, CallState::Progressing])?;
                call.state = CallState::Ending;
                ctx.push_event(
                    handle,
                    Some(tx),
                    result(json!({"event": "declining", "code": code})),
                    None,
                );
                ctx.sip(SipCommand::InCall {
                    handle,
                    op: CallOp::Decline(code),
                });
                Ok(())
            }
            "send_ringing" => {
                self.call_in(handle, &[CallState::Ringing])?;
                ctx.push_event(handle, Some(tx), result(json!({"event": "ringing"})), None);
                ctx.sip(SipCommand::InCall {
                    handle,
                    op: CallOp::Ringing,
                });
                Ok(())
            }
            "hangup" => {
                let call = self.call_in(
                    handle,
                    &[
                        CallState::Calling,
                        CallState::Accepting,
                        CallState::InCall,
                        CallState::Ringing,
                        CallState::Progressing,
                    ],
                )?;
                let op = if matches!(call.state, CallState::Ringing | CallState::Progressing) {
                    CallOp::Decline(480)
                } else {
                    CallOp::Hangup
                };
                call.state = CallState::Ending;
                ctx.push_event(
                    handle,
                    Some(tx),
                    result(json!({"event": "hangingup"})),
                    None,
                );
                ctx.sip(SipCommand::InCall { handle, op });
                Ok(())
            }
            "hold" | "unhold" => {
                let direction = if request == "unhold" {
                    Direction::SendRecv
                } else {
                    match optional_str(body, "direction")?.unwrap_or("sendonly") {
                        "sendonly" => Direction::SendOnly,
                        "recvonly" => Direction::RecvOnly,
                        "inactive" => Direction::Inactive,
                        other => {
                            return Err((
                                err::INVALID_ELEMENT,
                                format!("Invalid element (direction '{other}': sendonly, recvonly or inactive)"),
                            ))
                        }
                    }
                };
                self.call_in(handle, &[CallState::InCall])?;
                let event = if request == "hold" {
                    "holding"
                } else {
                    "resuming"
                };
                ctx.push_event(
                    handle,
                    Some(tx),
                    result(json!({"event": event, "direction": direction.as_str()})),
                    None,
                );
                ctx.sip(SipCommand::InCall {
                    handle,
                    op: CallOp::Direction(direction),
                });
                Ok(())
            }
            "dtmf_info" => {
                let digit = optional_str(body, "digit")?
                    .ok_or((err::MISSING_ELEMENT, "Missing element (digit)".into()))?;
                let mut chars = digit.chars();
                let (Some(d), None) = (chars.next(), chars.next()) else {
                    return Err((
                        err::INVALID_ELEMENT,
                        "Invalid element (digit should be one of 0-9, *, #, A-D)".into(),
                    ));
                };
                if crate::ingest::sip::bridge::dtmf_code(d).is_none() {
                    return Err((
                        err::INVALID_ELEMENT,
                        "Invalid element (digit should be one of 0-9, *, #, A-D)".into(),
                    ));
                }
                let duration = match body.get("duration") {
                    None => 160,
                    Some(v) => match v.as_u64() {
                        Some(ms) if (40..=6000).contains(&ms) => ms as u32,
                        _ => {
                            return Err((
                                err::INVALID_ELEMENT,
                                "Invalid element (duration should be 40..6000 ms)".into(),
                            ))
                        }
                    },
                };
                self.call_in(handle, &[CallState::InCall])?;
                ctx.push_event(handle, Some(tx), result(json!({"event": "dtmfsent"})), None);
                ctx.sip(SipCommand::InCall {
                    handle,
                    op: CallOp::DtmfInfo { digit: d, duration },
                });
                Ok(())
            }
            "info" | "message" => {
                let content = optional_str(body, "content")?
                    .ok_or((err::MISSING_ELEMENT, "Missing element (content)".into()))?
                    .to_owned();
                let key = if request == "info" {
                    "type"
                } else {
                    "content_type"
                };
                let default = if request == "info" {
                    "application/octet-stream"
                } else {
                    "text/plain"
                };
                let content_type = optional_str(body, key)?.unwrap_or(default).to_owned();
                check_header("Content-Type", &content_type)
                    .map_err(|e| (err::INVALID_ELEMENT, format!("Invalid element ({e})")))?;
                if request == "message" && body.contains_key("uri") {
                    return self.message_out_of_dialog(
                        ctx,
                        handle,
                        tx,
                        body,
                        content_type,
                        content,
                    );
                }
                self.call_in(handle, &[CallState::InCall])?;
                let (event, op) = if request == "info" {
                    (
                        "infosent",
                        CallOp::Info {
                            content_type,
                            content,
                        },
                    )
                } else {
                    (
                        "messagesent",
                        CallOp::Message {
                            content_type,
                            content,
                        },
                    )
                };
                ctx.push_event(handle, Some(tx), result(json!({"event": event})), None);
                ctx.sip(SipCommand::InCall { handle, op });
                Ok(())
            }
            "transfer" => {
                let uri = sip_uri_of(body)?;
                if body.contains_key("replace") {
                    return Err((
                        err::INVALID_REQUEST,
                        "Attended transfer (replace) is not supported yet".into(),
                    ));
                }
                let uri = uri.to_owned();
                self.call_in(handle, &[CallState::InCall])?;
                ctx.push_event(
                    handle,
                    Some(tx),
                    result(json!({"event": "transferring"})),
                    None,
                );
                ctx.sip(SipCommand::InCall {
                    handle,
                    op: CallOp::Transfer { uri },
                });
                Ok(())
            }
            "update" => {
                // The browser renegotiates its leg (an ICE restart after a network
                // change, typically). The SIP leg's media does not change with it, so no
                // re-INVITE goes out; the peer's re-INVITEs are answered by the gateway.
                let call = self.call_in(handle, &[CallState::InCall])?;
                let Some(offer) = jsep.filter(|j| j.kind == JsepKind::Offer) else {
                    return Err((
                        err::MISSING_SDP,
                        "Missing SDP (update needs the browser's JSEP offer)".into(),
                    ));
                };
                if call.updating.is_some() {
                    return Err((
                        err::WRONG_STATE,
                        "Wrong state (an update is already in progress)".into(),
                    ));
                }
                ctx.renegotiate(handle, offer)
                    .map_err(|e| (err::WRONG_STATE, format!("Wrong state ({})", e.reason)))?;
                call.updating = Some(tx.to_owned());
                ctx.push_event(handle, Some(tx), result(json!({"event": "updating"})), None);
                Ok(())
            }
            "subscribe" | "unsubscribe" | "recording" | "keyframe" | "rtp_forward"
            | "stop_rtp_forward" | "listforwarders" | "reset" => Err((
                err::INVALID_REQUEST,
                format!("Request '{request}' is not supported yet"),
            )),
            _ => Err((err::INVALID_REQUEST, format!("Unknown request '{request}'"))),
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
        if let Err((code, text)) = self.message(
            ctx,
            msg.handle,
            &msg.transaction,
            &msg.body,
            msg.jsep.as_ref(),
        ) {
            ctx.push_event(
                msg.handle,
                Some(&msg.transaction),
                error_event(code, text),
                None,
            );
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
                error_event(err::MISSING_SDP, format!("Error parsing SDP: {e}")),
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
}

/// The `a=mid` of the first audio m-line of an SDP.
fn audio_mid(sdp: &str) -> Option<Mid> {
    let mut in_audio = false;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            if in_audio {
                return None;
            }
            in_audio = m.starts_with("audio ");
        } else if in_audio {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                return Some(Mid::from(mid.trim()));
            }
        }
    }
    None
}

/// The media half of a call: the browser's audio and DTMF to the call's bridge,
/// the bridge's audio to the browser. Never blocks: a full channel drops the frame,
/// counted in the call's `browser_dropped` (admin `handle_info`).
struct CallMediaHandler {
    to_bridge: mpsc::Sender<BrowserFrame>,
    mid: Option<Mid>,
    stats: Arc<BridgeStats>,
}

impl CallMediaHandler {
    fn new(
        to_bridge: mpsc::Sender<BrowserFrame>,
        mid: Option<Mid>,
        stats: Arc<BridgeStats>,
    ) -> Self {
        CallMediaHandler {
            to_bridge,
            mid,
            stats,
        }
    }

    fn pass(&self, frame: BrowserFrame) {
        if self.to_bridge.try_send(frame).is_err() {
            self.stats.browser_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl MediaHandler for CallMediaHandler {
    fn incoming_media(&mut self, _out: &mut MediaOut<'_>, data: &MediaData) {
        use str0m::format::Codec;
        if self.mid.is_none() {
            self.mid = Some(data.mid);
        }
        let ts = data.time.numer() as u32;
        match data.params.spec().codec {
            Codec::Opus | Codec::PCMU | Codec::PCMA => {
                if let Some(f) = BrowserFrame::audio(ts, &data.data) {
                    self.pass(f);
                }
            }
            Codec::Tele => {
                if let str0m::format::CodecExtra::Tele(ev) = data.codec_extra {
                    self.pass(BrowserFrame::Dtmf {
                        ts,
                        code: ev.event,
                        end: ev.end,
                        duration: ev.duration,
                    });
                }
            }
            _ => {}
        }
    }

    fn source_packet(
        &mut self,
        out: &mut MediaOut<'_>,
        packet: &crate::media::webrtc::SourcePacket,
    ) {
        use str0m::format::Codec;
        let Some(mid) = self.mid else {
            return;
        };
        let codec = match packet.header.pt {
            0 => Codec::PCMU,
            8 => Codec::PCMA,
            _ => Codec::Opus,
        };
        out.write_audio(
            mid,
            codec,
            packet.arrival,
            packet.header.timestamp as u64,
            &packet.payload,
        );
    }
}
