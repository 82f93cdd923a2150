//! Requests from outside: replies, who the caller is, where it came from, and an
//! incoming INVITE offered to the handle its Contact names.

use super::*;

pub(super) fn reply(mut tx: Transaction, status: StatusCode) {
    tokio::spawn(async move {
        if let Err(e) = tx.reply(status).await {
            tracing::debug!(error = %e, "SIP reply not sent");
        }
    });
}

/// A request from outside: in-dialog requests go to their dialog, INVITEs to the
/// handle registered for the Request-URI's user.
pub(super) fn handle_incoming(st: &mut State, tx: Transaction) {
    let method = tx.original.method;
    let has_to_tag = tx
        .original
        .to_header()
        .ok()
        .and_then(|t| t.tag().ok().flatten())
        .is_some();
    if has_to_tag {
        match st.layer.match_dialog(&tx) {
            Some(mut dialog) => {
                let mut tx = tx;
                tokio::spawn(async move {
                    if let Err(e) = dialog.handle(&mut tx).await {
                        tracing::debug!(error = %e, "in-dialog request failed");
                    }
                });
            }
            None if method == Method::Ack => {}
            None => reply(tx, StatusCode::CallTransactionDoesNotExist),
        }
        return;
    }
    match method {
        Method::Options => reply(tx, StatusCode::OK),
        Method::Invite => incoming_invite(st, tx),
        Method::Message => {
            let handle = match st.route(&tx) {
                Ok(h) => h,
                Err(code) => return reply(tx, code),
            };
            let ct = call::header_value(&tx.original, "content-type")
                .unwrap_or("text/plain")
                .to_owned();
            let (sender, display_name) = caller_of(&tx);
            let content = String::from_utf8_lossy(&tx.original.body).into_owned();
            let delivered = st
                .events
                .try_send(IngestEvent::Sip(SipEvent::OutOfDialogMessage {
                    handle,
                    sender,
                    display_name,
                    content_type: ct,
                    content,
                }));
            match delivered {
                Ok(()) => reply(tx, StatusCode::OK),
                // The core is a whole queue behind: the sender may retry.
                Err(_) => reply(tx, StatusCode::ServiceUnavailable),
            }
        }
        Method::Ack => {}
        Method::Bye | Method::Cancel => reply(tx, StatusCode::CallTransactionDoesNotExist),
        _ => reply(tx, StatusCode::NotImplemented),
    }
}

/// The caller's URI and display name from From.
pub(super) fn caller_of(tx: &Transaction) -> (String, Option<String>) {
    match tx.original.from_header().ok().and_then(|f| f.typed().ok()) {
        Some(f) => (f.uri.to_string(), f.display_name.filter(|d| !d.is_empty())),
        None => (String::new(), None),
    }
}

impl State {
    /// The handle a request from outside is for: the registration whose Contact user
    /// is the Request-URI's, while it is registered; and only from that registration's
    /// registrar (or what `accept_from` adds). `Err` is the answer to give.
    pub(super) fn route(&mut self, tx: &Transaction) -> Result<HandleId, StatusCode> {
        let user = tx.original.uri.user().unwrap_or("");
        let Some((handle, registrar)) = self.bound.iter().find_map(|(h, b)| {
            let status = crate::contain::lock(&b.status);
            (b.contact_user == user && status.registered).then_some((*h, status.registrar))
        }) else {
            return Err(StatusCode::NotFound);
        };
        let source = source_ip(tx);
        let allowed = match &self.accept_from {
            AcceptFrom::Any => true,
            AcceptFrom::Registrars => source.is_some() && source == registrar,
            AcceptFrom::Also(extra) => {
                source.is_some_and(|ip| Some(ip) == registrar || extra.contains(&ip))
            }
        };
        if !allowed {
            self.refused_strangers += 1;
            if self.refused_strangers.is_power_of_two() {
                tracing::warn!(source = ?source, method = %tx.original.method, refused = self.refused_strangers,
                    "SIP request from an address that is not the account's registrar: 403 (see sip.accept_from)");
            }
            return Err(StatusCode::Forbidden);
        }
        Ok(handle)
    }
}

