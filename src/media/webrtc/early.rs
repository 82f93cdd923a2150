//! STUN checks that arrive before their peer does. A browser answering the gateway's
//! offer starts its checks as soon as it has the offer, while its answer (which adds
//! the peer to a shard) is still on its way over HTTP: a check that finds no peer is
//! kept here a moment and answered when the peer arrives, instead of waiting for the
//! browser to retransmit it (RFC 8445 §7.3's early checks; libnice does the same).
//!
//! Bounded in count and age: a flood of checks for made-up ufrags only pushes out
//! older ones, which then wait for their retransmission as before.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Checks kept per shard.
const MAX_EARLY: usize = 256;
/// How long one is kept.
const MAX_AGE: Duration = Duration::from_secs(2);
/// Longest datagram kept (a check is ~100 bytes; anything longer is not one of ours).
const MAX_LEN: usize = 600;

/// One check kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Early {
    pub(super) at: Instant,
    pub(super) ufrag: String,
    pub(super) source: SocketAddr,
    pub(super) local_ip: Option<IpAddr>,
    pub(super) bytes: Vec<u8>,
}

#[derive(Debug, Default)]
pub(super) struct EarlyChecks {
    kept: VecDeque<Early>,
}

impl EarlyChecks {
    /// Keeps a check for `ufrag` (the oldest goes when full).
    pub(super) fn keep(
        &mut self,
        now: Instant,
        ufrag: &str,
        source: SocketAddr,
        local_ip: Option<IpAddr>,
        bytes: &[u8],
    ) {
        if bytes.len() > MAX_LEN || ufrag.len() > 256 {
            return;
        }
        self.expire(now);
        if self.kept.len() >= MAX_EARLY {
            self.kept.pop_front();
        }
        self.kept.push_back(Early {
            at: now,
            ufrag: ufrag.to_owned(),
            source,
            local_ip,
            bytes: bytes.to_vec(),
        });
    }

    /// The checks kept for `ufrag`, oldest first, taken out.
    pub(super) fn take(&mut self, now: Instant, ufrag: &str) -> Vec<Early> {
        self.expire(now);
        if !self.kept.iter().any(|e| e.ufrag == ufrag) {
            return Vec::new();
        }
        let mut mine = Vec::new();
        self.kept.retain(|e| {
            if e.ufrag == ufrag {
                mine.push(e.clone());
                false
            } else {
                true
            }
        });
        mine
    }

    fn expire(&mut self, now: Instant) {
        while self
            .kept
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > MAX_AGE)
        {
            self.kept.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_wait_for_their_ufrag_a_while_and_a_flood_only_pushes_out_the_oldest() {
        #[allow(clippy::disallowed_methods)] // the test clock's origin
        let t0 = Instant::now();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut early = EarlyChecks::default();
        early.keep(t0, "abcd", a, None, b"check 1");
        early.keep(t0, "zzzz", a, None, b"other");
        early.keep(t0 + Duration::from_millis(50), "abcd", a, None, b"check 2");
        early.keep(t0, "abcd", a, None, &[0; 700]); // too long to be a check
                                                    // Whatever text a peer put in USERNAME: kept by the ufrag as given, never grown
                                                    // past 256 bytes.
        early.keep(t0, "é\r\nü", a, None, b"odd");
        early.keep(t0, &"x".repeat(60_000), a, None, b"huge");
        let got = early.take(t0 + Duration::from_millis(60), "abcd");
        let bytes: Vec<&[u8]> = got.iter().map(|e| e.bytes.as_slice()).collect();
        assert_eq!(bytes, [&b"check 1"[..], &b"check 2"[..]]);
        assert!(early.take(t0, "abcd").is_empty(), "taken once");
        assert_eq!(early.take(t0, "é\r\nü").len(), 1);
        assert!(early.take(t0, &"x".repeat(60_000)).is_empty());
        // Too old: gone.
        assert!(early.take(t0 + Duration::from_secs(3), "zzzz").is_empty());
        // A flood of made-up ufrags keeps the newest MAX_EARLY.
        early.keep(t0, "mine", a, None, b"mine");
        for i in 0..MAX_EARLY {
            early.keep(t0, &format!("junk{i}"), a, None, b"junk");
        }
        assert!(early.take(t0, "mine").is_empty());
        assert_eq!(early.take(t0, "junk255").len(), 1);
    }
}
