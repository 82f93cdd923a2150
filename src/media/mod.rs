//! Media: what carries packets, and nothing that decides what to carry.
//!
//! * [`webrtc`]: str0m peers in N shards (threads), each with its UDP socket: the
//!   factory (offers and answers, placing each peer on the least-loaded shard), the
//!   sans-IO engine holding a shard's peers, the demultiplexer, the bounded queues into
//!   each shard (a peer's commands routed to its shard), the outbox that gathers a
//!   turn's sends into GSO bursts, and the thin driver that owns a shard's socket and
//!   clock. A source packet ([`source::SourcePacket`], the payload shared) from the
//!   ingest side goes into every shard's queue as one `Arc`; each engine hands it to
//!   each subscribed peer's handler, which rewrites sequence numbers and timestamps and
//!   writes it (fan-out).
//! * `handler`: the port plugins implement to drive one peer's media.
//! * `router`: the fan-out's per-viewer half (keyframe start, controls, NACKs answered).
//! * `rewriter`: a viewer's sequence numbers and timestamps, and back (for NACKs).
//! * `gop`: each source's packets since its last keyframe, replayed to a new viewer.
//! * `history`: each source's packets of the last second, sent again when a viewer
//!   NACKs one (one history per source, not a copy per viewer).
//! * `resend`: how much one viewer may have sent again (NACK storms are refused).
//! * `snapshot`: each source's latest keyframe, for JPEG snapshots.
//!
//! Nothing here names `plugin`, `api`, `ingest` or `transport` (`tests/layering.rs`).

pub(crate) mod gop;
pub(crate) mod handler;
pub(crate) mod history;
pub(crate) mod resend;
pub(crate) mod rewriter;
pub(crate) mod router;
pub(crate) mod snapshot;
pub(crate) mod source;
pub mod webrtc;
