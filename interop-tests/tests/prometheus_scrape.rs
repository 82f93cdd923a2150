//! A real Prometheus server (Debian's `prometheus`, started here on loopback) scrapes
//! the gateway's `/metrics`, with a bearer token, while headless Chromium watches the
//! demo mountpoint: its HTTP API shows the viewer gauge at 1 and the media counters
//! rising; `promtool check metrics` passes on the exposition; a scrape without the
//! token is refused; the gauge is back to 0 once the browser leaves.
#![allow(clippy::disallowed_methods)] // watches a real server in real time

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use interop_tests::{free_port, http_request, start_gateway_with};
use serde_json::Value;

const TOKEN: &str = "scrape-token-0f3a";

/// The single value of `query` (PromQL) in Prometheus at `prom`, if it has one yet.
async fn query(prom: SocketAddr, query: &str) -> anyhow::Result<Option<f64>> {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let r = http_request(
        prom,
        "GET",
        &format!("/api/v1/query?query={encoded}"),
        &[],
        b"",
    )
    .await?;
    let v: Value = serde_json::from_slice(&r.body).context("Prometheus answer")?;
    anyhow::ensure!(v["status"] == "success", "query {query}: {v}");
    let result = v["data"]["result"].as_array().context("result")?;
    Ok(match result.as_slice() {
        [one] => one["value"][1].as_str().and_then(|s| s.parse().ok()),
        _ => None,
    })
}

/// The gateway's exposition, scraped as Prometheus does.
async fn scrape(addr: SocketAddr) -> String {
    let auth = format!("Bearer {TOKEN}");
    let r = http_request(addr, "GET", "/metrics", &[("Authorization", &auth)], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    String::from_utf8(r.body).unwrap()
}

/// The value of the sample line starting with `series` (name and labels, as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_viewers_and_rising_packet_counters() {
    let gw = start_gateway_with(|c| c.metrics.token = TOKEN.into()).await;
    let metrics = gw.metrics.expect("metrics served");
    assert_eq!(Some(metrics), gw.admin_http, "served by the admin listener");

    // Refused without the token, with another (multibyte, 60 KB), or with the token not
    // as a bearer.
    let long = format!("Bearer {}", "x".repeat(60_000));
    for auth in [
        None,
        Some("Bearer nope"),
        Some(TOKEN),
        Some("Bearer \u{e9}"),
        Some(long.as_str()),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = http_request(metrics, "GET", "/metrics", &headers, b"")
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
    }

    // promtool's own checks (format and naming lint) on the exposition.
    let text = scrape(metrics).await;
    assert_eq!(
        sample(&text, "cardea_streaming_viewers{mountpoint=\"1\"}"),
        Some(0.0),
        "{text}"
    );
    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus) installed by scripts/test.sh");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = promtool.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).await.unwrap();
    }
    let out = promtool.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A Prometheus server scraping every second with the token.
    let dir = std::env::temp_dir().join(format!("cardea-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: cardea\n    scrape_interval: 1s\n    \
             authorization:\n      credentials: {TOKEN}\n    \
             static_configs:\n      - targets: ['{metrics}']\n"
        ),
    )
    .unwrap();
    let prom: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut server = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={prom}"))
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (Debian package) installed by scripts/test.sh");

    // The browser watches for 16 s; meanwhile Prometheus is asked what it scraped.
    let watch = interop_tests::chromium_watch(&gw, "ws", 1, 16);
    let observe = async {
        let start = Instant::now();
        let mut up = None;
        let mut watched_at = None;
        while start.elapsed() < Duration::from_secs(14) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if up != Some(1.0) {
                up = query(prom, "up{job=\"cardea\"}").await.ok().flatten();
            }
            let viewers = query(prom, "cardea_streaming_viewers{mountpoint=\"1\"}")
                .await
                .ok()
                .flatten();
            if viewers == Some(1.0) && watched_at.is_none() {
                watched_at = Some(Instant::now());
            }
            if watched_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
                break;
            }
        }
        let counters = [
            "cardea_media_bytes_out_total",
            "cardea_media_datagrams_out_total",
            "cardea_streaming_source_packets_total{mountpoint=\"1\"}",
        ];
        let mut first = Vec::new();
        for c in counters {
            first.push(query(prom, c).await.ok().flatten());
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut rising = Vec::new();
        for (c, before) in counters.iter().zip(first) {
            let after = query(prom, c).await.ok().flatten();
            rising.push((c.to_string(), before, after));
        }
        let viewers = query(prom, "cardea_streaming_viewers{mountpoint=\"1\"}")
            .await
            .ok()
            .flatten();
        (up, watched_at.is_some(), viewers, rising)
    };
    let (watched, (up, seen, viewers, rising)) = tokio::join!(watch, observe);
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    let watched = watched.unwrap();
    println!("prometheus: up {up:?}, viewers {viewers:?}, counters {rising:?}");
    interop_tests::assert_stream_watched(&watched);
    assert_eq!(
        up,
        Some(1.0),
        "Prometheus scraped the gateway with the token"
    );
    assert!(seen, "Prometheus never saw the viewer gauge at 1");
    assert_eq!(
        viewers,
        Some(1.0),
        "still watching after the counters were read"
    );
    for (c, before, after) in rising {
        let (Some(b), Some(a)) = (before, after) else {
            panic!("{c}: not in Prometheus ({before:?}, {after:?})");
        };
        assert!(a > b && b > 0.0, "{c} did not rise: {b} then {a}");
    }

    // The browser left: the gauge falls back to 0.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(metrics).await;
        let v = sample(&text, "cardea_streaming_viewers{mountpoint=\"1\"}");
        if v == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "viewers still {v:?}:\n{text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    gw.shutdown().await;
}
