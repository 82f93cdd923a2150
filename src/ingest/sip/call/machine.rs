//! A call's decisions, sans-IO: what to answer the peer's re-INVITE, when to CANCEL
//! or BYE, when media starts and on which codec, which of our in-dialog requests are
//! unanswered and when they time out. The task in `call/mod.rs` owns the sockets and
//! the rsipstack dialog; it hands this machine what happened (`handle_*`, with `now`)
//! and carries out what it asks for ([`CallMachine::poll_output`]), until
//! [`Out::Ended`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rsipstack::sip::StatusCode;

use super::super::bridge::{Bridge, BridgeSetup, BridgeStats, BrowserCodec};
use super::super::sdp::{self, Direction, LocalAudio, RemoteAudio, SipCodec};
use super::super::srtp::{Crypto, SrtpLeg};
use super::super::CallEvent;
use super::{ended, IN_FLIGHT, REQUEST_TIMEOUT};
use crate::ids::HandleId;

/// What the call needs to start its media, fixed for the call.
pub(in crate::ingest::sip) struct MediaParams {
    /// The handle the call belongs to (for logs).
    pub(in crate::ingest::sip) handle: HandleId,
    /// What the browser leg carries.
    pub(in crate::ingest::sip) browser: BrowserCodec,
    /// `sip.symmetric_rtp_nat`.
    pub(in crate::ingest::sip) nat: bool,
    /// The call's counters.
    pub(in crate::ingest::sip) stats: Arc<BridgeStats>,
    /// Our SSRC toward the peer.
    pub(in crate::ingest::sip) ssrc: u32,
}

/// A request for the dialog, in the order the machine asks for them.
#[derive(Debug)]
pub(in crate::ingest::sip) enum DialogOut {
    /// CANCEL our INVITE (sent once, however many hangups come before the answer).
    Cancel,
    /// BYE.
    Bye,
    /// Refuse the incoming INVITE with this final code.
    Reject(u16),
    /// The 200 to the incoming INVITE, with this SDP (after our 183).
    Accept(Vec<u8>),
    /// re-INVITE with this SDP (hold, resume); its answer comes back under `id`.
    Reinvite { id: u32, sdp: Vec<u8> },
    /// INFO with this body; its answer comes back under `id`.
    Info {
        id: u32,
        content_type: String,
        body: String,
    },
    /// MESSAGE in the dialog; its answer comes back under `id`.
    Message {
        id: u32,
        content_type: String,
        body: String,
    },
    /// REFER the peer to `to`; its answer comes back under `id`.
    Refer { id: u32, to: rsipstack::sip::Uri },
}

/// What the machine asks of its driver.
#[derive(Debug)]
pub(in crate::ingest::sip) enum Out {
    /// Report this to the plugin.
    Event(CallEvent),
    /// Act on the dialog.
    Dialog(DialogOut),
    /// The call is over (after the outputs before it): report this and stop.
    Ended(CallEvent),
}

/// The answer to a request the peer sent in the dialog.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::ingest::sip) struct Reply {
    pub(in crate::ingest::sip) code: u16,
    /// An SDP body (answers to re-INVITE/UPDATE).
    pub(in crate::ingest::sip) sdp: Option<Vec<u8>>,
}

impl Reply {
    fn code(code: u16) -> Reply {
        Reply { code, sdp: None }
    }
}

enum Phase {
    /// Our INVITE awaits its final answer. `codecs` are those we offered; `ended_early`
    /// is how the dialog ended before that answer came (its answer tells the rest).
    Inviting {
        codecs: Vec<SipCodec>,
        cancelled: bool,
        ended_early: Option<CallEvent>,
    },
    /// Our 183 is out for an incoming call, early media flowing: the 200 waits for
    /// the browser.
    Unaccepted,
    /// Answered.
    Confirmed,
    /// [`Out::Ended`] is queued; nothing more happens.
    Over,
}

/// One of our in-dialog requests awaiting its answer.
struct Pending {
    what: Awaits,
    deadline: Instant,
}

/// What an answer to one of our requests is reported as.
enum Awaits {
    /// A re-INVITE setting our direction.
    Direction(Direction),
    /// An INFO, MESSAGE or REFER, reported as [`CallEvent::Delivery`] under this name.
    Delivery(&'static str),
}

impl Awaits {
    /// The request's name in a [`CallEvent::Delivery`] (a re-INVITE refused by the
    /// bound is reported as `update`, Janus's name for it).
    fn name(&self) -> &'static str {
        match self {
            Awaits::Direction(_) => "update",
            Awaits::Delivery(what) => what,
        }
    }
}

/// One call's signalling state. See the module doc.
pub(in crate::ingest::sip) struct CallMachine {
    params: MediaParams,
    phase: Phase,
    /// Our SDP as last sent (the next offer or answer starts from it).
    sdp: LocalAudio,
    /// SDES-SRTP toward the peer once both sides gave keys.
    srtp: Option<SrtpLeg>,
    /// The media bridge from the peer's first usable SDP on, and its codec.
    bridge: Option<(Bridge, SipCodec)>,
    pending: BTreeMap<u32, Pending>,
    next_id: u32,
    out: VecDeque<Out>,
    /// The wall-clock time at an instant, for the bridge's RTCP timestamps.
    epoch: (Instant, SystemTime),
}

