//! The UDP demultiplexer: classification, then routing into a live str0m peer
//! (made from a captured Chromium offer) as if the datagram came from its candidate.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cardea::api::{HandleId, PeerId, SessionId};
use cardea::fuzzing::classify_datagram;
use cardea::media::webrtc::engine::{Engine, LocalAddrs};
use cardea::media::webrtc::{MediaCommand, MediaCounters, NewPeer, PeerStats, WebrtcFactory};
use cardea::plugin::{MediaHandler, MediaOut};
use cardea::Config;
use libfuzzer_sys::fuzz_target;

struct Sink;
impl MediaHandler for Sink {
    fn incoming_media(&mut self, _out: &mut MediaOut<'_>, _data: &str0m::media::MediaData) {}
}

const OFFER: &str = include_str!("../../tests/fixtures/chromium_echotest_offer.sdp");

fn engine() -> &'static Mutex<(Engine, Instant, SocketAddr)> {
    static E: OnceLock<Mutex<(Engine, Instant, SocketAddr)>> = OnceLock::new();
    E.get_or_init(|| {
        let config = Config::default();
        let lo = ["127.0.0.1".parse().unwrap()];
        let factory = WebrtcFactory::new(&config.media, 10000, &lo);
        let now = Instant::now();
        let shard = factory.place();
        let (rtc, _answer) = factory.accept_offer(now, OFFER, None, &shard).unwrap();
        let line = OFFER
            .lines()
            .find(|l| l.starts_with("a=candidate:"))
            .unwrap();
        let candidate = str0m::Candidate::from_sdp_string(&line[2..]).unwrap();
        let source = candidate.addr();
        let mut engine = Engine::new(
            LocalAddrs::new(10000, &lo),
            Arc::new(MediaCounters::default()),
        );
        let peer = NewPeer {
            id: PeerId(1),
            session: SessionId(1),
            handle: HandleId(1),
            rtc,
            handler: Box::new(Sink),
            stats: Arc::new(PeerStats::default()),
            remote_candidates: vec![candidate],
            subscriptions: vec![],
            shard,
            mids: Default::default(),
        };
        engine.handle_command(now, MediaCommand::AddPeer(Box::new(peer)), &mut |_, _| {});
        Mutex::new((engine, now, source))
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = classify_datagram(data);
    let mut guard = engine().lock().unwrap();
    let (engine, now, source) = &mut *guard;
    *now += Duration::from_millis(5);
    engine.handle_datagram(*now, *source, data, &mut |_, _| {});
    engine.handle_timeout(*now, &mut |_, _| {});
    while engine.poll_event().is_some() {}
});
