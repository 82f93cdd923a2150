//! The requests a page sends: `register`, `call`, `accept`/`progress`, `message`
//! (the one entry that reads `request` and answers each), and their checks.

use super::*;

impl Sip {
    /// Validates a `register`; the account to register, or None when nothing is sent.
    pub(super) fn register(
        &mut self,
        handle: HandleId,
        body: &Map<String, Value>,
    ) -> Result<Option<Account>, SipError> {
        match self.handles.get(&handle).map(|h| h.registration) {
            Some(Registration::Registering | Registration::Registered { .. }) => {
                return Err(SipError::AlreadyRegistered("Already registered".into()))
            }
            // Its `unregistered` is still to come and would end the new registration.
            Some(Registration::Unregistering) => {
                return Err(SipError::WrongState(
                    "Wrong state (still unregistering)".into(),
                ))
            }
            None => {}
        }
        let kind = optional_str(body, "type")?.unwrap_or("");
        let guest = match kind {
            "" => false,
            "guest" => true,
            "helper" => {
                return Err(SipError::InvalidElement(
                    "Invalid element (type 'helper' is not supported yet)".into(),
                ))
            }
            other => {
                return Err(SipError::InvalidElement(format!(
                    "Invalid element (unknown type '{other}')"
                )))
            }
        };
        let send_register = match body.get("send_register") {
            None => !guest,
            Some(Value::Bool(b)) => *b && !guest,
            Some(_) => {
                return Err(SipError::InvalidElement(
                    "Invalid element type (send_register should be a boolean)".into(),
                ))
            }
        };
        let uri = address_field(body, "username")?.ok_or(SipError::MissingElement(
            "Missing element (username)".into(),
        ))?;
        let (user, domain) = split_sip_uri(uri).ok_or(SipError::InvalidAddress(format!(
            "Invalid user address ({uri})"
        )))?;
        if body.contains_key("ha1_secret") {
            return Err(SipError::InvalidElement(
                "Invalid element (ha1_secret is not supported yet: use secret)".into(),
            ));
        }
        let secret = optional_str(body, "secret")?;
        if secret.is_none() && send_register {
            return Err(SipError::MissingElement("Missing element (secret)".into()));
        }
        let authuser = quoted_field(body, "authuser")?;
        let proxy = address_field(body, "outbound_proxy")?.or(address_field(body, "proxy")?);
        if let Some(p) = proxy {
            if !p.starts_with("sip:") && !p.starts_with("sips:") {
                return Err(SipError::InvalidAddress(format!(
                    "Invalid proxy address ({p})"
                )));
            }
        }
        let ttl = match body.get("register_ttl") {
            None => self.default_ttl,
            Some(v) => match v.as_u64() {
                Some(t) if (1..=86_400).contains(&t) => t as u32,
                _ => {
                    return Err(SipError::InvalidElement(
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
    pub(super) fn call_in(
        &mut self,
        handle: HandleId,
        states: &[CallState],
    ) -> Result<&mut Call, SipError> {
        match self.handles.get_mut(&handle).and_then(|h| h.call.as_mut()) {
            Some(c) if states.contains(&c.state) => Ok(c),
            Some(c) => Err(SipError::WrongState(format!(
                "Wrong state (call is {})",
                c.state.name()
            ))),
            None => Err(SipError::WrongState("Wrong state (not in a call)".into())),
        }
    }

    pub(super) fn call(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        body: &Map<String, Value>,
        jsep: Option<&Jsep>,
    ) -> Result<(), SipError> {
        let Some(h) = self.handles.get(&handle) else {
            return Err(SipError::WrongState("Wrong state (register first)".into()));
        };
        if h.registration == Registration::Unregistering {
            return Err(SipError::WrongState("Wrong state (unregistering)".into()));
        }
        if h.call.is_some() {
            return Err(SipError::WrongState(
                "Wrong state (already in a call)".into(),
            ));
        }
        let uri = sip_uri_of(body)?;
        let transcode = transcode_of(body, h.account.transcode)?;
        let srtp = srtp_of(body)?;
        let headers = headers_of(body)?;
        let Some(offer) = jsep.filter(|j| j.kind == JsepKind::Offer) else {
            return Err(SipError::MissingSdp(
                "Missing SDP (a JSEP offer is needed)".into(),
            ));
        };
        let mid = audio_mid(&offer.sdp).ok_or(SipError::MissingSdp(
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
            .map_err(|e| SipError::MissingSdp(format!("Error parsing SDP: {}", e.reason)))?;
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
    pub(super) fn message_out_of_dialog(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        tx: &str,
        body: &Map<String, Value>,
        content_type: String,
        content: String,
    ) -> Result<(), SipError> {
        let uri = sip_uri_of(body)?;
        let headers = headers_of(body)?;
        let Some(h) = self.handles.get(&handle) else {
            return Err(SipError::WrongState("Wrong state (register first)".into()));
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
    pub(super) fn answer(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        tx: &str,
        body: &Map<String, Value>,
        jsep: Option<&Jsep>,
        early: bool,
    ) -> Result<(), SipError> {
        let srtp = srtp_of(body)?;
        let states: &[CallState] = if early {
            &[CallState::Ringing]
        } else {
            &[CallState::Ringing, CallState::Progressing]
        };
        let call = self.call_in(handle, states)?;
        if matches!(srtp, SrtpMode::Mandatory(_)) && call.offered_srtp.is_none() {
            return Err(SipError::TooStrict(
                "Can't accept the call: SDES-SRTP required, but caller didn't offer it".into(),
            ));
        }
        let media = if call.state == CallState::Progressing {
            // The media was set up by `progress`.
            None
        } else {
            let Some(answer) = jsep.filter(|j| j.kind == JsepKind::Answer) else {
                return Err(SipError::MissingSdp(
                    "Missing SDP (a JSEP answer is needed)".into(),
                ));
            };
            let (to_bridge, from_browser) = mpsc::channel(64);
            let (source, browser, stats) = (call.source, call.browser, call.stats.clone());
            let media = Box::new(CallMediaHandler::new(to_bridge, call.mid, stats.clone()));
            ctx.accept_answer(handle, answer, media, vec![source])
                .map_err(|e| SipError::MissingSdp(format!("Error parsing SDP: {}", e.reason)))?;
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

    pub(super) fn message(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        tx: &str,
        body: &Map<String, Value>,
        jsep: Option<&Jsep>,
    ) -> Result<(), SipError> {
        let request = match body.get("request") {
            None => return Err(SipError::MissingElement("Missing element (request)".into())),
            Some(Value::String(r)) => r.to_ascii_lowercase(),
            Some(_) => {
                return Err(SipError::InvalidElement(
                    "Invalid element type (request should be a string)".into(),
                ))
            }
        };
        if !self.enabled {
            return Err(SipError::Unknown(
                "The SIP user agent is not running".into(),
            ));
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
                    return Err(SipError::WrongState("Wrong state (not registered)".into()));
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
                    _ => Err(SipError::WrongState("Wrong state (not registered)".into())),
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
                            return Err(SipError::InvalidElement(
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
                            return Err(SipError::InvalidElement(format!(
                            "Invalid element (direction '{other}': sendonly, recvonly or inactive)"
                        )))
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
                    .ok_or(SipError::MissingElement("Missing element (digit)".into()))?;
                let mut chars = digit.chars();
                let (Some(d), None) = (chars.next(), chars.next()) else {
                    return Err(SipError::InvalidElement(
                        "Invalid element (digit should be one of 0-9, *, #, A-D)".into(),
                    ));
                };
                if crate::ingest::sip::bridge::dtmf_code(d).is_none() {
                    return Err(SipError::InvalidElement(
                        "Invalid element (digit should be one of 0-9, *, #, A-D)".into(),
                    ));
                }
                let duration = match body.get("duration") {
                    None => 160,
                    Some(v) => match v.as_u64() {
                        Some(ms) if (40..=6000).contains(&ms) => ms as u32,
                        _ => {
                            return Err(SipError::InvalidElement(
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
                    .ok_or(SipError::MissingElement("Missing element (content)".into()))?
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
                    .map_err(|e| SipError::InvalidElement(format!("Invalid element ({e})")))?;
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
                    return Err(SipError::InvalidRequest(
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
                    return Err(SipError::MissingSdp(
                        "Missing SDP (update needs the browser's JSEP offer)".into(),
                    ));
                };
                if call.updating.is_some() {
                    return Err(SipError::WrongState(
                        "Wrong state (an update is already in progress)".into(),
                    ));
                }
                ctx.renegotiate(handle, offer)
                    .map_err(|e| SipError::WrongState(format!("Wrong state ({})", e.reason)))?;
                call.updating = Some(tx.to_owned());
                ctx.push_event(handle, Some(tx), result(json!({"event": "updating"})), None);
                Ok(())
            }
            "subscribe" | "unsubscribe" | "recording" | "keyframe" | "rtp_forward"
            | "stop_rtp_forward" | "listforwarders" | "reset" => Err(SipError::InvalidRequest(
                format!("Request '{request}' is not supported yet"),
            )),
            _ => Err(SipError::InvalidRequest(format!(
                "Unknown request '{request}'"
            ))),
        }
    }
}
