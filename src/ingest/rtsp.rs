//! RTSP cameras, pulled with retina: a supervisor that connects, plays the chosen
//! tracks, repacketizes them for WebRTC, and reconnects with backoff when the camera
//! stops, goes silent or restarts. Credentials never reach a log line.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cardea_codecs::h264::{annex_b_nal_units, packetize_nal};
use cardea_codecs::keyframe::{KeyframeStarts, VideoCodec};
use futures_util::StreamExt;
use retina::client::{
    Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat};
use tokio::sync::mpsc;

use crate::api::SourceId;
use crate::ingest::rtp::RtpHeader;
use crate::media::webrtc::{MediaCommand, MediaEvent, SourcePacket};

const MAX_PAYLOAD: usize = 1200;
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
    let mut seqs = vec![rand::random::<u16>(); spec.tracks.len()];
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
            &mut seqs,
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
    seqs: &mut [u16],
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
                return Err(format!(
                    "the camera offers no {} {} stream",
                    want.media, want.encoding
                ))
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
    let ssrc = rand::random::<u32>();
    let mut scratch = Vec::with_capacity(MAX_PAYLOAD);
    let mut keyframes = KeyframeStarts::new(VideoCodec::H264);
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
        let pt = spec.tracks[track].pt;
        let ts = ts as u32;
        let mut send = |payload: &[u8], marker: bool, keyframe: Option<bool>| {
            let seq = &mut seqs[track];
            let header = RtpHeader {
                pt,
                marker,
                seq: *seq,
                timestamp: ts,
                ssrc: ssrc.wrapping_add(track as u32),
                payload_offset: 12,
                payload_end: 12 + payload.len(),
            };
            *seq = seq.wrapping_add(1);
            let packet = SourcePacket {
                source,
                track: track as u8,
                header,
                payload: Arc::from(payload),
                keyframe,
                arrival: now,
            };
            engine
                .send(MediaCommand::SourcePacket(Arc::new(packet)))
                .is_ok()
        };
        let ok = if video {
            let nals: Vec<&[u8]> = annex_b_nal_units(data).collect();
            let mut ok = true;
            for (n, nal) in nals.iter().enumerate() {
                let last_nal = n + 1 == nals.len();
                packetize_nal(nal, MAX_PAYLOAD, &mut scratch, &mut |payload, last| {
                    let key = Some(keyframes.is_start(payload, ts));
                    ok &= send(payload, last_nal && last, key);
                });
            }
            ok
        } else {
            send(data, false, None)
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
