//! The SIP side's SDP, alone: any text through our parser; when it parses, codec choice
//! for every set of codecs we may offer, and our answer read back must agree with what
//! was chosen (payload types, direction reversed, SRTP kept). No panic.
#![no_main]

#[path = "sip_answer.rs"]
mod sip_answer;

use cardea::ingest::sip::sdp::{self, SipCodec};
use libfuzzer_sys::fuzz_target;

const ALL: [SipCodec; 4] = [
    SipCodec::Opus,
    SipCodec::G722,
    SipCodec::Pcmu,
    SipCodec::Pcma,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(remote) = sdp::parse(text) else {
        return;
    };
    // Every non-empty subset of what we may offer, in our order.
    for mask in 1u8..16 {
        let ours: Vec<SipCodec> = (0..4)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| ALL[i])
            .collect();
        let Ok(codec) = sdp::choose(&remote, &ours) else {
            continue;
        };
        assert!(ours.contains(&codec));
        sip_answer::answer_read_back(&remote, codec);
    }
});
