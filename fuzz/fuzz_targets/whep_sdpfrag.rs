//! What a WHEP player sends besides its offer: the trickle/restart SDP fragments of
//! `PATCH` (`api::sdpfrag::parse`), the offer with new credentials built from them, the
//! fragment answered from our SDP, and the m-lines read from its offer. Never a panic;
//! the bounds hold; what we build parses back with the credentials we put in.
#![no_main]

use cardea::api::sdpfrag::{self, MAX_CANDIDATES, MAX_VALUE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = sdpfrag::parse(data) {
        assert!(f.candidates.len() <= MAX_CANDIDATES);
        for (mid, c) in &f.candidates {
            assert!(c.len() <= MAX_VALUE && mid.as_ref().is_none_or(|m| m.len() <= MAX_VALUE));
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert!(cardea::fuzzing::offered_mlines(text).len() <= 16);
    let offer = sdpfrag::restarted_offer(text, "newufrag", "newpwd0123456789");
    assert!(!offer.lines().any(|l| l.starts_with("a=candidate:")));
    let answer = sdpfrag::answer_fragment(text);
    if let Ok(back) = sdpfrag::parse(answer.as_bytes()) {
        assert!(back.candidates.len() <= MAX_CANDIDATES);
    }
});
