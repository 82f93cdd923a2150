//! The Janus JSON request parser, then the whole API core, on arbitrary bytes.
//! First byte picks the transport (HTTP or WebSocket) and whether a timeout tick runs.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cardea::api::{parse_request, ConnId, Gateway, Jsep, Origin, Target, TransportKind};
use cardea::media::webrtc::{MediaCounters, WebrtcFactory};
use cardea::plugin::echotest::EchoTest;
use cardea::Config;
use libfuzzer_sys::fuzz_target;

fn gateway() -> &'static Mutex<(Gateway, Instant)> {
    static G: OnceLock<Mutex<(Gateway, Instant)>> = OnceLock::new();
    G.get_or_init(|| {
        let config = Config::default();
        let factory = WebrtcFactory::new(&config.media, 9, &["127.0.0.1".parse().unwrap()]);
        let now = Instant::now();
        let g = Gateway::new(
            config,
            vec![Box::new(EchoTest::new(0))],
            Arc::new(factory),
            Arc::new(MediaCounters::default()),
            now,
        );
        Mutex::new((g, now))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let transport = if mode & 1 == 0 { TransportKind::Http } else { TransportKind::Websocket };
    if let Ok(req) = parse_request(body, transport, None) {
        if let Some(j) = req.body.get("jsep") {
            let _ = Jsep::parse(j);
        }
    }
    let mut guard = gateway().lock().unwrap();
    let (g, now) = &mut *guard;
    *now += Duration::from_millis(u64::from(mode >> 2) * 500);
    let origin = match transport {
        TransportKind::Http => Origin::HTTP,
        TransportKind::Websocket => Origin::websocket(ConnId(1)),
    };
    let target = (transport == TransportKind::Http).then(Target::default);
    if mode & 2 == 0 {
        let _ = g.handle_request(*now, origin, target, body);
    } else {
        let _ = g.handle_admin_request(*now, origin, target, body);
    }
    g.handle_timeout(*now);
    while g.poll_output().is_some() {}
});
