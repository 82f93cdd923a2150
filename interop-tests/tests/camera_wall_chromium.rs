//! The camera wall at `/` in headless Chromium: the demo mountpoint and three
//! gst-rtsp-server cameras added by URL alone, every tile decoding at once; one camera
//! is killed and started again, and its tile goes offline and comes back live while
//! the others play on. The page is saved as a screenshot (its path is printed).
#![allow(clippy::disallowed_methods)] // the test times the camera's restart

use std::time::Duration;

use serde_json::{json, Value};

/// The tile `id` in a sample.
fn tile(sample: &Value, id: u64) -> &Value {
    &sample["tiles"][id.to_string()]
}

fn frames(sample: &Value, id: u64) -> u64 {
    tile(sample, id)["frames"].as_u64().unwrap_or(0)
}

fn state(sample: &Value, id: u64) -> &str {
    tile(sample, id)["state"].as_str().unwrap_or("?")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tile_plays_and_a_restarted_camera_goes_offline_and_back() {
    let gw = interop_tests::start_gateway().await;
    let cameras: [&[&str]; 3] = [&["--audio", "pcma"], &["--substream"], &["--audio", "none"]];
    let mut ports = Vec::new();
    let mut running = Vec::new();
    for (n, args) in cameras.iter().enumerate() {
        let port = interop_tests::free_port();
        running.push(interop_tests::rtsp_camera(port, args).await.unwrap());
        ports.push(port);
        let r = interop_tests::streaming_request(
            &gw,
            json!({"request": "create", "type": "rtsp", "id": 71 + n as u64,
                   "description": format!("Camera {}", n + 1), "rtsp_reconnect_delay": 0.5,
                   "url": format!("rtsp://127.0.0.1:{port}/cam")}),
        );
        assert_eq!(r["streaming"], "created", "{r}");
    }
    // Discovered before the page opens (a tile would otherwise retry its watch).
    for id in 71..74 {
        for _ in 0..100 {
            let info = interop_tests::streaming_request(&gw, json!({"request": "info", "id": id}));
            if info["info"]["discovering"] == false {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let ids = [1u64, 71, 72, 73];
    let victim = 72u64;
    let mut victim_camera = Some(running.remove(1));
    let mut restarted = None;
    let slot = &mut restarted;
    let port = ports[1];
    let during = async move {
        tokio::time::sleep(Duration::from_secs(14)).await;
        if let Some(mut c) = victim_camera.take() {
            let _ = c.kill().await;
        }
        println!("camera {victim} stopped");
        tokio::time::sleep(Duration::from_secs(8)).await;
        *slot = Some(
            interop_tests::rtsp_camera(port, &["--substream"])
                .await
                .unwrap(),
        );
        println!("camera {victim} started again");
    };
    let shot = std::env::temp_dir().join(format!("cardea-wall-{}.png", std::process::id()));
    let r = interop_tests::chromium_wall(&gw, 50, Some(&shot), during)
        .await
        .unwrap();
    let samples = r["wall"].as_array().expect("samples").clone();
    assert!(samples.len() > 60, "{r}");
    let first_ms = samples[0]["ms"].as_u64().unwrap();
    let at = |ms: u64| {
        samples
            .iter()
            .rfind(|s| s["ms"].as_u64().unwrap() <= first_ms + ms)
            .unwrap()
    };
    let ten = at(10_000);
    println!("after 10 s: {}", ten["tiles"]);
    for id in ids {
        assert!(
            frames(ten, id) > 60,
            "tile {id} decodes at once: {}",
            ten["tiles"]
        );
        assert_eq!(state(ten, id), "live", "tile {id}: {}", ten["tiles"]);
        let t = tile(ten, id);
        assert!(
            t["width"].as_u64().unwrap() >= 320 && t["fps"].as_f64().unwrap() > 10.0,
            "{t}"
        );
    }
    // The stopped camera's tile goes offline, then live again with new frames.
    let offline = samples
        .iter()
        .position(|s| state(s, victim) == "offline")
        .unwrap_or_else(|| panic!("tile {victim} never offline: {r}"));
    let back = samples[offline..]
        .iter()
        .position(|s| state(s, victim) == "live")
        .map(|i| offline + i)
        .unwrap_or_else(|| panic!("tile {victim} never live again: {r}"));
    let last = samples.last().unwrap();
    println!(
        "tile {victim}: offline at {} ms, live again at {} ms; frames {} -> {}",
        samples[offline]["ms"],
        samples[back]["ms"],
        frames(&samples[offline], victim),
        frames(last, victim)
    );
    // It was away 8 s: the tile says so for most of that time, not just a blink.
    let away = samples[back]["ms"].as_u64().unwrap() - samples[offline]["ms"].as_u64().unwrap();
    assert!(away > 5_000, "offline for {away} ms only: {r}");
    assert!(
        frames(last, victim) > frames(&samples[offline], victim) + 60,
        "frames after the restart: {}",
        last["tiles"]
    );
    // The others played on through it.
    for id in ids.iter().filter(|id| **id != victim) {
        assert_eq!(state(last, *id), "live", "{}", last["tiles"]);
        assert!(
            frames(last, *id) > frames(ten, *id) + 300,
            "tile {id} kept decoding: {}",
            last["tiles"]
        );
        assert!(
            !samples[offline..back + 1]
                .iter()
                .any(|s| state(s, *id) == "offline"),
            "tile {id} stayed up while camera {victim} was away"
        );
    }
    assert_eq!(r["pageErrors"], json!([]), "{r}");
    println!("screenshot: {}", shot.display());
    drop(restarted);
    gw.shutdown().await;
}
