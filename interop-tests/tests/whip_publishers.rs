//! WHIP: headless Chromium publishes its fake camera and microphone by WHIP (the player
//! page in publish mode) into a `webrtc` mountpoint; a janus.js viewer (Chromium) and a
//! WHEP viewer (aiortc) decode it; a viewer joining mid-stream gets a frame at once
//! (the GOP cache, and a PLI to the publisher); a new publisher resumes the viewers of
//! one that left; aiortc publishes too (an independent stack); refusals of a publisher
//! (401/403, a second publisher 409, a mountpoint of another type 400).

use std::time::Duration;

use interop_tests::{
    http_request, run_json, start_gateway_with, streaming_request, workspace, HttpAnswer,
};
use serde_json::{json, Value};

const SECRET: &str = "pub-s3cret";

/// The tests with browsers encoding video run one at a time: on two cores, three at once
/// starve each other (a first frame took over 1.5 s when they overlapped).
static ENCODING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const ADMIN_KEY: &str = "adm1n";

/// A gateway with Cardea's safe default: administration (and publishing) needs a key.
async fn gateway() -> cardea::Running {
    start_gateway_with(|c| {
        c.streaming.open_admin = false;
        c.streaming.admin_key = ADMIN_KEY.into();
    })
    .await
}

fn info(gw: &cardea::Running, id: u64) -> Value {
    streaming_request(gw, json!({"request": "info", "id": id, "secret": SECRET}))["info"].clone()
}

fn create_webrtc_mountpoint(gw: &cardea::Running, id: u64) {
    let r = streaming_request(
        gw,
        json!({"request": "create", "type": "webrtc", "id": id, "secret": SECRET,
               "admin_key": ADMIN_KEY,
               "media": [{"type": "video", "mid": "v", "codec": "vp8", "pt": 96},
                         {"type": "audio", "mid": "a", "codec": "opus", "pt": 111}]}),
    );
    assert_eq!(r["streaming"], "created", "{r}");
}

