//! Per-handle state: the registration, the call and its place in its life.

use super::*;

/// Where a handle's registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Registration {
    Registering,
    /// `sent`: a REGISTER went out (false for guests and `send_register: false`).
    Registered {
        sent: bool,
    },
    Unregistering,
}

#[derive(Debug)]
pub(super) struct SipHandle {
    pub(super) registration: Registration,
    /// The account's user part, what `registered` reports.
    pub(super) user: String,
    /// The full address of record.
    pub(super) uri: String,
    /// What calls are placed with (From, credentials, proxy).
    pub(super) account: Account,
    /// Display name for calls.
    pub(super) display_name: Option<String>,
    /// The call going on, if any.
    pub(super) call: Option<Call>,
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    /// Outgoing, INVITE sent, no final answer yet.
    Calling,
    /// Incoming, offered to the browser.
    Ringing,
    /// Incoming, the browser answered with `progress`: our 183 carries its media
    /// (early media); `accept` sends the 200.
    Progressing,
    /// Incoming, the browser accepted; our 200 is going out.
    Accepting,
    /// Answered, media flowing.
    InCall,
    /// Hangup or decline asked; the call's end is to come.
    Ending,
}

impl CallState {
    /// Every state, in the order of their numbers.
    pub(super) const ALL: [CallState; 6] = [
        CallState::Calling,
        CallState::Ringing,
        CallState::Progressing,
        CallState::Accepting,
        CallState::InCall,
        CallState::Ending,
    ];

    /// How errors and `handle_info` name it.
    pub(super) fn name(self) -> &'static str {
        match self {
            CallState::Calling => "calling",
            CallState::Ringing => "ringing",
            CallState::Progressing => "progressing",
            CallState::Accepting => "accepting",
            CallState::InCall => "incall",
            CallState::Ending => "ending",
        }
    }
}

#[derive(Debug)]
pub(super) struct Call {
    pub(super) state: CallState,
    pub(super) call_id: Option<String>,
    /// The other party's URI.
    pub(super) peer: String,
    /// Our JSEP answer to the browser's offer, sent with `progress` or `accepted`.
    pub(super) answer: Option<Value>,
    /// The audio source feeding the browser.
    pub(super) source: SourceId,
    /// For incoming calls: the audio mid of our offer, and the browser codec.
    pub(super) mid: Option<Mid>,
    pub(super) browser: BrowserCodec,
    pub(super) stats: Arc<BridgeStats>,
    /// An `update` whose browser offer the PeerConnection is answering: its transaction.
    pub(super) updating: Option<String>,
    /// For incoming calls: what the caller's offer asks of SRTP (`incomingcall`'s `srtp`).
    pub(super) offered_srtp: Option<&'static str>,
}
