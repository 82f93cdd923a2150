//! Plain RTP over UDP: the thin driver that reads a mountpoint's ports and hands each
//! packet to the media engine (the header parser is `cardea_codecs::rtp`), RTCP toward
//! the source (keyframe requests) and the source lock.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use cardea_codecs::rtp::RtpHeader;

use crate::ids::SourceId;
use crate::media::source::SourcePacket;
use crate::media::webrtc::queue::MediaTx;
use crate::media::webrtc::MediaCommand;

/// Per-source counters, shown by the streaming plugin's `info`.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Packets forwarded to the media engine.
    pub packets: AtomicU64,
    /// Bytes of payload forwarded.
    pub bytes: AtomicU64,
    /// Datagrams that were not RTP (or RTCP on an RTCP port), or not of the configured payload type.
    pub dropped: AtomicU64,
    /// Keyframes that started (video tracks whose keyframes can be recognised).
    pub keyframes: AtomicU64,
    /// RTCP packets received from the source.
    pub rtcp_in: AtomicU64,
    /// Keyframe requests (RTCP PLI) sent to the source.
    pub plis_sent: AtomicU64,
    /// Well-formed packets from anyone but the locked source (injection attempts).
    pub dropped_foreign: AtomicU64,
    /// When the last packet arrived (see [`SourceCounters::age_ms`]); 0: never.
    last: AtomicU64,
}

/// Milliseconds from a process-wide origin to `t`, plus one (0 means "never").
fn stamp(t: Instant) -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(|| t);
    t.saturating_duration_since(origin).as_millis() as u64 + 1
}

impl SourceCounters {
    /// Notes a packet of `bytes` payload that arrived at `at`.
    pub fn arrived(&self, at: Instant, bytes: usize) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.last.store(stamp(at), Ordering::Relaxed);
    }

    /// Milliseconds since the last packet as seen at `now` (Janus's `age_ms`), or
    /// `None` before the first one.
    pub fn age_ms(&self, now: Instant) -> Option<u64> {
        match self.last.load(Ordering::Relaxed) {
            0 => None,
            last => Some(stamp(now).saturating_sub(last)),
        }
    }
}

/// One port of a source: which track it feeds and the payload type it expects.
#[derive(Debug)]
pub struct RtpPort {
    /// The track index within the source.
    pub track: u8,
    /// Expected payload type; others are dropped and counted.
    pub pt: u8,
    /// The video codec, when its keyframes can be recognised (for the GOP cache).
    pub keyframes: Option<cardea_codecs::keyframe::VideoCodec>,
    /// The bound socket.
    pub socket: std::net::UdpSocket,
    /// RTCP with the source: its reports tell where keyframe requests (PLI) go.
    pub rtcp: Option<std::net::UdpSocket>,
    /// H.264: SPS and PPS (from the fmtp, then in-band) put before keyframes lacking them.
    pub h264_sets: Option<cardea_codecs::h264::ParameterSetInserter>,
    /// Which packets are the source's.
    pub lock: SourceLock,
}

/// Which datagrams on a mountpoint's port come from its source: from `source_ip` when
/// one is set, and from the first stream heard (its address and SSRC) until that stream
/// falls silent for `relock`; only then may another take its place (an encoder that
/// restarts with a new SSRC or port). Anyone else's packets, however well formed, are
/// dropped and counted: nobody can inject into a live camera view.
#[derive(Debug, Clone)]
pub struct SourceLock {
    source_ip: Option<IpAddr>,
    relock: Duration,
    locked: Option<(SocketAddr, u32)>,
    last: Option<Instant>,
}

impl SourceLock {
    /// A lock taking only `source_ip` (any address when `None`), relocking after `relock`.
    pub fn new(source_ip: Option<IpAddr>, relock: Duration) -> SourceLock {
        SourceLock {
            source_ip,
            relock,
            locked: None,
            last: None,
        }
    }

