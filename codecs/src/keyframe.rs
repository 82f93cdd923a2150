//! Does an RTP payload start a keyframe? For GOP caching and for waiting on a
//! keyframe before a new viewer's first packet. Input is hostile: never panics.

/// Codecs whose keyframes can be recognised from the RTP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// H.264 (RFC 6184), packetization mode 0 or 1.
    H264,
    /// H.265 (RFC 7798).
    H265,
    /// VP9 (RFC 9628): a frame start not predicted from earlier frames.
    Vp9,
    /// AV1 (AOM RTP spec): the first packet of a coded video sequence.
    Av1,
}

/// Whether `payload` is the first packet of a keyframe (for H.264: carries an IDR
/// slice or the SPS that precedes one).
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_starts_keyframe(payload),
        VideoCodec::H264 => h264_starts_keyframe(payload),
        VideoCodec::H265 => h265_starts_keyframe(payload),
        // B (start of frame) set, P (inter-predicted) clear.
        VideoCodec::Vp9 => payload.first().is_some_and(|b| b & 0x48 == 0x08),
        // Aggregation header: N (new coded video sequence) set, Z (continuation) clear.
        VideoCodec::Av1 => payload.first().is_some_and(|b| b & 0x88 == 0x08),
    }
}

/// Marks where keyframes start in one RTP stream: only the first keyframe packet
/// of an access unit counts (an H.264 SPS, PPS and IDR share one RTP timestamp, and
/// the cache must start at the SPS, not restart at the IDR).
#[derive(Debug, Clone)]
pub struct KeyframeStarts {
    codec: VideoCodec,
    last_start: Option<u32>,
}

impl KeyframeStarts {
    /// For a stream of `codec`.
    pub fn new(codec: VideoCodec) -> Self {
        KeyframeStarts {
            codec,
            last_start: None,
        }
    }

    /// Whether this packet (payload and RTP timestamp) starts a keyframe.
    pub fn is_start(&mut self, payload: &[u8], timestamp: u32) -> bool {
        if self.last_start == Some(timestamp) || !starts_keyframe(self.codec, payload) {
            return false;
        }
        self.last_start = Some(timestamp);
        true
    }
}

/// RFC 7741 §4.2: payload descriptor, then the VP8 frame header whose bit 0 is 0 for a key frame.
fn vp8_starts_keyframe(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    if !start_of_partition || partition_id != 0 {
        return false;
    }
    let mut i = 1;
    if first & 0x80 != 0 {
        // X: extension byte with I, L, T, K flags.
        let Some(&x) = p.get(i) else {
            return false;
        };
        i += 1;
        if x & 0x80 != 0 {
            // I: PictureID, one or two bytes (M bit).
            let Some(&pid) = p.get(i) else {
                return false;
            };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // L: TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // T or K: TID/Y/KEYIDX
        }
    }
    p.get(i).is_some_and(|h| h & 0x01 == 0)
}

