//! Retransmissions end to end, in memory on a fake clock: str0m clients play viewers'
//! browsers against one engine, one source fans out to them, and every tenth media
//! datagram to each is lost on the way. The clients NACK what they miss, as browsers
//! do; the engine answers from the source's one history.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cardea_codecs::rtp::RtpHeader;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RawPacket;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

use super::engine::{Engine, LocalAddrs};
use super::mids::MidMap;
use super::{
    MediaCommand, MediaCounters, NewPeer, OfferTrack, PeerStats, SourcePacket, TrackFlow,
    WebrtcFactory,
};
use crate::config::MediaConfig;
use crate::ids::{HandleId, PeerId, SessionId, SourceId};
use crate::media::router::{ViewerMedia, ViewerTrack};

const SOURCE: SourceId = SourceId(1);
const SERVER: &str = "127.0.0.1:10000";

/// One viewer's browser: a str0m client in RTP mode that shows raw packets.
struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    stats: Arc<PeerStats>,
    inbox: VecDeque<Vec<u8>>,
    connected: bool,
    /// RTP datagrams sent to it so far (every tenth is lost).
    rtp_datagrams: u64,
    /// Sequence numbers of the media it got, originals and repaired alike.
    got: BTreeSet<u64>,
    /// The SSRCs media and RTX came on, RTX sequence numbers, and the original
    /// sequence numbers RTX carried.
    main_ssrcs: BTreeSet<u32>,
    rtx: Vec<(u32, u16, u16)>,
    /// The payload type RTX comes with (the offerer's).
    rtx_pt: u8,
    /// Its mid, and whether it NACKs without RTX (str0m does not by default; browsers,
    /// GStreamer and libwebrtc-based clients do).
    mid: Mid,
    nack_without_rtx: bool,
    /// Original sequence numbers that arrived twice or more as plain packets.
    repeated: u64,
    plain_seen: BTreeSet<u16>,
}

struct Lab {
    now: Instant,
    factory: WebrtcFactory,
    engine: Engine,
    counters: Arc<MediaCounters>,
    clients: Vec<Client>,
    seq: u16,
    ts: u32,
}

/// The client's codecs: VP8, with or without RTX.
fn client_config(rtx: bool) -> RtcConfig {
    let mut config = RtcConfig::new()
        .clear_codecs()
        .set_rtp_mode(true)
        .enable_raw_packets(true);
    config.codec_config().add_config(
        100.into(),
        rtx.then_some(101.into()),
        Codec::Vp8,
        Frequency::NINETY_KHZ,
        None,
        FormatParams::default(),
    );
    config
}

fn track() -> OfferTrack {
    OfferTrack {
        kind: MediaKind::Video,
        codec: Codec::Vp8,
        pt: 96,
        clock_rate: 90_000,
        channels: None,
        format: FormatParams::default(),
        msid: "cam".into(),
        mid: Some("v".into()),
    }
}

impl Lab {
    fn new() -> Lab {
        #[allow(clippy::disallowed_methods)] // the fake clock's starting point
        let now = Instant::now();
        let lo = ["127.0.0.1".parse().unwrap()];
        let factory = WebrtcFactory::new(&MediaConfig::default(), 10000, &lo);
        let counters = factory.counters()[0].clone();
        let engine = Engine::new(LocalAddrs::new(10000, &lo), counters.clone());
        Lab {
            now,
            factory,
            engine,
            counters,
            clients: Vec::new(),
            seq: 65_000,
            ts: 0,
        }
    }

    /// A viewer the gateway offers to (a Janus `watch`); the client answers with or
    /// without RTX (str0m takes RTX when offered: the answer's RTX lines are cut, as
    /// from a client that has none).
    fn viewer_answering(&mut self, rtx: bool) {
        let placement = self.factory.place();
        let (rtc, offer, pending, mids, map) = self
            .factory
            .create_offer(self.now, &[track()], &placement)
            .unwrap();
        let mut client = self.client(rtx);
        client.rtx_pt = 97; // ours: the next free after the track's 96
        let answer = client
            .rtc
            .sdp_api()
            .accept_offer(SdpOffer::from_sdp_string(&offer).unwrap())
            .unwrap();
        let mut rtc = rtc;
        let mut answer = map.from_wire(&answer.to_sdp_string());
        if !rtx {
            answer = without_rtx(&answer);
        }
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        rtc.sdp_api().accept_answer(pending, answer).unwrap();
        let tracks = vec![Some(ViewerTrack::new(mids[0], 96, true))];
        self.add(client, rtc, tracks, map, placement);
    }

