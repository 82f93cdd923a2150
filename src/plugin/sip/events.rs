//! What the SIP user agent reports of a call, turned into the plugin's events.

use super::*;

impl Sip {
    pub(super) fn call_event(
        &mut self,
        ctx: &mut PluginCtx<'_>,
        handle: HandleId,
        what: &CallEvent,
    ) {
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
                let known = if (100..=699).contains(code) { *code } else { 0 };
                *self.ended.entry(known).or_default() += 1;
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
}
