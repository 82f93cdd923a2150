//! The parsers the fuzz targets drive that are not otherwise part of the library's
//! API, behind the `fuzzing` feature (`fuzz/Cargo.toml` turns it on). Each is a thin
//! call of the real one, so the fuzzers exercise exactly what the gateway runs.

/// The `a=fmtp` of each (media, payload type) in a camera's SDP
/// (`ingest::rtsp::stream_fmtps`).
pub fn rtsp_stream_fmtps(sdp: &str, streams: &[(&str, u8)]) -> Vec<Option<String>> {
    crate::ingest::rtsp::stream_fmtps(sdp, streams)
}

/// The kind and mid of each m-line of a WHEP player's offer
/// (`media::webrtc::offered_mlines`).
pub fn offered_mlines(sdp: &str) -> Vec<(str0m::media::MediaKind, String)> {
    crate::media::webrtc::offered_mlines(sdp)
}

/// The sender SSRC of an RTCP SR/RR (`ingest::rtp::rtcp_sender_ssrc`).
pub fn rtcp_sender_ssrc(d: &[u8]) -> Option<u32> {
    crate::ingest::rtp::rtcp_sender_ssrc(d)
}

/// Sorts a datagram on the media socket (STUN, DTLS, RTP/RTCP, garbage) as the
/// demultiplexer does; returns its kind's name.
pub fn classify_datagram(d: &[u8]) -> &'static str {
    use crate::media::webrtc::demux::{classify, Datagram};
    match classify(d) {
        Datagram::Stun { .. } => "stun",
        Datagram::Dtls => "dtls",
        Datagram::Rtp => "rtp",
        Datagram::Garbage => "garbage",
    }
}

/// `Signal=5\r\nDuration=160` (SIP INFO, application/dtmf-relay) to the digit and ms.
pub fn parse_dtmf_relay(body: &str) -> Option<(char, u32)> {
    crate::ingest::sip::call::parse_dtmf_relay(body)
}

/// Whether a custom SIP header a request asks for may be sent (`ingest::sip::check_header`).
pub fn check_sip_header(name: &str, value: &str) -> Result<(), String> {
    crate::ingest::sip::check_header(name, value)
}

/// `sip:user@host` to (user, host) (`ingest::sip::split_sip_uri`).
pub fn split_sip_uri(uri: &str) -> Option<(&str, &str)> {
    crate::ingest::sip::split_sip_uri(uri)
}

/// One viewer track's sequence numbers through source restarts, reordering and NACKs
/// (`media::rewriter`): panics if a number is given to two packets or maps back wrong.
pub fn viewer_numbers(data: &[u8]) {
    crate::media::rewriter::check_numbering(data)
}
