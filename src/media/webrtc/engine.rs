//! The media engine: every peer's str0m instance behind one UDP socket.
//!
//! Sans-IO: time comes in as `now`, datagrams go out through the `send` callback the
//! driver passes, events are drained with [`Engine::poll_event`]. Contract: after each
//! `handle_*` call, drain `poll_event` and sleep until [`Engine::next_timeout`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::Input;
use tokio::sync::mpsc;

use super::demux::{classify, Datagram};
use super::early::EarlyChecks;
pub use super::local_addrs::LocalAddrs;
use super::peer::{
    check_receiving, configure_resends, drive_peer, pass_keyframe_requests, read_resend_counts,
    Peer,
};
use super::replay::{left_to_replay, Replay};
use super::timers::Timers;
use super::{sdp_guard, sdp_refusal};
use super::{
    MediaCommand, MediaCounters, MediaEvent, NewPeer, PeerState, SourcePacket,
    MAX_REMOTE_CANDIDATES,
};
use crate::contain::contain;
use crate::ids::{PeerId, SourceId};
use crate::media::gop::GopCache;
use crate::media::handler::MediaOut;
use crate::media::history::{Retained, SourceHistory, DEFAULT_MAX_AGE};

/// How often a handler's `tick` runs.
const TICK: Duration = Duration::from_millis(100);
/// Media not seen for this long on a mid that was receiving: `media` event with `receiving: false`.
pub(super) const NO_MEDIA: Duration = Duration::from_secs(1);

/// Every peer, routed by ICE ufrag then source address.
pub struct Engine {
    peers: HashMap<PeerId, Peer>,
    /// The fan-out table: which peers each source's packets go to.
    subscribers: HashMap<SourceId, Vec<PeerId>>,
    /// Each source's packets since its last keyframe, for viewers that join.
    gop: HashMap<SourceId, GopCache>,
    /// Each source's recent packets, for viewers' NACKs.
    history: HashMap<SourceId, SourceHistory>,
    /// How long `history` keeps them.
    nack_history: Duration,
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    /// The candidates peers told us about, so a datagram from an address not learned
    /// yet finds its peer without a scan of every peer (one address, one peer: the
    /// latest to name it).
    by_candidate: HashMap<SocketAddr, PeerId>,
    /// Where keyframe requests for each source's tracks go (RTP sources with RTCP).
    keyframe_tx: HashMap<SourceId, mpsc::Sender<u8>>,
    local: LocalAddrs,
    counters: Arc<MediaCounters>,
    events: VecDeque<MediaEvent>,
    /// Where completed keyframes go for snapshots, when someone reads them.
    keyframes: Option<Arc<crate::media::snapshot::Keyframes>>,
    /// The peers a batch of source packets goes to (kept: no allocation per batch).
    fan_out: Vec<PeerId>,
    /// When each peer needs its timer.
    timers: Timers,
    /// STUN checks for ufrags no peer has yet.
    early_checks: EarlyChecks,
    /// Peers whose GOP replay goes on, a chunk per turn.
    replaying: Vec<PeerId>,
    /// When the next chunk of the replays is due.
    replay_due: Option<Instant>,
    /// The timer entries due in a wake-up (kept: no allocation per wake-up).
    due: Vec<(Instant, PeerId)>,
}

impl Engine {
    /// A new engine with no peers.
    pub fn new(local: LocalAddrs, counters: Arc<MediaCounters>) -> Engine {
        Engine {
            peers: HashMap::new(),
            subscribers: HashMap::new(),
            gop: HashMap::new(),
            history: HashMap::new(),
            nack_history: DEFAULT_MAX_AGE,
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            by_candidate: HashMap::new(),
            keyframe_tx: HashMap::new(),
            local,
            counters,
            events: VecDeque::new(),
            keyframes: None,
            fan_out: Vec::new(),
            timers: Timers::default(),
            due: Vec::new(),
            early_checks: EarlyChecks::default(),
            replaying: Vec::new(),
            replay_due: None,
        }
    }

    /// Publishes each source's completed keyframes to `store` (for snapshots).
    pub fn with_keyframes(mut self, store: Arc<crate::media::snapshot::Keyframes>) -> Engine {
        self.keyframes = Some(store);
        self
    }

    /// Keeps each source's packets `age` for viewers' NACKs (zero: none kept, every
    /// NACK a miss); 1 s by default.
    pub fn with_nack_history(mut self, age: Duration) -> Engine {
        self.nack_history = age;
        self
    }