    /// Whether a packet of `ssrc` from `from` at `now` is the source's.
    pub fn accept(&mut self, now: Instant, from: SocketAddr, ssrc: u32) -> bool {
        if self.source_ip.is_some_and(|ip| ip != from.ip()) {
            return false;
        }
        let silent = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= self.relock);
        match self.locked {
            Some(l) if l == (from, ssrc) => {}
            Some(_) if !silent => return false,
            _ => {
                if self.locked.is_some() {
                    tracing::info!(%from, ssrc, "RTP source relocked after silence");
                }
                self.locked = Some((from, ssrc));
            }
        }
        self.last = Some(now);
        true
    }

    /// The locked source's address (where its RTCP is expected from).
    pub fn source(&self) -> Option<SocketAddr> {
        self.locked.map(|(a, _)| a)
    }
}

/// The SSRC of the sender of an RTCP compound packet (RFC 3550 §6.4: it starts with
/// an SR or RR), or `None` when `d` is not one.
pub(crate) fn rtcp_sender_ssrc(d: &[u8]) -> Option<u32> {
    if d.len() < 8 || d[0] >> 6 != 2 || !matches!(d[1], 200 | 201) {
        return None;
    }
    let words = u16::from_be_bytes([d[2], d[3]]) as usize;
    if (words + 1) * 4 > d.len() {
        return None;
    }
    Some(u32::from_be_bytes([d[4], d[5], d[6], d[7]]))
}

/// An RTCP Picture Loss Indication (RFC 4585 §6.3.1) for `media_ssrc`.
pub fn pli(sender_ssrc: u32, media_ssrc: u32) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0] = 0x80 | 1; // V=2, FMT=1 (PLI)
    p[1] = 206; // PSFB
    p[3] = 2; // length: 3 words - 1
    p[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    p[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    p
}

/// Fewest milliseconds between two keyframe requests for one track: viewers joining
/// together, or one losing packets, must not make the encoder send keyframe after keyframe.
const PLI_INTERVAL: Duration = Duration::from_millis(500);
/// Keyframe requests waiting for a source's RTCP task (more add nothing: one PLI per interval).
const KEYFRAME_REQUESTS: usize = 16;

/// A track's RTCP: the socket, where the source's reports come from, and the SSRC
/// its RTP arrives with.
struct TrackRtcp {
    track: u8,
    socket: UdpSocket,
    peer: Mutex<Option<SocketAddr>>,
    /// The address the accepted RTP comes from: RTCP (and so PLIs) only from there.
    source_ip: Mutex<Option<IpAddr>>,
    /// The SSRC RTP arrives with, plus 1 << 32 once one has (an atomic: set per packet).
    ssrc: AtomicU64,
    last_pli: Mutex<Option<Instant>>,
}

impl TrackRtcp {
    /// The SSRC the track's RTP arrives with, once some has.
    fn media_ssrc(&self) -> Option<u32> {
        let v = self.ssrc.load(Ordering::Relaxed);
        (v >> 32 != 0).then_some(v as u32)
    }
}

/// Reads every port of a source until the task is aborted or the engine goes away.
pub async fn run(
    source: SourceId,
    ports: Vec<RtpPort>,
    counters: Arc<SourceCounters>,
    engine: MediaTx,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut rtcp_tracks = Vec::new();
    for mut port in ports {
        let rtcp = port.rtcp.take().and_then(|s| {
            let s = s
                .set_nonblocking(true)
                .and_then(|()| UdpSocket::from_std(s));
            if let Err(e) = &s {
                tracing::error!(%source, error = %e, "cannot use RTCP socket");
            }
            s.ok()
        });
        let rtcp = rtcp.map(|socket| {
            Arc::new(TrackRtcp {
                track: port.track,
                socket,
                peer: Mutex::new(None),
                source_ip: Mutex::new(None),
                ssrc: AtomicU64::new(0),
                last_pli: Mutex::new(None),
            })
        });
        if let Some(r) = &rtcp {
            rtcp_tracks.push(r.clone());
            tasks.spawn(read_rtcp(source, r.clone(), counters.clone()));
        }
        let socket = match port
            .socket
            .set_nonblocking(true)
            .and_then(|()| UdpSocket::from_std(port.socket))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%source, error = %e, "cannot use RTP socket");
                continue;
            }
        };
        tasks.spawn(read_rtp(
            source,
            socket,
            port.track,
            port.pt,
            port.keyframes,
            port.h264_sets,
            port.lock,
            rtcp,
            counters.clone(),
            engine.clone(),
        ));
    }
    if !rtcp_tracks.is_empty() {
        let (tx, rx) = mpsc::channel(KEYFRAME_REQUESTS);
        if engine
            .command(MediaCommand::KeyframeRequests { source, tx })
            .is_ok()
        {
            tasks.spawn(send_plis(source, rx, rtcp_tracks, counters.clone()));
        }
    }
    while tasks.join_next().await.is_some() {}
}

