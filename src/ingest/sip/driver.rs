//! The SIP driver: one rsipstack endpoint (one UDP socket) for the gateway, a task
//! per registration. Turns [`SipCommand`]s into SIP and SIP outcomes into
//! [`SipEvent`]s. Secrets stay inside rsipstack's credential; nothing here logs them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::registration::{refresh_interval, Registration};
use rsipstack::sip::{Header, Method, StatusCode, Uri};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::TransportLayer;
use rsipstack::EndpointBuilder;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Account, SipCommand, SipEvent};
use crate::api::HandleId;
use crate::media::webrtc::MediaEvent;

/// RFC 3261 timer F (64 × T1): how long a REGISTER waits for any final answer.
/// rsipstack ends the transaction with a 408 then; this guard (2 s later) only
/// covers a transaction that never ends.
const TIMER_F: Duration = Duration::from_secs(32);
const GUARD: Duration = Duration::from_secs(34);

/// Where the user agent listens and what it calls itself.
#[derive(Debug, Clone)]
pub struct SipSettings {
    /// Local address of the UDP socket (port 0: any).
    pub bind: SocketAddr,
    /// Address put in Via/Contact instead of `bind` (behind NAT).
    pub advertised: Option<SocketAddr>,
    /// User-Agent header.
    pub user_agent: String,
}

/// The bound endpoint, ready to [`run`].
pub struct SipEndpoint {
    endpoint: rsipstack::transaction::endpoint::Endpoint,
    cancel: CancellationToken,
    /// The UDP address it listens on.
    pub local: SocketAddr,
}

/// Binds the SIP socket; errors name the address.
pub async fn bind(settings: &SipSettings) -> Result<SipEndpoint, String> {
    let cancel = CancellationToken::new();
    let transport = TransportLayer::new(cancel.clone());
    let udp = UdpConnection::create_connection(
        settings.bind,
        settings.advertised,
        Some(cancel.child_token()),
    )
    .await
    .map_err(|e| format!("cannot bind the SIP socket on {}: {e}", settings.bind))?;
    let local = udp
        .get_addr()
        .get_socketaddr()
        .map_err(|e| format!("SIP socket address: {e}"))?;
    transport.add_transport(udp.into());
    let endpoint = EndpointBuilder::new()
        .with_transport_layer(transport)
        .with_cancel_token(cancel.clone())
        .with_user_agent(&settings.user_agent)
        .build();
    Ok(SipEndpoint {
        endpoint,
        cancel,
        local,
    })
}

/// One handle's registration: the refresh task and the REGISTER state it shares
/// with an unregister.
struct Bound {
    registration: Arc<Mutex<Registration>>,
    server: Uri,
    refresher: JoinHandle<()>,
}

/// Runs the user agent until shutdown or until the command channel closes.
pub async fn run(
    sip: SipEndpoint,
    mut commands: mpsc::UnboundedReceiver<SipCommand>,
    events: mpsc::UnboundedSender<MediaEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let SipEndpoint {
        endpoint, cancel, ..
    } = sip;
    let inner = endpoint.inner.clone();
    let mut incoming = match endpoint.incoming_transactions() {
        Ok(rx) => rx,
        Err(e) => {
            tracing::error!(error = %e, "SIP endpoint has no transaction receiver");
            return;
        }
    };
    let serve = tokio::spawn(async move { endpoint.serve().await });
    let mut bound: HashMap<HandleId, Bound> = HashMap::new();
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => handle_command(&inner, &mut bound, &events, cmd),
                None => break,
            },
            tx = incoming.recv() => match tx {
                Some(mut tx) => {
                    // Calls and in-dialog requests come with the call support; until
                    // then only OPTIONS (a PBX's keepalive) is answered positively.
                    let status = if tx.original.method == Method::Options {
                        StatusCode::OK
                    } else {
                        StatusCode::NotImplemented
                    };
                    tokio::spawn(async move {
                        if let Err(e) = tx.reply(status).await {
                            tracing::debug!(error = %e, "SIP reply not sent");
                        }
                    });
                }
                None => break,
            },
            _ = shutdown.changed() => break,
        }
    }
    for (_, b) in bound.drain() {
        b.refresher.abort();
    }
    cancel.cancel();
    serve.abort();
}

