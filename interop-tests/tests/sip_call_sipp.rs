//! Calls between headless Chromium (janus.js, the page's phone view, a 440 Hz tone as
//! its microphone) and sipp through the gateway, with kamailio as the registrar.
//!
//! * Outgoing: the browser registers (digest challenge answered), calls a sipp UAS
//!   that answers PCMU + telephone-event and echoes RTP. A loopback capture shows
//!   what the phone side got: PCMU packets carrying the browser's 440 Hz tone
//!   (transcoded Opus → PCMU), the browser's DTMF as RFC 4733 events, DTMF as SIP
//!   INFO, a hold re-INVITE with `a=sendonly`; the browser hears its tone back
//!   through the phone (PCMU → Opus) and counts > 200 packets. The browser hangs up:
//!   sipp's scenario ends with the BYE.
//! * Incoming: a sipp UAC calls alice through kamailio, plays a 1 kHz tone; the
//!   browser gets `incomingcall`, answers, hears 1 kHz (not its own 440 Hz) and
//!   sends its tone back; sipp hangs up and the browser gets `hangup`.
//! * Early media: a sipp UAS answers 183 with SDP and plays a 1 kHz tone before its
//!   200; the browser hears it before `accepted`.
//! * Early media the other way: sipp calls alice and wants a 183; the browser answers
//!   with `progress` (183 with SDP), audio flows both ways before its `accept` (200).
//! * Update: the browser renegotiates mid-call with an ICE restart; the audio goes on
//!   and the phone sees no re-INVITE.
//! * Declined: the browser declines with 603; sipp's scenario expects exactly that.
//! * Too strict: a page that accepts only with SDES-SRTP (`srtp: sdes_mandatory`) gets
//!   sipp's plain RTP/AVP call: 452, then it declines with 488.

#![allow(clippy::disallowed_methods)] // drives real peers in real time

use std::time::Duration;

use interop_tests::sip::{
    analyze_capture, capture, chromium_phone, events_named, hears, kamailio, sipp, tone_file,
    Scratch,
};
use serde_json::Value;

/// `interop-tests/sip/<name>` written into `dir` with its `[pcap]` placeholder
/// replaced by a PCMU pcap of a `hz` tone (what sipp's play_pcap_audio plays).
fn scenario_with_tone(dir: &std::path::Path, name: &str, hz: u32) -> std::path::PathBuf {
    let tone = dir.join(format!("tone{hz}.pcap"));
    tone_file("pcap", hz, &tone).unwrap();
    let template = std::fs::read_to_string(
        interop_tests::workspace()
            .join("interop-tests/sip")
            .join(name),
    )
    .unwrap();
    let scenario = dir.join(name);
    std::fs::write(
        &scenario,
        template.replace("[pcap]", tone.to_str().unwrap()),
    )
    .unwrap();
    scenario
}

/// A sipp UAS for one call on free SIP and media ports: `uas_echo.xml` echoing RTP, or,
/// with `tone`, `(scenario, Hz)` playing that tone. The peer, its SIP and media ports.
fn sipp_uas(
    dir: &std::path::Path,
    tone: Option<(&str, u32)>,
) -> (interop_tests::sip::Peer, u16, u16) {
    let (sip_port, media_port) = (interop_tests::free_port(), interop_tests::free_port());
    let scenario = match tone {
        Some((name, hz)) => scenario_with_tone(dir, name, hz),
        None => interop_tests::workspace().join("interop-tests/sip/uas_echo.xml"),
    };
    let (sip_port_s, media_port_s) = (sip_port.to_string(), media_port.to_string());
    let mut args = vec![
        "-sf",
        scenario.to_str().unwrap(),
        "-i",
        "127.0.0.1",
        "-p",
        &sip_port_s,
        "-mi",
        "127.0.0.1",
        "-mp",
        &media_port_s,
        "-m",
        "1",
    ];
    if tone.is_none() {
        args.push("-rtp_echo");
    }
    (sipp(&args, dir).expect("sipp"), sip_port, media_port)
}

