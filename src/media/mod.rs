//! Media: everything that carries packets. Today the WebRTC layer; the fan-out
//! router for streaming and the SIP media bridge join it in later issues.

pub mod gop;
pub mod snapshot;
pub mod webrtc;
