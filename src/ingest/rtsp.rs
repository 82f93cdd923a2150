//! RTSP cameras, pulled with retina: a supervisor that connects, plays the chosen
//! tracks, repacketizes them for WebRTC, and reconnects with backoff when the camera
//! stops, goes silent or restarts. Credentials never reach a log line.
//!
//! Retina depacketizes every codec it knows into frames. A camera with a track it
//! does not know (MP4A-LATM audio) is read packet by packet instead, with our own
//! depacketizers (`cardea_codecs::h26x`, `cardea_codecs::latm`): retina refuses to
//! demultiplex a session with a stream it cannot depacketize.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use retina::client::{
    Credentials, Demuxed, PacketItem, PlayOptions, Playing, Session, SessionOptions, SetupOptions,
    TcpTransportOptions, Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat};
use retina::rtp::ReceivedPacket;
use tokio::sync::mpsc;

use cardea_codecs::keyframe::VideoCodec;

use crate::ids::SourceId;
use crate::ingest::packetizer::TrackPacketizer;
use crate::ingest::IngestEvent;
use crate::media::source::SourcePacket;
use crate::media::webrtc::queue::MediaTx;

/// A camera that sends nothing for this long is taken as gone.
const SILENCE: Duration = Duration::from_secs(10);
/// How long a camera may take to answer SETUP or PLAY (a stalled one is reconnected).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// On-demand cameras: how often the viewer count is looked at, and how long the
/// camera stays connected after the last viewer left (a viewer switching pages
/// comes back to a running stream).
const ONDEMAND_POLL: Duration = Duration::from_millis(100);
const ONDEMAND_LINGER: Duration = Duration::from_secs(3);

/// One track wanted from the camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspTrack {
    /// "video" or "audio".
    pub media: &'static str,
    /// Encoding name as in the camera's SDP (`h264`, `h265`, `pcma`, `pcmu`, `g722`,
    /// `opus`, `mpeg4-generic`, `mp4a-latm`). The n-th track wanted of a (media,
    /// encoding) is the camera's n-th stream of that media and encoding.
    pub encoding: String,
    /// Payload type to give it toward viewers.
    pub pt: u8,
    /// AAC from the camera, transcoded to Opus for browsers.
    pub aac_to_opus: bool,
}

/// What to pull.
#[derive(Clone)]
pub struct RtspSpec {
    /// `rtsp://host[:port]/path`, without credentials.
    pub url: String,
    /// Digest or Basic credentials.
    pub credentials: Option<(String, String)>,
    /// Interleaved over the RTSP TCP connection (default) or UDP.
    pub tcp: bool,
    /// First wait before reconnecting.
    pub reconnect_delay: Duration,
    /// The tracks, in the mountpoint's order; empty: discovered at the first DESCRIBE.
    pub tracks: Vec<RtspTrack>,
    /// Which kinds of the camera's streams discovery takes.
    pub discover: Discover,
    /// Connect only while `viewers` is above zero.
    pub ondemand: bool,
    /// The mountpoint's viewer count.
    pub viewers: Arc<AtomicUsize>,
    /// Frames received, shown by `info`.
    pub counters: Arc<crate::ingest::rtp::SourceCounters>,
}

impl std::fmt::Debug for RtspSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspSpec")
            .field("url", &redact(&self.url))
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("tcp", &self.tcp)
            .field("ondemand", &self.ondemand)
            .field("tracks", &self.tracks)
            .finish()
    }
}

/// Which kinds of stream a camera added by URL alone offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discover {
    /// Its audio streams.
    pub audio: bool,
    /// Its video streams.
    pub video: bool,
}

impl Default for Discover {
    fn default() -> Self {
        Discover {
            audio: true,
            video: true,
        }
    }
}

/// A track found by discovery, with the camera's format parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredTrack {
    /// What the source sends for it.
    pub track: RtspTrack,
    /// The camera's `a=fmtp` (H.264's profile, for the offer).
    pub fmtp: Option<String>,
}

