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

use super::{MediaCommand, MediaCounters, SourcePacket};

/// Source packets the engine may be behind by: ≈ 1 s of a 4 Mbit/s camera.
pub(crate) const PACKET_QUEUE: usize = 4096;
/// Control commands the engine may be behind by.
pub(crate) const COMMAND_QUEUE: usize = 1024;
/// Events the core may be behind by (media, SIP and source news).
pub(crate) const EVENT_QUEUE: usize = 4096;

/// The sending side, cloned by every source and by the control side.
#[derive(Clone)]
pub struct MediaTx {
    packets: mpsc::Sender<Arc<SourcePacket>>,
    commands: mpsc::Sender<MediaCommand>,
    counters: Arc<MediaCounters>,
}

/// The engine's side.
pub(crate) struct MediaRx {
    /// Source packets.
    pub packets: mpsc::Receiver<Arc<SourcePacket>>,
    /// Everything else.
    pub commands: mpsc::Receiver<MediaCommand>,
}

/// The engine went away (shutdown): a source should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineGone;

/// Both queues, with room for `packets` and `commands` items.
pub(crate) fn channel(
    packets: usize,
    commands: usize,
    counters: Arc<MediaCounters>,
) -> (MediaTx, MediaRx) {
    let (ptx, prx) = mpsc::channel(packets.max(1));
    let (ctx, crx) = mpsc::channel(commands.max(1));
    let tx = MediaTx {
        packets: ptx,
        commands: ctx,
        counters,
    };
    (
        tx,
        MediaRx {
            packets: prx,
            commands: crx,
        },
    )
}

impl MediaTx {
    /// Whether the engine went away.
    pub fn is_closed(&self) -> bool {
        self.packets.is_closed()
    }

    /// Queues a source packet; a full queue drops it (counted). Never waits.
    pub fn packet(&self, p: SourcePacket) -> Result<(), EngineGone> {
        self.shared_packet(Arc::new(p))
    }

    /// [`MediaTx::packet`] for a packet already shared.
    pub fn shared_packet(&self, p: Arc<SourcePacket>) -> Result<(), EngineGone> {
        match self.packets.try_send(p) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(EngineGone),
        }
    }

    /// Queues a control command without waiting. On a full queue a command that
    /// releases a peer or a source waits for room in its own task; any other is
    /// refused, logged and counted (the engine is that far behind: shedding new work
    /// is what keeps the peers it has).
    pub fn command(&self, cmd: MediaCommand) -> Result<(), EngineGone> {
        let cmd = match cmd {
            MediaCommand::SourcePacket(p) => return self.shared_packet(p),
            cmd => cmd,
        };
        match self.commands.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(EngineGone),
            Err(mpsc::error::TrySendError::Full(cmd)) => {
                let releases = matches!(
                    cmd,
                    MediaCommand::ClosePeer { .. } | MediaCommand::DropSource(_)
                );
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) if releases => {
                        let tx = self.commands.clone();
                        rt.spawn(async move { tx.send(cmd).await });
                    }
                    _ => {
                        self.counters
                            .dropped_commands
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(?cmd, "media engine overloaded: command refused");
                    }
                }
                Ok(())
            }
        }
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
        let (tx, mut rx) = channel(3, 1, counters.clone());
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
        let (tx, mut rx) = channel(1, 1, counters.clone());
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
        let (tx, rx) = channel(4, 4, Arc::new(MediaCounters::default()));
        drop(rx);
        assert_eq!(tx.packet(packet(0)), Err(EngineGone));
        assert_eq!(
            tx.command(MediaCommand::DropSource(SourceId(1))),
            Err(EngineGone)
        );
    }
}