impl CallMachine {
    /// Our INVITE is out with `sdp`, offering `codecs`.
    pub(in crate::ingest::sip) fn outgoing(
        now: Instant,
        wall: SystemTime,
        params: MediaParams,
        sdp: LocalAudio,
        codecs: Vec<SipCodec>,
    ) -> CallMachine {
        let phase = Phase::Inviting {
            codecs,
            cancelled: false,
            ended_early: None,
        };
        CallMachine::new(now, wall, params, sdp, phase)
    }

    /// We answered the peer's INVITE (`remote`, on `codec`) with `sdp`: a 200, or a
    /// 183 when `early` (the 200 then waits for [`CallOp::Accept`](super::super::CallOp)).
    pub(in crate::ingest::sip) fn answered(
        now: Instant,
        wall: SystemTime,
        params: MediaParams,
        sdp: LocalAudio,
        remote: &RemoteAudio,
        codec: SipCodec,
        early: bool,
    ) -> CallMachine {
        let phase = if early {
            Phase::Unaccepted
        } else {
            Phase::Confirmed
        };
        let mut m = CallMachine::new(now, wall, params, sdp, phase);
        let direction = m.sdp.direction;
        let started = key(&mut m.srtp, &mut m.sdp, remote).and_then(|()| {
            m.start(now, remote, codec, direction, !early)
                .map_err(|e| format!("transcoder: {e}"))
        });
        match started {
            Ok(()) if early => {}
            Ok(()) => m.emit(CallEvent::Accepted {
                codec: codec.name(),
            }),
            Err(e) if early => m.end_with(Some(DialogOut::Reject(500)), ended(500, e)),
            Err(e) => m.end_with(Some(DialogOut::Bye), ended(500, e)),
        }
        m
    }

    fn new(
        now: Instant,
        wall: SystemTime,
        params: MediaParams,
        sdp: LocalAudio,
        phase: Phase,
    ) -> CallMachine {
        CallMachine {
            params,
            phase,
            sdp,
            srtp: None,
            bridge: None,
            pending: BTreeMap::new(),
            next_id: 0,
            out: VecDeque::new(),
            epoch: (now, wall),
        }
    }

    /// The next thing to do, in order; [`Out::Ended`] comes last.
    pub(in crate::ingest::sip) fn poll_output(&mut self) -> Option<Out> {
        self.out.pop_front()
    }

    /// When [`CallMachine::handle_timeout`] is next due: the oldest unanswered request's deadline.
    pub(in crate::ingest::sip) fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// The media bridge and its codec, and the SRTP leg (once keyed): what the driver
    /// moves packets through.
    pub(in crate::ingest::sip) fn media(
        &mut self,
    ) -> (Option<(&mut Bridge, SipCodec)>, Option<&mut SrtpLeg>) {
        let bridge = self.bridge.as_mut().map(|(b, c)| (b, *c));
        (bridge, self.srtp.as_mut())
    }

    /// A provisional answer to our INVITE; a 183's SDP starts early media.
    pub(in crate::ingest::sip) fn handle_provisional(
        &mut self,
        now: Instant,
        code: u16,
        reason: String,
        body: &[u8],
    ) {
        let Phase::Inviting { codecs, .. } = &self.phase else {
            return;
        };
        let codecs = codecs.clone();
        self.emit(CallEvent::Progress { code, reason });
        if self.bridge.is_some() || body.is_empty() {
            return;
        }
        let started = media_of(body, &codecs).and_then(|(remote, codec)| {
            key(&mut self.srtp, &mut self.sdp, &remote)?;
            let direction = self.sdp.direction;
            self.start(now, &remote, codec, direction, false)
        });
        if let Err(e) = started {
            tracing::info!(handle = %self.params.handle, error = %e, "no early media");
        }
    }

    /// The final answer to our INVITE: a 2xx's SDP, or how the call ended.
    pub(in crate::ingest::sip) fn handle_final(
        &mut self,
        now: Instant,
        r: Result<&[u8], CallEvent>,
    ) {
        let Phase::Inviting {
            codecs,
            cancelled,
            ended_early,
        } = std::mem::replace(&mut self.phase, Phase::Confirmed)
        else {
            return;
        };
        let body = match r {
            Ok(body) => body,
            Err(end) => return self.end_with(None, end),
        };
        if let Some(end) = ended_early {
            // Answered and ended at once (a BYE right behind the 200).
            return self.end_with(None, end);
        }
        if cancelled {
            // The 200 crossed our CANCEL: rsipstack BYEs it; for the browser the call
            // was cancelled and never answered.
            return self.end_with(None, ended(487, "Request Terminated"));
        }
        let answered = media_of(body, &codecs).and_then(|(remote, codec)| {
            key(&mut self.srtp, &mut self.sdp, &remote).map(|()| (remote, codec))
        });
        match answered {
            // The answer's SDP normally repeats the 183's: same codec, same bridge.
            Ok((remote, codec)) => match self.bridge.as_mut() {
                Some((b, c)) if *c == codec => b.set_remote(&remote),
                _ => {
                    let direction = self.sdp.direction;
                    if let Err(e) = self.start(now, &remote, codec, direction, true) {
                        return self.end_with(
                            Some(DialogOut::Bye),
                            ended(500, format!("transcoder: {e}")),
                        );
                    }
                }
            },
            Err(e) if self.bridge.is_none() => {
                tracing::info!(handle = %self.params.handle, error = %e, "SIP answer unusable: hanging up");
                return self.end_with(
                    Some(DialogOut::Bye),
                    ended(488, format!("Not Acceptable Here ({e})")),
                );
            }
            // Early media's SDP stands.
            Err(_) => {}
        }
        let codec = self.bridge.as_ref().map(|(_, c)| *c);
        // Later offers (hold, resume) carry only the codec the call settled on.
        self.sdp.codecs = codec.into_iter().collect();
        if let Some(c) = codec {
            self.sdp.settle_events(c);
        }
        if let Some((b, _)) = self.bridge.as_mut() {
            b.answered();
        }
        self.emit(CallEvent::Accepted {
            codec: codec.map(SipCodec::name).unwrap_or_default(),
        });
    }

