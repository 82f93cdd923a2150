//! The RTP header parser of plain-RTP mountpoints, and the viewer-side rewriting
//! contract it feeds: the payload bounds it returns are always inside the packet.
#![no_main]

use cardea_codecs::rtp::RtpHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = RtpHeader::parse(data) {
        assert!(h.payload_offset <= h.payload_end && h.payload_end <= data.len());
        let _ = &data[h.payload_offset..h.payload_end];
    }
});
