//! SDES-SRTP on the SIP leg: keys exchanged in the SDP (`a=crypto`, RFC 4568),
//! packets protected by libsrtp (RFC 3711) through the `srtp` crate.
//!
//! Sans-IO: [`SrtpLeg`] turns RTP/RTCP into SRTP/SRTCP and back in place, with one
//! buffer kept for the call (nothing allocated per packet). Keys never reach logs:
//! [`SdesKey`]'s `Debug` hides them.

use base64::Engine as _;
use std::io::Cursor;

/// The SDES crypto suites we speak (RFC 4568 §6.2): AES-CM-128 with an 80- or
/// 32-bit HMAC-SHA1 tag on SRTP (SRTCP always carries 80 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// `AES_CM_128_HMAC_SHA1_80`, the default.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`.
    AesCm128HmacSha1_32,
}

impl Suite {
    /// The name in `a=crypto` and in the API's `srtp_profile`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// Parses a suite name (case-insensitive, as phones vary).
    pub fn parse(s: &str) -> Option<Suite> {
        [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32]
            .into_iter()
            .find(|x| x.name().eq_ignore_ascii_case(s))
    }

    fn rtp_policy(self) -> srtp::CryptoPolicy {
        match self {
            Suite::AesCm128HmacSha1_80 => srtp::CryptoPolicy::aes_cm_128_hmac_sha1_80(),
            Suite::AesCm128HmacSha1_32 => srtp::CryptoPolicy::aes_cm_128_hmac_sha1_32(),
        }
    }
}

/// Master key (16 bytes) and salt (14 bytes), as `inline:` carries them.
const KEY_LEN: usize = 30;

/// One direction's master key and salt.
#[derive(Clone, PartialEq, Eq)]
pub struct SdesKey {
    /// Its suite.
    pub suite: Suite,
    material: [u8; KEY_LEN],
}

impl std::fmt::Debug for SdesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdesKey")
            .field("suite", &self.suite)
            .field("material", &"<hidden>")
            .finish()
    }
}

impl SdesKey {
    /// A fresh random key (the thread's CSPRNG).
    pub fn generate(suite: Suite) -> SdesKey {
        let mut material = [0u8; KEY_LEN];
        rand::fill(&mut material);
        SdesKey { suite, material }
    }
}

/// A usable `a=crypto` attribute: its tag and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// The tag the answer repeats to pick this line.
    pub tag: u32,
    /// The key of the side that wrote the line (what it sends with).
    pub key: SdesKey,
}

impl Crypto {
    /// Our line `tag` with a fresh key of `suite`.
    pub fn generate(tag: u32, suite: Suite) -> Crypto {
        Crypto {
            tag,
            key: SdesKey::generate(suite),
        }
    }

    /// Parses the value of an `a=crypto:` attribute:
    /// `<tag> <suite> inline:<key||salt>[|<lifetime>][|<mki>:<len>] [<session params>]`.
    /// None for what we cannot use: other suites, MKIs, several keys, session
    /// parameters (UNENCRYPTED_SRTP and friends), a key of the wrong size.
    pub fn parse(value: &str) -> Option<Crypto> {
        let mut parts = value.split_ascii_whitespace();
        let tag: u32 = parts.next()?.parse().ok()?;
        if tag > 999_999_999 {
            return None;
        }
        let suite = Suite::parse(parts.next()?)?;
        let key_params = parts.next()?;
        if parts.next().is_some() || key_params.contains(';') {
            return None;
        }
        let inline = key_params.strip_prefix("inline:")?;
        let mut fields = inline.split('|');
        let encoded = fields.next()?;
        for f in fields {
            // A lifetime (a number or 2^n) is fine; an MKI (n:len) is not.
            if f.contains(':') {
                return None;
            }
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let material: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Crypto {
            tag,
            key: SdesKey { suite, material },
        })
    }

    /// The attribute's value (after `a=crypto:`).
    pub fn to_attr(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.key.suite.name(),
            base64::engine::general_purpose::STANDARD.encode(self.key.material)
        )
    }
}

/// Why SRTP could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("libsrtp: {0:?}")]
pub struct SrtpError(srtp::Error);

/// What the packet was not: authentic, fresh and well formed (replays, forged or
/// garbled packets, plain RTP on a secure leg).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected;

/// The call's SRTP: our key protects what we send, the peer's unprotects what we get.
pub struct SrtpLeg {
    tx: srtp::Session,
    rx: srtp::Session,
    theirs: SdesKey,
    /// The packet being protected (grown in place by the auth tag).
    out: Vec<u8>,
}

impl std::fmt::Debug for SrtpLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpLeg")
            .field("suite", &self.theirs.suite)
            .finish_non_exhaustive()
    }
}

