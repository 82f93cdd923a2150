//! The Janus JSON request parser, then the whole API core with all three plugins
//! (echotest, streaming with open administration, SIP with its user agent's side faked:
//! its commands are drained, nothing is sent), on arbitrary bytes. No sockets are
//! opened but the RTP ports an RTP mountpoint binds (at most `max_api_mountpoints`).
//!
//! The first byte picks what the rest is: a raw request over HTTP or WebSocket, an
//! admin request, or the `body` of a message to one of the three plugins' handles (a
//! `jsep` key in it becomes the message's JSEP), with a timeout tick of 0..31 × 500 ms.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cardea::api::{parse_request, ConnId, Gateway, Jsep, Origin, SessionId, Target, TransportKind};
use cardea::media::webrtc::WebrtcFactory;
use cardea::plugin::echotest::EchoTest;
use cardea::plugin::sip::Sip;
use cardea::plugin::streaming::Streaming;
use cardea::Config;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const PLUGINS: [&str; 3] = [
    "janus.plugin.echotest",
    "janus.plugin.streaming",
    "janus.plugin.sip",
];

struct Fuzzed {
    gateway: Gateway,
    now: Instant,
    /// A session (id 1) with one handle per plugin, made again when gone.
    handles: Option<[u64; 3]>,
}

fn state() -> &'static Mutex<Fuzzed> {
    static G: OnceLock<Mutex<Fuzzed>> = OnceLock::new();
    G.get_or_init(|| {
        let mut config = Config::default().on_loopback_ephemeral_ports();
        config.streaming.open_admin = true;
        config.streaming.mountpoints.clear();
        let factory = WebrtcFactory::new(&config.media, 9, &["127.0.0.1".parse().unwrap()]);
        #[allow(clippy::disallowed_methods)] // the fake clock's starting point
        let now = Instant::now();
        let plugins: Vec<Box<dyn cardea::plugin::Plugin>> = vec![
            Box::new(EchoTest::new(0)),
            Box::new(Streaming::new(
                &config.streaming,
                Box::new(cardea::runtime::HostIo::new(None)),
            )),
            Box::new(Sip::new(true, 3600)),
        ];
        let g = Gateway::new(config, plugins, Arc::new(factory), now);
        Mutex::new(Fuzzed {
            gateway: g,
            now,
            handles: None,
        })
    })
}

/// The session and its three handles, created when missing.
fn handles(f: &mut Fuzzed) -> Option<[u64; 3]> {
    if let Some(h) = f.handles {
        return Some(h);
    }
    let r = f.gateway.handle_request(
        f.now,
        Origin::HTTP,
        Some(Target::default()),
        br#"{"janus":"create","transaction":"c","id":1}"#,
    );
    // 468: still there from before, attach to it; anything else (a limit): not now.
    if r["janus"] != "success" && r["error"]["code"] != 468 {
        return None;
    }
    let mut ids = [0u64; 3];
    for (i, plugin) in PLUGINS.iter().enumerate() {
        let body = json!({"janus": "attach", "transaction": "a", "plugin": plugin}).to_string();
        let at = Target {
            session: Some(SessionId(1)),
            handle: None,
        };
        let r = f
            .gateway
            .handle_request(f.now, Origin::HTTP, Some(at), body.as_bytes());
        ids[i] = r["data"]["id"].as_u64()?;
    }
    f.handles = Some(ids);
    Some(ids)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let mut guard = state().lock().unwrap();
    let f = &mut *guard;
    f.now += Duration::from_millis(u64::from(mode >> 3) * 500);
    match mode & 7 {
        0..=3 => {
            let transport = if mode & 1 == 0 {
                TransportKind::Http
            } else {
                TransportKind::Websocket
            };
            if let Ok(req) = parse_request(body, transport, None) {
                if let Some(j) = req.body.get("jsep") {
                    let _ = Jsep::parse(j);
                }
            }
            let origin = match transport {
                TransportKind::Http => Origin::HTTP,
                TransportKind::Websocket => Origin::websocket(ConnId(1)),
            };
            let target = (transport == TransportKind::Http).then(Target::default);
            if mode & 2 == 0 {
                let _ = f.gateway.handle_request(f.now, origin, target, body);
            } else {
                let _ = f.gateway.handle_admin_request(f.now, origin, target, body);
            }
        }
        plugin => {
            let Ok(Value::Object(mut message)) = serde_json::from_slice::<Value>(body) else {
                return;
            };
            let Some(ids) = handles(f) else {
                return;
            };
            let hid = ids[usize::from(plugin - 4) % 3];
            let mut request = json!({"janus": "message", "transaction": "m"});
            if let Some(jsep) = message.remove("jsep") {
                request["jsep"] = jsep;
            }
            request["body"] = Value::Object(message);
            let at = Target {
                session: Some(SessionId(1)),
                handle: Some(cardea::api::HandleId(hid)),
            };
            let r = f.gateway.handle_request(
                f.now,
                Origin::HTTP,
                Some(at),
                request.to_string().as_bytes(),
            );
            // A plugin's answer, never the core's internal error (a contained panic).
            assert_ne!(r["error"]["code"], 490, "{r}");
            if matches!(r["error"]["code"].as_u64(), Some(458 | 459)) {
                f.handles = None;
            }
            let sid = SessionId(1);
            let _ = f
                .gateway
                .take_events(f.now, sid, &serde_json::Map::new(), 100);
        }
    }
    f.gateway.handle_timeout(f.now);
    while f.gateway.poll_output().is_some() {}
});
