//! Shared by the SIP fuzz targets: our answer to a parsed offer, read back and checked.

use cardea::ingest::sip::sdp::{self, LocalAudio, RemoteAudio, SipCodec};
use cardea::ingest::sip::srtp::Crypto;

/// Answers `remote` with `codec` as the call does, parses our SDP back and checks it
/// agrees with the offer: that codec only, its payload type, the direction reversed,
/// SRTP kept with the key we generated.
pub fn answer_read_back(remote: &RemoteAudio, codec: SipCodec) {
    let mut ours = LocalAudio {
        rtp: "127.0.0.1:20000".parse().unwrap(),
        codecs: vec![codec],
        telephone_event: None,
        telephone_event_48k: None,
        opus_pt: remote.pt(SipCodec::Opus),
        direction: remote.direction.reversed(),
        session_id: 1,
        version: 1,
        secure: remote.secure,
        crypto: remote
            .crypto
            .first()
            .map(|c| Crypto::generate(c.tag, c.key.suite)),
    };
    ours.answer_events(remote, codec);
    let back = sdp::parse(&ours.to_sdp()).expect("our own answer parses");
    assert_eq!(back.codecs, vec![codec]);
    assert_eq!(back.pt(codec), remote.pt(codec));
    assert_eq!(back.direction, remote.direction.reversed());
    assert_eq!(back.secure, remote.secure);
    assert_eq!(back.crypto.first(), ours.crypto.as_ref());
}
