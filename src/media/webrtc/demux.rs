//! Classifies datagrams arriving on the shared UDP socket (RFC 7983) and reads the
//! local ICE ufrag from STUN requests, so the engine can pick the peer without
//! asking each one. Sans-IO and allocation-free; input is hostile and never panics.

/// What a datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Datagram<'a> {
    /// A well-formed STUN message. `local_ufrag` is the part of USERNAME before ':'
    /// (requests carry it; responses and indications usually don't).
    Stun {
        /// The ufrag the sender believes is ours.
        local_ufrag: Option<&'a str>,
    },
    /// A DTLS record.
    Dtls,
    /// RTP or RTCP (SRTP/SRTCP on the wire).
    Rtp,
    /// Anything else, including malformed STUN: dropped and counted.
    Garbage,
}

const STUN_MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_HEADER: usize = 20;
const ATTR_USERNAME: u16 = 0x0006;
/// The smallest RTCP packet (a header with no report) and smallest RTP header.
const MIN_RTP: usize = 8;

/// Classifies one datagram.
pub(crate) fn classify(d: &[u8]) -> Datagram<'_> {
    let Some(&first) = d.first() else {
        return Datagram::Garbage;
    };
    match first {
        0..=3 => parse_stun(d).unwrap_or(Datagram::Garbage),
        20..=63 if d.len() >= 13 => Datagram::Dtls,
        128..=191 if d.len() >= MIN_RTP => Datagram::Rtp,
        _ => Datagram::Garbage,
    }
}

fn parse_stun(d: &[u8]) -> Option<Datagram<'_>> {
    if d.len() < STUN_HEADER || d[4..8] != STUN_MAGIC {
        return None;
    }
    let len = u16::from_be_bytes([d[2], d[3]]) as usize;
    if !len.is_multiple_of(4) || STUN_HEADER + len != d.len() {
        return None;
    }
    let mut attrs = &d[STUN_HEADER..];
    let mut local_ufrag = None;
    while !attrs.is_empty() {
        if attrs.len() < 4 {
            return None;
        }
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let alen = u16::from_be_bytes([attrs[2], attrs[3]]) as usize;
        let padded = alen.checked_add(3)? & !3;
        let value = attrs.get(4..4 + alen)?;
        if attrs.len() < 4 + padded {
            return None;
        }
        if kind == ATTR_USERNAME && local_ufrag.is_none() {
            let username = std::str::from_utf8(value).ok()?;
            local_ufrag = Some(username.split(':').next().unwrap_or(username));
        }
        attrs = &attrs[4 + padded..];
    }
    Some(Datagram::Stun { local_ufrag })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a fixture captured on loopback with tcpdump during the Chromium echo test.
    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split_whitespace())
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn chromium_binding_request() -> Vec<u8> {
        fixture("chromium_stun_binding_request.hex")
    }

    #[test]
    fn reads_ufrag_from_captured_request() {
        let d = chromium_binding_request();
        assert_eq!(
            classify(&d),
            Datagram::Stun {
                local_ufrag: Some("2ljf5YRjEuqUelKr")
            }
        );
    }

    #[test]
    fn captured_response_dtls_and_srtp() {
        assert_eq!(
            classify(&fixture("chromium_stun_binding_response.hex")),
            Datagram::Stun { local_ufrag: None }
        );
        assert_eq!(
            classify(&fixture("chromium_dtls_client_hello.hex")),
            Datagram::Dtls
        );
        assert_eq!(
            classify(&fixture("chromium_srtp_packet.hex")),
            Datagram::Rtp
        );
    }

    #[test]
    fn truncated_or_padded_stun_is_garbage() {
        let d = chromium_binding_request();
        for cut in 0..d.len() {
            let c = classify(&d[..cut]);
            assert!(
                matches!(c, Datagram::Garbage),
                "{cut} bytes classified as {c:?}"
            );
        }
        let mut longer = d.clone();
        longer.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(classify(&longer), Datagram::Garbage);
    }

    #[test]
    fn attribute_length_past_the_end_is_garbage() {
        let mut d = vec![0, 1, 0, 8, 0x21, 0x12, 0xA4, 0x42];
        d.extend_from_slice(&[7; 12]);
        d.extend_from_slice(&[0, 6, 0xff, 0xff, b'a', b'b', b'c', b'd']);
        assert_eq!(classify(&d), Datagram::Garbage);
    }

    #[test]
    fn other_kinds() {
        assert_eq!(classify(&[]), Datagram::Garbage);
        assert_eq!(classify(&[0x80; 12]), Datagram::Rtp);
        assert_eq!(classify(&[22; 20]), Datagram::Dtls);
        assert_eq!(
            classify(b"hello world, this is not media"),
            Datagram::Garbage
        );
        assert_eq!(classify(&[0xff; 100]), Datagram::Garbage);
    }
}
