//! The mids a server-side offer shows the peer, when they are not the WebRTC stack's own.
//!
//! Janus offers a mountpoint's tracks with the mids it was configured with, and
//! front-ends address the tracks by them (`configure`, `media` events). str0m picks
//! its own random mids and has no way to take ours, so the offer's text is
//! rewritten on the way out and the peer's SDP on the way in: `a=mid:` lines and the
//! `a=group:BUNDLE` list. The RTP MID header extension would still carry str0m's mids,
//! so such offers leave it out (the peer binds the streams by the SSRCs the offer
//! lists instead).

use str0m::media::Mid;

/// str0m's mid and the mid the peer sees, per m-line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MidMap {
    pairs: Vec<(Mid, String)>,
}

impl MidMap {
    /// A map from str0m's `ours` to the peer's `wire`, one pair per m-line; a pair
    /// whose two sides are equal is left out.
    pub fn new(pairs: impl IntoIterator<Item = (Mid, String)>) -> MidMap {
        MidMap {
            pairs: pairs
                .into_iter()
                .filter(|(ours, wire)| ours.to_string() != *wire)
                .collect(),
        }
    }

    /// Whether the peer sees str0m's own mids.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Our SDP as the peer must see it.
    pub fn to_wire(&self, sdp: &str) -> String {
        self.rewrite(sdp, |m| {
            self.pairs
                .iter()
                .find(|(ours, _)| ours.to_string() == m)
                .map(|(_, wire)| wire.clone())
        })
    }

    /// The peer's SDP as str0m must see it. Mids not in the map stay as they are (and
    /// str0m refuses an answer whose mids it did not offer).
    pub fn from_wire(&self, sdp: &str) -> String {
        self.rewrite(sdp, |m| {
            self.pairs
                .iter()
                .find(|(_, wire)| wire == m)
                .map(|(ours, _)| ours.to_string())
        })
    }

    fn rewrite(&self, sdp: &str, map: impl Fn(&str) -> Option<String>) -> String {
        if self.is_empty() {
            return sdp.to_owned();
        }
        let mut out = String::with_capacity(sdp.len() + 64);
        for line in sdp.split_inclusive('\n') {
            let (text, end) = match line.strip_suffix("\r\n") {
                Some(t) => (t, "\r\n"),
                None => match line.strip_suffix('\n') {
                    Some(t) => (t, "\n"),
                    None => (line, ""),
                },
            };
            if let Some(mid) = text.strip_prefix("a=mid:") {
                out.push_str("a=mid:");
                out.push_str(&map(mid).unwrap_or_else(|| mid.to_owned()));
            } else if let Some(list) = text.strip_prefix("a=group:BUNDLE") {
                out.push_str("a=group:BUNDLE");
                for token in list.split(' ').filter(|t| !t.is_empty()) {
                    out.push(' ');
                    out.push_str(&map(token).unwrap_or_else(|| token.to_owned()));
                }
            } else {
                out.push_str(text);
            }
            out.push_str(end);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The session part and two m-lines of an offer str0m 0.25 made for a mountpoint.
    const STR0M_OFFER: &str = "v=0\r\n\
o=str0m-0.25.0 4427413858549372806 2 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE Q6d xqS\r\n\
a=fingerprint:sha-256 5B:30:6C:71:90:7A:CB:2A:43:2E:C6:2E:44:D3:0E:6F:63:A1:52:2F:4C:2F:94:38:4B:AD:E3:C2:A7:43:8F:FC\r\n\
a=setup:actpass\r\n\
a=ice-options:trickle\r\n\
a=msid-semantic: WMS *\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Xq6Y\r\n\
a=ice-pwd:OGb1Yfg5kYb3ULzMtEQALr\r\n\
a=mid:Q6d\r\n\
a=sendonly\r\n\
a=msid:janus1 ZP8hH1fMJM2qx9RUXcUR\r\n\
a=rtcp-mux\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=ssrc:3010290914 cname:ZP8hH1fMJM2qx9RUXcUR\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:xqS\r\n\
a=sendonly\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1\r\n";

    fn map() -> MidMap {
        MidMap::new([
            (Mid::from("Q6d"), "a".to_owned()),
            (Mid::from("xqS"), "v".to_owned()),
        ])
    }

    #[test]
    fn the_offer_carries_the_configured_mids_and_nothing_else_changes() {
        let wire = map().to_wire(STR0M_OFFER);
        assert!(wire.contains("a=group:BUNDLE a v\r\n"), "{wire}");
        assert!(wire.contains("\r\na=mid:a\r\n") && wire.contains("\r\na=mid:v\r\n"));
        assert!(!wire.contains("Q6d") && !wire.contains("xqS"));
        // Everything else byte for byte: only the two mids shrank.
        assert_eq!(wire.len(), STR0M_OFFER.len() - 2 * 2 * 2);
        assert_eq!(map().from_wire(&wire), STR0M_OFFER);
    }

    #[test]
    fn an_answer_is_read_back_with_strom_mids_whatever_its_line_ends() {
        // Chromium answers with CRLF; hand-written SDP may use LF only.
        let answer = "v=0\na=group:BUNDLE  a v\na=mid:a\na=recvonly\na=mid:v\na=mid:zz";
        let ours = map().from_wire(answer);
        assert_eq!(
            ours,
            "v=0\na=group:BUNDLE Q6d xqS\na=mid:Q6d\na=recvonly\na=mid:xqS\na=mid:zz"
        );
    }

    #[test]
    fn mids_already_right_are_no_rewrite() {
        let same = MidMap::new([(Mid::from("a"), "a".to_owned())]);
        assert!(same.is_empty());
        assert_eq!(same.to_wire(STR0M_OFFER), STR0M_OFFER);
    }
}
