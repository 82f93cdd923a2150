//! RTSP cameras, pulled with retina: a supervisor that connects, plays the chosen
//! tracks, repacketizes them for WebRTC, and reconnects with backoff when the camera
//! stops, goes silent or restarts. Credentials never reach a log line.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use retina::client::{
    Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat};
use tokio::sync::mpsc;

use crate::api::SourceId;
use crate::ingest::packetizer::TrackPacketizer;
use crate::media::webrtc::{MediaCommand, MediaEvent, SourcePacket};

/// A camera that sends nothing for this long is taken as gone.
const SILENCE: Duration = Duration::from_secs(10);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// On-demand cameras: how often the viewer count is looked at, and how long the
/// camera stays connected after the last viewer left (a viewer switching pages
/// comes back to a running stream).
const ONDEMAND_POLL: Duration = Duration::from_millis(100);
const ONDEMAND_LINGER: Duration = Duration::from_secs(3);

/// One track wanted from the camera.
#[derive(Debug, Clone)]
pub struct RtspTrack {
    /// "video" or "audio".
    pub media: &'static str,
    /// Encoding name as in the camera's SDP (`h264`, `h265`, `pcma`, `pcmu`, `g722`,
    /// `opus`, `mpeg4-generic`). The n-th track wanted of a (media, encoding) is the
    /// camera's n-th stream of that media and encoding.
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
    /// The tracks, in the mountpoint's order.
    pub tracks: Vec<RtspTrack>,
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
    engine: mpsc::UnboundedSender<MediaCommand>,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let mut lost = false;
    let mut backoff = spec.reconnect_delay.max(Duration::from_millis(200));
    let mut packetizers: Vec<TrackPacketizer> = spec
        .tracks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = TrackPacketizer::new(source, i as u8, t.pt, 0);
            match t.encoding.as_str() {
                "h265" => p.with_video(cardea_codecs::keyframe::VideoCodec::H265),
                _ => p,
            }
        })
        .collect();
    let mut transcoders: Vec<Option<cardea_codecs::aac::AacToOpus>> =
        spec.tracks.iter().map(|_| None).collect();
    loop {
        if spec.ondemand && spec.viewers.load(Ordering::Relaxed) == 0 {
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
            if lost {
                let _ = events.send(MediaEvent::SourceState {
                    source,
                    connected: true,
                });
            }
        };
        let result = session(
            source,
            &spec,
            &status,
            &engine,
            &mut packetizers,
            &mut transcoders,
            &mut played,
            on_play,
        )
        .await;
        if matches!(result, Err(SessionEnd::Unwatched)) {
            // On demand, nobody watching: hung up on purpose, not a camera failure.
            status.connected.store(false, Ordering::Relaxed);
            tracing::info!(%source, url = %redact(&spec.url), "on-demand camera disconnected: no viewers");
            continue;
        }
        if played || !lost {
            lost = true;
            let _ = events.send(MediaEvent::SourceState {
                source,
                connected: false,
            });
        }
        status.connected.store(false, Ordering::Relaxed);
        if engine.is_closed() {
            return;
        }
        let reason = match result {
            Ok(()) => "the camera ended the stream".to_owned(),
            Err(SessionEnd::Unwatched) => unreachable!("handled above"),
            Err(SessionEnd::Failed(e)) => e,
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

/// Why a session ended early.
enum SessionEnd {
    /// On demand, and nobody has watched for a while.
    Unwatched,
    /// The camera failed; the text is free of credentials.
    Failed(String),
}

impl From<String> for SessionEnd {
    fn from(e: String) -> Self {
        SessionEnd::Failed(e)
    }
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

#[allow(clippy::disallowed_methods)] // a driver: it times the camera and stamps arrivals
#[allow(clippy::too_many_arguments)] // per-camera state that outlives one session, each used once
async fn session(
    source: SourceId,
    spec: &RtspSpec,
    status: &RtspStatus,
    engine: &mpsc::UnboundedSender<MediaCommand>,
    packetizers: &mut [TrackPacketizer],
    transcoders: &mut [Option<cardea_codecs::aac::AacToOpus>],
    played: &mut bool,
    on_play: impl FnOnce(),
) -> Result<(), SessionEnd> {
    let url = url::Url::parse(&spec.url).map_err(|e| format!("bad URL: {e}"))?;
    let creds = spec.credentials.as_ref().map(|(u, p)| Credentials {
        username: u.clone(),
        password: p.clone(),
    });
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("Cardea/{}", env!("CARGO_PKG_VERSION")));
    let mut session = tokio::time::timeout(SILENCE, Session::describe(url, options))
        .await
        .map_err(|_| "DESCRIBE timed out".to_owned())?
        .map_err(|e| describe_error(spec, e))?;
    let offered: Vec<(&str, &str)> = session
        .streams()
        .iter()
        .map(|s| (s.media(), s.encoding_name()))
        .collect();
    let by_stream = match_tracks(&spec.tracks, &offered)?;
    for (i, _) in &by_stream {
        let transport = if spec.tcp {
            Transport::Tcp(TcpTransportOptions::default())
        } else {
            Transport::Udp(UdpTransportOptions::default())
        };
        let setup = SetupOptions::default()
            .transport(transport)
            .frame_format(FrameFormat::SIMPLE);
        session
            .setup(*i, setup)
            .await
            .map_err(|e| describe_error(spec, e))?;
    }
    let mut playing = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| describe_error(spec, e))?
        .demuxed()
        .map_err(|e| describe_error(spec, e))?;
    status.connected.store(true, Ordering::Relaxed);
    on_play();
    tracing::info!(%source, url = %redact(&spec.url), tracks = by_stream.len(), "RTSP source playing");
    // One transcoder per track for the camera's lifetime, not per session: libavcodec
    // (FFmpeg 5.1) was seen to leak decoder state when closed after malformed AAC.
    for (t, slot) in spec.tracks.iter().zip(transcoders.iter_mut()) {
        if t.aac_to_opus && slot.is_none() {
            *slot = Some(
                cardea_codecs::aac::AacToOpus::new().map_err(|e| format!("AAC decoder: {e}"))?,
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
        let next = tokio::time::timeout(wait, playing.next()).await;
        // The one clock read of this turn: timers and the frame's arrival time.
        let now = Instant::now();
        let item = match next {
            Err(_) if now.duration_since(silent_since) < SILENCE => None,
            Err(_) => return Err(format!("no media for {} s", SILENCE.as_secs()).into()),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(describe_error(spec, e).into()),
            Ok(Some(Ok(item))) => Some(item),
        };
        if spec.ondemand {
            if spec.viewers.load(Ordering::Relaxed) > 0 {
                last_watched = now;
            } else if now.duration_since(last_watched) >= ONDEMAND_LINGER {
                return Err(SessionEnd::Unwatched);
            }
        }
        let Some(item) = item else {
            continue;
        };
        silent_since = now;
        *played = true;
        let (stream_id, data, ts, video) = match &item {
            CodecItem::VideoFrame(f) => (f.stream_id(), f.data(), f.timestamp().timestamp(), true),
            CodecItem::AudioFrame(f) => (f.stream_id(), f.data(), f.timestamp().timestamp(), false),
            _ => continue,
        };
        let Some(&(_, track)) = by_stream.iter().find(|(i, _)| *i == stream_id) else {
            continue;
        };
        spec.counters.arrived(now, data.len());
        let mut emit =
            |p: SourcePacket| engine.send(MediaCommand::SourcePacket(Arc::new(p))).is_ok();
        let packetizer = &mut packetizers[track];
        let ok = if video {
            packetizer.access_unit(data, ts as u32, now, &mut emit)
        } else if let Some(t) = transcoders[track].as_mut() {
            let mut ok = true;
            let pushed = t.push_adts(data, &mut |opus, ts48| {
                ok &= packetizer.whole(opus, ts48, now, &mut emit);
            });
            if let Err(e) = pushed {
                tracing::debug!(%source, error = %e, "AAC frame dropped");
            }
            ok
        } else {
            packetizer.whole(data, ts as u32, now, &mut emit)
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
            ondemand: false,
            viewers: Arc::default(),
            counters: Arc::default(),
        };
        let shown = format!("{spec:?} {}", describe_error(&spec, "401 for admin:s3cret"));
        assert!(!shown.contains("s3cret"), "{shown}");
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
