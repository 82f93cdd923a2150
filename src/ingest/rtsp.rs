//! RTSP cameras, pulled with retina: a supervisor that connects, plays the chosen
//! tracks, repacketizes them for WebRTC, and reconnects with backoff when the camera
//! stops, goes silent or restarts. Credentials never reach a log line.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// One track wanted from the camera.
#[derive(Debug, Clone)]
pub struct RtspTrack {
    /// "video" or "audio".
    pub media: &'static str,
    /// Encoding name as in the camera's SDP (`h264`, `pcma`, `pcmu`, `opus`).
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
        .map(|(i, t)| TrackPacketizer::new(source, i as u8, t.pt, 0))
        .collect();
    loop {
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
            &mut played,
            on_play,
        )
        .await;
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
            Err(e) => e,
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

async fn session(
    source: SourceId,
    spec: &RtspSpec,
    status: &RtspStatus,
    engine: &mpsc::UnboundedSender<MediaCommand>,
    packetizers: &mut [TrackPacketizer],
    played: &mut bool,
    on_play: impl FnOnce(),
) -> Result<(), String> {
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
    // Match the wanted tracks to the camera's streams by media and encoding.
    let mut by_stream = Vec::new();
    for (track, want) in spec.tracks.iter().enumerate() {
        let found = session.streams().iter().position(|s| {
            s.media() == want.media && s.encoding_name().eq_ignore_ascii_case(&want.encoding)
        });
        match found {
            Some(i) => by_stream.push((i, track)),
            None => {
                let offered: Vec<String> = session
                    .streams()
                    .iter()
                    .map(|s| format!("{} {}", s.media(), s.encoding_name()))
                    .collect();
                return Err(format!(
                    "the camera offers no {} {} stream (it offers: {})",
                    want.media,
                    want.encoding,
                    offered.join(", ")
                ));
            }
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
    let mut transcoders = Vec::new();
    for t in &spec.tracks {
        transcoders.push(if t.aac_to_opus {
            Some(cardea_codecs::aac::AacToOpus::new().map_err(|e| format!("AAC decoder: {e}"))?)
        } else {
            None
        });
    }
    // A new SSRC per session: viewers see the restart and keep one continuous stream.
    let ssrc = rand::random::<u32>();
    for (i, p) in packetizers.iter_mut().enumerate() {
        p.set_ssrc(ssrc.wrapping_add(i as u32));
    }
    loop {
        let item = match tokio::time::timeout(SILENCE, playing.next()).await {
            Err(_) => return Err(format!("no media for {} s", SILENCE.as_secs())),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(describe_error(spec, e)),
            Ok(Some(Ok(item))) => item,
        };
        *played = true;
        #[allow(clippy::disallowed_methods)] // the ingest driver stamps arrival time
        let now = Instant::now();
        let (stream_id, data, ts, video) = match &item {
            CodecItem::VideoFrame(f) => (f.stream_id(), f.data(), f.timestamp().timestamp(), true),
            CodecItem::AudioFrame(f) => (f.stream_id(), f.data(), f.timestamp().timestamp(), false),
            _ => continue,
        };
        let Some(&(_, track)) = by_stream.iter().find(|(i, _)| *i == stream_id) else {
            continue;
        };
        let mut emit =
            |p: SourcePacket| engine.send(MediaCommand::SourcePacket(Arc::new(p))).is_ok();
        let packetizer = &mut packetizers[track];
        let ok = if video {
            packetizer.h264_access_unit(data, ts as u32, now, &mut emit)
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
        };
        let shown = format!("{spec:?} {}", describe_error(&spec, "401 for admin:s3cret"));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
