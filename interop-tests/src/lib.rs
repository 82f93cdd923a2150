//! Helpers for the interop tests: an in-process gateway on loopback, and the real
//! peers (Chromium running janus.js through playwright-core, aiortc) run as child
//! processes that print one JSON line of what they saw.
//!
//! These tests must run where loopback is the only network (the README's test
//! command runs them in a fresh network namespace), so no peer can reach beyond it.

pub mod docker;
pub mod netns;
pub mod sip;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use cardea::{Config, Running, StartOptions};
use serde_json::Value;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("interop-tests sits in the workspace")
        .to_owned()
}

/// Runs `cmd` to the end; its output, or an error naming `shown` (the command as one
/// would type it) with what it printed on stderr. `starting` says what failed when it
/// cannot start at all (say, which package to install).
pub fn checked_output(
    cmd: &mut std::process::Command,
    shown: &str,
    starting: &str,
) -> anyhow::Result<std::process::Output> {
    let out = cmd.output().context(starting.to_owned())?;
    if !out.status.success() {
        bail!("{shown}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

/// Panics unless loopback is the only network: the peers here gather every
/// interface, and traffic must stay on 127.0.0.0/8.
pub fn require_loopback_only() {
    let others: Vec<String> = if_addrs::get_if_addrs()
        .expect("listing interfaces")
        .into_iter()
        .filter(|i| !i.is_loopback())
        .map(|i| format!("{} {}", i.name, i.ip()))
        .collect();
    assert!(
        others.is_empty(),
        "interop tests must run with loopback as the only network; found {others:?}. \
         Run them through scripts/test.sh, which uses a fresh network namespace."
    );
}

/// Media shards the tests' gateways run (`CARDEA_TEST_SHARDS`, e.g. 1 to run every
/// interop test on one shard); unset: the default, one per core.
pub fn test_shards() -> Option<usize> {
    let n = std::env::var("CARDEA_TEST_SHARDS").ok()?;
    Some(n.parse().expect("CARDEA_TEST_SHARDS is a number of shards"))
}

/// Starts a gateway on 127.0.0.1 (every listener on port 0) with the demo page on.
pub async fn start_gateway() -> Running {
    start_gateway_with(|_| {}).await
}

/// [`start_gateway`] with `change` applied to its configuration first.
pub async fn start_gateway_with(change: impl FnOnce(&mut Config)) -> Running {
    require_loopback_only();
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let mut c = Config::default().on_loopback_ephemeral_ports();
    c.web.node_modules = workspace().join("web/node_modules");
    // The tests create cameras' mountpoints through the API, as Janus lets anyone do.
    c.streaming.open_admin = true;
    if let Some(n) = test_shards() {
        c.media.shards = n;
    }
    change(&mut c);
    cardea::start(c, StartOptions::default())
        .await
        .expect("gateway starts")
}

/// Runs a child that prints one JSON line last; returns that line parsed.
pub async fn run_json(mut cmd: tokio::process::Command, limit: Duration) -> anyhow::Result<Value> {
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .context("peer did not finish in time")?
        .context("starting the peer")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
        bail!(
            "peer printed no result (status {}):\n{stdout}\n{stderr}",
            out.status
        );
    };
    serde_json::from_str(line).with_context(|| format!("bad result line: {line}\n{stderr}"))
}

/// Opens the demo page in headless Chromium with `query` (plus the transport and
/// server), `mode` naming the page state to report ("echo" or "viewer").
async fn chromium_page(
    running: &Running,
    query: &str,
    transport: &str,
    mode: &str,
    seconds: u32,
) -> anyhow::Result<Value> {
    let http = running.http.context("HTTP listener")?;
    let ws = running.ws.context("WebSocket listener")?;
    let server = if transport == "ws" {
        format!("ws://{ws}/")
    } else {
        format!("http://{http}/janus")
    };
    let url = format!("http://{http}/lab?{query}&transport={transport}&server={server}");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(workspace().join("interop-tests/js/browser.mjs"))
        .arg(url)
        .arg(seconds.to_string())
        .arg(mode);
    run_json(cmd, Duration::from_secs(seconds as u64 + 60)).await
}

/// Runs the page's echo test (janus.js, fake camera and microphone) for `seconds`.
pub async fn chromium_echotest(
    running: &Running,
    transport: &str,
    seconds: u32,
) -> anyhow::Result<Value> {
    chromium_page(running, "autostart=1", transport, "echo", seconds).await
}

/// Watches mountpoint `id` in the page's streams view for `seconds`.
pub async fn chromium_watch(
    running: &Running,
    transport: &str,
    id: u64,
    seconds: u32,
) -> anyhow::Result<Value> {
    chromium_page(
        running,
        &format!("watch={id}"),
        transport,
        "viewer",
        seconds,
    )
    .await
}

/// Like [`chromium_watch`], but the page loads first and `watch` is sent only when
/// `go` resolves, so a test can pick the moment (say, just after a keyframe).
pub async fn chromium_watch_when(
    running: &Running,
    id: u64,
    seconds: u32,
    go: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Value> {
    use tokio::io::AsyncWriteExt;
    let http = running.http.context("HTTP listener")?;
    let url = format!("http://{http}/lab?transport=http&server=http://{http}/janus");
    let mut child = tokio::process::Command::new("node")
        .arg(workspace().join("interop-tests/js/browser.mjs"))
        .arg(url)
        .arg(seconds.to_string())
        .arg("viewer")
        .env("WATCH_ON_STDIN", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting node")?;
    let lines = page_ready(&mut child).await?;
    go.await;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(format!("{id}\n").as_bytes()).await?;
    drop(stdin);
    last_result(lines, seconds).await
}

/// Opens the camera wall at `/` in headless Chromium for `seconds`; `during` runs once
/// the page is up (say, stopping a camera), while the browser samples every tile twice
/// a second (`wall: [{ms, tiles: {id: {state, frames, audio, fps, width, height}}}]`).
/// `screenshot`: where to save the page as it looks at the end.
pub async fn chromium_wall(
    running: &Running,
    seconds: u32,
    screenshot: Option<&Path>,
    during: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Value> {
    let http = running.http.context("HTTP listener")?;
    let url = format!("http://{http}/?list_ms=1000&server=http://{http}/janus");
    chromium_wall_at(&url, seconds, screenshot, during).await
}

/// [`chromium_wall`] on the wall at `url` (a gateway elsewhere: the docker-compose lab).
pub async fn chromium_wall_at(
    url: &str,
    seconds: u32,
    screenshot: Option<&Path>,
    during: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Value> {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(workspace().join("interop-tests/js/browser.mjs"))
        .arg(url)
        .arg(seconds.to_string())
        .arg("wall")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(path) = screenshot {
        cmd.env("SCREENSHOT", path);
    }
    let mut child = cmd.spawn().context("starting node")?;
    let lines = page_ready(&mut child).await?;
    let (_, result) = tokio::join!(during, last_result(lines, seconds));
    result
}

/// Waits (60 s at most) for the browser driver's first line, `ready`: the page runs.
async fn page_ready(
    child: &mut tokio::process::Child,
) -> anyhow::Result<tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>> {
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("page not ready in 60 s")??;
    if ready.as_deref() != Some("ready") {
        bail!("unexpected first line from the browser: {ready:?}");
    }
    Ok(lines)
}

/// The browser driver's last JSON line (its result), read until it exits; it runs
/// `seconds`, given a minute more.
async fn last_result(
    mut lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    seconds: u32,
) -> anyhow::Result<Value> {
    let mut last = None;
    let read = async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with('{') {
                last = Some(line);
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(seconds as u64 + 60), read)
        .await
        .context("browser did not finish")??;
    let line = last.context("no result line from the browser")?;
    Ok(serde_json::from_str(&line)?)
}

/// What a user checks after the echo test: webrtcup, no errors, more than 60 video
/// frames decoded and 100 audio packets of their own media received.
pub fn assert_browser_echo(r: &Value) {
    assert_eq!(r["webrtcup"], true, "{r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    assert!(r["framesDecoded"].as_u64().unwrap_or(0) > 60, "{r}");
    assert!(r["audioPacketsReceived"].as_u64().unwrap_or(0) > 100, "{r}");
}

/// What a user checks when watching a 640x360 stream with sound for 10 s: webrtcup,
/// no errors, more than 100 frames decoded at the source's size, more than 200 audio packets.
pub fn assert_stream_watched(r: &Value) {
    assert_eq!(r["webrtcup"], true, "{r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    assert!(r["framesDecoded"].as_u64().unwrap_or(0) > 100, "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360)),
        "{r}"
    );
    assert!(r["audioPacketsReceived"].as_u64().unwrap_or(0) > 200, "{r}");
}

/// Runs the aiortc echo peer against the HTTP API for `seconds`.
pub async fn aiortc_echotest(running: &Running, seconds: u32) -> anyhow::Result<Value> {
    let http = running.http.context("HTTP listener")?;
    let python = std::env::var_os("CARDEA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("interop-tests/.venv/bin/python"));
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(workspace().join("interop-tests/py/echo_aiortc.py"))
        .arg(format!("http://{http}/janus"))
        .arg(seconds.to_string());
    run_json(cmd, Duration::from_secs(seconds as u64 + 60)).await
}

/// Sends one Janus request through the in-process gateway (as over HTTP).
pub fn janus(running: &Running, target: cardea::api::Target, body: Value) -> Value {
    running.hub.with_gateway(|g, now| {
        g.handle_request(
            now,
            cardea::api::Origin::HTTP,
            Some(target),
            body.to_string().as_bytes(),
        )
    })
}

/// Creates an RTP mountpoint through the streaming plugin; returns the `created`
/// answer's `stream` (with the bound ports).
pub fn create_rtp_mountpoint(running: &Running, id: u64, media: Value) -> Value {
    let data = streaming_request(
        running,
        serde_json::json!({"request": "create", "type": "rtp", "id": id, "description": "test feed", "media": media}),
    );
    assert_eq!(data["streaming"], "created", "{data}");
    data["stream"].clone()
}

/// The port a created mountpoint bound for `mid`.
pub fn port_of(stream: &Value, mid: &str) -> u16 {
    stream["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["mid"] == mid))
        .and_then(|p| p["port"].as_u64())
        .expect("a port for the mid") as u16
}

/// A GStreamer pipeline (gst-launch-1.0) that lives as long as the returned child.
pub fn gst_launch(pipeline: &str) -> tokio::process::Child {
    tokio::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 (scripts/test.sh installs it)")
}

/// A gst-rtsp-server camera (interop-tests/py/rtsp_camera.py, system python3 with
/// python3-gi) on `port`; resolves once it listens.
pub async fn rtsp_camera(port: u16, extra: &[&str]) -> anyhow::Result<tokio::process::Child> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new("/usr/bin/python3")
        .arg(workspace().join("interop-tests/py/rtsp_camera.py"))
        .arg(port.to_string())
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the RTSP camera")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await??;
    if first.as_deref() != Some("ready") {
        bail!("camera did not start: {first:?}");
    }
    Ok(child)
}

/// A plain HTTP/1.1 GET of `path` on `addr` (the gateway's pages and pictures, as a
/// browser's `<img>` would fetch them): the status code and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let r = http_request(addr, "GET", path, &[], b"").await?;
    Ok((r.status, r.body))
}

/// An HTTP answer: status, headers (names lower-cased), body (de-chunked).
#[derive(Debug)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with `headers`
/// and `body` (a `Content-Length` is added when the body is not empty).
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<HttpAnswer> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    s.write_all(body).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw)).await??;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_ascii_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("no status")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body).context("bad chunked body")?;
    }
    Ok(HttpAnswer {
        status,
        headers,
        body,
    })
}

