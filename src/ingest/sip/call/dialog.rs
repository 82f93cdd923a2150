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

/// Sends an INFO or MESSAGE in the dialog from its own task; its final answer comes back as [`CallEvent::Delivery`].
pub(super) fn send_in_dialog(
    dialog: &InviteDialog,
    done: mpsc::OwnedPermit<CallEvent>,
    what: &'static str,
    ct: &str,
    body: String,
) {
    let (dialog, headers) = (dialog.clone(), vec![content_type(ct)]);
    tokio::spawn(async move {
        let fut = async {
            if what == "info" {
                dialog.info(Some(headers), Some(body.into_bytes())).await
            } else {
                dialog.message(Some(headers), Some(body.into_bytes())).await
            }
        };
        let (code, reason) = match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Ok(Ok(Some(resp))) => (
                resp.status_code.code(),
                resp.wire_reason
                    .clone()
                    .unwrap_or_else(|| resp.status_code.text().to_owned()),
            ),
            Ok(Ok(None)) => (481, "Call/Transaction Does Not Exist".to_owned()),
            Ok(Err(e)) => (408, e.to_string()),
            Err(_) => (408, "Request Timeout".to_owned()),
        };
        done.send(CallEvent::Delivery { what, code, reason });
    });
}

/// `Signal=5\r\nDuration=160` (application/dtmf-relay) to the digit and ms.
pub fn parse_dtmf_relay(body: &str) -> Option<(char, u32)> {
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
