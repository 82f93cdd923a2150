//! The bounded way into the media engine: source packets and control commands on two
//! queues, so a flood of packets can never hold back a peer's close.
//!
//! A source that gets ahead of the engine loses packets (counted in
//! `dropped_queue_full`), as a full socket buffer would drop them: media is real-time,
//! a late packet is worth nothing. A control command that finds its queue full is
//! refused (counted in `dropped_commands`) unless it releases something (closing a
//! peer, dropping a source): those wait for room in a task of their own, one per peer
//! or source at most.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::shard::Routes;
use super::{MediaCommand, MediaCounters, SourcePacket};

/// Source packets the engine may be behind by: ≈ 1 s of a 4 Mbit/s camera.
pub(crate) const PACKET_QUEUE: usize = 4096;
/// Control commands the engine may be behind by.
pub(crate) const COMMAND_QUEUE: usize = 1024;
/// Events the core may be behind by (media, SIP and source news).
pub(crate) const EVENT_QUEUE: usize = 4096;

/// The sending side, cloned by every source and by the control side: one pair of
/// queues per media shard.
#[derive(Clone)]
pub struct MediaTx {
    shards: Arc<[ShardTx]>,
    routes: Arc<Routes>,
}

struct ShardTx {
    packets: mpsc::Sender<Arc<SourcePacket>>,
    commands: mpsc::Sender<MediaCommand>,
    counters: Arc<MediaCounters>,
}

/// One shard's side.
pub(crate) struct MediaRx {
    /// Source packets.
    pub packets: mpsc::Receiver<Arc<SourcePacket>>,
    /// Everything else.
    pub commands: mpsc::Receiver<MediaCommand>,
    /// Where its peers are routed: a closed peer is erased from it.
    pub routes: Arc<Routes>,
}

/// The engine went away (shutdown): a source should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineGone;

/// The queues of one shard per item of `shards` (its counters), each with room for
/// `packets` and `commands` items.
pub(crate) fn channel(
    packets: usize,
    commands: usize,
    shards: &[Arc<MediaCounters>],
) -> (MediaTx, Vec<MediaRx>) {
    let routes = Arc::new(Routes::default());
    let (tx, rx): (Vec<ShardTx>, Vec<MediaRx>) = shards
        .iter()
        .map(|counters| {
            let (ptx, prx) = mpsc::channel(packets.max(1));
            let (ctx, crx) = mpsc::channel(commands.max(1));
            let tx = ShardTx {
                packets: ptx,
                commands: ctx,
                counters: counters.clone(),
            };
            let rx = MediaRx {
                packets: prx,
                commands: crx,
                routes: routes.clone(),
            };
            (tx, rx)
        })
        .unzip();
    let tx = MediaTx {
        shards: tx.into(),
        routes,
    };
    (tx, rx)
}

impl MediaTx {
    /// Whether the engine went away.
    pub fn is_closed(&self) -> bool {
        self.shards.iter().all(|s| s.packets.is_closed())
    }

    /// Queues a source packet for every shard; a full queue drops it there (counted).
    /// Never waits.
    pub fn packet(&self, p: SourcePacket) -> Result<(), EngineGone> {
        self.shared_packet(Arc::new(p))
    }

    /// [`MediaTx::packet`] for a packet already shared: each shard gets the same `Arc`.
    pub fn shared_packet(&self, p: Arc<SourcePacket>) -> Result<(), EngineGone> {
        let mut gone = 0;
        for shard in self.shards.iter() {
            match shard.packets.try_send(p.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    shard
                        .counters
                        .dropped_queue_full
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone += 1,
            }
        }
        if gone == self.shards.len() {
            Err(EngineGone)
        } else {
            Ok(())
        }
    }

