//! The thin driver of one media shard: its UDP socket, its timer and its command
//! queues, on a thread of its own. Wait for one input, hand it to the engine, send
//! what it produced at the end of the turn.
//!
//! The socket is read and written through quinn-udp: batches of datagrams per system
//! call (recvmmsg, GRO), each with the local address it arrived on (IP_PKTINFO), so a
//! host with several addresses answers every peer from the address that peer reached;
//! sends are gathered per turn (see `outbox`) and each burst to one peer goes as one
//! UDP GSO send.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::engine::{Engine, LocalAddrs};
use super::outbox::{Outbox, Run};
use super::queue::MediaRx;
use super::{MediaCounters, MediaEvent};

/// Datagrams read per system call.
const BATCH: usize = 8;
/// Bytes per receive buffer: room for GRO's coalesced datagrams (WebRTC keeps each
/// under ~1200 bytes; garbage may be larger and is cut to what fits).
const RECV_BUF: usize = 64 * 1024;
/// Batches read before timers and commands get their turn.
const MAX_BATCHES: usize = 8;
/// Source packets taken in one turn: a frame's packets, which a camera sends back to
/// back, go out to each viewer together (one GSO send) instead of one turn each.
const PACKETS_PER_TURN: usize = 16;
/// Peers whose local address is remembered for replies; past it the table starts over
/// (a flood of spoofed sources cannot grow it; a peer is relearned from its next datagram).
const MAX_REPLY_ADDRS: usize = 65_536;

/// The socket with its quinn-udp state, what the turn will send, and where to answer
/// each peer from.
struct Io {
    socket: UdpSocket,
    state: UdpSocketState,
    outbox: Outbox,
    counters: Arc<MediaCounters>,
    /// Peer address → the local address its last datagram arrived on.
    reply_from: HashMap<SocketAddr, IpAddr>,
}

impl Io {
    /// Queues a datagram for the end of the turn (sooner if the turn made a lot).
    fn send(&mut self, dst: SocketAddr, data: &[u8]) {
        self.outbox
            .push(dst, self.reply_from.get(&dst).copied(), data);
        if self.outbox.is_full() {
            self.flush();
        }
    }

    /// Writes what the turn gathered.
    fn flush(&mut self) {
        let Io {
            socket,
            state,
            outbox,
            counters,
            ..
        } = self;
        if outbox.is_empty() {
            return;
        }
        let mut calls = 0u64;
        let mut datagrams = 0u64;
        let mut bytes = 0u64;
        outbox.flush(state.max_gso_segments(), |run: Run<'_>| {
            let n = run.datagrams();
            let transmit = Transmit {
                destination: run.dst,
                ecn: None,
                contents: run.contents,
                segment_size: (n > 1).then_some(run.segment),
                src_ip: run.from,
            };
            calls += 1;
            datagrams += n as u64;
            bytes += run.contents.len() as u64;
            // UDP: a full socket buffer drops the datagrams, as the network would.
            let sent = socket.try_io(Interest::WRITABLE, || {
                state.try_send((&*socket).into(), &transmit)
            });
            if let Err(e) = sent {
                tracing::trace!(dst = %run.dst, error = %e, "send failed");
            }
        });
        counters.send_calls.fetch_add(calls, Ordering::Relaxed);
        counters
            .datagrams_out
            .fetch_add(datagrams, Ordering::Relaxed);
        counters.bytes_out.fetch_add(bytes, Ordering::Relaxed);
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

/// Everything one shard runs with.
pub(crate) struct Shard {
    /// Its index, for the thread's name and logs.
    pub(crate) index: usize,
    /// Its socket, bound (non-blocking is set here).
    pub(crate) socket: std::net::UdpSocket,
    /// The addresses its candidates name.
    pub(crate) local: LocalAddrs,
    /// Its counters (shared with the factory, which places peers by them).
    pub(crate) counters: Arc<MediaCounters>,
    /// Its queues.
    pub(crate) queues: MediaRx,
    /// Where its events go (shared by every shard).
    pub(crate) events: mpsc::Sender<MediaEvent>,
    /// Where completed keyframes go for snapshots: one shard's job.
    pub(crate) keyframes: Option<Arc<crate::media::snapshot::Keyframes>>,
    /// How long sources' packets are kept for NACKs.
    pub(crate) nack_history: Duration,
    /// Flips at shutdown.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Starts `shard` on a thread of its own (with a single-threaded runtime for its
/// socket and timer); the receiver completes when the shard has stopped.
pub(crate) fn spawn(shard: Shard) -> std::io::Result<oneshot::Receiver<()>> {
    let (done_tx, done_rx) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    shard.socket.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name(format!("cardea-media-{}", shard.index))
        .spawn(move || {
            runtime.block_on(async move {
                let index = shard.index;
                match UdpSocket::from_std(shard.socket) {
                    Ok(socket) => {
                        let mut engine = Engine::new(shard.local, shard.counters.clone())
                            .with_nack_history(shard.nack_history);
                        if let Some(store) = shard.keyframes {
                            engine = engine.with_keyframes(store);
                        }
                        run(
                            socket,
                            engine,
                            shard.counters,
                            shard.queues,
                            shard.events,
                            shard.shutdown,
                        )
                        .await
                    }
                    Err(e) => tracing::error!(shard = index, error = %e, "media socket unusable"),
                }
            });
            let _ = done_tx.send(());
        })?;
    Ok(done_rx)
}

/// Runs one shard's `engine` on `socket` until `shutdown` flips or its queues close.
pub(crate) async fn run(
    socket: UdpSocket,
    mut engine: Engine,
    counters: Arc<MediaCounters>,
    queues: MediaRx,
    events: mpsc::Sender<MediaEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let MediaRx {
        mut packets,
        mut commands,
        routes,
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
        outbox: Outbox::default(),
        counters: counters.clone(),
        reply_from: HashMap::new(),
    };
    let mut bufs: [Vec<u8>; BATCH] = std::array::from_fn(|_| vec![0u8; RECV_BUF]);
    let mut meta = [RecvMeta::default(); BATCH];
    let mut batch = Vec::with_capacity(PACKETS_PER_TURN);
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
                Some(p) => {
                    #[allow(clippy::disallowed_methods)] // the driver owns the clock
                    let now = Instant::now();
                    // With what else the sources have sent already (the rest of the frame).
                    batch.push(p);
                    while batch.len() < PACKETS_PER_TURN {
                        let Ok(p) = packets.try_recv() else { break };
                        batch.push(p);
                    }
                    contained("packets", || engine.handle_packets(now, &batch, &mut |d, b| io.send(d, b)));
                    batch.clear();
                }
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
        io.flush();
        // Events wait in the engine while the core is a whole queue behind.
        loop {
            let permit = match events.try_reserve() {
                Ok(permit) => permit,
                Err(mpsc::error::TrySendError::Full(())) => break,
                Err(mpsc::error::TrySendError::Closed(())) => return,
            };
            match engine.poll_event() {
                Some(ev) => {
                    if let MediaEvent::Closed { peer, .. } = &ev {
                        routes.forget(*peer);
                    }
                    permit.send(ev)
                }
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
