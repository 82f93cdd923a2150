//! Chromium + janus.js (npm janus-gateway) completes the echo test over WebSocket.

#[tokio::test(flavor = "multi_thread")]
async fn chromium_echotest_over_websocket() {
    let gw = interop_tests::start_gateway().await;
    let r = interop_tests::chromium_echotest(&gw, "ws", 10)
        .await
        .unwrap();
    println!(
        "chromium/ws: {} frames decoded, {} audio packets, codecs {}",
        r["framesDecoded"], r["audioPacketsReceived"], r["codecs"]
    );
    interop_tests::assert_browser_echo(&r);
    gw.shutdown().await;
}