    /// A viewer that offers (a WHEP player), with or without RTX.
    fn viewer_offering(&mut self, rtx: bool) {
        let placement = self.factory.place();
        let mut client = self.client(rtx);
        let mut change = client.rtc.sdp_api();
        client.mid = change.add_media(
            MediaKind::Video,
            str0m::media::Direction::RecvOnly,
            None,
            None,
            None,
        );
        let (offer, pending) = change.apply().unwrap();
        let (rtc, answer, placed) = self
            .factory
            .accept_offer_for_tracks(
                self.now,
                &offer.to_sdp_string(),
                &[track()],
                TrackFlow::ToPeer,
                &placement,
            )
            .unwrap();
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        client.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        let (mid, pt) = placed[0].unwrap();
        let tracks = vec![Some(ViewerTrack::new(mid, pt, true))];
        self.add(client, rtc, tracks, MidMap::new([]), placement);
    }

    fn client(&self, rtx: bool) -> Client {
        let addr: SocketAddr = format!("127.0.0.1:{}", 50_000 + self.clients.len())
            .parse()
            .unwrap();
        let mut rtc = client_config(rtx).build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Client {
            rtc,
            addr,
            stats: Arc::default(),
            inbox: VecDeque::new(),
            connected: false,
            rtp_datagrams: 0,
            got: BTreeSet::new(),
            main_ssrcs: BTreeSet::new(),
            rtx: Vec::new(),
            rtx_pt: 101,
            mid: Mid::from("v"),
            nack_without_rtx: !rtx,
            repeated: 0,
            plain_seen: BTreeSet::new(),
        }
    }

    fn add(
        &mut self,
        client: Client,
        rtc: Rtc,
        tracks: Vec<Option<ViewerTrack>>,
        mids: MidMap,
        shard: super::Placement,
    ) {
        let n = self.clients.len() as u64;
        let new = NewPeer {
            id: PeerId(n + 1),
            session: SessionId(n + 1),
            handle: HandleId(n + 1),
            rtc,
            handler: Box::new(ViewerMedia::new(tracks, Arc::default())),
            stats: client.stats.clone(),
            remote_candidates: Vec::new(),
            subscriptions: vec![SOURCE],
            mids,
            shard,
        };
        let mut out = Vec::new();
        self.engine.handle_command(
            self.now,
            MediaCommand::AddPeer(Box::new(new)),
            &mut |a, d| out.push((a, d.to_vec())),
        );
        self.clients.push(client);
        self.deliver(out);
    }

    /// Datagrams from the engine to their clients; every tenth RTP datagram to each
    /// client once it is connected is lost.
    fn deliver(&mut self, out: Vec<(SocketAddr, Vec<u8>)>) {
        for (to, d) in out {
            let Some(c) = self.clients.iter_mut().find(|c| c.addr == to) else {
                continue;
            };
            let rtp = d.len() > 12 && d[0] >> 6 == 2 && (96..128).contains(&(d[1] & 0x7f));
            if rtp && c.connected {
                c.rtp_datagrams += 1;
                if c.rtp_datagrams % 10 == 0 {
                    continue;
                }
            }
            c.inbox.push_back(d);
        }
    }

    /// One camera packet (a keyframe every 30) to every viewer.
    fn send_packet(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(1500);
        let p = Arc::new(SourcePacket {
            source: SOURCE,
            track: 0,
            header: RtpHeader {
                pt: 96,
                marker: true,
                seq: self.seq,
                timestamp: self.ts,
                ssrc: 0xCAFE,
                payload_offset: 12,
                payload_end: 1212,
            },
            payload: Arc::from(vec![0x10; 1200]),
            keyframe: Some(self.seq.is_multiple_of(30)),
            arrival: self.now,
        });
        let mut out = Vec::new();
        self.engine
            .handle_packets(self.now, &[p], &mut |a, d| out.push((a, d.to_vec())));
        self.deliver(out);
    }

