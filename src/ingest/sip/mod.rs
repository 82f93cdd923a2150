//! The SIP user agent: our own types at the plugin boundary, rsipstack behind them.
//!
//! The plugin (under the core's lock, sans-IO) validates requests and sends
//! [`SipCommand`]s; the driver (`driver::run`, the only code that touches rsipstack
//! and sockets) answers with [`SipEvent`]s through the core's event channel. One
//! endpoint (one UDP socket) serves every handle; each handle has at most one
//! registration, refreshed before it expires.

pub mod bridge;
pub(crate) mod call;
pub(crate) mod driver;
pub mod sdp;
pub mod srtp;

use crate::ids::{HandleId, SourceId};
use bridge::{BridgeStats, BrowserCodec, BrowserFrame};
use sdp::Direction;

/// A SIP account, as a `register` request describes it.
#[derive(Clone)]
pub struct Account {
    /// The address of record, `sip:user@domain[:port]`.
    pub uri: String,
    /// The user part of `uri`.
    pub user: String,
    /// The `host[:port]` part of `uri`.
    pub domain: String,
    /// Digest password.
    pub secret: Option<String>,
    /// Digest user name when it differs from `user`.
    pub authuser: Option<String>,
    /// Where REGISTER goes instead of `domain` (`proxy`, or `outbound_proxy`).
    pub proxy: Option<String>,
    /// Requested registration lifetime, seconds.
    pub ttl: u32,
    /// Extra headers on REGISTER, already checked (no CR/LF, token names).
    pub headers: Vec<(String, String)>,
    /// Whether calls transcode between the browser's Opus and the phone's codec
    /// (`transcode`, default true); false keeps PCMU end to end, incoming calls
    /// included, unless an outgoing call says otherwise.
    pub transcode: bool,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("uri", &self.uri)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("authuser", &self.authuser)
            .field("proxy", &self.proxy)
            .field("ttl", &self.ttl)
            .field("transcode", &self.transcode)
            .finish()
    }
}

/// What the plugin asks of the user agent.
#[derive(Debug)]
pub enum SipCommand {
    /// Register (and keep refreshing) `account` for `handle`, replacing any earlier one.
    Register {
        /// The handle.
        handle: HandleId,
        /// The account.
        account: Account,
    },
    /// Remove the handle's registration (REGISTER with Expires: 0).
    Unregister {
        /// The handle.
        handle: HandleId,
    },
    /// Send a MESSAGE (RFC 3428) outside any dialog from the handle's account to `uri`.
    Message {
        /// The handle.
        handle: HandleId,
        /// Whom to.
        uri: String,
        /// The sender.
        account: Account,
        /// The MESSAGE's Call-ID (the plugin reports it in `messagesent`).
        call_id: String,
        /// Content-Type, already checked.
        content_type: String,
        /// Body.
        content: String,
        /// Extra headers, already checked.
        headers: Vec<(String, String)>,
    },
    /// The handle is gone: stop whatever it had running (a call is hung up), quietly.
    Forget {
        /// The handle.
        handle: HandleId,
    },
    /// The gateway stops: hang up every call (BYE, or CANCEL before the answer) and
    /// remove every registration (REGISTER with Expires: 0); `done` fires once all of
    /// it went out and was answered, or after `grace`.
    Shutdown {
        /// How long to wait for the answers.
        grace: std::time::Duration,
        /// Fired when done.
        done: tokio::sync::oneshot::Sender<()>,
    },
    /// Place a call (INVITE) from the handle's account to `uri`.
    Call {
        /// The handle.
        handle: HandleId,
        /// The callee, `sip:user@host[:port]`.
        uri: String,
        /// The caller: the handle's account (From, credentials, proxy).
        account: Account,
        /// Display name for From.
        display_name: Option<String>,
        /// Extra headers on the INVITE, already checked.
        headers: Vec<(String, String)>,
        /// The media between the browser's PeerConnection and the call.
        media: CallMedia,
    },
    /// Something for the handle's call.
    InCall {
        /// The handle.
        handle: HandleId,
        /// What to do.
        op: CallOp,
    },
}

/// The browser side of a call's media, handed to the user agent when the call's
/// SIP leg is set up.
#[derive(Debug)]
pub struct CallMedia {
    /// The source through which the call's audio reaches the handle's PeerConnection.
    pub source: SourceId,
    /// The browser's frames (filled by the plugin's media half).
    pub from_browser: tokio::sync::mpsc::Receiver<BrowserFrame>,
    /// What the browser leg carries.
    pub browser: BrowserCodec,
    /// Counters shown by `handle_info`.
    pub stats: std::sync::Arc<BridgeStats>,
    /// SDES-SRTP toward the SIP peer, as the request asked.
    pub srtp: SrtpMode,
}

