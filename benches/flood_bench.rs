//! Flood: malformed traffic sprayed at a running gateway while 20 viewers watch a
//! 2 Mbit/s stream. Classes: STUN (unknown ufrags, broken attributes), DTLS records,
//! SRTP-looking packets from strangers (to the media socket), RTP injected into the
//! mountpoint's port, malformed SIP (to the SIP socket), and malformed Janus API
//! requests over HTTP. Prints, per class, datagrams (or requests) per second sent and
//! absorbed (sent minus what the kernel dropped at the socket, from /proc/net/udp),
//! the gateway's CPU during the spray, its RSS before and after, and the viewers' loss
//! over the whole spray (the target: 0, and RSS flat within 5 %). Asserts nothing.
//!
//! Three processes: the gateway (this one), the viewers with the source (a child,
//! as in fanout_bench), and the sprayer (another child), so the gateway's CPU and RSS
//! are its own. `cargo bench --bench flood_bench` (`-- 100000` sends that many
//! datagrams per class instead of 10^6; the API requests are a tenth of it).
#![allow(clippy::disallowed_methods)] // a bench measures wall time

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

mod common;
use common::*;

const VIEWERS: usize = 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--viewers") => return viewers_process(&args[2..], None),
        Some("--spray") => return spray(&args[2..]),
        _ => {}
    }
    let per_class: u64 = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (running, base, ports) = rt.block_on(gateway_with_mountpoint(0, false));
    let sip = running.sip.expect("SIP on");

    let (mut viewers, mut lines) = spawn_viewers(&base, VIEWERS, ports, Profile::Steady);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let rss0 = rss_bytes();
    let cpu0 = proc_cpu_seconds();
    viewers.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let t0 = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--spray",
            &running.udp.to_string(),
            &ports.video.to_string(),
            &sip.to_string(),
            &base,
            &per_class.to_string(),
        ])
        .output()
        .unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = proc_cpu_seconds() - cpu0;
    viewers
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"stop\n")
        .unwrap();
    let result: Value =
        serde_json::from_str(&lines.next().and_then(Result::ok).unwrap_or_default()).unwrap();
    let _ = viewers.wait();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let rss1 = rss_bytes();
    let sprayed: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);

    println!("flood at a running gateway while {VIEWERS} viewers watch a 2 Mbit/s stream ({elapsed:.1} s)");
    println!(
        "{:>22} {:>12} {:>14} {:>14}",
        "class", "sent", "sent/s", "absorbed/s"
    );
    for class in sprayed["classes"].as_array().into_iter().flatten() {
        let sent = class["sent"].as_f64().unwrap_or(0.0);
        let secs = class["seconds"].as_f64().unwrap_or(1.0).max(1e-6);
        let dropped = class["dropped"].as_f64().unwrap_or(0.0);
        println!(
            "{:>22} {:>12} {:>14.0} {:>14.0}",
            class["name"].as_str().unwrap_or("?"),
            sent,
            sent / secs,
            (sent - dropped).max(0.0) / secs,
        );
    }
    println!(
        "gateway CPU {:.0}% of one core during the spray; RSS {:.1} MiB before, {:.1} MiB after ({:+.1}%)",
        cpu / elapsed * 100.0,
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        (rss1 as f64 / rss0.max(1) as f64 - 1.0) * 100.0
    );
    println!(
        "viewers: {} packets received, loss {:.3}% over the spray",
        result["received"],
        result["loss"].as_f64().unwrap_or(f64::NAN) * 100.0
    );
    let status = rt.block_on(async {
        let admin = format!("http://{}/admin", running.admin_http.unwrap());
        post(
            &reqwest::Client::new(),
            &admin,
            json!({"janus": "get_status", "transaction": "s", "admin_secret": "janusoverlord"}),
        )
        .await
    });
    println!("gateway's own counters: {}", status["status"]["media"]);
    rt.block_on(running.shutdown());
}

/// Datagrams the kernel dropped at each local UDP port (receive buffer full), from
/// /proc/net/udp and udp6.
fn kernel_drops() -> std::collections::HashMap<u16, u64> {
    let mut out = std::collections::HashMap::new();
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(drops)) = (f.get(1), f.last()) else {
                continue;
            };
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if let (Some(port), Ok(d)) = (port, drops.parse::<u64>()) {
                *out.entry(port).or_default() += d;
            }
        }
    }
    out
}

