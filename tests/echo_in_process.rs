//! The whole sans-IO stack in one process on a fake clock: a str0m client plays the
//! browser against the API core and the media engine, datagrams carried in memory.
//! Deterministic: no sockets, no sleeping, no real time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cardea::api::{ApiError, Gateway, HandleId, Origin, Output, SessionId, Target};
use cardea::config::Config;
use cardea::media::webrtc::engine::{Engine, LocalAddrs};
use cardea::media::webrtc::{MediaCounters, WebrtcFactory};
use cardea::plugin::echotest::EchoTest;
use cardea::plugin::{
    MediaHandler, MediaOut, Plugin, PluginCtx, PluginInfo, PluginMessage, PluginResult,
};
use serde_json::{json, Map, Value};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaData, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output as RtcOutput, Rtc};

const SERVER: &str = "127.0.0.1:10000";
const CLIENT: &str = "127.0.0.1:50000";

struct Sim {
    now: Instant,
    gateway: Gateway,
    engine: Engine,
    client: Rtc,
    to_client: VecDeque<Vec<u8>>,
    counters: Arc<MediaCounters>,
    /// Every n-th RTP datagram to the client is lost on the way.
    lose_every: Option<u64>,
    rtp_to_client: u64,
    lost: u64,
}

impl Sim {
    fn new() -> Sim {
        #[allow(clippy::disallowed_methods)] // the fake clock's starting point
        let now = Instant::now();
        let config = Config::default();
        let lo = ["127.0.0.1".parse().unwrap()];
        let factory = Arc::new(WebrtcFactory::new(&config.media, 10000, &lo));
        let counters = factory.counters()[0].clone();
        let gateway = Gateway::new(
            config,
            vec![Box::new(EchoTest::new(0)), Box::new(Panicky)],
            factory,
            now,
        );
        let engine = Engine::new(LocalAddrs::new(10000, &lo), counters.clone());
        let mut client = Rtc::builder().build(now);
        client.add_local_candidate(Candidate::host(CLIENT.parse().unwrap(), "udp").unwrap());
        Sim {
            now,
            gateway,
            engine,
            client,
            to_client: VecDeque::new(),
            counters,
            lose_every: None,
            rtp_to_client: 0,
            lost: 0,
        }
    }

    fn request(&mut self, target: Target, body: Value) -> Value {
        let r = self.gateway.handle_request(
            self.now,
            Origin::HTTP,
            Some(target),
            body.to_string().as_bytes(),
        );
        self.pump_gateway();
        r
    }

    fn create_session(&mut self) -> SessionId {
        let r = self.request(
            Target::default(),
            json!({"janus": "create", "transaction": "c"}),
        );
        SessionId(r["data"]["id"].as_u64().unwrap())
    }

    fn attach(&mut self, sid: SessionId, plugin: &str) -> HandleId {
        let at = Target {
            session: Some(sid),
            handle: None,
        };
        let r = self.request(
            at,
            json!({"janus": "attach", "plugin": plugin, "transaction": "a"}),
        );
        HandleId(r["data"]["id"].as_u64().unwrap())
    }

    /// Moves the core's media commands into the engine.
    fn pump_gateway(&mut self) {
        while let Some(out) = self.gateway.poll_output() {
            if let Output::Media(cmd) = out {
                let q = &mut self.to_client;
                self.engine
                    .handle_command(self.now, cmd, &mut |_, d| q.push_back(d.to_vec()));
            }
        }
    }

    fn events(&mut self, sid: SessionId) -> Vec<Value> {
        self.gateway
            .take_events(self.now, sid, &Map::new(), 100)
            .unwrap()
    }

