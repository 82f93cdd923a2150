//! The user agent's sockets: its settings, who may send it requests, and binding the
//! UDP socket and TCP listener on one port.

use super::*;

/// Where the user agent listens and what it calls itself.
#[derive(Debug, Clone)]
pub(crate) struct SipSettings {
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
pub(crate) enum AcceptFrom {
    /// Only the registrar or proxy of the account a request is for.
    #[default]
    Registrars,
    /// Those, and these addresses.
    Also(Vec<IpAddr>),
    /// Anyone (Janus's behaviour).
    Any,
}

/// The bound endpoint, ready to [`run`].
pub(crate) struct SipEndpoint {
    pub(super) endpoint: rsipstack::transaction::endpoint::Endpoint,
    pub(super) cancel: CancellationToken,
    /// The address it listens on (UDP and TCP).
    pub local: SocketAddr,
    /// What Contact headers give for TCP.
    pub(super) tcp_contact: SocketAddr,
    pub(super) media_ip: IpAddr,
    pub(super) sdp_ip: IpAddr,
    pub(super) accept_from: AcceptFrom,
    pub(super) nat: bool,
}

/// Binds the SIP UDP socket and a TCP listener on the same port; errors name the address.
pub(crate) async fn bind(settings: &SipSettings) -> Result<SipEndpoint, String> {
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
pub(super) fn free_udp_and_tcp(bind: SocketAddr) -> Result<SocketAddr, String> {
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
