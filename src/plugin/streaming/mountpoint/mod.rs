//! A mountpoint: its media, its source and how it is described to clients.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use str0m::format::{Codec, FormatParams};
use str0m::media::MediaKind;

use super::StreamingError;
use crate::api::{HandleId, SourceId};
use crate::ids::MountpointId;
use crate::ingest::rtp::{RtpPort, SourceCounters, SourceLock};
use crate::ingest::rtsp::{RtspSpec, RtspStatus, RtspTrack};
use crate::media::webrtc::OfferTrack;

mod plan;
pub(in crate::plugin::streaming) use plan::*;

/// What a codec name in a `create` request means.
#[derive(Debug, Clone)]
pub(super) struct CodecSpec {
    pub(super) name: &'static str,
    pub(super) codec: Codec,
    pub(super) clock_rate: u32,
    pub(super) channels: Option<u8>,
    pub(super) format: FormatParams,
    pub(super) kind: MediaKind,
}

/// Maps Janus's codec names to str0m's; `fmtp` refines H.264's profile.
pub(super) fn codec_spec(name: &str, fmtp: Option<&str>) -> Option<CodecSpec> {
    let video = |name, codec| CodecSpec {
        name,
        codec,
        clock_rate: 90_000,
        channels: None,
        format: FormatParams::default(),
        kind: MediaKind::Video,
    };
    let audio = |name, codec, clock_rate, channels| CodecSpec {
        name,
        codec,
        clock_rate,
        channels,
        format: FormatParams::default(),
        kind: MediaKind::Audio,
    };
    let mut spec = match name.to_ascii_lowercase().as_str() {
        "vp8" => video("vp8", Codec::Vp8),
        "vp9" => video("vp9", Codec::Vp9),
        "h264" => video("h264", Codec::H264),
        "av1" => video("av1", Codec::Av1),
        "h265" => video("h265", Codec::H265),
        "opus" => audio("opus", Codec::Opus, 48_000, Some(2)),
        "pcmu" => audio("pcmu", Codec::PCMU, 8_000, None),
        "pcma" => audio("pcma", Codec::PCMA, 8_000, None),
        "g722" => audio("g722", Codec::G722, 8_000, None),
        _ => return None,
    };
    match spec.codec {
        Codec::H264 => {
            spec.format.packetization_mode = Some(1);
            spec.format.level_asymmetry_allowed = Some(true);
            spec.format.profile_level_id = Some(0x42e01f);
            for kv in fmtp.unwrap_or("").split(';') {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                match k.trim() {
                    "profile-level-id" => {
                        if let Ok(p) = u32::from_str_radix(v.trim(), 16) {
                            spec.format.profile_level_id = Some(p);
                        }
                    }
                    "packetization-mode" => spec.format.packetization_mode = v.trim().parse().ok(),
                    _ => {}
                }
            }
        }
        Codec::Opus => {
            spec.format.min_p_time = Some(10);
            spec.format.use_inband_fec = Some(true);
        }
        _ => {}
    }
    Some(spec)
}

/// One medium of a mountpoint.
#[derive(Debug, Clone)]
pub(super) struct MountMedia {
    pub(super) mid: String,
    pub(super) msid: String,
    pub(super) label: String,
    pub(super) port: u16,
    /// RTP sources: where the source's RTCP is received and PLIs are sent from.
    pub(super) rtcp_port: Option<u16>,
    pub(super) pt: u8,
    /// The fmtp given at creation, shown by `info`.
    pub(super) fmtp: Option<String>,
    pub(super) codec: CodecSpec,
}

