//! The SIP leg's hostile inputs: any SDP body through our parser (and, when it
//! parses, our answer to it read back, SDES keys included), any datagrams on the
//! call's RTP and RTCP ports through the bridge and through SRTP's unprotect, and any
//! SIP INFO dtmf-relay body. No panic; every RTP datagram is either used or counted
//! as dropped, exactly once; no forged datagram passes SRTP.
#![no_main]

#[path = "sip_answer.rs"]
mod sip_answer;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use cardea::fuzzing::parse_dtmf_relay;
use cardea::ingest::sip::bridge::{Bridge, BridgeSetup, BridgeStats, BrowserCodec};
use cardea::ingest::sip::sdp::{self, Direction, SipCodec};
use cardea::ingest::sip::srtp::{SdesKey, SrtpLeg, Suite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_dtmf_relay(&text);
    if let Ok(remote) = sdp::parse(&text) {
        let all = [
            SipCodec::Opus,
            SipCodec::G722,
            SipCodec::Pcmu,
            SipCodec::Pcma,
        ];
        if let Ok(codec) = sdp::choose(&remote, &all) {
            sip_answer::answer_read_back(&remote, codec);
        }
    }
    // The same bytes as datagrams: split on 0xFF 0xFF, alternate peer and stranger,
    // into a transcoding (PCMU) or a relaying (Opus) bridge.
    let (sdp, codec) = if data.first().is_some_and(|b| b & 1 == 1) {
        (
            "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40000 RTP/AVP 116 102\r\na=rtpmap:116 opus/48000/2\r\na=rtpmap:102 telephone-event/48000\r\n",
            SipCodec::Opus,
        )
    } else {
        (
            "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
            SipCodec::Pcmu,
        )
    };
    let remote = sdp::parse(sdp).unwrap();
    let stats = Arc::new(BridgeStats::default());
    let now = Instant::now();
    let mut bridge = Bridge::new(
        now,
        UNIX_EPOCH,
        BridgeSetup {
            codec,
            browser: BrowserCodec::Opus,
            remote,
            ssrc: 1,
            direction: Direction::SendRecv,
            nat: true,
            answered: true,
        },
        stats.clone(),
    )
    .unwrap();
    // An SDES-SRTP leg: none of the datagrams (no key known to the input) passes.
    // (Inbound with the 80-bit tag: a random datagram authenticates with p = 2^-80.)
    let (a, b) = (
        SdesKey::generate(Suite::AesCm128HmacSha1_32),
        SdesKey::generate(Suite::AesCm128HmacSha1_80),
    );
    let mut srtp = SrtpLeg::new(&a, &b).unwrap();
    let mut buf = [0u8; 2048];
    for (i, d) in data.split(|b| *b == 0xff).enumerate().take(64) {
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        assert!(srtp.unprotect(i % 2 == 1, &mut buf, n).is_err());
        let _ = srtp.protect(i % 2 == 1, d);
    }
    let peer = "127.0.0.1:40000".parse().unwrap();
    let stranger = "127.0.0.2:40000".parse().unwrap();
    let s = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let accounted = || s(&stats.rtp_in) + s(&stats.dropped_garbage) + s(&stats.dropped_stranger);
    for (i, d) in data.split(|b| *b == 0xff).enumerate() {
        let t = now + Duration::from_millis(20 * i as u64);
        let src = if i % 3 == 2 { stranger } else { peer };
        match i % 4 {
            3 => bridge.from_sip_rtcp(src, d),
            2 => bridge.from_browser(d, i as u32 * 960, &mut |_, _| {}),
            _ => {
                // Each datagram on the RTP port is used or counted as dropped, once.
                let before = accounted();
                bridge.from_sip(t, src, d);
                assert_eq!(accounted(), before + 1);
            }
        }
        bridge.tick(t, &mut |_, _| {}, &mut |_, _| {});
        while bridge.poll_event().is_some() {}
    }
});
