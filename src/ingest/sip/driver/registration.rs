//! Registrations: starting one for a handle's account, and each REGISTER with its
//! retries and backoff.

use super::*;

pub(super) fn start_registration(
    st: &State,
    handle: HandleId,
    account: Account,
) -> Result<Bound, String> {
    let events = st.events.clone();
    let mut server: Uri = format!("sip:{}", account.domain)
        .parse()
        .map_err(|e| format!("bad registrar address '{}': {e}", account.domain))?;
    let over_tcp = uses_tcp(&account);
    if over_tcp {
        // rsipstack takes the transport (also toward an outbound proxy) from here.
        server.params.push(Param::Transport(Transport::Tcp));
    }
    let credential = Credential {
        username: account.user.clone(),
        password: account.secret.clone().unwrap_or_default(),
        realm: None,
        auth_username: account.authuser.clone(),
    };
    let mut reg = Registration::new(st.inner.clone(), Some(credential));
    let contact_user = format!("{}-{}", account.user, contact_token());
    // Over TCP: our listener, not the connection's ephemeral port (the registrar may
    // open a new connection for incoming calls).
    let mut contact = tcp_contact(&contact_user, st.tcp_contact);
    if !over_tcp {
        contact.params.clear();
    }
    reg.contact = Some(Contact {
        display_name: None,
        uri: contact,
        params: vec![],
    });
    reg.extra_headers = account
        .headers
        .iter()
        .map(|(n, v)| Header::Other(n.clone(), v.clone()))
        .collect();
    let proxy = account.proxy.as_deref().map(Proxy::parse).transpose()?;
    // Where REGISTERs go, so where this account's calls may come from.
    let registrar = match &proxy {
        Some(p) => p.clone(),
        None => Proxy::parse(&account.domain)?,
    };
    let family = st.local;
    let registration = Arc::new(Mutex::new(reg));
    let shared = registration.clone();
    let target = server.clone();
    let status = Arc::new(std::sync::Mutex::new(RegStatus::default()));
    let seen = status.clone();
    let refresher = tokio::spawn(async move {
        let mut first = true;
        let mut backoff = RETRY_FIRST;
        loop {
            let mut reg = shared.lock().await;
            // Names are looked up again at each refresh (their address may move).
            let resolved = registrar.resolve(family).await;
            crate::contain::lock(&seen).registrar = resolved.as_ref().ok().map(|a| a.ip());
            let event = match (&proxy, resolved) {
                // RFC 3261 8.1.3.1: a DNS failure counts as a 503.
                (_, Err(reason)) => Some(SipEvent::RegistrationFailed {
                    handle,
                    code: 503,
                    reason,
                }),
                (Some(_), Ok(addr)) => {
                    reg.outbound_proxy = Some(addr);
                    None
                }
                (None, Ok(_)) => None,
            };
            let event = match event {
                Some(failed) => failed,
                None => register_once(&mut reg, handle, &target, account.ttl, first).await,
            };
            let expires = reg.expires();
            drop(reg);
            let registered = matches!(event, SipEvent::Registered { .. });
            // The route lives exactly as long as the registration.
            crate::contain::lock(&seen).registered = registered;
            tracing::debug!(%handle, ?event, "REGISTER outcome");
            if events.send(IngestEvent::Sip(event)).await.is_err() {
                return;
            }
            if registered {
                first = false;
                backoff = RETRY_FIRST;
                tokio::time::sleep(refresh_interval(expires)).await;
            } else if first {
                // A first registration that fails is the user's to retry (as Janus).
                return;
            } else {
                // A refresh failed: registration_failed was reported; try again, slower
                // each time, until the registrar takes it or the handle unregisters.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    });
    Ok(Bound {
        registration,
        server,
        refresher,
        contact_user,
        status,
        transcode: account.transcode,
    })
}

/// After a failed refresh, the first retry waits this long, then twice as long each
/// time up to [`RETRY_MAX`].
pub(super) const RETRY_FIRST: Duration = Duration::from_secs(5);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(300);

/// One REGISTER and what it means for the handle.
pub(super) async fn register_once(
    reg: &mut Registration,
    handle: HandleId,
    target: &Uri,
    ttl: u32,
    first: bool,
) -> SipEvent {
    let outcome = tokio::time::timeout(GUARD, reg.register(target.clone(), Some(ttl))).await;
    match outcome {
        Ok(Ok(resp)) if (200..300).contains(&resp.status_code.code()) => SipEvent::Registered {
            handle,
            expires: reg.expires(),
            first,
        },
        Ok(Ok(resp)) => SipEvent::RegistrationFailed {
            handle,
            code: resp.status_code.code(),
            reason: call::reason_of(&resp),
        },
        Ok(Err(e)) => SipEvent::RegistrationFailed {
            handle,
            code: 408,
            reason: format!("no answer from the registrar ({e})"),
        },
        Err(_) => SipEvent::RegistrationFailed {
            handle,
            code: 408,
            reason: format!(
                "no answer from the registrar within {} s",
                TIMER_F.as_secs()
            ),
        },
    }
}
