//! The SIP side's SDP, alone: any text through our parser; when it parses, codec choice
//! for every set of codecs we may offer, and our answer read back must agree with what
//! was chosen (payload types, direction reversed, SRTP kept). No panic.
#![no_main]

use cardea::ingest::sip::sdp::{self, LocalAudio, SipCodec};
use cardea::ingest::sip::srtp::Crypto;
use libfuzzer_sys::fuzz_target;

const ALL: [SipCodec; 4] = [SipCodec::Opus, SipCodec::G722, SipCodec::Pcmu, SipCodec::Pcma];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(remote) = sdp::parse(text) else {
        return;
    };
    // Every non-empty subset of what we may offer, in our order.
    for mask in 1u8..16 {
        let ours: Vec<SipCodec> = (0..4).filter(|i| mask & (1 << i) != 0).map(|i| ALL[i]).collect();
        let Ok(codec) = sdp::choose(&remote, &ours) else {
            continue;
        };
        assert!(ours.contains(&codec));
        let mut answer = LocalAudio {
            rtp: "127.0.0.1:20000".parse().unwrap(),
            codecs: vec![codec],
            telephone_event: None,
            telephone_event_48k: None,
            opus_pt: remote.pt(SipCodec::Opus),
            direction: remote.direction.reversed(),
            session_id: 1,
            version: 1,
            secure: remote.secure,
            crypto: remote.crypto.first().map(|c| Crypto::generate(c.tag, c.key.suite)),
        };
        answer.answer_events(&remote, codec);
        let back = sdp::parse(&answer.to_sdp()).expect("our own answer parses");
        assert_eq!(back.codecs, vec![codec]);
        assert_eq!(back.pt(codec), remote.pt(codec));
        assert_eq!(back.direction, remote.direction.reversed());
        assert_eq!(back.secure, remote.secure);
    }
});
