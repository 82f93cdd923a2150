//! The AAC camera path: arbitrary bytes as the ADTS frames retina hands over, decoded
//! by libavcodec, resampled and encoded to Opus. Bad frames are refused with an
//! error, never a panic, and the transcoder goes on working afterwards.
#![no_main]

use cardea_codecs::aac::AacToOpus;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut t) = AacToOpus::new() else {
        return;
    };
    for (i, frame) in data.split(|b| *b == 0xff).enumerate() {
        let mut adts = vec![0xff];
        adts.extend_from_slice(frame);
        let _ = t.push_adts(&adts, &mut |opus, _ts| {
            assert!(!opus.is_empty() && opus.len() < 4000)
        });
        if i > 64 {
            break;
        }
    }
});
