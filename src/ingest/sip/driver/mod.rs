//! The SIP driver: one rsipstack endpoint (a UDP socket and a TCP listener on the
//! same port) for the gateway, a task per registration and per call. Turns
//! [`SipCommand`]s into SIP and SIP outcomes into [`SipEvent`]s. Secrets stay inside
//! rsipstack's credential; nothing here logs them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::{handle_client_authenticate, Credential};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::registration::{refresh_interval, Registration};
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::typed::Contact;
use rsipstack::sip::{Auth, Header, Method, Param, Scheme, StatusCode, Transport, Uri};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use rsipstack::EndpointBuilder;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::call::{self, CallCtx, SIP_CODECS};
use super::sdp::SipCodec;
use super::{sdp, Account, CallEvent, CallOp, SipCommand, SipEvent};
use crate::ids::HandleId;
use crate::ingest::IngestEvent;
use crate::media::webrtc::queue::MediaTx;

mod endpoint;
mod incoming;
mod message;
mod registration;

pub(crate) use endpoint::*;
use incoming::*;
use message::*;
use registration::*;

/// RFC 3261 timer F (64 × T1): how long a REGISTER waits for any final answer.
/// rsipstack ends the transaction with a 408 then; this guard (2 s later) only
/// covers a transaction that never ends.
const TIMER_F: Duration = Duration::from_secs(32);
const GUARD: Duration = Duration::from_secs(34);
/// Operations (DTMF, hold, INFO…) a call may have waiting for its task.
const CALL_OPS: usize = 32;

/// Reports `event` to the core without waiting (from code that cannot): when the core
/// is a whole queue behind, the event is dropped and logged.
pub(super) fn report(events: &mpsc::Sender<IngestEvent>, event: SipEvent) {
    if let Err(e) = events.try_send(IngestEvent::Sip(event)) {
        drop(e.into_inner()); // its fields may be private (message bodies): not logged
        tracing::warn!("event queue full: SIP event dropped");
    }
}

/// Commands the user agent may be behind by.
pub(crate) const COMMAND_QUEUE: usize = 1024;

/// Hands `cmd` to the user agent without waiting. When it is a whole queue behind, a
/// command that releases something waits for room in a task of its own; a new
/// registration, call or message fails at once with 503, reported as its outcome.
pub(crate) fn submit(
    tx: &mpsc::Sender<SipCommand>,
    events: &mpsc::Sender<IngestEvent>,
    cmd: SipCommand,
) {
    let cmd = match tx.try_send(cmd) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
        Err(mpsc::error::TrySendError::Full(cmd)) => cmd,
    };
    const BUSY: &str = "SIP user agent overloaded";
    let failed = |code| (code, BUSY.to_owned());
    let outcome = match cmd {
        SipCommand::Unregister { .. } | SipCommand::Forget { .. } | SipCommand::Shutdown { .. } => {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(cmd).await });
            return;
        }
        SipCommand::Register { handle, .. } => {
            let (code, reason) = failed(503);
            SipEvent::RegistrationFailed {
                handle,
                code,
                reason,
            }
        }
        SipCommand::Call { handle, .. } => {
            let (code, reason) = failed(503);
            SipEvent::Call {
                handle,
                what: CallEvent::Ended { code, reason },
            }
        }
        SipCommand::Message {
            handle, call_id, ..
        } => {
            let (code, reason) = failed(503);
            SipEvent::MessageDelivery {
                handle,
                call_id,
                code,
                reason,
            }
        }
        SipCommand::InCall { handle, .. } => {
            let (code, reason) = failed(503);
            SipEvent::Call {
                handle,
                what: CallEvent::Delivery {
                    what: "operation",
                    code,
                    reason,
                },
            }
        }
    };
    tracing::warn!("{BUSY}: a command refused");
    report(events, outcome);
}

/// Asks a call to hang up; the request waits for room rather than being lost.
fn hang_up(ops: &mpsc::Sender<CallOp>) {
    if let Err(mpsc::error::TrySendError::Full(op)) = ops.try_send(CallOp::Hangup) {
        let ops = ops.clone();
        tokio::spawn(async move { ops.send(op).await });
    }
}

