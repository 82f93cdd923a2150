//! How many transcoders of each kind exist in the process (for metrics): each holds a
//! [`Live`] that counts it from creation to drop.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A kind of transcoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A camera's AAC to Opus ([`crate::aac::AacToOpus`]).
    AacToOpus = 0,
    /// A call's browser Opus to G.711/G.722 ([`crate::voice::OpusToPhone`]).
    OpusToPhone = 1,
    /// A call's G.711/G.722 to browser Opus ([`crate::voice::PhoneToOpus`]).
    PhoneToOpus = 2,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::AacToOpus, Kind::OpusToPhone, Kind::PhoneToOpus];

    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::AacToOpus => "aac_to_opus",
            Kind::OpusToPhone => "opus_to_phone",
            Kind::PhoneToOpus => "phone_to_opus",
        }
    }

    /// Instances of this kind alive now.
    pub fn live(self) -> u64 {
        LIVE[self as usize].load(Relaxed)
    }
}

static LIVE: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Counts one transcoder of its kind while it exists.
#[derive(Debug)]
pub(crate) struct Live(&'static AtomicU64);

impl Live {
    pub(crate) fn new(kind: Kind) -> Live {
        Live::on(&LIVE[kind as usize])
    }

    fn on(count: &'static AtomicU64) -> Live {
        count.fetch_add(1, Relaxed);
        Live(count)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_creation_to_drop() {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let a = Live::on(&COUNT);
        let b = Live::on(&COUNT);
        assert_eq!(COUNT.load(Relaxed), 2);
        drop(a);
        assert_eq!(COUNT.load(Relaxed), 1);
        drop(b);
        assert_eq!(COUNT.load(Relaxed), 0);
    }
}
