//! Calls between headless Chromium (janus.js, the page's phone view, a 440 Hz tone as
//! its microphone) and baresip (Debian's baresip 1.0, a 700 Hz sine as its microphone,
//! offering Opus, G.722, PCMU and PCMA in that order) through the gateway, both
//! registered at kamailio with digest authentication. The SIP leg settles on G.722
//! (wideband; the gateway offers it first and picks it from baresip's offer).
//!
//! * The browser calls bob (baresip answers by itself); audio both ways: baresip
//!   decodes the browser's 440 Hz (its recording), the browser hears 700 Hz; a
//!   loopback capture counts the PCMU packets to baresip. Baresip hangs up: the
//!   browser gets `hangup`.
//! * Baresip calls alice (the browser), which answers; audio both ways as above; the
//!   browser hangs up and baresip's call ends.
//!
//! Each also with the gateway's leg over TCP (`proxy` = `sip:localhost:<kamailio's
//! TCP-only port>;transport=tcp`, a name to look up; baresip stays on UDP): the capture shows the INVITEs to and
//! from the gateway over TCP.

#![allow(clippy::disallowed_methods)] // drives real peers in real time

use std::time::Duration;

use interop_tests::sip::{
    analyze_capture, capture, chromium_phone, events_named, hears, kamailio, tone_file,
};
use interop_tests::sip::{Baresip, Scratch};
use serde_json::Value;

/// What both ends of an established call must show: the browser got `accepted`
/// (G.722 on the SIP leg, Opus on its own: transcoded both ways), > 200 packets each
/// way (G.722 captured on its way to baresip), each side hears the other's tone
/// (700 Hz in the browser; 440 Hz in what baresip decoded), and the call ended with
/// `hangup`.
fn assert_call_both_ways(r: &Value, seen: &Value, heard: &Value) {
    println!("browser: {}", r["phone"]["events"]);
    println!(
        "browser stats: {} peaks {}",
        r["phone"]["stats"], r["phone"]["peaks"]
    );
    println!("to baresip: {seen}");
    println!("baresip heard: {heard}");
    assert_eq!(r["phone"]["errors"], serde_json::json!([]), "{r}");
    let accepted = events_named(r, "accepted");
    assert_eq!(accepted.len(), 1, "{r}");
    // Both sides speak G.722 (wideband): preferred over G.711.
    assert_eq!(accepted[0]["result"]["sip_codec"], "G722", "{r}");
    assert!(
        r["phone"]["stats"]["codecs"]
            .as_array()
            .is_some_and(|c| c.iter().any(|m| m == "audio/opus")),
        "{r}"
    );
    assert!(
        r["phone"]["stats"]["audioIn"].as_u64().unwrap_or(0) > 200,
        "audio packets into the browser: {r}"
    );
    assert!(
        seen["packets_by_pt"]["9"].as_u64().unwrap_or(0) > 200,
        "G.722 packets to baresip: {seen}"
    );
    let f = heard["freq"].as_f64().unwrap_or(0.0);
    assert!((f - 440.0).abs() < 22.0, "tone baresip decoded: {heard}");
    assert!(
        heard["loud_seconds"].as_f64().unwrap_or(0.0) > 4.0,
        "{heard}"
    );
    assert!(hears(r, 700.0), "browser hears baresip's tone: {r}");
    assert_eq!(events_named(r, "hangup").len(), 1, "{r}");
}

/// The gateway's leg: UDP to kamailio's address, or TCP through its TCP port, named
/// (the proxy is looked up: the hosts file's localhost).
fn alice_at(registrar: &interop_tests::sip::Kamailio, tcp: bool) -> String {
    let k = registrar.port;
    let proxy = if tcp {
        format!(
            "&proxy=sip:localhost:{};transport%3Dtcp",
            registrar.tcp_port
        )
    } else {
        String::new()
    };
    format!("user=sip:alice@127.0.0.1:{k}&secret=s3cret{proxy}")
}

