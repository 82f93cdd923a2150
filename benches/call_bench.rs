//! Transcoded calls: N concurrent calls through the media bridge, in process.
//!
//! Each call has what the gateway runs for it: a str0m PeerConnection toward a
//! browser (DTLS-SRTP, Opus + telephone-event, as the SIP plugin sets it up), the
//! call's [`Bridge`] (Opus ↔ PCMU, jitter buffer, RTCP) and a real UDP socket toward
//! the phone. The browser (a second str0m instance, fed in memory) sends a 20 ms
//! Opus frame of a 440 Hz tone every 20 ms; the phone (a UDP socket) sends a 20 ms
//! PCMU packet every 20 ms. Time is simulated (sans-IO), so the bench runs as fast as
//! the CPU allows; only the gateway's side is timed: SRTP in and out, str0m, the
//! bridge, and the phone-side `recvfrom`/`sendto`.
//!
//! Each N runs twice: plain RTP toward the phone, then SDES-SRTP (AES_CM_128_HMAC_SHA1_80
//! through libsrtp, as `srtp: sdes_mandatory` sets it up; the phone's own SRTP is
//! untimed).
//!
//! Prints CPU per call (µs per second of call), calls per core, and what arrived at
//! each end. Asserts nothing. `cargo bench --bench call_bench` (add `-- 50 200` to
//! pick N).
#![allow(clippy::disallowed_methods)] // a bench measures wall time

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use cardea::ingest::sip::bridge::{Bridge, BridgeSetup, BridgeStats, BrowserCodec, Dest};
use cardea::ingest::sip::sdp::{self, Direction, SipCodec};
use cardea::ingest::sip::srtp::{SdesKey, SrtpLeg, Suite};
use cardea::media::webrtc::{voice_config, VoiceLeg};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

const SECONDS: u32 = 20;

struct Call {
    gw: Rtc,
    browser: Rtc,
    gw_addr: SocketAddr,
    browser_addr: SocketAddr,
    gw_mid: Option<str0m::media::Mid>,
    browser_mid: str0m::media::Mid,
    bridge: Bridge,
    sip: UdpSocket,
    phone: UdpSocket,
    phone_seq: u16,
    browser_rx: u64,
    phone_rx: u64,
    /// SDES-SRTP: the gateway's leg and the phone's.
    srtp: Option<(SrtpLeg, SrtpLeg)>,
}

/// Delivers everything `from` wants to send to `to`; returns `from`'s events.
fn pump(from: &mut Rtc, to: &mut Rtc, now: Instant, events: &mut Vec<Event>) {
    loop {
        match from.poll_output() {
            Ok(Output::Timeout(_)) | Err(_) => break,
            Ok(Output::Transmit(t)) => {
                let Ok(contents) = (&*t.contents).try_into() else {
                    continue;
                };
                let _ = to.handle_input(Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source: t.source,
                        destination: t.destination,
                        contents,
                    },
                ));
            }
            Ok(Output::Event(e)) => events.push(e),
        }
    }
}