#[allow(clippy::too_many_arguments)] // one port's settings, each used once
async fn read_rtp(
    source: SourceId,
    socket: UdpSocket,
    track: u8,
    pt: u8,
    keyframes: Option<cardea_codecs::keyframe::VideoCodec>,
    mut h264_sets: Option<cardea_codecs::h264::ParameterSetInserter>,
    mut lock: SourceLock,
    rtcp: Option<Arc<TrackRtcp>>,
    counters: Arc<SourceCounters>,
    engine: MediaTx,
) {
    let mut keyframes = keyframes.map(cardea_codecs::keyframe::KeyframeStarts::new);
    // Packets inserted (parameter sets) so far: later sequence numbers move up.
    let mut inserted: u16 = 0;
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let d = &buf[..n];
        let mut h = match RtpHeader::parse(d) {
            Ok(h) if h.pt == pt => h,
            Ok(h) => {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(%source, %from, pt = h.pt, "unexpected payload type");
                continue;
            }
            Err(e) => {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(%source, %from, error = %e, "not RTP");
                continue;
            }
        };
        #[allow(clippy::disallowed_methods)] // the ingest driver stamps arrival time
        let arrival = Instant::now();
        if !lock.accept(arrival, from, h.ssrc) {
            let n = counters.dropped_foreign.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(%source, %from, ssrc = h.ssrc, dropped = n, "RTP from another source than the mountpoint's: dropped");
            }
            continue;
        }
        if let Some(r) = &rtcp {
            r.ssrc
                .store((1 << 32) | u64::from(h.ssrc), Ordering::Relaxed);
            *crate::contain::lock(&r.source_ip) = lock.source().map(|a| a.ip());
        }
        let payload = &d[h.payload_offset..h.payload_end];
        counters.arrived(arrival, payload.len());
        let send = |header: RtpHeader, payload: &[u8], keyframe: Option<bool>| {
            if keyframe == Some(true) {
                counters.keyframes.fetch_add(1, Ordering::Relaxed);
            }
            let packet = SourcePacket {
                source,
                track,
                header,
                keyframe,
                payload: Arc::from(payload),
                arrival,
            };
            engine.packet(packet).is_ok()
        };
        if let Some(sets) = h264_sets
            .as_mut()
            .and_then(|i| i.inspect(payload, h.timestamp))
        {
            let header = RtpHeader {
                seq: h.seq.wrapping_add(inserted),
                marker: false,
                ..h
            };
            let key = keyframes.as_mut().map(|k| k.is_start(sets, h.timestamp));
            if !send(header, sets, key) {
                return;
            }
            inserted = inserted.wrapping_add(1);
        }
        h.seq = h.seq.wrapping_add(inserted);
        let key = keyframes.as_mut().map(|k| k.is_start(payload, h.timestamp));
        if !send(h, payload, key) {
            return;
        }
    }
}

/// Reads the source's RTCP: the first report (or one from the SSRC its RTP comes
/// with) tells where keyframe requests go. Nothing else latches the address.
async fn read_rtcp(source: SourceId, r: Arc<TrackRtcp>, counters: Arc<SourceCounters>) {
    let mut buf = vec![0u8; 1500];
    loop {
        let Ok((n, from)) = r.socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some(sender) = rtcp_sender_ssrc(&buf[..n]) else {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(%source, %from, "not RTCP");
            continue;
        };
        // Only the locked RTP source decides where keyframe requests go.
        let source_ip = *crate::contain::lock(&r.source_ip);
        if source_ip != Some(from.ip()) {
            counters.dropped_foreign.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(%source, %from, "RTCP from another address than the RTP source");
            continue;
        }
        counters.rtcp_in.fetch_add(1, Ordering::Relaxed);
        let media = r.media_ssrc();
        let mut peer = crate::contain::lock(&r.peer);
        if peer.is_none() || media == Some(sender) {
            if *peer != Some(from) {
                tracing::debug!(%source, track = r.track, %from, "RTCP address latched");
            }
            *peer = Some(from);
        }
    }
}