/// Registers alice and calls a sipp UAS with `extra` page parameters and a loopback
/// capture running: the UAS runs `uas_echo.xml` echoing RTP, or, with `tone`,
/// `(scenario, Hz)` playing that tone; the page's report, what reached the phone's
/// media port, sipp's SIP port and sipp's exit code.
async fn call_sipp_uas(extra: &str, tone: Option<(&str, u32)>) -> (Value, Value, u16, Option<i32>) {
    let gw = interop_tests::start_gateway().await;
    let registrar = kamailio().expect("kamailio");
    let dir = Scratch::new("sipp-uas").unwrap();
    let wav = dir.0.join("tone440.wav");
    tone_file("wav", 440, &wav).unwrap();
    let (mut uas, sip_port, media_port) = sipp_uas(&dir.0, tone);
    let pcap = dir.0.join("call.pcap");
    let mut cap = capture(&pcap).expect("tcpdump");
    let query = format!(
        "user=sip:alice@127.0.0.1:{}&secret=s3cret&call=sip:service@127.0.0.1:{sip_port}&{extra}",
        registrar.port
    );
    let r = chromium_phone(&gw, &query, &wav, 40, async {})
        .await
        .expect("browser");
    let status = uas.wait(Duration::from_secs(10)).ok();
    cap.interrupt();
    let seen = analyze_capture(&pcap, media_port).expect("capture");
    report(&r, &seen);
    (r, seen, sip_port, status)
}

/// Prints what both ends saw and checks the page reported no error (every call test).
fn report(r: &Value, seen: &Value) {
    println!("browser: {}", r["phone"]["events"]);
    println!(
        "browser stats: {} early peaks {} peaks {} updates {}",
        r["phone"]["stats"], r["phone"]["earlyPeaks"], r["phone"]["peaks"], r["phone"]["updates"]
    );
    println!("sip side: {seen}");
    assert_eq!(r["phone"]["errors"], serde_json::json!([]), "{r}");
}

/// `update` mid-call: the browser renegotiates with an ICE restart (what a page does
/// after a network change). The gateway answers on the same PeerConnection (new ICE
/// credentials) and the audio goes on both ways; the SIP leg does not change, so
/// sipp sees no re-INVITE.
#[tokio::test(flavor = "multi_thread")]
async fn browser_restarts_ice_with_update() {
    let (r, seen, sip_port, status) = call_sipp_uas("update=1&hangup_after=4000", None).await;
    assert_eq!(events_named(&r, "updating").len(), 1, "{r}");
    let updated = events_named(&r, "updated");
    assert_eq!(updated.len(), 1, "{r}");
    assert!(updated[0]["call_id"].is_string(), "{r}");
    let update = &r["phone"]["updates"][0];
    assert_eq!(update["type"], "answer", "{r}");
    assert_eq!(update["iceRestarted"], true, "{r}");
    // Four seconds after the restart: ~200 more packets from the gateway.
    let before = update["audioIn"].as_u64().unwrap_or(u64::MAX);
    let after = r["phone"]["stats"]["audioIn"].as_u64().unwrap_or(0);
    assert!(
        after > before + 150,
        "audio after the restart: {before} → {after}"
    );
    assert_audio_both_ways(&r, &seen, 440.0);
    let invites = seen["sip_requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| {
            q["line"].as_str().unwrap_or("").starts_with("INVITE ") && q["dport"] == sip_port
        })
        .count();
    assert_eq!(invites, 1, "no re-INVITE toward the phone: {seen}");
    assert_eq!(status, Some(0), "sipp's scenario completes: {r}");
}

