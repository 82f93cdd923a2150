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
pub const COMMAND_QUEUE: usize = 1024;

/// Hands `cmd` to the user agent without waiting. When it is a whole queue behind, a
/// command that releases something waits for room in a task of its own; a new
/// registration, call or message fails at once with 503, reported as its outcome.
pub fn submit(tx: &mpsc::Sender<SipCommand>, events: &mpsc::Sender<IngestEvent>, cmd: SipCommand) {
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

/// Where the user agent listens and what it calls itself.
#[derive(Debug, Clone)]
pub struct SipSettings {
    /// Local address of the UDP socket and the TCP listener (port 0: any).
    pub bind: SocketAddr,
    /// Address put in Via/Contact instead of `bind`'s (behind NAT); same port.
    pub advertised_ip: Option<IpAddr>,
    /// User-Agent header.
    pub user_agent: String,
    /// Where calls' RTP sockets bind.
    pub media_ip: IpAddr,
    /// The address calls' SDP gives for media (the advertised one behind NAT).
    pub sdp_ip: IpAddr,
    /// Who may send INVITEs and MESSAGEs besides an account's registrar or proxy.
    pub accept_from: AcceptFrom,
    /// Latch calls' media to where it comes from once answered (phones behind NAT).
    pub symmetric_rtp_nat: bool,
}

/// Sources of incoming INVITEs and MESSAGEs (`sip.accept_from`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AcceptFrom {
    /// Only the registrar or proxy of the account a request is for.
    #[default]
    Registrars,
    /// Those, and these addresses.
    Also(Vec<IpAddr>),
    /// Anyone (Janus's behaviour).
    Any,
}

/// The bound endpoint, ready to [`run`].
pub struct SipEndpoint {
    endpoint: rsipstack::transaction::endpoint::Endpoint,
    cancel: CancellationToken,
    /// The address it listens on (UDP and TCP).
    pub local: SocketAddr,
    /// What Contact headers give for TCP.
    tcp_contact: SocketAddr,
    media_ip: IpAddr,
    sdp_ip: IpAddr,
    accept_from: AcceptFrom,
    nat: bool,
}

/// Binds the SIP UDP socket and a TCP listener on the same port; errors name the address.
pub async fn bind(settings: &SipSettings) -> Result<SipEndpoint, String> {
    let cancel = CancellationToken::new();
    let transport = TransportLayer::new(cancel.clone());
    let local = free_udp_and_tcp(settings.bind)?;
    let advertised = settings
        .advertised_ip
        .map(|ip| SocketAddr::new(ip, local.port()));
    let udp = UdpConnection::create_connection(local, advertised, Some(cancel.child_token()))
        .await
        .map_err(|e| format!("cannot bind the SIP socket on {local}: {e}"))?;
    // rsipstack binds the listener when the endpoint serves; check the port now so
    // a clash is a start-up error rather than a warning.
    std::net::TcpListener::bind(local)
        .map_err(|e| format!("cannot listen for SIP over TCP on {local}: {e}"))?;
    let tcp = TcpListenerConnection::new(local, advertised)
        .await
        .map_err(|e| format!("cannot listen for SIP over TCP on {local}: {e}"))?;
    transport.add_transport(udp.into());
    transport.add_transport(tcp.into());
    let endpoint = EndpointBuilder::new()
        .with_transport_layer(transport)
        .with_cancel_token(cancel.clone())
        .with_user_agent(&settings.user_agent)
        .build();
    Ok(SipEndpoint {
        endpoint,
        cancel,
        local,
        tcp_contact: advertised.unwrap_or(local),
        media_ip: settings.media_ip,
        sdp_ip: settings.sdp_ip,
        accept_from: settings.accept_from.clone(),
        nat: settings.symmetric_rtp_nat,
    })
}

/// The address to bind: `bind` itself, or, when its port is 0, one whose port is free
/// for both UDP and TCP (a port free for UDP may be taken for TCP: try a few).
fn free_udp_and_tcp(bind: SocketAddr) -> Result<SocketAddr, String> {
    let attempts = if bind.port() == 0 { 20 } else { 1 };
    let mut last = String::new();
    for _ in 0..attempts {
        let probe = std::net::UdpSocket::bind(bind)
            .map_err(|e| format!("cannot bind the SIP socket on {bind}: {e}"))?;
        let local = probe
            .local_addr()
            .map_err(|e| format!("SIP socket address: {e}"))?;
        match std::net::TcpListener::bind(local) {
            Ok(_) => return Ok(local),
            Err(e) => last = format!("cannot listen for SIP over TCP on {local}: {e}"),
        }
    }
    Err(last)
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
pub async fn run(
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

fn reply(mut tx: Transaction, status: StatusCode) {
    tokio::spawn(async move {
        if let Err(e) = tx.reply(status).await {
            tracing::debug!(error = %e, "SIP reply not sent");
        }
    });
}

/// A request from outside: in-dialog requests go to their dialog, INVITEs to the
/// handle registered for the Request-URI's user.
fn handle_incoming(st: &mut State, tx: Transaction) {
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
fn caller_of(tx: &Transaction) -> (String, Option<String>) {
    match tx.original.from_header().ok().and_then(|f| f.typed().ok()) {
        Some(f) => (f.uri.to_string(), f.display_name.filter(|d| !d.is_empty())),
        None => (String::new(), None),
    }
}

impl State {
    /// The handle a request from outside is for: the registration whose Contact user
    /// is the Request-URI's, while it is registered; and only from that registration's
    /// registrar (or what `accept_from` adds). `Err` is the answer to give.
    fn route(&mut self, tx: &Transaction) -> Result<HandleId, StatusCode> {
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
fn source_ip(tx: &Transaction) -> Option<IpAddr> {
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
fn contact_token() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric
        .sample_string(&mut rand::rng(), 8)
        .to_ascii_lowercase()
}

fn incoming_invite(st: &mut State, tx: Transaction) {
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
    let srtp = super::SrtpMode::offered(&remote);
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

fn start_registration(st: &State, handle: HandleId, account: Account) -> Result<Bound, String> {
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
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// One REGISTER and what it means for the handle.
async fn register_once(
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

/// A MESSAGE outside a dialog, as the plugin asked for it.
struct OutOfDialog<'a> {
    uri: &'a str,
    account: &'a Account,
    call_id: &'a str,
    content_type: &'a str,
    content: String,
    headers: Vec<(String, String)>,
}

/// Sends `m` through the account's proxy (or to its address), answers one digest
/// challenge; its final status code and reason (408 when nothing answers within
/// timer F, 503 when the proxy's name does not resolve, 400 for a bad address).
async fn send_message(
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
            let reason = resp
                .wire_reason
                .clone()
                .unwrap_or_else(|| resp.status_code.text().to_owned());
            return Ok((code, reason));
        }
        Err((408, "no answer to the MESSAGE".to_owned()))
    };
    match tokio::time::timeout(GUARD, fut).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(failure)) => failure,
        Err(_) => (408, "no answer to the MESSAGE".to_owned()),
    }
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
