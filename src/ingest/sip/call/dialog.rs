//! In-dialog details: how a call ended, content types and header values, requests
//! sent in the dialog, and DTMF carried in SIP INFO.

use super::*;

pub(super) fn ended(code: u16, reason: impl Into<String>) -> CallEvent {
    CallEvent::Ended {
        code,
        reason: reason.into(),
    }
}

pub(super) fn terminated(reason: &TerminatedReason) -> CallEvent {
    match reason {
        TerminatedReason::UacBye | TerminatedReason::UasBye => ended(200, "Session Terminated"),
        TerminatedReason::UacCancel => ended(487, "Request Terminated"),
        TerminatedReason::Timeout => ended(408, "Request Timeout"),
        TerminatedReason::UacBusy | TerminatedReason::UasBusy => ended(486, "Busy Here"),
        TerminatedReason::UasDecline => ended(603, "Decline"),
        TerminatedReason::ProxyAuthRequired => ended(407, "Proxy Authentication Required"),
        TerminatedReason::ProxyError(c)
        | TerminatedReason::UacOther(c)
        | TerminatedReason::UasOther(c) => ended(c.code(), c.text()),
    }
}

pub(super) fn content_type(ct: &str) -> Header {
    Header::ContentType(ct.into())
}

/// A header's value by name (Content-Type included), as the request carries it.
pub(in crate::ingest::sip) fn header_value<'a>(
    req: &'a rsipstack::sip::Request,
    name: &str,
) -> Option<&'a str> {
    req.headers.iter().find_map(|h| match h {
        Header::Other(n, v) if n.eq_ignore_ascii_case(name) => Some(v.as_str()),
        Header::ContentType(v) if name.eq_ignore_ascii_case("content-type") => Some(v.value()),
        _ => None,
    })
}

/// A response's reason phrase as sent, or the standard one.
pub(in crate::ingest::sip) fn reason_of(resp: &rsipstack::sip::Response) -> String {
    (resp.wire_reason.clone()).unwrap_or_else(|| resp.status_code.text().to_owned())
}

/// The outcome of one of our in-dialog requests: its id, final code and reason.
pub(super) type Answered = (u32, u16, String);

/// Carries out what the call's machine asks of the dialog. Requests awaiting an
/// answer run in `requests`, each ending with its [`Answered`]. A 200 that cannot be
/// sent ends the call (the returned event).
pub(super) async fn act(
    dialog: &InviteDialog,
    what: DialogOut,
    requests: &mut tokio::task::JoinSet<Answered>,
) -> Result<(), CallEvent> {
    let sdp = || Some(vec![content_type("application/sdp")]);
    let info = matches!(what, DialogOut::Info { .. });
    match what {
        DialogOut::Cancel => {
            if let Err(e) = dialog.cancel().await {
                tracing::debug!(error = %e, "CANCEL not sent");
            }
        }
        DialogOut::Bye => {
            if let Err(e) = dialog.hangup().await {
                tracing::debug!(error = %e, "BYE not sent");
            }
        }
        DialogOut::Reject(code) => {
            if let Err(e) = dialog.reject(Some(StatusCode::from(code)), None) {
                tracing::debug!(error = %e, code, "final answer not sent");
            }
        }
        DialogOut::Accept(body) => {
            if let Err(e) = dialog.accept(sdp(), Some(body)) {
                return Err(ended(500, format!("200 not sent: {e}")));
            }
        }
        DialogOut::Reinvite { id, sdp: body } => {
            let dialog = dialog.clone();
            let headers = sdp();
            requests.spawn(async move {
                let r = dialog.reinvite(headers, Some(body));
                answered(id, r).await
            });
        }
        DialogOut::Info {
            id,
            content_type: ct,
            body,
        }
        | DialogOut::Message {
            id,
            content_type: ct,
            body,
        } => {
            let (dialog, headers) = (dialog.clone(), Some(vec![content_type(&ct)]));
            requests.spawn(async move {
                let body = Some(body.into_bytes());
                let r = async {
                    match info {
                        true => dialog.info(headers, body).await,
                        false => dialog.message(headers, body).await,
                    }
                };
                answered(id, r).await
            });
        }
        DialogOut::Refer { id, to } => {
            let dialog = dialog.clone();
            requests.spawn(async move {
                let r = dialog.refer(to, None, None);
                answered(id, r).await
            });
        }
    }
    Ok(())
}

/// A request's outcome: its final answer, none (the dialog is gone), an error, or
/// no answer within [`TASK_LIMIT`].
async fn answered(
    id: u32,
    request: impl std::future::Future<Output = rsipstack::Result<Option<rsipstack::sip::Response>>>,
) -> Answered {
    match tokio::time::timeout(TASK_LIMIT, request).await {
        Ok(Ok(Some(resp))) => (id, resp.status_code.code(), reason_of(&resp)),
        Ok(Ok(None)) => (id, 481, "Call/Transaction Does Not Exist".to_owned()),
        Ok(Err(e)) => (id, 408, e.to_string()),
        Err(_) => (id, 408, "Request Timeout".to_owned()),
    }
}

/// `Signal=5\r\nDuration=160` (application/dtmf-relay) to the digit and ms.
pub(crate) fn parse_dtmf_relay(body: &str) -> Option<(char, u32)> {
    let mut signal = None;
    let mut duration = 160;
    for line in body.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => {
                let v = v.trim();
                let mut chars = v.chars();
                let c = chars.next()?;
                if chars.next().is_none() && super::super::bridge::dtmf_code(c).is_some() {
                    signal = Some(c.to_ascii_uppercase());
                }
            }
            "duration" => duration = v.trim().parse().unwrap_or(160).min(60_000),
            _ => {}
        }
    }
    signal.map(|s| (s, duration))
}
