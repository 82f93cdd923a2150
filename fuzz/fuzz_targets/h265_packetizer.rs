//! H.265 packetization (RFC 7798) of arbitrary NAL units: no panic, every payload
//! within the limit, and the fragments reassemble to the NAL unit exactly.
#![no_main]

use cardea_codecs::h264::annex_b_nal_units;
use cardea_codecs::h265::packetize_nal;
use cardea_codecs::keyframe::{starts_keyframe, VideoCodec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut scratch = Vec::new();
    for nal in annex_b_nal_units(data).chain(std::iter::once(data)) {
        if nal.len() < 2 {
            continue;
        }
        let mut rebuilt: Vec<u8> = Vec::new();
        packetize_nal(nal, 64, &mut scratch, &mut |p, _last| {
            assert!(p.len() <= 64 || p == nal);
            let _ = starts_keyframe(VideoCodec::H265, p);
            if p == nal {
                rebuilt.extend_from_slice(p);
            } else {
                if rebuilt.is_empty() {
                    rebuilt.push((p[0] & 0x81) | ((p[2] & 0x3f) << 1));
                    rebuilt.push(p[1]);
                }
                rebuilt.extend_from_slice(&p[3..]);
            }
        });
        assert_eq!(rebuilt, nal);
    }
});
