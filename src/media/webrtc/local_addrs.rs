//! Which of our addresses a peer reached: the source address of our answers to it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The local address a datagram from `source` arrived on, as the peer knows it (one
/// of our candidates). The socket may be bound to the unspecified address, so this is
/// derived: loopback for loopback peers, else the first candidate of the same family
/// (with `media.public_address`, the public one: the NAT or Docker mapping sits
/// between the peer and the socket).
#[derive(Debug, Clone)]
pub struct LocalAddrs {
    v4: SocketAddr,
    v6: SocketAddr,
    lo4: SocketAddr,
    lo6: SocketAddr,
    /// Every candidate offered.
    candidates: Vec<SocketAddr>,
    /// The socket's port.
    port: u16,
}

impl LocalAddrs {
    /// From the socket's port and the host addresses offered as candidates.
    pub fn new(port: u16, addrs: &[IpAddr]) -> Self {
        let candidates: Vec<SocketAddr> = addrs.iter().map(|a| SocketAddr::new(*a, port)).collect();
        LocalAddrs::from_candidates(port, &candidates)
    }

    /// From the socket's port and the host candidates offered (address and port).
    pub fn from_candidates(port: u16, candidates: &[SocketAddr]) -> Self {
        let pick = |v4: bool, loopback: bool, fallback: IpAddr| {
            candidates
                .iter()
                .find(|a| a.is_ipv4() == v4 && a.ip().is_loopback() == loopback)
                .copied()
                .unwrap_or(SocketAddr::new(fallback, port))
        };
        let (lo4, lo6) = (
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        );
        LocalAddrs {
            v4: pick(true, false, lo4),
            v6: pick(false, false, lo6),
            lo4: pick(true, true, lo4),
            lo6: pick(false, true, lo6),
            candidates: candidates.to_vec(),
            port,
        }
    }

    /// Where a datagram from `source` arrived, given the local address the socket
    /// says it arrived on (IP_PKTINFO): that address when it is one of our candidates
    /// (a multi-homed host: each peer is answered on the address it reached), else as
    /// [`LocalAddrs::for_source`] (e.g. behind a NAT, the public address).
    pub fn for_datagram(&self, source: SocketAddr, local_ip: Option<IpAddr>) -> SocketAddr {
        match local_ip.map(|ip| SocketAddr::new(ip, self.port)) {
            Some(at) if self.candidates.contains(&at) => at,
            _ => self.for_source(source),
        }
    }

    /// Where a datagram from `source` arrived, as that peer addressed it.
    pub fn for_source(&self, source: SocketAddr) -> SocketAddr {
        match source.ip() {
            IpAddr::V4(v4) if v4.is_loopback() => self.lo4,
            IpAddr::V6(v6) if v6.is_loopback() => self.lo6,
            IpAddr::V4(_) => self.v4,
            IpAddr::V6(_) => self.v6,
        }
    }
}
