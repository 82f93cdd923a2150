//! When each peer of a shard next needs its timer: a min-heap, so the next wake-up and
//! the peers due are found without a look at every peer.
//!
//! A peer has at most one live entry (the time it is scheduled for, kept in the peer);
//! an entry whose time is no longer the peer's is stale and skipped when it surfaces.
//! A deadline that moves earlier pushes a new entry; one that moves later leaves the
//! old one to fire early, and the peer is rescheduled then.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::ids::PeerId;

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, PeerId)>>,
}

impl Timers {
    /// Peer `id` must be woken at `deadline`; `scheduled` is the time of its live
    /// entry (updated here).
    pub(crate) fn schedule(
        &mut self,
        id: PeerId,
        scheduled: &mut Option<Instant>,
        deadline: Instant,
    ) {
        if scheduled.is_some_and(|s| s <= deadline) {
            return;
        }
        *scheduled = Some(deadline);
        self.heap.push(Reverse((deadline, id)));
    }

    /// The earliest entry (perhaps stale: then the wake-up finds nothing due).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Takes the entries due at `now` into `due` as (time, peer); the caller keeps
    /// those whose time is the peer's scheduled one.
    pub(crate) fn pop_due(&mut self, now: Instant, due: &mut Vec<(Instant, PeerId)>) {
        while let Some(Reverse((t, id))) = self.heap.peek().copied() {
            if t > now {
                break;
            }
            self.heap.pop();
            due.push((t, id));
        }
    }

    /// Entries, live and stale.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Starts over from the live entries `live` (when stale ones have piled up).
    pub(crate) fn rebuild(&mut self, live: impl Iterator<Item = (Instant, PeerId)>) {
        self.heap.clear();
        self.heap.extend(live.map(Reverse));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_earlier_deadline_adds_an_entry_a_later_one_waits_for_the_early_wake_up() {
        #[allow(clippy::disallowed_methods)] // the test clock's origin
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut timers = Timers::default();
        let (mut a, mut b) = (None, None);
        timers.schedule(PeerId(1), &mut a, ms(100));
        timers.schedule(PeerId(2), &mut b, ms(50));
        assert_eq!(timers.next(), Some(ms(50)));
        // Later than its entry: nothing new.
        timers.schedule(PeerId(2), &mut b, ms(70));
        assert_eq!((timers.len(), b), (2, Some(ms(50))));
        // Earlier: a new live entry, the old one stale.
        timers.schedule(PeerId(1), &mut a, ms(10));
        assert_eq!((timers.len(), a), (3, Some(ms(10))));
        let mut due = Vec::new();
        timers.pop_due(ms(60), &mut due);
        assert_eq!(due, [(ms(10), PeerId(1)), (ms(50), PeerId(2))]);
        // Peer 1's entry at 100 ms is the stale one left.
        assert_eq!(timers.next(), Some(ms(100)));
        assert_ne!(a, Some(ms(100)));
    }
}
