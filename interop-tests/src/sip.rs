//! SIP peers for the tests: kamailio as registrar and proxy (interop-tests/sip/
//! kamailio.cfg, users alice/s3cret and bob/b0bpass), a bare OPTIONS probe, and the
//! plugin's events read from an in-process session.

#![allow(clippy::disallowed_methods)] // drives real peers in real time

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cardea::api::Target;
use cardea::Running;
use serde_json::Value;

/// A kamailio on 127.0.0.1:`port`, stopped (with its children) when dropped.
pub struct Kamailio {
    child: Child,
    /// Its UDP port.
    pub port: u16,
    _run_dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM lets the main process stop its worker children; SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts kamailio on a free UDP port and waits until it answers OPTIONS.
pub fn kamailio() -> anyhow::Result<Kamailio> {
    let port = crate::free_port();
    let run_dir =
        std::env::temp_dir().join(format!("cardea-kamailio-{port}-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir)?;
    let cfg = crate::workspace().join("interop-tests/sip/kamailio.cfg");
    let child = Command::new("kamailio")
        .args(["-DD", "-E", "-f"])
        .arg(&cfg)
        .args(["-l", &format!("udp:127.0.0.1:{port}")])
        .arg("-Y")
        .arg(&run_dir)
        .arg("-w")
        .arg(&run_dir)
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("KAMAILIO_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .context("starting kamailio (apt install kamailio)")?;
    let k = Kamailio {
        child,
        port,
        _run_dir: TempDir(run_dir),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if options(port, None)? == Some(200) {
            return Ok(k);
        }
    }
    bail!("kamailio did not answer OPTIONS on port {port}");
}

/// Sends an OPTIONS to kamailio (to `user`'s registered contact when given, which
/// kamailio forwards there); the final status code, or None after 1 s of silence.
pub fn options(port: u16, user: Option<&str>) -> anyhow::Result<Option<u16>> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(250)))?;
    let me = sock.local_addr()?;
    let target = match user {
        Some(u) => format!("sip:{u}@127.0.0.1:{port}"),
        None => format!("sip:127.0.0.1:{port}"),
    };
    let branch = format!("z9hG4bK{}", rand_token());
    let msg = format!(
        "OPTIONS {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag={tag}\r\nTo: <{target}>\r\n\
         Call-ID: {call}@{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        tag = rand_token(),
        call = rand_token()
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", port))?;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]);
        let code = text
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse::<u16>().ok());
        match code {
            Some(c) if c >= 200 => return Ok(Some(c)),
            _ => continue,
        }
    }
    Ok(None)
}

fn rand_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", t, N.fetch_add(1, Ordering::Relaxed))
}

/// A session with a handle attached to `janus.plugin.sip` on the in-process gateway.
pub struct SipHandle<'a> {
    running: &'a Running,
    /// The handle's address.
    pub target: Target,
}

impl<'a> SipHandle<'a> {
    /// Creates the session and attaches.
    pub fn attach(running: &'a Running) -> Self {
        SipHandle {
            running,
            target: crate::attach(running, "janus.plugin.sip"),
        }
    }

    /// Sends a message; returns the synchronous answer (an `ack`).
    pub fn send(&self, body: Value) -> Value {
        crate::message_on(self.running, self.target, body)
    }

    /// The plugin's next event (`plugindata.data`), waiting up to `limit`.
    pub async fn event(&self, limit: Duration) -> Option<Value> {
        let deadline = Instant::now() + limit;
        let sid = self.target.session.expect("session");
        while Instant::now() < deadline {
            let got = self
                .running
                .hub
                .with_gateway(|g, now| g.take_events(now, sid, &serde_json::Map::new(), 1));
            if let Ok(events) = got {
                if let Some(e) = events.into_iter().find(|e| e["janus"] == "event") {
                    return Some(e["plugindata"]["data"].clone());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// The next event's `result.event`, or the error, waiting up to `limit`.
    pub async fn expect_event(&self, limit: Duration) -> Value {
        self.event(limit)
            .await
            .unwrap_or_else(|| panic!("no SIP event within {limit:?}"))
    }
}