/// A chunked transfer-coded body, decoded.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// The width and height in a JPEG's baseline frame header (SOF0), if it has one.
pub fn jpeg_size(jpeg: &[u8]) -> Option<(u16, u16)> {
    if !jpeg.starts_with(&[0xff, 0xd8]) || !jpeg.ends_with(&[0xff, 0xd9]) {
        return None;
    }
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0])?;
    let at = |i: usize| u16::from_be_bytes([jpeg[sof + i], jpeg[sof + i + 1]]);
    Some((at(7), at(5)))
}

/// A port free for both TCP and UDP a moment ago, for servers the tests start (SIP
/// user agents take both on one port). Taken below the kernel's ephemeral range, where
/// no socket bound to port 0 (the gateway's media shards, the tests' own clients) can
/// land on it between this check and the server's bind; successive calls in one process
/// walk the range from a point its pid sets, so parallel tests do not pick the same one,
/// 10 ports apart (handed consecutive SIP and console ports, baresip's calls broke:
/// its recording came out unreadable).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_240;
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    let free = |p: u16| {
        std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
    };
    if ephemeral_low > LOW + 1000 {
        let span = ephemeral_low - LOW;
        let start = std::process::id().wrapping_mul(7919) % span;
        for _ in 0..span {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = (LOW + (start + n * 10) % span) as u16;
            if free(port) {
                return port;
            }
        }
    }
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if free(port) {
            return port;
        }
    }
}

