//! The SIP leg's SDP (RFC 4566 / RFC 3264): one audio stream of RTP/AVP, or of
//! RTP/SAVP with SDES keys (`a=crypto`, RFC 4568; see [`super::srtp`]).
//!
//! Sans-IO and forgiving of what phones send (unknown lines are skipped), strict
//! about what we use: the connection address, the audio port, the payload types
//! we can speak and the direction. Never panics on any input (fuzzed).

use super::srtp::Crypto;
use std::net::{IpAddr, SocketAddr};

/// What the SIP leg carries: the phone codecs the voice transcoders speak.
pub use cardea_codecs::voice::PhoneCodec as SipCodec;

/// SDP media direction (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// The side writing the SDP only sends.
    SendOnly,
    /// The side writing the SDP only receives.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses `sendrecv`, `sendonly`, `recvonly` or `inactive`.
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The direction the other side answers with (RFC 3264 §6.1).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether the side writing this SDP sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side writing this SDP receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// The audio stream a SIP peer described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAudio {
    /// Where its RTP goes (connection address and audio port); port 0 means the
    /// stream was refused.
    pub rtp: SocketAddr,
    /// Where its RTCP goes (`a=rtcp` or port + 1).
    pub rtcp: SocketAddr,
    /// Payload types on the m-line that we can speak, in the peer's order.
    pub codecs: Vec<SipCodec>,
    /// The telephone-event/8000 payload type, if offered.
    pub telephone_event: Option<u8>,
    /// The telephone-event/48000 payload type (DTMF beside Opus), if offered.
    pub telephone_event_48k: Option<u8>,
    /// The peer's payload type for Opus (dynamic), if offered.
    pub opus_pt: Option<u8>,
    /// The stream's direction as the peer wrote it.
    pub direction: Direction,
    /// Packet time asked for, ms.
    pub ptime: Option<u32>,
    /// `o=` session id and version, to tell a new offer from a repeat.
    pub origin: (u64, u64),
    /// The m-line's profile is RTP/SAVP(F): SRTP or nothing.
    pub secure: bool,
    /// The `a=crypto` lines we can use, in the peer's order of preference.
    pub crypto: Vec<Crypto>,
}

/// Why an SDP cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not an SDP body at all.
    #[error("not an SDP (no v=0 line)")]
    NotSdp,
    /// No `m=audio` line.
    #[error("no audio stream in the SDP")]
    NoAudio,
    /// A line we need is malformed.
    #[error("malformed SDP line: {0}")]
    Malformed(String),
    /// No connection address for the audio stream.
    #[error("no connection address (c=) for the audio stream")]
    NoConnection,
    /// DTLS-SRTP or another profile we do not speak.
    #[error("unsupported transport profile {0} (RTP/AVP or RTP/SAVP expected)")]
    Profile(String),
    /// RTP/SAVP without a key we can use.
    #[error("RTP/SAVP with no usable a=crypto (AES_CM_128_HMAC_SHA1_80 or _32 needed)")]
    NoCrypto,
    /// None of Opus, G.722, PCMU or PCMA.
    #[error("no codec in common (Opus, G.722, PCMU or PCMA needed)")]
    NoCodec,
}

fn malformed(line: &str) -> SdpError {
    let mut l: String = line.chars().take(80).collect();
    l.retain(|c| !c.is_control());
    SdpError::Malformed(l)
}

fn connection_ip(value: &str, line: &str) -> Result<IpAddr, SdpError> {
    // c=IN IP4 192.0.2.1[/ttl]
    let mut parts = value.split_ascii_whitespace();
    let (Some("IN"), Some(kind), Some(addr)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed(line));
    };
    let addr = addr.split('/').next().unwrap_or(addr);
    let ip: IpAddr = addr.parse().map_err(|_| malformed(line))?;
    match (kind, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(malformed(line)),
    }
}

