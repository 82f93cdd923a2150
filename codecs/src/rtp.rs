//! The fixed RTP header (RFC 3550 §5.1): a sans-IO parser every packet from a source
//! goes through (plain-RTP mountpoints, SIP calls' media), fuzzed (`fuzz/rtp_header`).

/// The fixed RTP header fields a forwarder needs (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Payload type.
    pub pt: u8,
    /// Marker bit (end of a video frame).
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Where the payload starts (after CSRCs and the header extension).
    pub payload_offset: usize,
    /// Where the payload ends (before padding).
    pub payload_end: usize,
}

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than its header says.
    #[error("truncated RTP packet ({0} bytes)")]
    Truncated(usize),
    /// Version is not 2.
    #[error("not RTP version 2")]
    Version,
    /// An RTCP packet type (200–204) in the payload-type position.
    #[error("RTCP on an RTP port")]
    Rtcp,
    /// Padding larger than the payload.
    #[error("bad padding")]
    Padding,
}

impl RtpHeader {
    /// Parses the header of `d`; never panics.
    pub fn parse(d: &[u8]) -> Result<RtpHeader, PacketError> {
        if d.len() < 12 {
            return Err(PacketError::Truncated(d.len()));
        }
        if d[0] >> 6 != 2 {
            return Err(PacketError::Version);
        }
        let pt = d[1] & 0x7f;
        if (72..=76).contains(&pt) {
            return Err(PacketError::Rtcp);
        }
        let csrc = (d[0] & 0x0f) as usize;
        let mut offset = 12 + 4 * csrc;
        if d[0] & 0x10 != 0 {
            let ext = d
                .get(offset + 2..offset + 4)
                .ok_or(PacketError::Truncated(d.len()))?;
            offset += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
        }
        if offset > d.len() {
            return Err(PacketError::Truncated(d.len()));
        }
        let mut end = d.len();
        if d[0] & 0x20 != 0 {
            let pad = d[d.len() - 1] as usize;
            if pad == 0 || offset + pad > d.len() {
                return Err(PacketError::Padding);
            }
            end -= pad;
        }
        Ok(RtpHeader {
            pt,
            marker: d[1] & 0x80 != 0,
            seq: u16::from_be_bytes([d[2], d[3]]),
            timestamp: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
            ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
            payload_offset: offset,
            payload_end: end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first VP8 RTP packet GStreamer 1.22 (`vp8enc ! rtpvp8pay pt=96`) sent to
    /// port 5004, captured on loopback with tcpdump; cut to its first 26 bytes.
    const GST_VP8: [u8; 26] = [
        0x80, 0x60, 0x4a, 0x0a, 0x44, 0xa2, 0xe3, 0x00, 0x28, 0x55, 0x67, 0x59, 0x10, 0x10, 0x60,
        0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0x00, 0x47, 0x08,
    ];

    #[test]
    fn parses_a_gstreamer_packet() {
        let h = RtpHeader::parse(&GST_VP8).unwrap();
        assert_eq!(h.pt, 96);
        assert!(!h.marker);
        assert_eq!(h.seq, 0x4a0a);
        assert_eq!(h.timestamp, 0x44a2e300);
        assert_eq!(h.ssrc, 0x28556759);
        assert_eq!(h.payload_offset, 12);
        assert_eq!(h.payload_end, GST_VP8.len());
    }

    #[test]
    fn refuses_what_is_not_rtp() {
        assert_eq!(
            RtpHeader::parse(&[0x80; 11]),
            Err(PacketError::Truncated(11))
        );
        assert_eq!(RtpHeader::parse(&[0x40; 20]), Err(PacketError::Version));
        let mut rtcp = [0u8; 12];
        rtcp[0] = 0x80;
        rtcp[1] = 200;
        assert_eq!(RtpHeader::parse(&rtcp), Err(PacketError::Rtcp));
        // Extension length past the end.
        let mut ext = GST_VP8;
        ext[0] |= 0x10;
        ext[14] = 0xff;
        assert!(RtpHeader::parse(&ext).is_err());
        // Padding larger than the packet.
        let mut pad = GST_VP8;
        pad[0] |= 0x20;
        pad[25] = 200;
        assert_eq!(RtpHeader::parse(&pad), Err(PacketError::Padding));
        for cut in 0..GST_VP8.len() {
            let _ = RtpHeader::parse(&GST_VP8[..cut]);
        }
    }
}
