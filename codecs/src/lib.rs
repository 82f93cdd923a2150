//! Cardea's media translation pieces, free of async and networking.
//!
//! Today: G.711 (µ-law and A-law, ITU-T G.711). Packetizers, Opus and the
//! ffmpeg-backed transcoders join in the streaming and SIP issues.
#![warn(missing_docs)]

pub mod g711;
pub mod h264;
pub mod keyframe;