/// Sends a synchronous request to the streaming plugin; returns its answer.
pub fn streaming_request(running: &Running, body: Value) -> Value {
    let at_handle = attach(running, "janus.plugin.streaming");
    let r = message_on(running, at_handle, body);
    let at_session = cardea::api::Target {
        session: at_handle.session,
        handle: None,
    };
    janus(
        running,
        at_session,
        serde_json::json!({"janus": "destroy", "transaction": "d"}),
    );
    r["plugindata"]["data"].clone()
}

/// Creates a session on the in-process gateway and attaches a handle to `plugin`.
pub fn attach(running: &Running, plugin: &str) -> cardea::api::Target {
    use cardea::api::{HandleId, SessionId, Target};
    let sid = janus(
        running,
        Target::default(),
        serde_json::json!({"janus": "create", "transaction": "c"}),
    )["data"]["id"]
        .as_u64()
        .expect("session");
    let at_session = Target {
        session: Some(SessionId(sid)),
        handle: None,
    };
    let hid = janus(
        running,
        at_session,
        serde_json::json!({"janus": "attach", "plugin": plugin, "transaction": "a"}),
    )["data"]["id"]
        .as_u64()
        .expect("handle");
    Target {
        session: Some(SessionId(sid)),
        handle: Some(HandleId(hid)),
    }
}