    /// Queues a control command without waiting: a peer's to its shard, a source's to
    /// every shard. On a full queue a command that releases a peer or a source waits
    /// for room in its own task; any other is refused, logged and counted (the shard
    /// is that far behind: shedding new work is what keeps the peers it has). A
    /// command for a peer no shard serves (closed already) is dropped.
    pub fn command(&self, cmd: MediaCommand) -> Result<(), EngineGone> {
        match cmd {
            MediaCommand::SourcePacket(p) => self.shared_packet(p),
            MediaCommand::AddPeer(new) => {
                let (peer, shard) = (new.id, new.shard.shard());
                // Routed before it is sent: the shard may close it before we return.
                self.routes.insert(peer, shard);
                let sent = self.to_shard(shard, MediaCommand::AddPeer(new));
                if !matches!(sent, Ok(true)) {
                    self.routes.forget(peer);
                }
                sent.map(|_| ())
            }
            MediaCommand::KeyframeRequests { source, tx } => {
                self.to_every_shard(|| MediaCommand::KeyframeRequests {
                    source,
                    tx: tx.clone(),
                })
            }
            MediaCommand::DropSource(source) => {
                self.to_every_shard(|| MediaCommand::DropSource(source))
            }
            cmd @ (MediaCommand::RemoteCandidate { .. }
            | MediaCommand::Resubscribe { .. }
            | MediaCommand::IceRestart { .. }
            | MediaCommand::RestartAnswer { .. }
            | MediaCommand::RemoteOffer { .. }
            | MediaCommand::ClosePeer { .. }) => {
                let Some(peer) = cmd.peer() else {
                    return Ok(());
                };
                match self.routes.get(peer) {
                    Some(shard) => self.to_shard(shard, cmd).map(|_| ()),
                    None => {
                        tracing::debug!(?cmd, "no shard serves this peer: command dropped");
                        Ok(())
                    }
                }
            }
        }
    }

    fn to_every_shard(&self, cmd: impl Fn() -> MediaCommand) -> Result<(), EngineGone> {
        let mut result = Err(EngineGone);
        for shard in 0..self.shards.len() {
            if self.to_shard(shard, cmd()).is_ok() {
                result = Ok(());
            }
        }
        result
    }