/// Reads the first audio stream of `sdp`.
pub fn parse(sdp: &str) -> Result<RemoteAudio, SdpError> {
    let mut lines = sdp.lines().map(|l| l.trim_end_matches('\r'));
    if lines.next().map(str::trim) != Some("v=0") {
        return Err(SdpError::NotSdp);
    }
    let mut session_c = None;
    let mut origin = (0, 0);
    let mut session_direction = Direction::SendRecv;
    // Inside the first m=audio section: (port, profile, pts).
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let mut media_c = None;
    let mut media_direction = None;
    let mut rtcp_port = None;
    let mut rtpmaps: Vec<(u8, String)> = Vec::new();
    let mut ptime = None;
    let mut secure = false;
    let mut crypto = Vec::new();
    // 0: session part, 1: in the audio section, 2: in another section (after or before).
    let mut section = 0u8;
    for line in lines {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "m" => {
                if audio.is_some() {
                    // Only the first audio stream is ours; later sections do not matter.
                    break;
                }
                let mut parts = value.split_ascii_whitespace();
                let (Some(kind), Some(port), Some(profile)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(malformed(line));
                };
                if kind != "audio" {
                    section = 2;
                    continue;
                }
                let port: u16 = port
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| malformed(line))?;
                secure = match profile {
                    "RTP/AVP" | "RTP/AVPF" => false,
                    "RTP/SAVP" | "RTP/SAVPF" => true,
                    _ => return Err(SdpError::Profile(profile.chars().take(32).collect())),
                };
                let mut pts = Vec::new();
                for p in parts {
                    let pt: u8 = p.parse().map_err(|_| malformed(line))?;
                    if pt > 127 {
                        return Err(malformed(line));
                    }
                    if pts.len() < 64 {
                        pts.push(pt);
                    }
                }
                audio = Some((port, pts));
                section = 1;
            }
            "c" => {
                let ip = connection_ip(value, line)?;
                match section {
                    0 => session_c = Some(ip),
                    1 => media_c = Some(ip),
                    _ => {}
                }
            }
            "o" if section == 0 => {
                let mut parts = value.split_ascii_whitespace();
                let _user = parts.next();
                let id = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let version = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                origin = (id, version);
            }
            "a" => {
                let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                if let Some(d) = Direction::parse(name) {
                    match section {
                        0 => session_direction = d,
                        1 => media_direction = Some(d),
                        _ => {}
                    }
                    continue;
                }
                if section != 1 {
                    continue;
                }
                match name {
                    "rtpmap" => {
                        let Some((pt, enc)) = arg.split_once(' ') else {
                            return Err(malformed(line));
                        };
                        let pt: u8 = pt.trim().parse().map_err(|_| malformed(line))?;
                        if rtpmaps.len() < 64 {
                            rtpmaps.push((pt, enc.trim().to_ascii_lowercase()));
                        }
                    }
                    "rtcp" => {
                        rtcp_port = arg
                            .split_ascii_whitespace()
                            .next()
                            .and_then(|p| p.parse::<u16>().ok());
                    }
                    "ptime" => ptime = arg.trim().parse::<u32>().ok(),
                    "crypto" if crypto.len() < 8 => crypto.extend(Crypto::parse(arg)),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let (port, pts) = audio.ok_or(SdpError::NoAudio)?;
    let ip = media_c.or(session_c).ok_or(SdpError::NoConnection)?;
    if secure && crypto.is_empty() {
        return Err(SdpError::NoCrypto);
    }
    let rtpmap = |pt: u8| {
        rtpmaps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, e)| e.as_str())
    };
    let mut codecs = Vec::new();
    let (mut telephone_event, mut telephone_event_48k, mut opus_pt) = (None, None, None);
    for &pt in &pts {
        let codec = match rtpmap(pt) {
            Some(e) if e.starts_with("pcmu/8000") => Some(SipCodec::Pcmu),
            Some(e) if e.starts_with("pcma/8000") => Some(SipCodec::Pcma),
            Some(e) if e.starts_with("g722/8000") => Some(SipCodec::G722),
            // RFC 7587: always 48000/2, whatever the peer plays.
            Some(e) if e.starts_with("opus/48000") && pt >= 96 => {
                opus_pt.get_or_insert(pt);
                Some(SipCodec::Opus)
            }
            Some(e) if e.starts_with("telephone-event/8000") => {
                telephone_event.get_or_insert(pt);
                None
            }
            Some(e) if e.starts_with("telephone-event/48000") => {
                telephone_event_48k.get_or_insert(pt);
                None
            }
            Some(_) => None,
            // Static payload types need no rtpmap.
            None => SipCodec::from_pt(pt),
        };
        if let Some(c) = codec {
            if !codecs.contains(&c) {
                codecs.push(c);
            }
        }
    }
    let rtcp_port = rtcp_port.unwrap_or(port.wrapping_add(1));
    Ok(RemoteAudio {
        rtp: SocketAddr::new(ip, port),
        rtcp: SocketAddr::new(ip, if port == 0 { 0 } else { rtcp_port }),
        codecs,
        telephone_event,
        telephone_event_48k,
        opus_pt,
        direction: media_direction.unwrap_or(session_direction),
        ptime,
        origin,
        secure,
        crypto,
    })
}