/// The media counters from the admin API's `get_status`.
pub async fn media_counters(running: &Running) -> Value {
    running.hub.with_gateway(|g, now| {
        g.handle_admin_request(
            now,
            cardea::api::Origin::HTTP,
            Some(cardea::api::Target::default()),
            br#"{"janus":"get_status","transaction":"s","admin_secret":"janusoverlord"}"#,
        )
    })["status"]["media"]
        .clone()
}

/// An admin API request through the in-process gateway.
pub fn admin(running: &Running, target: cardea::api::Target, body: Value) -> Value {
    let mut body = body;
    body["admin_secret"] = serde_json::json!("janusoverlord");
    body["transaction"] = serde_json::json!("adm");
    running.hub.with_gateway(|g, now| {
        g.handle_admin_request(
            now,
            cardea::api::Origin::HTTP,
            Some(target),
            body.to_string().as_bytes(),
        )
    })
}

/// The handles (as request targets) of streaming viewers watching mountpoint `id`
/// right now, found through the admin API as an operator would.
pub fn viewers_of(running: &Running, id: u64) -> Vec<cardea::api::Target> {
    use cardea::api::{HandleId, SessionId, Target};
    let sessions = admin(
        running,
        Target::default(),
        serde_json::json!({"janus": "list_sessions"}),
    );
    let mut found = Vec::new();
    for sid in sessions["sessions"].as_array().into_iter().flatten() {
        let session = Some(SessionId(sid.as_u64().unwrap_or(0)));
        let at = Target {
            session,
            handle: None,
        };
        let handles = admin(running, at, serde_json::json!({"janus": "list_handles"}));
        for hid in handles["handles"].as_array().into_iter().flatten() {
            let t = Target {
                session,
                handle: Some(HandleId(hid.as_u64().unwrap_or(0))),
            };
            let info = admin(running, t, serde_json::json!({"janus": "handle_info"}));
            if info["info"]["plugin_specific"]["mountpoint"] == serde_json::json!(id) {
                found.push(t);
            }
        }
    }
    found
}

/// Waits (up to 10 s) for a viewer of mountpoint `id` to appear; returns its handle.
pub async fn first_viewer_of(running: &Running, id: u64) -> cardea::api::Target {
    for _ in 0..100 {
        if let Some(t) = viewers_of(running, id).into_iter().next() {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nobody watches mountpoint {id}");
}

/// The browser's frames kept coming at the end: more than 45 decoded over the last
/// six sample intervals (about 3 s; the sources send 30 fps).
pub fn assert_frames_go_on(r: &Value) {
    let samples = r["samples"].as_array().expect("samples");
    let frames = |s: &Value| s["frames"].as_u64().unwrap_or(0);
    let last = frames(samples.last().expect("a sample"));
    let three_s_before = frames(&samples[samples.len().saturating_sub(7)]);
    assert!(
        last > three_s_before + 45,
        "frames stopped coming: {samples:?}"
    );
}

/// Sends a streaming-plugin request on someone else's handle (a browser's), as a
/// Janus client could; returns the immediate answer (`ack` for asynchronous ones).
pub fn message_on(running: &Running, target: cardea::api::Target, body: Value) -> Value {
    janus(
        running,
        target,
        serde_json::json!({"janus": "message", "transaction": "ext", "body": body}),
    )
}

/// A VP8 RTP feed through GStreamer's rtpbin (interop-tests/py/rtp_feed.py) that
/// sends RTCP to `rtcp_port` and makes a keyframe when it receives a PLI; the
/// returned counter counts the keyframe requests its encoder saw.
pub async fn rtp_feed_with_rtcp(
    rtp_port: u16,
    rtcp_port: u16,
    width: u32,
    height: u32,
) -> anyhow::Result<(
    tokio::process::Child,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
)> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new("/usr/bin/python3")
        .arg(workspace().join("interop-tests/py/rtp_feed.py"))
        .args([rtp_port, rtcp_port].map(|p| p.to_string()))
        .args([width, height].map(|p| p.to_string()))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the RTP feed")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await??;
    if first.as_deref() != Some("ready") {
        bail!("feed did not start: {first:?}");
    }
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line == "keyframe requested" {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    Ok((child, requests))
}
