//! Time to first frame with a 4 s GOP. The viewer asks to watch just after a
//! keyframe went by (the test sees the feed too), so without the GOP cache it would
//! wait about 4 s for the next one; with it, it starts from the cached keyframe at
//! once. Measured in the browser, from the `watch` request to the first video frame
//! painted (requestVideoFrameCallback).

use std::time::Duration;

use cardea_codecs::keyframe::{starts_keyframe, VideoCodec};
use cardea_codecs::rtp::RtpHeader;
use serde_json::json;
use tokio::net::UdpSocket;

#[tokio::test(flavor = "multi_thread")]
async fn first_frame_well_under_a_4_second_gop() {
    let gw = interop_tests::start_gateway().await;
    let stream = interop_tests::create_rtp_mountpoint(
        &gw,
        21,
        json!([{"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": "vp8"}]),
    );
    let v = interop_tests::port_of(&stream, "v");
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let p = probe.local_addr().unwrap().port();
    // One keyframe every 120 frames at 30 fps: a 4 s GOP. A tee sends it to the probe too.
    let _feed = interop_tests::gst_launch(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 ! \
         vp8enc deadline=1 keyframe-max-dist=120 ! rtpvp8pay pt=96 ! tee name=t \
         t. ! queue ! udpsink host=127.0.0.1 port={v} t. ! queue ! udpsink host=127.0.0.1 port={p}"
    ));
    let after_a_keyframe = async {
        let mut buf = vec![0u8; 2048];
        let mut seen = 0;
        // Skip the stream's first keyframe; wait for the next (4 s later), then 300 ms more.
        while seen < 2 {
            let n = probe.recv(&mut buf).await.unwrap();
            if let Ok(h) = RtpHeader::parse(&buf[..n]) {
                if starts_keyframe(VideoCodec::Vp8, &buf[h.payload_offset..h.payload_end]) {
                    seen += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let r = interop_tests::chromium_watch_when(&gw, 21, 5, after_a_keyframe)
        .await
        .unwrap();
    let first = r["firstFrameMs"].as_u64();
    println!("time to first frame, joining 300 ms into a 4 s GOP: {first:?} ms");
    assert_eq!(r["errors"], json!([]), "{r}");
    let first = first.unwrap_or_else(|| panic!("no frame painted: {r}"));
    assert!(
        first < 2000,
        "first frame took {first} ms, GOP is 4000 ms: {r}"
    );
    gw.shutdown().await;
}
