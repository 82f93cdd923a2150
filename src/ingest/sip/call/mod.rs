//! One call: a task that owns its SIP dialog (through rsipstack), its two media
//! sockets (RTP and RTCP toward the SIP peer) and its [`Bridge`]. The driver
//! starts it and passes it [`CallOp`]s; it reports [`CallEvent`]s.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::{InviteAsyncResult, InviteOption};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, StatusCode};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::bridge::{Bridge, BridgeSetup, BridgeStats, BrowserCodec, BrowserFrame, Dest};
use super::sdp::{self, Direction, LocalAudio, RemoteAudio, SipCodec};
use super::srtp::{Crypto, SrtpLeg};
use super::{CallEvent, CallMedia, CallOp, SipEvent, SrtpMode};
use crate::ids::HandleId;
use crate::ingest::IngestEvent;
use crate::media::source::SourcePacket;
use crate::media::webrtc::queue::MediaTx;
use cardea_codecs::rtp::RtpHeader;

mod dialog;
mod legs;
pub use dialog::parse_dtmf_relay;
pub(in crate::ingest::sip) use dialog::*;
use legs::*;

/// Our telephone-event payload type on the SIP leg.
const TELEPHONE_EVENT_PT: u8 = 101;
/// Ours for telephone-event/48000, offered beside Opus.
const TELEPHONE_EVENT_48K_PT: u8 = 102;
/// The codecs we offer and accept on the SIP leg, preferred first: Opus is the
/// browser's own (relayed, no transcoding, fullband), G.722 is wideband.
pub const SIP_CODECS: [SipCodec; 4] = [
    SipCodec::Opus,
    SipCodec::G722,
    SipCodec::Pcmu,
    SipCodec::Pcma,
];
/// How long an INFO/MESSAGE/REFER/re-INVITE waits for its answer (timer F).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(32);
/// In-dialog requests we sent (INFO, MESSAGE, REFER, re-INVITE) that may await their answer at once.
const IN_FLIGHT: usize = 16;

/// What every call task needs from the driver.
#[derive(Clone)]
pub struct CallCtx {
    /// The handle the call belongs to.
    pub handle: HandleId,
    /// Where events go (the core's channel).
    pub events: mpsc::Sender<IngestEvent>,
    /// The media engine, for the audio toward the browser.
    pub engine: MediaTx,
    /// Where the media sockets bind.
    pub media_ip: IpAddr,
    /// The address written in our SDP.
    pub sdp_ip: IpAddr,
    /// `sip.symmetric_rtp_nat`: latch the phone's media where it comes from.
    pub nat: bool,
}

impl CallCtx {
    pub(super) fn emit(&self, what: CallEvent) {
        super::driver::report(
            &self.events,
            SipEvent::Call {
                handle: self.handle,
                what,
            },
        );
    }

    /// Room for the outcome of one more in-dialog request we send, or `None` (and a
    /// 503 reported as `what`'s outcome) when [`IN_FLIGHT`] are unanswered already.
    fn slot(
        &self,
        done: &mpsc::Sender<CallEvent>,
        what: &'static str,
    ) -> Option<mpsc::OwnedPermit<CallEvent>> {
        let slot = done.clone().try_reserve_owned().ok();
        if slot.is_none() {
            self.emit(CallEvent::Delivery {
                what,
                code: 503,
                reason: format!("{IN_FLIGHT} requests in this dialog are unanswered"),
            });
        }
        slot
    }
}

/// The RTP socket on an even port and the RTCP socket on the next one.
async fn bind_pair(ip: IpAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..20 {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
            return Ok((rtp, rtcp));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free RTP/RTCP port pair",
    ))
}

/// This task is a driver: it reads the clock and hands `now` to the bridge.
#[allow(clippy::disallowed_methods)] // the driver owns the clock
fn now() -> Instant {
    Instant::now()
}

#[allow(clippy::disallowed_methods)] // RTCP sender reports carry wall-clock time
fn wall_clock() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

/// Sockets bound and our SDP, before the peer's is known.
struct LocalMedia {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    sdp: LocalAudio,
}

