//! Annex B splitting, H.264 packetization and keyframe reading on arbitrary bytes:
//! no panic, every payload within the limit, and the fragments of each NAL unit
//! reassemble to it exactly.
#![no_main]

use cardea_codecs::h264::{annex_b_nal_units, packetize_nal};
use cardea_codecs::keyframe::{starts_keyframe, VideoCodec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = starts_keyframe(VideoCodec::Vp8, data);
    let _ = starts_keyframe(VideoCodec::H264, data);
    let mut scratch = Vec::new();
    for nal in annex_b_nal_units(data) {
        let mut rebuilt: Vec<u8> = Vec::new();
        packetize_nal(nal, 64, &mut scratch, &mut |p, _last| {
            assert!(p.len() <= 64 || p == nal);
            let _ = starts_keyframe(VideoCodec::H264, p);
            if p == nal {
                rebuilt.extend_from_slice(p);
            } else {
                if rebuilt.is_empty() {
                    rebuilt.push((p[0] & 0xe0) | (p[1] & 0x1f));
                }
                rebuilt.extend_from_slice(&p[2..]);
            }
        });
        assert_eq!(rebuilt, nal);
    }
});