impl MountMedia {
    pub(super) fn offer_track(&self, mountpoint: MountpointId) -> OfferTrack {
        OfferTrack {
            kind: self.codec.kind,
            codec: self.codec.codec,
            pt: self.pt,
            clock_rate: self.codec.clock_rate,
            channels: self.codec.channels,
            format: self.codec.format,
            msid: format!("janus{mountpoint}"),
            mid: Some(self.mid.clone()),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.codec.kind {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// What `info` shows of a mountpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InfoView {
    /// Its administrator: secret, ports, the camera's errors as they are.
    Owner,
    /// Anyone else.
    Viewer,
}

/// A mountpoint fed by a plain-RTP source.
pub(super) struct Mountpoint {
    pub(super) id: MountpointId,
    /// Created through the API (counted against `max_api_mountpoints`), not configured.
    pub(super) from_api: bool,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) metadata: Option<String>,
    pub(super) secret: Option<String>,
    pub(super) pin: Option<String>,
    pub(super) is_private: bool,
    pub(super) enabled: bool,
    /// `rtp`, `rtsp` or `demo`.
    pub(super) kind: String,
    /// RTSP cameras connected only while watched.
    pub(super) ondemand: bool,
    /// What `permanent: true` writes to the configuration file.
    pub(super) config: crate::config::MountpointConfig,
    pub(super) media: Vec<MountMedia>,
    pub(super) source: SourceId,
    pub(super) counters: Arc<SourceCounters>,
    pub(super) viewers: BTreeSet<HandleId>,
    /// `viewers.len()`, for sources that work only while watched.
    pub(super) viewer_count: Arc<AtomicUsize>,
    /// For RTSP mountpoints: the camera connection's state.
    pub(super) rtsp: Option<Arc<RtspStatus>>,
    /// A camera added by URL alone whose tracks are not known yet (no DESCRIBE answered).
    pub(super) discovering: bool,
    /// The camera's streams that are not offered, and why (cameras added by URL).
    pub(super) unoffered: Vec<crate::ingest::rtsp::Unoffered>,
    /// `webrtc` mountpoints: the handle publishing to it now (WHIP), if any.
    pub(super) publisher: Option<HandleId>,
}

/// An RTSP track asked for: type, mid, codec, payload type, fmtp, label.
type WantedTrack = (
    String,
    String,
    String,
    Option<u8>,
    Option<String>,
    Option<String>,
);

/// An optional string element: absent or null is `None`, another type is 454.
pub(super) fn str_field<'a>(
    body: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, StreamingError> {
    crate::fields::opt_str(body, key).map_err(super::refusal)
}

/// A mandatory string element: absent is 453, another type 454.
pub(super) fn required_str<'a>(
    body: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a str, StreamingError> {
    crate::fields::req_str(body, key).map_err(super::refusal)
}

impl Mountpoint {
    pub(super) fn add_viewer(&mut self, h: HandleId) {
        self.viewers.insert(h);
        self.viewer_count
            .store(self.viewers.len(), Ordering::Relaxed);
    }

    pub(super) fn remove_viewer(&mut self, h: HandleId) {
        self.viewers.remove(&h);
        self.viewer_count
            .store(self.viewers.len(), Ordering::Relaxed);
    }

    /// Validates an `rtsp` create body: Janus's parameters (`audio`/`video` with
    /// `audiocodec`/`videocodec`, one track each), or Cardea's `media` list naming
    /// as many of the camera's tracks as wanted (`[{type, mid, codec, pt}]`, matched
    /// in order among the camera's tracks of that type and codec); plus `rtsp_transport`
    /// (`tcp`, the default, or `udp`) and `ondemand`.
    /// `allow`: the hosts the url may name (`streaming.rtsp_allow`; empty = any).
    pub(super) fn parse_rtsp(
        body: &Map<String, Value>,
        allow: &[String],
    ) -> Result<(Vec<MountMedia>, RtspSpec), StreamingError> {
        let url = required_str(body, "url")?;
        let parsed = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "rtsp" | "rtsps"))
            .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
            .ok_or(StreamingError::InvalidElement(
                "Invalid element (url should be rtsp://host...)".to_owned(),
            ))?;
        let host = parsed.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !allow.is_empty() && !allow.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            return Err(StreamingError::InvalidElement(
                "Invalid element (url: host not in streaming.rtsp_allow)".to_owned(),
            ));
        }
        let mut user = str_field(body, "rtsp_user")?.map(str::to_owned);
        let mut pass = str_field(body, "rtsp_pwd")?.map(str::to_owned);
        if user.is_none() && !parsed.username().is_empty() {
            user = Some(parsed.username().to_owned());
            pass = parsed.password().map(str::to_owned);
        }
        let flag = |k: &str, default: bool| body.get(k).and_then(Value::as_bool).unwrap_or(default);
        // (type, mid, codec, pt, fmtp, label) for each wanted track.
        let mut wanted: Vec<WantedTrack> = Vec::new();
        let pt_of = |m: &Map<String, Value>, k: &str| -> Result<Option<u8>, StreamingError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .filter(|p| *p < 128)
                    .map(|p| Some(p as u8))
                    .ok_or(StreamingError::InvalidElement(format!(
                        "Invalid element ({k} should be 0-127)"
                    ))),
            }
        };
        let list = media_list(body)?;
        let named = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
        if list.is_none() && !named("videocodec") && !named("audiocodec") {
            // A camera by its URL: its tracks are discovered at the first DESCRIBE.
            // Janus's `audio`/`video` flags, when given, choose the kinds.
            let flags_given = named("audio") || named("video");
            let discover = crate::ingest::rtsp::Discover {
                audio: flag("audio", !flags_given),
                video: flag("video", !flags_given),
            };
            if !discover.audio && !discover.video {
                return Err(StreamingError::InvalidElement(
                    "Neither audio nor video requested".into(),
                ));
            }
            let spec = rtsp_spec(body, &parsed, user, pass, Vec::new(), discover)?;
            return Ok((Vec::new(), spec));
        }
        match list {
            Some(list) => {
                for m in list {
                    let m = m.as_object().ok_or(StreamingError::InvalidElement(
                        "Invalid element (media items should be objects)".to_owned(),
                    ))?;
                    let kind = media_kind(m)?;
                    let codec = required_str(m, "codec")?;
                    let mid = match str_field(m, "mid")? {
                        Some(mid) => checked_mid(mid)?,
                        None if kind == "audio" => format!("a{}", wanted.len()),
                        None => format!("v{}", wanted.len()),
                    };
                    wanted.push((
                        kind.to_owned(),
                        mid,
                        codec.to_owned(),
                        pt_of(m, "pt")?,
                        {
                            let fmtp = str_field(m, "fmtp")?;
                            check_fmtp(fmtp)?;
                            fmtp.map(str::to_owned)
                        },
                        str_field(m, "label")?.map(str::to_owned),
                    ));
                }
            }
            None => {
                if flag("video", true) {
                    let codec = str_field(body, "videocodec")?.unwrap_or("h264");
                    wanted.push((
                        "video".into(),
                        "v".into(),
                        codec.to_owned(),
                        pt_of(body, "videopt")?,
                        {
                            let fmtp = str_field(body, "videofmtp")?;
                            check_fmtp(fmtp)?;
                            fmtp.map(str::to_owned)
                        },
                        None,
                    ));
                }
                if flag("audio", false) {
                    let codec = required_str(body, "audiocodec")?;
                    wanted.push((
                        "audio".into(),
                        "a".into(),
                        codec.to_owned(),
                        pt_of(body, "audiopt")?,
                        None,
                        None,
                    ));
                }
            }
        }
        if wanted.is_empty() {
            return Err(StreamingError::InvalidElement(
                "Neither audio nor video requested".into(),
            ));
        }
        let mut media: Vec<MountMedia> = Vec::new();
        let mut tracks = Vec::new();
        let mut next_dynamic_pt = 96u8;
        for (kind, mid, name, pt, fmtp, label) in wanted {
            if media.iter().any(|m| m.mid == mid) {
                return Err(StreamingError::InvalidElement(format!(
                    "Duplicate mid '{mid}'"
                )));
            }
            let lower = name.to_ascii_lowercase();
            // AAC cameras: browsers get Opus, transcoded by the gateway.
            // AAC as RFC 3640 (`mpeg4-generic`, most cameras) or MP4A-LATM (`latm`).
            let aac = matches!(
                lower.as_str(),
                "aac" | "mpeg4-generic" | "latm" | "mp4a-latm"
            );
            let (codec, encoding) = match (kind.as_str(), lower.as_str()) {
                ("video", "h264" | "h265") => (
                    codec_spec(&lower, fmtp.as_deref()).expect("known"),
                    lower.clone(),
                ),
                ("audio", "pcma" | "pcmu" | "opus" | "g722") => {
                    (codec_spec(&lower, None).expect("known"), lower.clone())
                }
                ("audio", _) if aac => (
                    codec_spec("opus", None).expect("known"),
                    if lower.contains("latm") {
                        "mp4a-latm".into()
                    } else {
                        "mpeg4-generic".into()
                    },
                ),
                _ => {
                    return Err(StreamingError::InvalidElement(format!(
                        "Unsupported RTSP {kind} codec '{name}' (video: h264, h265; \
                             audio: aac, latm, pcma, pcmu, g722, opus)"
                    )))
                }
            };
            let pt = match pt {
                Some(pt) => pt,
                None => match codec.name {
                    "pcmu" => 0,
                    "pcma" => 8,
                    "g722" => 9,
                    _ => {
                        // A dynamic type not used by another track of this mountpoint.
                        while media.iter().any(|m| m.pt == next_dynamic_pt) {
                            next_dynamic_pt += 1;
                        }
                        next_dynamic_pt
                    }
                },
            };
            if media.iter().any(|m| m.pt == pt) {
                return Err(StreamingError::InvalidElement(format!(
                    "Duplicate payload type {pt}"
                )));
            }
            tracks.push(RtspTrack {
                media: if kind == "video" { "video" } else { "audio" },
                encoding,
                pt,
                aac_to_opus: aac,
            });
            media.push(MountMedia {
                label: label.unwrap_or_else(|| kind.clone()),
                msid: mid.clone(),
                mid,
                port: 0,
                rtcp_port: None,
                pt,
                fmtp,
                codec,
            });
        }
        let spec = rtsp_spec(body, &parsed, user, pass, tracks, Default::default())?;
        Ok((media, spec))
    }

    /// A discovered camera's tracks as the mountpoint's media, mids `v`, `v2`, … and
    /// `a`, `a2`, … in the camera's order.
    pub(super) fn discovered_media(
        tracks: &[crate::ingest::rtsp::DiscoveredTrack],
    ) -> Vec<MountMedia> {
        let (mut videos, mut audios) = (0, 0);
        tracks
            .iter()
            .map(|d| {
                let t = &d.track;
                let (n, letter) = if t.media == "video" {
                    videos += 1;
                    (videos, "v")
                } else {
                    audios += 1;
                    (audios, "a")
                };
                let mid = if n == 1 {
                    letter.to_owned()
                } else {
                    format!("{letter}{n}")
                };
                let name = if t.aac_to_opus {
                    "opus"
                } else {
                    t.encoding.as_str()
                };
                MountMedia {
                    label: mid.clone(),
                    msid: mid.clone(),
                    mid,
                    port: 0,
                    rtcp_port: None,
                    pt: t.pt,
                    // Shown by `info`; the offer keeps the default H.264 profile, so a
                    // main and a sub stream share one payload type (browsers decode
                    // whatever profile arrives; two formats of one codec in a BUNDLE
                    // make the answer unmappable).
                    fmtp: d.fmtp.clone(),
                    codec: codec_spec(name, None).expect("discovery offers known codecs"),
                }
            })
            .collect()
    }
}

