//! Ingest: where media enters the gateway from outside WebRTC. Today plain RTP over
//! UDP (`rtp`); RTSP cameras and the SIP user agent join it.

pub mod demo;
pub mod packetizer;
pub mod rtp;
pub mod rtsp;
pub mod sip;