    /// Queues `cmd` on `shard`; `Ok(false)` when it was refused for want of room.
    fn to_shard(&self, shard: usize, cmd: MediaCommand) -> Result<bool, EngineGone> {
        let shard = &self.shards[shard];
        match shard.commands.try_send(cmd) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(EngineGone),
            Err(mpsc::error::TrySendError::Full(cmd)) => {
                let releases = matches!(
                    cmd,
                    MediaCommand::ClosePeer { .. } | MediaCommand::DropSource(_)
                );
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) if releases => {
                        let tx = shard.commands.clone();
                        rt.spawn(async move { tx.send(cmd).await });
                        Ok(true)
                    }
                    _ => {
                        shard
                            .counters
                            .dropped_commands
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(?cmd, "media engine overloaded: command refused");
                        Ok(false)
                    }
                }
            }
        }
    }

    /// Routes `peer` to `shard` without adding it (tests of the routing).
    #[cfg(test)]
    pub(crate) fn route(&self, peer: crate::ids::PeerId, shard: usize) {
        self.routes.insert(peer, shard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{PeerId, SourceId};
    use cardea_codecs::rtp::RtpHeader;

    #[allow(clippy::disallowed_methods)] // a test stamps arrivals
    fn packet(seq: u16) -> SourcePacket {
        SourcePacket {
            source: SourceId(1),
            track: 0,
            header: RtpHeader {
                pt: 96,
                marker: false,
                seq,
                timestamp: 0,
                ssrc: 0,
                payload_offset: 0,
                payload_end: 1,
            },
            keyframe: None,
            payload: Arc::from(&b"x"[..]),
            arrival: std::time::Instant::now(),
        }
    }

    #[test]
    fn a_full_packet_queue_drops_and_counts_and_keeps_the_oldest() {
        let counters = Arc::new(MediaCounters::default());
        let (tx, mut rx) = channel(3, 1, std::slice::from_ref(&counters));
        let mut rx = rx.remove(0);
        for seq in 0..10 {
            assert_eq!(tx.packet(packet(seq)), Ok(()));
        }
        assert_eq!(counters.dropped_queue_full.load(Ordering::Relaxed), 7);
        let queued: Vec<u16> = std::iter::from_fn(|| rx.packets.try_recv().ok())
            .map(|p| p.header.seq)
            .collect();
        assert_eq!(queued, [0, 1, 2]);
        // Room again once the engine has read.
        assert_eq!(tx.packet(packet(10)), Ok(()));
        assert_eq!(rx.packets.try_recv().map(|p| p.header.seq).ok(), Some(10));
    }

    #[tokio::test]
    async fn packets_never_take_a_commands_room_and_a_close_waits_for_room() {
        let counters = Arc::new(MediaCounters::default());
        let (tx, mut rx) = channel(1, 1, std::slice::from_ref(&counters));
        let mut rx = rx.remove(0);
        for n in 1..=3 {
            tx.route(PeerId(n), 0);
        }
        for seq in 0..100 {
            tx.command(MediaCommand::SourcePacket(Arc::new(packet(seq))))
                .unwrap();
        }
        let resubscribe = |n| MediaCommand::Resubscribe {
            peer: PeerId(n),
            subscriptions: vec![],
        };
        tx.command(resubscribe(1)).unwrap();
        // The queue is full: new work is refused and counted, a close waits.
        tx.command(resubscribe(2)).unwrap();
        tx.command(MediaCommand::ClosePeer {
            peer: PeerId(3),
            reason: "test".into(),
        })
        .unwrap();
        assert_eq!(counters.dropped_commands.load(Ordering::Relaxed), 1);
        let first = rx.commands.recv().await;
        assert!(matches!(
            first,
            Some(MediaCommand::Resubscribe {
                peer: PeerId(1),
                ..
            })
        ));
        let second = rx.commands.recv().await;
        assert!(matches!(
            second,
            Some(MediaCommand::ClosePeer {
                peer: PeerId(3),
                ..
            })
        ));
        assert!(rx.commands.try_recv().is_err());
    }

    #[test]
    fn a_gone_engine_stops_the_source() {
        let (tx, rx) = channel(4, 4, &[Arc::new(MediaCounters::default())]);
        drop(rx);
        assert_eq!(tx.packet(packet(0)), Err(EngineGone));
        assert_eq!(
            tx.command(MediaCommand::DropSource(SourceId(1))),
            Err(EngineGone)
        );
    }

    #[test]
    fn a_packet_reaches_every_shard_as_one_arc_and_a_peers_command_only_its_own() {
        let shards = [Arc::default(), Arc::default()];
        let (tx, mut rx) = channel(4, 4, &shards);
        tx.packet(packet(7)).unwrap();
        let (a, b) = (
            rx[0].packets.try_recv().unwrap(),
            rx[1].packets.try_recv().unwrap(),
        );
        assert!(Arc::ptr_eq(&a, &b), "one Arc, no copy");
        let close = |n| MediaCommand::ClosePeer {
            peer: PeerId(n),
            reason: "test".into(),
        };
        tx.route(PeerId(1), 1);
        tx.command(close(1)).unwrap();
        tx.command(close(9)).unwrap(); // served by no shard: dropped
        tx.command(MediaCommand::DropSource(SourceId(4))).unwrap();
        let got = |rx: &mut MediaRx| {
            std::iter::from_fn(|| rx.commands.try_recv().ok())
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(got(&mut rx[0]), ["DropSource(4)"]);
        assert_eq!(got(&mut rx[1]), ["ClosePeer(1, test)", "DropSource(4)"]);
        // Once its shard reported it closed, nothing more goes to it.
        rx[1].routes.forget(PeerId(1));
        tx.command(close(1)).unwrap();
        assert!(got(&mut rx[1]).is_empty());
        // One shard gone is not the engine gone.
        drop(rx.remove(0));
        assert_eq!(tx.packet(packet(8)), Ok(()));
        drop(rx);
        assert_eq!(tx.packet(packet(9)), Err(EngineGone));
    }
}