fn session(key: &SdesKey, inbound: bool) -> Result<srtp::Session, SrtpError> {
    let policy = srtp::StreamPolicy {
        key: &key.material,
        rtp: key.suite.rtp_policy(),
        // RFC 4568 §6.2: SRTCP keeps the 80-bit tag with either suite.
        rtcp: srtp::CryptoPolicy::aes_cm_128_hmac_sha1_80(),
        ..Default::default()
    };
    if inbound {
        srtp::Session::with_inbound_template(policy)
    } else {
        srtp::Session::with_outbound_template(policy)
    }
    .map_err(SrtpError)
}

impl SrtpLeg {
    /// Largest packet we protect: the bridge's longest RTP (12 + 1275 bytes of Opus)
    /// and RTCP are far below it.
    const MAX_PACKET: usize = 1500;
    /// SRTP's trailer at most (SRTCP index + 80-bit tag; libsrtp allows for more).
    const MAX_TRAILER: usize = 144;

    /// SRTP with `ours` for sending and `theirs` for receiving.
    pub fn new(ours: &SdesKey, theirs: &SdesKey) -> Result<SrtpLeg, SrtpError> {
        Ok(SrtpLeg {
            tx: session(ours, false)?,
            rx: session(theirs, true)?,
            theirs: theirs.clone(),
            out: Vec::with_capacity(Self::MAX_PACKET + Self::MAX_TRAILER),
        })
    }

    /// The peer's key from a later SDP (a re-INVITE or its answer): a changed key
    /// starts a new inbound context, the same key keeps the current one.
    pub fn set_inbound(&mut self, theirs: &SdesKey) -> Result<(), SrtpError> {
        if *theirs != self.theirs {
            self.rx = session(theirs, true)?;
            self.theirs = theirs.clone();
        }
        Ok(())
    }

    /// The SRTP (or SRTCP when `rtcp`) form of `packet`; None if it cannot be
    /// protected (too long, or libsrtp refused it).
    pub fn protect(&mut self, rtcp: bool, packet: &[u8]) -> Option<&[u8]> {
        if packet.len() > Self::MAX_PACKET {
            return None;
        }
        self.out.clear();
        self.out.extend_from_slice(packet);
        let r = if rtcp {
            self.tx.protect_rtcp(&mut self.out)
        } else {
            self.tx.protect(&mut self.out)
        };
        r.ok().map(|()| &self.out[..])
    }

