//! SIP MESSAGE outside a dialog, as the plugin asks for it.

use super::*;

/// A MESSAGE outside a dialog, as the plugin asked for it.
pub(super) struct OutOfDialog<'a> {
    pub(super) uri: &'a str,
    pub(super) account: &'a Account,
    pub(super) call_id: &'a str,
    pub(super) content_type: &'a str,
    pub(super) content: String,
    pub(super) headers: Vec<(String, String)>,
}

/// Sends `m` through the account's proxy (or to its address), answers one digest
/// challenge; its final status code and reason (408 when nothing answers within
/// timer F, 503 when the proxy's name does not resolve, 400 for a bad address).
pub(super) async fn send_message(
    inner: &EndpointInnerRef,
    local: SocketAddr,
    m: OutOfDialog<'_>,
) -> (u16, String) {
    let fut = async {
        let to_uri: Uri = m
            .uri
            .parse()
            .map_err(|e| (400, format!("bad address '{}': {e}", m.uri)))?;
        let from_uri: Uri = m
            .account
            .uri
            .parse()
            .map_err(|e| (400, format!("bad account address: {e}")))?;
        let transport = uses_tcp(m.account).then_some(Transport::Tcp);
        let destination = match m.account.proxy.as_deref().map(Proxy::parse).transpose() {
            Err(e) => return Err((400, e)),
            Ok(Some(p)) => Some(SipAddr {
                r#type: transport,
                addr: p.resolve(local).await.map_err(|e| (503, e))?.into(),
            }),
            Ok(None) => {
                let mut to = SipAddr::try_from(&to_uri).map_err(|e| (400, e.to_string()))?;
                to.r#type = transport.or(to.r#type);
                Some(to)
            }
        };
        // The Via names the transport and address the request leaves from.
        let via = match &destination {
            Some(d) => match inner.transport_layer.lookup(d, None).await {
                Ok((conn, _)) => inner.get_via(Some(conn.get_addr().clone()), None),
                Err(e) => return Err((503, format!("cannot reach {d}: {e}"))),
            },
            None => inner.get_via(None, None),
        }
        .map_err(|e| (500, e.to_string()))?;
        let from = rsipstack::sip::typed::From {
            display_name: None,
            uri: from_uri,
            params: vec![],
        }
        .with_tag(rsipstack::transaction::make_tag());
        let to = rsipstack::sip::typed::To {
            display_name: None,
            uri: to_uri.clone(),
            params: vec![],
        };
        let mut request = inner.make_request(
            Method::Message,
            to_uri,
            via,
            from,
            to,
            1,
            Some(m.call_id.to_owned().into()),
        );
        for (n, v) in m.headers {
            request.headers.push(Header::Other(n, v));
        }
        request
            .headers
            .push(Header::ContentType(m.content_type.into()));
        request.body = m.content.into_bytes();
        request
            .headers
            .push(Header::ContentLength((request.body.len() as u32).into()));
        let key = TransactionKey::from_request(&request, TransactionRole::Client)
            .map_err(|e| (500, e.to_string()))?;
        let mut tx = Transaction::new_client(key, request, inner.clone(), None);
        tx.destination = destination;
        tx.send().await.map_err(|e| (503, e.to_string()))?;
        let credential = m.account.secret.as_ref().map(|password| Credential {
            username: m.account.user.clone(),
            password: password.clone(),
            realm: None,
            auth_username: m.account.authuser.clone(),
        });
        let mut challenged = false;
        while let Some(msg) = tx.receive().await {
            let rsipstack::sip::SipMessage::Response(resp) = msg else {
                continue;
            };
            let code = resp.status_code.code();
            if code < 200 {
                continue;
            }
            if matches!(code, 401 | 407) && !challenged {
                if let Some(cred) = &credential {
                    challenged = true;
                    tx = handle_client_authenticate(2, &tx, resp, cred)
                        .await
                        .map_err(|e| (500, e.to_string()))?;
                    tx.send().await.map_err(|e| (503, e.to_string()))?;
                    continue;
                }
            }
            return Ok((code, call::reason_of(&resp)));
        }
        Err((408, "no answer to the MESSAGE".to_owned()))
    };
    match tokio::time::timeout(GUARD, fut).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(failure)) => failure,
        Err(_) => (408, "no answer to the MESSAGE".to_owned()),
    }
}