    /// The dialog ended on the peer's side (BYE, CANCEL, timeout), as `end` says.
    /// Before our INVITE's final answer, that answer decides what is reported.
    pub(in crate::ingest::sip) fn handle_terminated(&mut self, end: CallEvent) {
        match &mut self.phase {
            Phase::Inviting { ended_early, .. } => *ended_early = Some(end),
            Phase::Over => {}
            _ => self.end_with(None, end),
        }
    }

    /// A re-INVITE or UPDATE from the peer with `body`: new SDP on the same sockets
    /// (hold, resume, a new address), or none (we offer what we have).
    pub(in crate::ingest::sip) fn handle_peer_offer(&mut self, body: &[u8]) -> Reply {
        let Some((bridge, _)) = self.bridge.as_mut() else {
            return Reply::code(488);
        };
        let body = String::from_utf8_lossy(body);
        match sdp::parse(&body) {
            Ok(r) if r.rtp.port() != 0 => {
                if let Err(e) = key(&mut self.srtp, &mut self.sdp, &r) {
                    tracing::info!(handle = %self.params.handle, error = %e, "re-INVITE refused");
                    return Reply::code(488);
                }
                bridge.set_remote(&r);
                self.sdp.version += 1;
                // On hold by our own choice we stay so; else we mirror the peer.
                let ours = if self.sdp.direction == Direction::SendRecv {
                    r.direction.reversed()
                } else {
                    self.sdp.direction
                };
                let mut answer = self.sdp.clone();
                answer.direction = ours;
                bridge.set_direction(ours);
                self.emit(CallEvent::Updated {
                    direction: r.direction,
                });
                Reply {
                    code: 200,
                    sdp: Some(answer.to_sdp().into_bytes()),
                }
            }
            _ if body.trim().is_empty() => Reply {
                code: 200,
                sdp: Some(self.sdp.to_sdp().into_bytes()),
            },
            _ => Reply::code(488),
        }
    }

    /// An INFO from the peer: DTMF (`application/dtmf-relay`) or anything else.
    pub(in crate::ingest::sip) fn handle_info(
        &mut self,
        content_type: &str,
        body: String,
    ) -> Reply {
        let ct = content_type.to_ascii_lowercase();
        if ct.starts_with("application/dtmf-relay") || ct.starts_with("application/dtmf") {
            if let Some((signal, duration)) = super::parse_dtmf_relay(&body) {
                self.emit(CallEvent::Dtmf {
                    signal,
                    duration,
                    info: true,
                });
            }
        } else {
            self.emit(CallEvent::Info {
                content_type: ct,
                content: body,
            });
        }
        Reply::code(200)
    }

    /// A MESSAGE from the peer in the dialog.
    pub(in crate::ingest::sip) fn handle_message(
        &mut self,
        content_type: &str,
        body: String,
    ) -> Reply {
        self.emit(CallEvent::Message {
            content_type: content_type.to_owned(),
            content: body,
        });
        Reply::code(200)
    }

    /// A REFER from the peer (it transfers us): 202 and reported, or 400 without a Refer-To.
    pub(in crate::ingest::sip) fn handle_refer(
        &mut self,
        refer_to: Option<&str>,
        referred_by: Option<&str>,
    ) -> Reply {
        let Some(to) = refer_to else {
            return Reply::code(400);
        };
        self.emit(CallEvent::Transfer {
            refer_to: to.trim_matches(|c| c == '<' || c == '>').to_owned(),
            referred_by: referred_by.map(str::to_owned),
        });
        Reply::code(202)
    }

    /// What the browser asked for.
    pub(in crate::ingest::sip) fn handle_op(&mut self, now: Instant, op: super::super::CallOp) {
        use super::super::CallOp;
        match &mut self.phase {
            Phase::Over => {}
            // Before the answer only a hangup counts: CANCEL, then the INVITE ends with
            // 487 (or a 2xx that rsipstack BYEs).
            Phase::Inviting { cancelled, .. } => match op {
                CallOp::Hangup if !*cancelled => {
                    *cancelled = true;
                    self.out.push_back(Out::Dialog(DialogOut::Cancel));
                }
                CallOp::Hangup => {}
                other => tracing::debug!(?other, "ignored before the call is answered"),
            },
            Phase::Unaccepted => match op {
                CallOp::Accept(_) => {
                    self.phase = Phase::Confirmed;
                    let sdp = self.sdp.to_sdp().into_bytes();
                    self.out.push_back(Out::Dialog(DialogOut::Accept(sdp)));
                    let codec = match self.bridge.as_mut() {
                        Some((b, c)) => {
                            b.answered();
                            c.name()
                        }
                        None => "",
                    };
                    self.emit(CallEvent::Accepted { codec });
                }
                CallOp::Decline(code) => {
                    let end = ended(code, StatusCode::from(code).text());
                    self.end_with(Some(DialogOut::Reject(code)), end);
                }
                CallOp::Hangup => self.end_with(
                    Some(DialogOut::Reject(480)),
                    ended(480, "Temporarily Unavailable"),
                ),
                other => tracing::debug!(?other, "ignored before the call is accepted"),
            },
            Phase::Confirmed => self.confirmed_op(now, op),
        }
    }