/// One handle's registration: the refresh task and the REGISTER state it shares
/// with an unregister.
struct Bound {
    registration: Arc<Mutex<Registration>>,
    server: Uri,
    refresher: JoinHandle<()>,
    /// The user part of the Contact this registration gives (`user-token`): the
    /// registrar sends the handle's calls to it, so two handles registering the same
    /// user (through different registrars) never get each other's calls.
    contact_user: String,
    /// What the refresher knows: registered now, and the registrar's (or proxy's)
    /// address, the one source incoming requests for this handle are taken from.
    status: Arc<std::sync::Mutex<RegStatus>>,
    /// Whether its incoming calls may be transcoded (else PCMU end to end).
    transcode: bool,
}

/// A registration as its refresher last saw it.
#[derive(Debug, Default)]
struct RegStatus {
    registered: bool,
    registrar: Option<IpAddr>,
}

/// A handle's call: its task and how to reach it.
struct CallSlot {
    ops: mpsc::Sender<CallOp>,
    task: JoinHandle<()>,
}

/// What the driver keeps between commands.
struct State {
    inner: EndpointInnerRef,
    layer: Arc<DialogLayer>,
    bound: HashMap<HandleId, Bound>,
    calls: HashMap<HandleId, CallSlot>,
    events: mpsc::Sender<IngestEvent>,
    engine: MediaTx,
    media_ip: IpAddr,
    sdp_ip: IpAddr,
    /// Our address in Contact headers of requests and dialogs over TCP.
    tcp_contact: SocketAddr,
    /// Where the SIP socket is bound: a proxy's name resolves to an address of its family.
    local: SocketAddr,
    accept_from: AcceptFrom,
    /// `sip.symmetric_rtp_nat`.
    nat: bool,
    /// Incoming INVITEs and MESSAGEs refused for their source (403).
    refused_strangers: u64,
}

impl State {
    fn ctx(&self, handle: HandleId) -> CallCtx {
        CallCtx {
            handle,
            events: self.events.clone(),
            engine: self.engine.clone(),
            media_ip: self.media_ip,
            sdp_ip: self.sdp_ip,
            nat: self.nat,
        }
    }

    fn emit(&self, handle: HandleId, what: CallEvent) {
        report(&self.events, SipEvent::Call { handle, what });
    }

    /// The handle's call, if one is going on.
    fn live_call(&mut self, handle: HandleId) -> Option<&CallSlot> {
        if self
            .calls
            .get(&handle)
            .is_some_and(|c| c.task.is_finished())
        {
            self.calls.remove(&handle);
        }
        self.calls.get(&handle)
    }
}

/// Runs the user agent until shutdown or until the command channel closes.
pub(crate) async fn run(
    sip: SipEndpoint,
    mut commands: mpsc::Receiver<SipCommand>,
    events: mpsc::Sender<IngestEvent>,
    engine: MediaTx,
    mut shutdown: watch::Receiver<bool>,
) {
    let SipEndpoint {
        endpoint,
        cancel,
        media_ip,
        sdp_ip,
        tcp_contact,
        local,
        accept_from,
        nat,
        ..
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
    let mut st = State {
        layer: Arc::new(DialogLayer::new(inner.clone())),
        inner,
        bound: HashMap::new(),
        calls: HashMap::new(),
        events,
        engine,
        media_ip,
        sdp_ip,
        tcp_contact,
        local,
        accept_from,
        nat,
        refused_strangers: 0,
    };
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => handle_command(&mut st, cmd),
                None => break,
            },
            tx = incoming.recv() => match tx {
                Some(tx) => handle_incoming(&mut st, tx),
                None => break,
            },
            _ = shutdown.changed() => break,
        }
    }
    for (_, b) in st.bound.drain() {
        b.refresher.abort();
    }
    for (_, c) in st.calls.drain() {
        c.task.abort();
    }
    cancel.cancel();
    serve.abort();
}

