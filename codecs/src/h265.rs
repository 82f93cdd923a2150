//! H.265 over RTP (RFC 7798): NAL units into RTP payloads, whole or as
//! fragmentation units (type 49). Annex B splitting is shared with H.264.

/// The fragmentation unit's NAL type.
const FU: u8 = 49;

/// Calls `emit(payload, last)` for each RTP payload carrying `nal` (its 2-byte
/// header included), each at most `max_payload` bytes; `last` marks the final one.
/// `scratch` is reused so steady state allocates nothing. Never panics.
pub fn packetize_nal(
    nal: &[u8],
    max_payload: usize,
    scratch: &mut Vec<u8>,
    emit: &mut dyn FnMut(&[u8], bool),
) {
    if nal.len() < 2 {
        return;
    }
    if nal.len() <= max_payload {
        emit(nal, true);
        return;
    }
    // Payload header: the NAL header with its type replaced by 49 (F, LayerId, TID kept).
    let header = [(nal[0] & 0x81) | (FU << 1), nal[1]];
    let nal_type = (nal[0] >> 1) & 0x3f;
    let body = &nal[2..];
    let max_chunk = max_payload.saturating_sub(3).max(1);
    let chunks = body.len().div_ceil(max_chunk);
    for (i, chunk) in body.chunks(max_chunk).enumerate() {
        let start = if i == 0 { 0x80 } else { 0 };
        let end = if i + 1 == chunks { 0x40 } else { 0 };
        scratch.clear();
        scratch.extend_from_slice(&header);
        scratch.push(start | end | nal_type);
        scratch.extend_from_slice(chunk);
        emit(scratch, i + 1 == chunks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyframe::{starts_keyframe, VideoCodec};

    #[test]
    fn small_nal_whole_large_nal_fragmented_and_reassembled() {
        let mut out = Vec::new();
        packetize_nal(&[0x40, 0x01, 9], 1200, &mut Vec::new(), &mut |p, l| {
            out.push((p.to_vec(), l))
        });
        assert_eq!(out, vec![(vec![0x40, 0x01, 9], true)]);

        // An IDR_W_RADL (type 19) slice of 3000 bytes.
        let mut nal = vec![19 << 1, 0x01];
        nal.extend((0..3000u32).map(|i| (i % 251) as u8));
        let mut parts = Vec::new();
        packetize_nal(&nal, 1200, &mut Vec::new(), &mut |p, l| {
            parts.push((p.to_vec(), l))
        });
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|(p, _)| p.len() <= 1200));
        assert!(starts_keyframe(VideoCodec::H265, &parts[0].0));
        assert!(!starts_keyframe(VideoCodec::H265, &parts[1].0));
        assert_eq!(parts.iter().filter(|(_, l)| *l).count(), 1);
        let mut back = vec![
            (parts[0].0[2] & 0x3f) << 1 | (parts[0].0[0] & 0x81),
            parts[0].0[1],
        ];
        for (p, _) in &parts {
            assert_eq!((p[0] >> 1) & 0x3f, 49);
            back.extend_from_slice(&p[3..]);
        }
        assert_eq!(back, nal);
        packetize_nal(&[0x40], 1200, &mut Vec::new(), &mut |_, _| {
            panic!("too short")
        });
    }
}
