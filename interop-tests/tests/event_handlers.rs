//! Event handlers: a webhook receiver (here, a plain HTTP server of the test's) gets the
//! events of an echo session (aiortc) in order, in Janus's envelope, with the bearer
//! configured; a real `nats-server` (Debian's, started here on loopback) gets the same
//! events on the subject; with the receiver gone, events are retried, then dropped and
//! counted, while the gateway answers as before.
#![allow(clippy::disallowed_methods)] // times real servers in real time

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use interop_tests::{aiortc_echotest, free_port, janus, start_gateway_with};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BEARER: &str = "hook-t\u{f6}ken";

/// A webhook receiver: every POST's JSON array, and the Authorization it carried.
/// Stopping it (the flag) closes its kept-alive connections too.
type Receiver = (
    SocketAddr,
    Arc<Mutex<Vec<(String, Value)>>>,
    tokio::task::JoinHandle<()>,
    Arc<AtomicBool>,
);

async fn receiver() -> Receiver {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = Arc::new(AtomicBool::new(true));
    let alive = up.clone();
    let addr = l.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let store = store.clone();
            let alive = alive.clone();
            tokio::spawn(async move {
                let mut raw = Vec::new();
                let mut buf = [0u8; 65536];
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 || !alive.load(Ordering::Relaxed) {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&raw[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if raw.len() < end + 4 + len {
                        continue;
                    }
                    let body = &raw[end + 4..end + 4 + len];
                    let auth = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("authorization: ")
                                .or_else(|| l.strip_prefix("Authorization: "))
                        })
                        .unwrap_or("")
                        .to_owned();
                    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                    store.lock().unwrap().push((auth, v));
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    raw.drain(..end + 4 + len);
                }
            });
        }
    });
    (addr, got, task, up)
}