async fn post(gw: &cardea::Running, path: &str, auth: Option<&str>, body: &[u8]) -> HttpAnswer {
    let mut h = vec![("Content-Type", "application/sdp")];
    if let Some(a) = auth {
        h.push(("Authorization", a));
    }
    http_request(gw.http.unwrap(), "POST", path, &h, body)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_publishes_by_whip_and_janus_and_whep_viewers_decode_it() {
    let _one_at_a_time = ENCODING.lock().await;
    let gw = gateway().await;
    let http = gw.http.unwrap();
    create_webrtc_mountpoint(&gw, 20);
    assert_eq!(info(&gw, 20)["state"], "no media");

    // The publisher: 26 s of fake camera, by WHIP.
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(workspace().join("interop-tests/js/browser.mjs"))
        .arg(format!(
            "http://{http}/player?id=20&publish=1&token={SECRET}"
        ))
        .arg("26")
        .arg("whep");
    let publisher = tokio::spawn(run_json(cmd, Duration::from_secs(90)));
    let mut live = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let i = info(&gw, 20);
        if i["state"] == "live" && i["source"]["keyframes"].as_u64().unwrap_or(0) > 0 {
            live = true;
            break;
        }
    }
    assert!(
        live,
        "the publisher's media never arrived: {}",
        info(&gw, 20)
    );
    assert_eq!(gw.hub.with_gateway(|g, _| g.whip_publishers()), 1);
    assert_eq!(gw.hub.with_gateway(|g, _| g.whep_viewers()), 0);
    // A second publisher is refused while the first one sends.
    let r = post(
        &gw,
        "/whip/20",
        Some(&format!("Bearer {SECRET}")),
        b"v=0\r\n",
    )
    .await;
    assert!(r.status == 409 || r.status == 400, "{}", r.status);

    // A janus.js viewer joining mid-stream.
    let plis_before = info(&gw, 20)["source"]["plis_sent"].as_u64().unwrap_or(0);
    let janus = interop_tests::chromium_watch(&gw, "ws", 20, 8)
        .await
        .unwrap();
    println!(
        "whip -> janus.js: {} frames at {}x{}, {} audio packets, first frame {} ms",
        janus["framesDecoded"],
        janus["width"],
        janus["height"],
        janus["audioPacketsReceived"],
        janus["firstFrameMs"]
    );
    interop_tests::assert_stream_watched(&janus);
    let first = janus["firstFrameMs"].as_u64().unwrap_or(u64::MAX);
    // Chromium's encoder sends keyframes only when asked: the frame comes from the GOP
    // cache at once, not after a keyframe interval (printed; bounded loosely, the
    // machine is shared with other tests). The publisher was asked for a keyframe when it
    // started; viewers' own PLIs reach it when the cache cannot serve.
    assert!(first <= 1500, "first frame after {first} ms: {janus}");
    let plis = info(&gw, 20)["source"]["plis_sent"].as_u64().unwrap_or(0);
    assert!(
        plis >= 1 && plis >= plis_before,
        "no PLI to the publisher: {plis}"
    );

    // A WHEP viewer (aiortc).
    let python = std::env::var_os("CARDEA_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace().join("interop-tests/.venv/bin/python"));
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(workspace().join("interop-tests/py/whep_aiortc.py"))
        .arg(format!("http://{http}/whep/20"))
        .arg("7");
    let whep = run_json(cmd, Duration::from_secs(60)).await.unwrap();
    println!("whip -> whep (aiortc): {whep}");
    assert_eq!(whep["post_status"], 201, "{whep}");
    assert!(whep["frames"].as_u64().unwrap_or(0) > 100, "{whep}");
    assert!(whep["audio_frames"].as_u64().unwrap_or(0) > 100, "{whep}");

    let p = publisher.await.unwrap().unwrap();
    println!(
        "publisher: {} frames sent, patches {}, DELETE {}",
        p["framesSent"], p["whep"]["patches"], p["deleteStatus"]
    );
    assert_eq!(p["pageErrors"], json!([]), "{p}");
    assert_eq!(p["deleteStatus"], 200, "{p}");
    // The publisher left; the mountpoint stays, without media.
    let i = info(&gw, 20);
    assert_eq!(gw.hub.with_gateway(|g, _| g.whip_publishers()), 0);
    assert_eq!(gw.hub.with_gateway(|g, _| g.whep_viewers()), 0);
    assert!(i["id"] == 20, "{i}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whip_refusals_have_their_status() {
    let gw = gateway().await;
    create_webrtc_mountpoint(&gw, 21);
    let garbage = b"v=0\r\nno offer\r\n";
    // No secret: 401; a wrong one: 403; an unknown mountpoint 404; the demo mountpoint
    // (with the admin key) is no webrtc one: 400.
    assert_eq!(post(&gw, "/whip/21", None, garbage).await.status, 401);
    assert_eq!(
        post(&gw, "/whip/21", Some("Bearer nope"), garbage)
            .await
            .status,
        403
    );
    assert_eq!(
        post(&gw, "/whip/999", Some("Bearer x"), garbage)
            .await
            .status,
        404
    );
    let r = post(
        &gw,
        "/whip/1",
        Some(&format!("Bearer {ADMIN_KEY}")),
        garbage,
    )
    .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    // The secret gets past the checks, to the bad offer.
    let r = post(&gw, "/whip/21", Some(&format!("Bearer {SECRET}")), garbage).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(gw.hub.with_gateway(|g, _| g.session_count()), 0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_publisher_resumes_the_viewers_of_one_that_left() {
    let _one_at_a_time = ENCODING.lock().await;
    let gw = gateway().await;
    let http = gw.http.unwrap();
    create_webrtc_mountpoint(&gw, 22);
    let publish = |seconds: u32| {
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(workspace().join("interop-tests/js/browser.mjs"))
            .arg(format!(
                "http://{http}/player?id=22&publish=1&token={SECRET}"
            ))
            .arg(seconds.to_string())
            .arg("whep");
        tokio::spawn(run_json(cmd, Duration::from_secs(90)))
    };
    // The first publisher for 8 s (then DELETE), the viewer from ~2 s for 26 s, the
    // second publisher (12 s) once the first has gone: the viewer's last 4 s are the
    // second one's (each browser takes ~3 s to start).
    let first = publish(8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let python = std::env::var_os("CARDEA_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace().join("interop-tests/.venv/bin/python"));
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(workspace().join("interop-tests/py/whep_aiortc.py"))
        .arg(format!("http://{http}/whep/22"))
        .arg("26");
    let viewer = tokio::spawn(run_json(cmd, Duration::from_secs(80)));
    let a = first.await.unwrap().unwrap();
    assert_eq!(a["deleteStatus"], 200, "{a}");
    // Gone: the mountpoint takes a new publisher; the viewer is still there.
    let left_at = info(&gw, 22);
    assert_eq!(left_at["viewers"], 1, "{left_at}");
    let second = publish(12);
    let b = second.await.unwrap().unwrap();
    let v = viewer.await.unwrap().unwrap();
    println!(
        "resume: first publisher sent {} frames, second {}, viewer timeline {}",
        a["framesSent"], b["framesSent"], v["timeline"]
    );
    assert_eq!(b["pageErrors"], json!([]), "{b}");
    assert_eq!(v["post_status"], 201, "{v}");
    // The viewer decoded more frames than the first publisher ever sent: the rest came
    // from the second one, on the same PeerConnection (the viewer never renegotiated).
    let sent_by_first = a["framesSent"].as_u64().unwrap();
    let decoded = v["frames"].as_u64().unwrap();
    assert!(
        decoded > sent_by_first + 60,
        "{decoded} frames decoded, {sent_by_first} sent by the first publisher: {}",
        v["timeline"]
    );
    assert_eq!(v["connection"], "connected", "{v}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aiortc_publishes_by_whip_and_a_whep_viewer_decodes_it() {
    let _one_at_a_time = ENCODING.lock().await;
    let gw = gateway().await;
    let http = gw.http.unwrap();
    create_webrtc_mountpoint(&gw, 23);
    let python = std::env::var_os("CARDEA_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace().join("interop-tests/.venv/bin/python"));
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(workspace().join("interop-tests/py/whip_aiortc.py"))
        .arg(format!("http://{http}/whip/23"))
        .arg("14")
        .arg(SECRET);
    let publisher = tokio::spawn(run_json(cmd, Duration::from_secs(60)));
    let mut live = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if info(&gw, 23)["state"] == "live" {
            live = true;
            break;
        }
    }
    assert!(
        live,
        "the aiortc publisher's media never arrived: {}",
        info(&gw, 23)
    );
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(workspace().join("interop-tests/py/whep_aiortc.py"))
        .arg(format!("http://{http}/whep/23"))
        .arg("8");
    let v = run_json(cmd, Duration::from_secs(60)).await.unwrap();
    let p = publisher.await.unwrap().unwrap();
    println!("aiortc whip -> aiortc whep: viewer {v}, publisher {p}");
    assert_eq!(p["post_status"], 201, "{p}");
    assert_eq!(p["delete_status"], 200, "{p}");
    assert_eq!(v["post_status"], 201, "{v}");
    assert!(v["frames"].as_u64().unwrap_or(0) > 100, "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240)),
        "{v}"
    );
    assert!(v["audio_frames"].as_u64().unwrap_or(0) > 100, "{v}");
    gw.shutdown().await;
}