    /// The next event for the control side.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn next_timeout(&self) -> Option<Instant> {
        match (self.timers.next(), self.replay_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Packets `source`'s history holds.
    #[cfg(test)]
    pub(crate) fn history_len(&self, source: SourceId) -> usize {
        self.history.get(&source).map_or(0, SourceHistory::packets)
    }

    /// Whether no peer is served.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// A command from the control side.
    pub fn handle_command(
        &mut self,
        now: Instant,
        cmd: MediaCommand,
        send: &mut dyn FnMut(SocketAddr, &[u8]),
    ) {
        match cmd {
            MediaCommand::AddPeer(new) => {
                let id = new.id;
                self.for_peer(id, "adding", |e| e.add_peer(now, *new, send));
            }
            MediaCommand::RemoteCandidate { peer, candidate } => {
                self.for_peer(peer, "remote candidate", |e| {
                    if let Some(p) = e.peers.get_mut(&peer) {
                        if p.addrs.len() >= MAX_REMOTE_CANDIDATES {
                            tracing::debug!(%peer, "remote candidate over the limit, ignored");
                            return;
                        }
                        p.addrs.insert(candidate.addr());
                        e.by_candidate.insert(candidate.addr(), peer);
                        p.rtc.add_remote_candidate(candidate);
                        e.drive(now, peer, send);
                    }
                });
            }
            MediaCommand::SourcePacket(packet) => {
                self.handle_packets(now, std::slice::from_ref(&packet), send)
            }
            MediaCommand::Resubscribe {
                peer,
                subscriptions,
            } => self.for_peer(peer, "resubscribe", |e| {
                e.resubscribe(now, peer, subscriptions, send)
            }),
            MediaCommand::KeyframeRequests { source, tx } => {
                self.keyframe_tx.insert(source, tx);
            }
            MediaCommand::IceRestart { peer } => {
                self.for_peer(peer, "ICE restart", |e| e.ice_restart(now, peer, send))
            }
            MediaCommand::RestartAnswer { peer, sdp } => {
                self.for_peer(peer, "restart answer", |e| {
                    e.restart_answer(now, peer, &sdp, send)
                })
            }
            MediaCommand::RemoteOffer { peer, sdp } => self.for_peer(peer, "remote offer", |e| {
                e.remote_offer(now, peer, &sdp, send)
            }),
            MediaCommand::DropSource(source) => {
                self.gop.remove(&source);
                self.history.remove(&source);
                if let Some(store) = &self.keyframes {
                    store.forget(source);
                }
                self.keyframe_tx.remove(&source);
            }
            MediaCommand::ClosePeer { peer, reason } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    tracing::debug!(%peer, %reason, "closing peer");
                    let _ = contain(|| p.rtc.disconnect());
                    self.remove(peer, reason);
                }
            }
        }
    }

    /// Runs `f` for peer `id`: a panic (in str0m, a handler or our code) closes that
    /// peer, with a hangup reason for its client, and no other.
    fn for_peer(&mut self, id: PeerId, what: &str, f: impl FnOnce(&mut Engine)) {
        if let Err(panic) = contain(|| f(self)) {
            self.close_panicked(id, what, &panic);
        }
    }

    fn close_panicked(&mut self, id: PeerId, what: &str, panic: &str) {
        tracing::error!(peer = %id, %what, %panic, "panic in a peer's media: closing it");
        self.counters.peer_panics.fetch_add(1, Ordering::Relaxed);
        self.remove(id, "Internal error".to_owned());
    }

    fn add_peer(&mut self, now: Instant, new: NewPeer, send: &mut dyn FnMut(SocketAddr, &[u8])) {
        let NewPeer {
            id,
            session,
            handle,
            mut rtc,
            handler,
            stats,
            remote_candidates,
            subscriptions,
            mids,
            shard,
        } = new;
        for s in &subscriptions {
            self.subscribers.entry(*s).or_default().push(id);
        }
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let mut addrs = HashSet::new();
        for c in remote_candidates.into_iter().take(MAX_REMOTE_CANDIDATES) {
            addrs.insert(c.addr());
            self.by_candidate.insert(c.addr(), id);
            rtc.add_remote_candidate(c);
        }
        tracing::debug!(%session, %handle, peer = %id, %ufrag, "peer added");
        stats.set_state(PeerState::Checking);
        self.by_ufrag.insert(ufrag.clone(), id);
        self.peers.insert(
            id,
            Peer {
                id,
                handle,
                rtc,
                ufrag,
                handler,
                stats,
                counters: self.counters.clone(),
                rtc_timeout: now,
                next_tick: now + TICK,
                scheduled: None,
                receiving: HashMap::new(),
                addrs,
                subscriptions,
                replay: false,
                replaying: None,
                source_keyframes: Vec::new(),
                restart: None,
                retired_ufrag: None,
                dtls_up: false,
                mids,
                resend_counts: (0, 0),
            },
        );
        if let Some(p) = self.peers.get_mut(&id) {
            configure_resends(p);
        }
        self.counters
            .peers
            .store(self.peers.len() as u64, Ordering::Relaxed);
        // Counted as served now, no longer as being placed.
        drop(shard);
        self.drive(now, id, send);
        // Checks that came before the peer: answered now, not after the browser's
        // retransmission (hundreds of milliseconds later).
        let ufrag = self.peers.get(&id).map(|p| p.ufrag.clone());
        for early in ufrag
            .map(|u| self.early_checks.take(now, &u))
            .unwrap_or_default()
        {
            self.handle_datagram_at(now, early.source, early.local_ip, &early.bytes, send);
        }
    }

    /// New ICE credentials for a peer (same media, same candidates): the offer goes to
    /// the control side; the peer answers through [`MediaCommand::RestartAnswer`].
    fn ice_restart(&mut self, now: Instant, id: PeerId, send: &mut dyn FnMut(SocketAddr, &[u8])) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let mut api = p.rtc.sdp_api();
        let creds = api.ice_restart(true);
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        let old = std::mem::replace(&mut p.ufrag, creds.ufrag.clone());
        // Both credentials route until the answer settles which one the peer uses.
        self.by_ufrag.insert(creds.ufrag, id);
        p.restart = Some((pending, old));
        tracing::debug!(peer = %id, "ICE restart offered");
        self.events.push_back(MediaEvent::RestartOffer {
            peer: id,
            handle: p.handle,
            sdp: p.mids.to_wire(&offer.to_sdp_string()),
        });
        self.drive(now, id, send);
    }

    fn restart_answer(
        &mut self,
        now: Instant,
        id: PeerId,
        sdp: &str,
        send: &mut dyn FnMut(SocketAddr, &[u8]),
    ) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let Some((pending, old)) = p.restart.take() else {
            tracing::debug!(peer = %id, "restart answer with no restart pending");
            return;
        };
        let accepted = str0m::change::SdpAnswer::from_sdp_string(&p.mids.from_wire(sdp))
            .map_err(|e| sdp_refusal(&e))
            .and_then(|answer| sdp_guard(|| p.rtc.sdp_api().accept_answer(pending, answer)));
        configure_resends(p);
        match accepted {
            Ok(()) => {
                self.by_ufrag.remove(&old);
                tracing::debug!(peer = %id, "ICE restart answered");
            }
            Err(e) => tracing::warn!(peer = %id, error = %e, "ICE restart answer refused"),
        }
        self.drive(now, id, send);
    }

    /// The peer renegotiates: its offer is answered on the same PeerConnection (same
    /// DTLS, same media); an ICE restart in it gives us new credentials, routed beside
    /// the old ones until the peer closes or restarts again.
    fn remote_offer(
        &mut self,
        now: Instant,
        id: PeerId,
        sdp: &str,
        send: &mut dyn FnMut(SocketAddr, &[u8]),
    ) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let answer = str0m::change::SdpOffer::from_sdp_string(&p.mids.from_wire(sdp))
            .map_err(|e| sdp_refusal(&e))
            .and_then(|offer| sdp_guard(|| p.rtc.sdp_api().accept_offer(offer)))
            .map(|a| p.mids.to_wire(&a.to_sdp_string()));
        configure_resends(p);
        // accept_offer dropped any restart of ours that was waiting for its answer.
        let mut stale: Vec<String> = p.restart.take().map(|(_, old)| old).into_iter().collect();
        let ufrag = p.rtc.direct_api().local_ice_credentials().ufrag;
        if ufrag != p.ufrag {
            stale.push(std::mem::replace(&mut p.ufrag, ufrag.clone()));
            self.by_ufrag.insert(ufrag, id);
            tracing::debug!(peer = %id, "ICE restarted by the peer");
        }
        stale.retain(|u| *u != p.ufrag);
        // The latest replaced ufrag stays routed (the peer may use it until our
        // answer reaches it); older ones go.
        if let Some(latest) = stale.pop() {
            if let Some(older) = p.retired_ufrag.replace(latest) {
                stale.push(older);
            }
        }
        for u in stale {
            if u != p.ufrag {
                self.by_ufrag.remove(&u);
            }
        }
        if let Err(e) = &answer {
            tracing::info!(peer = %id, error = %e, "renegotiation offer refused");
        }
        self.events.push_back(MediaEvent::Renegotiated {
            peer: id,
            handle: p.handle,
            answer,
        });
        self.drive(now, id, send);
    }

    /// Points a peer at other sources (or the same ones again) and replays their GOP
    /// caches to it, so it continues from the latest keyframe.
    fn resubscribe(
        &mut self,
        now: Instant,
        id: PeerId,
        subscriptions: Vec<SourceId>,
        send: &mut dyn FnMut(SocketAddr, &[u8]),
    ) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        unsubscribe(&mut self.subscribers, id, &p.subscriptions);
        for s in &subscriptions {
            self.subscribers.entry(*s).or_default().push(id);
        }
        p.subscriptions = subscriptions;
        if p.stats.state() == PeerState::Connected {
            self.start_replay(now, id, send);
        }
    }

    /// Source packets (what the sources sent since the last turn, oldest first) to
    /// every subscribed peer: each peer gets all of its packets, then is polled once,
    /// so a frame's packets cost one round of str0m's polling per viewer, not one each.
    /// The payloads are shared, not copied, and nothing is allocated per packet.
    pub fn handle_packets(
        &mut self,
        now: Instant,
        packets: &[Arc<SourcePacket>],
        send: &mut dyn FnMut(SocketAddr, &[u8]),
    ) {
        let age = self.nack_history;
        for packet in packets {
            let history = match self.history.get_mut(&packet.source) {
                Some(history) => history,
                None => self
                    .history
                    .entry(packet.source)
                    .or_insert_with(|| SourceHistory::new(age)),
            };
            history.push(packet);
            let cache = match self.gop.get_mut(&packet.source) {
                Some(cache) => cache,
                None => self.gop.entry(packet.source).or_default(),
            };
            if let (Some(track), Some(store)) = (cache.push(packet), &self.keyframes) {
                if let Some(kf) = cache.keyframe(track) {
                    store.publish(packet.source, track, kf);
                }
            }
        }
        let Engine {
            peers,
            subscribers,
            events,
            keyframe_tx,
            fan_out,
            timers,
            gop,
            history,
            ..
        } = self;
        let retained = Retained { history, gop };
        fan_out.clear();
        for (i, packet) in packets.iter().enumerate() {
            // Each source once (a batch holds one or two, mostly).
            if packets[..i].iter().any(|p| p.source == packet.source) {
                continue;
            }
            if let Some(ids) = subscribers.get(&packet.source) {
                fan_out.extend_from_slice(ids);
            }
        }
        if packets.len() > 1 {
            fan_out.sort_unstable();
            fan_out.dedup();
        }
        let mut closed = Vec::new();
        for id in fan_out.iter() {
            let Some(p) = peers.get_mut(id) else {
                continue;
            };
            if p.stats.state() != PeerState::Connected {
                continue;
            }
            let done = contain(|| {
                for packet in packets {
                    if !p.subscriptions.contains(&packet.source) {
                        continue;
                    }
                    let replaying = p.replaying.as_ref();
                    if left_to_replay(replaying, &p.subscriptions, gop, packet, packets.len()) {
                        continue;
                    }
                    let mut out = MediaOut {
                        rtc: &mut p.rtc,
                        source_keyframes: &mut p.source_keyframes,
                    };
                    p.handler.source_packet(&mut out, packet);
                }
                let closed = drive_peer(p, now, send, events, &retained);
                pass_keyframe_requests(p, keyframe_tx);
                reschedule(timers, p);
                closed
            });
            match done {
                Ok(None) => {}
                Ok(Some(reason)) => closed.push((*id, Err(reason))),
                Err(panic) => closed.push((*id, Ok(panic))),
            }
        }
        for (id, why) in closed {
            match why {
                Err(reason) => self.remove(id, reason),
                Ok(panic) => self.close_panicked(id, "fan-out", &panic),
            }
        }
    }

    /// One datagram read from the socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        bytes: &[u8],
        send: &mut dyn FnMut(SocketAddr, &[u8]),
    ) {
        self.handle_datagram_at(now, source, None, bytes, send)
    }

    /// [`Engine::handle_datagram`] knowing the local address it arrived on.
    pub fn handle_datagram_at(
        &mut self,
        now: Instant,
        source: SocketAddr,
        local_ip: Option<IpAddr>,
        bytes: &[u8],
        send: &mut dyn FnMut(SocketAddr, &[u8]),
    ) {
        self.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_in
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let class = classify(bytes);
        let id = match class {
            Datagram::Garbage => {
                self.counters
                    .dropped_garbage
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            Datagram::Stun {
                local_ufrag: Some(ufrag),
            } => self.by_ufrag.get(ufrag).copied(),
            Datagram::Stun { local_ufrag: None } | Datagram::Dtls | Datagram::Rtp => {
                // Not learned yet (a STUN response racing the peer's first request):
                // the candidates the peer told us about identify it.
                self.by_addr
                    .get(&source)
                    .or_else(|| self.by_candidate.get(&source))
                    .copied()
            }
        };
        let Some(id) = id else {
            if let Datagram::Stun {
                local_ufrag: Some(ufrag),
            } = class
            {
                // Maybe a check racing the answer that adds its peer: kept a moment.
                self.early_checks.keep(now, ufrag, source, local_ip, bytes);
            }
            self.counters
                .dropped_unknown_peer
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok(contents) = bytes.try_into() else {
            self.counters
                .dropped_garbage
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local.for_datagram(source, local_ip),
                contents,
            },
        );
        let learn = matches!(
            class,
            Datagram::Stun {
                local_ufrag: Some(_)
            }
        );
        self.for_peer(id, "datagram", |e| {
            let Some(peer) = e.peers.get_mut(&id) else {
                return;
            };
            peer.stats.packets_in.fetch_add(1, Ordering::Relaxed);
            peer.stats
                .bytes_in
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if let Err(err) = peer.rtc.handle_input(input) {
                e.counters.dropped_rejected.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %id, %source, error = %err, "datagram rejected");
            } else if learn {
                if let Some(old) = e.by_addr.insert(source, id) {
                    if old != id {
                        tracing::debug!(%source, from = %old, to = %id, "address moved to another peer");
                    }
                }
            }
            e.drive(now, id, send);
        });
    }

    /// Time passed: drive every peer whose timer is due.
    pub fn handle_timeout(&mut self, now: Instant, send: &mut dyn FnMut(SocketAddr, &[u8])) {
        if self.replay_due.is_some_and(|t| t <= now) {
            self.continue_replays(now, send);
        }
        let mut due = std::mem::take(&mut self.due);
        self.timers.pop_due(now, &mut due);
        for (t, id) in due.drain(..) {
            let Some(p) = self.peers.get_mut(&id) else {
                continue; // removed since
            };
            if p.scheduled != Some(t) {
                continue; // stale: the peer has an earlier entry, already handled
            }
            p.scheduled = None;
            self.for_peer(id, "timer", |e| e.peer_timeout(now, id, send));
        }
        self.due = due;
        // Deadlines that kept moving earlier leave stale entries: bounded.
        if self.timers.len() > 4 * self.peers.len() + 64 {
            let live = self
                .peers
                .values()
                .filter_map(|p| p.scheduled.map(|t| (t, p.id)));
            self.timers.rebuild(live);
        }
    }

    /// Peer `id`'s timer is due: str0m's timeout, the handler's tick, receiving state.
    fn peer_timeout(&mut self, now: Instant, id: PeerId, send: &mut dyn FnMut(SocketAddr, &[u8])) {
        if let Some(p) = self.peers.get_mut(&id) {
            if p.rtc_timeout <= now {
                self.counters.peer_timeouts.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(peer = %id, error = %e, "timeout input failed");
                }
            }
            if p.next_tick <= now {
                p.next_tick = now + TICK;
                read_resend_counts(p);
                if p.stats.state() == PeerState::Connected {
                    let mut out = MediaOut {
                        rtc: &mut p.rtc,
                        source_keyframes: &mut p.source_keyframes,
                    };
                    p.handler.tick(&mut out, now);
                }
                check_receiving(p, now, &mut self.events);
            }
        }
        self.drive(now, id, send);
    }

    /// Polls one peer until str0m has nothing more than a timeout.
    fn drive(&mut self, now: Instant, id: PeerId, send: &mut dyn FnMut(SocketAddr, &[u8])) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let retained = Retained {
            history: &self.history,
            gop: &self.gop,
        };
        if let Some(reason) = drive_peer(p, now, send, &mut self.events, &retained) {
            self.remove(id, reason);
            return;
        }
        pass_keyframe_requests(p, &self.keyframe_tx);
        reschedule(&mut self.timers, p);
        if p.replay {
            p.replay = false;
            self.start_replay(now, id, send);
        }
    }

    /// Starts (or starts over) sending a viewer what its sources cached since their
    /// last keyframe, so its first frame does not wait for the next keyframe: the first
    /// chunk now, the rest a chunk per turn (see `replay`).
    fn start_replay(&mut self, now: Instant, id: PeerId, send: &mut dyn FnMut(SocketAddr, &[u8])) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        if p.replaying.replace(Replay::default()).is_none() {
            self.replaying.push(id);
        }
        self.replay_due = Some(now);
        self.replay_step(now, id, send);
    }

    /// The next chunk of every replay under way.
    fn continue_replays(&mut self, now: Instant, send: &mut dyn FnMut(SocketAddr, &[u8])) {
        let ids = std::mem::take(&mut self.replaying);
        for id in &ids {
            self.for_peer(*id, "replay", |e| e.replay_step(now, *id, send));
        }
        let mut ids = ids;
        ids.retain(|id| self.peers.get(id).is_some_and(|p| p.replaying.is_some()));
        // Started during the steps (none should be): kept too.
        ids.append(&mut self.replaying);
        self.replaying = ids;
        self.replay_due = (!self.replaying.is_empty()).then_some(now);
    }

    /// One chunk of peer `id`'s replay, then what it made is sent.
    fn replay_step(&mut self, now: Instant, id: PeerId, send: &mut dyn FnMut(SocketAddr, &[u8])) {
        let Engine {
            peers,
            gop,
            history,
            events,
            keyframe_tx,
            timers,
            ..
        } = self;
        let Some(p) = peers.get_mut(&id) else {
            return;
        };
        let Some(mut replay) = p.replaying.take() else {
            return;
        };
        let mut out = MediaOut {
            rtc: &mut p.rtc,
            source_keyframes: &mut p.source_keyframes,
        };
        if replay.step(&p.subscriptions, gop, &mut *p.handler, &mut out) {
            p.replaying = Some(replay);
        } else {
            tracing::debug!(peer = %id, "GOP cache replayed");
        }
        pass_keyframe_requests(p, keyframe_tx);
        let retained = Retained { history, gop };
        if let Some(reason) = drive_peer(p, now, send, events, &retained) {
            self.remove(id, reason);
            return;
        }
        reschedule(timers, p);
    }

    fn remove(&mut self, id: PeerId, reason: String) {
        let Some(mut p) = self.peers.remove(&id) else {
            return;
        };
        // What str0m counted since the last tick.
        read_resend_counts(&mut p);
        p.stats.set_state(PeerState::Closed);
        self.by_ufrag.remove(&p.ufrag);
        if let Some((_, old)) = &p.restart {
            self.by_ufrag.remove(old);
        }
        if let Some(old) = &p.retired_ufrag {
            self.by_ufrag.remove(old);
        }
        self.by_addr.retain(|_, v| *v != id);
        for a in &p.addrs {
            if self.by_candidate.get(a) == Some(&id) {
                self.by_candidate.remove(a);
            }
        }
        unsubscribe(&mut self.subscribers, id, &p.subscriptions);
        self.counters
            .peers
            .store(self.peers.len() as u64, Ordering::Relaxed);
        self.events.push_back(MediaEvent::Closed {
            peer: id,
            handle: p.handle,
            reason,
        });
    }
}

/// Puts peer `p` in `timers` for its next deadline: str0m's or its tick.
fn reschedule(timers: &mut Timers, p: &mut Peer) {
    timers.schedule(p.id, &mut p.scheduled, p.rtc_timeout.min(p.next_tick));
}

/// Takes peer `id` off the fan-out lists of `sources`.
fn unsubscribe(subscribers: &mut HashMap<SourceId, Vec<PeerId>>, id: PeerId, sources: &[SourceId]) {
    for s in sources {
        if let Some(list) = subscribers.get_mut(s) {
            list.retain(|x| *x != id);
            if list.is_empty() {
                subscribers.remove(s);
            }
        }
    }
}
