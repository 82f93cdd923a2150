//! WHEP: the plain player page (fetch + RTCPeerConnection, no janus.js) in headless
//! Chromium plays the demo mountpoint, trickles its candidates by PATCH, survives an
//! ICE restart by PATCH in the same PeerConnection and frees its viewer with DELETE;
//! aiortc plays it as an independent WHEP client; refusals (401, 403, 404, 400, 415)
//! come with the right status and the viewer count never moves for them.

use std::time::Duration;

use interop_tests::{http_request, run_json, start_gateway, streaming_request, workspace};
use serde_json::{json, Value};

fn viewers(gw: &cardea::Running, id: u64) -> u64 {
    let r = streaming_request(gw, json!({"request": "info", "id": id}));
    r["info"]["viewers"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_plays_trickles_restarts_ice_and_leaves_by_whep() {
    let gw = start_gateway().await;
    let http = gw.http.unwrap();
    let url = format!("http://{http}/player?id=1");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(workspace().join("interop-tests/js/browser.mjs"))
        .arg(url)
        .arg("16")
        .arg("whep")
        .env("WHEP_RESTART_AT", "8000");
    let browser = tokio::spawn(run_json(cmd, Duration::from_secs(80)));
    // While it plays, the viewer counts like any other.
    let mut seen = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        seen = seen.max(viewers(&gw, 1));
        if seen == 1 {
            break;
        }
    }
    let r: Value = browser.await.unwrap().unwrap();
    println!(
        "whep chromium: {} frames, {} audio packets, timings {}, patches {}, restart {} at {} ms, ufrags {}, DELETE {}",
        r["framesDecoded"],
        r["audioPacketsReceived"],
        r["whep"]["timings"],
        r["whep"]["patches"],
        r["restartOk"],
        r["restartedAtMs"],
        r["ufrags"],
        r["deleteStatus"]
    );
    assert_eq!(seen, 1, "the WHEP viewer counted in info.viewers");
    assert_eq!(r["pageErrors"], json!([]), "{r}");
    assert!(r["framesDecoded"].as_u64().unwrap_or(0) > 200, "{r}");
    assert!(r["audioPacketsReceived"].as_u64().unwrap_or(0) > 200, "{r}");
    // Candidates went by PATCH (204) and the restart's PATCH was answered (200).
    let patches = r["whep"]["patches"].as_array().cloned().unwrap_or_default();
    assert!(patches.contains(&json!(204)), "{r}");
    assert!(patches.contains(&json!(200)), "{r}");
    assert!(patches.iter().all(|s| s == 204 || s == 200), "{r}");
    // The restart: new credentials in the same PeerConnection, and frames go on.
    assert_eq!(r["restartOk"], true, "{r}");
    assert_eq!(r["ufrags"].as_array().map(Vec::len), Some(2), "{r}");
    let restarted_at = r["restartedAtMs"].as_u64().unwrap();
    let samples = r["samples"].as_array().unwrap();
    let frames_at = |ms: u64| {
        samples
            .iter()
            .filter(|s| s["ms"].as_u64().unwrap_or(0) <= ms)
            .filter_map(|s| s["frames"].as_u64())
            .max()
            .unwrap_or(0)
    };
    let end = samples.last().unwrap()["ms"].as_u64().unwrap();
    let after = frames_at(end) - frames_at(restarted_at + 1000);
    assert!(
        after > 60,
        "only {after} frames after the ICE restart: {samples:?}"
    );
    // DELETE freed the viewer.
    assert_eq!(r["deleteStatus"], 200, "{r}");
    assert_eq!(viewers(&gw, 1), 0);
    assert_eq!(gw.hub.with_gateway(|g, _| g.whep_viewers()), 0);
    assert_eq!(gw.hub.with_gateway(|g, _| g.session_count()), 0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aiortc_plays_by_whep_and_delete_frees_the_viewer() {
    let gw = start_gateway().await;
    let http = gw.http.unwrap();
    let python = std::env::var_os("CARDEA_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace().join("interop-tests/.venv/bin/python"));
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(workspace().join("interop-tests/py/whep_aiortc.py"))
        .arg(format!("http://{http}/whep/1"))
        .arg("8");
    let r = run_json(cmd, Duration::from_secs(60)).await.unwrap();
    println!("whep aiortc: {r}");
    assert_eq!(r["post_status"], 201, "{r}");
    assert!(r["frames"].as_u64().unwrap_or(0) > 100, "{r}");
    assert!(r["audio_frames"].as_u64().unwrap_or(0) > 100, "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360)),
        "{r}"
    );
    assert_eq!(r["delete_status"], 200, "{r}");
    assert_eq!(r["delete_again_status"], 404, "{r}");
    assert_eq!(viewers(&gw, 1), 0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whep_refusals_have_their_status() {
    let gw = start_gateway().await;
    let http = gw.http.unwrap();
    // A pinned mountpoint and a private one with a secret.
    for (id, extra) in [
        (7, json!({"pin": "1234"})),
        (8, json!({"is_private": true, "secret": "s3cr\u{e9}t"})),
    ] {
        let mut body = json!({"request": "create", "type": "rtp", "id": id,
            "media": [{"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": "h264"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = streaming_request(&gw, body);
        assert_eq!(r["streaming"], "created", "{r}");
    }
    let sdp = [("Content-Type", "application/sdp")];
    let garbage = b"v=0\r\nthis is no offer\r\n";
    let post = |path: &'static str, headers: Vec<(&'static str, String)>, body: Vec<u8>| async move {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http_request(http, "POST", path, &h, &body).await.unwrap()
    };
    let with = |auth: &str| {
        vec![
            ("Content-Type", "application/sdp".to_owned()),
            ("Authorization", auth.to_owned()),
        ]
    };
    let plain = || vec![("Content-Type", "application/sdp".to_owned())];

    // Unknown mountpoint, or not a number: 404.
    assert_eq!(
        post("/whep/999", plain(), garbage.to_vec()).await.status,
        404
    );
    assert_eq!(
        post("/whep/%C3%A9", plain(), garbage.to_vec()).await.status,
        404
    );
    // Not SDP: 415; a bad offer on an open mountpoint: 400; too large: 413.
    let r = http_request(
        http,
        "POST",
        "/whep/1",
        &[("Content-Type", "text/plain")],
        garbage,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 415);
    let r = post("/whep/1", plain(), garbage.to_vec()).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let r = post("/whep/1", plain(), vec![b'a'; 60_000]).await;
    assert_eq!(r.status, 413);
    // Pinned: 401 without a credential (with WWW-Authenticate), 403 with a wrong one;
    // the pin gets past the check (to the bad offer: 400).
    let r = post("/whep/7", plain(), garbage.to_vec()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        post("/whep/7", with("Bearer 12345"), garbage.to_vec())
            .await
            .status,
        403
    );
    assert_eq!(
        post("/whep/7", with("Basic MTIzNA=="), garbage.to_vec())
            .await
            .status,
        403
    );
    assert_eq!(
        post("/whep/7", with("Bearer 1234"), garbage.to_vec())
            .await
            .status,
        400
    );
    // Private: refused without its secret, even with no pin; the secret (multibyte) passes.
    assert_eq!(post("/whep/8", plain(), garbage.to_vec()).await.status, 401);
    let long = format!("Bearer {}", "x".repeat(60_000));
    assert_eq!(
        post("/whep/8", with(&long), garbage.to_vec()).await.status,
        403
    );
    assert_eq!(
        post("/whep/8", with("Bearer s3cr\u{e9}t"), garbage.to_vec())
            .await
            .status,
        400
    );
    // PATCH and DELETE of a resource that does not exist: 404; a bad fragment: 400
    // before the lookup would matter; a wrong content type: 415.
    let frag = [("Content-Type", "application/trickle-ice-sdpfrag")];
    let r = http_request(
        http,
        "PATCH",
        "/whep/1/nope",
        &frag,
        b"a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 404);
    let r = http_request(http, "PATCH", "/whep/1/nope", &frag, &[0xff, 0xfe])
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let r = http_request(http, "PATCH", "/whep/1/nope", &sdp, b"x")
        .await
        .unwrap();
    assert_eq!(r.status, 415);
    assert_eq!(
        http_request(http, "DELETE", "/whep/1/nope", &[], b"")
            .await
            .unwrap()
            .status,
        404
    );
    // Preflight: CORS and what the endpoint takes.
    let r = http_request(
        http,
        "OPTIONS",
        "/whep/1",
        &[
            ("Origin", "http://elsewhere.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("accept-post"), Some("application/sdp"));
    assert!(r
        .header("access-control-expose-headers")
        .unwrap()
        .contains("Location"));
    // Nothing of this made a viewer or left a session behind.
    for id in [1, 7, 8] {
        assert_eq!(viewers(&gw, id), 0);
    }
    assert_eq!(gw.hub.with_gateway(|g, _| g.session_count()), 0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kick_all_ends_a_whep_viewer_and_its_resource() {
    let gw = start_gateway().await;
    let http = gw.http.unwrap();
    let python = std::env::var_os("CARDEA_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace().join("interop-tests/.venv/bin/python"));
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(workspace().join("interop-tests/py/whep_aiortc.py"))
        .arg(format!("http://{http}/whep/1"))
        .arg("8");
    let client = tokio::spawn(run_json(cmd, Duration::from_secs(60)));
    let mut watched = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Kicked once it plays: its PeerConnection is up.
        let up = gw.hub.with_gateway(|g, now| {
            g.metrics(now)
                .find("cardea_peerconnections", &[("state", "connected")])
        });
        if viewers(&gw, 1) == 1 && up == Some(1.0) {
            watched = true;
            break;
        }
    }
    assert!(watched, "the WHEP viewer never counted or connected");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = streaming_request(&gw, json!({"request": "kick_all", "id": 1}));
    assert_eq!(r["streaming"], "kicked_all", "{r}");
    let r = client.await.unwrap().unwrap();
    println!("whep aiortc kicked: {r}");
    assert_eq!(viewers(&gw, 1), 0);
    assert_eq!(gw.hub.with_gateway(|g, _| g.whep_viewers()), 0);
    assert_eq!(gw.hub.with_gateway(|g, _| g.session_count()), 0);
    // It played, then its resource went with it.
    assert!(r["frames"].as_u64().unwrap_or(0) > 0, "{r}");
    assert_eq!(r["delete_status"], 404, "{r}");
    gw.shutdown().await;
}