/// The connection settings of an RTSP mountpoint.
fn rtsp_spec(
    body: &Map<String, Value>,
    parsed: &url::Url,
    user: Option<String>,
    pass: Option<String>,
    tracks: Vec<RtspTrack>,
    discover: crate::ingest::rtsp::Discover,
) -> Result<RtspSpec, StreamingError> {
    let flag = |k: &str, default: bool| body.get(k).and_then(Value::as_bool).unwrap_or(default);
    let tcp = match str_field(body, "rtsp_transport")?.unwrap_or("tcp") {
        "tcp" => true,
        "udp" => false,
        other => {
            return Err(StreamingError::InvalidElement(format!(
                "Invalid element (rtsp_transport '{other}': tcp or udp)"
            )))
        }
    };
    let delay = body
        .get("rtsp_reconnect_delay")
        .and_then(Value::as_f64)
        .unwrap_or(5.0);
    let mut clean = parsed.clone();
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    let spec = RtspSpec {
        url: clean.to_string(),
        credentials: user.map(|u| (u, pass.unwrap_or_default())),
        tcp,
        reconnect_delay: std::time::Duration::from_secs_f64(delay.clamp(0.1, 300.0)),
        ondemand: flag("ondemand", false),
        viewers: Default::default(),
        counters: Default::default(),
        tracks,
        discover,
    };
    Ok(spec)
}

