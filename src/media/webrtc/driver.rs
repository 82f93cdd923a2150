//! The thin driver of the media engine: the one UDP socket, the timer and the command
//! channel. Wait for one input, hand it to the engine, drain what it produced.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::engine::{Engine, LocalAddrs};
use super::queue::MediaRx;
use super::{MediaCommand, MediaCounters, MediaEvent};

/// Largest datagram read; WebRTC keeps under ~1200 bytes, this leaves room for jumbo garbage.
const RECV_BUF: usize = 2048;

/// Runs the media engine on `socket` until `shutdown` flips or the command channel closes.
pub async fn run(
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
    let mut engine = Engine::new(local, counters).with_keyframes(keyframes);
    let mut buf = vec![0u8; RECV_BUF];
    let send_to = |socket: &UdpSocket, dst: SocketAddr, data: &[u8]| {
        // UDP: a full socket buffer drops the datagram, as the network would.
        if let Err(e) = socket.try_send_to(data, dst) {
            tracing::trace!(%dst, error = %e, "send failed");
        }
    };
    loop {
        #[allow(clippy::disallowed_methods)] // the driver owns the clock
        let now = Instant::now();
        let deadline = engine
            .next_timeout()
            .unwrap_or(now + Duration::from_secs(1))
            .max(now);
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, source)) => {
                    #[allow(clippy::disallowed_methods)] // the driver owns the clock
                    let now = Instant::now();
                    contained("datagram", || engine.handle_datagram(now, source, &buf[..n], &mut |d, b| send_to(&socket, d, b)));
                    // Drain what else is already queued before looking at timers.
                    for _ in 0..64 {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, source)) => contained("datagram", || engine.handle_datagram(now, source, &buf[..n], &mut |d, b| send_to(&socket, d, b))),
                            Err(_) => break,
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "UDP receive error"),
            },
            packet = packets.recv() => match packet {
                #[allow(clippy::disallowed_methods)] // the driver owns the clock
                Some(p) => contained("packet", || engine.handle_command(Instant::now(), MediaCommand::SourcePacket(p), &mut |d, b| send_to(&socket, d, b))),
                None => break,
            },
            cmd = commands.recv() => match cmd {
                #[allow(clippy::disallowed_methods)] // the driver owns the clock
                Some(cmd) => contained("command", || engine.handle_command(Instant::now(), cmd, &mut |d, b| send_to(&socket, d, b))),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline.into()) => {
                #[allow(clippy::disallowed_methods)] // the driver owns the clock
                let now = Instant::now();
                contained("timer", || engine.handle_timeout(now, &mut |d, b| send_to(&socket, d, b)));
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
