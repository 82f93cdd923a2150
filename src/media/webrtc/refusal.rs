//! How a peer's SDP is refused: str0m's own handling behind one guard (a panic in it
//! is a refusal like any other), and its errors told in words fit for the peer.

/// Applies a peer's SDP (offer, answer, renegotiation) to its `Rtc`: the one guard
/// around str0m's SDP handling. str0m asserts on some SDPs it cannot map (one payload
/// type claimed by two m-lines): a peer's SDP must not take the gateway down, so a
/// panic is a refused SDP like any other ("SDP refused by the WebRTC stack").
pub(crate) fn sdp_guard<T>(
    apply: impl FnOnce() -> Result<T, str0m::RtcError>,
) -> Result<T, String> {
    crate::contain::contain(apply)
        .map_err(|_| "SDP refused by the WebRTC stack".to_owned())?
        .map_err(|e| match e {
            str0m::RtcError::Sdp(e) => sdp_refusal(&e),
            other => {
                tracing::debug!(error = %other, "SDP refused");
                printable(&other.to_string())
            }
        })
}

/// What a peer is told of an SDP str0m cannot parse.
pub(crate) const UNPARSABLE_SDP: &str = "the SDP could not be parsed";

/// Why a peer's SDP was refused, in words fit for the peer. str0m's parse errors show its
/// parser's internals (`Parse error at PointerOffset(0x7f…)`: a heap address), so a parse
/// failure is told in ours; its other refusals are its words about the SDP, kept
/// printable and short. The library's own text goes to the debug log.
pub(crate) fn sdp_refusal(e: &str0m::error::SdpError) -> String {
    tracing::debug!(error = %e, "SDP refused");
    match e {
        str0m::error::SdpError::ParseError(_) => UNPARSABLE_SDP.to_owned(),
        str0m::error::SdpError::Inconsistent(why) => printable(&format!("SDP inconsistent: {why}")),
    }
}

/// `text` without control characters (CR/LF and the rest become spaces), at most 200 bytes.
fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > 200 {
        let mut end = 200;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use str0m::change::SdpOffer;

    use super::*;

    #[test]
    fn sdp_refusals_are_ours_printable_and_short() {
        // A real parse failure of str0m's: its text shows a heap address.
        let e = SdpOffer::from_sdp_string("v=0\r\nm=audio 9 RTP/AVP 1\0\r\n").unwrap_err();
        assert!(e.to_string().contains("0x"), "{e}");
        assert_eq!(sdp_refusal(&e), UNPARSABLE_SDP);
        let long = format!("line\r\nbreak\0{}", "é".repeat(30_000));
        let said = sdp_refusal(&str0m::error::SdpError::Inconsistent(long));
        assert!(said.starts_with("SDP inconsistent: line  break "), "{said}");
        assert!(said.len() <= 200 && !said.contains(char::is_control));
        // An offer str0m refuses after parsing it: its words, cleaned.
        let refused = sdp_guard::<()>(|| Err(str0m::RtcError::RemoteSdp("no\r\nmedia".into())));
        assert_eq!(refused, Err("remote sdp: no  media".to_owned()));
    }
}