impl Mountpoint {
    /// The built-in demo source's media: PCMU tone and H.264 test pattern.
    pub(super) fn demo_media() -> Vec<MountMedia> {
        use crate::ingest::demo;
        let spec = |name| codec_spec(name, None).expect("built-in codec names");
        vec![
            MountMedia {
                mid: "a".into(),
                msid: "a".into(),
                label: "tone".into(),
                port: 0,
                rtcp_port: None,
                fmtp: None,
                pt: demo::AUDIO_PT,
                codec: spec("pcmu"),
            },
            MountMedia {
                mid: "v".into(),
                msid: "v".into(),
                label: format!("test pattern {}x{}", demo::WIDTH, demo::HEIGHT),
                port: 0,
                rtcp_port: None,
                fmtp: None,
                pt: demo::VIDEO_PT,
                codec: spec("h264"),
            },
        ]
    }

    /// Validates a `create` body's media and binds their ports on `bind_ip`.
    pub(super) fn parse_media(
        body: &Map<String, Value>,
        bind_ip: IpAddr,
        io: &mut dyn super::io::StreamingIo,
    ) -> Result<(Vec<MountMedia>, Vec<RtpPort>), StreamingError> {
        let plan = plan_media(body)?;
        let mut media = Vec::new();
        let mut ports = Vec::new();
        for (i, p) in plan.media.into_iter().enumerate() {
            let (socket, bound) =
                bind_port(io, SocketAddr::new(bind_ip, p.port), "", &p.media.mid)?;
            let (rtcp, rtcp_port) = match p.rtcp_port {
                None => (None, None),
                Some(port) => {
                    let (s, port) =
                        bind_port(io, SocketAddr::new(bind_ip, port), "RTCP ", &p.media.mid)?;
                    (Some(s), Some(port))
                }
            };
            let codec = p.media.codec.codec;
            ports.push(RtpPort {
                track: i as u8,
                pt: p.media.pt,
                keyframes: super::publisher::keyframe_reader(codec),
                socket,
                rtcp,
                h264_sets: (codec == Codec::H264).then(|| {
                    cardea_codecs::h264::ParameterSetInserter::from_fmtp(
                        p.media.fmtp.as_deref().unwrap_or(""),
                    )
                }),
                lock: SourceLock::new(plan.source_ip, plan.relock),
            });
            media.push(MountMedia {
                port: bound,
                rtcp_port,
                ..p.media
            });
        }
        Ok((media, ports))
    }