fn new_call(i: usize, now: Instant, sdes: bool) -> Call {
    let gw_addr: SocketAddr = format!("10.0.0.1:{}", 10000 + i).parse().unwrap();
    let browser_addr: SocketAddr = format!("10.0.1.1:{}", 20000 + i).parse().unwrap();
    let mut gw = voice_config(RtcConfig::new(), VoiceLeg::Opus).build(now);
    gw.add_local_candidate(Candidate::host(gw_addr, "udp").unwrap());
    let mut browser = voice_config(RtcConfig::new(), VoiceLeg::Opus).build(now);
    browser.add_local_candidate(Candidate::host(browser_addr, "udp").unwrap());
    let mut change = browser.sdp_api();
    let browser_mid = change.add_media(
        MediaKind::Audio,
        str0m::media::Direction::SendRecv,
        None,
        None,
        None,
    );
    let (offer, pending) = change.apply().unwrap();
    let offer = SdpOffer::from_sdp_string(&offer.to_sdp_string()).unwrap();
    let answer = gw.sdp_api().accept_offer(offer).unwrap();
    browser.sdp_api().accept_answer(pending, answer).unwrap();
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    sip.set_nonblocking(true).unwrap();
    phone.set_nonblocking(true).unwrap();
    let remote = sdp::parse(&format!(
        "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio {} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
        phone.local_addr().unwrap().port()
    ))
    .unwrap();
    let bridge = Bridge::new(
        now,
        UNIX_EPOCH,
        BridgeSetup {
            codec: SipCodec::Pcmu,
            browser: BrowserCodec::Opus,
            remote,
            ssrc: 1000 + i as u32,
            direction: Direction::SendRecv,
            nat: true,
            answered: true,
        },
        Arc::new(BridgeStats::default()),
    )
    .unwrap();
    Call {
        gw,
        browser,
        gw_addr,
        browser_addr,
        gw_mid: None,
        browser_mid,
        bridge,
        sip,
        phone,
        phone_seq: 0,
        browser_rx: 0,
        phone_rx: 0,
        srtp: sdes.then(|| {
            let gw = SdesKey::generate(Suite::AesCm128HmacSha1_80);
            let phone = SdesKey::generate(Suite::AesCm128HmacSha1_80);
            (
                SrtpLeg::new(&gw, &phone).unwrap(),
                SrtpLeg::new(&phone, &gw).unwrap(),
            )
        }),
    }
}

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![10, 100]
    } else {
        counts
    };
    // One 20 ms Opus frame of a 440 Hz tone per step, as a browser would send.
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    let frames: Vec<Vec<u8>> = (0..50u32)
        .map(|f| {
            let pcm: Vec<i16> = (0..960u32)
                .map(|k| {
                    let t = (f * 960 + k) as f32 / 48_000.0;
                    (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16
                })
                .collect();
            let mut out = [0u8; 400];
            let n = enc.encode(&pcm, &mut out).unwrap();
            out[..n].to_vec()
        })
        .collect();
    let pcmu: Vec<u8> = (0..160)
        .map(|i| cardea_codecs::g711::linear_to_ulaw(((i as f32 * 0.7).sin() * 6000.0) as i16))
        .collect();
    println!("calls  CPU/call(µs per s)  calls/core  browser rx/expected  phone rx/expected");
    for n in counts {
        for sdes in [false, true] {
            run(n, &frames, &pcmu, sdes);
        }
    }
}