    /// Drains client `i`'s outputs (str0m's contract: after every input): its datagrams
    /// to the engine, its events noted; returns when it next needs time.
    fn drain(&mut self, i: usize) -> Instant {
        loop {
            let c = &mut self.clients[i];
            match c.rtc.poll_output().unwrap() {
                Output::Transmit(t) => {
                    let (from, mut out) = (c.addr, Vec::new());
                    self.engine
                        .handle_datagram(self.now, from, &t.contents, &mut |a, d| {
                            out.push((a, d.to_vec()))
                        });
                    self.deliver(out);
                }
                Output::Event(e) => on_event(c, e),
                Output::Timeout(t) => return t,
            }
        }
    }

    /// Runs `ms` of fake time, a camera packet every 5 ms while `sending`.
    fn run(&mut self, ms: u64, sending: bool) {
        let end = self.now + Duration::from_millis(ms);
        let mut next_packet = self.now;
        let server: SocketAddr = SERVER.parse().unwrap();
        while self.now < end {
            let mut next = self.now + Duration::from_millis(5);
            for i in 0..self.clients.len() {
                next = next.min(self.drain(i));
                while let Some(d) = self.clients[i].inbox.pop_front() {
                    let c = &mut self.clients[i];
                    let input = Input::Receive(
                        self.now,
                        Receive {
                            proto: Protocol::Udp,
                            source: server,
                            destination: c.addr,
                            contents: d.as_slice().try_into().unwrap(),
                        },
                    );
                    c.rtc.handle_input(input).unwrap();
                    if c.nack_without_rtx {
                        let mid = c.mid;
                        if let Some(rx) = c.rtc.direct_api().stream_rx_by_mid(mid, None) {
                            rx.suppress_nack(false);
                        }
                    }
                    next = next.min(self.drain(i));
                }
            }
            while self.engine.poll_event().is_some() {}
            if sending && self.clients.iter().all(|c| c.connected) && self.now >= next_packet {
                self.send_packet();
                next_packet = self.now + Duration::from_millis(5);
            }
            let engine_next = self.engine.next_timeout().unwrap_or(next);
            self.now = next
                .min(engine_next)
                .min(next_packet.max(self.now))
                .max(self.now + Duration::from_millis(1));
            for i in 0..self.clients.len() {
                self.clients[i]
                    .rtc
                    .handle_input(Input::Timeout(self.now))
                    .unwrap();
                self.drain(i);
            }
            let mut out = Vec::new();
            self.engine
                .handle_timeout(self.now, &mut |a, d| out.push((a, d.to_vec())));
            self.deliver(out);
        }
    }
}

/// `sdp` without its RTX payload types.
fn without_rtx(sdp: &str) -> String {
    let rtx: Vec<&str> = sdp
        .lines()
        .filter_map(|l| {
            l.strip_prefix("a=rtpmap:")?
                .split_once(" rtx/")
                .map(|(pt, _)| pt)
        })
        .collect();
    sdp.lines()
        .filter(|l| !rtx.iter().any(|pt| l.starts_with(&format!("a=fmtp:{pt} "))))
        .filter(|l| !l.contains(" rtx/"))
        .map(|l| match l.strip_prefix("m=") {
            Some(m) => {
                let kept: Vec<&str> = m.split(' ').filter(|w| !rtx.contains(w)).collect();
                format!("m={}", kept.join(" "))
            }
            None => l.to_owned(),
        })
        .map(|l| l + "\r\n")
        .collect()
}

fn on_event(c: &mut Client, e: Event) {
    match e {
        Event::Connected => c.connected = true,
        Event::RtpPacket(p) => {
            c.got.insert(*p.seq_no);
        }
        Event::RawPacket(raw) => {
            if let RawPacket::RtpRx(h, data) = *raw {
                if h.payload_type == c.rtx_pt.into() {
                    let osn = u16::from_be_bytes([data[0], data[1]]);
                    c.rtx.push((*h.ssrc, h.sequence_number, osn));
                } else {
                    c.main_ssrcs.insert(*h.ssrc);
                    if !c.plain_seen.insert(h.sequence_number) {
                        c.repeated += 1;
                    }
                }
            }
        }
        _ => {}
    }
}

/// Packets from the first one a client got to `last` it lacks.
fn missing(c: &Client, last: u64) -> Vec<u64> {
    let first = *c.got.first().expect("media arrived");
    (first..=last).filter(|s| !c.got.contains(s)).collect()
}

