//! SDP fragments (`application/trickle-ice-sdpfrag`, RFC 8840) as WHEP/WHIP clients
//! `PATCH` them: ICE credentials, candidates per media section, end of candidates.
//!
//! Hostile input: lines of any length and bytes; what is not understood is skipped.
//! Bounded: at most [`MAX_CANDIDATES`] candidates are kept (the core allows 64 per
//! PeerConnection anyway), a value longer than [`MAX_VALUE`] bytes makes the
//! fragment invalid.

/// Candidates kept from one fragment.
pub const MAX_CANDIDATES: usize = 64;
/// Longest credential, mid or candidate value accepted.
pub const MAX_VALUE: usize = 512;

/// A parsed fragment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SdpFrag {
    /// `a=ice-ufrag` (session level or the first media section's).
    pub ufrag: Option<String>,
    /// `a=ice-pwd`.
    pub pwd: Option<String>,
    /// Candidates as `(mid of their section, "candidate:…")`.
    pub candidates: Vec<(Option<String>, String)>,
    /// `a=end-of-candidates` was there.
    pub end: bool,
}

/// Why a fragment is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpFragError {
    /// Not UTF-8.
    #[error("the SDP fragment is not UTF-8")]
    NotText,
    /// A value past [`MAX_VALUE`] bytes, or with control characters.
    #[error("line {0} of the SDP fragment is too long or holds control characters")]
    BadValue(usize),
    /// More candidates than [`MAX_CANDIDATES`].
    #[error("more than {MAX_CANDIDATES} candidates in one SDP fragment")]
    TooManyCandidates,
}

/// Parses a fragment.
pub fn parse(bytes: &[u8]) -> Result<SdpFrag, SdpFragError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SdpFragError::NotText)?;
    let mut frag = SdpFrag::default();
    let mut mid: Option<String> = None;
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let value = |v: &str| -> Result<String, SdpFragError> {
            if v.len() > MAX_VALUE || v.chars().any(char::is_control) {
                return Err(SdpFragError::BadValue(n + 1));
            }
            Ok(v.trim().to_owned())
        };
        if line.starts_with("m=") {
            mid = None;
        } else if let Some(v) = line.strip_prefix("a=mid:") {
            mid = Some(value(v)?);
        } else if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            frag.ufrag.get_or_insert(value(v)?);
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            frag.pwd.get_or_insert(value(v)?);
        } else if let Some(v) = line.strip_prefix("a=") {
            if v.starts_with("candidate:") {
                if frag.candidates.len() >= MAX_CANDIDATES {
                    return Err(SdpFragError::TooManyCandidates);
                }
                frag.candidates.push((mid.clone(), value(v)?));
            } else if v == "end-of-candidates" {
                frag.end = true;
            }
        }
    }
    Ok(frag)
}

/// `offer` with ICE credentials `ufrag`/`pwd` instead of its own and without its
/// candidates (they come trickled): the offer a client's ICE restart by `PATCH` stands
/// for, for the WebRTC stack that takes only whole offers.
pub fn restarted_offer(offer: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(offer.len());
    for line in offer.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with("a=ice-ufrag:") {
            out.push_str("a=ice-ufrag:");
            out.push_str(ufrag);
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str("a=ice-pwd:");
            out.push_str(pwd);
        } else if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
            continue;
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}

