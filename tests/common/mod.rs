//! Test harness: a gateway on 127.0.0.1 port 0, an HTTP client and a WebSocket client.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use cardea::clock::{Clock, ManualClock};
use cardea::{Config, Running, StartOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct Gw {
    pub running: Running,
    pub base: String,
    pub admin: String,
    pub ws: String,
    pub admin_ws: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
}

/// A config with every listener on 127.0.0.1 port 0.
pub fn test_config() -> Config {
    let mut c = Config::default().on_loopback_ephemeral_ports();
    c.http.long_poll_seconds = 2;
    // The demo mountpoint would show in every `list`; streaming tests create their own.
    c.streaming.mountpoints.clear();
    // These tests check Janus's streaming API as Janus has it (anyone may create and
    // administer a mountpoint without a secret); tests/hostile_clients.rs checks the
    // safe default.
    c.streaming.open_admin = true;
    c.web.enabled = false;
    c
}

/// Starts a gateway with a manual clock, after `tweak` adjusts the test config.
pub async fn start(tweak: impl FnOnce(&mut Config)) -> Gw {
    start_with_file(tweak, None).await
}

/// As [`start`], telling the gateway `config_path` is its configuration file (where
/// the streaming plugin's `permanent` writes).
pub async fn start_with_file(
    tweak: impl FnOnce(&mut Config),
    config_path: Option<std::path::PathBuf>,
) -> Gw {
    let mut config = test_config();
    tweak(&mut config);
    let clock = Arc::new(ManualClock::new());
    let running = cardea::start(
        config,
        StartOptions {
            clock: clock.clone() as Arc<dyn Clock>,
            timer_tick: Duration::from_millis(20),
            log_control: None,
            config_path,
        },
    )
    .await
    .expect("gateway starts");
    Gw {
        base: format!("http://{}/janus", running.http.unwrap()),
        admin: format!("http://{}/admin", running.admin_http.unwrap()),
        ws: format!("ws://{}/", running.ws.unwrap()),
        admin_ws: format!("ws://{}/", running.admin_ws.unwrap()),
        client: reqwest::Client::new(),
        clock,
        running,
    }
}

impl Gw {
    /// POSTs JSON to `<base><path>` and returns the JSON reply.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.post_raw(&format!("{}{path}", self.base), &body.to_string())
            .await
            .1
    }

    /// POSTs JSON to `<admin><path>`.
    pub async fn admin_post(&self, path: &str, body: Value) -> Value {
        self.post_raw(&format!("{}{path}", self.admin), &body.to_string())
            .await
            .1
    }

    /// POSTs raw text to a full URL; returns the status and the JSON body.
    pub async fn post_raw(&self, url: &str, body: &str) -> (u16, Value) {
        let r = self
            .client
            .post(url)
            .body(body.to_owned())
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GETs `<base><path>`; returns the status and the body text.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn create_session(&self) -> u64 {
        let r = self
            .post("", json!({"janus": "create", "transaction": "c"}))
            .await;
        assert_eq!(r["janus"], "success", "{r}");
        r["data"]["id"].as_u64().unwrap()
    }

    pub async fn attach(&self, sid: u64) -> u64 {
        self.attach_plugin(sid, "janus.plugin.echotest").await
    }

    pub async fn attach_plugin(&self, sid: u64, plugin: &str) -> u64 {
        let r = self
            .post(
                &format!("/{sid}"),
                json!({"janus": "attach", "plugin": plugin, "transaction": "a"}),
            )
            .await;
        assert_eq!(r["janus"], "success", "{r}");
        r["data"]["id"].as_u64().unwrap()
    }

    /// One long poll; returns the parsed body.
    pub async fn poll(&self, sid: u64, maxev: usize) -> (u16, Value) {
        let (status, text) = self.get(&format!("/{sid}?maxev={maxev}")).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub async fn ws_connect(url: &str, protocol: &str) -> Ws {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (stream, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("WS connect");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        protocol
    );
    Ws { stream }
}

impl Ws {
    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, t: &str) {
        self.stream
            .send(Message::Text(t.to_owned().into()))
            .await
            .unwrap();
    }

    /// The next JSON message, or None after `wait` without one.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.stream.next())
                .await
                .ok()??;
            match msg.ok()? {
                Message::Text(t) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    pub async fn recv(&mut self) -> Value {
        self.recv_within(Duration::from_secs(5))
            .await
            .expect("a WebSocket message within 5 s")
    }

    /// Sends a request and returns the reply with the same transaction, keeping
    /// events that arrive first in `skipped`.
    pub async fn request(&mut self, v: Value) -> Value {
        let tx = v["transaction"].as_str().unwrap().to_owned();
        self.send(v).await;
        loop {
            let m = self.recv().await;
            if m["transaction"] == tx.as_str() && m["janus"] != "event" {
                return m;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// Waits until `f` is true, polling every 20 ms, for at most 5 s.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..250 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

pub fn error_code(v: &Value) -> u64 {
    assert_eq!(v["janus"], "error", "expected an error, got {v}");
    v["error"]["code"].as_u64().unwrap()
}

/// A real SDP offer as Chromium 156 made it for the echo test (audio + video).
pub fn chromium_offer() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/chromium_echotest_offer.sdp"
    ))
    .unwrap()
}