/// The page's `early` event came before `accepted`, and what the browser heard
/// before `accepted` was mostly `hz` (early media).
fn assert_early_media(r: &Value, early: &str, hz: f64) {
    let names: Vec<&str> = r["phone"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["result"]["event"].as_str())
        .collect();
    let first = names.iter().position(|n| *n == early);
    let accepted = names.iter().position(|n| *n == "accepted");
    assert!(
        matches!((first, accepted), (Some(p), Some(a)) if p < a),
        "{early} before accepted: {names:?}"
    );
    let heard: Vec<f64> = r["phone"]["earlyPeaks"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let near = heard.iter().filter(|p| (*p - hz).abs() < 50.0).count();
    assert!(
        heard.len() >= 8 && near * 3 >= heard.len() * 2,
        "the browser hears the early media: {heard:?}"
    );
}

/// Audio went both ways: > 200 PCMU packets reached the phone carrying the browser's
/// 440 Hz, > 200 audio packets reached the browser, which hears `browser_hears` Hz.
fn assert_audio_both_ways(r: &Value, seen: &Value, browser_hears: f64) {
    let pcmu = seen["packets_by_pt"]["0"].as_u64().unwrap_or(0);
    assert!(pcmu > 200, "PCMU packets to the phone: {seen}");
    let audio_in = r["phone"]["stats"]["audioIn"].as_u64().unwrap_or(0);
    assert!(audio_in > 200, "audio packets into the browser: {r}");
    let f = seen["pcmu_freq"].as_f64().unwrap_or(0.0);
    assert!((f - 440.0).abs() < 22.0, "tone at the phone: {seen}");
    assert!(
        hears(r, browser_hears),
        "browser hears {browser_hears} Hz: {r}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_calls_sipp_uas() {
    let (r, seen, sip_port, status) =
        call_sipp_uas("dtmf=123&dtmf_info=45&hold=1&hangup_after=5000", None).await;
    assert_eq!(events_named(&r, "registered").len(), 1, "{r}");
    let calling = events_named(&r, "calling");
    assert!(calling[0]["result"]["call_id"].is_string(), "{r}");
    assert_eq!(events_named(&r, "ringing").len(), 1, "sipp sends 180: {r}");
    let accepted = events_named(&r, "accepted");
    assert_eq!(accepted.len(), 1, "{r}");
    assert_eq!(accepted[0]["result"]["sip_codec"], "PCMU");
    // Audio both ways (PCMU to the phone, Opus to the browser); 440 Hz from the fake
    // microphone is 440 Hz at the phone, and the browser hears it back.
    assert!(
        r["phone"]["stats"]["codecs"]
            .as_array()
            .is_some_and(|c| c.iter().any(|m| m == "audio/opus")),
        "{r}"
    );
    assert_audio_both_ways(&r, &seen, 440.0);
    // DTMF: in-band from the browser as RFC 4733; dtmf_info as SIP INFO.
    assert_eq!(seen["digits"], "123", "RFC 4733 at the phone: {seen}");
    // sipp echoes those events back: inbound RFC 4733 becomes `dtmf` events.
    let echoed: String = events_named(&r, "dtmf")
        .iter()
        .filter(|e| e["result"]["via"] == "rfc4733")
        .filter_map(|e| e["result"]["signal"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(echoed, "123", "{r}");
    let requests = seen["sip_requests"].as_array().cloned().unwrap_or_default();
    let infos: Vec<&Value> = requests
        .iter()
        .filter(|q| q["line"].as_str().unwrap_or("").starts_with("INFO ") && q["dport"] == sip_port)
        .collect();
    assert_eq!(infos.len(), 2, "{requests:?}");
    assert!(
        infos[0]["body"].as_str().unwrap().contains("Signal=4"),
        "{infos:?}"
    );
    assert!(
        infos[1]["body"].as_str().unwrap().contains("Signal=5"),
        "{infos:?}"
    );
    // Hold and resume: re-INVITEs with sendonly, then sendrecv.
    let reinvites: Vec<&Value> = requests
        .iter()
        .filter(|q| {
            q["line"].as_str().unwrap_or("").starts_with("INVITE ") && q["dport"] == sip_port
        })
        .collect();
    assert_eq!(reinvites.len(), 3, "INVITE + hold + resume: {requests:?}");
    assert!(
        reinvites[1]["body"]
            .as_str()
            .unwrap()
            .contains("a=sendonly"),
        "{reinvites:?}"
    );
    // Only the codec the call settled on (and telephone-event) is offered again.
    assert!(
        reinvites[1]["body"]
            .as_str()
            .unwrap()
            .contains("RTP/AVP 0 101\r\n"),
        "{reinvites:?}"
    );
    assert!(
        reinvites[2]["body"]
            .as_str()
            .unwrap()
            .contains("a=sendrecv"),
        "{reinvites:?}"
    );
    // The browser hung up: BYE reached sipp, whose scenario then completed.
    assert_eq!(events_named(&r, "hangingup").len(), 1, "{r}");
    assert_eq!(events_named(&r, "hangup").len(), 1, "{r}");
    assert_eq!(
        status,
        Some(0),
        "sipp's scenario completes (logs in SIPP_LOG=1)"
    );
}

/// `transcode: false`: the browser negotiates PCMU itself and the gateway relays it.
#[tokio::test(flavor = "multi_thread")]
async fn browser_calls_sipp_uas_without_transcoding() {
    let (r, seen, _, status) = call_sipp_uas("g711=1&hangup_after=5000", None).await;
    assert_eq!(events_named(&r, "accepted").len(), 1, "{r}");
    assert_pcmu_end_to_end(&r);
    assert_audio_both_ways(&r, &seen, 440.0);
    assert_eq!(status, Some(0), "{r}");
}

/// The browser leg spoke PCMU only (no Opus, nothing transcoded).
fn assert_pcmu_end_to_end(r: &Value) {
    let codecs = r["phone"]["stats"]["codecs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        codecs.iter().all(|m| m == "audio/PCMU") && !codecs.is_empty(),
        "{r}"
    );
}

/// Early media: the phone answers 183 with SDP and plays a 1 kHz tone (a ringback or
/// an announcement) for four seconds before its 200; the browser hears it before
/// `accepted`, and the call goes on on the same media after.
#[tokio::test(flavor = "multi_thread")]
async fn browser_hears_early_media() {
    let (r, seen, _, status) =
        call_sipp_uas("hangup_after=3000", Some(("uas_early.xml", 1000))).await;
    assert_early_media(&r, "progress", 1000.0);
    // After it: the same stream goes on, and the browser's tone reaches the phone.
    assert!(hears(&r, 1000.0), "{r}");
    let f = seen["pcmu_freq"].as_f64().unwrap_or(0.0);
    assert!((f - 440.0).abs() < 22.0, "tone at the phone: {seen}");
    assert_eq!(status, Some(0), "sipp's scenario completes: {r}");
}

/// Opens the phone view registered as alice (with `action`: `answer=1` or
/// `decline=CODE`) and, once registered, has sipp run `scenario` calling alice through
/// kamailio on `kport` (plus `extra` flags); the page's report and sipp's exit code.
#[allow(clippy::too_many_arguments)] // a call's parties, each once
async fn sipp_calls_alice(
    gw: &cardea::Running,
    kport: u16,
    action: &str,
    wav: &std::path::Path,
    seconds: u32,
    scenario: &std::path::Path,
    extra: &[&str],
    sip_port: u16,
    dir: &std::path::Path,
) -> (Value, Option<anyhow::Result<i32>>) {
    let uac = std::sync::Mutex::new(None);
    let query = format!("user=sip:alice@127.0.0.1:{kport}&secret=s3cret&{action}");
    let r = chromium_phone(gw, &query, wav, seconds, async {
        let (proxy, port) = (format!("127.0.0.1:{kport}"), sip_port.to_string());
        let mut args = vec![
            "-sf",
            scenario.to_str().unwrap(),
            "-s",
            "alice",
            &proxy,
            "-i",
            "127.0.0.1",
            "-p",
            &port,
            "-m",
            "1",
        ];
        args.extend_from_slice(extra);
        *uac.lock().unwrap() = Some(sipp(&args, dir).expect("sipp"));
    })
    .await
    .expect("browser");
    let status = uac
        .lock()
        .unwrap()
        .as_mut()
        .map(|p| p.wait(Duration::from_secs(10)));
    (r, status)
}

/// sipp calls alice (the page acting on `action`) with `scenario`, a PCMU caller that
/// plays a 1 kHz tone and hangs up `hold_ms` after the answer, while a loopback
/// capture runs: the page's report, what reached sipp's media port, sipp's exit code.
async fn sipp_tone_call(
    name: &str,
    scenario: &str,
    action: &str,
    hold_ms: u32,
) -> (Value, Value, Option<anyhow::Result<i32>>) {
    let gw = interop_tests::start_gateway().await;
    let registrar = kamailio().expect("kamailio");
    let dir = Scratch::new(name).unwrap();
    let wav = dir.0.join("tone440.wav");
    tone_file("wav", 440, &wav).unwrap();
    let scenario = scenario_with_tone(&dir.0, scenario, 1000);
    let (sip_port, media_port) = (interop_tests::free_port(), interop_tests::free_port());
    let pcap = dir.0.join("call.pcap");
    let mut cap = capture(&pcap).expect("tcpdump");
    let (media, hold) = (media_port.to_string(), hold_ms.to_string());
    let (r, status) = sipp_calls_alice(
        &gw,
        registrar.port,
        action,
        &wav,
        40,
        &scenario,
        &["-mi", "127.0.0.1", "-mp", &media, "-d", &hold],
        sip_port,
        &dir.0,
    )
    .await;
    cap.interrupt();
    let seen = analyze_capture(&pcap, media_port).expect("capture");
    report(&r, &seen);
    (r, seen, status)
}

/// sipp hung up: the browser got `hangup` 200 and sipp's scenario completed.
fn assert_sipp_hung_up(r: &Value, status: Option<anyhow::Result<i32>>) {
    let hangup = events_named(r, "hangup");
    assert_eq!(hangup.len(), 1, "{r}");
    assert_eq!(hangup[0]["result"]["code"], 200, "{r}");
    assert!(
        matches!(status, Some(Ok(0))),
        "sipp's scenario completes: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sipp_calls_browser() {
    let (r, seen, status) = sipp_tone_call("sipp-uac", "uac_tone.xml", "answer=1", 8000).await;
    let incoming = events_named(&r, "incomingcall");
    assert_eq!(incoming.len(), 1, "{r}");
    assert_eq!(incoming[0]["result"]["displayname"], "Sipp Caller", "{r}");
    assert!(incoming[0]["call_id"].is_string(), "{r}");
    assert_eq!(events_named(&r, "accepted").len(), 1, "{r}");
    // The phone's 1 kHz reaches the browser; the browser's 440 Hz reaches the phone.
    assert_audio_both_ways(&r, &seen, 1000.0);
    assert_sipp_hung_up(&r, status);
}

/// `transcode: false` on the account: an incoming call is offered to the browser as
/// PCMU and relayed as it is, no Opus anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn sipp_calls_a_browser_account_without_transcoding() {
    let (r, seen, status) = sipp_tone_call(
        "sipp-uac-g711",
        "uac_tone.xml",
        "answer=1&transcode=0",
        8000,
    )
    .await;
    let accepted = events_named(&r, "accepted");
    assert_eq!(accepted.len(), 1, "{r}");
    assert_eq!(accepted[0]["result"]["sip_codec"], "PCMU", "{r}");
    assert_pcmu_end_to_end(&r);
    assert_audio_both_ways(&r, &seen, 1000.0);
    assert_sipp_hung_up(&r, status);
}

/// Early media from the browser: sipp calls alice and wants a 183 with SDP; the
/// browser answers with `progress` and `accept`s four seconds later. Before the 200
/// the caller's tone reaches the browser and the browser's audio reaches the caller.
#[tokio::test(flavor = "multi_thread")]
async fn browser_answers_with_early_media() {
    let (r, seen, status) =
        sipp_tone_call("sipp-uac-early", "uac_early.xml", "progress=4000", 5000).await;
    assert_eq!(events_named(&r, "incomingcall").len(), 1, "{r}");
    assert_early_media(&r, "progressing", 1000.0);
    // The 183 is ours: the callee is not told of a `progress` of its own.
    assert!(events_named(&r, "progress").is_empty(), "{r}");
    // The browser's audio reached the caller before the 200 (4 s ≈ 200 packets).
    let early = seen["early_packets"].as_u64().unwrap_or(0);
    assert!(early > 100, "early media to the caller: {seen}");
    assert_audio_both_ways(&r, &seen, 1000.0);
    assert_sipp_hung_up(&r, status);
}

/// sipp calls alice, whose page acts on `action` and ends up refusing the call with
/// `code`: the page's report (after `declining` and `hangup` with that code, checked)
/// once sipp got that final answer (its scenario checks the code).
async fn browser_refuses(name: &str, action: &str, code: u16) -> Value {
    let gw = interop_tests::start_gateway().await;
    let registrar = kamailio().expect("kamailio");
    let dir = Scratch::new(name).unwrap();
    let wav = dir.0.join("tone440.wav");
    tone_file("wav", 440, &wav).unwrap();
    let template = interop_tests::workspace().join("interop-tests/sip/uac_declined.xml");
    let scenario = dir.0.join("uac_declined.xml");
    let xml = std::fs::read_to_string(template).unwrap();
    std::fs::write(
        &scenario,
        xml.replace(
            r#"<recv response="603"/>"#,
            &format!(r#"<recv response="{code}"/>"#),
        ),
    )
    .unwrap();
    let (r, status) = sipp_calls_alice(
        &gw,
        registrar.port,
        action,
        &wav,
        15,
        &scenario,
        &[],
        interop_tests::free_port(),
        &dir.0,
    )
    .await;
    println!("browser: {}", r["phone"]["events"]);
    assert_eq!(events_named(&r, "incomingcall").len(), 1, "{r}");
    let declining = events_named(&r, "declining");
    assert_eq!(declining.len(), 1, "{r}");
    assert_eq!(declining[0]["result"]["code"], code, "{r}");
    let hangup = events_named(&r, "hangup");
    assert_eq!(hangup.len(), 1, "{r}");
    assert_eq!(hangup[0]["result"]["code"], code, "{r}");
    assert!(matches!(status, Some(Ok(0))), "sipp got {code}: {status:?}");
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_declines_with_603() {
    let r = browser_refuses("sipp-decline", "decline=603", 603).await;
    assert_eq!(r["phone"]["errors"], serde_json::json!([]), "{r}");
}

/// A page that insists on SDES-SRTP (`accept` with `srtp: sdes_mandatory`) gets a
/// plain RTP/AVP call from sipp: `incomingcall` says no `srtp`, the accept is refused
/// with 452 (Janus's "too strict") and the page declines with 488.
#[tokio::test(flavor = "multi_thread")]
async fn browser_requiring_srtp_refuses_a_plain_call() {
    let r = browser_refuses("sipp-srtp-refused", "answer=1&srtp=sdes_mandatory", 488).await;
    assert_eq!(
        events_named(&r, "incomingcall")[0]["result"]["srtp"],
        Value::Null,
        "{r}"
    );
    let errors = r["phone"]["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{r}");
    assert!(
        errors[0].as_str().is_some_and(|e| e.starts_with("452: ")),
        "{r}"
    );
    assert!(events_named(&r, "accepted").is_empty(), "{r}");
}

/// The gateway is stopped (what SIGTERM does) in the middle of a call: sipp gets a BYE
/// and ends its scenario with success, kamailio gets alice's registration removed
/// (Expires 0), and the browser gets the call's `hangup`.
#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_during_a_call_says_bye_and_unregisters() {
    let gw = interop_tests::start_gateway().await;
    let registrar = kamailio().expect("kamailio");
    let dir = Scratch::new("sipp-shutdown").unwrap();
    let wav = dir.0.join("tone440.wav");
    tone_file("wav", 440, &wav).unwrap();
    let (mut uas, sip_port, media_port) = sipp_uas(&dir.0, None);
    let pcap = dir.0.join("call.pcap");
    let mut cap = capture(&pcap).expect("tcpdump");
    let query = format!(
        "user=sip:alice@127.0.0.1:{}&secret=s3cret&call=sip:service@127.0.0.1:{sip_port}",
        registrar.port
    );
    let drained = std::sync::Mutex::new(None);
    let r = chromium_phone(&gw, &query, &wav, 16, async {
        tokio::time::sleep(Duration::from_secs(7)).await;
        #[allow(clippy::disallowed_methods)] // measuring a real shutdown
        let t = std::time::Instant::now();
        gw.drain(Duration::from_secs(3)).await;
        *drained.lock().unwrap() = Some(t.elapsed());
    })
    .await
    .expect("browser");
    let status = uas.wait(Duration::from_secs(10)).ok();
    cap.interrupt();
    let seen = analyze_capture(&pcap, media_port).expect("capture");
    report(&r, &seen);
    println!("drained in {:?}", drained.lock().unwrap());
    assert!(
        !events_named(&r, "accepted").is_empty(),
        "the call was up: {r}"
    );
    assert!(
        !events_named(&r, "hangup").is_empty(),
        "the browser heard of it: {r}"
    );
    let requests = seen["sip_requests"].as_array().unwrap();
    assert!(
        requests
            .iter()
            .any(|q| q["line"].as_str().unwrap().starts_with("BYE ") && q["dport"] == sip_port),
        "a BYE reached sipp: {requests:?}"
    );
    assert!(
        requests.iter().any(|q| {
            q["line"].as_str().unwrap().starts_with("REGISTER ")
                && q["dport"] == registrar.port
                && (q["expires"] == "0" || q["contact"].as_str().unwrap().contains("expires=0"))
        }),
        "the registration was removed: {requests:?}"
    );
    assert_eq!(status, Some(0), "sipp's scenario ended on the BYE");
    gw.shutdown().await;
}