async fn local_media(ctx: &CallCtx, codecs: Vec<SipCodec>) -> std::io::Result<LocalMedia> {
    let (rtp, rtcp) = bind_pair(ctx.media_ip).await?;
    let port = rtp.local_addr()?.port();
    let telephone_event_48k = codecs
        .contains(&SipCodec::Opus)
        .then_some(TELEPHONE_EVENT_48K_PT);
    Ok(LocalMedia {
        rtp,
        rtcp,
        sdp: LocalAudio {
            rtp: SocketAddr::new(ctx.sdp_ip, port),
            codecs,
            telephone_event: Some(TELEPHONE_EVENT_PT),
            telephone_event_48k,
            opus_pt: SipCodec::Opus.pt(),
            direction: Direction::SendRecv,
            session_id: rand::random::<u32>() as u64,
            version: 1,
            secure: false,
            crypto: None,
        },
    })
}

/// Places a call: INVITE with our SDP, then the call until it ends.
pub async fn outgoing(
    ctx: CallCtx,
    layer: Arc<DialogLayer>,
    mut opt: InviteOption,
    media: CallMedia,
    mut ops: mpsc::Receiver<CallOp>,
) {
    // Without transcoding the browser's codec (PCMU) is the only one both legs can share.
    let codecs = match media.browser {
        BrowserCodec::Opus => SIP_CODECS.to_vec(),
        BrowserCodec::Same => vec![SipCodec::Pcmu],
    };
    let mut local = match local_media(&ctx, codecs.clone()).await {
        Ok(l) => l,
        Err(e) => {
            ctx.emit(ended(500, format!("no media port: {e}")));
            return;
        }
    };
    if let SrtpMode::Optional(suite) | SrtpMode::Mandatory(suite) = media.srtp {
        local.sdp.crypto = Some(Crypto::generate(1, suite));
        local.sdp.secure = matches!(media.srtp, SrtpMode::Mandatory(_));
    }
    opt.offer = Some(local.sdp.to_sdp().into_bytes());
    opt.content_type = Some("application/sdp".into());
    let (state_tx, mut states) = layer.new_dialog_state_channel();
    let (dialog, invite) = match layer.do_invite_async(opt, state_tx) {
        Ok(x) => x,
        Err(e) => {
            ctx.emit(ended(400, format!("cannot send the INVITE: {e}")));
            return;
        }
    };
    ctx.emit(CallEvent::Calling {
        call_id: dialog.id().call_id.clone(),
    });
    let answer = Answer::Awaiting { codecs, invite };
    let end = in_call(&ctx, &dialog, &mut states, local, media, answer, &mut ops).await;
    layer.remove_dialog(&dialog.id());
    ctx.emit(end);
}