fn handle_command(st: &mut State, cmd: SipCommand) {
    match cmd {
        SipCommand::Register { handle, account } => {
            if let Some(old) = st.bound.remove(&handle) {
                old.refresher.abort();
            }
            match start_registration(st, handle, account) {
                Ok(b) => {
                    st.bound.insert(handle, b);
                }
                Err(reason) => report(
                    &st.events,
                    SipEvent::RegistrationFailed {
                        handle,
                        code: 400,
                        reason,
                    },
                ),
            }
        }
        SipCommand::Unregister { handle } => {
            let Some(b) = st.bound.remove(&handle) else {
                report(&st.events, SipEvent::Unregistered { handle });
                return;
            };
            b.refresher.abort();
            let events = st.events.clone();
            tokio::spawn(async move {
                let mut reg = b.registration.lock().await;
                match tokio::time::timeout(GUARD, reg.register(b.server.clone(), Some(0))).await {
                    Ok(Ok(resp)) => {
                        tracing::debug!(%handle, status = %resp.status_code, "unregistered")
                    }
                    Ok(Err(e)) => tracing::debug!(%handle, error = %e, "unregister failed"),
                    Err(_) => tracing::debug!(%handle, "unregister timed out"),
                }
                let _ = events
                    .send(IngestEvent::Sip(SipEvent::Unregistered { handle }))
                    .await;
            });
        }
        SipCommand::Call {
            handle,
            uri,
            account,
            display_name,
            headers,
            media,
        } => {
            if st.live_call(handle).is_some() {
                st.emit(
                    handle,
                    CallEvent::Ended {
                        code: 491,
                        reason: "a call is already going on".into(),
                    },
                );
                return;
            }
            let prepared =
                invite_option(st, &uri, &account, display_name, headers).and_then(|opt| {
                    let proxy = account.proxy.as_deref().map(Proxy::parse).transpose()?;
                    Ok((opt, proxy))
                });
            match prepared {
                Ok((mut opt, proxy)) => {
                    let (ops_tx, ops) = mpsc::channel(CALL_OPS);
                    let (ctx, layer, local) = (st.ctx(handle), st.layer.clone(), st.local);
                    let transport = uses_tcp(&account).then_some(Transport::Tcp);
                    let task = tokio::spawn(async move {
                        if let Some(p) = proxy {
                            match p.resolve(local).await {
                                Ok(addr) => {
                                    opt.destination = Some(SipAddr {
                                        r#type: transport,
                                        addr: addr.into(),
                                    })
                                }
                                Err(reason) => {
                                    // RFC 3261 8.1.3.1: a DNS failure counts as a 503.
                                    ctx.emit(CallEvent::Ended { code: 503, reason });
                                    return;
                                }
                            }
                        }
                        call::outgoing(ctx, layer, opt, media, ops).await
                    });
                    st.calls.insert(handle, CallSlot { ops: ops_tx, task });
                }
                Err(reason) => st.emit(handle, CallEvent::Ended { code: 400, reason }),
            }
        }
        SipCommand::InCall { handle, op } => match st.live_call(handle) {
            Some(c) => {
                if c.ops.try_send(op).is_err() {
                    tracing::warn!(%handle, "call busy: {CALL_OPS} operations pending, one refused");
                    st.emit(
                        handle,
                        CallEvent::Delivery {
                            what: "operation",
                            code: 503,
                            reason: "too many operations pending".into(),
                        },
                    );
                }
            }
            None => tracing::debug!(%handle, ?op, "no call for this operation"),
        },
        SipCommand::Message {
            handle,
            uri,
            account,
            call_id,
            content_type,
            content,
            headers,
        } => {
            let (inner, events, local) = (st.inner.clone(), st.events.clone(), st.local);
            tokio::spawn(async move {
                let message = OutOfDialog {
                    uri: &uri,
                    account: &account,
                    call_id: &call_id,
                    content_type: &content_type,
                    content,
                    headers,
                };
                let (code, reason) = send_message(&inner, local, message).await;
                tracing::debug!(%handle, code, "MESSAGE delivered");
                let _ = events
                    .send(IngestEvent::Sip(SipEvent::MessageDelivery {
                        handle,
                        call_id,
                        code,
                        reason,
                    }))
                    .await;
            });
        }
        SipCommand::Shutdown { grace, done } => {
            let mut ending: Vec<JoinHandle<()>> = Vec::new();
            for (handle, c) in st.calls.drain() {
                if !c.task.is_finished() {
                    tracing::info!(%handle, "shutting down: hanging up the call");
                    hang_up(&c.ops);
                    ending.push(c.task);
                }
            }
            for (handle, b) in st.bound.drain() {
                b.refresher.abort();
                if !crate::contain::lock(&b.status).registered {
                    continue;
                }
                tracing::info!(%handle, "shutting down: unregistering");
                ending.push(tokio::spawn(async move {
                    let mut reg = b.registration.lock().await;
                    let _ = tokio::time::timeout(GUARD, reg.register(b.server, Some(0))).await;
                }));
            }
            tokio::spawn(async move {
                let all = futures_util::future::join_all(ending);
                if tokio::time::timeout(grace, all).await.is_err() {
                    tracing::warn!("shutting down: SIP peers did not all answer in time");
                }
                let _ = done.send(());
            });
        }
        SipCommand::Forget { handle } => {
            if let Some(c) = st.calls.remove(&handle) {
                // Hang up (BYE or CANCEL) and let the task end by itself.
                hang_up(&c.ops);
            }
            if let Some(b) = st.bound.remove(&handle) {
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

/// The INVITE for a call from `account` to `uri`.
fn invite_option(
    st: &State,
    uri: &str,
    account: &Account,
    display_name: Option<String>,
    headers: Vec<(String, String)>,
) -> Result<InviteOption, String> {
    let callee: Uri = uri
        .parse()
        .map_err(|e| format!("bad callee address '{uri}': {e}"))?;
    let caller: Uri = account
        .uri
        .parse()
        .map_err(|e| format!("bad caller address '{}': {e}", account.uri))?;
    let over_tcp = uses_tcp(account);
    let contact = if over_tcp {
        tcp_contact(&account.user, st.tcp_contact)
    } else {
        st.layer
            .build_local_contact(Some(account.user.clone()), None)
            .map_err(|e| format!("no local contact: {e}"))?
    };
    // With a proxy the call task sets the destination once the name is resolved.
    let destination = match &account.proxy {
        Some(_) => None,
        None if over_tcp => {
            let mut to = SipAddr::try_from(&callee)
                .map_err(|e| format!("bad callee address '{uri}': {e}"))?;
            to.r#type = Some(Transport::Tcp);
            Some(to)
        }
        None => None,
    };
    let credential = account.secret.as_ref().map(|password| Credential {
        username: account.user.clone(),
        password: password.clone(),
        realm: None,
        auth_username: account.authuser.clone(),
    });
    Ok(InviteOption {
        caller_display_name: display_name,
        caller,
        callee,
        destination,
        contact,
        credential,
        headers: (!headers.is_empty()).then(|| {
            headers
                .into_iter()
                .map(|(n, v)| Header::Other(n, v))
                .collect()
        }),
        ..Default::default()
    })
}

/// Whether an account's requests go over TCP: its proxy (or, without one, its own
/// address) carries `;transport=tcp`, as with Janus.
fn uses_tcp(account: &Account) -> bool {
    let says_tcp = |uri: &str| {
        uri.split(';')
            .skip(1)
            .any(|p| p.trim().eq_ignore_ascii_case("transport=tcp"))
    };
    match &account.proxy {
        Some(p) => says_tcp(p),
        None => says_tcp(&account.uri),
    }
}

/// `sip:user@addr;transport=tcp`: our Contact for requests and dialogs over TCP.
fn tcp_contact(user: &str, addr: SocketAddr) -> Uri {
    Uri {
        scheme: Some(Scheme::Sip),
        auth: Some(Auth {
            user: user.to_owned(),
            password: None,
        }),
        host_with_port: addr.into(),
        params: vec![Param::Transport(Transport::Tcp)],
        ..Default::default()
    }
}

/// A proxy from `proxy`/`outbound_proxy`: `sip:host[:port][;params]` (or without the
/// scheme), the host an IP literal or a DNS name; port 5060 by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Proxy {
    host: String,
    port: u16,
}

impl Proxy {
    fn parse(proxy: &str) -> Result<Proxy, String> {
        let bad = || format!("proxy '{proxy}' is not sip:host[:port]");
        let hostport = proxy
            .strip_prefix("sip:")
            .unwrap_or(proxy)
            .split([';', '?'])
            .next()
            .unwrap_or("");
        let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
        if let Ok(addr) = hostport.parse::<SocketAddr>() {
            return Ok(Proxy {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        }
        if let Ok(ip) = hostport.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(Proxy {
                host: ip.to_string(),
                port: 5060,
            });
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (hostport, 5060),
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !name_ok || port == 0 {
            return Err(bad());
        }
        Ok(Proxy {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Its address, looked up (A/AAAA, the system's resolver and hosts file) when it
    /// is a name; an address of `local`'s family, which the SIP socket can reach.
    pub(super) async fn resolve(&self, local: SocketAddr) -> Result<SocketAddr, String> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot resolve proxy '{}': {e}", self.host))?
            .collect();
        found
            .iter()
            .find(|a| a.is_ipv4() == local.is_ipv4())
            .copied()
            .ok_or_else(|| {
                format!(
                    "proxy '{}' has no {} address",
                    self.host,
                    if local.is_ipv4() { "IPv4" } else { "IPv6" }
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses() {
        let p = |host: &str, port| Proxy {
            host: host.into(),
            port,
        };
        assert_eq!(Proxy::parse("sip:127.0.0.1:5070"), Ok(p("127.0.0.1", 5070)));
        assert_eq!(
            Proxy::parse("sip:10.0.0.5;transport=udp"),
            Ok(p("10.0.0.5", 5060))
        );
        assert_eq!(Proxy::parse("sip:[::1]:5062"), Ok(p("::1", 5062)));
        assert_eq!(
            Proxy::parse("sip:PBX.example.com:5080;lr"),
            Ok(p("pbx.example.com", 5080))
        );
        assert_eq!(
            Proxy::parse("pbx-1.example.com"),
            Ok(p("pbx-1.example.com", 5060))
        );
        for bad in [
            "sip:",
            "sip:pbx..example.com",
            "sip:pbx:x",
            "sip:pb x",
            "sip:pbx:0",
        ] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn proxy_names_resolve_to_the_sockets_family() {
        let v4: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let v6: SocketAddr = "[::1]:5060".parse().unwrap();
        let localhost = Proxy::parse("sip:localhost:5070").unwrap();
        assert_eq!(
            localhost.resolve(v4).await,
            Ok("127.0.0.1:5070".parse().unwrap())
        );
        assert!(localhost
            .resolve(v6)
            .await
            .map(|a| a.is_ipv6())
            .unwrap_or(true));
        let ip = Proxy::parse("sip:192.0.2.1").unwrap();
        assert_eq!(ip.resolve(v4).await, Ok("192.0.2.1:5060".parse().unwrap()));
        let nowhere = Proxy::parse("sip:nowhere.invalid").unwrap();
        assert!(nowhere.resolve(v4).await.is_err());
    }

    #[test]
    fn transport_follows_the_proxy_or_the_address() {
        let account = |uri: &str, proxy: Option<&str>| Account {
            uri: uri.into(),
            user: "alice".into(),
            domain: "127.0.0.1".into(),
            secret: None,
            authuser: None,
            proxy: proxy.map(Into::into),
            ttl: 60,
            headers: vec![],
            transcode: true,
        };
        assert!(!uses_tcp(&account("sip:alice@127.0.0.1", None)));
        assert!(uses_tcp(&account(
            "sip:alice@127.0.0.1;transport=tcp",
            None
        )));
        assert!(uses_tcp(&account(
            "sip:alice@127.0.0.1",
            Some("sip:127.0.0.1:5070;lr;Transport=TCP")
        )));
        // The proxy decides when there is one.
        assert!(!uses_tcp(&account(
            "sip:alice@127.0.0.1;transport=tcp",
            Some("sip:127.0.0.1:5070")
        )));
        assert_eq!(
            tcp_contact("alice", "192.0.2.7:5062".parse().unwrap()).to_string(),
            "sip:alice@192.0.2.7:5062;transport=TCP"
        );
    }

    #[tokio::test]
    async fn a_full_command_queue_fails_new_work_and_keeps_releases() {
        let (tx, mut rx) = mpsc::channel(1);
        let (events, mut news) = mpsc::channel(8);
        let handle = HandleId(7);
        submit(&tx, &events, SipCommand::Unregister { handle });
        // Full now: a registration fails with 503 at once, a Forget waits for room.
        let account = Account {
            uri: "sip:alice@127.0.0.1".into(),
            user: "alice".into(),
            domain: "127.0.0.1".into(),
            secret: Some("s3cret".into()),
            authuser: None,
            proxy: None,
            ttl: 60,
            headers: vec![],
            transcode: true,
        };
        submit(&tx, &events, SipCommand::Register { handle, account });
        submit(&tx, &events, SipCommand::Forget { handle });
        match news.try_recv() {
            Ok(IngestEvent::Sip(SipEvent::RegistrationFailed { code: 503, .. })) => {}
            other => panic!("expected a 503 registration failure, got {other:?}"),
        }
        assert!(matches!(
            rx.recv().await,
            Some(SipCommand::Unregister { .. })
        ));
        assert!(matches!(rx.recv().await, Some(SipCommand::Forget { .. })));
        assert!(rx.try_recv().is_err());
    }
}