/// Sends a PLI to the source for each keyframe request the engine passes on.
async fn send_plis(
    source: SourceId,
    mut requests: mpsc::Receiver<u8>,
    tracks: Vec<Arc<TrackRtcp>>,
    counters: Arc<SourceCounters>,
) {
    let ours = rand::random::<u32>();
    while let Some(track) = requests.recv().await {
        let Some(r) = tracks.iter().find(|r| r.track == track) else {
            continue;
        };
        #[allow(clippy::disallowed_methods)] // the driver owns the clock
        let now = Instant::now();
        {
            let mut last = crate::contain::lock(&r.last_pli);
            if last.is_some_and(|t| now.duration_since(t) < PLI_INTERVAL) {
                continue;
            }
            *last = Some(now);
        }
        let peer = *crate::contain::lock(&r.peer);
        let ssrc = r.media_ssrc();
        let (Some(peer), Some(ssrc)) = (peer, ssrc) else {
            tracing::debug!(%source, track, "keyframe wanted, but no RTCP from the source yet");
            continue;
        };
        match r.socket.send_to(&pli(ours, ssrc), peer).await {
            Ok(_) => {
                counters.plis_sent.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%source, track, %peer, "PLI sent");
            }
            Err(e) => tracing::debug!(%source, track, error = %e, "PLI not sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtcp_reports_and_pli() {
        // A GStreamer rtpbin sender report head (V=2, SR, length 6 words).
        let mut sr = [0u8; 28];
        sr[0] = 0x80;
        sr[1] = 200;
        sr[3] = 6;
        sr[4..8].copy_from_slice(&0x2855_6759u32.to_be_bytes());
        assert_eq!(rtcp_sender_ssrc(&sr), Some(0x2855_6759));
        assert_eq!(rtcp_sender_ssrc(&sr[..20]), None, "length past the end");
        // The header of a VP8 packet GStreamer sent (pt 96).
        let rtp = [
            0x80, 0x60, 0x4a, 0x0a, 0x44, 0xa2, 0xe3, 0x00, 0x28, 0x55, 0x67, 0x59,
        ];
        assert_eq!(rtcp_sender_ssrc(&rtp), None, "RTP is not RTCP");
        assert_eq!(rtcp_sender_ssrc(&[0x80, 206, 0, 2]), None);
        let p = pli(1, 0x2855_6759);
        assert_eq!(&p[..4], &[0x81, 206, 0, 2]);
        assert_eq!(&p[8..], &0x2855_6759u32.to_be_bytes());
    }

    #[test]
    fn the_first_stream_holds_the_port_until_it_falls_silent() {
        #[allow(clippy::disallowed_methods)] // a fake clock's starting point
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let cam: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let evil: SocketAddr = "127.0.0.9:5000".parse().unwrap();
        let mut lock = SourceLock::new(None, Duration::from_secs(2));
        assert!(lock.accept(ms(0), cam, 0x1111));
        // Another address, even with the camera's SSRC, or the camera's address with
        // another SSRC: refused while the camera talks.
        assert!(!lock.accept(ms(10), evil, 0x1111));
        assert!(!lock.accept(ms(20), evil, 0x2222));
        assert!(!lock.accept(ms(30), cam, 0x2222));
        assert!(lock.accept(ms(1900), cam, 0x1111));
        assert!(
            !lock.accept(ms(3800), evil, 0x2222),
            "1.9 s of silence is not 2"
        );
        // Silent for 2 s: the next stream (an encoder restart) takes over.
        assert!(lock.accept(ms(3900), cam, 0x3333));
        assert!(!lock.accept(ms(3910), cam, 0x1111));
        assert_eq!(lock.source(), Some(cam));
        // With source_ip, nobody else ever.
        let mut only = SourceLock::new(Some("127.0.0.2".parse().unwrap()), Duration::from_secs(2));
        assert!(!only.accept(ms(0), cam, 1));
        assert!(only.accept(ms(0), "127.0.0.2:7000".parse().unwrap(), 1));
    }
}