/// Where a request came from: its top Via's `received` (the transport writes it when
/// the source differs from what Via claims), else the Via's host.
pub(super) fn source_ip(tx: &Transaction) -> Option<IpAddr> {
    let via = tx.original.via_header().ok()?.typed().ok()?;
    let received = via.params.iter().find_map(|p| match p {
        Param::Received(r) => r.trim_matches(['[', ']']).parse().ok(),
        _ => None,
    });
    received.or_else(|| {
        via.uri
            .host_with_port
            .host
            .to_string()
            .trim_matches(['[', ']'])
            .parse()
            .ok()
    })
}

/// A token for a registration's Contact user part: 8 letters and digits.
pub(super) fn contact_token() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric
        .sample_string(&mut rand::rng(), 8)
        .to_ascii_lowercase()
}

pub(super) fn incoming_invite(st: &mut State, tx: Transaction) {
    let user = tx.original.uri.user().unwrap_or("").to_owned();
    let handle = match st.route(&tx) {
        Ok(h) => h,
        Err(code) => return reply(tx, code),
    };
    let (caller, display_name) = caller_of(&tx);
    let callee = tx.original.uri.to_string();
    if st.live_call(handle).is_some() {
        st.emit(
            handle,
            CallEvent::Missed {
                caller,
                display_name,
                callee,
            },
        );
        reply(tx, StatusCode::BusyHere);
        return;
    }
    let body = String::from_utf8_lossy(&tx.original.body).into_owned();
    // Without transcoding the browser's PCMU is the only codec both legs can share.
    let codecs: &[SipCodec] = match st.bound.get(&handle) {
        Some(b) if !b.transcode => &[SipCodec::Pcmu],
        _ => &SIP_CODECS,
    };
    let offer = sdp::parse(&body).and_then(|r| {
        let c = sdp::choose(&r, codecs)?;
        Ok((r, c))
    });
    let (remote, codec) = match offer {
        Ok(x) => x,
        Err(e) => {
            // Offerless INVITEs (SDP in the ACK) are not supported: 488 says why.
            tracing::info!(%handle, error = %e, "incoming call refused");
            reply(tx, StatusCode::NotAcceptableHere);
            return;
        }
    };
    let (state_tx, states) = st.layer.new_dialog_state_channel();
    // An INVITE that came over TCP gets a Contact that says so (and our listener),
    // so the caller's in-dialog requests come back over TCP.
    let over_tcp = tx
        .connection
        .as_ref()
        .is_some_and(|c| c.get_addr().r#type == Some(Transport::Tcp));
    let contact = over_tcp.then(|| tcp_contact(&user, st.tcp_contact));
    let dialog = match st
        .layer
        .get_or_create_server_invite(&tx, state_tx, None, contact)
    {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "no dialog for the INVITE");
            reply(tx, StatusCode::ServerInternalError);
            return;
        }
    };
    let call_id = dialog.id().call_id.clone();
    let srtp = super::super::SrtpMode::offered(&remote);
    let mut handler = dialog.clone();
    let mut tx = tx;
    tokio::spawn(async move {
        if let Err(e) = handler.handle(&mut tx).await {
            tracing::debug!(error = %e, "incoming INVITE transaction failed");
        }
    });
    let (ops_tx, ops) = mpsc::channel(CALL_OPS);
    let task = tokio::spawn(call::incoming(
        st.ctx(handle),
        st.layer.clone(),
        dialog,
        states,
        remote,
        codec,
        ops,
    ));
    st.calls.insert(handle, CallSlot { ops: ops_tx, task });
    st.emit(
        handle,
        CallEvent::Incoming {
            call_id,
            caller,
            display_name,
            callee,
            srtp,
        },
    );
}