impl RemoteAudio {
    /// The payload type the peer gave `codec` (Opus's is dynamic).
    pub fn pt(&self, codec: SipCodec) -> u8 {
        match codec {
            SipCodec::Opus => self.opus_pt.unwrap_or(codec.pt()),
            c => c.pt(),
        }
    }

    /// The peer's telephone-event payload type on `codec`'s clock (RFC 4733 events
    /// share the audio's timestamps).
    pub fn telephone_event_for(&self, codec: SipCodec) -> Option<u8> {
        match codec.clock_rate() {
            48_000 => self.telephone_event_48k,
            _ => self.telephone_event,
        }
    }
}

/// Our audio stream, as we describe it in an offer or answer.
#[derive(Debug, Clone)]
pub struct LocalAudio {
    /// Address and port where we receive RTP (RTCP on port + 1).
    pub rtp: SocketAddr,
    /// Payload types we offer or the one we answer with, preferred first.
    pub codecs: Vec<SipCodec>,
    /// Our telephone-event/8000 payload type.
    pub telephone_event: Option<u8>,
    /// Our telephone-event/48000 payload type (beside Opus).
    pub telephone_event_48k: Option<u8>,
    /// Our payload type for Opus (an answer takes the offer's).
    pub opus_pt: u8,
    /// Our direction.
    pub direction: Direction,
    /// `o=` session id (fixed for the call).
    pub session_id: u64,
    /// `o=` version (incremented on each new offer).
    pub version: u64,
    /// RTP/SAVP on the m-line (SRTP mandatory) rather than RTP/AVP.
    pub secure: bool,
    /// Our `a=crypto` line (our sending key), when we offer or answer SDES-SRTP.
    pub crypto: Option<Crypto>,
}

impl LocalAudio {
    /// In an answer with `codec`: the offer's telephone-event on that codec's clock,
    /// under the offer's payload type (RFC 3264 §6.1), none on the other clock.
    pub fn answer_events(&mut self, offer: &RemoteAudio, codec: SipCodec) {
        let te = offer.telephone_event_for(codec);
        (self.telephone_event, self.telephone_event_48k) = match codec.clock_rate() {
            48_000 => (None, te),
            _ => (te, None),
        };
    }

    /// Once the call settled on `codec`: keep only the telephone-event on its clock.
    pub fn settle_events(&mut self, codec: SipCodec) {
        match codec.clock_rate() {
            48_000 => self.telephone_event = None,
            _ => self.telephone_event_48k = None,
        }
    }

