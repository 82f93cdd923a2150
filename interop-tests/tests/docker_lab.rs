//! The docker-compose lab (docker-compose.yml) with the real Docker engine, as a user
//! brings it up: the images built (`docker-compose build`; `scripts/docker.sh images`,
//! run by the README's test command, has built them while the network is there, so
//! here every step is in the cache), `docker-compose up`, then headless Chromium on this
//! side of the published ports:
//!
//! * the image: its size printed, the gateway's process not root, the healthcheck healthy;
//! * the camera wall at http://127.0.0.1:8088/ (WebSocket on 8188, media on 10000/udp):
//!   both lab cameras (H.264 + AAC with Digest auth, H.264 + PCMA) play, > 100 frames
//!   decoded in 10 s each, with audio packets;
//! * the lab page's phone, filled in by the lab's configuration: it registers as alice
//!   at the lab's kamailio and calls the tone extension (1000, baresip): the browser
//!   hears its 700 Hz and the phone's recording holds the browser's 440 Hz; then the
//!   echo extension (1001): the browser hears its own 440 Hz back;
//! * `docker-compose down` leaves no container and no network.
//!
//! The engine runs in the test's network namespace (started here if it is not running),
//! so every packet stays between the lab's containers and this namespace's loopback.

#![allow(clippy::disallowed_methods)] // drives real peers in real time

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use interop_tests::docker::{docker, docker_text, Compose, Engine};
use interop_tests::sip::{
    chromium_phone_at, events_named, heard_in, hears, options_to, tone_file, Scratch,
};
use serde_json::Value;

const PROJECT: &str = "cardea-lab";
const HTTP: &str = "127.0.0.1:8088";

/// Waits up to `limit` for `ok`, polling every half second; how long it took.
fn wait_until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if ok() {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{what}: not within {limit:?}");
}

/// A camera tile's frames and audio packets over the last 10 s of the wall's samples.
fn last_ten_seconds(r: &Value, id: &str) -> (u64, u64) {
    let samples = r["wall"].as_array().expect("wall samples");
    let end = samples.last().expect("a sample");
    let end_ms = end["ms"].as_u64().unwrap_or(0);
    let start = samples
        .iter()
        .find(|s| s["ms"].as_u64().unwrap_or(0) + 10_000 >= end_ms)
        .expect("a sample 10 s before the end");
    let at = |s: &Value, k: &str| s["tiles"][id][k].as_u64().unwrap_or(0);
    (
        at(end, "frames") - at(start, "frames"),
        at(end, "audio") - at(start, "audio"),
    )
}

