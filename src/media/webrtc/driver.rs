//! The thin driver of the media engine: the one UDP socket, the timer and the command
//! channel. Wait for one input, hand it to the engine, drain what it produced.
//!
//! The socket is read and written through quinn-udp: batches of datagrams per system
//! call (recvmmsg, GRO), each with the local address it arrived on (IP_PKTINFO), so a
//! host with several addresses answers every peer from the address that peer reached.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::engine::{Engine, LocalAddrs};
use super::queue::MediaRx;
use super::{MediaCommand, MediaCounters, MediaEvent};

/// Datagrams read per system call.
const BATCH: usize = 8;
/// Bytes per receive buffer: room for GRO's coalesced datagrams (WebRTC keeps each
/// under ~1200 bytes; garbage may be larger and is cut to what fits).
const RECV_BUF: usize = 64 * 1024;
/// Batches read before timers and commands get their turn.
const MAX_BATCHES: usize = 8;
/// Peers whose local address is remembered for replies; past it the table starts over
/// (a flood of spoofed sources cannot grow it; a peer is relearned from its next datagram).
const MAX_REPLY_ADDRS: usize = 65_536;

/// The socket with its quinn-udp state, and where to answer each peer from.
struct Io {
    socket: UdpSocket,
    state: UdpSocketState,
    /// Peer address → the local address its last datagram arrived on.
    reply_from: HashMap<SocketAddr, IpAddr>,
}

impl Io {
    fn send(&self, dst: SocketAddr, data: &[u8]) {
        let transmit = Transmit {
            destination: dst,
            ecn: None,
            contents: data,
            segment_size: None,
            src_ip: self.reply_from.get(&dst).copied(),
        };
        // UDP: a full socket buffer drops the datagram, as the network would.
        let sent = self.socket.try_io(Interest::WRITABLE, || {
            self.state.try_send((&self.socket).into(), &transmit)
        });
        if let Err(e) = sent {
            tracing::trace!(%dst, error = %e, "send failed");
        }
    }

    fn learn(&mut self, peer: SocketAddr, local: Option<IpAddr>) {
        let Some(local) = local else { return };
        if self.reply_from.get(&peer) != Some(&local) {
            if self.reply_from.len() >= MAX_REPLY_ADDRS {
                self.reply_from.clear();
            }
            self.reply_from.insert(peer, local);
        }
    }
}

/// Runs the media engine on `socket` until `shutdown` flips or the command channel closes.
pub(crate) async fn run(
    socket: UdpSocket,
    local: LocalAddrs,
    counters: Arc<MediaCounters>,
    queues: MediaRx,
    events: mpsc::Sender<MediaEvent>,
    keyframes: Arc<crate::media::snapshot::Keyframes>,
    mut shutdown: watch::Receiver<bool>,
) {
    let MediaRx {
        mut packets,
        mut commands,
    } = queues;
    let state = match UdpSocketState::new((&socket).into()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the media socket");
            return;
        }
    };
    let mut io = Io {
        socket,
        state,
        reply_from: HashMap::new(),
    };
    let mut engine = Engine::new(local, counters).with_keyframes(keyframes);
    let mut bufs: [Vec<u8>; BATCH] = std::array::from_fn(|_| vec![0u8; RECV_BUF]);
    let mut meta = [RecvMeta::default(); BATCH];
    loop {
        #[allow(clippy::disallowed_methods)] // the driver owns the clock
        let now = Instant::now();
        let deadline = engine
            .next_timeout()
            .unwrap_or(now + Duration::from_secs(1))
            .max(now);
        tokio::select! {
            r = io.socket.readable() => match r {
                Ok(()) => {
                    #[allow(clippy::disallowed_methods)] // the driver owns the clock
                    let now = Instant::now();
                    for _ in 0..MAX_BATCHES {
                        // On the stack: nothing allocated per batch.
                        let mut slices = bufs.each_mut().map(|b| IoSliceMut::new(b));
                        let got = io.socket.try_io(Interest::READABLE, || {
                            io.state.recv((&io.socket).into(), &mut slices, &mut meta)
                        });
                        let n = match got {
                            Ok(n) => n,
                            Err(e) => {
                                if e.kind() != std::io::ErrorKind::WouldBlock {
                                    tracing::debug!(error = %e, "UDP receive error");
                                }
                                break;
                            }
                        };
                        for (m, buf) in meta.iter().zip(&bufs).take(n) {
                            io.learn(m.addr, m.dst_ip);
                            let data = &buf[..m.len.min(buf.len())];
                            // GRO may have coalesced several datagrams of one stride; an
                            // empty datagram is one too (garbage, counted as such).
                            let empty: &[&[u8]] = &[&[]];
                            let datagrams = data.chunks(m.stride.max(1)).chain(empty.iter().copied().filter(|_| data.is_empty()));
                            for d in datagrams {
                                contained("datagram", || engine.handle_datagram_at(now, m.addr, m.dst_ip, d, &mut |to, b| io.send(to, b)));
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "UDP receive error"),
            },
            packet = packets.recv() => match packet {
                #[allow(clippy::disallowed_methods)] // the driver owns the clock
                Some(p) => contained("packet", || engine.handle_command(Instant::now(), MediaCommand::SourcePacket(p), &mut |d, b| io.send(d, b))),
                None => break,
            },
            cmd = commands.recv() => match cmd {
                #[allow(clippy::disallowed_methods)] // the driver owns the clock
                Some(cmd) => contained("command", || engine.handle_command(Instant::now(), cmd, &mut |d, b| io.send(d, b))),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline.into()) => {
                #[allow(clippy::disallowed_methods)] // the driver owns the clock
                let now = Instant::now();
                contained("timer", || engine.handle_timeout(now, &mut |d, b| io.send(d, b)));
            }
            _ = shutdown.changed() => break,
        }
        // Events wait in the engine while the core is a whole queue behind.
        loop {
            let permit = match events.try_reserve() {
                Ok(permit) => permit,
                Err(mpsc::error::TrySendError::Full(())) => break,
                Err(mpsc::error::TrySendError::Closed(())) => return,
            };
            match engine.poll_event() {
                Some(ev) => permit.send(ev),
                None => break,
            }
        }
    }
}

/// The engine closes a peer whose media panics; this catches what is left (a panic
/// outside any one peer's work) so the one media task never dies with every peer.
fn contained(what: &str, f: impl FnOnce()) {
    if let Err(panic) = crate::contain::contain(f) {
        tracing::error!(%what, %panic, "panic contained in the media engine");
    }
}
