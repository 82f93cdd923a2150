//! One call: a task that owns its SIP dialog (through rsipstack) and its two media
//! sockets (RTP and RTCP toward the SIP peer), and drives the call's
//! `machine::CallMachine` (the decisions, sans-IO, holding the media bridge): it
//! hands the machine what happened and carries out what it asks. The driver starts
//! it and passes it [`CallOp`]s; it reports [`CallEvent`]s.

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

use super::bridge::{BridgeStats, BrowserCodec, BrowserFrame, Dest};
use super::sdp::{Direction, LocalAudio, RemoteAudio, SipCodec};
use super::srtp::{Crypto, SrtpLeg};
use super::{CallEvent, CallMedia, CallOp, SipEvent, SrtpMode};
use crate::ids::HandleId;
use crate::ingest::IngestEvent;
use crate::media::source::SourcePacket;
use crate::media::webrtc::queue::MediaTx;
use cardea_codecs::rtp::RtpHeader;

mod dialog;
mod legs;
mod machine;
pub(crate) use dialog::parse_dtmf_relay;
pub(in crate::ingest::sip) use dialog::*;
use legs::*;
use machine::{CallMachine, DialogOut, MediaParams, Out};

/// Our telephone-event payload type on the SIP leg.
const TELEPHONE_EVENT_PT: u8 = 101;
/// Ours for telephone-event/48000, offered beside Opus.
const TELEPHONE_EVENT_48K_PT: u8 = 102;
/// The codecs we offer and accept on the SIP leg, preferred first: Opus is the
/// browser's own (relayed, no transcoding, fullband), G.722 is wideband.
pub(crate) const SIP_CODECS: [SipCodec; 4] = [
    SipCodec::Opus,
    SipCodec::G722,
    SipCodec::Pcmu,
    SipCodec::Pcma,
];
/// How long an INFO/MESSAGE/REFER/re-INVITE waits for its answer (timer F).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(32);
/// How long the driver lets one of those requests' tasks run: a little past
/// [`REQUEST_TIMEOUT`], by which time the machine has reported it.
const TASK_LIMIT: Duration = Duration::from_secs(REQUEST_TIMEOUT.as_secs() + 2);
/// In-dialog requests we sent (INFO, MESSAGE, REFER, re-INVITE) that may await their answer at once.
const IN_FLIGHT: usize = 16;

/// What every call task needs from the driver.
#[derive(Clone)]
pub(crate) struct CallCtx {
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
pub(crate) async fn outgoing(
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
    let params = media_params(&ctx, &media);
    let call = CallMachine::outgoing(now(), wall_clock(), params, local.sdp, codecs);
    let sockets = (local.rtp, local.rtcp);
    let end = run(
        &ctx,
        &dialog,
        &mut states,
        sockets,
        media,
        call,
        Some(invite),
        &mut ops,
    )
    .await;
    layer.remove_dialog(&dialog.id());
    ctx.emit(end);
}

fn media_params(ctx: &CallCtx, media: &CallMedia) -> MediaParams {
    MediaParams {
        handle: ctx.handle,
        browser: media.browser,
        nat: ctx.nat,
        stats: media.stats.clone(),
        ssrc: rand::random(),
    }
}

/// Answers an incoming call when the browser accepts it, then the call until it ends.
/// `remote` is the caller's SDP (already checked to have a codec in common).
#[allow(clippy::too_many_arguments)] // the call's parts, each once
pub(crate) async fn incoming(
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
    let params = media_params(&ctx, &media);
    let call = CallMachine::answered(
        now(),
        wall_clock(),
        params,
        local.sdp,
        &remote,
        codec,
        early,
    );
    let sockets = (local.rtp, local.rtcp);
    let end = run(
        &ctx,
        &dialog,
        &mut states,
        sockets,
        media,
        call,
        None,
        &mut ops,
    )
    .await;
    layer.remove_dialog(&dialog.id());
    ctx.emit(end);
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
        Ok(Ok((_, Some(resp)))) => Err(ended(resp.status_code.code(), reason_of(&resp))),
        Ok(Ok((_, None))) => Err(ended(408, "no final answer to the INVITE")),
        Ok(Err(e)) => Err(ended(408, format!("INVITE failed: {e}"))),
        Err(e) => Err(ended(500, format!("INVITE task failed: {e}"))),
    }
}

