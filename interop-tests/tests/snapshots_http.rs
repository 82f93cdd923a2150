//! `GET /snapshot/<id>.jpg` against real sources: a gst-rtsp-server camera added by URL
//! (640x360) and an RTP mountpoint fed by GStreamer (H.264 320x240, with a pin and a
//! secret). Pictures of the right size, 404/403 where due, and 50 requests a second
//! while Chromium watches the camera cost the viewer no packet.

use std::time::Duration;

use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_of_a_camera_and_an_rtp_feed() {
    let gw = interop_tests::start_gateway().await;
    let http = gw.http.unwrap();
    let port = interop_tests::free_port();
    let _camera = interop_tests::rtsp_camera(port, &[]).await.unwrap();
    let r = interop_tests::streaming_request(
        &gw,
        json!({"request": "create", "type": "rtsp", "id": 81,
               "url": format!("rtsp://127.0.0.1:{port}/cam")}),
    );
    assert_eq!(r["streaming"], "created", "{r}");
    let stream = interop_tests::streaming_request(
        &gw,
        json!({"request": "create", "type": "rtp", "id": 82, "pin": "1234", "secret": "s3",
               "media": [{"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": "h264"}]}),
    );
    assert_eq!(stream["streaming"], "created", "{stream}");
    let v = interop_tests::port_of(&stream["stream"], "v");
    let _feed = interop_tests::gst_launch(&format!(
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! video/x-h264,profile=constrained-baseline ! \
         rtph264pay config-interval=-1 pt=96 ! udpsink host=127.0.0.1 port={v}"
    ));
    // The first keyframes arrive within a second or two; until then 503.
    let get = |path: String| async move { interop_tests::http_get(http, &path).await.unwrap() };
    for (path, size) in [
        ("/snapshot/81.jpg".to_owned(), (640, 360)),
        ("/snapshot/82.jpg?pin=1234".to_owned(), (320, 240)),
        ("/snapshot/82.jpg?secret=s3".to_owned(), (320, 240)),
    ] {
        let mut last = (0, Vec::new());
        for _ in 0..50 {
            last = get(path.clone()).await;
            if last.0 != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (status, body) = last;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        assert_eq!(interop_tests::jpeg_size(&body), Some(size), "{path}");
        println!("{path}: JPEG {}x{}, {} bytes", size.0, size.1, body.len());
        // SNAPSHOT_DIR=<dir> keeps the pictures, to look at them.
        if let Some(dir) = std::env::var_os("SNAPSHOT_DIR") {
            let name = path.replace(['/', '?', '='], "_");
            std::fs::write(std::path::Path::new(&dir).join(name), &body).unwrap();
        }
    }
    for (path, want) in [
        ("/snapshot/999.jpg", 404),
        ("/snapshot/81.png", 404),
        ("/snapshot/82.jpg", 403),
        ("/snapshot/82.jpg?pin=0000", 403),
        ("/snapshot/82.jpg?secret=nope", 403),
    ] {
        let (status, body) = get(path.to_owned()).await;
        assert_eq!(status, want, "{path}: {}", String::from_utf8_lossy(&body));
    }

    // 50 pictures a second while Chromium watches the camera for 10 s: none lost.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut n) = (0u32, 0u32);
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                if interop_tests::http_get(http, "/snapshot/81.jpg")
                    .await
                    .is_ok_and(|r| r.0 == 200)
                {
                    ok += 1;
                }
            }
            (ok, n)
        })
    };
    let r = interop_tests::chromium_watch(&gw, "http", 81, 10)
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, n) = flood.await.unwrap();
    println!(
        "while {ok}/{n} snapshots were served: {} frames decoded, {} audio packets, {} packets lost",
        r["framesDecoded"], r["audioPacketsReceived"], r["packetsLost"]
    );
    interop_tests::assert_stream_watched(&r);
    assert_eq!(r["packetsLost"], 0, "{r}");
    assert!(n >= 400 && ok == n, "{ok} of {n} snapshot requests served");
    gw.shutdown().await;
}
