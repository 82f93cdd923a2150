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

/// A kamailio on 127.0.0.1:`port` (UDP) and 127.0.0.1:`tcp_port` (TCP only: a
/// client that reaches it there uses TCP), stopped (with its children) when dropped.
pub struct Kamailio {
    child: Child,
    /// Its UDP port.
    pub port: u16,
    /// Its TCP port.
    pub tcp_port: u16,
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

/// Starts kamailio on a free UDP port and another TCP port; waits until it answers
/// OPTIONS.
pub fn kamailio() -> anyhow::Result<Kamailio> {
    let (port, tcp_port) = (crate::free_port(), crate::free_port());
    let run_dir =
        std::env::temp_dir().join(format!("cardea-kamailio-{port}-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir)?;
    let cfg = crate::workspace().join("interop-tests/sip/kamailio.cfg");
    let child = Command::new("kamailio")
        .args(["-DD", "-E", "-f"])
        .arg(&cfg)
        .args(["-l", &format!("udp:127.0.0.1:{port}")])
        .args(["-l", &format!("tcp:127.0.0.1:{tcp_port}")])
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
        tcp_port,
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
    options_to(std::net::SocketAddr::from(([127, 0, 0, 1], port)), user)
}

/// [`options`] to the registrar at `registrar` (the docker-compose lab's kamailio).
pub fn options_to(
    registrar: std::net::SocketAddr,
    user: Option<&str>,
) -> anyhow::Result<Option<u16>> {
    let sock = UdpSocket::bind(("0.0.0.0", 0))?;
    // Connected: the local address is the one the registrar sees (our Via).
    sock.connect(registrar)?;
    sock.set_read_timeout(Some(Duration::from_millis(250)))?;
    let me = sock.local_addr()?;
    let target = match user {
        Some(u) => format!("sip:{u}@{registrar}"),
        None => format!("sip:{registrar}"),
    };
    let branch = format!("z9hG4bK{}", rand_token());
    let msg = format!(
        "OPTIONS {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag={tag}\r\nTo: <{target}>\r\n\
         Call-ID: {call}@{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        tag = rand_token(),
        call = rand_token()
    );
    sock.send(msg.as_bytes())?;
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

/// A child process stopped with SIGTERM (then SIGKILL) when dropped: sipp, tcpdump.
pub struct Peer {
    child: Child,
    name: &'static str,
    /// What it still has to say on stderr (tcpdump: its packet counts on exit).
    stderr: Option<std::io::BufReader<std::process::ChildStderr>>,
}

impl Peer {
    /// Waits up to `limit` for it to exit by itself; its exit code.
    pub fn wait(&mut self, limit: Duration) -> anyhow::Result<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{} still running after {limit:?}", self.name)
    }

    /// Asks it to stop (SIGINT: tcpdump flushes its file) and waits for it; prints
    /// what it said on stderr meanwhile (tcpdump: packets captured and dropped by the
    /// kernel, shown beside a failing test's output).
    pub fn interrupt(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.wait(Duration::from_secs(5));
        if let Some(mut err) = self.stderr.take() {
            let mut said = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut said);
            eprintln!("{}: {}", self.name, said.trim().replace('\n', "; "));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.wait(Duration::from_secs(3));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs sipp with `args` (scenario, addresses…), quietly unless SIPP_LOG is set;
/// its trace files go to `dir`.
pub fn sipp(args: &[&str], dir: &std::path::Path) -> anyhow::Result<Peer> {
    let verbose = std::env::var_os("SIPP_LOG").is_some();
    let child = Command::new("sipp")
        .args(args)
        .args(["-nostdin", "-trace_err", "-trace_msg"])
        .current_dir(dir)
        .stdout(if verbose {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stderr(if verbose {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .context("starting sipp (apt install sip-tester)")?;
    Ok(Peer {
        child,
        name: "sipp",
        stderr: None,
    })
}

/// Captures UDP and TCP on loopback into `file` until interrupted.
pub fn capture(file: &std::path::Path) -> anyhow::Result<Peer> {
    use std::io::BufRead;
    let mut child = Command::new("tcpdump")
        // Immediate mode: packets reach the file as they come, not a buffer's worth
        // later (those still buffered when it is interrupted would be lost).
        .args(["-i", "lo", "-n", "-U", "--immediate-mode", "-s", "0"])
        // In immediate mode the kernel hands over a ring block per millisecond with
        // traffic; the default 2 MiB ring is a few dozen blocks, so a busy two-core
        // machine that leaves tcpdump unscheduled for that long loses packets (a call's
        // whole INVITE transaction once). 64 MiB rides out stalls of a second.
        .args(["-B", "65536", "-w"])
        .arg(file)
        .args(["udp", "or", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting tcpdump (apt install tcpdump)")?;
    let mut stderr = std::io::BufReader::new(child.stderr.take().context("tcpdump stderr")?);
    let mut line = String::new();
    stderr.read_line(&mut line)?;
    if !line.contains("listening") {
        bail!("tcpdump did not start: {line}");
    }
    Ok(Peer {
        child,
        name: "tcpdump",
        stderr: Some(stderr),
    })
}

/// What a loopback capture shows of the RTP sent to `port` (see py/sip_media.py).
pub fn analyze_capture(file: &std::path::Path, port: u16) -> anyhow::Result<Value> {
    let out = Command::new("python3")
        .arg(crate::workspace().join("interop-tests/py/sip_media.py"))
        .arg("analyze")
        .arg(file)
        .args(["--port", &port.to_string()])
        .output()?;
    if !out.status.success() {
        bail!("analyze failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Runs py/sip_media.py to make a tone file (`wav` or `pcap`) at `freq` Hz.
pub fn tone_file(kind: &str, freq: u32, file: &std::path::Path) -> anyhow::Result<()> {
    let st = Command::new("python3")
        .arg(crate::workspace().join("interop-tests/py/sip_media.py"))
        .arg(kind)
        .args(["--freq", &freq.to_string(), "--out"])
        .arg(file)
        .status()?;
    if !st.success() {
        bail!("sip_media.py {kind} failed");
    }
    Ok(())
}

/// A scratch directory removed when dropped.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    /// A new empty directory under the system's temp dir.
    pub fn new(name: &str) -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "cardea-{name}-{}-{}",
            std::process::id(),
            rand_token()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens the page's phone view in headless Chromium (`query` drives it, e.g.
/// `user=…&secret=…&call=…`), with `wav` as the microphone; runs `on_registered`
/// once the page reports the registration, and returns what the page saw after
/// `seconds` or shortly after the call hung up.
pub async fn chromium_phone<F: std::future::Future<Output = ()>>(
    running: &Running,
    query: &str,
    wav: &std::path::Path,
    seconds: u32,
    on_registered: F,
) -> anyhow::Result<Value> {
    let http = running.http.context("HTTP listener")?;
    let url =
        format!("http://{http}/lab?phone=1&{query}&transport=http&server=http://{http}/janus");
    chromium_phone_at(&url, wav, seconds, on_registered).await
}

/// [`chromium_phone`] on the page at `url` (a gateway elsewhere: the docker-compose lab).
pub async fn chromium_phone_at<F: std::future::Future<Output = ()>>(
    url: &str,
    wav: &std::path::Path,
    seconds: u32,
    on_registered: F,
) -> anyhow::Result<Value> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new("node")
        .arg(crate::workspace().join("interop-tests/js/browser.mjs"))
        .arg(url)
        .arg(seconds.to_string())
        .arg("phone")
        .env("FAKE_AUDIO", wav)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting node")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut last = None;
    let read = async {
        let mut on_registered = std::pin::pin!(on_registered);
        let mut registered = false;
        loop {
            tokio::select! {
                line = lines.next_line() => match line? {
                    Some(l) if l == "registered" => registered = true,
                    Some(l) if l.starts_with('{') => last = Some(l),
                    Some(_) => {}
                    None => break,
                },
                _ = &mut on_registered, if registered => registered = false,
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

/// Two free consecutive UDP ports on loopback, the first even (an RTP/RTCP pair).
pub fn free_rtp_pair() -> u16 {
    loop {
        let a = UdpSocket::bind("127.0.0.1:0").expect("a free port");
        let p = a.local_addr().expect("address").port();
        if p.is_multiple_of(2) && p < u16::MAX && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// A baresip user agent (Debian's baresip 1.0) on loopback: a sine tone as its
/// microphone, what it decodes recorded to a wav (the `sndfile` module), calls
/// answered automatically, commands through its UDP console, alice (at the same
/// registrar) as its one contact (`/message …` writes to her). Stopped when dropped.
pub struct Baresip {
    _peer: Peer,
    dir: std::path::PathBuf,
    cons_port: u16,
    /// Its SIP port (UDP).
    pub sip_port: u16,
    /// The one RTP port it may use (RTCP on the next).
    pub rtp_port: u16,
}

impl Baresip {
    /// Starts baresip in `dir` (its config, log and recordings go there) for
    /// `user`/`password` at the kamailio on `registrar`, sending a `tone_hz` sine;
    /// `dial` is a SIP URI it calls as soon as it is up; `account` adds parameters to
    /// its account line: `;audio_codecs=G722/16000/1,PCMU` (baresip's own names and
    /// rates) narrows what it offers and accepts, else Opus, G.722, PCMU and PCMA in
    /// that order; `;mediaenc=srtp-mand` makes its media SDES-SRTP only (RTP/SAVP).
    pub fn start(
        dir: &std::path::Path,
        user: &str,
        password: &str,
        registrar: u16,
        tone_hz: u32,
        dial: Option<&str>,
        account: &str,
    ) -> anyhow::Result<Baresip> {
        let dir = dir.join(format!("baresip-{user}"));
        std::fs::create_dir_all(dir.join("snd"))?;
        let (sip_port, cons_port, rtp_port) =
            (crate::free_port(), crate::free_port(), free_rtp_pair());
        // Codecs in baresip's own order of preference (Opus first) unless `account`
        // narrows them (`;audio_codecs=…`): the gateway has to pick its own out of a
        // real multi-codec offer. srtp.so is loaded; `;mediaenc=srtp-mand` uses it.
        let config = format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:{sip_port}\n\
             net_interface 127.0.0.1\n\
             call_local_timeout 120\n\
             call_max_calls 4\n\
             audio_source ausine,{tone_hz}\n\
             ausrc_srate 48000\n\
             ausrc_channels 2\n\
             audio_player alsa,null\n\
             audio_alert alsa,null\n\
             audio_buffer 20-160\n\
             rtp_ports {rtp_port}-{rtcp}\n\
             rtcp_mux no\n\
             jitter_buffer_delay 5-10\n\
             module_path /usr/lib/baresip/modules\n\
             module opus.so\n\
             module g722.so\n\
             module g711.so\n\
             module ausine.so\n\
             module srtp.so\n\
             module alsa.so\n\
             module sndfile.so\n\
             module cons.so\n\
             module_tmp account.so\n\
             module_app menu.so\n\
             module_app contact.so\n\
             cons_listen 127.0.0.1:{cons_port}\n\
             snd_path {snd}\n",
            rtcp = rtp_port + 1,
            snd = dir.join("snd").display(),
        );
        std::fs::write(dir.join("config"), config)?;
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@127.0.0.1:{registrar}>;auth_pass={password};answermode=auto{account}\n"
            ),
        )?;
        std::fs::write(
            dir.join("contacts"),
            format!("\"Alice\" <sip:alice@127.0.0.1:{registrar}>\n"),
        )?;
        let log = std::fs::File::create(dir.join("log"))?;
        let mut cmd = Command::new("baresip");
        cmd.arg("-f").arg(&dir);
        if let Some(uri) = dial {
            cmd.args(["-e", &format!("/dial {uri}")]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting baresip (apt install baresip)")?;
        Ok(Baresip {
            _peer: Peer {
                child,
                name: "baresip",
                stderr: None,
            },
            dir,
            cons_port,
            sip_port,
            rtp_port,
        })
    }

    /// What it has printed so far (its status line's carriage returns as newlines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log"))
            .unwrap_or_default()
            .replace('\r', "\n")
    }

    /// Waits up to `limit` for `needle` in its output.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Types `command` (e.g. `/hangup`) at its UDP console.
    pub fn command(&self, command: &str) -> anyhow::Result<()> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.send_to(
            format!("{command}\n").as_bytes(),
            ("127.0.0.1", self.cons_port),
        )?;
        Ok(())
    }

    /// The tone in what it decoded from the call (py/sip_media.py `heard` on its
    /// recording): `freq`, `loud_seconds`, `seconds`.
    pub fn heard(&self) -> anyhow::Result<Value> {
        let recording = std::fs::read_dir(self.dir.join("snd"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .context("baresip recorded nothing")?;
        heard_in(&recording)
    }
}

/// The tone in a recording (a 16-bit wav; py/sip_media.py `heard`): `freq`,
/// `loud_seconds`, `seconds`.
pub fn heard_in(recording: &std::path::Path) -> anyhow::Result<Value> {
    let out = Command::new("python3")
        .arg(crate::workspace().join("interop-tests/py/sip_media.py"))
        .arg("heard")
        .arg(recording)
        .output()?;
    if !out.status.success() {
        bail!("heard failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The phone view's events (in the browser's report `r`) named `name`.
pub fn events_named(r: &Value, name: &str) -> Vec<Value> {
    r["phone"]["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["result"]["event"] == name)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Most of the browser's measured peaks lie within 5 % of `hz`.
pub fn hears(r: &Value, hz: f64) -> bool {
    let peaks: Vec<f64> = r["phone"]["peaks"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let near = peaks.iter().filter(|p| (*p - hz).abs() < hz * 0.05).count();
    peaks.len() >= 8 && near * 3 >= peaks.len() * 2
}
