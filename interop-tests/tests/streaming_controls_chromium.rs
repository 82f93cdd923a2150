//! `configure`, `switch` and keyframe requests with a real browser and a real encoder.
//! Chromium (janus.js) watches mountpoint A, a VP8 feed from GStreamer's rtpbin whose
//! encoder makes a keyframe only at start or when asked by RTCP PLI. The test drives
//! the browser's handle as another Janus client could: `configure` stops the video,
//! then resumes it (the gateway must ask the source for a keyframe, and the encoder
//! must see the request), then `switch` moves the viewer, in the same PeerConnection,
//! to mountpoint B (a 320x180 feed): the browser must end up decoding B.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn configure_switch_and_keyframe_requests_reach_the_source() {
    let gw = interop_tests::start_gateway().await;
    let a = interop_tests::create_rtp_mountpoint(
        &gw,
        41,
        json!([{"type": "video", "mid": "v", "port": 0, "rtcpport": 0, "pt": 96, "codec": "vp8"}]),
    );
    let b = interop_tests::create_rtp_mountpoint(
        &gw,
        42,
        json!([{"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": "vp8"}]),
    );
    let rtcp = a["ports"][0]["rtcpport"]
        .as_u64()
        .expect("rtcpport in created") as u16;
    let (_feed_a, asked) =
        interop_tests::rtp_feed_with_rtcp(interop_tests::port_of(&a, "v"), rtcp, 640, 360)
            .await
            .unwrap();
    let _feed_b = interop_tests::gst_launch(&format!(
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=180,framerate=30/1 ! \
         vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 ! udpsink host=127.0.0.1 port={}",
        interop_tests::port_of(&b, "v")
    ));
    let info = |id: u64| {
        interop_tests::streaming_request(&gw, json!({"request": "info", "id": id}))["info"].clone()
    };

    let driver = async {
        let viewer = interop_tests::first_viewer_of(&gw, 41).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let before = info(41);
        let off = json!({"request": "configure", "streams": [{"mid": "v", "send": false}]});
        assert_eq!(interop_tests::message_on(&gw, viewer, off)["janus"], "ack");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let on = json!({"request": "configure", "streams": [{"mid": "v", "send": true}]});
        assert_eq!(interop_tests::message_on(&gw, viewer, on)["janus"], "ack");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = info(41);
        let switch = json!({"request": "switch", "id": 42});
        assert_eq!(
            interop_tests::message_on(&gw, viewer, switch)["janus"],
            "ack"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Pause and resume: a PeerConnection already up resumes as `started` (Janus).
        let pause = json!({"request": "pause"});
        assert_eq!(
            interop_tests::message_on(&gw, viewer, pause)["janus"],
            "ack"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start = json!({"request": "start"});
        assert_eq!(
            interop_tests::message_on(&gw, viewer, start)["janus"],
            "ack"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        (
            before,
            after,
            info(41)["viewers"].clone(),
            info(42)["viewers"].clone(),
        )
    };
    let (r, (before, after, viewers_a, viewers_b)) =
        tokio::join!(interop_tests::chromium_watch(&gw, "ws", 41, 17), driver);
    let r = r.unwrap();
    println!(
        "source A before/after resume: {} / {}; encoder saw {} keyframe requests; browser: {} frames, now {}x{}, samples {}",
        before["source"], after["source"], asked.load(Ordering::Relaxed),
        r["framesDecoded"], r["width"], r["height"], r["samples"]
    );
    assert_eq!(r["webrtcup"], true, "{r}");
    assert_eq!(r["errors"], json!([]), "{r}");
    let events = r["events"].as_array().unwrap();
    let configured = events
        .iter()
        .filter(|e| e["result"]["event"] == "configured")
        .count();
    assert_eq!(
        configured, 2,
        "two 'configured' events reached the browser: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["result"] == json!({"switched": "ok", "id": 42})),
        "{events:?}"
    );
    let statuses: Vec<&str> = events
        .iter()
        .filter_map(|e| e["result"]["status"].as_str())
        .collect();
    assert_eq!(
        statuses,
        ["preparing", "starting", "started", "pausing", "started"],
        "{events:?}"
    );
    // Resuming asked the source for a keyframe over RTCP, and the encoder made one.
    assert!(
        after["source"]["plis_sent"].as_u64().unwrap()
            > before["source"]["plis_sent"].as_u64().unwrap(),
        "{after}"
    );
    assert!(after["source"]["rtcp_in"].as_u64().unwrap() > 0, "{after}");
    assert!(
        asked.load(Ordering::Relaxed) >= 1,
        "the encoder saw a keyframe request"
    );
    assert!(
        after["source"]["keyframes"].as_u64().unwrap()
            > before["source"]["keyframes"].as_u64().unwrap(),
        "a keyframe followed the request: {before} -> {after}"
    );
    // The viewer moved to B and the browser decodes B in the same PeerConnection.
    assert_eq!((viewers_a, viewers_b), (json!(0), json!(1)));
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(320), Some(180)),
        "{r}"
    );
    interop_tests::assert_frames_go_on(&r);
    gw.shutdown().await;
}

/// `watch` with `restart: true` during a watch: an ICE restart in the same
/// PeerConnection. The browser gets `updating` with an offer marked `restart`,
/// answers with new ICE credentials, and the stream goes on.
#[tokio::test(flavor = "multi_thread")]
async fn ice_restart_keeps_the_stream() {
    let gw = interop_tests::start_gateway().await;
    let driver = async {
        let viewer = interop_tests::first_viewer_of(&gw, 1).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let restart = json!({"request": "watch", "id": 1, "restart": true});
        assert_eq!(
            interop_tests::message_on(&gw, viewer, restart)["janus"],
            "ack"
        );
    };
    let (r, ()) = tokio::join!(interop_tests::chromium_watch(&gw, "http", 1, 12), driver);
    let r = r.unwrap();
    println!(
        "ICE restart: browser ufrags {}, {} frames, events {}, console {}",
        r["ufrags"], r["framesDecoded"], r["events"], r["console"]
    );
    assert_eq!(r["errors"], json!([]), "{r}");
    let events = r["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["result"]["status"] == "updating"),
        "{events:?}"
    );
    let preparing = events
        .iter()
        .filter(|e| e["result"]["status"] == "preparing")
        .count();
    assert_eq!(preparing, 1, "one PeerConnection: {events:?}");
    assert_eq!(
        r["ufrags"].as_array().unwrap().len(),
        2,
        "the browser's ICE credentials changed: {r}"
    );
    interop_tests::assert_frames_go_on(&r);
    gw.shutdown().await;
}