    /// The SDP text.
    pub fn to_sdp(&self) -> String {
        use std::fmt::Write;
        let ip = self.rtp.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let mut s = String::with_capacity(320);
        let _ = write!(
            s,
            "v=0\r\no=- {} {} IN {family} {ip}\r\ns=Cardea\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {} {}",
            self.session_id,
            self.version,
            self.rtp.port(),
            if self.secure { "RTP/SAVP" } else { "RTP/AVP" }
        );
        let pt = |c: &SipCodec| match c {
            SipCodec::Opus => self.opus_pt,
            c => c.pt(),
        };
        let events = [
            (self.telephone_event, 8000),
            (self.telephone_event_48k, 48000),
        ];
        for c in &self.codecs {
            let _ = write!(s, " {}", pt(c));
        }
        for (te, _) in events {
            if let Some(te) = te {
                let _ = write!(s, " {te}");
            }
        }
        s.push_str("\r\n");
        for c in &self.codecs {
            let _ = write!(s, "a=rtpmap:{} {}\r\n", pt(c), c.rtpmap());
            if *c == SipCodec::Opus {
                // Mono voice with in-band FEC, as the browser sends it.
                let _ = write!(s, "a=fmtp:{} useinbandfec=1\r\n", pt(c));
            }
        }
        for (te, clock) in events {
            if let Some(te) = te {
                let _ = write!(
                    s,
                    "a=rtpmap:{te} telephone-event/{clock}\r\na=fmtp:{te} 0-16\r\n"
                );
            }
        }
        if let Some(c) = &self.crypto {
            let _ = write!(s, "a=crypto:{}\r\n", c.to_attr());
        }
        let _ = write!(
            s,
            "a=rtcp:{}\r\na=ptime:20\r\na={}\r\n",
            self.rtp.port().wrapping_add(1),
            self.direction.as_str()
        );
        s
    }
}

/// The codec to use toward a peer that offered or answered `remote`.
pub fn choose(remote: &RemoteAudio, ours: &[SipCodec]) -> Result<SipCodec, SdpError> {
    remote
        .codecs
        .iter()
        .find(|c| ours.contains(c))
        .copied()
        .ok_or(SdpError::NoCodec)
}

#[cfg(test)]
pub(in crate::ingest::sip) mod tests {
    use super::*;

    /// The offer sipp 3.6 sends from its built-in UAC scenario.
    pub(in crate::ingest::sip) const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    /// What baresip 1.0 offers (trimmed of video).
    pub(in crate::ingest::sip) const BARESIP_OFFER: &str = "v=0\r\no=- 2890 3456 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10234 RTP/AVP 9 0 8 101\r\nb=AS:64\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtcp:10235\r\na=sendrecv\r\na=label:1\r\na=ssrc:1855 cname:abc\r\na=rtcp-rsize\r\n";