/// The phone's call as the browser saw it: registered, answered, no error, > 200 audio
/// packets in, and `hz` heard.
fn assert_call(r: &Value, hz: f64) {
    println!("browser: {}", r["phone"]["events"]);
    println!(
        "browser stats: {} peaks {}",
        r["phone"]["stats"], r["phone"]["peaks"]
    );
    assert_eq!(r["phone"]["errors"], serde_json::json!([]), "{r}");
    assert_eq!(r["phone"]["registered"], true, "{r}");
    assert_eq!(events_named(r, "accepted").len(), 1, "{r}");
    assert!(
        r["phone"]["stats"]["audioIn"].as_u64().unwrap_or(0) > 200,
        "audio packets into the browser: {r}"
    );
    assert!(hears(r, hz), "the browser hears {hz} Hz: {r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_lab_cameras_and_phone() {
    interop_tests::require_loopback_only();
    let engine = Engine::up().expect("the Docker engine");
    for image in ["debian:bookworm-slim", "cardea-rust:host"] {
        docker(&["image", "inspect", image]).unwrap_or_else(|e| {
            panic!("{e:#}\nmake the base images first: scripts/docker.sh images (it needs the Debian mirror)")
        });
    }
    let lab = Compose::new(PROJECT);
    let t0 = Instant::now();
    lab.run(&["build", "-q"], &[("RUST_IMAGE", "cardea-rust:host")])
        .expect("docker-compose build (from the cache: scripts/docker.sh images built it)");
    println!("docker-compose build: {:?}", t0.elapsed());

    let size: u64 = docker_text(&["image", "inspect", "-f", "{{.Size}}", "cardea:latest"])
        .expect("image")
        .parse()
        .expect("a size");
    println!("image cardea:latest: {:.1} MB", size as f64 / 1e6);

    lab.run(&["up", "-d"], &[("RUST_IMAGE", "cardea-rust:host")])
        .expect("docker-compose up");
    let cardea = lab.container("cardea");
    let healthy = wait_until(Duration::from_secs(60), "cardea healthy", || {
        docker_text(&["inspect", "-f", "{{.State.Health.Status}}", &cardea])
            .is_ok_and(|s| s == "healthy")
    });
    println!("healthy after {healthy:?}");

    // The gateway's process, as the kernel sees it: not root.
    let pid = docker_text(&["inspect", "-f", "{{.State.Pid}}", &cardea]).expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("Uid line")
        .to_owned();
    println!("cardea runs as uid {uid}");
    assert_ne!(uid, "0", "the gateway runs as root");
    assert_eq!(
        docker_text(&[
            "image",
            "inspect",
            "-f",
            "{{.Config.User}}",
            "cardea:latest"
        ])
        .unwrap(),
        "cardea"
    );

    // Both cameras reached: their snapshots (the latest keyframe) are served.
    let http: SocketAddr = HTTP.parse().unwrap();
    for id in [2, 3] {
        let t = Instant::now();
        loop {
            let (code, _) = interop_tests::http_get(http, &format!("/snapshot/{id}.jpg"))
                .await
                .unwrap_or((0, Vec::new()));
            if code == 200 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "camera {id} not playing in 60 s (snapshot {code}); logs:\n{}\n{}",
                logs(&lab, "cardea"),
                logs(&lab, "camera")
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!("camera {id} playing after {:?}", t.elapsed());
    }

    let r = interop_tests::chromium_wall_at(&format!("http://{HTTP}/"), 16, None, async {})
        .await
        .expect("browser");
    println!(
        "wall at the end: {}",
        r["wall"]
            .as_array()
            .and_then(|w| w.last())
            .unwrap_or(&Value::Null)
    );
    assert_eq!(r["pageErrors"], serde_json::json!([]), "{r}");
    for id in ["2", "3"] {
        let (frames, audio) = last_ten_seconds(&r, id);
        println!("camera {id}: {frames} frames, {audio} audio packets in 10 s");
        assert!(frames > 100, "camera {id}: {frames} frames in 10 s");
        assert!(audio > 100, "camera {id}: {audio} audio packets in 10 s");
    }

    // The lab phone's extensions registered (kamailio forwards an OPTIONS to each).
    let pbx: SocketAddr = "172.29.89.20:5060".parse().unwrap();
    for ext in ["1000", "1001"] {
        let took = wait_until(
            Duration::from_secs(90),
            &format!("extension {ext} registered"),
            || matches!(options_to(pbx, Some(ext)), Ok(Some(200))),
        );
        println!("extension {ext} answers after {took:?}");
    }

    // The phone, as filled in by lab/cardea.toml's [web.phone]: alice, calling 1000.
    let scratch = Scratch::new("docker-lab").unwrap();
    let wav = scratch.0.join("tone440.wav");
    tone_file("wav", 440, &wav).unwrap();
    let page = format!("http://{HTTP}/lab?phone=1&call=form&hangup_after=8000&transport=http");
    let r = chromium_phone_at(&page, &wav, 40, async {})
        .await
        .expect("browser");
    assert_call(&r, 700.0);
    // What the tone extension heard: the browser's 440 Hz.
    let phone = lab.container("phone");
    let recording = docker(&[
        "exec",
        &phone,
        "sh",
        "-c",
        "cat \"$(ls -t /tmp/phone/tone/snd/*-dec.wav | head -1)\"",
    ])
    .expect("the phone's recording")
    .stdout;
    let file = scratch.0.join("phone-heard.wav");
    std::fs::write(&file, recording).unwrap();
    let heard = heard_in(&file).expect("analysed");
    println!("the tone extension heard: {heard}");
    let f = heard["freq"].as_f64().unwrap_or(0.0);
    assert!((f - 440.0).abs() < 22.0, "tone the phone decoded: {heard}");
    assert!(
        heard["loud_seconds"].as_f64().unwrap_or(0.0) > 4.0,
        "{heard}"
    );

    // The echo extension: the browser hears its own 440 Hz back.
    let page = format!(
        "http://{HTTP}/lab?phone=1&call=sip:1001@172.29.89.20&hangup_after=8000&transport=http"
    );
    let r = chromium_phone_at(&page, &wav, 40, async {})
        .await
        .expect("browser");
    assert_call(&r, 440.0);

    lab.down().expect("docker-compose down");
    let left = docker_text(&["ps", "-aq"]).unwrap();
    assert!(left.is_empty(), "containers left after down: {left}");
    let networks = docker_text(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("name={PROJECT}"),
    ])
    .unwrap();
    assert!(networks.is_empty(), "networks left after down: {networks}");
    drop(lab);
    drop(engine);
}

/// The last lines a service logged (for a failure's message).
fn logs(lab: &Compose, service: &str) -> String {
    lab.run(&["logs", "--no-color", "--tail", "40", service], &[])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("{e:#}"))
}