/// The gateway's metric `name{sink="…"}`, as scraped (-1: not there).
async fn metric(gw: &cardea::Running, name: &str, sink: &str) -> f64 {
    let (_, body) = interop_tests::http_get(gw.metrics.unwrap(), "/metrics")
        .await
        .unwrap();
    let text = String::from_utf8(body).unwrap();
    let series = format!("{name}{{sink=\"{sink}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()).and_then(|v| v.parse().ok()))
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_session_events_reach_a_webhook_and_nats_and_a_dead_webhook_costs_nothing() {
    // NATS on loopback, and a subscriber on the subject.
    let nats_port = free_port();
    let mut nats = tokio::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &nats_port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server (Debian package) installed by scripts/test.sh");
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let sub_client = {
        let mut tries = 0;
        loop {
            match async_nats::connect(&nats_url).await {
                Ok(c) => break c,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("nats-server did not start: {e}"),
            }
        }
    };
    let mut sub = sub_client.subscribe("lab.cardea.events").await.unwrap();
    sub_client.flush().await.unwrap();
    let from_nats = Arc::new(Mutex::new(Vec::<Value>::new()));
    let store = from_nats.clone();
    let nats_task = tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            store
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&m.payload).unwrap_or(Value::Null));
        }
    });

    let (hook, got, hook_task, hook_up) = receiver().await;
    let gw = start_gateway_with(|c| {
        c.events.enabled = true;
        c.events.emitter = "lab-gw-1".into();
        c.events.webhooks.push(cardea::config::WebhookConfig {
            url: format!("http://{hook}/janus-events"),
            bearer: BEARER.into(),
            retries: 1,
        });
        c.events.nats.url = nats_url.clone();
        c.events.nats.subject = "lab.cardea.events".into();
    })
    .await;

    let r = aiortc_echotest(&gw, 5).await.unwrap();
    assert_eq!(r["webrtcup"], true, "{r}");
    assert!(r["video_frames"].as_u64().unwrap_or(0) > 0, "{r}");
    // Its events arrive within a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let batches = got.lock().unwrap().clone();
    assert!(!batches.is_empty(), "no POST reached the webhook");
    for (auth, batch) in &batches {
        assert_eq!(auth, &format!("Bearer {BEARER}"));
        assert!(batch.is_array(), "a batch is a JSON array: {batch}");
    }
    let events: Vec<Value> = batches
        .iter()
        .flat_map(|(_, b)| b.as_array().cloned().unwrap_or_default())
        .collect();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    for e in &events {
        assert_eq!(e["emitter"], "lab-gw-1", "{e}");
        let ts = e["timestamp"].as_u64().unwrap();
        assert!(
            ts <= now_us && now_us - ts < 120_000_000,
            "timestamp in µs: {e}"
        );
        let text = e.to_string();
        assert!(
            !text.contains("a=ice-pwd") && !text.contains("a=crypto"),
            "{e}"
        );
    }
    assert!(events
        .iter()
        .any(|e| e["type"] == 256 && e["subtype"] == 1 && e["event"]["status"] == "started"));
    // The echo session's events, in order.
    let sid = events
        .iter()
        .find(|e| e["type"] == 1 && e["event"]["name"] == "created")
        .map(|e| e["session_id"].clone())
        .expect("session created");
    let mine: Vec<String> = events
        .iter()
        .filter(|e| e["session_id"] == sid)
        .map(|e| {
            let ev = &e["event"];
            match e["type"].as_u64().unwrap() {
                1 => format!("session {}", ev["name"].as_str().unwrap()),
                2 => format!(
                    "handle {} {}",
                    ev["name"].as_str().unwrap(),
                    ev["plugin"].as_str().unwrap()
                ),
                8 => format!(
                    "jsep {} {}",
                    ev["owner"].as_str().unwrap(),
                    ev["jsep"]["type"].as_str().unwrap()
                ),
                16 => format!("webrtc {}", e["subtype"]),
                32 => "media".to_owned(),
                64 => format!("plugin {}", ev["plugin"].as_str().unwrap()),
                t => format!("type {t}"),
            }
        })
        .collect();
    println!("echo session events: {mine:?}");
    let at = |what: &str| {
        mine.iter()
            .position(|m| m == what)
            .unwrap_or_else(|| panic!("no {what} in {mine:?}"))
    };
    let order = [
        "session created",
        "handle attached janus.plugin.echotest",
        "jsep remote offer",
        "jsep local answer",
        "webrtc 1",
        "webrtc 5",
        "webrtc 6",
        "handle detached janus.plugin.echotest",
        "session destroyed",
    ];
    for w in order.windows(2) {
        assert!(at(w[0]) < at(w[1]), "{} before {}: {mine:?}", w[0], w[1]);
    }
    assert!(
        mine.iter().any(|m| m == "plugin janus.plugin.echotest"),
        "{mine:?}"
    );
    // The same events on NATS (one message each).
    let deadline = Instant::now() + Duration::from_secs(5);
    while from_nats.lock().unwrap().len() < events.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let on_nats = from_nats.lock().unwrap().clone();
    assert_eq!(
        on_nats.len(),
        events.len(),
        "NATS got {} events, the webhook {}",
        on_nats.len(),
        events.len()
    );
    let key = |e: &Value| {
        (
            e["type"].clone(),
            e["subtype"].clone(),
            e["session_id"].clone(),
            e["timestamp"].clone(),
        )
    };
    let mut a: Vec<_> = on_nats
        .iter()
        .map(key)
        .map(|k| k.to_owned())
        .map(|k| format!("{k:?}"))
        .collect();
    let mut b: Vec<_> = events.iter().map(key).map(|k| format!("{k:?}")).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same events on both");

    // The webhook goes away: events are retried, then dropped and counted; the gateway
    // answers as before.
    hook_task.abort();
    hook_up.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dropped_before = metric(&gw, "cardea_events_dropped_total", "webhook:0").await;
    let start = Instant::now();
    for _ in 0..20 {
        let r = janus(
            &gw,
            cardea::api::Target::default(),
            json!({"janus": "create", "transaction": "t"}),
        );
        assert_eq!(r["janus"], "success", "{r}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the gateway slowed down: {:?}",
        start.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut dropped = dropped_before;
    while dropped <= dropped_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        dropped = metric(&gw, "cardea_events_dropped_total", "webhook:0").await;
    }
    let failures = metric(&gw, "cardea_events_failures_total", "webhook:0").await;
    println!(
        "dead webhook: dropped {dropped_before} -> {dropped}, failures {failures}, sent {}, queued {}",
        metric(&gw, "cardea_events_sent_total", "webhook:0").await,
        metric(&gw, "cardea_events_queued", "webhook:0").await
    );
    assert!(
        dropped >= dropped_before + 20.0,
        "events not dropped: {dropped_before} -> {dropped}"
    );
    assert!(failures >= 2.0, "not retried: {failures} failures");
    // NATS got them all the same.
    assert!(metric(&gw, "cardea_events_sent_total", "nats").await >= (events.len() + 20) as f64);
    gw.shutdown().await;
    nats_task.abort();
    let _ = nats.kill().await;
}
