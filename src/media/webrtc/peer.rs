//! One peer in the engine: its str0m instance, its handler and what it subscribes to,
//! and the steps that drive it (str0m's outputs to datagrams, events and handler calls).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use str0m::media::{MediaKind, Mid};
use str0m::{Event, IceConnectionState, Output};
use tokio::sync::mpsc;

use super::engine::NO_MEDIA;
use super::{MediaEvent, PeerState, PeerStats};
use crate::ids::{HandleId, PeerId, SourceId};
use crate::media::handler::{MediaHandler, MediaOut, ResendOutcome};
use crate::media::history::Retained;

pub(super) struct Peer {
    pub(super) id: PeerId,
    pub(super) handle: HandleId,
    pub(super) rtc: str0m::Rtc,
    pub(super) ufrag: String,
    pub(super) handler: Box<dyn MediaHandler>,
    pub(super) stats: Arc<PeerStats>,
    /// Its shard's counters.
    pub(super) counters: Arc<super::MediaCounters>,
    pub(super) rtc_timeout: Instant,
    pub(super) next_tick: Instant,
    /// The time of its live entry in the shard's timers.
    pub(super) scheduled: Option<Instant>,
    /// Mids media arrived on, with the last arrival and whether we reported `receiving: true`.
    pub(super) receiving: HashMap<Mid, (Instant, bool)>,
    pub(super) addrs: HashSet<SocketAddr>,
    /// Sources this peer views.
    pub(super) subscriptions: Vec<SourceId>,
    /// Just connected: the sources' GOP caches must be replayed to it.
    pub(super) replay: bool,
    /// Where its replay is, while it lasts.
    pub(super) replaying: Option<super::replay::Replay>,
    /// Tracks its handler asked its sources for a keyframe on, not yet passed on.
    pub(super) source_keyframes: Vec<u8>,
    /// An ICE restart offered, waiting for the answer, and the ufrag it replaces.
    pub(super) restart: Option<(str0m::change::SdpPendingOffer, String)>,
    /// The ufrag an ICE restart of the peer's replaced, still routed (the peer may
    /// use it until our answer reaches it).
    pub(super) retired_ufrag: Option<String>,
    /// DTLS completed once: after an ICE restart, ICE connecting again means connected.
    pub(super) dtls_up: bool,
    /// The mids the peer sees, when not str0m's.
    pub(super) mids: super::mids::MidMap,
    /// str0m's counts of NACK messages and packets sent again, as last read.
    pub(super) resend_counts: (u64, u64),
}

/// Makes str0m pass a fan-out viewer's NACKs to its handler, which answers them from
/// its sources' history, instead of keeping a copy of every packet per viewer (and the
/// bookkeeping of its resend ratio, which the handler bounds itself). For every send
/// stream the peer has: called when it is added and after each renegotiation.
pub(super) fn configure_resends(p: &mut Peer) {
    if !p.handler.answers_nacks() {
        return;
    }
    for tx in p.rtc.direct_api().streams_tx() {
        tx.set_external_resends(true);
        tx.set_rtx_cache(0, std::time::Duration::ZERO, None);
    }
}

/// Reads str0m's counts of NACKs received and packets sent again into the peer's and
/// the shard's counters (str0m keeps them per send stream, echo tests and calls too).
pub(super) fn read_resend_counts(p: &mut Peer) {
    let (nacks, resent) = p.rtc.direct_api().streams_tx().fold((0, 0), |(n, r), tx| {
        (n + tx.nacks_received(), r + tx.packets_resent())
    });
    // A stream reset starts its counts over: what it counted since is all new.
    let delta = |now: u64, before: u64| now.checked_sub(before).unwrap_or(now);
    let (d_nacks, d_resent) = (
        delta(nacks, p.resend_counts.0),
        delta(resent, p.resend_counts.1),
    );
    p.resend_counts = (nacks, resent);
    if d_nacks > 0 {
        p.stats.nacks.fetch_add(d_nacks, Ordering::Relaxed);
        p.counters.nacks.fetch_add(d_nacks, Ordering::Relaxed);
    }
    if d_resent > 0 {
        p.stats.retransmitted.fetch_add(d_resent, Ordering::Relaxed);
        p.counters
            .retransmitted
            .fetch_add(d_resent, Ordering::Relaxed);
    }
}

/// Hands the keyframe requests a peer's handler made to its sources' channels.
pub(super) fn pass_keyframe_requests(p: &mut Peer, channels: &HashMap<SourceId, mpsc::Sender<u8>>) {
    if p.source_keyframes.is_empty() {
        return;
    }
    for source in &p.subscriptions {
        if let Some(tx) = channels.get(source) {
            for track in &p.source_keyframes {
                let _ = tx.try_send(*track); // full: requests are pending already
            }
        }
    }
    p.source_keyframes.clear();
}

/// Timeouts due at once that one poll of a peer gives str0m before leaving the rest
/// to the timer.
const MAX_DUE_NOW: u32 = 4;

