//! The camera is killed and restarted 5 times during a watch: the viewer keeps its
//! PeerConnection, gets rtsp-disconnected / rtsp-reconnected, and frames resume within
//! 3 s of the camera coming back each time; the gateway's file descriptors and
//! memory return to their level.
#![allow(clippy::disallowed_methods)] // the test times camera restarts against the browser's samples

use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of this process (the gateway runs in it; the browser and the
/// camera are children), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Frames decoded at browser time `ms` (the last sample at or before it).
fn frames_at(samples: &[Value], ms: u64) -> u64 {
    samples
        .iter()
        .rfind(|s| s["ms"].as_u64().unwrap_or(0) <= ms)
        .map_or(0, |s| s["frames"].as_u64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn viewers_survive_five_camera_restarts() {
    let gw = interop_tests::start_gateway().await;
    let port = interop_tests::free_port();
    let mut camera = interop_tests::rtsp_camera(port, &[]).await.unwrap();
    let r = interop_tests::streaming_request(
        &gw,
        json!({"request": "create", "type": "rtsp", "id": 41,
        "url": format!("rtsp://127.0.0.1:{port}/cam"), "audio": true, "audiocodec": "pcma",
        "rtsp_reconnect_delay": 0.5}),
    );
    assert_eq!(r["streaming"], "created", "{r}");

    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let go = async move {
        let _ = go_tx.send(());
    };
    let restarts = async {
        go_rx.await.unwrap();
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let fds_before = fd_count();
        let rss_before = rss_kib();
        let mut back_at = Vec::new();
        for _ in 0..5 {
            camera.kill().await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            camera = interop_tests::rtsp_camera(port, &[]).await.unwrap();
            back_at.push(start.elapsed());
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        (back_at, (fds_before, rss_before), (fd_count(), rss_kib()))
    };
    let (browser, (back_at, (fds_before, rss_before), (fds_after, rss_after))) = tokio::join!(
        interop_tests::chromium_watch_when(&gw, 41, 30, go),
        restarts
    );
    let r = browser.unwrap();
    let samples = r["samples"].as_array().unwrap();
    let watch_ms = r["watchSentMs"].as_u64().unwrap();
    let events = r["events"].as_array().unwrap();
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    let info = interop_tests::streaming_request(&gw, json!({"request": "info", "id": 41}));
    println!(
        "camera restarts: {} rtsp-disconnected, {} rtsp-reconnected, {} frames in all; fds {fds_before} -> {fds_after}; RSS {rss_before} -> {rss_after} KiB; camera {}",
        count("rtsp-disconnected"), count("rtsp-reconnected"), r["framesDecoded"], info["info"]["rtsp"]
    );
    assert_eq!(r["errors"], json!([]), "{r}");
    assert_eq!(r["webrtcup"], true);
    let preparing = events
        .iter()
        .filter(|e| e["result"]["status"] == "preparing")
        .count();
    assert_eq!(preparing, 1, "one watch, one PeerConnection: {events:?}");
    assert!(
        !events.iter().any(|e| e["result"]["status"] == "stopped"),
        "{events:?}"
    );
    assert!(
        count("rtsp-disconnected") >= 5 && count("rtsp-reconnected") >= 5,
        "{events:?}"
    );
    for (i, back) in back_at.iter().enumerate() {
        let t = watch_ms + back.as_millis() as u64;
        let (before, after) = (frames_at(samples, t), frames_at(samples, t + 3000));
        println!(
            "restart {}: camera back at {t} ms, frames {before} -> {after} three seconds later",
            i + 1
        );
        assert!(
            after > before,
            "no frames within 3 s of restart {}: {before} -> {after}",
            i + 1
        );
    }
    assert!(
        fds_after <= fds_before + 4,
        "descriptors leak: {fds_before} -> {fds_after}"
    );
    // Each session's buffers (retina's, the AAC/packetizer state) are freed on
    // reconnect; what may grow is allocator slack, a few MiB at most.
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "memory grows across restarts: {rss_before} -> {rss_after} KiB"
    );
    gw.shutdown().await;
}
