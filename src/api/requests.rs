//! The Janus requests on a session or handle (`create`, `attach`, `message`,
//! `trickle`, `detach`, `destroy`, `claim`, `keepalive`, …): the dispatch and each
//! request's work on the core's tables.

use super::*;
use crate::plugin::{PluginMessage, PluginResult};

impl Gateway {
    pub(super) fn dispatch(
        &mut self,
        now: Instant,
        origin: Origin,
        req: &Request,
    ) -> Result<Value, ApiError> {
        let tx = req.transaction.as_str();
        let Some(sid) = req.target.session else {
            return match req.janus.as_str() {
                "ping" => Ok(json!({"janus": "pong", "transaction": tx})),
                "info" => Ok(self.server_info(tx)),
                "create" => self.create(now, origin, req),
                other => Err(ApiError::path(other)),
            };
        };
        self.core.check_auth(&req.body)?;
        let session = self
            .core
            .sessions
            .get_mut(&sid)
            .ok_or_else(|| no_session(sid))?;
        session.last_activity = now;
        if let Some(hid) = req.target.handle {
            match self.core.handles.get(&hid) {
                Some(h) if h.session == sid => {}
                _ => return Err(no_handle(hid)),
            }
            return match req.janus.as_str() {
                "message" => self.message(now, sid, hid, req),
                "trickle" => self.trickle(sid, hid, req),
                "hangup" => {
                    self.core.hangup(now, &mut self.plugins, hid, "Janus API");
                    Ok(success(sid, tx))
                }
                "detach" => {
                    self.detach(now, hid);
                    Ok(success(sid, tx))
                }
                "create" | "info" | "ping" | "attach" | "destroy" | "keepalive" | "claim" => {
                    Err(ApiError::path(&req.janus))
                }
                other => Err(ApiError::unknown_request(other)),
            };
        }
        match req.janus.as_str() {
            "keepalive" => Ok(json!({"janus": "ack", "session_id": sid.0, "transaction": tx})),
            "attach" => self.attach(now, sid, req),
            "destroy" => {
                self.destroy_session(now, sid);
                Ok(success(sid, tx))
            }
            "claim" => {
                let new_owner = match origin.conn {
                    Some(c) => Owner::Websocket(c),
                    None => Owner::Http,
                };
                let session = self
                    .core
                    .sessions
                    .get_mut(&sid)
                    .filter(|s| s.owner != Owner::Internal)
                    .ok_or_else(|| no_session(sid))?;
                session.owner = new_owner;
                // Events queued while orphaned go to the claimer.
                if let Owner::Websocket(conn) = new_owner {
                    for msg in session.queue.drain(..) {
                        self.core.outputs.push_back(Output::Deliver { conn, msg });
                    }
                } else if !session.queue.is_empty() {
                    self.core.outputs.push_back(Output::Wake(sid));
                }
                Ok(success(sid, tx))
            }
            "create" | "info" | "ping" | "message" | "trickle" | "hangup" | "detach" => {
                Err(ApiError::path(&req.janus))
            }
            other => Err(ApiError::unknown_request(other)),
        }
    }