fn run(n: usize, frames: &[Vec<u8>], pcmu: &[u8], sdes: bool) {
    let start = Instant::now();
    let mut now = start;
    let mut calls: Vec<Call> = (0..n).map(|i| new_call(i, now, sdes)).collect();
    // Connect (ICE + DTLS) in simulated time.
    let mut events = Vec::new();
    for _ in 0..200 {
        now += Duration::from_millis(10);
        for c in calls.iter_mut() {
            let _ = c.gw.handle_input(Input::Timeout(now));
            let _ = c.browser.handle_input(Input::Timeout(now));
            events.clear();
            pump(&mut c.browser, &mut c.gw, now, &mut events);
            events.clear();
            pump(&mut c.gw, &mut c.browser, now, &mut events);
            for e in &events {
                if let Event::MediaAdded(m) = e {
                    c.gw_mid = Some(m.mid);
                }
            }
        }
        if calls
            .iter()
            .all(|c| c.gw.is_connected() && c.browser.is_connected())
        {
            break;
        }
    }
    let connected = calls.iter().filter(|c| c.gw.is_connected()).count();
    let mut gw_time = Duration::ZERO;
    let mut buf = [0u8; 1500];
    let steps = SECONDS * 50;
    for step in 0..steps {
        now += Duration::from_millis(20);
        for c in calls.iter_mut() {
            let ts = step as u64 * 960;
            // Browser → gateway: one Opus frame (untimed: the browser's work).
            if let Some(w) = c.browser.writer(c.browser_mid) {
                let pt = w
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt());
                if let Some(pt) = pt {
                    let _ = w.write(
                        pt,
                        now,
                        MediaTime::new(ts, str0m::media::Frequency::FORTY_EIGHT_KHZ),
                        frames[step as usize % frames.len()].clone(),
                    );
                }
            }
            let _ = c.browser.handle_input(Input::Timeout(now));
            let mut out = Vec::new();
            loop {
                match c.browser.poll_output() {
                    Ok(Output::Timeout(_)) | Err(_) => break,
                    Ok(Output::Transmit(t)) => out.push(t.contents.to_vec()),
                    Ok(Output::Event(e)) => {
                        if matches!(e, Event::MediaData(_)) {
                            c.browser_rx += 1;
                        }
                    }
                }
            }
            // Phone → gateway: one PCMU packet (untimed).
            let mut pkt = vec![0x80, 0];
            pkt.extend_from_slice(&c.phone_seq.to_be_bytes());
            pkt.extend_from_slice(&(c.phone_seq as u32 * 160).to_be_bytes());
            pkt.extend_from_slice(&7u32.to_be_bytes());
            pkt.extend_from_slice(pcmu);
            c.phone_seq = c.phone_seq.wrapping_add(1);
            let pkt = match c.srtp.as_mut() {
                Some((_, phone)) => phone.protect(false, &pkt).unwrap().to_vec(),
                None => pkt,
            };
            let _ = c.phone.send_to(&pkt, c.sip.local_addr().unwrap());

            // The gateway's share, timed.
            let t0 = Instant::now();
            let mut events = Vec::new();
            for d in &out {
                let _ = c.gw.handle_input(Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source: c.browser_addr,
                        destination: c.gw_addr,
                        contents: d.as_slice().try_into().unwrap(),
                    },
                ));
            }
            let _ = c.gw.handle_input(Input::Timeout(now));
            let mut transmit = Vec::new();
            let (sip, bridge, gw) = (&c.sip, &mut c.bridge, &mut c.gw);
            let mut gw_srtp = c.srtp.as_mut().map(|(gw, _)| gw);
            while let Ok((len, src)) = sip.recv_from(&mut buf) {
                let len = match gw_srtp.as_mut() {
                    Some(leg) => match leg.unprotect(false, &mut buf, len) {
                        Ok(n) => n,
                        Err(_) => continue,
                    },
                    None => len,
                };
                bridge.from_sip(now, src, &buf[..len]);
            }
            let mut send = |dest: Dest, d: &[u8]| {
                let (a, rtcp) = match dest {
                    Dest::Rtp(a) => (a, false),
                    Dest::Rtcp(a) => (a, true),
                };
                match gw_srtp.as_mut() {
                    Some(leg) => {
                        if let Some(p) = leg.protect(rtcp, d) {
                            let _ = sip.send_to(p, a);
                        }
                    }
                    None => {
                        let _ = sip.send_to(d, a);
                    }
                }
            };
            loop {
                match gw.poll_output() {
                    Ok(Output::Timeout(_)) | Err(_) => break,
                    Ok(Output::Transmit(t)) => transmit.push(t.contents.to_vec()),
                    Ok(Output::Event(Event::MediaData(m))) => {
                        bridge.from_browser(&m.data, m.time.numer() as u32, &mut send)
                    }
                    Ok(Output::Event(e)) => events.push(e),
                }
            }
            let mid = c.gw_mid;
            let mut to_browser = |p: &[u8], ts: u32| {
                let Some(mid) = mid else { return };
                if let Some(w) = gw.writer(mid) {
                    let pt = w
                        .payload_params()
                        .find(|p| p.spec().codec == Codec::Opus)
                        .map(|p| p.pt());
                    if let Some(pt) = pt {
                        let payload: Arc<[u8]> = Arc::from(p);
                        let _ = w.write(
                            pt,
                            now,
                            MediaTime::new(ts as u64, str0m::media::Frequency::FORTY_EIGHT_KHZ),
                            payload,
                        );
                    }
                }
            };
            bridge.tick(now, &mut send, &mut to_browser);
            let _ = gw.handle_input(Input::Timeout(now));
            loop {
                match gw.poll_output() {
                    Ok(Output::Timeout(_)) | Err(_) => break,
                    Ok(Output::Transmit(t)) => transmit.push(t.contents.to_vec()),
                    Ok(Output::Event(_)) => {}
                }
            }
            gw_time += t0.elapsed();

            // Deliver to the browser and drain the phone (untimed).
            for d in &transmit {
                let _ = c.browser.handle_input(Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source: c.gw_addr,
                        destination: c.browser_addr,
                        contents: d.as_slice().try_into().unwrap(),
                    },
                ));
            }
            while let Ok((len, _)) = c.phone.recv_from(&mut buf) {
                let len = match c.srtp.as_mut() {
                    // Only what authenticates counts (RTCP fails here and is skipped).
                    Some((_, phone)) => phone.unprotect(false, &mut buf, len).unwrap_or(0),
                    None => len,
                };
                if len > 12 && buf[1] & 0x7f == 0 {
                    c.phone_rx += 1;
                }
            }
        }
    }
    let call_seconds = (steps as f64 * 0.02) * n as f64;
    let per_call_us = gw_time.as_secs_f64() * 1e6 / call_seconds;
    let browser_rx: u64 = calls.iter().map(|c| c.browser_rx).sum();
    let phone_rx: u64 = calls.iter().map(|c| c.phone_rx).sum();
    let expected = steps as u64 * n as u64;
    println!(
        "{n:>5}  {per_call_us:>19.0}  {:>10.0}  {:>8}/{:<10}  {:>8}/{:<8}  ({}, {connected} of {n} connected, {:.1} s wall)",
        1e6 / per_call_us,
        browser_rx,
        expected,
        phone_rx,
        expected,
        if sdes { "SDES-SRTP" } else { "plain RTP" },
        start.elapsed().as_secs_f64()
    );
}