/// A camera stream that is not offered to browsers, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unoffered {
    /// "video", "audio" or what the camera says (e.g. "application").
    pub media: String,
    /// The camera's encoding name.
    pub encoding: String,
    /// Why.
    pub reason: String,
}

/// Most tracks discovery offers (the streaming plugin's bound on a mountpoint's media):
/// a camera describing more lists the rest as not offered.
pub const MAX_DISCOVERED_TRACKS: usize = 16;

/// Discovery: every stream of the camera a browser can take, in the camera's order
/// (video H.264/H.265; audio G.711, G.722, Opus, and AAC or MP4A-LATM transcoded
/// to Opus), and the others with the reason. Payload types: the static ones of
/// G.711/G.722, else 96 upwards.
pub fn discover(offered: &[(&str, &str)], kinds: Discover) -> (Vec<RtspTrack>, Vec<Unoffered>) {
    let mut tracks: Vec<RtspTrack> = Vec::new();
    let mut unoffered = Vec::new();
    let mut next_pt = 96u8;
    for (media, encoding) in offered {
        let enc = encoding.to_ascii_lowercase();
        let refuse = |reason: &str| Unoffered {
            media: media.to_string(),
            encoding: encoding.to_string(),
            reason: reason.to_owned(),
        };
        let (kind, aac) = match (*media, enc.as_str()) {
            ("video", "h264" | "h265") => ("video", false),
            ("audio", "pcmu" | "pcma" | "g722" | "opus") => ("audio", false),
            ("audio", "mpeg4-generic" | "mp4a-latm") => ("audio", true),
            ("video", "vp8" | "vp9" | "av1") => {
                unoffered.push(refuse(
                    "not read from RTSP cameras yet (H.264 and H.265 are)",
                ));
                continue;
            }
            ("video", _) => {
                unoffered.push(refuse("no browser decodes it over WebRTC"));
                continue;
            }
            ("audio", _) => {
                unoffered.push(refuse(
                    "no browser decodes it and Cardea does not transcode it",
                ));
                continue;
            }
            _ => {
                unoffered.push(refuse("not audio or video"));
                continue;
            }
        };
        let wanted = if kind == "video" {
            kinds.video
        } else {
            kinds.audio
        };
        if !wanted {
            unoffered.push(refuse(&format!("{kind} not asked for")));
            continue;
        }
        if tracks.len() >= MAX_DISCOVERED_TRACKS {
            unoffered.push(refuse("more tracks than a mountpoint takes (16)"));
            continue;
        }
        let pt = match enc.as_str() {
            "pcmu" => 0,
            "pcma" => 8,
            "g722" => 9,
            _ => {
                while tracks.iter().any(|t| t.pt == next_pt) {
                    next_pt += 1;
                }
                next_pt
            }
        };
        if tracks.iter().any(|t| t.pt == pt) {
            // A second G.711/G.722 stream: give it a dynamic type of its own.
            unoffered.push(refuse("a second stream of a static payload type"));
            continue;
        }
        if next_pt >= 128 {
            unoffered.push(refuse("no payload type left"));
            continue;
        }
        tracks.push(RtspTrack {
            media: kind,
            encoding: enc,
            pt,
            aac_to_opus: aac,
        });
    }
    (tracks, unoffered)
}

/// What a camera's tracks need for its whole lifetime (one set per track).
struct TrackState {
    wanted: Vec<RtspTrack>,
    packetizers: Vec<TrackPacketizer>,
    /// One transcoder per AAC track for the camera's lifetime, not per session:
    /// libavcodec (FFmpeg 5.1) was seen to leak decoder state when closed after
    /// malformed AAC.
    transcoders: Vec<Option<cardea_codecs::aac::AacToOpus>>,
}

impl TrackState {
    fn new(source: SourceId, wanted: Vec<RtspTrack>) -> TrackState {
        let packetizers = wanted
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let p = TrackPacketizer::new(source, i as u8, t.pt, 0);
                match t.encoding.as_str() {
                    "h265" => p.with_video(VideoCodec::H265),
                    _ => p,
                }
            })
            .collect();
        let transcoders = wanted.iter().map(|_| None).collect();
        TrackState {
            wanted,
            packetizers,
            transcoders,
        }
    }
}

