//! Fan-out: one 2 Mbit/s H.264 RTP source to N WebRTC viewers over real loopback UDP.
//! Prints, for N = 10, 100, 500: gateway CPU per viewer, gateway memory per viewer,
//! packet loss, and added latency (source packet sent → SRTP packet decrypted by the
//! viewer) p50/p99, and how long after its `start` request each viewer got its first RTP
//! packet (p50, and when the last of them did: they all join at once). Asserts nothing.
//!
//! The gateway runs in this process; the source and the viewers (str0m clients, one
//! UDP socket each) run in a child process, so the gateway's CPU and RSS are its own.
//! `cargo bench --bench fanout_bench` (add `-- 10 100` to pick N).
#![allow(clippy::disallowed_methods)] // a bench measures wall time

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--viewers") {
        return viewers_process(
            &args[2],
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
            Some(WINDOW),
        );
    }
    let counts: Vec<usize> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let counts = if counts.is_empty() {
        vec![10, 100, 500]
    } else {
        counts
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (running, base, port) = rt.block_on(gateway_with_mountpoint());
    println!("fan-out of one {} kbit/s H.264 RTP source (gateway: this process; viewers: a child process)", PACKETS_PER_SECOND * PAYLOAD as u64 * 8 / 1000);
    println!(
        "{:>6} {:>16} {:>16} {:>8} {:>10} {:>10}",
        "N", "CPU/viewer", "RSS/viewer", "loss", "p50", "p99"
    );
    for n in counts {
        let rss_before = rss_bytes();
        let (mut child, mut lines) = spawn_viewers(&base, n, port);
        let rss_viewers = rss_bytes();
        let cpu0 = proc_cpu_seconds();
        let t0 = Instant::now();
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        let result: Value =
            serde_json::from_str(&lines.next().and_then(Result::ok).unwrap_or_default()).unwrap();
        let cpu = proc_cpu_seconds() - cpu0;
        let elapsed = t0.elapsed().as_secs_f64();
        let _ = child.wait();
        println!(
            "{:>6} {:>13.3} ms/s {:>12.1} KiB {:>7.3}% {:>7.2} ms {:>7.2} ms",
            n,
            cpu / elapsed / n as f64 * 1000.0,
            (rss_viewers.saturating_sub(rss_before)) as f64 / n as f64 / 1024.0,
            result["loss"].as_f64().unwrap_or(f64::NAN) * 100.0,
            result["p50_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
            result["p99_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        );
        println!(
            "       (gateway CPU {:.1}% of one core for {n} viewers; {} packets received)",
            cpu / elapsed * 100.0,
            result["received"]
        );
        println!(
            "       (first RTP after `start`: p50 {} ms, all {} viewers within {} ms)",
            result["first_rtp_p50_ms"], result["first_rtp_viewers"], result["first_rtp_max_ms"]
        );
        // Let the gateway notice the viewers are gone before the next round.
        std::thread::sleep(Duration::from_secs(2));
    }
    rt.block_on(running.shutdown());
}