    #[test]
    fn sipp_offer() {
        let r = parse(SIPP_OFFER).unwrap();
        assert_eq!(r.rtp, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(r.rtcp, "127.0.0.1:6001".parse().unwrap());
        assert_eq!(r.codecs, vec![SipCodec::Pcmu]);
        assert_eq!(r.telephone_event, None);
        assert_eq!(r.direction, Direction::SendRecv);
        assert_eq!(r.origin, (53655765, 2353687637));
    }

    #[test]
    fn baresip_offer() {
        let r = parse(BARESIP_OFFER).unwrap();
        assert_eq!(r.rtp.port(), 10234);
        assert_eq!(r.rtcp.port(), 10235);
        assert_eq!(
            r.codecs,
            vec![SipCodec::G722, SipCodec::Pcmu, SipCodec::Pcma]
        );
        assert_eq!(r.telephone_event, Some(101));
        // The peer's order decides among what we speak.
        assert_eq!(
            choose(&r, &[SipCodec::Pcma, SipCodec::Pcmu]),
            Ok(SipCodec::Pcmu)
        );
        assert_eq!(
            choose(&r, &[SipCodec::Pcmu, SipCodec::G722]),
            Ok(SipCodec::G722)
        );
    }

    /// What Debian's baresip 1.0 offers with its opus module loaded (audio part).
    pub(in crate::ingest::sip) const BARESIP_OPUS_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10234 RTP/AVP 116 9 0 8 101\r\na=rtpmap:116 opus/48000/2\r\na=fmtp:116 stereo=1;sprop-stereo=1\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";

    #[test]
    fn opus_under_a_dynamic_payload_type() {
        let r = parse(BARESIP_OPUS_OFFER).unwrap();
        assert_eq!(
            r.codecs,
            vec![
                SipCodec::Opus,
                SipCodec::G722,
                SipCodec::Pcmu,
                SipCodec::Pcma
            ]
        );
        assert_eq!(r.pt(SipCodec::Opus), 116);
        assert_eq!(r.pt(SipCodec::Pcmu), 0);
        // Its events are on the 8 kHz clock only: none beside Opus.
        assert_eq!(r.telephone_event_for(SipCodec::Opus), None);
        assert_eq!(r.telephone_event_for(SipCodec::G722), Some(101));
        // An answer with Opus takes 116 and has no telephone-event to offer back.
        let mut ours = LocalAudio {
            telephone_event_48k: Some(102),
            opus_pt: r.pt(SipCodec::Opus),
            ..local_audio(vec![SipCodec::Opus])
        };
        ours.answer_events(&r, SipCodec::Opus);
        let sdp = ours.to_sdp();
        assert!(sdp.contains("m=audio 20000 RTP/AVP 116\r\n"), "{sdp}");
        assert!(
            sdp.contains("a=rtpmap:116 opus/48000/2\r\na=fmtp:116 useinbandfec=1\r\n"),
            "{sdp}"
        );
        assert!(!sdp.contains("telephone-event"), "{sdp}");
        // An opus rtpmap on a static payload type is not Opus.
        let odd = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 8\r\na=rtpmap:8 opus/48000/2\r\n";
        assert_eq!(parse(odd).unwrap().codecs, vec![]);
    }

    /// Our audio on 127.0.0.1:20000 offering `codecs`, telephone-event 101, plain
    /// RTP/AVP; each test changes what it is about.
    fn local_audio(codecs: Vec<SipCodec>) -> LocalAudio {
        LocalAudio {
            rtp: "127.0.0.1:20000".parse().unwrap(),
            codecs,
            telephone_event: Some(101),
            telephone_event_48k: None,
            opus_pt: 111,
            direction: Direction::SendRecv,
            session_id: 7,
            version: 1,
            secure: false,
            crypto: None,
        }
    }

    #[test]
    fn our_opus_offer_reads_back() {
        let local = LocalAudio {
            telephone_event_48k: Some(102),
            version: 2,
            ..local_audio(vec![SipCodec::Opus, SipCodec::Pcmu])
        };
        let sdp = local.to_sdp();
        assert!(
            sdp.contains("m=audio 20000 RTP/AVP 111 0 101 102\r\n"),
            "{sdp}"
        );
        let r = parse(&sdp).unwrap();
        assert_eq!(r.codecs, local.codecs);
        assert_eq!(r.pt(SipCodec::Opus), 111);
        assert_eq!(r.telephone_event, Some(101));
        assert_eq!(r.telephone_event_48k, Some(102));
    }

    /// Debian 12's baresip 1.0 with `mediaenc=srtp-mand` (srtp.so), captured from
    /// its INVITE; `mediaenc=srtp` sends the same with RTP/AVP.
    pub(in crate::ingest::sip) const BARESIP_SRTP_OFFER: &str = "v=0\r\no=- 4145158504 503073128 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:baresip 1.0.0\r\nm=audio 31000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\na=label:1\r\na=rtcp-rsize\r\na=ssrc:1162178912 cname:sip:bob@127.0.0.1:15070\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:rDesHb9W8Xlfg6fp06JcTwG9z1IiBjmpn0OmpgJ5\r\na=minptime:20\r\na=ptime:20\r\n";

    #[test]
    fn sdes_srtp_offers_and_answers() {
        use crate::ingest::sip::srtp::{Crypto, Suite};
        let r = parse(BARESIP_SRTP_OFFER).unwrap();
        assert!(r.secure);
        assert_eq!(r.codecs, vec![SipCodec::Pcmu]);
        assert_eq!(r.crypto.len(), 1);
        assert_eq!(
            (r.crypto[0].tag, r.crypto[0].key.suite),
            (1, Suite::AesCm128HmacSha1_80)
        );
        // Best-effort SRTP (RTP/AVP with keys) is not mandatory but keyed.
        let optional = parse(&BARESIP_SRTP_OFFER.replace("RTP/SAVP", "RTP/AVP")).unwrap();
        assert!(!optional.secure);
        assert_eq!(optional.crypto, r.crypto);
        // Keys we cannot use are skipped; with none left, RTP/SAVP is refused.
        let mki = BARESIP_SRTP_OFFER.replace("pgJ5\r\n", "pgJ5|2^20|1:4\r\n");
        assert_eq!(parse(&mki), Err(SdpError::NoCrypto));
        let two = BARESIP_SRTP_OFFER.replace(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80",
            "a=crypto:1 AEAD_AES_256_GCM inline:x\r\na=crypto:2 AES_CM_128_HMAC_SHA1_80",
        );
        assert_eq!(parse(&two).unwrap().crypto[0].tag, 2);
        // Our answer: RTP/SAVP, the offer's tag and suite, our own key.
        let ours = Crypto::generate(r.crypto[0].tag, r.crypto[0].key.suite);
        let answer = LocalAudio {
            secure: true,
            crypto: Some(ours.clone()),
            ..local_audio(vec![SipCodec::Pcmu])
        };
        let sdp = answer.to_sdp();
        assert!(sdp.contains("m=audio 20000 RTP/SAVP 0 101\r\n"), "{sdp}");
        assert!(
            sdp.contains(&format!("a=crypto:{}\r\n", ours.to_attr())),
            "{sdp}"
        );
        let back = parse(&sdp).unwrap();
        assert!(back.secure);
        assert_eq!(back.crypto, vec![ours]);
    }

    #[test]
    fn hold_directions() {
        let held = SIPP_OFFER.to_owned() + "a=sendonly\r\n";
        assert_eq!(parse(&held).unwrap().direction, Direction::SendOnly);
        // Session-level direction applies when the media has none.
        let s = SIPP_OFFER.replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\n");
        assert_eq!(parse(&s).unwrap().direction, Direction::Inactive);
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
    }

    #[test]
    fn ours_reads_back() {
        let local = LocalAudio {
            version: 2,
            ..local_audio(vec![SipCodec::Pcmu, SipCodec::Pcma])
        };
        let r = parse(&local.to_sdp()).unwrap();
        assert_eq!(r.rtp, local.rtp);
        assert_eq!(r.rtcp.port(), 20001);
        assert_eq!(r.codecs, local.codecs);
        assert_eq!(r.telephone_event, Some(101));
        assert_eq!(r.origin, (7, 2));
    }

    #[test]
    fn refused_inputs() {
        assert_eq!(parse(""), Err(SdpError::NotSdp));
        assert_eq!(parse("hello"), Err(SdpError::NotSdp));
        assert_eq!(
            parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5 RTP/AVP 96\r\n"),
            Err(SdpError::NoAudio)
        );
        assert_eq!(
            parse("v=0\r\nm=audio 5 RTP/AVP 0\r\n"),
            Err(SdpError::NoConnection)
        );
        assert_eq!(
            parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/SAVP 0\r\n"),
            Err(SdpError::NoCrypto)
        );
        assert!(matches!(
            parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 UDP/TLS/RTP/SAVP 0\r\n"),
            Err(SdpError::Profile(_))
        ));
        assert!(matches!(
            parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n"),
            Err(SdpError::Malformed(_))
        ));
        assert!(matches!(
            parse("v=0\r\nc=IN IP4 ::1\r\nm=audio 5 RTP/AVP 0\r\n"),
            Err(SdpError::Malformed(_))
        ));
        let gsm_only = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 3\r\n";
        assert_eq!(
            choose(&parse(gsm_only).unwrap(), &[SipCodec::G722, SipCodec::Pcmu]),
            Err(SdpError::NoCodec)
        );
    }
}
