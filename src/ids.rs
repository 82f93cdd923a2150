//! Newtypes for the ids that cross layer boundaries: every layer names them from here
//! (the API core re-exports them), so none has to name another for an id.

use std::fmt;

/// Ids are random positive integers below 2^53 so they survive JavaScript numbers, as in Janus.
const ID_MASK: u64 = (1 << 53) - 1;

/// Draws a random non-zero id below 2^53.
pub(crate) fn random_id() -> u64 {
    loop {
        let id = rand::random::<u64>() & ID_MASK;
        if id != 0 {
            return id;
        }
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A Janus session.
    SessionId
);
id_type!(
    /// A Janus handle (one plugin attachment inside a session).
    HandleId
);
id_type!(
    /// One transport connection (a WebSocket); HTTP requests have none.
    ConnId
);
id_type!(
    /// One media source (a mountpoint's ingest), fanned out to its viewers.
    SourceId
);
id_type!(
    /// A streaming mountpoint, as clients name it (`id` in `watch`, `info`, WHEP paths).
    MountpointId
);
id_type!(
    /// One PeerConnection; a handle gets a new one after each hangup, so stale media events can be told apart.
    PeerId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_and_below_2_pow_53() {
        for _ in 0..10_000 {
            let id = random_id();
            assert!(id > 0 && id < (1 << 53));
        }
    }
}