/// Answers an incoming call when the browser accepts it, then the call until it ends.
/// `remote` is the caller's SDP (already checked to have a codec in common).
#[allow(clippy::too_many_arguments)] // the call's parts, each once
pub async fn incoming(
    ctx: CallCtx,
    layer: Arc<DialogLayer>,
    dialog: InviteDialog,
    mut states: DialogStateReceiver,
    remote: RemoteAudio,
    codec: SipCodec,
    mut ops: mpsc::Receiver<CallOp>,
) {
    // Until the browser answers (or sends early media): ringing, decline, or the
    // caller gives up.
    let (media, early) = loop {
        tokio::select! {
            Some(state) = states.recv() => {
                if let DialogState::Terminated(_, reason) = state {
                    ctx.emit(terminated(&reason));
                    layer.remove_dialog(&dialog.id());
                    return;
                }
            }
            op = ops.recv() => match op {
                Some(CallOp::Accept(Some(media))) => break (media, false),
                Some(CallOp::Progress(media)) => break (media, true),
                Some(CallOp::Ringing) => {
                    if let Err(e) = dialog.ringing(None, None) {
                        tracing::debug!(error = %e, "180 not sent");
                    }
                }
                Some(CallOp::Decline(code)) => {
                    let status = StatusCode::from(code);
                    let _ = dialog.reject(Some(status), None);
                    ctx.emit(ended(code, StatusCode::from(code).text()));
                    layer.remove_dialog(&dialog.id());
                    return;
                }
                Some(CallOp::Hangup) | None => {
                    let _ = dialog.reject(Some(StatusCode::TemporarilyUnavailable), None);
                    ctx.emit(ended(480, "Temporarily Unavailable"));
                    layer.remove_dialog(&dialog.id());
                    return;
                }
                Some(other) => tracing::debug!(?other, "ignored before the call is answered"),
            },
        }
    };
    let local = match local_media(&ctx, vec![codec]).await {
        Ok(l) => l,
        Err(e) => {
            let _ = dialog.reject(Some(StatusCode::ServerInternalError), None);
            ctx.emit(ended(500, format!("no media port: {e}")));
            layer.remove_dialog(&dialog.id());
            return;
        }
    };
    let mut local = local;
    // The answer takes the offer's payload types (RFC 3264 §6.1).
    local.sdp.opus_pt = remote.pt(SipCodec::Opus);
    local.sdp.answer_events(&remote, codec);
    local.sdp.direction = remote.direction.reversed();
    // Keys offered: answered in kind (RFC 4568 §7.1.2), with the first line we can use.
    if let Some(c) = remote.crypto.first() {
        local.sdp.crypto = Some(Crypto::generate(c.tag, c.key.suite));
        local.sdp.secure = remote.secure;
    }
    let sdp = local.sdp.to_sdp().into_bytes();
    let headers = Some(vec![content_type("application/sdp")]);
    // A body makes rsipstack's provisional answer a 183 Session Progress.
    let sent = if early {
        dialog.ringing(headers, Some(sdp))
    } else {
        dialog.accept(headers, Some(sdp))
    };
    if let Err(e) = sent {
        let code = if early { 183 } else { 200 };
        ctx.emit(ended(500, format!("{code} not sent: {e}")));
        layer.remove_dialog(&dialog.id());
        return;
    }
    let answer = if early {
        Answer::Early(remote, codec)
    } else {
        Answer::Known(remote, codec)
    };
    let end = in_call(&ctx, &dialog, &mut states, local, media, answer, &mut ops).await;
    layer.remove_dialog(&dialog.id());
    ctx.emit(end);
}

/// Where the peer's SDP comes from.
enum Answer {
    /// An incoming call's offer, already checked, answered with our 200: the codec to use.
    Known(RemoteAudio, SipCodec),
    /// The same, answered with our 183 (early media): the 200 waits for
    /// [`CallOp::Accept`].
    Early(RemoteAudio, SipCodec),
    /// Our INVITE's answer, still to come: a 183 with SDP (early media) or the 2xx.
    /// `codecs` are those we offered.
    Awaiting {
        codecs: Vec<SipCodec>,
        invite: tokio::task::JoinHandle<InviteAsyncResult>,
    },
}

/// The peer's audio and the codec we share, from an SDP body.
fn media_of(body: &[u8], codecs: &[SipCodec]) -> Result<(RemoteAudio, SipCodec), String> {
    let remote = sdp::parse(&String::from_utf8_lossy(body)).map_err(|e| e.to_string())?;
    let codec = sdp::choose(&remote, codecs).map_err(|e| e.to_string())?;
    Ok((remote, codec))
}

/// The final answer to our INVITE: the 2xx, or how the call ended.
fn final_answer(
    r: Result<InviteAsyncResult, tokio::task::JoinError>,
) -> Result<rsipstack::sip::Response, CallEvent> {
    match r {
        Ok(Ok((_, Some(resp))))
            if resp.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful =>
        {
            Ok(resp)
        }
        Ok(Ok((_, Some(resp)))) => Err(ended(
            resp.status_code.code(),
            resp.wire_reason
                .clone()
                .unwrap_or_else(|| resp.status_code.text().to_owned()),
        )),
        Ok(Ok((_, None))) => Err(ended(408, "no final answer to the INVITE")),
        Ok(Err(e)) => Err(ended(408, format!("INVITE failed: {e}"))),
        Err(e) => Err(ended(500, format!("INVITE task failed: {e}"))),
    }
}