/// SDES-SRTP on the SIP leg, as `call`, `accept` or `progress` ask for it (`srtp`,
/// `srtp_profile`). An incoming offer with keys is answered with SRTP whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpMode {
    /// Plain RTP/AVP.
    Off,
    /// `sdes_optional`: keys offered on RTP/AVP; plain RTP if the answer has none.
    Optional(srtp::Suite),
    /// `sdes_mandatory`: RTP/SAVP; an answer without a matching key ends the call.
    Mandatory(srtp::Suite),
}

impl SrtpMode {
    /// The API's name for what an offer asks: `sdes_mandatory` for RTP/SAVP,
    /// `sdes_optional` for keys on RTP/AVP, none for plain RTP.
    pub fn offered(remote: &sdp::RemoteAudio) -> Option<&'static str> {
        match (remote.secure, remote.crypto.is_empty()) {
            (true, _) => Some("sdes_mandatory"),
            (false, false) => Some("sdes_optional"),
            (false, true) => None,
        }
    }
}

/// An operation on an existing call.
#[derive(Debug)]
pub enum CallOp {
    /// Answer the incoming call (200 with our SDP) with this media; none after
    /// [`CallOp::Progress`], which set it up.
    Accept(Option<CallMedia>),
    /// Early media for the incoming call: 183 with our SDP, media both ways, the 200
    /// when [`CallOp::Accept`] follows.
    Progress(CallMedia),
    /// Send 180 Ringing.
    Ringing,
    /// Refuse the incoming call with this code.
    Decline(u16),
    /// End the call: CANCEL before an answer, BYE after.
    Hangup,
    /// Re-INVITE with our direction (hold: sendonly/inactive/recvonly; unhold: sendrecv).
    Direction(Direction),
    /// SIP INFO with `application/dtmf-relay`.
    DtmfInfo {
        /// The digit.
        digit: char,
        /// Its duration, ms.
        duration: u32,
    },
    /// SIP INFO with any body.
    Info {
        /// Content-Type.
        content_type: String,
        /// Body.
        content: String,
    },
    /// SIP MESSAGE in the call's dialog.
    Message {
        /// Content-Type.
        content_type: String,
        /// Body.
        content: String,
    },
    /// Blind transfer: REFER the peer to `uri`.
    Transfer {
        /// Where to.
        uri: String,
    },
}

/// What the user agent reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SipEvent {
    /// A REGISTER got a 2xx; `expires` is what the registrar granted.
    Registered {
        /// The handle.
        handle: HandleId,
        /// Seconds until the binding lapses (refreshed before then).
        expires: u32,
        /// false for a refresh: only the first success is an event for the client.
        first: bool,
    },
    /// A REGISTER failed: the final response, or 408 when nothing answered within
    /// timer F, 503 when the request could not be sent.
    RegistrationFailed {
        /// The handle.
        handle: HandleId,
        /// SIP status code.
        code: u16,
        /// Reason phrase or what went wrong.
        reason: String,
    },
    /// The registration was removed (or the registrar refused the removal: it lapses anyway).
    Unregistered {
        /// The handle.
        handle: HandleId,
    },
    /// A MESSAGE outside any dialog for the handle's account.
    OutOfDialogMessage {
        /// The handle.
        handle: HandleId,
        /// The sender's URI.
        sender: String,
        /// The sender's display name, if From has one.
        display_name: Option<String>,
        /// Content-Type.
        content_type: String,
        /// Body.
        content: String,
    },
    /// The final answer to a MESSAGE sent outside a dialog.
    MessageDelivery {
        /// The handle.
        handle: HandleId,
        /// The MESSAGE's Call-ID.
        call_id: String,
        /// SIP status code (408 when nothing answered, 503 when the proxy's name did not resolve).
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// A call's SIP leg reports.
    Call {
        /// The handle.
        handle: HandleId,
        /// What happened.
        what: CallEvent,
    },
}

