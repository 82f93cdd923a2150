//! What the fan-out and flood benches share: the gateway's own CPU and RSS, the Janus
//! HTTP calls they make, an H.264-shaped RTP source stamping send times, and a process
//! of str0m viewers that watch a mountpoint and count what reaches them.
#![allow(dead_code)] // each bench uses its part

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use str0m::change::SdpOffer;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

pub(crate) const MOUNTPOINT: u64 = 77;
pub(crate) const PAYLOAD: usize = 1000;
/// 2 Mbit/s of 1000-byte payloads.
pub(crate) const PACKETS_PER_SECOND: u64 = 2_000_000 / 8 / PAYLOAD as u64;
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

pub(crate) fn proc_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name (in parentheses) come state, ppid, ...: utime is the
    // 12th field from there and stime the 13th (proc(5) fields 14 and 15), in ticks.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

pub(crate) fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
        * 4096
}

/// Starts this bench's binary as the viewers' process (`--viewers`, see
/// [`viewers_process`]) and waits for its `ready`; the child and its output lines.
pub(crate) fn spawn_viewers(
    base: &str,
    n: usize,
    ports: Ports,
    profile: Profile,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    spawn_viewers_on(base, n, ports, profile, None)
}

/// [`spawn_viewers`] with the child pinned to CPU `cpu` (`taskset`), when given.
pub(crate) fn spawn_viewers_on(
    base: &str,
    n: usize,
    ports: Ports,
    profile: Profile,
    cpu: Option<usize>,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let exe = std::env::current_exe().unwrap();
    let mut command = match cpu {
        Some(cpu) => {
            let mut c = std::process::Command::new("taskset");
            c.args(["-c", &cpu.to_string()]).arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    };
    let mut child = command
        .args([
            "--viewers",
            base,
            &n.to_string(),
            &ports.video.to_string(),
            &ports.audio.unwrap_or(0).to_string(),
            profile.name(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(ready, "ready", "viewers process failed to start");
    (child, lines)
}

/// What the source sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// 2 Mbit/s of H.264-shaped RTP, packets evenly spaced (250/s, 1000-byte payloads).
    Steady,
    /// The same, each frame's 8 packets back to back, as cameras send them.
    Burst,
    /// 720p30-shaped H.264 at ≈ 1.5 Mbit/s in bursts (a 25-packet keyframe every 2 s,
    /// 5 packets per other frame, 1150-byte payloads) plus Opus (50/s, 160 bytes).
    Hd,
}

impl Profile {
    pub(crate) fn parse(s: &str) -> Option<Profile> {
        match s {
            "steady" => Some(Profile::Steady),
            "burst" => Some(Profile::Burst),
            "720p" => Some(Profile::Hd),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Profile::Steady => "steady",
            Profile::Burst => "burst",
            Profile::Hd => "720p",
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Profile::Steady => "2 Mbit/s H.264-shaped RTP, 250 packets/s evenly spaced",
            Profile::Burst => "2 Mbit/s H.264-shaped RTP, each frame's 8 packets back to back",
            Profile::Hd => {
                "720p30-shaped H.264 ≈ 1.5 Mbit/s in frame bursts (160 packets/s) + Opus 50 packets/s"
            }
        }
    }
}

/// The mountpoint's RTP ports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) video: u16,
    pub(crate) audio: Option<u16>,
}

/// A gateway on loopback with RTP mountpoint [`MOUNTPOINT`] (H.264, pt 96; with
/// `audio`, Opus too, pt 111) and `shards` media shards (0: one per core): the gateway,
/// its API's base URL and the mountpoint's RTP ports.
pub(crate) async fn gateway_with_mountpoint(
    shards: usize,
    audio: bool,
) -> (cardea::Running, String, Ports) {
    let mut config = cardea::Config::default().on_loopback_ephemeral_ports();
    config.media.shards = shards;
    config.streaming.mountpoints.clear();
    // The bench creates its mountpoint through the API.
    config.streaming.open_admin = true;
    // Every viewer comes from 127.0.0.1: the per-client bounds (issue 12) would refuse
    // the 201st session and the 257th connection.
    config.general.max_sessions_per_client = 100_000;
    config.http.max_connections_per_client = 100_000;
    config.http.max_connections = 100_000;
    config.web.enabled = false;
    // CARDEA_BENCH_FULL_ICE=1 compares with full ICE (the default is ICE-lite).
    if std::env::var_os("CARDEA_BENCH_FULL_ICE").is_some() {
        config.media.ice_lite = false;
    }
    let running = cardea::start(config, cardea::StartOptions::default())
        .await
        .unwrap();
    let base = format!("http://{}/janus", running.http.unwrap());
    let client = reqwest::Client::new();
    let (sid, hid) = attach(&client, &base).await;
    let mut media =
        vec![json!({"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": "h264"})];
    if audio {
        media.push(json!({"type": "audio", "mid": "a", "port": 0, "pt": 111, "codec": "opus"}));
    }
    let r = post(
        &client,
        &format!("{base}/{sid}/{hid}"),
        json!({"janus": "message", "transaction": "c",
        "body": {"request": "create", "type": "rtp", "id": MOUNTPOINT, "media": media}}),
    )
    .await;
    let port = |i: usize| {
        r["plugindata"]["data"]["stream"]["ports"][i]["port"]
            .as_u64()
            .map(|p| p as u16)
    };
    let ports = Ports {
        video: port(0).unwrap(),
        audio: if audio { port(1) } else { None },
    };
    (running, base, ports)
}

pub(crate) async fn post(client: &reqwest::Client, url: &str, body: Value) -> Value {
    client
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) async fn attach(client: &reqwest::Client, base: &str) -> (u64, u64) {
    let sid = post(client, base, json!({"janus": "create", "transaction": "c"})).await["data"]
        ["id"]
        .as_u64()
        .unwrap();
    let hid = post(
        client,
        &format!("{base}/{sid}"),
        json!({"janus": "attach", "plugin": "janus.plugin.streaming", "transaction": "a"}),
    )
    .await["data"]["id"]
        .as_u64()
        .unwrap();
    (sid, hid)
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

/// The source: H.264-shaped RTP (an IDR NAL header every 2 s so the gateway sees
/// keyframes), shaped by `profile`, each payload stamped with its send time.
pub(crate) fn source(ports: Ports, profile: Profile, sent: Arc<AtomicU64>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let video: SocketAddr = ([127, 0, 0, 1], ports.video).into();
    let audio = ports.audio.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    // (packets per frame but keyframes, keyframe packets, payload bytes, frame interval)
    let (per_frame, key_frame, payload, frame_interval) = match profile {
        Profile::Steady | Profile::Burst => (8, 8, PAYLOAD, Duration::from_millis(32)),
        Profile::Hd => (5, 25, 1150, Duration::from_secs(1) / 30),
    };
    let frames_per_keyframe =
        (2 * Duration::from_secs(1).as_micros() / frame_interval.as_micros()) as u64;
    let mut seq: u16 = 1;
    let (mut aseq, mut ats): (u16, u32) = (1, 0);
    let start = Instant::now();
    let mut next_audio = start;
    let mut pkt = vec![0u8; 12 + payload];
    let mut apkt = vec![0u8; 12 + 160];
    let stamp = |p: &mut [u8]| p[13..21].copy_from_slice(&now_nanos().to_be_bytes());
    for frame in 0u64.. {
        let keyframe = frame % frames_per_keyframe == 0;
        let count = if keyframe { key_frame } else { per_frame };
        let ts = (frame as u32).wrapping_mul(90_000 / 30);
        let frame_start = start + frame_interval * frame as u32;
        for i in 0..count {
            if profile == Profile::Steady {
                let at = frame_start + frame_interval * i / count;
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
            pkt[0] = 0x80;
            pkt[1] = 96 | if i + 1 == count { 0x80 } else { 0 };
            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
            pkt[4..8].copy_from_slice(&ts.to_be_bytes());
            pkt[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
            pkt[12] = if keyframe && i == 0 { 0x65 } else { 0x41 };
            stamp(&mut pkt);
            let _ = sock.send_to(&pkt, video);
            sent.fetch_add(1, Ordering::Relaxed);
            seq = seq.wrapping_add(1);
        }
        let next = frame_start + frame_interval;
        // Opus every 20 ms, between frames.
        while let Some(dst) = audio {
            if next_audio >= next {
                break;
            }
            std::thread::sleep(next_audio.saturating_duration_since(Instant::now()));
            apkt[0] = 0x80;
            apkt[1] = 111;
            apkt[2..4].copy_from_slice(&aseq.to_be_bytes());
            apkt[4..8].copy_from_slice(&ats.to_be_bytes());
            apkt[8..12].copy_from_slice(&0x8765_4321u32.to_be_bytes());
            apkt[12] = 0x78;
            stamp(&mut apkt);
            let _ = sock.send_to(&apkt, dst);
            sent.fetch_add(1, Ordering::Relaxed);
            aseq = aseq.wrapping_add(1);
            ats = ats.wrapping_add(960);
            next_audio += Duration::from_millis(20);
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

#[derive(Default)]
pub(crate) struct Tally {
    received: u64,
    latencies_us: Vec<u32>,
    /// Per viewer, ms from its `start` request going out to its first RTP packet.
    first_rtp_ms: Vec<u32>,
}

/// `n` viewers of mountpoint [`MOUNTPOINT`] and its source on `port`. Prints `ready`
/// once all receive, waits for a line on stdin, measures for `window` (or until a
/// second line, `None`), then prints the result as one JSON line.
/// `args`: base URL, N, video port, audio port (0: none), profile name.
pub(crate) fn viewers_process(args: &[String], window: Option<Duration>) {
    let base = args[0].as_str();
    let n: usize = args[1].parse().unwrap();
    let ports = Ports {
        video: args[2].parse().unwrap(),
        audio: args[3].parse().ok().filter(|p| *p != 0),
    };
    let profile = Profile::parse(&args[4]).unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    {
        let sent = sent.clone();
        std::thread::spawn(move || source(ports, profile, sent));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut joined = Vec::new();
        for i in 0..n {
            joined.push(tokio::spawn(viewer(
                client.clone(),
                base.to_owned(),
                tally.clone(),
                measuring.clone(),
                i % FULL_VIEWER_EVERY == 0,
            )));
        }
        for j in joined {
            j.await.unwrap();
        }
        // Everyone is receiving.
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let mut first = std::mem::take(&mut tally.lock().unwrap().first_rtp_ms);
    first.sort_unstable();
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let (s0, r0) = (sent.load(Ordering::Relaxed), tally.lock().unwrap().received);
    tally.lock().unwrap().latencies_us.clear();
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    match window {
        Some(w) => std::thread::sleep(w),
        None => {
            let _ = std::io::stdin().read_line(&mut line);
        }
    }
    measuring.store(false, Ordering::Relaxed);
    let (s1, r1) = (sent.load(Ordering::Relaxed), tally.lock().unwrap().received);
    let measured = t0.elapsed().as_secs_f64();
    let mut lat = std::mem::take(&mut tally.lock().unwrap().latencies_us);
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let expected = (s1 - s0) * n as u64;
    let got = r1 - r0;
    println!(
        "{}",
        json!({"received": got, "loss": 1.0 - got as f64 / expected.max(1) as f64,
               "sent_per_second": (s1 - s0) as f64 / measured,
               "p50_us": pct(0.50), "p99_us": pct(0.99),
               "first_rtp_p50_ms": first.get(first.len() / 2), "first_rtp_max_ms": first.last(),
               "first_rtp_viewers": first.len()})
    );
}

/// One viewer in this many decrypts its media (and samples latency); the others count
/// SRTP datagrams as they arrive and give str0m only STUN, DTLS and RTCP, so the
/// viewers' process (on the same machine) stays light enough not to be what limits.
/// With no RTP reaching their str0m they send no NACKs nor transport-wide feedback.
pub(crate) const FULL_VIEWER_EVERY: usize = 10;

/// One viewer: watch over the Janus HTTP API, answer with a str0m client, count packets.
pub(crate) async fn viewer(
    client: reqwest::Client,
    base: String,
    tally: Arc<Mutex<Tally>>,
    measuring: Arc<std::sync::atomic::AtomicBool>,
    full: bool,
) {
    let (sid, hid) = attach(&client, &base).await;
    let h = format!("{base}/{sid}/{hid}");
    post(&client, &h, json!({"janus": "message", "transaction": "w", "body": {"request": "watch", "id": MOUNTPOINT}})).await;
    let offer = loop {
        let evs: Value = client
            .get(format!("{base}/{sid}?maxev=10"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(sdp) = evs.as_array().and_then(|a| {
            a.iter()
                .find_map(|e| e["jsep"]["sdp"].as_str().map(str::to_owned))
        }) {
            break sdp;
        }
    };
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtc = Rtc::builder().set_rtp_mode(true).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let answer = rtc
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&offer).unwrap())
        .unwrap();
    let started = Instant::now();
    post(
        &client,
        &h,
        json!({"janus": "message", "transaction": "s", "body": {"request": "start"},
                             "jsep": {"type": "answer", "sdp": answer.to_sdp_string()}}),
    )
    .await;
    tokio::spawn(async move {
        let mut first = true;
        let mut buf = vec![0u8; 2048];
        loop {
            let timeout = loop {
                match rtc.poll_output() {
                    Ok(Output::Transmit(t)) => {
                        let _ = socket.try_send_to(&t.contents, t.destination);
                    }
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Event(Event::RtpPacket(p))) => {
                        let mut t = tally.lock().unwrap();
                        t.received += 1;
                        if std::mem::take(&mut first) {
                            t.first_rtp_ms.push(started.elapsed().as_millis() as u32);
                        }
                        if measuring.load(Ordering::Relaxed) && p.payload.len() >= 9 {
                            let sent = u64::from_be_bytes(p.payload[1..9].try_into().unwrap());
                            t.latencies_us
                                .push((now_nanos().saturating_sub(sent) / 1000) as u32);
                        }
                    }
                    Ok(Output::Event(_)) => {}
                    Err(_) => return,
                }
            };
            let wait = timeout.saturating_duration_since(Instant::now());
            tokio::select! {
                r = socket.recv_from(&mut buf) => {
                    let Ok((n, source)) = r else { continue };
                    // RTP (not RTCP, RFC 5761: payload types 64-95 with the marker bit).
                    let rtp = n > 12 && (128..192).contains(&buf[0]) && !(192..224).contains(&buf[1]);
                    if rtp && !full {
                        let mut t = tally.lock().unwrap();
                        t.received += 1;
                        if std::mem::take(&mut first) {
                            t.first_rtp_ms.push(started.elapsed().as_millis() as u32);
                        }
                        continue;
                    }
                    let Ok(contents) = buf[..n].try_into() else { continue };
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents }));
                }
                _ = tokio::time::sleep(wait) => {
                    let _ = rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
        }
    });
}
