//! Control-plane figures: idle memory per session+handle, and
//! create+attach+detach+destroy cycles over HTTP and WebSocket, per second of wall time
//! and per second of the gateway's CPU. Prints figures; asserts nothing.
//!
//! The gateway runs in this process, the clients in a child process (this binary with
//! `--clients`), so the CPU counted is the gateway's alone.
//! `cargo bench --bench api_bench` (release build). Everything on 127.0.0.1.
#![allow(clippy::disallowed_methods)] // a bench measures wall time

use std::io::BufRead;
use std::time::{Duration, Instant};

use cardea::api::{Origin, Target};
use cardea::{Config, StartOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{proc_cpu_seconds, rss_bytes};

fn config() -> Config {
    let mut c = Config::default().on_loopback_ephemeral_ports();
    c.web.enabled = false;
    // Every session comes from 127.0.0.1 and there are 20,000 of them: the session and
    // connection bounds (issue 12) would refuse them.
    c.general.max_sessions = 100_000;
    c.general.max_sessions_per_client = 100_000;
    c.http.max_connections = 100_000;
    c.http.max_connections_per_client = 100_000;
    c
}

async fn http_cycles(base: String, cycles: usize) {
    let client = reqwest::Client::new();
    let post = |url: String, body: Value| {
        let client = client.clone();
        async move {
            client
                .post(url)
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    for _ in 0..cycles {
        let sid = post(base.clone(), json!({"janus": "create", "transaction": "c"})).await["data"]
            ["id"]
            .as_u64()
            .unwrap();
        let r = post(
            format!("{base}/{sid}"),
            json!({"janus": "attach", "plugin": "janus.plugin.echotest", "transaction": "a"}),
        )
        .await;
        assert_eq!(r["janus"], "success");
        let hid = r["data"]["id"].as_u64().unwrap();
        post(
            format!("{base}/{sid}/{hid}"),
            json!({"janus": "detach", "transaction": "x"}),
        )
        .await;
        post(
            format!("{base}/{sid}"),
            json!({"janus": "destroy", "transaction": "d"}),
        )
        .await;
    }
}

async fn ws_cycles(url: String, cycles: usize) {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "janus-protocol".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut call = async |v: Value| -> Value {
        ws.send(Message::Text(v.to_string().into())).await.unwrap();
        loop {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["transaction"].is_string() {
                    return v;
                }
            }
        }
    };
    for _ in 0..cycles {
        let sid = call(json!({"janus": "create", "transaction": "c"})).await["data"]["id"]
            .as_u64()
            .unwrap();
        let hid = call(json!({"janus": "attach", "session_id": sid, "plugin": "janus.plugin.echotest", "transaction": "a"})).await["data"]["id"]
            .as_u64()
            .unwrap();
        call(json!({"janus": "detach", "session_id": sid, "handle_id": hid, "transaction": "x"}))
            .await;
        call(json!({"janus": "destroy", "session_id": sid, "transaction": "d"})).await;
    }
}

/// The child: `--clients <HTTP|WebSocket> <url> <clients> <cycles each>`; waits for a
/// line on stdin, runs them all, prints the seconds it took.
async fn clients_process(args: &[String]) {
    let (name, url) = (args[0].clone(), args[1].clone());
    let clients: usize = args[2].parse().unwrap();
    let cycles: usize = args[3].parse().unwrap();
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        if name == "HTTP" {
            tasks.push(tokio::spawn(http_cycles(url.clone(), cycles)));
        } else {
            tasks.push(tokio::spawn(ws_cycles(url.clone(), cycles)));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "{}",
        t.elapsed().max(Duration::from_micros(1)).as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--clients") {
        return clients_process(&args[2..]).await;
    }
    let running = cardea::start(config(), StartOptions::default())
        .await
        .unwrap();

    // Idle memory: sessions with one echotest handle each, created through the core.
    const N: usize = 20_000;
    let before = rss_bytes();
    running.hub.with_gateway(|g, now| {
        for i in 0..N {
            let r = g.handle_request(now, Origin::HTTP, Some(Target::default()), br#"{"janus":"create","transaction":"c"}"#);
            let sid = r["data"]["id"].as_u64().unwrap();
            let t = Target { session: Some(cardea::api::SessionId(sid)), handle: None };
            let body = format!(r#"{{"janus":"attach","plugin":"janus.plugin.echotest","transaction":"a{i}","opaque_id":"bench-{i}"}}"#);
            g.handle_request(now, Origin::HTTP, Some(t), body.as_bytes());
        }
    });
    let after = rss_bytes();
    println!(
        "idle memory: {:.0} bytes per session with one handle ({N} sessions, RSS {:.1} -> {:.1} MiB)",
        (after.saturating_sub(before)) as f64 / N as f64,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    running.hub.with_gateway(|g, now| {
        for sid in g.handle_admin_request(
            now,
            Origin::HTTP,
            Some(Target::default()),
            br#"{"janus":"list_sessions","transaction":"l","admin_secret":"janusoverlord"}"#,
        )["sessions"]
            .as_array()
            .unwrap()
            .clone()
        {
            let t = Target {
                session: Some(cardea::api::SessionId(sid.as_u64().unwrap())),
                handle: None,
            };
            g.handle_request(
                now,
                Origin::HTTP,
                Some(t),
                br#"{"janus":"destroy","transaction":"d"}"#,
            );
        }
    });

    let base = format!("http://{}/janus", running.http.unwrap());
    let ws = format!("ws://{}/", running.ws.unwrap());
    for (name, clients) in [
        ("HTTP", 1usize),
        ("HTTP", 8),
        ("WebSocket", 1),
        ("WebSocket", 8),
    ] {
        let cycles = 2000 / clients;
        let url = if name == "HTTP" { &base } else { &ws };
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--clients",
                name,
                url,
                &clients.to_string(),
                &cycles.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));
        let cpu0 = proc_cpu_seconds();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"go\n").unwrap();
        let line = tokio::task::spawn_blocking(move || lines.next().and_then(Result::ok))
            .await
            .unwrap()
            .unwrap_or_default();
        let cpu = (proc_cpu_seconds() - cpu0).max(0.01);
        let _ = child.wait();
        let el: f64 = line.trim().parse().unwrap();
        let done = (clients * cycles) as f64;
        println!(
            "{name:9} {clients} client(s): {:.0} create+attach+detach+destroy cycles/s, {:.0} requests/s; {:.0} cycles per gateway CPU-second (gateway CPU {:.0}% of one core)",
            done / el,
            done * 4.0 / el,
            done / cpu,
            cpu / el * 100.0,
        );
    }
    running.shutdown().await;
}