/// The transports of the captured INVITEs of call `call_id`, hop by hop.
fn invite_hops(seen: &Value, call_id: &Value) -> Vec<String> {
    seen["sip_requests"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|q| q["line"].as_str().unwrap_or("").starts_with("INVITE "))
                .filter(|q| q["call_id"] == *call_id)
                .filter_map(|q| q["transport"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_calls_baresip() {
    browser_calls_baresip_via(false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_calls_baresip_over_tcp() {
    browser_calls_baresip_via(true).await
}

#[tokio::test(flavor = "multi_thread")]
async fn baresip_calls_browser() {
    baresip_calls_browser_via(false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn baresip_calls_browser_over_tcp() {
    baresip_calls_browser_via(true).await
}

async fn browser_calls_baresip_via(tcp: bool) {
    let gw = interop_tests::start_gateway().await;
    let registrar = kamailio().expect("kamailio");
    let dir = Scratch::new("baresip-uas").unwrap();
    let wav = dir.0.join("tone440.wav");
    tone_file("wav", 440, &wav).unwrap();
    let bob = Baresip::start(&dir.0, "bob", "b0bpass", registrar.port, 700, None).unwrap();
    assert!(
        bob.wait_for("200 OK", Duration::from_secs(10)),
        "baresip registers: {}",
        bob.log()
    );
    let pcap = dir.0.join("call.pcap");
    let mut cap = capture(&pcap).expect("tcpdump");
    let query = format!(
        "{}&call=sip:bob@127.0.0.1:{}",
        alice_at(&registrar, tcp),
        registrar.port
    );
    // Six seconds into the call, bob hangs up.
    let r = chromium_phone(&gw, &query, &wav, 40, async {
        while !bob.log().contains("Call established") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
        bob.command("/hangup").expect("baresip console");
    })
    .await
    .expect("browser");
    cap.interrupt();
    let seen = analyze_capture(&pcap, bob.rtp_port).expect("capture");
    let heard = bob.heard().expect("baresip's recording");
    assert_call_both_ways(&r, &seen, &heard);
    assert!(
        bob.log().contains("answering call"),
        "baresip answered: {}",
        bob.log()
    );
    let hangup = events_named(&r, "hangup");
    assert_eq!(hangup[0]["result"]["code"], 200, "bob's BYE: {r}");
    assert_eq!(events_named(&r, "hangingup").len(), 0, "{r}");
    // The gateway's INVITE went to kamailio over TCP when asked, else over UDP;
    // kamailio's to baresip over UDP.
    let call_id = &events_named(&r, "calling")[0]["result"]["call_id"];
    let hops = invite_hops(&seen, call_id);
    assert_eq!(hops, [if tcp { "tcp" } else { "udp" }, "udp"], "{seen}");
}

async fn baresip_calls_browser_via(tcp: bool) {
    let gw = interop_tests::start_gateway().await;
    let registrar = kamailio().expect("kamailio");
    let dir = Scratch::new("baresip-uac").unwrap();
    let wav = dir.0.join("tone440.wav");
    tone_file("wav", 440, &wav).unwrap();
    let pcap = dir.0.join("call.pcap");
    let mut cap = capture(&pcap).expect("tcpdump");
    let bob = std::sync::Mutex::new(None);
    let query = format!("{}&answer=1&hangup_after=6000", alice_at(&registrar, tcp));
    // Once alice is registered, bob calls her.
    let r = chromium_phone(&gw, &query, &wav, 40, async {
        let alice = format!("sip:alice@127.0.0.1:{}", registrar.port);
        let b = Baresip::start(&dir.0, "bob", "b0bpass", registrar.port, 700, Some(&alice));
        *bob.lock().unwrap() = Some(b.expect("baresip"));
    })
    .await
    .expect("browser");
    cap.interrupt();
    let bob = bob.lock().unwrap().take().expect("baresip was started");
    // The browser's hangup ended the call at baresip too.
    assert!(
        bob.wait_for("terminated", Duration::from_secs(5)),
        "baresip's call ended: {}",
        bob.log()
    );
    let seen = analyze_capture(&pcap, bob.rtp_port).expect("capture");
    let heard = bob.heard().expect("baresip's recording");
    let incoming = events_named(&r, "incomingcall");
    assert_eq!(incoming.len(), 1, "{r}");
    assert_eq!(
        incoming[0]["result"]["username"],
        format!("sip:bob@127.0.0.1:{}", registrar.port),
        "{r}"
    );
    assert_call_both_ways(&r, &seen, &heard);
    assert_eq!(events_named(&r, "hangingup").len(), 1, "{r}");
    // baresip's INVITE reached kamailio over UDP; kamailio forwarded it to the gateway
    // over TCP when alice registered over TCP, else over UDP.
    let hops = invite_hops(&seen, &incoming[0]["call_id"]);
    assert_eq!(hops, ["udp", if tcp { "tcp" } else { "udp" }], "{seen}");
}
