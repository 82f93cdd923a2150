//! The shipped configuration's demo mountpoint (id 1): a browser with no camera
//! sees the moving test pattern and hears the tone, as the README's run command promises.

#[tokio::test(flavor = "multi_thread")]
async fn demo_mountpoint_plays_in_chromium() {
    let gw = interop_tests::start_gateway().await;
    let r = interop_tests::chromium_watch(&gw, "ws", 1, 10)
        .await
        .unwrap();
    println!(
        "demo: {} frames decoded at {}x{}, {} audio packets, first frame {} ms, codecs {}",
        r["framesDecoded"],
        r["width"],
        r["height"],
        r["audioPacketsReceived"],
        r["firstFrameMs"],
        r["codecs"]
    );
    interop_tests::assert_stream_watched(&r);
    let codecs = r["codecs"].to_string();
    assert!(
        codecs.contains("video/H264") && codecs.contains("audio/PCMU"),
        "{r}"
    );
    gw.shutdown().await;
}