    /// Unprotects the SRTP (or SRTCP) packet in `buf[..len]` in place; the RTP
    /// packet's length.
    pub fn unprotect(&mut self, rtcp: bool, buf: &mut [u8], len: usize) -> Result<usize, Rejected> {
        if len > buf.len() {
            return Err(Rejected);
        }
        // Unprotecting only shrinks the packet, so a cursor over the caller's buffer
        // does (its position is the packet's length).
        let mut c = Cursor::new(buf);
        c.set_position(len as u64);
        let r = if rtcp {
            self.rx.unprotect_rtcp(&mut c)
        } else {
            self.rx.unprotect(&mut c)
        };
        r.map_err(|_| Rejected)?;
        Ok(c.position() as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 12's baresip 1.0 (srtp.so, `mediaenc=srtp-mand`): its INVITE's line.
    const BARESIP_CRYPTO: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:rDesHb9W8Xlfg6fp06JcTwG9z1IiBjmpn0OmpgJ5";

    fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x80,
            0,
            (seq >> 8) as u8,
            seq as u8,
            0,
            0,
            0,
            160,
            1,
            2,
            3,
            4,
        ];
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn parses_and_writes_crypto_lines() {
        let c = Crypto::parse(BARESIP_CRYPTO).expect("baresip's line");
        assert_eq!(c.tag, 1);
        assert_eq!(c.key.suite, Suite::AesCm128HmacSha1_80);
        assert_eq!(c.to_attr(), BARESIP_CRYPTO);
        let lower =
            "2 aes_cm_128_hmac_sha1_32 inline:rDesHb9W8Xlfg6fp06JcTwG9z1IiBjmpn0OmpgJ5|2^31";
        let c = Crypto::parse(lower).expect("lifetime and lower case");
        assert_eq!((c.tag, c.key.suite), (2, Suite::AesCm128HmacSha1_32));
        for bad in [
            "1 AES_256_CM_HMAC_SHA1_80 inline:rDesHb9W8Xlfg6fp06JcTwG9z1IiBjmpn0OmpgJ5",
            "1 AES_CM_128_HMAC_SHA1_80 inline:rDesHb9W8Xlfg6fp06JcTwG9z1IiBjmpn0OmpgJ5|2^20|1:4",
            "1 AES_CM_128_HMAC_SHA1_80 inline:rDesHb9W8Xlfg6fp06JcTwG9z1IiBjmpn0OmpgJ5 UNENCRYPTED_SRTP",
            "1 AES_CM_128_HMAC_SHA1_80 inline:rDesHb9W",
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!",
            "1 AES_CM_128_HMAC_SHA1_80",
            "x AES_CM_128_HMAC_SHA1_80 inline:rDesHb9W8Xlfg6fp06JcTwG9z1IiBjmpn0OmpgJ5",
            "",
        ] {
            assert_eq!(Crypto::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_stay_out_of_debug_output() {
        let c = Crypto::parse(BARESIP_CRYPTO).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("rDes") && shown.contains("hidden"),
            "{shown}"
        );
        assert_ne!(
            SdesKey::generate(Suite::AesCm128HmacSha1_80).material,
            [0; 30]
        );
    }

    #[test]
    fn protects_and_unprotects_both_suites() {
        for (suite, tag_len) in [
            (Suite::AesCm128HmacSha1_80, 10),
            (Suite::AesCm128HmacSha1_32, 4),
        ] {
            let (a, b) = (SdesKey::generate(suite), SdesKey::generate(suite));
            let mut alice = SrtpLeg::new(&a, &b).unwrap();
            let mut bob = SrtpLeg::new(&b, &a).unwrap();
            let plain = rtp(7, &[0x55; 160]);
            let sent = alice.protect(false, &plain).unwrap().to_vec();
            assert_eq!(sent.len(), plain.len() + tag_len);
            assert_eq!(sent[..12], plain[..12], "the header stays readable");
            assert_ne!(sent[12..172], plain[12..], "the payload does not");
            let mut buf = [0u8; 2048];
            buf[..sent.len()].copy_from_slice(&sent);
            let n = bob.unprotect(false, &mut buf, sent.len()).unwrap();
            assert_eq!(&buf[..n], &plain[..]);
            // A replay, a forged bit and a packet under the other key are refused.
            buf[..sent.len()].copy_from_slice(&sent);
            assert_eq!(bob.unprotect(false, &mut buf, sent.len()), Err(Rejected));
            let mut forged = alice
                .protect(false, &rtp(8, &[0x55; 160]))
                .unwrap()
                .to_vec();
            forged[20] ^= 1;
            buf[..forged.len()].copy_from_slice(&forged);
            assert_eq!(bob.unprotect(false, &mut buf, forged.len()), Err(Rejected));
            let stray = bob.protect(false, &rtp(9, &[1; 160])).unwrap().to_vec();
            buf[..stray.len()].copy_from_slice(&stray);
            assert_eq!(bob.unprotect(false, &mut buf, stray.len()), Err(Rejected));
            // SRTCP: an RTCP receiver report goes through with index and 80-bit tag.
            let rr = [0x80, 201, 0, 1, 9, 9, 9, 9];
            let sent = alice.protect(true, &rr).unwrap().to_vec();
            assert_eq!(sent.len(), rr.len() + 4 + 10);
            buf[..sent.len()].copy_from_slice(&sent);
            let n = bob.unprotect(true, &mut buf, sent.len()).unwrap();
            assert_eq!(&buf[..n], &rr[..]);
        }
    }

    #[test]
    fn garbage_and_rekeying() {
        let (a, b) = (
            SdesKey::generate(Suite::AesCm128HmacSha1_80),
            SdesKey::generate(Suite::AesCm128HmacSha1_80),
        );
        let mut alice = SrtpLeg::new(&a, &b).unwrap();
        let mut bob = SrtpLeg::new(&b, &a).unwrap();
        let mut buf = [0u8; 64];
        for len in [0, 1, 11, 12, 20, 64] {
            buf.fill(0xA5);
            assert_eq!(bob.unprotect(false, &mut buf, len), Err(Rejected), "{len}");
            assert_eq!(bob.unprotect(true, &mut buf, len), Err(Rejected), "{len}");
        }
        assert_eq!(bob.unprotect(false, &mut buf, 65), Err(Rejected));
        assert!(alice.protect(false, &[0u8; 1501]).is_none());
        // Alice re-keys (a new offer): bob follows; the old key no longer passes.
        let a2 = SdesKey::generate(Suite::AesCm128HmacSha1_80);
        let mut alice2 = SrtpLeg::new(&a2, &b).unwrap();
        bob.set_inbound(&a2).unwrap();
        let mut big = [0u8; 256];
        let p = alice2.protect(false, &rtp(1, &[3; 20])).unwrap().to_vec();
        big[..p.len()].copy_from_slice(&p);
        assert!(bob.unprotect(false, &mut big, p.len()).is_ok());
        let p = alice.protect(false, &rtp(2, &[3; 20])).unwrap().to_vec();
        big[..p.len()].copy_from_slice(&p);
        assert_eq!(bob.unprotect(false, &mut big, p.len()), Err(Rejected));
    }
}
