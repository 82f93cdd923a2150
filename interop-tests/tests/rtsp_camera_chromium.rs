//! RTSP cameras (gst-rtsp-server) watched in Chromium through janus.js: H.264 + PCMA
//! over TCP interleaved and over UDP, and H.264 + AAC (transcoded to Opus) with Digest
//! authentication.

use serde_json::json;

async fn watch_camera(id: u64, transport: &str, rtsp_transport: &str, auth: bool, audio: &str) {
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
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h264_pcma_tcp_interleaved_over_http() {
    watch_camera(31, "http", "tcp", false, "pcma").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h264_pcma_udp_over_websocket() {
    watch_camera(32, "ws", "udp", false, "pcma").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h264_aac_with_digest_auth() {
    watch_camera(33, "ws", "tcp", true, "aac").await;
}