/// Polls one peer until str0m has nothing more than a timeout; returns a reason
/// when the peer must be closed.
pub(super) fn drive_peer(
    p: &mut Peer,
    now: Instant,
    send: &mut dyn FnMut(SocketAddr, &[u8]),
    events: &mut VecDeque<MediaEvent>,
    retained: &Retained<'_>,
) -> Option<String> {
    let mut closed: Option<String> = None;
    let mut due_now = 0;
    loop {
        if !p.rtc.is_alive() {
            closed.get_or_insert_with(|| "DTLS alert".into());
            break;
        }
        match p.rtc.poll_output() {
            // str0m moves newly written media to its send queue on a timeout it asks
            // for at once: given here, the media goes out in this turn, not after a
            // trip through the timer (bounded, should str0m keep asking).
            Ok(Output::Timeout(t)) if t <= now && due_now < MAX_DUE_NOW => {
                due_now += 1;
                if let Err(e) = p.rtc.handle_input(str0m::Input::Timeout(now)) {
                    tracing::debug!(peer = %p.id, error = %e, "timeout input failed");
                }
            }
            Ok(Output::Timeout(t)) => {
                p.rtc_timeout = t.max(now);
                break;
            }
            Ok(Output::Transmit(t)) => {
                p.stats.packets_out.fetch_add(1, Ordering::Relaxed);
                p.stats
                    .bytes_out
                    .fetch_add(t.contents.len() as u64, Ordering::Relaxed);
                send(t.destination, &t.contents);
            }
            Ok(Output::Event(e)) => {
                if let Some(reason) = handle_event(p, now, e, events, retained) {
                    closed = Some(reason);
                }
            }
            Err(e) => {
                closed = Some(format!("WebRTC error: {e}"));
                break;
            }
        }
    }
    closed
}

/// Handles one str0m event; returns a reason when the peer must be closed.
pub(super) fn handle_event(
    p: &mut Peer,
    now: Instant,
    e: Event,
    events: &mut VecDeque<MediaEvent>,
    retained: &Retained<'_>,
) -> Option<String> {
    match e {
        Event::IceConnectionStateChange(s) => match s {
            IceConnectionState::Checking | IceConnectionState::New => {
                p.stats.set_state(PeerState::Checking)
            }
            IceConnectionState::Connected | IceConnectionState::Completed => {
                if p.dtls_up {
                    // An ICE restart completed: DTLS and SRTP carry on as they were.
                    p.stats.set_state(PeerState::Connected);
                } else if p.stats.state() != PeerState::Connected {
                    p.stats.set_state(PeerState::IceConnected);
                }
            }
            IceConnectionState::Disconnected => {
                p.stats.set_state(PeerState::Disconnected);
                return Some("ICE failed".into());
            }
        },
        Event::Connected => {
            p.dtls_up = true;
            p.stats.set_state(PeerState::Connected);
            p.replay = !p.subscriptions.is_empty();
            events.push_back(MediaEvent::Connected {
                peer: p.id,
                handle: p.handle,
            });
        }
        Event::MediaData(data) => {
            let entry = p.receiving.entry(data.mid).or_insert((now, false));
            entry.0 = now;
            if !entry.1 {
                entry.1 = true;
                let kind = if data.params.spec().codec.is_audio() {
                    "audio"
                } else {
                    "video"
                };
                events.push_back(MediaEvent::Receiving {
                    peer: p.id,
                    handle: p.handle,
                    mid: data.mid.to_string(),
                    kind,
                    receiving: true,
                });
            }
            let mut out = MediaOut {
                rtc: &mut p.rtc,
                source_keyframes: &mut p.source_keyframes,
            };
            p.handler.incoming_media(&mut out, &data);
        }
        Event::RtpPacket(packet) => {
            let mut out = MediaOut {
                rtc: &mut p.rtc,
                source_keyframes: &mut p.source_keyframes,
            };
            p.handler.incoming_rtp(&mut out, &packet);
        }
        Event::KeyframeRequest(req) => {
            p.counters.keyframe_requests.fetch_add(1, Ordering::Relaxed);
            let mut out = MediaOut {
                rtc: &mut p.rtc,
                source_keyframes: &mut p.source_keyframes,
            };
            p.handler.keyframe_request(&mut out, &req);
        }
        Event::ResendRequest(req) => {
            let mut out = MediaOut {
                rtc: &mut p.rtc,
                source_keyframes: &mut p.source_keyframes,
            };
            let outcome = p.handler.resend_request(&mut out, &req, retained, now);
            let counter = match outcome {
                ResendOutcome::Sent => None, // counted by str0m as it goes out
                ResendOutcome::Missed => {
                    Some((&p.stats.retransmit_missed, &p.counters.retransmit_missed))
                }
                ResendOutcome::Refused(why) => {
                    tracing::trace!(peer = %p.id, seq = %req.seq_no, ?why, "NACK refused");
                    Some((&p.stats.retransmit_refused, &p.counters.retransmit_refused))
                }
            };
            if let Some((peer, shard)) = counter {
                peer.fetch_add(1, Ordering::Relaxed);
                shard.fetch_add(1, Ordering::Relaxed);
            }
        }
        _ => {}
    }
    None
}

pub(super) fn check_receiving(p: &mut Peer, now: Instant, events: &mut VecDeque<MediaEvent>) {
    for (mid, (last, reported)) in p.receiving.iter_mut() {
        if *reported && now.duration_since(*last) >= NO_MEDIA {
            *reported = false;
            let kind = match p.rtc.media(*mid).map(|m| m.kind()) {
                Some(MediaKind::Audio) => "audio",
                _ => "video",
            };
            events.push_back(MediaEvent::Receiving {
                peer: p.id,
                handle: p.handle,
                mid: mid.to_string(),
                kind,
                receiving: false,
            });
        }
    }
}