    /// One round: client output to the engine, engine output to the client, time forward.
    fn step(&mut self, received: &mut [u64; 2], connected: &mut bool) {
        let server: SocketAddr = SERVER.parse().unwrap();
        let client: SocketAddr = CLIENT.parse().unwrap();
        let mut client_timeout = self.now + Duration::from_millis(5);
        loop {
            match self.client.poll_output().unwrap() {
                RtcOutput::Transmit(t) => {
                    let q = &mut self.to_client;
                    self.engine
                        .handle_datagram(self.now, client, &t.contents, &mut |_, d| {
                            q.push_back(d.to_vec())
                        });
                }
                RtcOutput::Event(Event::Connected) => *connected = true,
                RtcOutput::Event(Event::MediaData(d)) => {
                    let i = if d.params.spec().codec.is_audio() {
                        0
                    } else {
                        1
                    };
                    received[i] += 1;
                }
                RtcOutput::Event(_) => {}
                RtcOutput::Timeout(t) => {
                    client_timeout = client_timeout.min(t);
                    break;
                }
            }
        }
        while let Some(ev) = self.engine.poll_event() {
            self.gateway.handle_media_event(self.now, ev);
            self.pump_gateway();
        }
        while let Some(d) = self.to_client.pop_front() {
            let rtp = d.len() > 12 && d[0] >> 6 == 2 && (96..128).contains(&(d[1] & 0x7f));
            if let Some(n) = self.lose_every.filter(|_| rtp) {
                self.rtp_to_client += 1;
                if self.rtp_to_client.is_multiple_of(n) {
                    self.lost += 1;
                    continue;
                }
            }
            let input = Input::Receive(
                self.now,
                Receive {
                    proto: Protocol::Udp,
                    source: server,
                    destination: client,
                    contents: d.as_slice().try_into().unwrap(),
                },
            );
            self.client.handle_input(input).unwrap();
        }
        let next = self
            .engine
            .next_timeout()
            .map_or(client_timeout, |t| t.min(client_timeout))
            .max(self.now + Duration::from_millis(1));
        self.now = next;
        self.client.handle_input(Input::Timeout(self.now)).unwrap();
        let q = &mut self.to_client;
        self.engine
            .handle_timeout(self.now, &mut |_, d| q.push_back(d.to_vec()));
    }
}

/// A plugin whose every message panics (a bug in one request's path), except an offer:
/// that is answered with a PeerConnection whose media handling panics.
struct Panicky;

/// Panics on the peer's first frame: a bug in one peer's media path.
struct PanickyMedia;

impl MediaHandler for PanickyMedia {
    fn incoming_media(&mut self, _out: &mut MediaOut<'_>, data: &MediaData) {
        let kind = if data.params.spec().codec.is_audio() {
            "é"
        } else {
            "ü"
        };
        let _ = &kind[..1];
    }
}

impl Plugin for Panicky {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            package: "test.plugin.panicky",
            name: "panics",
            description: "panics on every message",
            version: 1,
            version_string: "1",
        }
    }

    fn create_session(&mut self, _ctx: &mut PluginCtx<'_>, _h: HandleId) -> Result<(), ApiError> {
        Ok(())
    }

    fn handle_message(&mut self, ctx: &mut PluginCtx<'_>, msg: PluginMessage) -> PluginResult {
        if let Some(offer) = &msg.jsep {
            let answer = ctx.accept_offer(msg.handle, offer, Box::new(PanickyMedia));
            let answer = answer.expect("an answer").to_json();
            let tx = Some(msg.transaction.as_str());
            ctx.push_event(msg.handle, tx, json!({"panicky": "ok"}), Some(answer));
            return PluginResult::OkWait(None);
        }
        let kind = "é";
        // The slice that once took the gateway down: a byte index inside a character.
        PluginResult::Ok(json!({ "initial": &kind[..1] }))
    }

    fn destroy_session(&mut self, _ctx: &mut PluginCtx<'_>, _h: HandleId) {}

    fn query_session(&self, _h: HandleId) -> Value {
        Value::Null
    }
}

/// An echo call set up through the API: its session, handle and the client's mids.
struct EchoCall {
    sid: SessionId,
    hid: HandleId,
    audio: Mid,
    video: Mid,
    audio_sent: u64,
    video_sent: u64,
    next_audio: Instant,
    next_video: Instant,
    received: [u64; 2],
    connected: bool,
}

impl EchoCall {
    fn start(sim: &mut Sim) -> EchoCall {
        EchoCall::start_on(sim, "janus.plugin.echotest")
    }

