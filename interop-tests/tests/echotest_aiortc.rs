//! An independent WebRTC stack (aiortc) gets its own audio and video back.

#[tokio::test(flavor = "multi_thread")]
async fn aiortc_echotest_over_http() {
    let gw = interop_tests::start_gateway().await;
    let r = interop_tests::aiortc_echotest(&gw, 8).await.unwrap();
    println!(
        "aiortc: {} video frames, {} audio frames back",
        r["video_frames"], r["audio_frames"]
    );
    assert_eq!(r["answer"], true, "{r}");
    assert_eq!(r["webrtcup"], true, "{r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    // 8 s at 30 fps and 50 audio frames/s: well over half of each must come back.
    assert!(r["video_frames"].as_u64().unwrap() > 100, "{r}");
    assert!(r["audio_frames"].as_u64().unwrap() > 150, "{r}");
    gw.shutdown().await;
}