/// The sprayer: each class in turn as fast as one socket sends, then the API requests
/// over 8 keep-alive connections. Prints one JSON line: per class its name, the port
/// it hit, how many it sent and in how many seconds.
fn spray(args: &[String]) {
    let media: SocketAddr = args[0].parse().unwrap();
    let rtp: SocketAddr = ([127, 0, 0, 1], args[1].parse().unwrap()).into();
    let sip: SocketAddr = args[2].parse().unwrap();
    let base = args[3].clone();
    let n: u64 = args[4].parse().unwrap();
    let mut classes = Vec::new();
    let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
    let mut run = |name: &str, to: SocketAddr, make: &dyn Fn(u64, &mut Vec<u8>)| {
        let mut buf = Vec::with_capacity(1500);
        let port_drops = || kernel_drops().get(&to.port()).copied().unwrap_or(0);
        let before = port_drops();
        let t = Instant::now();
        for i in 0..n {
            buf.clear();
            make(i, &mut buf);
            let _ = sock.send_to(&buf, to);
        }
        let seconds = t.elapsed().as_secs_f64();
        // What the socket still holds is read by then; the kernel's count is final.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let dropped = port_drops() - before;
        classes.push(json!({"name": name, "sent": n, "dropped": dropped, "seconds": seconds}));
    };
    run("STUN (unknown ufrag)", media, &|i, b| {
        // A binding request whose USERNAME names no peer, or whose length lies.
        b.extend_from_slice(&[0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42]);
        b.extend_from_slice(&i.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&[0x00, 0x06, 0x00, 0x09]);
        b.extend_from_slice(format!("{:04x}:abcd", i as u16).as_bytes());
        b.extend_from_slice(&[0; 3]);
        if i % 3 == 0 {
            b[3] = 0xff;
        }
    });
    run("DTLS (no peer)", media, &|i, b| {
        b.extend_from_slice(&[22, 0xfe, 0xfd, 0, 0]);
        b.extend_from_slice(&i.to_be_bytes()[2..]);
        b.extend_from_slice(&[0, 0x40]);
        b.extend(std::iter::repeat_n(i as u8, 64));
    });
    run("SRTP (stranger)", media, &|i, b| {
        b.extend_from_slice(&[0x80, 96]);
        b.extend_from_slice(&(i as u16).to_be_bytes());
        b.extend_from_slice(&(i as u32).to_be_bytes());
        b.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        b.extend(std::iter::repeat_n(0xAA, 160));
    });
    run("RTP into mountpoint", rtp, &|i, b| {
        // The mountpoint's payload type, another source: dropped as foreign.
        b.extend_from_slice(&[0x80, 96]);
        b.extend_from_slice(&(i as u16).to_be_bytes());
        b.extend_from_slice(&(i as u32 * 3000).to_be_bytes());
        b.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        b.extend(std::iter::repeat_n(0x41, 1000));
    });
    run("SIP (malformed)", sip, &|i, b| {
        let text = match i % 4 {
            0 => "INVITE sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2\r\n\r\n"
                .to_owned(),
            1 => format!("OPTIONS sip:x SIP/2.0\r\nContent-Length: {i}\r\n\r\n"),
            2 => "SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n".to_owned(),
            _ => format!("REGISTER \u{0}\u{1}{i}\r\n"),
        };
        b.extend_from_slice(text.as_bytes());
    });
    // Malformed Janus API requests over HTTP, 8 connections in parallel.
    let requests = (n / 10).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for w in 0..8u64 {
            let (client, base) = (client.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                for i in (w..requests).step_by(8) {
                    let body = match i % 5 {
                        0 => "{not json".to_owned(),
                        1 => json!({"janus": "message", "transaction": i, "body": "x"}).to_string(),
                        2 => json!({"janus": "attach", "plugin": "é".repeat(100), "transaction": "t"}).to_string(),
                        3 => json!({"janus": ["create"], "transaction": "t"}).to_string(),
                        _ => json!({"janus": "keepalive", "session_id": u64::MAX, "transaction": "t"}).to_string(),
                    };
                    let url = if i % 2 == 0 { base.clone() } else { format!("{base}/{}", i + 1) };
                    if let Ok(r) = client.post(url).body(body).send().await {
                        let _ = r.bytes().await;
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    classes.push(
        json!({"name": "Janus API (HTTP)", "sent": requests, "seconds": t.elapsed().as_secs_f64()}),
    );
    println!("{}", json!({ "classes": classes }));
}
