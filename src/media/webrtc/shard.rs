//! Media shards: the engine runs as N independent copies, each on a thread of its own
//! with its own peers, timers and UDP socket (ports contiguous from `udp_bind`'s). A
//! peer is placed on the least-loaded shard when its str0m instance is built (its
//! candidates carry that shard's port) and never moves; commands for it are routed to
//! its shard by [`Routes`]. A source packet goes to every shard once, as one `Arc`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use super::MediaCounters;
use crate::ids::PeerId;

/// Most shards: more than any core count worth a thread each, few enough for a port range.
pub const MAX_SHARDS: usize = 64;

/// A peer's shard, from the moment its str0m instance is built. While it has not
/// reached the engine it counts as `placing` on its shard, so a burst of joins
/// spreads over the shards before any of them is added; dropped (added, or given up
/// with its handle), it no longer does.
#[derive(Debug)]
pub struct Placement {
    shard: usize,
    counters: Arc<MediaCounters>,
}

impl Placement {
    /// The least-loaded of `shards` (peers served plus peers being placed); on a tie,
    /// the first from `turn` on, so that equal shards take turns.
    pub(crate) fn least_loaded(shards: &[Arc<MediaCounters>], turn: usize) -> Placement {
        let load =
            |c: &MediaCounters| c.peers.load(Ordering::Relaxed) + c.placing.load(Ordering::Relaxed);
        let n = shards.len().max(1);
        let (shard, counters) = shards
            .iter()
            .enumerate()
            .min_by_key(|(i, c)| (load(c), (i + n - turn % n) % n))
            .expect("at least one shard");
        counters.placing.fetch_add(1, Ordering::Relaxed);
        Placement {
            shard,
            counters: counters.clone(),
        }
    }

    /// The shard's index.
    pub fn shard(&self) -> usize {
        self.shard
    }
}

impl Drop for Placement {
    fn drop(&mut self) {
        self.counters.placing.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which shard serves each peer: written when a peer is sent to its shard, erased when
/// the shard reports it closed. Control commands only: packets never look here.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    by_peer: Mutex<HashMap<PeerId, usize>>,
}

impl Routes {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, usize>> {
        // The table holds plain numbers: a panic elsewhere cannot leave it half-written.
        self.by_peer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, peer: PeerId, shard: usize) {
        self.table().insert(peer, shard);
    }

    pub(crate) fn get(&self, peer: PeerId) -> Option<usize> {
        self.table().get(&peer).copied()
    }

    pub(crate) fn forget(&self, peer: PeerId) {
        self.table().remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_joins_spreads_and_a_dropped_placement_frees_its_room() {
        let shards: Vec<Arc<MediaCounters>> = (0..2).map(|_| Arc::default()).collect();
        let a = Placement::least_loaded(&shards, 0);
        let b = Placement::least_loaded(&shards, 0);
        let c = Placement::least_loaded(&shards, 0);
        assert_eq!([a.shard(), b.shard(), c.shard()], [0, 1, 0]);
        // Shard 1's peer was given up before it reached the engine.
        drop(b);
        assert_eq!(Placement::least_loaded(&shards, 0).shard(), 1);
        // Peers being served count as load too.
        shards[1].peers.store(5, Ordering::Relaxed);
        assert_eq!(Placement::least_loaded(&shards, 1).shard(), 0);
        drop((a, c));
        assert_eq!(shards[0].placing.load(Ordering::Relaxed), 0);
        // Equal shards take turns: one viewer at a time still uses every shard.
        shards[1].peers.store(0, Ordering::Relaxed);
        let turns: Vec<usize> = (0..4)
            .map(|t| Placement::least_loaded(&shards, t).shard())
            .collect();
        assert_eq!(turns, [0, 1, 0, 1]);
    }
}