    /// What the source is doing, in a word for people (Cardea's `state` in `list`
    /// and `info`): `live`, `no media`, `connecting` (a camera being reached or
    /// retried), `idle` (on demand or demo, until watched), `disabled`.
    /// `age`: milliseconds since the source's last packet (`None`: never).
    fn state(&self, age: Option<u64>) -> &'static str {
        use std::sync::atomic::Ordering::Relaxed;
        let watched = self.viewer_count.load(Relaxed) > 0;
        if !self.enabled {
            return "disabled";
        }
        if self.kind == "demo" {
            return if watched { "live" } else { "idle" };
        }
        if let Some(rtsp) = &self.rtsp {
            if !rtsp.connected.load(Relaxed) {
                return if self.ondemand && !watched {
                    "idle"
                } else {
                    "connecting"
                };
            }
        }
        match age {
            Some(age) if age < 2000 => "live",
            _ => "no media",
        }
    }

    /// The mountpoints' families of a metrics scrape, one sample per mountpoint each.
    pub(super) fn metrics<'a>(
        all: impl Iterator<Item = &'a Mountpoint> + Clone,
        now: std::time::Instant,
        m: &mut crate::api::metrics::Metrics,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        type Read = fn(&Mountpoint, std::time::Instant) -> f64;
        let families: [(&'static str, &'static str, bool, Read); 9] = [
            (
                "cardea_streaming_viewers",
                "Viewers watching the mountpoint.",
                false,
                |mp, _| mp.viewers.len() as f64,
            ),
            (
                "cardea_streaming_source_live",
                "1 when the mountpoint's source is sending media (state \"live\"), else 0.",
                false,
                |mp, now| f64::from(u8::from(mp.state(mp.counters.age_ms(now)) == "live")),
            ),
            (
                "cardea_streaming_source_reconnects",
                "Times the mountpoint's camera connection was retried (RTSP).",
                true,
                |mp, _| mp.rtsp.as_ref().map_or(0, |r| r.reconnects.load(Relaxed)) as f64,
            ),
            (
                "cardea_streaming_source_packets",
                "RTP packets the source sent the media engine.",
                true,
                |mp, _| mp.counters.packets.load(Relaxed) as f64,
            ),
            (
                "cardea_streaming_source_bytes",
                "Payload bytes the source sent the media engine.",
                true,
                |mp, _| mp.counters.bytes.load(Relaxed) as f64,
            ),
            (
                "cardea_streaming_source_dropped",
                "Source datagrams dropped: not RTP, or not the configured payload type.",
                true,
                |mp, _| mp.counters.dropped.load(Relaxed) as f64,
            ),
            (
                "cardea_streaming_source_dropped_foreign",
                "Well-formed packets from anyone but the locked source (RTP bleed, injection).",
                true,
                |mp, _| mp.counters.dropped_foreign.load(Relaxed) as f64,
            ),
            (
                "cardea_streaming_source_keyframes",
                "Keyframes the source sent.",
                true,
                |mp, _| mp.counters.keyframes.load(Relaxed) as f64,
            ),
            (
                "cardea_streaming_source_plis",
                "Keyframe requests (RTCP PLI) sent to the source.",
                true,
                |mp, _| mp.counters.plis_sent.load(Relaxed) as f64,
            ),
        ];
        for (name, help, counter, read) in families {
            let f = if counter {
                m.counter(name, help)
            } else {
                m.gauge(name, help)
            };
            for mp in all.clone() {
                f.with(&[("mountpoint", &mp.id.to_string())], read(mp, now));
            }
        }
    }

    /// An entry of `list`.
    pub(super) fn list_entry(&self, now: std::time::Instant) -> Value {
        let age = self.counters.age_ms(now);
        json!({
            "id": self.id, "type": "live", "description": self.description,
            "metadata": self.metadata, "enabled": self.enabled, "state": self.state(age),
            "media": self.media.iter().map(|m| json!({
                "mid": m.mid, "label": m.label, "msid": m.msid, "type": m.kind_name(),
                "age_ms": age,
            })).collect::<Vec<_>>(),
        })
    }

    /// `info`: its owner sees the secret, ports and the camera's last error; a viewer
    /// sees a generic error, and nobody sees the pin.
    pub(super) fn info(&self, view: InfoView, now: std::time::Instant) -> Value {
        let with_secret = view == InfoView::Owner;
        use std::sync::atomic::Ordering::Relaxed;
        let age = self.counters.age_ms(now);
        let mut v = json!({
            "id": self.id, "name": self.name, "description": self.description,
            "metadata": self.metadata, "enabled": self.enabled, "state": self.state(age),
            "viewers": self.viewers.len(), "type": "live",
            "rtsp": self.rtsp.as_ref().map(|s| json!({
                "connected": s.connected.load(Relaxed),
                "reconnects": s.reconnects.load(Relaxed),
                "last_error": match crate::contain::lock(&s.last_error).as_str() {
                    "" => "",
                    e if with_secret => e,
                    // Camera errors name hosts and ports: a scan oracle for strangers.
                    _ => "the camera cannot be reached",
                },
            })),
            "source": {"packets": self.counters.packets.load(Relaxed),
                       "bytes": self.counters.bytes.load(Relaxed),
                       "dropped": self.counters.dropped.load(Relaxed),
                       "keyframes": self.counters.keyframes.load(Relaxed),
                       "rtcp_in": self.counters.rtcp_in.load(Relaxed),
                       "plis_sent": self.counters.plis_sent.load(Relaxed),
                       "dropped_foreign": self.counters.dropped_foreign.load(Relaxed)},
            "media": self.media.iter().enumerate().map(|(i, m)| {
                let mut e = json!({
                    "mid": m.mid, "mindex": i, "type": m.kind_name(), "label": m.label,
                    "msid": m.msid, "pt": m.pt, "codec": m.codec.name,
                    "rtpmap": format!("{}/{}", m.codec.name, m.codec.clock_rate),
                    "age_ms": age,
                });
                if let Some(f) = &m.fmtp {
                    e["fmtp"] = json!(f);
                }
                if with_secret {
                    e["port"] = json!(m.port);
                    if let Some(p) = m.rtcp_port {
                        e["rtcpport"] = json!(p);
                    }
                }
                e
            }).collect::<Vec<_>>(),
        });
        if self.rtsp.is_some() {
            v["discovering"] = json!(self.discovering);
            v["unoffered"] = self
                .unoffered
                .iter()
                .map(|u| json!({"type": u.media, "codec": u.encoding, "reason": u.reason}))
                .collect();
        }
        if with_secret {
            v["secret"] = json!(self.secret);
            v["pin_required"] = json!(self.pin.is_some());
            v["is_private"] = json!(self.is_private);
        }
        v
    }

    /// The `stream` object of a `created` answer (`type` as Janus: live sources are "live").
    pub(super) fn created(&self) -> Value {
        json!({
            "id": self.id, "type": "live", "description": self.description,
            "is_private": self.is_private,
            "ports": self.media.iter().map(|m| {
                let mut e = json!({"type": m.kind_name(), "mid": m.mid, "msid": m.msid, "port": m.port});
                if let Some(p) = m.rtcp_port {
                    e["rtcpport"] = json!(p);
                }
                e
            }).collect::<Vec<_>>(),
        })
    }
}