fn handle_command(
    inner: &EndpointInnerRef,
    bound: &mut HashMap<HandleId, Bound>,
    events: &mpsc::UnboundedSender<MediaEvent>,
    cmd: SipCommand,
) {
    match cmd {
        SipCommand::Register { handle, account } => {
            if let Some(old) = bound.remove(&handle) {
                old.refresher.abort();
            }
            match start_registration(inner, handle, account, events.clone()) {
                Ok(b) => {
                    bound.insert(handle, b);
                }
                Err(reason) => {
                    let _ = events.send(MediaEvent::Sip(SipEvent::RegistrationFailed {
                        handle,
                        code: 400,
                        reason,
                    }));
                }
            }
        }
        SipCommand::Unregister { handle } => {
            let Some(b) = bound.remove(&handle) else {
                let _ = events.send(MediaEvent::Sip(SipEvent::Unregistered { handle }));
                return;
            };
            b.refresher.abort();
            let events = events.clone();
            tokio::spawn(async move {
                let mut reg = b.registration.lock().await;
                match tokio::time::timeout(GUARD, reg.register(b.server.clone(), Some(0))).await {
                    Ok(Ok(resp)) => {
                        tracing::debug!(%handle, status = %resp.status_code, "unregistered")
                    }
                    Ok(Err(e)) => tracing::debug!(%handle, error = %e, "unregister failed"),
                    Err(_) => tracing::debug!(%handle, "unregister timed out"),
                }
                let _ = events.send(MediaEvent::Sip(SipEvent::Unregistered { handle }));
            });
        }
        SipCommand::Forget { handle } => {
            if let Some(b) = bound.remove(&handle) {
                b.refresher.abort();
                // A courtesy removal; nobody waits for it.
                tokio::spawn(async move {
                    let mut reg = b.registration.lock().await;
                    let _ = tokio::time::timeout(GUARD, reg.register(b.server, Some(0))).await;
                });
            }
        }
    }
}

fn start_registration(
    inner: &EndpointInnerRef,
    handle: HandleId,
    account: Account,
    events: mpsc::UnboundedSender<MediaEvent>,
) -> Result<Bound, String> {
    let server: Uri = format!("sip:{}", account.domain)
        .parse()
        .map_err(|e| format!("bad registrar address '{}': {e}", account.domain))?;
    let credential = Credential {
        username: account.user.clone(),
        password: account.secret.clone().unwrap_or_default(),
        realm: None,
        auth_username: account.authuser.clone(),
    };
    let mut reg = Registration::new(inner.clone(), Some(credential));
    reg.extra_headers = account
        .headers
        .iter()
        .map(|(n, v)| Header::Other(n.clone(), v.clone()))
        .collect();
    if let Some(proxy) = &account.proxy {
        reg.outbound_proxy = Some(socket_addr_of(proxy)?);
    }
    let registration = Arc::new(Mutex::new(reg));
    let shared = registration.clone();
    let target = server.clone();
    let refresher = tokio::spawn(async move {
        let mut first = true;
        loop {
            let mut reg = shared.lock().await;
            let outcome =
                tokio::time::timeout(GUARD, reg.register(target.clone(), Some(account.ttl))).await;
            let event = match outcome {
                Ok(Ok(resp)) if (200..300).contains(&resp.status_code.code()) => {
                    SipEvent::Registered {
                        handle,
                        expires: reg.expires(),
                        first,
                    }
                }
                Ok(Ok(resp)) => SipEvent::RegistrationFailed {
                    handle,
                    code: resp.status_code.code(),
                    reason: resp
                        .wire_reason
                        .clone()
                        .unwrap_or_else(|| resp.status_code.text().to_owned()),
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
            };
            let expires = reg.expires();
            drop(reg);
            let registered = matches!(event, SipEvent::Registered { .. });
            tracing::debug!(%handle, ?event, "REGISTER outcome");
            if events.send(MediaEvent::Sip(event)).is_err() || !registered {
                return;
            }
            first = false;
            tokio::time::sleep(refresh_interval(expires)).await;
        }
    });
    Ok(Bound {
        registration,
        server,
        refresher,
    })
}

/// `sip:host:port` or `host:port` (an IP literal) to a socket address; port 5060 by default.
fn socket_addr_of(proxy: &str) -> Result<SocketAddr, String> {
    let hostport = proxy
        .strip_prefix("sip:")
        .unwrap_or(proxy)
        .split([';', '?'])
        .next()
        .unwrap_or("");
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    hostport
        .parse::<SocketAddr>()
        .or_else(|_| {
            hostport
                .parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 5060))
        })
        .map_err(|_| {
            format!("proxy '{proxy}' must be an IP address with an optional port (DNS names are not resolved yet)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses() {
        assert_eq!(
            socket_addr_of("sip:127.0.0.1:5070").unwrap(),
            "127.0.0.1:5070".parse().unwrap()
        );
        assert_eq!(
            socket_addr_of("sip:10.0.0.5;transport=udp").unwrap(),
            "10.0.0.5:5060".parse().unwrap()
        );
        assert!(socket_addr_of("sip:pbx.example.com").is_err());
    }
}
