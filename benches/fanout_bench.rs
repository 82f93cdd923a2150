//! Fan-out: one camera-shaped RTP source to N WebRTC viewers over real loopback UDP.
//! Prints, for each shard count and N: gateway CPU per viewer and viewers per core,
//! gateway memory per viewer, packet loss, added latency (source packet sent → SRTP
//! packet decrypted by the viewer; one viewer in 10 decrypts, the others count
//! datagrams) p50/p99, send system calls per datagram sent (the
//! gateway's own count of sendmsg calls: one per UDP GSO burst), and how long after its
//! `start` request each viewer got its first RTP packet (p50, and when the last of
//! them did: they all join at once). Asserts nothing.
//!
//! The gateway runs in this process; the source and the viewers (str0m clients, one
//! UDP socket each) run in a child process, so the gateway's CPU and RSS are its own.
//! With one shard on a machine of two cores or more the gateway is pinned to CPU 0 and
//! the viewers to CPU 1 (`taskset`), so "viewers per core" is one core's; with more
//! shards nothing is pinned and the viewers compete with the gateway for the cores.
//!
//! `cargo bench --bench fanout_bench -- [N ...] [--shards 1,2] [--profile 720p|burst|steady]`
//! (defaults: N = 100 300 600 1000, shards 1 and 2, 720p).
#![allow(clippy::disallowed_methods)] // a bench measures wall time

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::Value;

mod common;
use common::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--viewers") {
        return viewers_process(&args[2..], Some(WINDOW));
    }
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let shard_counts: Vec<usize> = option("--shards")
        .map(|v| v.split(',').filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2]);
    let profile = option("--profile")
        .map(|p| Profile::parse(p).expect("--profile 720p, burst or steady"))
        .unwrap_or(Profile::Hd);
    let mut counts: Vec<usize> = Vec::new();
    let mut skip = false;
    for a in args.iter().skip(1) {
        if std::mem::take(&mut skip) {
            continue;
        }
        if a.starts_with("--") {
            skip = true;
        } else if let Ok(n) = a.parse() {
            counts.push(n);
        }
    }
    if counts.is_empty() {
        counts = vec![100, 300, 600, 1000];
    }

    println!(
        "fan-out of one source, {} (gateway: this process; viewers: a child process)",
        profile.describe()
    );
    println!(
        "{:>6} {:>6} {:>13} {:>9} {:>12} {:>8} {:>10} {:>10} {:>9} {:>15}",
        "N",
        "shards",
        "CPU/viewer",
        "viewers/",
        "RSS/viewer",
        "loss",
        "p50",
        "p99",
        "sends/",
        "first RTP"
    );
    println!(
        "{:>6} {:>6} {:>13} {:>9} {:>12} {:>8} {:>10} {:>10} {:>9} {:>15}",
        "", "", "", "core", "", "", "", "", "datagram", "p50 / all (ms)"
    );
    // A gateway of its own for each round: RSS grows from a fresh start.
    for (shards, &n) in shard_counts
        .iter()
        .flat_map(|s| counts.iter().map(move |n| (*s, n)))
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let (running, base, ports) =
            rt.block_on(gateway_with_mountpoint(shards, profile == Profile::Hd));
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let pinned = running.media_counters.len() == 1 && cores >= 2;
        let pin = |cpus: &str| {
            // Every thread of this process, the media shard's included.
            let _ = std::process::Command::new("taskset")
                .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
                .stdout(std::process::Stdio::null())
                // A thread that ends while taskset walks them is no matter.
                .stderr(std::process::Stdio::null())
                .status();
        };
        if pinned {
            pin("0");
        }
        {
            let sends = || -> (u64, u64, u64) {
                running
                    .media_counters
                    .iter()
                    .fold((0, 0, 0), |(c, d, t), m| {
                        (
                            c + m.send_calls.load(Ordering::Relaxed),
                            d + m.datagrams_out.load(Ordering::Relaxed),
                            t + m.peer_timeouts.load(Ordering::Relaxed),
                        )
                    })
            };
            let rss_before = rss_bytes();
            let (mut child, mut lines) =
                spawn_viewers_on(&base, n, ports, profile, pinned.then_some(1));
            let cpu0 = proc_cpu_seconds();
            let sends0 = sends();
            let t0 = Instant::now();
            child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
            let result: Value =
                serde_json::from_str(&lines.next().and_then(Result::ok).unwrap_or_default())
                    .unwrap();
            let cpu = proc_cpu_seconds() - cpu0;
            let elapsed = t0.elapsed().as_secs_f64();
            // After the window: str0m's per-peer history (3 s of packets) is full.
            let rss_viewers = rss_bytes();
            let sends1 = sends();
            let _ = child.wait();
            let per_viewer_ms = cpu / elapsed / n as f64 * 1000.0;
            // Viewers per core from the CPU each delivered packet cost (a saturated
            // gateway delivers less than N viewers' worth, and this shows it).
            let delivered = result["received"].as_f64().unwrap_or(0.0);
            let per_packet_us = cpu * 1e6 / delivered.max(1.0);
            let per_viewer_pps = result["sent_per_second"].as_f64().unwrap_or(f64::NAN);
            println!(
                "{:>6} {:>6} {:>8.3} ms/s {:>9.0} {:>8.1} KiB {:>7.3}% {:>7.2} ms {:>7.2} ms {:>9.3} {:>7} / {:<7}",
                n,
                running.media_counters.len(),
                per_viewer_ms,
                1e6 / (per_packet_us * per_viewer_pps),
                (rss_viewers.saturating_sub(rss_before)) as f64 / n as f64 / 1024.0,
                result["loss"].as_f64().unwrap_or(f64::NAN) * 100.0,
                result["p50_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
                result["p99_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
                (sends1.0 - sends0.0) as f64 / (sends1.1 - sends0.1).max(1) as f64,
                result["first_rtp_p50_ms"],
                result["first_rtp_max_ms"],
            );
            println!(
                "       (gateway CPU {:.1}% of one core, {:.2} µs per packet delivered; {} packets received by {} viewers; {:.1} str0m timeouts per viewer per second)",
                cpu / elapsed * 100.0,
                per_packet_us,
                result["received"],
                result["first_rtp_viewers"],
                (sends1.2 - sends0.2) as f64 / elapsed / n as f64,
            );
        }
        rt.block_on(running.shutdown());
        if pinned {
            pin(&format!("0-{}", cores - 1));
        }
    }
}
