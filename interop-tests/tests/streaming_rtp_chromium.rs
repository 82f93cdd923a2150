//! Chromium + janus.js watches RTP mountpoints fed by GStreamer (VP8 + Opus, H.264 +
//! Opus), each over HTTP long poll and then over WebSocket. Frames decoded at the
//! source's resolution and audio packets are counted by the browser's getStats().

use serde_json::json;

async fn watch_feed(id: u64, video_codec: &str, video_enc: &str) {
    let gw = interop_tests::start_gateway().await;
    let stream = interop_tests::create_rtp_mountpoint(
        &gw,
        id,
        json!([
            {"type": "audio", "mid": "a", "port": 0, "pt": 111, "codec": "opus"},
            {"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": video_codec},
        ]),
    );
    let (a, v) = (
        interop_tests::port_of(&stream, "a"),
        interop_tests::port_of(&stream, "v"),
    );
    let _feed = interop_tests::gst_launch(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 ! {video_enc} pt=96 ! udpsink host=127.0.0.1 port={v} \
         audiotestsrc is-live=true wave=sine freq=440 ! audioresample ! opusenc ! rtpopuspay pt=111 ! udpsink host=127.0.0.1 port={a}"
    ));
    for transport in ["http", "ws"] {
        let r = interop_tests::chromium_watch(&gw, transport, id, 10)
            .await
            .unwrap();
        println!(
            "{video_codec}/{transport}: {} frames decoded at {}x{}, {} audio packets, codecs {}",
            r["framesDecoded"], r["width"], r["height"], r["audioPacketsReceived"], r["codecs"]
        );
        assert_eq!(
            r["started"], true,
            "the plugin's 'started' event arrived: {r}"
        );
        interop_tests::assert_stream_watched(&r);
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vp8_and_opus() {
    watch_feed(
        11,
        "vp8",
        "vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h264_and_opus() {
    watch_feed(
        12,
        "h264",
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 aggregate-mode=zero-latency",
    )
    .await;
}