#[test]
fn lost_packets_come_again_as_rtx_from_one_history() {
    let mut lab = Lab::new();
    lab.viewer_answering(true);
    lab.viewer_offering(true);
    lab.run(2000, true);
    lab.run(500, false);
    let retransmitted = lab.counters.retransmitted.load(Ordering::Relaxed);
    for (i, c) in lab.clients.iter().enumerate() {
        let last = *c.got.last().unwrap();
        let lost = c.rtp_datagrams / 10;
        println!(
            "viewer {i}: {} packets, {} RTP datagrams ({lost} lost), {} RTX, missing {:?}",
            c.got.len(),
            c.rtp_datagrams,
            c.rtx.len(),
            missing(c, last)
        );
        assert!(c.got.len() > 350, "media flowed: {}", c.got.len());
        assert!(missing(c, last).is_empty(), "every loss repaired");
        assert!(
            c.rtx.len() as u64 >= lost,
            "{} RTX for {lost} lost",
            c.rtx.len()
        );
        // A proper RTX stream: its own SSRC, its own sequence numbers from one, in order,
        // each carrying an original sequence number this viewer was sent.
        let rtx_ssrcs: BTreeSet<u32> = c.rtx.iter().map(|r| r.0).collect();
        assert_eq!(rtx_ssrcs.len(), 1);
        assert!(c.main_ssrcs.is_disjoint(&rtx_ssrcs));
        let seqs: Vec<u16> = c.rtx.iter().map(|r| r.1).collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
            "RTX sequence numbers follow on: {seqs:?}"
        );
        assert!(c.rtx.iter().all(|r| c.got.contains(&u64::from(r.2))));
        assert_eq!(c.repeated, 0, "nothing repeated on the media SSRC");
    }
    let a: Vec<u16> = lab.clients[0].rtx.iter().map(|r| r.1).collect();
    let b: Vec<u16> = lab.clients[1].rtx.iter().map(|r| r.1).collect();
    assert_ne!(a, b, "each viewer has RTX numbers of its own");
    let refused = lab.counters.retransmit_refused.load(Ordering::Relaxed);
    let missed = lab.counters.retransmit_missed.load(Ordering::Relaxed);
    let nacks = lab.counters.nacks.load(Ordering::Relaxed);
    println!(
        "engine: {nacks} NACKs, {retransmitted} retransmitted, {missed} missed, {refused} refused"
    );
    assert!(retransmitted >= lab.clients.iter().map(|c| c.rtx.len() as u64).sum::<u64>());
    assert_eq!(missed, 0);
    let per_peer: u64 = lab
        .clients
        .iter()
        .map(|c| c.stats.retransmitted.load(Ordering::Relaxed))
        .sum();
    assert_eq!(
        per_peer, retransmitted,
        "the peers' counts add up to the shard's"
    );
    assert!(lab
        .clients
        .iter()
        .all(|c| c.stats.nacks.load(Ordering::Relaxed) > 0));
}

#[test]
fn without_rtx_the_lost_packet_is_sent_again_as_it_was() {
    let mut lab = Lab::new();
    lab.viewer_answering(false);
    lab.viewer_offering(false);
    lab.run(2000, true);
    lab.run(500, false);
    for (i, c) in lab.clients.iter().enumerate() {
        let last = *c.got.last().unwrap();
        println!(
            "viewer {i}: {} packets, {} repeated, {} RTX, missing {:?}",
            c.got.len(),
            c.repeated,
            c.rtx.len(),
            missing(c, last)
        );
        assert!(c.got.len() > 350);
        assert!(c.rtx.is_empty(), "no RTX was agreed");
        assert!(missing(c, last).is_empty(), "every loss repaired");
        assert_eq!(c.main_ssrcs.len(), 1, "on the media SSRC itself");
    }
    assert!(lab.counters.retransmitted.load(Ordering::Relaxed) > 0);
}

#[test]
fn the_history_is_one_per_source_whatever_the_viewers() {
    let mut lab = Lab::new();
    for _ in 0..3 {
        lab.viewer_answering(true);
    }
    lab.run(1500, true);
    let kept = lab.engine.history_len(SOURCE);
    println!("history: {kept} packets for 3 viewers after 1.5 s at 200 packets/s");
    assert!(
        (190..=202).contains(&kept),
        "one second of packets, once: {kept}"
    );
}
