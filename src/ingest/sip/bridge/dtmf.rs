//! RFC 4733 telephone events: digits to event codes and back, and the event being
//! sent to the peer.

/// End-of-event packets of RFC 4733 are sent three times (§2.5.1.4).
pub(super) const END_REPEATS: u8 = 3;

/// The RFC 4733 event code of a DTMF digit.
pub fn dtmf_code(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// The digit of an RFC 4733 event code.
pub fn dtmf_digit(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        _ => None,
    }
}

/// An RFC 4733 event being sent to the peer.
#[derive(Debug, Clone, Copy)]
pub(super) struct OutEvent {
    pub(super) code: u8,
    /// Timestamp of the event (its start).
    pub(super) ts: u32,
    /// Duration so far, RTP clock units.
    pub(super) duration: u16,
    /// Total, RTP clock units.
    pub(super) total: u16,
    /// End packets left to send.
    pub(super) ends_left: u8,
    pub(super) first: bool,
}