/// RFC 7798: a single NAL unit that is an IRAP picture (16-21) or a VPS/SPS (32, 33),
/// an aggregation packet (48) holding one, or the first fragment (49) of one.
fn h265_starts_keyframe(p: &[u8]) -> bool {
    let is_key = |nal_type: u8| (16..=21).contains(&nal_type) || nal_type == 32 || nal_type == 33;
    let Some(&first) = p.first() else {
        return false;
    };
    match (first >> 1) & 0x3f {
        48 => {
            let mut rest = p.get(2..).unwrap_or_default();
            while rest.len() >= 3 {
                let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let Some(nal) = rest.get(2..2 + size) else {
                    return false;
                };
                if nal.first().is_some_and(|h| is_key((h >> 1) & 0x3f)) {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        49 => p
            .get(2)
            .is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x3f)),
        t => is_key(t),
    }
}

/// RFC 6184: single NAL unit (IDR = 5, SPS = 7), STAP-A (24) containing one, or the
/// first fragment of an FU-A (28) of one.
fn h264_starts_keyframe(p: &[u8]) -> bool {
    let is_key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    let Some(&first) = p.first() else {
        return false;
    };
    match first & 0x1f {
        24 => {
            let mut rest = &p[1..];
            while rest.len() >= 3 {
                let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let Some(nal) = rest.get(2..2 + size) else {
                    return false;
                };
                if nal.first().is_some_and(|h| is_key(h & 0x1f)) {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        t => is_key(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_from_gstreamer() {
        // Payload of the first packet rtpvp8pay sent (descriptor 0x10, keyframe header 0x9d...).
        let key = [0x10, 0x10, 0x60, 0x00, 0x9d, 0x01, 0x2a];
        // That capture has X=0 and S=1; the byte after the descriptor is the frame tag.
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x10, 0x11]));
        assert!(starts_keyframe(VideoCodec::Vp8, &key));
        // With X, I (two-byte picture id), L and T.
        assert!(starts_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0xe0, 0x80, 0x01, 0x05, 0x20, 0x50]
        ));
        assert!(!starts_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0xe0, 0x80, 0x01, 0x05, 0x20, 0x51]
        ));
        // Not the start of partition 0.
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x00, 0x10]));
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x11, 0x10]));
        for cut in 0..4 {
            let _ = starts_keyframe(VideoCodec::Vp8, &[0x90, 0xe0, 0x80][..cut]);
        }
    }

    #[test]
    fn one_start_per_access_unit() {
        let mut k = KeyframeStarts::new(VideoCodec::H264);
        assert!(k.is_start(&[0x67, 0x42], 9000)); // SPS
        assert!(!k.is_start(&[0x68, 0xce], 9000)); // PPS
        assert!(!k.is_start(&[0x7c, 0x85, 0x88], 9000)); // IDR, same access unit
        assert!(!k.is_start(&[0x41, 0x9a], 12000));
        assert!(k.is_start(&[0x7c, 0x85, 0x88], 15000)); // IDR without SPS: a start
    }

    #[test]
    fn h264_forms() {
        assert!(starts_keyframe(VideoCodec::H264, &[0x67, 0x42]));
        assert!(starts_keyframe(VideoCodec::H264, &[0x65, 0x88]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS and PPS.
        assert!(starts_keyframe(
            VideoCodec::H264,
            &[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]
        ));
        assert!(!starts_keyframe(
            VideoCodec::H264,
            &[0x18, 0x00, 0x02, 0x41, 0x42]
        ));
        // STAP-A with a size past the end.
        assert!(!starts_keyframe(
            VideoCodec::H264,
            &[0x18, 0x00, 0x09, 0x67]
        ));
        // FU-A: start of an IDR fragment, and a middle one.
        assert!(starts_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x88]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x88]));
        assert!(!starts_keyframe(VideoCodec::H264, &[]));
    }

    #[test]
    fn h265_vp9_av1_keyframe_starts() {
        // H.265 NAL header: type in bits 1-6 of the first byte.
        assert!(starts_keyframe(VideoCodec::H265, &[32 << 1, 1, 0])); // VPS
        assert!(starts_keyframe(VideoCodec::H265, &[19 << 1, 1, 0])); // IDR_W_RADL
        assert!(!starts_keyframe(VideoCodec::H265, &[1 << 1, 1, 0])); // TRAIL_R
        assert!(starts_keyframe(VideoCodec::H265, &[49 << 1, 1, 0x80 | 19]));
        assert!(!starts_keyframe(VideoCodec::H265, &[49 << 1, 1, 19]));
        assert!(starts_keyframe(
            VideoCodec::H265,
            &[48 << 1, 1, 0, 2, 32 << 1, 1]
        ));
        assert!(!starts_keyframe(
            VideoCodec::H265,
            &[48 << 1, 1, 0, 9, 32 << 1]
        ));
        assert!(starts_keyframe(VideoCodec::Vp9, &[0x08 | 0x04]));
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0x48]));
        assert!(starts_keyframe(VideoCodec::Av1, &[0x18]));
        assert!(!starts_keyframe(VideoCodec::Av1, &[0x98]));
        for c in [VideoCodec::H265, VideoCodec::Vp9, VideoCodec::Av1] {
            assert!(!starts_keyframe(c, &[]));
        }
    }
}
