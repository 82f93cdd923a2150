//! What the gateway reads inside RTP and RTCP from sources: keyframe starts for every
//! video codec, the H.264 parameter-set inserter (its STAP-A and FU-A reading, the
//! SPS/PPS it learns and the STAP-A it builds), and the RTCP sender-report check that
//! latches where keyframe requests go. No panic; an inserted STAP-A is well formed.
#![no_main]

use cardea::fuzzing::rtcp_sender_ssrc;
use cardea_codecs::h264::ParameterSetInserter;
use cardea_codecs::keyframe::{starts_keyframe, KeyframeStarts, VideoCodec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rtcp_sender_ssrc(data);
    // The first byte splits the rest into packets: [len][payload]...
    let mut inserter = ParameterSetInserter::from_fmtp(
        "packetization-mode=1;sprop-parameter-sets=Z0LAHtoCgL/lwFqDAwNSgAAAAwCAAAAeR4sXUA==,aM48gA==",
    );
    let mut starts = [
        VideoCodec::Vp8,
        VideoCodec::Vp9,
        VideoCodec::H264,
        VideoCodec::H265,
        VideoCodec::Av1,
    ]
    .map(KeyframeStarts::new);
    let mut rest = data;
    let mut ts = 0u32;
    while let Some((&len, tail)) = rest.split_first() {
        let take = (len as usize).min(tail.len());
        let (payload, next) = tail.split_at(take);
        rest = next;
        ts = ts.wrapping_add(u32::from(len & 0x3) * 3000);
        for s in starts.iter_mut() {
            let _ = s.is_start(payload, ts);
        }
        for c in [VideoCodec::Vp9, VideoCodec::H265, VideoCodec::Av1] {
            let _ = starts_keyframe(c, payload);
        }
        if let Some(stap) = inserter.inspect(payload, ts) {
            // STAP-A: header, then (size, NAL) pairs that fill it exactly.
            assert_eq!(stap[0] & 0x1f, 24);
            let mut r = &stap[1..];
            while !r.is_empty() {
                let size = u16::from_be_bytes([r[0], r[1]]) as usize;
                assert!(size > 0 && r.len() >= 2 + size);
                r = &r[2 + size..];
            }
        }
    }
});