    /// A call like the echo test's to another plugin.
    fn start_on(sim: &mut Sim, plugin: &str) -> EchoCall {
        let sid = sim.create_session();
        let hid = sim.attach(sid, plugin);
        let mut change = sim.client.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let video = change.add_media(MediaKind::Video, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        let r = sim.request(
            at(sid, hid),
            json!({"janus": "message", "transaction": "o", "body": {"audio": true, "video": true},
                   "jsep": {"type": "offer", "sdp": offer.to_sdp_string()}}),
        );
        assert_eq!(r["janus"], "ack", "{r}");
        let evs = sim.events(sid);
        let answer = evs
            .iter()
            .find_map(|e| e["jsep"]["sdp"].as_str())
            .expect("an event with the answer");
        let answer = SdpAnswer::from_sdp_string(answer).unwrap();
        sim.client.sdp_api().accept_answer(pending, answer).unwrap();
        EchoCall {
            sid,
            hid,
            audio,
            video,
            audio_sent: 0,
            video_sent: 0,
            next_audio: sim.now,
            next_video: sim.now,
            received: [0; 2],
            connected: false,
        }
    }

    /// Runs the call for `secs` of fake time: audio every 20 ms, VP8 every 33 ms.
    fn run(&mut self, sim: &mut Sim, secs: u64) {
        let start = sim.now;
        while sim.now.duration_since(start) < Duration::from_secs(secs) {
            sim.step(&mut self.received, &mut self.connected);
            if !self.connected {
                continue;
            }
            let now = sim.now;
            if now >= self.next_audio {
                let w = sim.client.writer(self.audio).unwrap();
                let pt = w
                    .payload_params()
                    .find(|p| p.spec().codec.is_audio())
                    .unwrap()
                    .pt();
                let t = MediaTime::new(
                    self.audio_sent * 960,
                    str0m::media::Frequency::FORTY_EIGHT_KHZ,
                );
                w.write(pt, now, t, vec![0xfc, 0xff, 0xfe]).unwrap();
                self.audio_sent += 1;
                self.next_audio += Duration::from_millis(20);
            }
            if now >= self.next_video {
                let w = sim.client.writer(self.video).unwrap();
                let pt = w
                    .payload_params()
                    .find(|p| p.spec().codec == str0m::format::Codec::Vp8)
                    .unwrap()
                    .pt();
                let t = MediaTime::new(self.video_sent * 3000, str0m::media::Frequency::NINETY_KHZ);
                // A VP8 payload descriptor's frame: keyframe flag clear in the first byte = keyframe.
                let mut frame = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
                frame.extend(std::iter::repeat_n(0x55, 1500));
                w.write(pt, now, t, frame).unwrap();
                self.video_sent += 1;
                self.next_video += Duration::from_millis(33);
            }
        }
    }
}

fn at(sid: SessionId, hid: HandleId) -> Target {
    Target {
        session: Some(sid),
        handle: Some(hid),
    }
}

#[test]
fn str0m_client_gets_its_media_echoed() {
    let mut sim = Sim::new();
    let mut call = EchoCall::start(&mut sim);
    let (sid, hid) = (call.sid, call.hid);
    call.run(&mut sim, 6);
    let (received, audio_sent, video_sent) = (call.received, call.audio_sent, call.video_sent);
    assert!(call.connected, "ICE and DTLS completed in memory");
    let evs = sim.events(sid);
    assert!(
        evs.iter()
            .any(|e| e["janus"] == "webrtcup" && e["sender"] == hid.0),
        "{evs:?}"
    );
    assert!(
        evs.iter()
            .any(|e| e["janus"] == "media" && e["type"] == "video" && e["receiving"] == true),
        "{evs:?}"
    );
    println!(
        "sent {audio_sent} audio / {video_sent} video frames, echoed back {} / {}",
        received[0], received[1]
    );
    assert!(audio_sent > 200 && video_sent > 120);
    // Everything after the first few frames comes back (no loss in memory).
    assert!(
        received[0] + 5 >= audio_sent,
        "{received:?} of {audio_sent}"
    );
    assert!(
        received[1] + 5 >= video_sent,
        "{received:?} of {video_sent}"
    );
    assert_eq!(
        sim.counters
            .dropped_unknown_peer
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // Hangup from the client side of the API: the engine drops the peer, events follow.
    sim.request(at(sid, hid), json!({"janus": "hangup", "transaction": "h"}));
    assert!(sim.engine.is_empty());
    let evs = sim.events(sid);
    assert!(evs.iter().any(|e| e["janus"] == "hangup"), "{evs:?}");
}

#[test]
fn echoed_video_lost_on_the_way_back_is_sent_again() {
    let mut sim = Sim::new();
    let mut call = EchoCall::start(&mut sim);
    call.run(&mut sim, 2);
    assert!(call.connected);
    let (video_before, received_before) = (call.video_sent, call.received[1]);
    // One media datagram in ten to the browser is lost; str0m's own history (one peer,
    // one copy: nothing to share) answers the NACKs.
    sim.lose_every = Some(10);
    call.run(&mut sim, 6);
    sim.lose_every = None;
    call.run(&mut sim, 1);
    let sent = call.video_sent - video_before;
    let echoed = call.received[1] - received_before;
    let retransmitted = sim
        .counters
        .retransmitted
        .load(std::sync::atomic::Ordering::Relaxed);
    let nacks = sim
        .counters
        .nacks
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{} datagrams lost; {nacks} NACKs, {retransmitted} retransmitted; {echoed} of {sent} video frames echoed",
        sim.lost
    );
    assert!(sim.lost > 50, "loss happened: {}", sim.lost);
    assert!(nacks > 0 && retransmitted > 0);
    assert!(
        echoed + 5 >= sent,
        "lost video was repaired: {echoed} of {sent}"
    );
}

#[test]
fn a_panicking_request_is_answered_and_the_echo_flows_on() {
    let mut sim = Sim::new();
    let mut call = EchoCall::start(&mut sim);
    call.run(&mut sim, 3);
    assert!(call.connected);
    let before = call.received;

    // Another client's session, a handle on the panicking plugin, a message: error 490.
    let other = sim.create_session();
    let bad = sim.attach(other, "test.plugin.panicky");
    for _ in 0..3 {
        let r = sim.request(
            at(other, bad),
            json!({"janus": "message", "transaction": "p", "body": {}}),
        );
        assert_eq!(r["janus"], "error", "{r}");
        assert_eq!(r["error"]["code"], 490, "{r}");
        assert_eq!(r["transaction"], "p", "{r}");
    }
    // The core still answers everyone, and the echo call's media keeps coming back.
    let r = sim.request(
        Target {
            session: Some(other),
            handle: None,
        },
        json!({"janus": "destroy", "transaction": "d"}),
    );
    assert_eq!(r["janus"], "success", "{r}");
    call.run(&mut sim, 3);
    let after = [call.received[0] - before[0], call.received[1] - before[1]];
    println!("echoed in the 3 s after the panics: {after:?}");
    assert!(after[0] > 140 && after[1] > 80, "{after:?}");
    let evs = sim.events(call.sid);
    assert!(!evs.iter().any(|e| e["janus"] == "hangup"), "{evs:?}");
}

#[test]
fn a_peer_whose_media_panics_is_hung_up_and_the_gateway_answers_on() {
    let mut sim = Sim::new();
    let mut call = EchoCall::start_on(&mut sim, "test.plugin.panicky");
    call.run(&mut sim, 3);
    assert!(call.connected, "ICE and DTLS completed before the media");
    assert!(
        call.audio_sent > 100,
        "the client sent media: {}",
        call.audio_sent
    );

    // The peer's first frame panicked in its handler: that peer is closed, its handle
    // told why, the panic counted; the gateway answers on.
    let evs = sim.events(call.sid);
    let hangup = evs
        .iter()
        .find(|e| e["janus"] == "hangup" && e["sender"] == call.hid.0)
        .unwrap_or_else(|| panic!("a hangup for the handle: {evs:?}"));
    assert_eq!(hangup["reason"], "Internal error", "{hangup}");
    assert_eq!(
        sim.counters
            .peer_panics
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert!(sim.engine.is_empty(), "the panicking peer is gone");
    assert_eq!(
        call.received,
        [0, 0],
        "a handler that panics relays nothing"
    );

    // A new echo call on the same engine: its media comes back. (The sim's one client
    // is reused, so the first call is over at the client too.)
    let mut sim2 = Sim::new();
    std::mem::swap(&mut sim.client, &mut sim2.client);
    let mut echo = EchoCall::start(&mut sim);
    echo.run(&mut sim, 3);
    println!("echoed after the panic: {:?}", echo.received);
    assert!(
        echo.received[0] > 100 && echo.received[1] > 60,
        "{:?}",
        echo.received
    );
}