/// The fragment a server answers an ICE restart with: its new credentials and its
/// candidates, taken from its SDP answer (a media section per mid, as RFC 8840 shows).
pub fn answer_fragment(answer: &str) -> String {
    let mut head = String::new();
    let mut body = String::new();
    let mut section: Option<&str> = None;
    for line in answer.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(m) = line.strip_prefix("m=") {
            section = Some(m);
            continue;
        }
        if (line.starts_with("a=ice-ufrag:") || line.starts_with("a=ice-pwd:"))
            && !head.contains(line.split(':').next().unwrap_or_default())
        {
            head.push_str(line);
            head.push_str("\r\n");
        }
        if let Some(m) = section {
            if line.starts_with("a=mid:") {
                body.push_str("m=");
                body.push_str(m);
                body.push_str("\r\n");
                body.push_str(line);
                body.push_str("\r\n");
            } else if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
                body.push_str(line);
                body.push_str("\r\n");
            }
        }
    }
    head + &body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Chromium 156 playing `/player` (interop test `whep_players`): its
    /// first trickle `PATCH`, one candidate per m-line, gathered before BUNDLE was
    /// agreed. Its other fragments are the fuzz seeds (`fuzz/seeds/whep_sdpfrag`).
    const CHROMIUM_FRAG: &str = include_str!("../../fuzz/seeds/whep_sdpfrag/chromium_trickle.txt");
    const CHROMIUM_END: &str =
        include_str!("../../fuzz/seeds/whep_sdpfrag/chromium_end_of_candidates.txt");

    #[test]
    fn parses_credentials_candidates_per_mid_and_the_end() {
        let f = parse(CHROMIUM_FRAG.as_bytes()).unwrap();
        assert_eq!(f.ufrag.as_deref(), Some("99D2"));
        assert_eq!(f.pwd.as_deref(), Some("XHGkxoLL3AxmfFFc9Nn/j7bN"));
        assert_eq!(f.candidates.len(), 2);
        assert_eq!(f.candidates[0].0.as_deref(), Some("0"));
        assert!(f.candidates[1]
            .1
            .starts_with("candidate:3833993290 1 udp 2122260223 127.0.0.1 41646 typ host"));
        assert_eq!(f.candidates[1].0.as_deref(), Some("1"));
        assert!(!f.end);
        let f = parse(CHROMIUM_END.as_bytes()).unwrap();
        assert!(f.candidates.is_empty() && f.end);
    }

    #[test]
    fn hostile_fragments_are_refused_or_skipped() {
        assert_eq!(parse(&[0xff, 0xfe]), Err(SdpFragError::NotText));
        let long = format!("a=candidate:{}\r\n", "x".repeat(60_000));
        assert_eq!(parse(long.as_bytes()), Err(SdpFragError::BadValue(1)));
        let ctl = "a=ice-ufrag:ab\u{7}c\r\n";
        assert_eq!(parse(ctl.as_bytes()), Err(SdpFragError::BadValue(1)));
        let many: String = (0..65)
            .map(|i| format!("a=candidate:{i} 1 udp 1 127.0.0.1 9 typ host\n"))
            .collect();
        assert_eq!(parse(many.as_bytes()), Err(SdpFragError::TooManyCandidates));
        // Multibyte text, junk lines and no candidates: fine, nothing taken.
        let f = parse("é=ü\r\nhello\r\na=foo:bar\r\n".as_bytes()).unwrap();
        assert_eq!(f, SdpFrag::default());
    }

    #[test]
    fn a_restarted_offer_has_the_new_credentials_and_no_candidates() {
        let offer =
            "v=0\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                     a=mid:0\r\na=ice-ufrag:old\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n\
                     a=end-of-candidates\r\na=recvonly\r\n";
        let r = restarted_offer(offer, "new", "newpwd");
        assert!(!r.contains("old"), "{r}");
        assert_eq!(r.matches("a=ice-ufrag:new\r\n").count(), 2);
        assert!(r.contains("a=ice-pwd:newpwd\r\n"));
        assert!(!r.contains("candidate"));
        assert!(r.contains("a=recvonly\r\n"));
    }

    #[test]
    fn the_answer_fragment_has_credentials_once_and_candidates_by_mid() {
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=ice-ufrag:srv1\r\n\
                      a=ice-pwd:pw\r\na=candidate:1 1 udp 2130706431 127.0.0.1 10000 typ host\r\n\
                      a=end-of-candidates\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n\
                      a=ice-ufrag:srv1\r\na=ice-pwd:pw\r\n";
        let f = answer_fragment(answer);
        assert_eq!(f.matches("a=ice-ufrag:srv1").count(), 1, "{f}");
        let parsed = parse(f.as_bytes()).unwrap();
        assert_eq!(parsed.ufrag.as_deref(), Some("srv1"));
        assert_eq!(parsed.pwd.as_deref(), Some("pw"));
        assert_eq!(parsed.candidates.len(), 1);
        assert_eq!(parsed.candidates[0].0.as_deref(), Some("0"));
        assert!(parsed.end);
    }
}