/// State shown by the mountpoint's `info`.
#[derive(Debug, Default)]
pub struct RtspStatus {
    /// Playing right now.
    pub connected: AtomicBool,
    /// Sessions that ended and were retried.
    pub reconnects: AtomicU64,
    /// The last failure, credentials removed.
    pub last_error: Mutex<String>,
}

/// The URL with any `user:pass@` removed, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "<unparseable url>".into(),
    }
}

/// Runs until aborted: connect, play, and on any failure wait and try again.
pub async fn run(
    source: SourceId,
    spec: RtspSpec,
    status: Arc<RtspStatus>,
    engine: MediaTx,
    events: mpsc::Sender<IngestEvent>,
) {
    let mut lost = false;
    let mut backoff = spec.reconnect_delay.max(Duration::from_millis(200));
    let mut tracks = TrackState::new(source, spec.tracks.clone());
    loop {
        // A camera to discover is reached once even on demand: nobody can watch it before.
        let known = !tracks.wanted.is_empty();
        if spec.ondemand && known && spec.viewers.load(Ordering::Relaxed) == 0 {
            tracing::debug!(%source, url = %redact(&spec.url), "on-demand camera idle until watched");
            while spec.viewers.load(Ordering::Relaxed) == 0 {
                if engine.is_closed() {
                    return;
                }
                tokio::time::sleep(ONDEMAND_POLL).await;
            }
        }
        let mut played = false;
        let on_play = || {
            let reconnected = IngestEvent::SourceState {
                source,
                connected: true,
            };
            if lost && events.try_send(reconnected).is_err() {
                tracing::warn!(%source, "event queue full: 'reconnected' not reported");
            }
        };
        let result = session(
            source,
            &spec,
            &status,
            &engine,
            &mut tracks,
            &events,
            &mut played,
            on_play,
        )
        .await;
        if matches!(result, Err(RtspError::Unwatched)) {
            // On demand, nobody watching: hung up on purpose, not a camera failure.
            status.connected.store(false, Ordering::Relaxed);
            tracing::info!(%source, url = %redact(&spec.url), "on-demand camera disconnected: no viewers");
            continue;
        }
        if played || !lost {
            lost = true;
            let _ = events
                .send(IngestEvent::SourceState {
                    source,
                    connected: false,
                })
                .await;
        }
        status.connected.store(false, Ordering::Relaxed);
        if engine.is_closed() {
            return;
        }
        let reason = match result {
            Ok(()) => "the camera ended the stream".to_owned(),
            Err(RtspError::Unwatched) => unreachable!("handled above"),
            Err(e) => e.to_string(),
        };
        tracing::warn!(%source, url = %redact(&spec.url), %reason, retry_in = ?backoff, "RTSP source lost");
        *status.last_error.lock().expect("status lock") = reason;
        status.reconnects.fetch_add(1, Ordering::Relaxed);
        if played {
            backoff = spec.reconnect_delay.max(Duration::from_millis(200));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Errors from retina carry the URL; keep them free of credentials.
fn describe_error(spec: &RtspSpec, e: impl std::fmt::Display) -> String {
    let mut text = e.to_string();
    if let Some((user, pass)) = &spec.credentials {
        if !pass.is_empty() {
            text = text.replace(pass.as_str(), "<redacted>");
        }
        if !user.is_empty() {
            text = text.replace(&format!("{user}:"), "<redacted>:");
        }
    }
    text
}

/// Why an RTSP session ended. The text never holds the camera's credentials.
#[derive(Debug, thiserror::Error)]
enum RtspError {
    /// On demand, and nobody has watched for a while: hung up on purpose.
    #[error("no viewers")]
    Unwatched,
    /// The configured URL does not parse.
    #[error("bad URL: {0}")]
    BadUrl(#[from] url::ParseError),
    /// DESCRIBE, SETUP or PLAY got no answer in time.
    #[error("{0} timed out")]
    TimedOut(&'static str),
    /// The camera (or retina, talking to it) failed; credentials redacted.
    #[error("{0}")]
    Camera(String),
    /// The camera lacks the tracks wanted, or offers nothing a browser plays.
    #[error("{0}")]
    Tracks(String),
    /// A track's decoder or transcoder could not start.
    #[error("{0}")]
    Codec(String),
    /// No packet for this long.
    #[error("no media for {} s", .0.as_secs())]
    Silent(Duration),
}

/// Picks, for each wanted track, the camera stream it is: the n-th track wanted of
/// a (media, encoding) is the camera's n-th stream of that media and encoding.
/// Returns (stream index, track index) pairs, or what the camera lacks.
fn match_tracks(
    wanted: &[RtspTrack],
    offered: &[(&str, &str)],
) -> Result<Vec<(usize, usize)>, String> {
    let mut taken = vec![false; offered.len()];
    let mut pairs = Vec::new();
    for (track, want) in wanted.iter().enumerate() {
        let found = offered.iter().enumerate().position(|(i, (media, enc))| {
            !taken[i] && *media == want.media && enc.eq_ignore_ascii_case(&want.encoding)
        });
        match found {
            Some(i) => {
                taken[i] = true;
                pairs.push((i, track));
            }
            None => {
                let list: Vec<String> = offered.iter().map(|(m, e)| format!("{m} {e}")).collect();
                let same = wanted[..track]
                    .iter()
                    .filter(|w| w.media == want.media && w.encoding == want.encoding)
                    .count();
                return Err(format!(
                    "the camera offers no {}{} {} stream (it offers: {})",
                    if same > 0 { "further " } else { "" },
                    want.media,
                    want.encoding,
                    list.join(", ")
                ));
            }
        }
    }
    Ok(pairs)
}

/// The `a=fmtp` parameters of each stream, found by (media, payload type): the n-th
/// stream with a pair is the SDP's n-th media section with it (retina keeps the SDP's
/// order, leaving out sections it cannot parse).
pub(crate) fn stream_fmtps(sdp: &str, streams: &[(&str, u8)]) -> Vec<Option<String>> {
    // (media, first payload type, fmtp of that payload type) per media section.
    let mut sections: Vec<(&str, Option<u8>, Option<&str>)> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            let mut words = m.split_ascii_whitespace();
            let media = words.next().unwrap_or("");
            let pt = words.nth(2).and_then(|p| p.parse().ok());
            sections.push((media, pt, None));
        } else if let (Some(a), Some(section)) = (line.strip_prefix("a=fmtp:"), sections.last_mut())
        {
            if let Some((pt, params)) = a.split_once(' ') {
                if pt.parse().ok() == section.1 && section.2.is_none() {
                    section.2 = Some(params.trim());
                }
            }
        }
    }
    let mut used = vec![false; sections.len()];
    streams
        .iter()
        .map(|(media, pt)| {
            let i = sections
                .iter()
                .enumerate()
                .position(|(i, (m, p, _))| !used[i] && m == media && *p == Some(*pt))?;
            used[i] = true;
            sections[i].2.map(str::to_owned)
        })
        .collect()
}

/// How one track of a camera read packet by packet is depacketized.
enum RawTrack {
    /// H.264 or H.265 back to access units.
    Video(cardea_codecs::h26x::Depacketizer),
    /// MP4A-LATM to ADTS frames for the AAC transcoder.
    Latm(cardea_codecs::latm::LatmDepacketizer),
    /// One frame per packet (G.711, G.722, Opus).
    Whole,
}

/// What a session reads: retina's frames, or, for a camera with a track retina
/// cannot depacketize, its RTP packets.
enum Feed {
    Frames(Demuxed),
    Packets(Pin<Box<Session<Playing>>>, Vec<RawTrack>),
}

enum Item {
    Frame(CodecItem),
    Packet(ReceivedPacket),
}

impl Feed {
    async fn next(&mut self) -> Option<Result<Item, retina::Error>> {
        match self {
            Feed::Frames(d) => d.next().await.map(|r| r.map(Item::Frame)),
            Feed::Packets(s, _) => loop {
                match s.next().await? {
                    Ok(PacketItem::Rtp(p)) => return Some(Ok(Item::Packet(p))),
                    Ok(_) => continue, // RTCP: retina keeps the session alive itself
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }
}

/// AAC (ADTS) through the track's Opus transcoder into packets; false to stop.
fn transcode(
    source: SourceId,
    transcoder: &mut cardea_codecs::aac::AacToOpus,
    adts: &[u8],
    packetizer: &mut TrackPacketizer,
    now: Instant,
    emit: &mut dyn FnMut(SourcePacket) -> bool,
) -> bool {
    let mut ok = true;
    let pushed = transcoder.push_adts(adts, &mut |opus, ts48| {
        ok &= packetizer.whole(opus, ts48, now, emit);
    });
    if let Err(e) = pushed {
        tracing::debug!(%source, error = %e, "AAC frame dropped");
    }
    ok
}

#[allow(clippy::disallowed_methods)] // a driver: it times the camera and stamps arrivals
#[allow(clippy::too_many_arguments)] // per-camera state that outlives one session, each used once
async fn session(
    source: SourceId,
    spec: &RtspSpec,
    status: &RtspStatus,
    engine: &MediaTx,
    tracks: &mut TrackState,
    events: &mpsc::Sender<IngestEvent>,
    played: &mut bool,
    on_play: impl FnOnce(),
) -> Result<(), RtspError> {
    let url = url::Url::parse(&spec.url)?;
    let creds = spec.credentials.as_ref().map(|(u, p)| Credentials {
        username: u.clone(),
        password: p.clone(),
    });
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("Cardea/{}", env!("CARGO_PKG_VERSION")));
    let mut session = tokio::time::timeout(SILENCE, Session::describe(url, options))
        .await
        .map_err(|_| RtspError::TimedOut("DESCRIBE"))?
        .map_err(|e| RtspError::Camera(describe_error(spec, e)))?;
    let offered: Vec<(&str, &str)> = session
        .streams()
        .iter()
        .map(|s| (s.media(), s.encoding_name()))
        .collect();
    let keys: Vec<(&str, u8)> = session
        .streams()
        .iter()
        .map(|s| (s.media(), s.rtp_payload_type()))
        .collect();
    let fmtps = stream_fmtps(&String::from_utf8_lossy(session.sdp()), &keys);
    if tracks.wanted.is_empty() {
        let (found, unoffered) = discover(&offered, spec.discover);
        let by_stream = match_tracks(&found, &offered).map_err(RtspError::Tracks)?;
        let discovered = found
            .iter()
            .enumerate()
            .map(|(track, t)| DiscoveredTrack {
                track: t.clone(),
                fmtp: by_stream
                    .iter()
                    .find(|(_, tr)| *tr == track)
                    .and_then(|(stream, _)| fmtps[*stream].clone()),
            })
            .collect();
        tracing::info!(%source, url = %redact(&spec.url), tracks = found.len(), unoffered = ?unoffered, "RTSP camera discovered");
        let report = IngestEvent::SourceTracks {
            source,
            tracks: discovered,
            unoffered: unoffered.clone(),
        };
        let _ = events.send(report).await;
        if found.is_empty() {
            let list: Vec<String> = unoffered
                .iter()
                .map(|u| format!("{} {}: {}", u.media, u.encoding, u.reason))
                .collect();
            return Err(RtspError::Tracks(format!(
                "the camera offers nothing a browser can play ({})",
                list.join("; ")
            )));
        }
        *tracks = TrackState::new(source, found);
    }
    let TrackState {
        wanted,
        packetizers,
        transcoders,
    } = tracks;
    let by_stream = match_tracks(wanted, &offered).map_err(RtspError::Tracks)?;
    // Retina depacketizes everything but MP4A-LATM; with such a track, read packets.
    let raw = wanted.iter().any(|t| t.encoding == "mp4a-latm");
    let mut raw_tracks = Vec::new();
    if raw {
        for (track, t) in wanted.iter().enumerate() {
            let (stream, _) = by_stream
                .iter()
                .find(|(_, tr)| *tr == track)
                .expect("every track matched");
            let fmtp = fmtps[*stream].as_deref().unwrap_or("");
            let packetizer = &mut packetizers[track];
            raw_tracks.push(match t.encoding.as_str() {
                "h264" => {
                    packetizer.set_parameter_sets(Some(
                        cardea_codecs::h264::ParameterSetInserter::from_fmtp(fmtp),
                    ));
                    RawTrack::Video(cardea_codecs::h26x::Depacketizer::new(VideoCodec::H264))
                }
                "h265" => RawTrack::Video(cardea_codecs::h26x::Depacketizer::new(VideoCodec::H265)),
                "mp4a-latm" => RawTrack::Latm(
                    cardea_codecs::latm::LatmDepacketizer::from_fmtp(fmtp)
                        .map_err(|e| RtspError::Codec(format!("audio track {track}: {e}")))?,
                ),
                _ => RawTrack::Whole,
            });
        }
    } else {
        // Retina puts the parameter sets before keyframes itself.
        for p in packetizers.iter_mut() {
            p.set_parameter_sets(None);
        }
    }
    for (i, _) in &by_stream {
        let transport = if spec.tcp {
            Transport::Tcp(TcpTransportOptions::default())
        } else {
            Transport::Udp(UdpTransportOptions::default())
        };
        let setup = SetupOptions::default()
            .transport(transport)
            .frame_format(FrameFormat::SIMPLE);
        tokio::time::timeout(REQUEST_TIMEOUT, session.setup(*i, setup))
            .await
            .map_err(|_| RtspError::TimedOut("SETUP"))?
            .map_err(|e| RtspError::Camera(describe_error(spec, e)))?;
    }
    let playing = tokio::time::timeout(REQUEST_TIMEOUT, session.play(PlayOptions::default()))
        .await
        .map_err(|_| RtspError::TimedOut("PLAY"))?
        .map_err(|e| RtspError::Camera(describe_error(spec, e)))?;
    let mut feed = if raw {
        Feed::Packets(Box::pin(playing), raw_tracks)
    } else {
        Feed::Frames(
            playing
                .demuxed()
                .map_err(|e| RtspError::Camera(describe_error(spec, e)))?,
        )
    };
    status.connected.store(true, Ordering::Relaxed);
    on_play();
    tracing::info!(%source, url = %redact(&spec.url), tracks = by_stream.len(), "RTSP source playing");
    for (t, slot) in wanted.iter().zip(transcoders.iter_mut()) {
        if t.aac_to_opus && slot.is_none() {
            *slot = Some(
                cardea_codecs::aac::AacToOpus::new()
                    .map_err(|e| RtspError::Codec(format!("AAC decoder: {e}")))?,
            );
        }
    }
    // A new SSRC per session: viewers see the restart and keep one continuous stream.
    let ssrc = rand::random::<u32>();
    for (i, p) in packetizers.iter_mut().enumerate() {
        p.set_ssrc(ssrc.wrapping_add(i as u32));
    }
    let mut last_watched = Instant::now();
    let mut silent_since = last_watched;
    loop {
        let wait = if spec.ondemand {
            ONDEMAND_POLL
        } else {
            SILENCE
        };
        let next = tokio::time::timeout(wait, feed.next()).await;
        // The one clock read of this turn: timers and the frame's arrival time.
        let now = Instant::now();
        let item = match next {
            Err(_) if now.duration_since(silent_since) < SILENCE => None,
            Err(_) => return Err(RtspError::Silent(SILENCE)),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(RtspError::Camera(describe_error(spec, e))),
            Ok(Some(Ok(item))) => Some(item),
        };
        if spec.ondemand {
            if spec.viewers.load(Ordering::Relaxed) > 0 {
                last_watched = now;
            } else if now.duration_since(last_watched) >= ONDEMAND_LINGER {
                return Err(RtspError::Unwatched);
            }
        }
        let Some(item) = item else {
            continue;
        };
        silent_since = now;
        *played = true;
        let mut emit = |p: SourcePacket| engine.packet(p).is_ok();
        let ok = match item {
            Item::Frame(frame) => {
                let (stream_id, data, ts, video) = match &frame {
                    CodecItem::VideoFrame(f) => {
                        (f.stream_id(), f.data(), f.timestamp().timestamp(), true)
                    }
                    CodecItem::AudioFrame(f) => {
                        (f.stream_id(), f.data(), f.timestamp().timestamp(), false)
                    }
                    _ => continue,
                };
                let Some(&(_, track)) = by_stream.iter().find(|(i, _)| *i == stream_id) else {
                    continue;
                };
                spec.counters.arrived(now, data.len());
                let packetizer = &mut packetizers[track];
                if video {
                    packetizer.access_unit(data, ts as u32, now, &mut emit)
                } else if let Some(t) = transcoders[track].as_mut() {
                    transcode(source, t, data, packetizer, now, &mut emit)
                } else {
                    packetizer.whole(data, ts as u32, now, &mut emit)
                }
            }
            Item::Packet(pkt) => {
                let Feed::Packets(_, raw_tracks) = &mut feed else {
                    unreachable!("packets come only from a packet feed");
                };
                let Some(&(_, track)) = by_stream.iter().find(|(i, _)| *i == pkt.stream_id())
                else {
                    continue;
                };
                let payload = pkt.payload();
                spec.counters.arrived(now, payload.len());
                let (seq, ts, marker) = (
                    pkt.sequence_number(),
                    pkt.timestamp().timestamp() as u32,
                    pkt.mark(),
                );
                let packetizer = &mut packetizers[track];
                let mut ok = true;
                match &mut raw_tracks[track] {
                    RawTrack::Video(d) => d.push(seq, ts, marker, payload, &mut |au, ts| {
                        ok &= packetizer.access_unit(au, ts, now, &mut emit);
                    }),
                    RawTrack::Latm(d) => {
                        // Every AAC track got its transcoder when the session began.
                        if let Some(t) = transcoders[track].as_mut() {
                            d.push(seq, ts, marker, payload, &mut |adts| {
                                ok &= transcode(source, t, adts, packetizer, now, &mut emit);
                            })
                        }
                    }
                    RawTrack::Whole => ok = packetizer.whole(payload, ts, now, &mut emit),
                }
                ok
            }
        };
        if !ok {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_shown() {
        assert_eq!(
            redact("rtsp://admin:s3cret@10.0.0.5:554/cam"),
            "rtsp://10.0.0.5:554/cam"
        );
        assert_eq!(redact("not a url"), "<unparseable url>");
        let spec = RtspSpec {
            url: "rtsp://127.0.0.1/cam".into(),
            credentials: Some(("admin".into(), "s3cret".into())),
            tcp: true,
            reconnect_delay: Duration::from_secs(1),
            tracks: vec![],
            discover: Discover::default(),
            ondemand: false,
            viewers: Arc::default(),
            counters: Arc::default(),
        };
        let shown = format!("{spec:?} {}", describe_error(&spec, "401 for admin:s3cret"));
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn fmtp_of_each_stream_from_the_cameras_sdp() {
        // gst-rtsp-server's SDP for a main + sub stream and LATM audio (trimmed).
        let sdp = "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
            a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAHtoC,aM48gA==\r\n\
            m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MP4A-LATM/44100\r\n\
            a=fmtp:97 cpresent=0;config=40002410adca00\r\n\
            m=video 0 RTP/AVP 96\r\na=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z2QAFQ==,aOvjyw==\r\n\
            m=application 0 RTP/AVP 107\r\n";
        let streams = [("video", 96), ("audio", 97), ("video", 96), ("audio", 8)];
        assert_eq!(
            stream_fmtps(sdp, &streams),
            vec![
                Some("packetization-mode=1;sprop-parameter-sets=Z0LAHtoC,aM48gA==".into()),
                Some("cpresent=0;config=40002410adca00".into()),
                Some("packetization-mode=1;sprop-parameter-sets=Z2QAFQ==,aOvjyw==".into()),
                None,
            ]
        );
    }

    #[test]
    fn discovery_offers_what_browsers_take_in_the_cameras_order() {
        // A camera with audio first, AAC, a main and a sub stream, MJPEG and metadata.
        let offered = [
            ("audio", "MPEG4-GENERIC"),
            ("video", "H264"),
            ("video", "H264"),
            ("audio", "PCMA"),
            ("video", "JPEG"),
            ("application", "VND.ONVIF.METADATA"),
            ("audio", "PCMA"),
            ("video", "VP8"),
        ];
        let (tracks, unoffered) = discover(&offered, Discover::default());
        let got: Vec<(&str, &str, u8, bool)> = tracks
            .iter()
            .map(|t| (t.media, t.encoding.as_str(), t.pt, t.aac_to_opus))
            .collect();
        assert_eq!(
            got,
            [
                ("audio", "mpeg4-generic", 96, true),
                ("video", "h264", 97, false),
                ("video", "h264", 98, false),
                ("audio", "pcma", 8, false),
            ]
        );
        let why: Vec<(&str, &str)> = unoffered
            .iter()
            .map(|u| (u.encoding.as_str(), u.reason.as_str()))
            .collect();
        assert_eq!(why[0], ("JPEG", "no browser decodes it over WebRTC"));
        assert_eq!(why[1], ("VND.ONVIF.METADATA", "not audio or video"));
        assert_eq!(why[2], ("PCMA", "a second stream of a static payload type"));
        assert_eq!(why[3].0, "VP8");
        // Every discovered track finds its stream again on the next DESCRIBE.
        assert_eq!(
            match_tracks(&tracks, &offered).unwrap(),
            vec![(0, 0), (1, 1), (2, 2), (3, 3)]
        );
        // A camera describing hundreds of streams: 16 offered, the rest listed.
        let many = vec![("video", "H264"); 300];
        let (tracks, unoffered) = discover(&many, Discover::default());
        assert_eq!(
            (tracks.len(), unoffered.len()),
            (MAX_DISCOVERED_TRACKS, 284)
        );
        assert!(unoffered
            .iter()
            .all(|u| u.reason.starts_with("more tracks")));
        // Janus's flags choose the kinds.
        let video_only = Discover {
            audio: false,
            video: true,
        };
        let (tracks, unoffered) = discover(&offered, video_only);
        assert_eq!(tracks.len(), 2);
        assert!(unoffered.iter().any(|u| u.reason == "audio not asked for"));
    }

    #[test]
    fn every_wanted_track_finds_its_own_camera_stream() {
        let t = |media, encoding: &str| RtspTrack {
            media,
            encoding: encoding.into(),
            pt: 96,
            aac_to_opus: false,
        };
        // A camera with a main and a sub stream, G.711 and AAC.
        let offered = [
            ("video", "H264"),
            ("video", "H264"),
            ("audio", "PCMA"),
            ("audio", "MPEG4-GENERIC"),
        ];
        let wanted = [
            t("audio", "mpeg4-generic"),
            t("video", "h264"),
            t("video", "h264"),
            t("audio", "pcma"),
        ];
        assert_eq!(
            match_tracks(&wanted, &offered).unwrap(),
            vec![(3, 0), (0, 1), (1, 2), (2, 3)]
        );
        let three = [t("video", "h264"), t("video", "h264"), t("video", "h264")];
        let e = match_tracks(&three, &offered).unwrap_err();
        assert!(e.contains("no further video h264"), "{e}");
        let e = match_tracks(&[t("video", "h265")], &offered).unwrap_err();
        assert!(
            e.contains("offers: video H264, video H264, audio PCMA"),
            "{e}"
        );
    }
}