/// What happens to a call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// The INVITE is out (outgoing): its Call-ID.
    Calling {
        /// SIP Call-ID.
        call_id: String,
    },
    /// A provisional answer: 180 (ringing), 183 (early media), other 1xx (proceeding).
    Progress {
        /// SIP status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// A call arrived for the handle's account; the plugin offers it to the browser.
    Incoming {
        /// SIP Call-ID.
        call_id: String,
        /// The caller's URI.
        caller: String,
        /// The caller's display name.
        display_name: Option<String>,
        /// The Request-URI / To.
        callee: String,
        /// What the caller asks of SRTP ([`SrtpMode::offered`]).
        srtp: Option<&'static str>,
    },
    /// A call arrived while the handle was busy: refused with 486.
    Missed {
        /// The caller's URI.
        caller: String,
        /// The caller's display name.
        display_name: Option<String>,
        /// The callee.
        callee: String,
    },
    /// The call is answered (200 OK received, or our 200 sent for an incoming call)
    /// and media flows.
    Accepted {
        /// The codec on the SIP leg.
        codec: &'static str,
    },
    /// The peer changed the session (re-INVITE), e.g. put us on hold.
    Updated {
        /// The peer's direction now.
        direction: Direction,
    },
    /// Our re-INVITE (hold/unhold) was answered.
    DirectionSet {
        /// Our direction now.
        direction: Direction,
        /// Final status of the re-INVITE.
        code: u16,
    },
    /// DTMF from the peer (RFC 4733 or SIP INFO).
    Dtmf {
        /// The digit.
        signal: char,
        /// Duration, ms.
        duration: u32,
        /// true when it came as SIP INFO.
        info: bool,
    },
    /// An INFO (not DTMF) or MESSAGE from the peer, or the answer to ours.
    Info {
        /// Content-Type.
        content_type: String,
        /// Body.
        content: String,
    },
    /// A MESSAGE from the peer in the dialog.
    Message {
        /// Content-Type.
        content_type: String,
        /// Body.
        content: String,
    },
    /// The final answer to an INFO/MESSAGE/REFER we sent.
    Delivery {
        /// The request ("info", "message", "transfer").
        what: &'static str,
        /// SIP status code (408 when none came).
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The peer asks us to call someone else (REFER).
    Transfer {
        /// The Refer-To URI.
        refer_to: String,
        /// Referred-By, if given.
        referred_by: Option<String>,
    },
    /// The call is over (or never started).
    Ended {
        /// SIP status code: the final failure response, or 200 after a BYE.
        code: u16,
        /// Reason phrase or what went wrong.
        reason: String,
    },
}

/// Why a `headers` element of a request cannot go into a SIP message.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), String> {
    // RFC 3261 token characters for the name; no line breaks or NUL in the value
    // (a CR/LF would start a header or a body of the caller's choosing).
    let token = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("invalid header name '{}'", name.escape_debug()));
    }
    if value.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) {
        return Err(format!("header '{name}' has a line break in its value"));
    }
    if value.len() > 1024 {
        return Err(format!("header '{name}' is longer than 1024 bytes"));
    }
    Ok(())
}

/// Splits `sip:user@host[:port][;params]` into `(user, host[:port])`.
pub(crate) fn split_sip_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let rest = rest.split([';', '?']).next()?;
    let (user, host) = rest.split_once('@')?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    let user_ok = !user.is_empty() && !user.chars().any(|c| c.is_whitespace() || c == ':');
    (host_ok && user_ok).then_some((user, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_that_would_inject_are_refused() {
        assert!(check_header("X-Account", "gold").is_ok());
        for (n, v) in [
            ("X-A", "1\r\nVia: SIP/2.0/UDP evil"),
            ("X-A", "1\nContact: <sip:evil>"),
            ("X A", "1"),
            ("X-A:", "1"),
            ("", "1"),
            ("X-A\r\nVia", "1"),
        ] {
            assert!(check_header(n, v).is_err(), "{n:?}: {v:?}");
        }
        assert!(check_header("X-Long", &"a".repeat(2000)).is_err());
    }

    #[test]
    fn sip_uris() {
        assert_eq!(
            split_sip_uri("sip:1001@pbx.example.com"),
            Some(("1001", "pbx.example.com"))
        );
        assert_eq!(
            split_sip_uri("sip:alice@127.0.0.1:5070;transport=udp"),
            Some(("alice", "127.0.0.1:5070"))
        );
        for bad in [
            "1001@pbx",
            "sip:pbx.example.com",
            "sip:@pbx",
            "sip:a b@pbx",
            "sip:a@",
        ] {
            assert_eq!(split_sip_uri(bad), None, "{bad}");
        }
    }
}
