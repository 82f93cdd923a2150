//! Cardea's media translation pieces, free of async and networking.
//!
//! G.711 (µ-law and A-law), H.264 RTP packetization, keyframe detection (VP8, H.264),
//! and AAC → Opus (libavcodec + libopus). The SIP bridge's Opus ↔ G.711 comes next.
#![warn(missing_docs)]

pub mod aac;
pub mod g711;
pub mod h264;
pub mod h265;
pub mod keyframe;
