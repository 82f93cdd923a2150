//! `janus.plugin.sip`: a web page registers to a PBX or SIP trunk through the gateway.
//!
//! Every request is asynchronous, as in Janus: an `ack`, then a `{"sip":"event"}`
//! carrying the result or `error_code`/`error` (440–499, Janus's codes). This
//! plugin validates and keeps per-handle state; the SIP itself happens in the user
//! agent (`crate::ingest::sip`), which it drives with commands and hears from
//! through [`Plugin::sip_event`].
//!
//! Done: `register` (digest with `secret`, `authuser`, `proxy`/`outbound_proxy`,
//! `register_ttl` with automatic refresh, `type: guest`, `send_register: false`,
//! custom `headers`), `unregister`, `registration_failed` with the SIP code. Calls
//! and the rest of the requests answer 442 until the media bridge lands.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{Plugin, PluginCtx, PluginInfo, PluginMessage, PluginResult};
use crate::api::{ApiError, HandleId};
use crate::ingest::sip::{check_header, split_sip_uri, Account, SipCommand, SipEvent};

/// Janus's SIP plugin error codes.
mod err {
    pub(super) const INVALID_REQUEST: u16 = 442;
    pub(super) const MISSING_ELEMENT: u16 = 443;
    pub(super) const INVALID_ELEMENT: u16 = 444;
    pub(super) const ALREADY_REGISTERED: u16 = 445;
    pub(super) const INVALID_ADDRESS: u16 = 446;
    pub(super) const WRONG_STATE: u16 = 447;
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

fn optional_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Failure> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err((
            err::INVALID_ELEMENT,
            format!("Invalid element type ({key} should be a string)"),
        )),
    }
}

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
        let uri = optional_str(body, "username")?
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
        let authuser = optional_str(body, "authuser")?;
        let proxy = optional_str(body, "outbound_proxy")?.or(optional_str(body, "proxy")?);
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
            },
        );
        Ok(send_register.then(|| Account {
            uri: uri.to_owned(),
            user: user.to_owned(),
            domain: domain.to_owned(),
            secret: secret.map(str::to_owned),
            authuser: authuser.map(str::to_owned),
            proxy: proxy.map(str::to_owned),
            ttl,
            headers,
        }))
    }

    fn message(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        tx: &str,
        body: &Map<String, Value>,
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
            "call" | "accept" | "decline" | "progress" | "send_ringing" | "hangup" | "hold"
            | "unhold" | "update" | "dtmf_info" | "info" | "message" | "transfer" | "subscribe"
            | "unsubscribe" | "recording" | "keyframe" | "rtp_forward" | "stop_rtp_forward"
            | "listforwarders" | "reset" => Err((
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
                "Registers web pages to SIP servers (calls through the media bridge to come)",
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
        if let Err((code, text)) = self.message(ctx, msg.handle, &msg.transaction, &msg.body) {
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

    fn destroy_session(&mut self, ctx: &mut PluginCtx<'_>, handle: HandleId) {
        if self.handles.remove(&handle).is_some() {
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
            }),
        }
    }
}
