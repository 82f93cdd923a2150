//! The streaming plugin's mountpoint parsers: any JSON object as the body of `create`
//! or `edit` (and `info`, `destroy` after them), through a gateway with only the
//! streaming plugin and open administration; and the same bytes as a configuration
//! file's `[[streaming.mountpoints]]`. No panic (a contained one would answer 490),
//! every answer a plugin answer; what is created is destroyed again, so ports and
//! threads never pile up.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use cardea::api::{Gateway, HandleId, Origin, SessionId, Target};
use cardea::media::webrtc::WebrtcFactory;
use cardea::plugin::streaming::Streaming;
use cardea::Config;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

struct Fuzzed {
    gateway: Gateway,
    now: Instant,
    handle: u64,
}

fn state() -> &'static Mutex<Fuzzed> {
    static G: OnceLock<Mutex<Fuzzed>> = OnceLock::new();
    G.get_or_init(|| {
        let mut config = Config::default().on_loopback_ephemeral_ports();
        config.streaming.open_admin = true;
        config.streaming.mountpoints.clear();
        config.general.session_timeout = 0;
        let factory = WebrtcFactory::new(&config.media, 9, &["127.0.0.1".parse().unwrap()]);
        #[allow(clippy::disallowed_methods)] // the fake clock's starting point
        let now = Instant::now();
        let mut gateway = Gateway::new(
            config.clone(),
            vec![Box::new(Streaming::new(
                &config.streaming,
                Box::new(cardea::runtime::HostIo::new(None)),
            ))],
            Arc::new(factory),
            now,
        );
        let r = gateway.handle_request(
            now,
            Origin::HTTP,
            Some(Target::default()),
            br#"{"janus":"create","transaction":"c","id":1}"#,
        );
        assert_eq!(r["janus"], "success");
        let at = Target {
            session: Some(SessionId(1)),
            handle: None,
        };
        let r = gateway.handle_request(
            now,
            Origin::HTTP,
            Some(at),
            br#"{"janus":"attach","transaction":"a","plugin":"janus.plugin.streaming"}"#,
        );
        let handle = r["data"]["id"].as_u64().unwrap();
        Mutex::new(Fuzzed {
            gateway,
            now,
            handle,
        })
    })
}

fn message(f: &mut Fuzzed, body: Value) -> Value {
    let at = Target {
        session: Some(SessionId(1)),
        handle: Some(HandleId(f.handle)),
    };
    let request = json!({"janus": "message", "transaction": "m", "body": body}).to_string();
    let r = f
        .gateway
        .handle_request(f.now, Origin::HTTP, Some(at), request.as_bytes());
    while f.gateway.poll_output().is_some() {}
    assert_eq!(r["janus"], "success", "{r}");
    r["plugindata"]["data"].clone()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // As the configuration file would declare it.
        let _ = Config::parse(
            &format!("[[streaming.mountpoints]]\n{text}"),
            std::path::Path::new("fuzz.toml"),
        );
    }
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let mut guard = state().lock().unwrap();
    let f = &mut *guard;
    let request = match body.get("request").and_then(Value::as_str) {
        Some("edit") => "edit",
        _ => "create",
    };
    body.insert("request".into(), json!(request));
    // Never rewrite a file: there is none, and `permanent` must be refused cleanly.
    let r = message(f, Value::Object(body.clone()));
    assert!(
        r.get("error_code").is_some() || r["streaming"].is_string(),
        "{r}"
    );
    if let Some(id) = body.get("id").cloned() {
        let _ = message(f, json!({"request": "info", "id": id}));
    }
    if r["streaming"] == "created" {
        let id = r["stream"]["id"].clone();
        let secret = body.get("secret").cloned().unwrap_or(Value::Null);
        let gone = message(f, json!({"request": "destroy", "id": id, "secret": secret}));
        assert_eq!(gone["streaming"], "destroyed", "{gone}");
    }
});
