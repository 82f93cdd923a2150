//! Cardea's media translation pieces, free of async and networking.
//!
//! The RTP header parser, G.711 (µ-law and A-law), H.264/H.265 RTP packetization and depacketization,
//! keyframe detection, MP4A-LATM depacketization, AAC → Opus (libavcodec + libopus),
//! keyframes to JPEG snapshots (libavcodec + libswscale) and the SIP bridge's
//! Opus ↔ G.711 and G.722.
#![warn(missing_docs)]

pub mod aac;
pub mod g711;
pub mod h264;
pub mod h265;
pub mod h26x;
pub mod keyframe;
pub mod latm;
pub mod live;
pub mod rtp;
pub mod snapshot;
pub mod voice;
