//! RTSP cameras (gst-rtsp-server) watched in Chromium through janus.js, each over the
//! HTTP and the WebSocket transport: H.264 + PCMA over TCP interleaved and over UDP,
//! H.264 + AAC (transcoded to Opus) with Digest authentication, H.264 + MP4A-LATM AAC
//! (read packet by packet: retina has no LATM depacketizer), and a camera with a sub
//! stream taken whole, on demand.

use serde_json::json;

/// Watches the camera over HTTP long poll, then over WebSocket.
async fn watch_camera(id: u64, rtsp_transport: &str, auth: bool, audio: &str) {
    let gw = interop_tests::start_gateway().await;
    let port = interop_tests::free_port();
    let mut camera_args = vec!["--audio", audio];
    if auth {
        camera_args.extend(["--user", "admin", "--password", "s3cret"]);
    }
    let _camera = interop_tests::rtsp_camera(port, &camera_args)
        .await
        .unwrap();
    let mut create = json!({"request": "create", "type": "rtsp", "id": id,
        "url": format!("rtsp://127.0.0.1:{port}/cam"), "video": true, "audio": true, "audiocodec": audio,
        "rtsp_transport": rtsp_transport, "rtsp_reconnect_delay": 0.5});
    if auth {
        create["rtsp_user"] = json!("admin");
        create["rtsp_pwd"] = json!("s3cret");
    }
    let r = interop_tests::streaming_request(&gw, create);
    assert_eq!(r["streaming"], "created", "{r}");
    for transport in ["http", "ws"] {
        let r = interop_tests::chromium_watch(&gw, transport, id, 10)
            .await
            .unwrap();
        let info = interop_tests::streaming_request(&gw, json!({"request": "info", "id": id}));
        println!(
            "rtsp/{rtsp_transport}{}/{transport}: {} frames decoded at {}x{}, {} audio packets, codecs {}; camera {}",
            if auth { "+digest" } else { "" },
            r["framesDecoded"], r["width"], r["height"], r["audioPacketsReceived"], r["codecs"], info["info"]["rtsp"]
        );
        interop_tests::assert_stream_watched(&r);
        assert!(
            !info.to_string().contains("s3cret"),
            "no secret in info: {info}"
        );
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h264_pcma_tcp_interleaved() {
    watch_camera(31, "tcp", false, "pcma").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h264_pcma_udp() {
    watch_camera(32, "udp", false, "pcma").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h264_aac_with_digest_auth() {
    watch_camera(33, "tcp", true, "aac").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h264_latm_aac() {
    watch_camera(35, "tcp", false, "latm").await;
}

/// A camera with a main and a sub stream and G.711 audio, all three taken (Cardea's
/// `media` list), connected on demand: nothing until someone watches, every track
/// decoded while Chromium watches, hung up again after the viewer leaves.
#[tokio::test(flavor = "multi_thread")]
async fn every_camera_track_on_demand() {
    let gw = interop_tests::start_gateway().await;
    let port = interop_tests::free_port();
    let _camera = interop_tests::rtsp_camera(port, &["--substream"])
        .await
        .unwrap();
    let r = interop_tests::streaming_request(
        &gw,
        json!({"request": "create", "type": "rtsp", "id": 34, "ondemand": true,
               "url": format!("rtsp://127.0.0.1:{port}/cam"), "rtsp_reconnect_delay": 0.5,
               "media": [{"type": "video", "mid": "v1", "codec": "h264"},
                         {"type": "video", "mid": "v2", "codec": "h264"},
                         {"type": "audio", "mid": "a", "codec": "pcma"}]}),
    );
    assert_eq!(r["streaming"], "created", "{r}");
    let state = || {
        let info = interop_tests::streaming_request(&gw, json!({"request": "info", "id": 34}));
        (
            info["info"]["state"].clone(),
            info["info"]["rtsp"]["connected"].clone(),
        )
    };
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        state(),
        (json!("idle"), json!(false)),
        "not connected before a viewer"
    );
    let r = interop_tests::chromium_watch(&gw, "http", 34, 10)
        .await
        .unwrap();
    println!(
        "on-demand camera, 3 tracks: video {}, {} audio packets",
        r["video"], r["audioPacketsReceived"]
    );
    assert_eq!(r["webrtcup"], true, "{r}");
    assert_eq!(r["errors"], json!([]), "{r}");
    let mut sizes: Vec<(u64, u64, bool)> = r["video"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let frames = v["frames"].as_u64().unwrap();
            (
                v["width"].as_u64().unwrap(),
                v["height"].as_u64().unwrap(),
                frames > 100,
            )
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes, vec![(320, 180, true), (640, 360, true)], "{r}");
    assert!(r["audioPacketsReceived"].as_u64().unwrap() > 200, "{r}");
    // The browser closed: once its PeerConnection times out (ICE) and the linger
    // passes, the camera is hung up.
    let mut now = state();
    for _ in 0..300 {
        if now == (json!("idle"), json!(false)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        now = state();
    }
    assert_eq!(
        now,
        (json!("idle"), json!(false)),
        "disconnected once unwatched"
    );
    gw.shutdown().await;
}

/// Cameras added by their URL alone: the tracks come from the first DESCRIBE, in the
/// camera's order, with mids `v`, `v2`, … / `a`, …; Chromium decodes every one and
/// sees those mids.
#[tokio::test(flavor = "multi_thread")]
async fn cameras_by_url_alone() {
    let gw = interop_tests::start_gateway().await;
    // The camera's arguments, the mountpoint's media in order (mid, codec), and the
    // video mids the browser sees with their heights.
    type Camera<'a> = (
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, u64)],
    );
    let cameras: [Camera; 4] = [
        (
            &["--audio", "aac"],
            &[("v", "h264"), ("a", "opus")],
            &[("v", 360)],
        ),
        (
            &["--audio", "pcma"],
            &[("v", "h264"), ("a", "pcma")],
            &[("v", 360)],
        ),
        (
            &["--substream"],
            &[("v", "h264"), ("a", "pcma"), ("v2", "h264")],
            &[("v", 360), ("v2", 180)],
        ),
        (
            &["--audio-first"],
            &[("a", "pcma"), ("v", "h264")],
            &[("v", 360)],
        ),
    ];
    let mut running = Vec::new();
    for (n, (args, _, _)) in cameras.iter().enumerate() {
        let port = interop_tests::free_port();
        running.push(interop_tests::rtsp_camera(port, args).await.unwrap());
        let id = 60 + n as u64;
        let r = interop_tests::streaming_request(
            &gw,
            json!({"request": "create", "type": "rtsp", "id": id,
                   "url": format!("rtsp://127.0.0.1:{port}/cam")}),
        );
        assert_eq!(r["streaming"], "created", "{r}");
    }
    for (n, (args, media, videos)) in cameras.iter().enumerate() {
        let id = 60 + n as u64;
        let mut info = json!(null);
        for _ in 0..100 {
            info = interop_tests::streaming_request(&gw, json!({"request": "info", "id": id}));
            if info["info"]["discovering"] == false {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let listed: Vec<(String, String)> = info["info"]["media"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["mid"].as_str().unwrap().to_owned(),
                    m["codec"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = media
            .iter()
            .map(|(m, c)| (m.to_string(), c.to_string()))
            .collect();
        assert_eq!(listed, expected, "camera {args:?}: {info}");
        assert_eq!(info["info"]["unoffered"], json!([]), "{info}");
        let r = interop_tests::chromium_watch(&gw, "http", id, 10)
            .await
            .unwrap();
        println!(
            "camera {args:?} by URL: media {listed:?}; video {}, {} audio packets",
            r["video"], r["audioPacketsReceived"]
        );
        assert_eq!(r["webrtcup"], true, "{r}");
        assert_eq!(r["errors"], json!([]), "{r}");
        let seen: Vec<(String, u64, bool)> = r["video"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["mid"].as_str().unwrap_or("?").to_owned(),
                    v["height"].as_u64().unwrap(),
                    v["frames"].as_u64().unwrap() > 100,
                )
            })
            .collect();
        let wanted: Vec<(String, u64, bool)> = videos
            .iter()
            .map(|(mid, h)| (mid.to_string(), *h, true))
            .collect();
        assert_eq!(seen, wanted, "the browser's mids, sizes, > 100 frames: {r}");
        assert!(r["audioPacketsReceived"].as_u64().unwrap() > 200, "{r}");
    }
    gw.shutdown().await;
}
