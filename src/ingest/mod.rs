//! Ingest: where media and signalling enter the gateway from outside WebRTC: plain RTP
//! over UDP (`rtp`), RTSP cameras (`rtsp`), the built-in demo source (`demo`) and the
//! SIP user agent (`sip`).

pub mod demo;
pub mod packetizer;
pub mod rtp;
pub mod rtsp;
pub mod sip;
