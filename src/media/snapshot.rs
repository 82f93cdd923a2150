//! The latest keyframe of each source's video tracks, for snapshots. The media engine
//! publishes one as it completes (a short lock once per keyframe, never per packet);
//! the HTTP side reads it and decodes it elsewhere. Packets are shared, not copied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::contain::lock;
use crate::ids::SourceId;
use crate::media::source::SourcePacket;

/// One keyframe: its packets (one access unit) and a number that changes with each.
#[derive(Debug, Clone)]
pub struct Keyframe {
    /// Counts keyframes published, across sources: equal numbers, same keyframe.
    pub generation: u64,
    /// Its RTP packets in order.
    pub packets: Arc<[Arc<SourcePacket>]>,
}

/// The latest keyframe per (source, track).
#[derive(Debug, Default)]
pub struct Keyframes {
    latest: Mutex<Latest>,
}

#[derive(Debug, Default)]
struct Latest {
    /// Keyframes published so far.
    published: u64,
    by_track: HashMap<(SourceId, u8), Keyframe>,
}

impl Keyframes {
    /// Keeps `packets` as `track`'s latest keyframe of `source`.
    pub fn publish(&self, source: SourceId, track: u8, packets: &[Arc<SourcePacket>]) {
        let packets: Arc<[Arc<SourcePacket>]> = packets.into();
        let mut g = lock(&self.latest);
        g.published += 1;
        let generation = g.published;
        g.by_track.insert(
            (source, track),
            Keyframe {
                generation,
                packets,
            },
        );
    }

    /// The latest keyframe of `source`'s `track`.
    pub fn latest(&self, source: SourceId, track: u8) -> Option<Keyframe> {
        lock(&self.latest).by_track.get(&(source, track)).cloned()
    }

    /// A source stopped: its keyframes go.
    pub fn forget(&self, source: SourceId) {
        lock(&self.latest).by_track.retain(|(s, _), _| *s != source);
    }
}