    pub(super) fn create(
        &mut self,
        now: Instant,
        origin: Origin,
        req: &Request,
    ) -> Result<Value, ApiError> {
        self.core.check_auth(&req.body)?;
        if !self.core.accepting {
            return Err(ApiError::new(
                code::NOT_ACCEPTING_SESSIONS,
                "Not accepting new sessions",
            ));
        }
        let id = match req.body.get("id") {
            None | Some(Value::Null) => loop {
                let id = SessionId(ids::random_id());
                if !self.core.sessions.contains_key(&id) {
                    break id;
                }
            },
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 && n < (1 << 53) => {
                    if self.core.sessions.contains_key(&SessionId(n)) {
                        return Err(ApiError::new(
                            code::SESSION_CONFLICT,
                            format!("Session ID {n} already in use"),
                        ));
                    }
                    SessionId(n)
                }
                _ => return Err(ApiError::bad_type("id", "a positive integer")),
            },
        };
        let g = &self.core.config.general;
        if self.core.sessions.len() >= g.max_sessions {
            return Err(ApiError::new(
                code::NOT_ACCEPTING_SESSIONS,
                format!(
                    "Not accepting new sessions (limit {} reached)",
                    g.max_sessions
                ),
            ));
        }
        if let Some(ip) = origin.client {
            let held = self.core.per_client.get(&ip).copied().unwrap_or(0);
            if held >= g.max_sessions_per_client {
                return Err(ApiError::new(
                    code::NOT_ACCEPTING_SESSIONS,
                    format!("Not accepting new sessions (this address holds {held}, the limit)"),
                ));
            }
            *self.core.per_client.entry(ip).or_default() += 1;
        }
        let owner = match origin.conn {
            Some(c) => Owner::Websocket(c),
            None => Owner::Http,
        };
        self.core.sessions.insert(
            id,
            Session {
                owner,
                client: origin.client,
                created: now,
                last_activity: now,
                handles: BTreeSet::new(),
                queue: VecDeque::new(),
            },
        );
        tracing::info!(session = %id, transport = ?origin.transport, "session created");
        let transport = match origin.conn {
            Some(_) => "janus.transport.websockets",
            None => "janus.transport.http",
        };
        self.core.emit(
            events::SESSION,
            None,
            Some(id),
            None,
            json!({"name": "created", "transport": {"transport": transport}}),
        );
        Ok(json!({"janus": "success", "transaction": req.transaction, "data": {"id": id.0}}))
    }

    pub(super) fn attach(
        &mut self,
        now: Instant,
        sid: SessionId,
        req: &Request,
    ) -> Result<Value, ApiError> {
        let name = match req.body.get("plugin") {
            None => return Err(ApiError::missing("plugin")),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(ApiError::bad_type("plugin", "a string")),
        };
        let index = self.plugin_index(name)?;
        self.core.check_token_plugin(&req.body, name)?;
        let limit = self.core.config.general.max_handles_per_session;
        if self
            .core
            .sessions
            .get(&sid)
            .is_some_and(|s| s.handles.len() >= limit)
        {
            return Err(ApiError::new(
                code::PLUGIN_ATTACH,
                format!("Too many handles in this session (limit {limit})"),
            ));
        }
        let opaque_id = match req.body.get("opaque_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ApiError::bad_type("opaque_id", "a string")),
        };
        let hid = loop {
            let id = HandleId(ids::random_id());
            if !self.core.handles.contains_key(&id) {
                break id;
            }
        };
        self.call_plugin(index, now, |p, ctx| p.create_session(ctx, hid))
            .map_err(|e| ApiError::new(code::PLUGIN_ATTACH, e.reason))?;
        self.core.handles.insert(
            hid,
            Handle {
                session: sid,
                plugin: index,
                opaque_id,
                created: now,
                pc: None,
                pending_offer: None,
                pending_candidates: Vec::new(),
                trickled: 0,
                trickle_completed: false,
            },
        );
        if let Some(s) = self.core.sessions.get_mut(&sid) {
            s.handles.insert(hid);
        }
        tracing::info!(session = %sid, handle = %hid, plugin = name, "handle attached");
        let opaque_id = self.core.handles[&hid].opaque_id.clone();
        self.core.emit(
            events::HANDLE,
            None,
            Some(sid),
            Some(hid),
            json!({"name": "attached", "plugin": name, "opaque_id": opaque_id}),
        );
        Ok(
            json!({"janus": "success", "session_id": sid.0, "transaction": req.transaction, "data": {"id": hid.0}}),
        )
    }

    pub(super) fn message(
        &mut self,
        now: Instant,
        sid: SessionId,
        hid: HandleId,
        req: &Request,
    ) -> Result<Value, ApiError> {
        let body = match req.body.get("body") {
            None => return Err(ApiError::missing("body")),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(ApiError::bad_type("body", "an object")),
        };
        let jsep = match req.body.get("jsep") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Jsep::parse(v)?),
        };
        let index = self.core.handles[&hid].plugin;
        let package = self.plugins[index].info().package;
        if let Some(j) = &jsep {
            self.core.emit_jsep(sid, hid, "remote", &j.to_json());
        }
        let msg = PluginMessage {
            handle: hid,
            transaction: req.transaction.clone(),
            body,
            jsep,
        };
        match self.call_plugin(index, now, |p, ctx| p.handle_message(ctx, msg)) {
            PluginResult::Ok(data) => Ok(json!({
                "janus": "success", "session_id": sid.0, "transaction": req.transaction,
                "sender": hid.0, "plugindata": {"plugin": package, "data": data},
            })),
            PluginResult::OkWait(hint) => {
                let mut v =
                    json!({"janus": "ack", "session_id": sid.0, "transaction": req.transaction});
                if let Some(h) = hint {
                    v["hint"] = Value::String(h);
                }
                Ok(v)
            }
            PluginResult::Error(text) => Err(ApiError::new(code::PLUGIN_MESSAGE, text)),
        }
    }

    pub(super) fn trickle(
        &mut self,
        sid: SessionId,
        hid: HandleId,
        req: &Request,
    ) -> Result<Value, ApiError> {
        let candidates: Vec<&Value> = match (req.body.get("candidate"), req.body.get("candidates"))
        {
            (Some(c), _) => vec![c],
            (None, Some(Value::Array(list))) => list.iter().collect(),
            (None, Some(_)) => return Err(ApiError::bad_type("candidates", "an array")),
            (None, None) => return Err(ApiError::missing("candidate")),
        };
        for c in candidates {
            self.core.trickle_one(hid, c)?;
        }
        Ok(json!({"janus": "ack", "session_id": sid.0, "transaction": req.transaction}))
    }

    pub(super) fn detach(&mut self, now: Instant, hid: HandleId) {
        let Some(h) = self.core.handles.get(&hid) else {
            return;
        };
        let (sid, index, had_pc) = (h.session, h.plugin, h.pc.is_some());
        if had_pc {
            self.core.hangup(now, &mut self.plugins, hid, "Detach");
        }
        self.call_plugin(index, now, |p, ctx| p.destroy_session(ctx, hid));
        let plugin = self.plugins[index].info().package;
        self.core.emit(
            events::HANDLE,
            None,
            Some(sid),
            Some(hid),
            json!({"name": "detached", "plugin": plugin}),
        );
        self.core.handles.remove(&hid);
        if let Some(s) = self.core.sessions.get_mut(&sid) {
            s.handles.remove(&hid);
        }
        self.core.deliver(
            sid,
            json!({"janus": "detached", "session_id": sid.0, "sender": hid.0}),
        );
        tracing::info!(session = %sid, handle = %hid, "handle detached");
    }

    pub(super) fn destroy_session(&mut self, now: Instant, sid: SessionId) {
        let handles: Vec<HandleId> = match self.core.sessions.get(&sid) {
            Some(s) => s.handles.iter().copied().collect(),
            None => return,
        };
        for hid in handles {
            self.detach(now, hid);
        }
        let Some(session) = self.core.sessions.remove(&sid) else {
            return;
        };
        if session.owner == Owner::Internal {
            self.core.whep.retain(|_, w| w.session != sid);
        }
        if let Some(ip) = session.client {
            if let Some(n) = self.core.per_client.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.core.per_client.remove(&ip);
                }
            }
        }
        tracing::info!(session = %sid, "session destroyed");
        self.core.emit(
            events::SESSION,
            None,
            Some(sid),
            None,
            json!({"name": "destroyed"}),
        );
    }
}