    fn confirmed_op(&mut self, now: Instant, op: super::super::CallOp) {
        use super::super::CallOp;
        match op {
            CallOp::Hangup => self.end_with(Some(DialogOut::Bye), ended(200, "Session Terminated")),
            CallOp::Direction(d) => {
                if self.bridge.is_none() {
                    return;
                }
                // Nothing changes unless the re-INVITE goes out.
                let Some(id) = self.request(now, Awaits::Direction(d)) else {
                    return;
                };
                if let Some((bridge, _)) = self.bridge.as_mut() {
                    bridge.set_direction(d);
                }
                self.sdp.version += 1;
                self.sdp.direction = d;
                let sdp = self.sdp.to_sdp().into_bytes();
                self.out
                    .push_back(Out::Dialog(DialogOut::Reinvite { id, sdp }));
            }
            CallOp::DtmfInfo { digit, duration } => {
                if let Some(id) = self.request(now, Awaits::Delivery("info")) {
                    self.out.push_back(Out::Dialog(DialogOut::Info {
                        id,
                        content_type: "application/dtmf-relay".into(),
                        body: format!("Signal={digit}\r\nDuration={duration}\r\n"),
                    }));
                }
            }
            CallOp::Info {
                content_type,
                content,
            } => {
                if let Some(id) = self.request(now, Awaits::Delivery("info")) {
                    self.out.push_back(Out::Dialog(DialogOut::Info {
                        id,
                        content_type,
                        body: content,
                    }));
                }
            }
            CallOp::Message {
                content_type,
                content,
            } => {
                if let Some(id) = self.request(now, Awaits::Delivery("message")) {
                    self.out.push_back(Out::Dialog(DialogOut::Message {
                        id,
                        content_type,
                        body: content,
                    }));
                }
            }
            CallOp::Transfer { uri } => {
                // rsipstack's parser takes CR/LF into a host name: refused here too,
                // whatever the plugin checked.
                let to = (!uri.chars().any(char::is_control))
                    .then(|| uri.parse::<rsipstack::sip::Uri>().ok())
                    .flatten();
                let Some(to) = to else {
                    return self.emit(CallEvent::Delivery {
                        what: "transfer",
                        code: 400,
                        reason: StatusCode::from(400).text().to_owned(),
                    });
                };
                if let Some(id) = self.request(now, Awaits::Delivery("transfer")) {
                    self.out.push_back(Out::Dialog(DialogOut::Refer { id, to }));
                }
            }
            CallOp::Accept(_) | CallOp::Progress(_) | CallOp::Ringing | CallOp::Decline(_) => {}
        }
    }

    /// The final answer to our request `id` (INFO, MESSAGE, REFER, re-INVITE).
    pub(in crate::ingest::sip) fn handle_answer(&mut self, id: u32, code: u16, reason: String) {
        if matches!(self.phase, Phase::Over) {
            return;
        }
        if let Some(p) = self.pending.remove(&id) {
            self.answer(p.what, code, reason);
        }
    }

    /// Time passed: requests unanswered for [`REQUEST_TIMEOUT`] end with 408.
    pub(in crate::ingest::sip) fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u32> = (self.pending.iter())
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(p) = self.pending.remove(&id) {
                self.answer(p.what, 408, "Request Timeout".into());
            }
        }
    }

    fn answer(&mut self, what: Awaits, code: u16, reason: String) {
        self.emit(match what {
            Awaits::Direction(direction) => CallEvent::DirectionSet { direction, code },
            Awaits::Delivery(what) => CallEvent::Delivery { what, code, reason },
        });
    }

    /// An id for one more request of ours, or `None` (a 503 reported as its outcome)
    /// when [`IN_FLIGHT`] are unanswered already.
    fn request(&mut self, now: Instant, p: Awaits) -> Option<u32> {
        if self.pending.len() >= IN_FLIGHT {
            self.emit(CallEvent::Delivery {
                what: p.name(),
                code: 503,
                reason: format!("{IN_FLIGHT} requests in this dialog are unanswered"),
            });
            return None;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let deadline = now + REQUEST_TIMEOUT;
        self.pending.insert(id, Pending { what: p, deadline });
        Some(id)
    }

    /// The bridge, once the peer's SDP is known.
    fn start(
        &mut self,
        now: Instant,
        remote: &RemoteAudio,
        codec: SipCodec,
        direction: Direction,
        answered: bool,
    ) -> Result<(), String> {
        let setup = BridgeSetup {
            codec,
            browser: self.params.browser,
            remote: remote.clone(),
            ssrc: self.params.ssrc,
            direction,
            nat: self.params.nat,
            answered,
        };
        tracing::info!(handle = %self.params.handle, remote = %remote.rtp, codec = codec.name(), "SIP media up");
        let wall = self.epoch.1 + now.saturating_duration_since(self.epoch.0);
        let bridge = Bridge::new(now, wall, setup, self.params.stats.clone())?;
        self.bridge = Some((bridge, codec));
        Ok(())
    }

    fn emit(&mut self, e: CallEvent) {
        self.out.push_back(Out::Event(e));
    }

    fn end_with(&mut self, action: Option<DialogOut>, end: CallEvent) {
        if matches!(self.phase, Phase::Over) {
            return;
        }
        self.phase = Phase::Over;
        self.pending.clear();
        self.out.extend(action.map(Out::Dialog));
        self.out.push_back(Out::Ended(end));
    }
}