/// The call: media both ways (from the peer's first SDP on: a 183's early media, or
/// the answer) and in-dialog requests, until either side ends it. While our INVITE
/// waits for its final answer, provisional answers are reported and a hangup cancels it.
async fn in_call(
    ctx: &CallCtx,
    dialog: &InviteDialog,
    states: &mut DialogStateReceiver,
    local: LocalMedia,
    media: CallMedia,
    answer: Answer,
    ops: &mut mpsc::Receiver<CallOp>,
) -> CallEvent {
    let LocalMedia {
        rtp,
        rtcp,
        sdp: mut our_sdp,
    } = local;
    let CallMedia {
        source,
        mut from_browser,
        browser,
        stats,
        srtp: _,
    } = media;
    let mut to_peer = ToPeer {
        rtp: &rtp,
        rtcp: &rtcp,
        srtp: None,
        stats: &stats,
    };
    let mut out = ToBrowser {
        engine: ctx.engine.clone(),
        source,
        pt: SipCodec::Opus.pt(),
        seq: 0,
    };
    let ssrc = rand::random::<u32>();
    // The bridge, once the peer's SDP is known.
    let start = |remote: &RemoteAudio, codec: SipCodec, direction: Direction, answered: bool| {
        let setup = BridgeSetup {
            codec,
            browser,
            remote: remote.clone(),
            ssrc,
            direction,
            nat: ctx.nat,
            answered,
        };
        tracing::info!(handle = %ctx.handle, remote = %remote.rtp, codec = codec.name(), "SIP media up");
        Bridge::new(now(), wall_clock(), setup, stats.clone()).map(|b| (b, codec))
    };
    let early = matches!(answer, Answer::Early(..));
    let (mut bridge, mut invite, codecs, mut unaccepted) = match answer {
        Answer::Known(remote, codec) | Answer::Early(remote, codec) => {
            let keyed = to_peer.key(&mut our_sdp, &remote);
            match keyed.and_then(|()| {
                start(&remote, codec, our_sdp.direction, !early)
                    .map_err(|e| format!("transcoder: {e}"))
            }) {
                Ok(b) => {
                    if !early {
                        ctx.emit(CallEvent::Accepted {
                            codec: codec.name(),
                        });
                    }
                    (Some(b), None, vec![codec], early)
                }
                Err(e) if early => {
                    let _ = dialog.reject(Some(StatusCode::ServerInternalError), None);
                    return ended(500, e);
                }
                Err(e) => {
                    let _ = dialog.hangup().await;
                    return ended(500, e);
                }
            }
        }
        Answer::Awaiting { codecs, invite } => (None, Some(invite), codecs, false),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut buf = [0u8; 2048];
    let mut rbuf = [0u8; 1500];
    // A re-INVITE or INFO we sent, answered in its own task; its outcome comes back here.
    let (done_tx, mut done_rx) = mpsc::channel::<CallEvent>(IN_FLIGHT);
    // Before the final answer: the dialog ended (its final answer tells how), CANCEL sent.
    let mut ended_early = None;
    let mut cancelled = false;
    let mut ops_open = true;
    loop {
        tokio::select! {
            // Dialog states first: a 180 or 183 right before the 200 must still be reported.
            biased;
            state = states.recv() => match state {
                None => return ended(500, "dialog gone"),
                // Before the final answer, that answer says how the call ended.
                Some(DialogState::Terminated(_, reason)) if invite.is_some() => ended_early = Some(reason),
                Some(DialogState::Terminated(_, reason)) => return terminated(&reason),
                // Provisional answers to our INVITE (not our own 183 to an incoming one).
                Some(DialogState::Early(_, resp)) if invite.is_some() => {
                    ctx.emit(CallEvent::Progress {
                        code: resp.status_code.code(),
                        reason: resp.wire_reason.clone().unwrap_or_else(|| resp.status_code.text().to_owned()),
                    });
                    // Early media: a 183's SDP starts the media before the answer.
                    if bridge.is_none() && !resp.body.is_empty() {
                        match media_of(&resp.body, &codecs) {
                            Ok((remote, codec)) => match to_peer.key(&mut our_sdp, &remote) {
                                Ok(()) => match start(&remote, codec, our_sdp.direction, false) {
                                    Ok(b) => bridge = Some(b),
                                    Err(e) => tracing::info!(error = %e, "no early media"),
                                },
                                Err(e) => tracing::info!(error = %e, "no early media"),
                            },
                            Err(e) => tracing::info!(error = %e, "provisional answer's SDP unusable"),
                        }
                    }
                }
                Some(DialogState::Updated(_, req, th)) => {
                    let Some((bridge, _)) = bridge.as_mut() else {
                        let _ = th.respond(StatusCode::NotAcceptableHere, None, None).await;
                        continue;
                    };
                    // A re-INVITE (or UPDATE) from the peer: new SDP, same media sockets.
                    let body = String::from_utf8_lossy(&req.body).into_owned();
                    match sdp::parse(&body) {
                        Ok(r) if r.rtp.port() != 0 => {
                            if let Err(e) = to_peer.key(&mut our_sdp, &r) {
                                tracing::info!(handle = %ctx.handle, error = %e, "re-INVITE refused");
                                let _ = th.respond(StatusCode::NotAcceptableHere, None, None).await;
                                continue;
                            }
                            bridge.set_remote(&r);
                            our_sdp.version += 1;
                            let ours = if our_sdp.direction == Direction::SendRecv {
                                r.direction.reversed()
                            } else {
                                our_sdp.direction
                            };
                            let mut answer = our_sdp.clone();
                            answer.direction = ours;
                            bridge.set_direction(ours);
                            let _ = th.respond(StatusCode::OK, Some(vec![content_type("application/sdp")]), Some(answer.to_sdp().into_bytes())).await;
                            ctx.emit(CallEvent::Updated { direction: r.direction });
                        }
                        Ok(_) | Err(_) if body.trim().is_empty() => {
                            // An offerless re-INVITE: offer what we have.
                            let _ = th.respond(StatusCode::OK, Some(vec![content_type("application/sdp")]), Some(our_sdp.to_sdp().into_bytes())).await;
                        }
                        _ => {
                            let _ = th.respond(StatusCode::NotAcceptableHere, None, None).await;
                        }
                    }
                }
                Some(DialogState::Info(_, req, th)) => {
                    let ct = header_value(&req, "content-type").unwrap_or("").to_ascii_lowercase();
                    let body = String::from_utf8_lossy(&req.body).into_owned();
                    let _ = th.reply(StatusCode::OK).await;
                    if ct.starts_with("application/dtmf-relay") || ct.starts_with("application/dtmf") {
                        if let Some((signal, duration)) = parse_dtmf_relay(&body) {
                            ctx.emit(CallEvent::Dtmf { signal, duration, info: true });
                        }
                    } else {
                        ctx.emit(CallEvent::Info { content_type: ct, content: body });
                    }
                }
                Some(DialogState::Message(_, req, th)) => {
                    let ct = header_value(&req, "content-type").unwrap_or("text/plain").to_owned();
                    let _ = th.reply(StatusCode::OK).await;
                    ctx.emit(CallEvent::Message { content_type: ct, content: String::from_utf8_lossy(&req.body).into_owned() });
                }
                Some(DialogState::Refer(_, req, th)) => {
                    let refer_to = header_value(&req, "refer-to").map(str::to_owned);
                    match refer_to {
                        Some(to) => {
                            let _ = th.reply(StatusCode::Accepted).await;
                            ctx.emit(CallEvent::Transfer {
                                refer_to: to.trim_matches(|c| c == '<' || c == '>').to_owned(),
                                referred_by: header_value(&req, "referred-by").map(str::to_owned),
                            });
                        }
                        None => {
                            let _ = th.reply(StatusCode::BadRequest).await;
                        }
                    }
                }
                Some(DialogState::Options(_, _, th)) | Some(DialogState::Notify(_, _, th)) | Some(DialogState::Publish(_, _, th)) => {
                    let _ = th.reply(StatusCode::OK).await;
                }
                Some(_) => {}
            },
            r = async { invite.as_mut().expect("guarded").await }, if invite.is_some() => {
                invite = None;
                let resp = match final_answer(r) {
                    Ok(resp) => resp,
                    Err(end) => return end,
                };
                if let Some(reason) = ended_early.take() {
                    // Answered and ended at once (a BYE right behind the 200).
                    return terminated(&reason);
                }
                let answered = media_of(&resp.body, &codecs).and_then(|(remote, codec)| {
                    to_peer.key(&mut our_sdp, &remote).map(|()| (remote, codec))
                });
                match answered {
                    // The answer's SDP normally repeats the 183's: same codec, same bridge.
                    Ok((remote, codec)) => match bridge.as_mut() {
                        Some((b, c)) if *c == codec => b.set_remote(&remote),
                        _ => match start(&remote, codec, our_sdp.direction, true) {
                            Ok(b) => bridge = Some(b),
                            Err(e) => {
                                let _ = dialog.hangup().await;
                                return ended(500, format!("transcoder: {e}"));
                            }
                        },
                    },
                    Err(e) if bridge.is_none() => {
                        tracing::info!(handle = %ctx.handle, error = %e, "SIP answer unusable: hanging up");
                        let _ = dialog.hangup().await;
                        return ended(488, format!("Not Acceptable Here ({e})"));
                    }
                    // Early media's SDP stands.
                    Err(_) => {}
                }
                let codec = bridge.as_ref().map(|(_, c)| *c);
                // Later offers (hold, resume) carry only the codec the call settled on.
                our_sdp.codecs = codec.into_iter().collect();
                if let Some(c) = codec {
                    our_sdp.settle_events(c);
                }
                if let Some((b, _)) = bridge.as_mut() {
                    b.answered();
                }
                ctx.emit(CallEvent::Accepted { codec: codec.map(SipCodec::name).unwrap_or_default() });
            }
            r = rtp.recv_from(&mut buf) => {
                let (Ok((n, src)), Some((bridge, _))) = (r, bridge.as_mut()) else { continue };
                let Some(n) = to_peer.received(false, &mut buf, n) else { continue };
                bridge.from_sip(now(), src, &buf[..n]);
                while let Some(super::bridge::BridgeEvent::Dtmf { digit, duration_ms }) = bridge.poll_event() {
                    ctx.emit(CallEvent::Dtmf { signal: digit, duration: duration_ms, info: false });
                }
            }
            r = rtcp.recv_from(&mut rbuf) => {
                let (Ok((n, src)), Some((bridge, _))) = (r, bridge.as_mut()) else { continue };
                let Some(n) = to_peer.received(true, &mut rbuf, n) else { continue };
                bridge.from_sip_rtcp(src, &rbuf[..n]);
            }
            Some(frame) = from_browser.recv() => {
                let Some((bridge, _)) = bridge.as_mut() else { continue };
                match frame {
                    BrowserFrame::Audio { ts, len, data } => {
                        bridge.from_browser(&data[..len as usize], ts, &mut |d, p| to_peer.send(d, p));
                    }
                    BrowserFrame::Dtmf { ts, code, end, duration } => {
                        bridge.browser_dtmf(ts, code, end, duration);
                    }
                }
            }
            _ = tick.tick() => {
                if let Some((bridge, codec)) = bridge.as_mut() {
                    out.pt = match browser {
                        BrowserCodec::Opus => SipCodec::Opus.pt(),
                        BrowserCodec::Same => codec.pt(),
                    };
                    bridge.tick(now(), &mut |d, p| to_peer.send(d, p), &mut |p: &[u8], ts: u32| out.send(p, ts));
                }
            }
            Some(ev) = done_rx.recv() => ctx.emit(ev),
            // Before the answer only a hangup counts: CANCEL, then the INVITE ends with
            // 487 (or a 2xx that is BYE'd).
            op = ops.recv(), if ops_open => if invite.is_some() {
                match op {
                    None | Some(CallOp::Hangup) => {
                        ops_open = op.is_some();
                        if !cancelled {
                            cancelled = true;
                            if let Err(e) = dialog.cancel().await {
                                tracing::debug!(error = %e, "CANCEL not sent");
                            }
                        }
                    }
                    Some(other) => tracing::debug!(?other, "ignored before the call is answered"),
                }
            } else if unaccepted {
                // Our 183 is out, early media flowing: the browser accepts or refuses.
                match op {
                    Some(CallOp::Accept(_)) => {
                        let sdp = our_sdp.to_sdp().into_bytes();
                        if let Err(e) = dialog.accept(Some(vec![content_type("application/sdp")]), Some(sdp)) {
                            return ended(500, format!("200 not sent: {e}"));
                        }
                        unaccepted = false;
                        if let Some((b, _)) = bridge.as_mut() {
                            b.answered();
                        }
                        let codec = bridge.as_ref().map(|(_, c)| c.name()).unwrap_or_default();
                        ctx.emit(CallEvent::Accepted { codec });
                    }
                    Some(CallOp::Decline(code)) => {
                        let _ = dialog.reject(Some(StatusCode::from(code)), None);
                        return ended(code, StatusCode::from(code).text());
                    }
                    None | Some(CallOp::Hangup) => {
                        let _ = dialog.reject(Some(StatusCode::TemporarilyUnavailable), None);
                        return ended(480, "Temporarily Unavailable");
                    }
                    Some(other) => tracing::debug!(?other, "ignored before the call is accepted"),
                }
            } else {
                match op {
                None | Some(CallOp::Hangup) => {
                    if let Err(e) = dialog.hangup().await {
                        tracing::debug!(error = %e, "BYE not sent");
                    }
                    return ended(200, "Session Terminated");
                }
                Some(CallOp::Direction(d)) => {
                    let Some((bridge, _)) = bridge.as_mut() else { continue };
                    let Some(done) = ctx.slot(&done_tx, "update") else { continue };
                    our_sdp.version += 1;
                    our_sdp.direction = d;
                    bridge.set_direction(d);
                    let (dialog, body) = (dialog.clone(), our_sdp.to_sdp().into_bytes());
                    tokio::spawn(async move {
                        let r = tokio::time::timeout(REQUEST_TIMEOUT, dialog.reinvite(Some(vec![content_type("application/sdp")]), Some(body))).await;
                        let code = match r {
                            Ok(Ok(Some(resp))) => resp.status_code.code(),
                            _ => 408,
                        };
                        done.send(CallEvent::DirectionSet { direction: d, code });
                    });
                }
                Some(CallOp::DtmfInfo { digit, duration }) => {
                    let body = format!("Signal={digit}\r\nDuration={duration}\r\n");
                    if let Some(done) = ctx.slot(&done_tx, "info") {
                        send_in_dialog(dialog, done, "info", "application/dtmf-relay", body);
                    }
                }
                Some(CallOp::Info { content_type, content }) => {
                    if let Some(done) = ctx.slot(&done_tx, "info") {
                        send_in_dialog(dialog, done, "info", &content_type, content);
                    }
                }
                Some(CallOp::Message { content_type, content }) => {
                    if let Some(done) = ctx.slot(&done_tx, "message") {
                        send_in_dialog(dialog, done, "message", &content_type, content);
                    }
                }
                Some(CallOp::Transfer { uri }) => {
                    let Some(done) = ctx.slot(&done_tx, "transfer") else { continue };
                    let dialog = dialog.clone();
                    tokio::spawn(async move {
                        let code = match uri.parse::<rsipstack::sip::Uri>() {
                            Ok(to) => match tokio::time::timeout(REQUEST_TIMEOUT, dialog.refer(to, None, None)).await {
                                Ok(Ok(Some(resp))) => resp.status_code.code(),
                                _ => 408,
                            },
                            Err(_) => 400,
                        };
                        done.send(CallEvent::Delivery { what: "transfer", code, reason: StatusCode::from(code).text().to_owned() });
                    });
                }
                Some(CallOp::Accept(_) | CallOp::Progress(_) | CallOp::Ringing | CallOp::Decline(_)) => {}
            }},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_bodies() {
        assert_eq!(
            parse_dtmf_relay("Signal=5\r\nDuration=160\r\n"),
            Some(('5', 160))
        );
        assert_eq!(
            parse_dtmf_relay("signal= #\nduration=250"),
            Some(('#', 250))
        );
        assert_eq!(parse_dtmf_relay("Signal=x\r\n"), None);
        assert_eq!(parse_dtmf_relay("Signal=55\r\n"), None);
        assert_eq!(parse_dtmf_relay(""), None);
    }
}