/// The call, driven: media both ways through the machine's bridge (from the peer's
/// first SDP on: a 183's early media, or the answer), the dialog's states and the
/// browser's requests handed to the machine, its outputs carried out, until it ends
/// the call. `invite` is our INVITE awaiting its final answer (outgoing calls).
#[allow(clippy::too_many_arguments)] // the call's parts, each once
async fn run(
    ctx: &CallCtx,
    dialog: &InviteDialog,
    states: &mut DialogStateReceiver,
    sockets: (UdpSocket, UdpSocket),
    media: CallMedia,
    mut call: CallMachine,
    mut invite: Option<tokio::task::JoinHandle<InviteAsyncResult>>,
    ops: &mut mpsc::Receiver<CallOp>,
) -> CallEvent {
    let (rtp, rtcp) = sockets;
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
        stats: &stats,
    };
    let mut out = ToBrowser {
        engine: ctx.engine.clone(),
        source,
        pt: SipCodec::Opus.pt(),
        seq: 0,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut buf = [0u8; 2048];
    let mut rbuf = [0u8; 1500];
    // Our re-INVITEs, INFOs, MESSAGEs and REFERs, each in its own task (at most
    // IN_FLIGHT, the machine's bound); dropped with the call.
    let mut requests = tokio::task::JoinSet::new();
    let mut ops_open = true;
    loop {
        while let Some(o) = call.poll_output() {
            match o {
                Out::Event(e) => ctx.emit(e),
                Out::Dialog(d) => {
                    if let Err(end) = act(dialog, d, &mut requests).await {
                        return end;
                    }
                }
                Out::Ended(end) => return end,
            }
        }
        let timeout = call.poll_timeout();
        tokio::select! {
            // Dialog states first: a 180 or 183 right before the 200 must still be reported.
            biased;
            state = states.recv() => match state {
                None => return ended(500, "dialog gone"),
                Some(DialogState::Terminated(_, reason)) => call.handle_terminated(terminated(&reason)),
                Some(DialogState::Early(_, resp)) => {
                    call.handle_provisional(now(), resp.status_code.code(), reason_of(&resp), &resp.body);
                }
                Some(DialogState::Updated(_, req, th)) => {
                    let r = call.handle_peer_offer(&req.body);
                    let headers = r.sdp.is_some().then(|| vec![content_type("application/sdp")]);
                    let _ = th.respond(StatusCode::from(r.code), headers, r.sdp).await;
                }
                Some(DialogState::Info(_, req, th)) => {
                    let ct = header_value(&req, "content-type").unwrap_or("").to_owned();
                    let r = call.handle_info(&ct, String::from_utf8_lossy(&req.body).into_owned());
                    let _ = th.reply(StatusCode::from(r.code)).await;
                }
                Some(DialogState::Message(_, req, th)) => {
                    let ct = header_value(&req, "content-type").unwrap_or("text/plain").to_owned();
                    let r = call.handle_message(&ct, String::from_utf8_lossy(&req.body).into_owned());
                    let _ = th.reply(StatusCode::from(r.code)).await;
                }
                Some(DialogState::Refer(_, req, th)) => {
                    let r = call.handle_refer(header_value(&req, "refer-to"), header_value(&req, "referred-by"));
                    let _ = th.reply(StatusCode::from(r.code)).await;
                }
                Some(DialogState::Options(_, _, th)) | Some(DialogState::Notify(_, _, th)) | Some(DialogState::Publish(_, _, th)) => {
                    let _ = th.reply(StatusCode::OK).await;
                }
                Some(_) => {}
            },
            r = async { invite.as_mut().expect("guarded").await }, if invite.is_some() => {
                invite = None;
                match final_answer(r) {
                    Ok(resp) => call.handle_final(now(), Ok(&resp.body)),
                    Err(end) => call.handle_final(now(), Err(end)),
                }
            }
            Some(done) = requests.join_next(), if !requests.is_empty() => {
                // A task that panicked or was cut short: the machine's deadline reports it.
                if let Ok((id, code, reason)) = done {
                    call.handle_answer(id, code, reason);
                }
            }
            _ = tokio::time::sleep_until(timeout.unwrap_or_else(now).into()), if timeout.is_some() => {
                call.handle_timeout(now());
            }
            r = rtp.recv_from(&mut buf) => {
                let (Ok((n, src)), (Some((bridge, _)), srtp)) = (r, call.media()) else { continue };
                let Some(n) = to_peer.received(srtp, false, &mut buf, n) else { continue };
                bridge.from_sip(now(), src, &buf[..n]);
                while let Some(super::bridge::BridgeEvent::Dtmf { digit, duration_ms }) = bridge.poll_event() {
                    ctx.emit(CallEvent::Dtmf { signal: digit, duration: duration_ms, info: false });
                }
            }
            r = rtcp.recv_from(&mut rbuf) => {
                let (Ok((n, src)), (Some((bridge, _)), srtp)) = (r, call.media()) else { continue };
                let Some(n) = to_peer.received(srtp, true, &mut rbuf, n) else { continue };
                bridge.from_sip_rtcp(src, &rbuf[..n]);
            }
            Some(frame) = from_browser.recv() => {
                let (Some((bridge, _)), mut srtp) = call.media() else { continue };
                match frame {
                    BrowserFrame::Audio { ts, len, data } => {
                        bridge.from_browser(&data[..len as usize], ts, &mut |d, p| to_peer.send(srtp.as_deref_mut(), d, p));
                    }
                    BrowserFrame::Dtmf { ts, code, end, duration } => {
                        bridge.browser_dtmf(ts, code, end, duration);
                    }
                }
            }
            _ = tick.tick() => {
                if let (Some((bridge, codec)), mut srtp) = call.media() {
                    out.pt = match browser {
                        BrowserCodec::Opus => SipCodec::Opus.pt(),
                        BrowserCodec::Same => codec.pt(),
                    };
                    bridge.tick(now(), &mut |d, p| to_peer.send(srtp.as_deref_mut(), d, p), &mut |p: &[u8], ts: u32| out.send(p, ts));
                }
            }
            op = ops.recv(), if ops_open => {
                // The plugin gone is a hangup.
                ops_open = op.is_some();
                call.handle_op(now(), op.unwrap_or(CallOp::Hangup));
            }
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
