//! The admin API: same envelope as the main API, guarded by `admin_secret`.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::media::webrtc::MediaCounters;

use super::{
    code, no_handle, no_session, ApiError, Gateway, HandleId, Origin, Output, Owner, Request,
    Target,
};

impl Gateway {
    /// A request to the admin API. Over HTTP, `url_target` is read from the path.
    pub fn handle_admin_request(
        &mut self,
        now: Instant,
        origin: Origin,
        url_target: Option<Target>,
        body: &[u8],
    ) -> Value {
        self.answer(now, origin, url_target, body, Self::admin_dispatch)
    }

    fn check_admin_secret(&self, body: &Map<String, Value>) -> Result<(), ApiError> {
        let secret = &self.core.config.general.admin_secret;
        if secret.is_empty()
            || crate::secret::given_eq(body.get("admin_secret").and_then(Value::as_str), secret)
        {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    }

    fn admin_dispatch(
        &mut self,
        now: Instant,
        _origin: Origin,
        req: &Request,
    ) -> Result<Value, ApiError> {
        let tx = req.transaction.as_str();
        let verb = req.janus.as_str();
        match verb {
            "ping" if req.target.session.is_none() => {
                return Ok(json!({"janus": "pong", "transaction": tx}))
            }
            "info" if req.target.session.is_none() => return Ok(self.server_info(tx)),
            _ => {}
        }
        self.check_admin_secret(&req.body)?;
        let Some(sid) = req.target.session else {
            return self.admin_root(now, req);
        };
        if !self.core.sessions.contains_key(&sid) {
            return Err(no_session(sid));
        }
        if let Some(hid) = req.target.handle {
            match self.core.handles.get(&hid) {
                Some(h) if h.session == sid => {}
                _ => return Err(no_handle(hid)),
            }
            return match verb {
                "handle_info" => Ok(json!({"janus": "success", "transaction": tx,
                    "session_id": sid.0, "handle_id": hid.0, "info": self.handle_info(now, hid, &req.body)})),
                "hangup_webrtc" => {
                    self.core.hangup(now, &mut self.plugins, hid, "Admin API");
                    Ok(json!({"janus": "success", "transaction": tx}))
                }
                "detach_handle" => {
                    self.detach(now, hid);
                    Ok(json!({"janus": "success", "transaction": tx}))
                }
                "list_handles" | "destroy_session" => Err(ApiError::path(verb)),
                other => Err(ApiError::unknown_request(other)),
            };
        }
        match verb {
            "list_handles" => {
                let handles: Vec<u64> = self.core.sessions[&sid]
                    .handles
                    .iter()
                    .map(|h| h.0)
                    .collect();
                Ok(
                    json!({"janus": "success", "transaction": tx, "session_id": sid.0, "handles": handles}),
                )
            }
            "destroy_session" => {
                self.destroy_session(now, sid);
                Ok(json!({"janus": "success", "transaction": tx}))
            }
            "handle_info" | "hangup_webrtc" | "detach_handle" => Err(ApiError::path(verb)),
            other => Err(ApiError::unknown_request(other)),
        }
    }

    fn admin_root(&mut self, now: Instant, req: &Request) -> Result<Value, ApiError> {
        let tx = req.transaction.as_str();
        let body = &req.body;
        match req.janus.as_str() {
            "list_sessions" => {
                let mut ids: Vec<u64> = self.core.sessions.keys().map(|s| s.0).collect();
                ids.sort_unstable();
                Ok(json!({"janus": "success", "transaction": tx, "sessions": ids}))
            }
            "get_status" => Ok(json!({"janus": "success", "transaction": tx, "status": {
                "token_auth": self.core.config.general.token_auth,
                "session_timeout": self.core.session_timeout.map_or(0, |d| d.as_secs()),
                "reclaim_session_timeout": self.core.config.general.reclaim_session_timeout,
                "log_level": self.core.log_level,
                "accepting_new_sessions": self.core.accepting,
                "sessions": self.core.sessions.len(),
                "handles": self.core.handles.len(),
                "dropped_events": self.core.dropped_events,
                "uptime": now.saturating_duration_since(self.core.started).as_secs(),
                "media": MediaCounters::to_json(self.core.webrtc.counters()),
            }})),
            "accept_new_sessions" => {
                let accept = required_bool(body, "accept")?;
                self.core.accepting = accept;
                Ok(json!({"janus": "success", "transaction": tx, "accept": accept}))
            }
            "set_session_timeout" => {
                let timeout = required_u64(body, "timeout")?;
                self.core.session_timeout = (timeout > 0).then(|| Duration::from_secs(timeout));
                Ok(json!({"janus": "success", "transaction": tx, "timeout": timeout}))
            }
            "set_log_level" => {
                let level = required_u64(body, "level")?;
                if level > 7 {
                    return Err(ApiError::new(
                        code::INVALID_ELEMENT_TYPE,
                        "Invalid element type (level should be between 0 and 7)",
                    ));
                }
                self.core.log_level = level as u8;
                self.core
                    .outputs
                    .push_back(Output::SetLogLevel(level as u8));
                Ok(json!({"janus": "success", "transaction": tx, "level": level}))
            }
            "add_token" | "allow_token" | "disallow_token" => {
                self.require_token_auth()?;
                let token = required_str(body, "token")?.to_owned();
                let plugins = self.plugin_list(body.get("plugins"))?;
                let verb = req.janus.as_str();
                let entry = match (verb, self.core.tokens.get_mut(&token)) {
                    ("add_token", Some(e)) => e,
                    ("add_token", None) => self.core.tokens.entry(token).or_default(),
                    (_, Some(e)) => e,
                    (_, None) => {
                        return Err(ApiError::new(
                            code::TOKEN_NOT_FOUND,
                            format!("Token {token} not found"),
                        ))
                    }
                };
                match verb {
                    "disallow_token" => entry.retain(|p| !plugins.contains(p)),
                    "add_token" if body.get("plugins").is_none() => {
                        // No list: the token may use every plugin, as Janus does.
                        entry.extend(self.plugins.iter().map(|p| p.info().package.to_owned()))
                    }
                    _ => entry.extend(plugins),
                }
                let list: Vec<&String> = entry.iter().collect();
                Ok(json!({"janus": "success", "transaction": tx, "data": {"plugins": list}}))
            }
            "list_tokens" => {
                self.require_token_auth()?;
                let tokens: Vec<Value> = self
                    .core
                    .tokens
                    .iter()
                    .map(|(t, p)| json!({"token": t, "allowed_plugins": p}))
                    .collect();
                Ok(json!({"janus": "success", "transaction": tx, "data": {"tokens": tokens}}))
            }
            "remove_token" => {
                self.require_token_auth()?;
                let token = required_str(body, "token")?;
                if self.core.tokens.remove(token).is_none() {
                    return Err(ApiError::new(
                        code::TOKEN_NOT_FOUND,
                        format!("Token {token} not found"),
                    ));
                }
                Ok(json!({"janus": "success", "transaction": tx}))
            }
            "message_plugin" => {
                let name = required_str(body, "plugin")?;
                let request = match body.get("request") {
                    Some(v @ Value::Object(_)) => v.clone(),
                    Some(_) => return Err(ApiError::bad_type("request", "an object")),
                    None => return Err(ApiError::missing("request")),
                };
                let index = self.plugin_index(name)?;
                match self.call_plugin(index, now, |p, ctx| p.handle_admin_message(ctx, &request)) {
                    Some(response) => {
                        Ok(json!({"janus": "success", "transaction": tx, "response": response}))
                    }
                    None => Err(ApiError::new(
                        code::UNKNOWN,
                        "Plugin doesn't support Admin API messages",
                    )),
                }
            }
            // Session- and handle-level requests need a session in the path.
            other => Err(ApiError::path(other)),
        }
    }

    fn require_token_auth(&self) -> Result<(), ApiError> {
        if self.core.config.general.token_auth {
            Ok(())
        } else {
            Err(ApiError::new(
                code::UNKNOWN,
                "Stored-Token based authentication disabled",
            ))
        }
    }

    fn plugin_list(&self, v: Option<&Value>) -> Result<BTreeSet<String>, ApiError> {
        let Some(v) = v else {
            return Ok(BTreeSet::new());
        };
        let list = v
            .as_array()
            .ok_or_else(|| ApiError::bad_type("plugins", "an array"))?;
        let mut out = BTreeSet::new();
        for p in list {
            let name = p
                .as_str()
                .ok_or_else(|| ApiError::bad_type("plugins", "an array of strings"))?;
            self.plugin_index(name)?;
            out.insert(name.to_owned());
        }
        Ok(out)
    }

    fn handle_info(&self, now: Instant, hid: HandleId, body: &Map<String, Value>) -> Value {
        let h = &self.core.handles[&hid];
        let plugin = &self.plugins[h.plugin];
        let plugin_specific = plugin.query_session(hid);
        if body.get("plugin_only").and_then(Value::as_bool) == Some(true) {
            return json!({"plugin_specific": plugin_specific});
        }
        let s = &self.core.sessions[&h.session];
        let transport = match s.owner {
            Owner::Http => "janus.transport.http",
            Owner::Websocket(_) => "janus.transport.websockets",
            Owner::Orphan(_) => "none",
            Owner::Internal => "cardea.whep",
        };
        let ago = |t: Instant| now.saturating_duration_since(t).as_secs();
        let webrtc = match &h.pc {
            None => Value::Null,
            Some(pc) => {
                let st = &pc.stats;
                let (ice, dtls) = st.state_names();
                let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                json!({
                    "ice": {"state": ice}, "dtls": {"state": dtls}, "connected": pc.connected,
                    "in_stats": {"packets": r(&st.packets_in), "bytes": r(&st.bytes_in)},
                    "out_stats": {
                        "packets": r(&st.packets_out), "bytes": r(&st.bytes_out),
                        "nacks": r(&st.nacks), "retransmissions": r(&st.retransmitted),
                        "retransmit_missed": r(&st.retransmit_missed),
                        "retransmit_refused": r(&st.retransmit_refused),
                    },
                })
            }
        };
        json!({
            "session_id": h.session.0,
            "session_created_seconds_ago": ago(s.created),
            "session_last_activity_seconds_ago": ago(s.last_activity),
            "session_transport": transport,
            "handle_id": hid.0,
            "opaque_id": h.opaque_id,
            "created_seconds_ago": ago(h.created),
            "plugin": plugin.info().package,
            "plugin_specific": plugin_specific,
            "flags": {"got-offer": h.pc.is_some(), "ready": h.pc.as_ref().is_some_and(|p| p.connected),
                      "trickle-completed": h.trickle_completed},
            "pending_candidates": h.pending_candidates.len(),
            "webrtc": webrtc,
        })
    }
}

fn required_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    match body.get(key) {
        None => Err(ApiError::missing(key)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::bad_type(key, "a string")),
    }
}

fn required_u64(body: &Map<String, Value>, key: &str) -> Result<u64, ApiError> {
    match body.get(key) {
        None => Err(ApiError::missing(key)),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| ApiError::bad_type(key, "a non-negative integer")),
    }
}

fn required_bool(body: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    Ok(crate::fields::req_bool(body, key)?)
}