/// The peer's audio and the codec we share, from an SDP body.
fn media_of(body: &[u8], codecs: &[SipCodec]) -> Result<(RemoteAudio, SipCodec), String> {
    let remote = sdp::parse(&String::from_utf8_lossy(body)).map_err(|e| e.to_string())?;
    let codec = sdp::choose(&remote, codecs).map_err(|e| e.to_string())?;
    Ok((remote, codec))
}

/// Keys from the peer's SDP (the answer to ours, its offer we answered, or a later
/// offer): SRTP starts when both sides gave a key of the same suite, the peer's new
/// key replaces its old one. Without a key from the peer the call stays plain unless
/// we (or it) asked for RTP/SAVP; then our own key is dropped so later offers are
/// plain too.
fn key(
    srtp: &mut Option<SrtpLeg>,
    ours: &mut LocalAudio,
    remote: &RemoteAudio,
) -> Result<(), String> {
    let Some(mine) = ours.crypto.as_mut() else {
        return match remote.secure {
            true => Err("the peer asks for SRTP that was not offered".into()),
            false => Ok(()),
        };
    };
    // The line with our tag; in a new offer from the peer, any of our suite (the
    // answer then carries its tag).
    let same_suite = |c: &&Crypto| c.key.suite == mine.key.suite;
    let theirs = (remote.crypto.iter().filter(same_suite))
        .find(|c| c.tag == mine.tag)
        .or_else(|| remote.crypto.iter().find(same_suite));
    match (theirs, srtp.as_mut()) {
        (Some(t), Some(leg)) => {
            mine.tag = t.tag;
            leg.set_inbound(&t.key).map_err(|e| e.to_string())
        }
        (Some(t), None) => {
            mine.tag = t.tag;
            *srtp = Some(SrtpLeg::new(&mine.key, &t.key).map_err(|e| e.to_string())?);
            tracing::debug!(suite = t.key.suite.name(), "SIP media keyed (SDES-SRTP)");
            Ok(())
        }
        (None, Some(_)) => Err("the peer's SDP drops the SRTP keys".into()),
        (None, None) if ours.secure || remote.secure => {
            Err("SDES-SRTP required but the SDP has no matching a=crypto".into())
        }
        (None, None) => {
            ours.crypto = None;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::ingest::sip::sdp::tests::{BARESIP_OFFER, BARESIP_SRTP_OFFER, SIPP_OFFER};
    use crate::ingest::sip::srtp::Suite;
    use crate::ingest::sip::CallOp;

    fn t0() -> Instant {
        ManualClock::new().now()
    }

    fn wall() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn params(browser: BrowserCodec) -> MediaParams {
        MediaParams {
            handle: HandleId(7),
            browser,
            nat: true,
            stats: Arc::default(),
            ssrc: 0x1234_5678,
        }
    }

    fn ours(codecs: Vec<SipCodec>) -> LocalAudio {
        LocalAudio {
            rtp: SocketAddr::from(([127, 0, 0, 1], 40_000)),
            codecs,
            telephone_event: Some(101),
            telephone_event_48k: None,
            opus_pt: 111,
            direction: Direction::SendRecv,
            session_id: 42,
            version: 1,
            secure: false,
            crypto: None,
        }
    }

    fn calling() -> CallMachine {
        let codecs = super::super::SIP_CODECS.to_vec();
        let sdp = ours(codecs.clone());
        CallMachine::outgoing(t0(), wall(), params(BrowserCodec::Opus), sdp, codecs)
    }

    /// An incoming call from sipp (PCMU) we answered (or, `early`, sent 183 to).
    fn answered_sipp(now: Instant, early: bool) -> CallMachine {
        let remote = sdp::parse(SIPP_OFFER).unwrap();
        let sdp = ours(vec![SipCodec::Pcmu]);
        let p = params(BrowserCodec::Same);
        CallMachine::answered(now, wall(), p, sdp, &remote, SipCodec::Pcmu, early)
    }

    fn drain(m: &mut CallMachine) -> Vec<Out> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    fn events(outs: &[Out]) -> Vec<CallEvent> {
        (outs.iter())
            .filter_map(|o| match o {
                Out::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn ended_with(outs: &[Out]) -> Option<(u16, String)> {
        outs.iter().find_map(|o| match o {
            Out::Ended(CallEvent::Ended { code, reason }) => Some((*code, reason.clone())),
            _ => None,
        })
    }

    fn sdp_text(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn early_media_from_a_183_continues_into_the_answer() {
        let now = t0();
        let mut m = calling();
        m.handle_provisional(now, 180, "Ringing".into(), b"");
        assert!(m.media().0.is_none(), "a 180 without SDP starts nothing");
        m.handle_provisional(
            now,
            183,
            "Session Progress".into(),
            BARESIP_OFFER.as_bytes(),
        );
        let (bridge, _) = m.media();
        let (bridge, codec) = bridge.expect("the 183's SDP starts early media");
        // Opus is first in our offer but baresip's answer has G.722 first of ours.
        assert_eq!(codec, SipCodec::G722);
        assert_eq!(
            bridge.remote_rtp(),
            SocketAddr::from(([127, 0, 0, 1], 10234))
        );
        let progress: Vec<u16> = (events(&drain(&mut m)).iter())
            .filter_map(|e| match e {
                CallEvent::Progress { code, .. } => Some(*code),
                _ => None,
            })
            .collect();
        assert_eq!(progress, [180, 183]);

        m.handle_final(now, Ok(BARESIP_OFFER.as_bytes()));
        let outs = drain(&mut m);
        assert_eq!(events(&outs), [CallEvent::Accepted { codec: "G722" }]);
        // Later offers carry only the codec the call settled on.
        m.handle_op(now, CallOp::Direction(Direction::SendOnly));
        let Some(Out::Dialog(DialogOut::Reinvite { sdp, .. })) = m.poll_output() else {
            panic!("hold is a re-INVITE");
        };
        let sdp = sdp_text(&sdp);
        assert!(sdp.contains("m=audio 40000 RTP/AVP 9 101\r\n"), "{sdp}");
        assert!(
            sdp.contains("a=sendonly") && sdp.contains("o=- 42 2 "),
            "{sdp}"
        );
    }

    #[test]
    fn hangups_before_the_answer_cancel_once() {
        let now = t0();
        let mut m = calling();
        m.handle_op(now, CallOp::Hangup);
        m.handle_op(now, CallOp::Hangup);
        m.handle_op(now, CallOp::Direction(Direction::SendOnly));
        let outs = drain(&mut m);
        assert!(
            matches!(&outs[..], [Out::Dialog(DialogOut::Cancel)]),
            "{outs:?}"
        );
        m.handle_final(now, Err(ended(487, "Request Terminated")));
        assert_eq!(
            ended_with(&drain(&mut m)),
            Some((487, "Request Terminated".into()))
        );
    }

    #[test]
    fn a_200_crossing_our_cancel_is_never_accepted() {
        let now = t0();
        let mut m = calling();
        m.handle_op(now, CallOp::Hangup);
        drain(&mut m);
        m.handle_final(now, Ok(BARESIP_OFFER.as_bytes()));
        let outs = drain(&mut m);
        assert!(events(&outs).is_empty(), "{outs:?}");
        assert_eq!(ended_with(&outs), Some((487, "Request Terminated".into())));
        // rsipstack BYEs that 200 itself: no second BYE from us.
        assert!(!outs.iter().any(|o| matches!(o, Out::Dialog(_))));
    }

    #[test]
    fn a_bye_right_behind_the_200_ends_the_call_unanswered() {
        let now = t0();
        let mut m = calling();
        m.handle_terminated(ended(200, "Session Terminated"));
        assert!(drain(&mut m).is_empty(), "the final answer decides");
        m.handle_final(now, Ok(BARESIP_OFFER.as_bytes()));
        let outs = drain(&mut m);
        assert!(events(&outs).is_empty(), "{outs:?}");
        assert_eq!(ended_with(&outs), Some((200, "Session Terminated".into())));
    }

    #[test]
    fn an_unusable_answer_hangs_up_with_488() {
        let now = t0();
        let mut m = calling();
        let no_common = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
        m.handle_final(now, Ok(no_common.as_bytes()));
        let outs = drain(&mut m);
        assert!(matches!(outs[0], Out::Dialog(DialogOut::Bye)), "{outs:?}");
        assert_eq!(ended_with(&outs).map(|e| e.0), Some(488));
    }

    #[test]
    fn peer_hold_and_resume_are_mirrored() {
        let now = t0();
        let mut m = answered_sipp(now, false);
        assert_eq!(
            events(&drain(&mut m)),
            [CallEvent::Accepted { codec: "PCMU" }]
        );

        let hold = format!("{SIPP_OFFER}a=sendonly\r\n");
        let r = m.handle_peer_offer(hold.as_bytes());
        assert_eq!(r.code, 200);
        let answer = sdp_text(r.sdp.as_deref().unwrap());
        assert!(
            answer.contains("a=recvonly") && answer.contains("o=- 42 2 "),
            "{answer}"
        );
        let updated = CallEvent::Updated {
            direction: Direction::SendOnly,
        };
        assert_eq!(events(&drain(&mut m)), [updated]);

        // Resumed, from a new address.
        let resume = SIPP_OFFER.replace("m=audio 6000", "m=audio 6100");
        let r = m.handle_peer_offer(resume.as_bytes());
        assert!(sdp_text(&r.sdp.unwrap()).contains("a=sendrecv"));
        let (bridge, _) = m.media();
        assert_eq!(bridge.unwrap().0.remote_rtp().port(), 6100);
        drain(&mut m);

        // No offer: we offer what we have.
        let r = m.handle_peer_offer(b"");
        assert_eq!(r.code, 200);
        assert!(sdp_text(&r.sdp.unwrap()).contains("m=audio 40000 RTP/AVP 0 101"));
        // Refused: garbage, a refused stream, a codec change to nothing we know.
        assert_eq!(m.handle_peer_offer(b"INVITE\r\n\xff\xfe"), Reply::code(488));
        let refused = SIPP_OFFER.replace("m=audio 6000", "m=audio 0");
        assert_eq!(m.handle_peer_offer(refused.as_bytes()), Reply::code(488));
        assert!(drain(&mut m).is_empty());
    }

    #[test]
    fn our_hold_waits_for_its_answer_or_times_out() {
        let clock = ManualClock::new();
        let mut m = answered_sipp(clock.now(), false);
        drain(&mut m);
        m.handle_op(clock.now(), CallOp::Direction(Direction::SendOnly));
        let Some(Out::Dialog(DialogOut::Reinvite { id, sdp })) = m.poll_output() else {
            panic!("hold is a re-INVITE");
        };
        assert!(sdp_text(&sdp).contains("a=sendonly"));
        assert_eq!(m.poll_timeout(), Some(clock.now() + REQUEST_TIMEOUT));
        m.handle_answer(id, 200, "OK".into());
        let set = CallEvent::DirectionSet {
            direction: Direction::SendOnly,
            code: 200,
        };
        assert_eq!(events(&drain(&mut m)), [set]);
        assert_eq!(m.poll_timeout(), None);

        // Resume: no answer.
        clock.advance(Duration::from_secs(1));
        m.handle_op(clock.now(), CallOp::Direction(Direction::SendRecv));
        let Some(Out::Dialog(DialogOut::Reinvite { id, .. })) = m.poll_output() else {
            panic!("resume is a re-INVITE");
        };
        clock.advance(REQUEST_TIMEOUT - Duration::from_millis(1));
        m.handle_timeout(clock.now());
        assert!(drain(&mut m).is_empty(), "not yet due");
        clock.advance(Duration::from_millis(1));
        m.handle_timeout(clock.now());
        let timed_out = CallEvent::DirectionSet {
            direction: Direction::SendRecv,
            code: 408,
        };
        assert_eq!(events(&drain(&mut m)), [timed_out]);
        // Its late answer is not reported twice.
        m.handle_answer(id, 200, "OK".into());
        assert!(drain(&mut m).is_empty());
    }

    #[test]
    fn requests_past_the_bound_are_refused_with_503() {
        let now = t0();
        let mut m = answered_sipp(now, false);
        drain(&mut m);
        for i in 0..IN_FLIGHT + 1 {
            let info = CallOp::Info {
                content_type: "text/plain".into(),
                content: format!("{i}\r\n"),
            };
            m.handle_op(now, info);
        }
        let outs = drain(&mut m);
        let sent = (outs.iter())
            .filter(|o| matches!(o, Out::Dialog(DialogOut::Info { .. })))
            .count();
        assert_eq!(sent, IN_FLIGHT);
        let refused = events(&outs);
        assert!(
            matches!(
                &refused[..],
                [CallEvent::Delivery {
                    what: "info",
                    code: 503,
                    ..
                }]
            ),
            "{refused:?}"
        );
        // A hold refused by the bound changes nothing: the next one offers version 2.
        m.handle_op(now, CallOp::Direction(Direction::SendOnly));
        let refused = events(&drain(&mut m));
        assert!(
            matches!(
                &refused[..],
                [CallEvent::Delivery {
                    what: "update",
                    code: 503,
                    ..
                }]
            ),
            "{refused:?}"
        );
        assert_eq!(m.media().0.unwrap().0.direction(), Direction::SendRecv);
        // One answered: room for one more.
        m.handle_answer(3, 200, "OK".into());
        m.handle_op(
            now,
            CallOp::DtmfInfo {
                digit: '5',
                duration: 160,
            },
        );
        let outs = drain(&mut m);
        assert!(
            matches!(
                &outs[..],
                [Out::Event(CallEvent::Delivery { code: 200, .. }), Out::Dialog(DialogOut::Info { body, .. })]
                    if body == "Signal=5\r\nDuration=160\r\n"
            ),
            "{outs:?}"
        );
        m.handle_answer(4, 200, "OK".into());
        drain(&mut m);
        m.handle_op(now, CallOp::Direction(Direction::SendOnly));
        let Some(Out::Dialog(DialogOut::Reinvite { sdp, .. })) = m.poll_output() else {
            panic!("hold is a re-INVITE");
        };
        assert!(sdp_text(&sdp).contains("o=- 42 2 "), "{}", sdp_text(&sdp));
    }

    #[test]
    fn transfers_both_ways() {
        let now = t0();
        let mut m = answered_sipp(now, false);
        drain(&mut m);
        // The browser transfers the peer.
        m.handle_op(
            now,
            CallOp::Transfer {
                uri: "sip:carol@example.org".into(),
            },
        );
        let Some(Out::Dialog(DialogOut::Refer { id, to })) = m.poll_output() else {
            panic!("a transfer is a REFER");
        };
        assert_eq!(to.to_string(), "sip:carol@example.org");
        m.handle_answer(id, 202, "Accepted".into());
        let accepted = CallEvent::Delivery {
            what: "transfer",
            code: 202,
            reason: "Accepted".into(),
        };
        assert_eq!(events(&drain(&mut m)), [accepted]);
        m.handle_op(
            now,
            CallOp::Transfer {
                uri: "carol\r\nVia: x".into(),
            },
        );
        let outs = drain(&mut m);
        assert!(
            matches!(
                &outs[..],
                [Out::Event(CallEvent::Delivery { code: 400, .. })]
            ),
            "{outs:?}"
        );

        // The peer transfers us.
        let r = m.handle_refer(
            Some("<sip:dave@example.org>"),
            Some("<sip:bob@example.org>"),
        );
        assert_eq!(r, Reply::code(202));
        let transfer = CallEvent::Transfer {
            refer_to: "sip:dave@example.org".into(),
            referred_by: Some("<sip:bob@example.org>".into()),
        };
        assert_eq!(events(&drain(&mut m)), [transfer]);
        assert_eq!(m.handle_refer(None, None), Reply::code(400));
        assert!(drain(&mut m).is_empty());
    }

    #[test]
    fn incoming_early_media_then_accept_decline_or_hangup() {
        let now = t0();
        let mut m = answered_sipp(now, true);
        assert!(drain(&mut m).is_empty(), "a 183 is not an answer");
        assert!(m.media().0.is_some(), "early media flows");
        m.handle_op(now, CallOp::Direction(Direction::SendOnly));
        assert!(drain(&mut m).is_empty(), "no re-INVITE before the 200");
        m.handle_op(now, CallOp::Accept(None));
        let outs = drain(&mut m);
        assert!(
            matches!(&outs[0], Out::Dialog(DialogOut::Accept(sdp)) if sdp_text(sdp).contains("a=sendrecv"))
        );
        assert_eq!(events(&outs), [CallEvent::Accepted { codec: "PCMU" }]);

        let mut m = answered_sipp(now, true);
        m.handle_op(now, CallOp::Decline(486));
        let outs = drain(&mut m);
        assert!(matches!(outs[0], Out::Dialog(DialogOut::Reject(486))));
        assert_eq!(ended_with(&outs), Some((486, "Busy Here".into())));

        let mut m = answered_sipp(now, true);
        m.handle_op(now, CallOp::Hangup);
        let outs = drain(&mut m);
        assert!(matches!(outs[0], Out::Dialog(DialogOut::Reject(480))));
        assert_eq!(ended_with(&outs).map(|e| e.0), Some(480));

        // The caller gives up during early media.
        let mut m = answered_sipp(now, true);
        m.handle_terminated(ended(487, "Request Terminated"));
        assert_eq!(ended_with(&drain(&mut m)).map(|e| e.0), Some(487));
    }

    #[test]
    fn hangup_races_end_the_call_once() {
        let now = t0();
        // We hang up as the peer's BYE arrives.
        let mut m = answered_sipp(now, false);
        drain(&mut m);
        m.handle_op(now, CallOp::Hangup);
        m.handle_terminated(ended(200, "Session Terminated"));
        m.handle_op(now, CallOp::Hangup);
        let outs = drain(&mut m);
        let ends = outs.iter().filter(|o| matches!(o, Out::Ended(_))).count();
        let byes = (outs.iter())
            .filter(|o| matches!(o, Out::Dialog(DialogOut::Bye)))
            .count();
        assert_eq!((ends, byes), (1, 1), "{outs:?}");

        // The peer's BYE first: no BYE of ours; a pending hold's answer is not reported.
        let mut m = answered_sipp(now, false);
        drain(&mut m);
        m.handle_op(now, CallOp::Direction(Direction::Inactive));
        drain(&mut m);
        m.handle_terminated(ended(200, "Session Terminated"));
        m.handle_op(now, CallOp::Hangup);
        m.handle_answer(0, 200, "OK".into());
        m.handle_timeout(now + REQUEST_TIMEOUT * 2);
        let outs = drain(&mut m);
        assert!(matches!(&outs[..], [Out::Ended(_)]), "{outs:?}");
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn sdes_keys_from_the_offer_and_a_reinvite_dropping_them() {
        let now = t0();
        let remote = sdp::parse(BARESIP_SRTP_OFFER).unwrap();
        let mut sdp = ours(vec![SipCodec::Pcmu]);
        sdp.crypto = Some(Crypto::generate(1, Suite::AesCm128HmacSha1_80));
        sdp.secure = true;
        let p = params(BrowserCodec::Same);
        let mut m = CallMachine::answered(now, wall(), p, sdp, &remote, SipCodec::Pcmu, false);
        assert_eq!(
            events(&drain(&mut m)),
            [CallEvent::Accepted { codec: "PCMU" }]
        );
        assert!(m.media().1.is_some(), "SRTP keyed");
        // A re-INVITE without keys on a secure call is refused; the call stays keyed.
        let plain = SIPP_OFFER.replace("RTP/AVP", "RTP/SAVP");
        assert_eq!(m.handle_peer_offer(plain.as_bytes()), Reply::code(488));
        assert!(m.media().1.is_some());

        // Keys where none were offered: the call cannot start.
        let sdp = ours(vec![SipCodec::Pcmu]);
        let p = params(BrowserCodec::Same);
        let mut m = CallMachine::answered(now, wall(), p, sdp, &remote, SipCodec::Pcmu, false);
        let outs = drain(&mut m);
        assert!(matches!(outs[0], Out::Dialog(DialogOut::Bye)), "{outs:?}");
        assert_eq!(ended_with(&outs).map(|e| e.0), Some(500));
    }

    #[test]
    fn info_and_message_from_the_peer() {
        let now = t0();
        let mut m = answered_sipp(now, false);
        drain(&mut m);
        let r = m.handle_info(
            "Application/DTMF-Relay",
            "Signal=#\r\nDuration=250\r\n".into(),
        );
        assert_eq!(r, Reply::code(200));
        let r = m.handle_info("text/plain", "héllo\r\n".into());
        assert_eq!(r, Reply::code(200));
        m.handle_message("text/plain", "x".repeat(60_000));
        let got = events(&drain(&mut m));
        assert_eq!(
            got[0],
            CallEvent::Dtmf {
                signal: '#',
                duration: 250,
                info: true
            }
        );
        assert_eq!(
            got[1],
            CallEvent::Info {
                content_type: "text/plain".into(),
                content: "héllo\r\n".into()
            }
        );
        assert!(matches!(&got[2], CallEvent::Message { content, .. } if content.len() == 60_000));
    }
}
