//! What `create` checks and plans before it starts anything: the media list, each
//! medium's kind, mid, ports and codec, and fmtp syntax (`--check-config` runs the same).

use super::*;

/// Most media one mountpoint may have: cameras have a handful of tracks, and each
/// medium is an m-line in every viewer's offer (and, for RTP, two bound ports).
pub(in crate::plugin::streaming) const MAX_MEDIA: usize = 16;

/// A `media` list: a non-empty array of at most [`MAX_MEDIA`] items.
pub(in crate::plugin::streaming) fn media_list(
    body: &Map<String, Value>,
) -> Result<Option<&Vec<Value>>, StreamingError> {
    match body.get("media") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_MEDIA => Ok(Some(list)),
        Some(_) => Err(StreamingError::InvalidElement(format!(
            "Invalid element (media should be an array of 1 to {MAX_MEDIA} items)"
        ))),
    }
}

/// A media item's `type`: "audio" or "video".
pub(in crate::plugin::streaming) fn media_kind(
    m: &Map<String, Value>,
) -> Result<&'static str, StreamingError> {
    match required_str(m, "type")? {
        "audio" => Ok("audio"),
        "video" => Ok("video"),
        _ => Err(StreamingError::InvalidElement(
            "Invalid element (type should be audio or video)".to_owned(),
        )),
    }
}

/// A `mid` as it will read in the SDP: 1 to 16 of `[A-Za-z0-9_]` (what the WebRTC
/// stack keeps unchanged; it would rewrite anything else behind our back).
pub(in crate::plugin::streaming) fn checked_mid(mid: &str) -> Result<String, StreamingError> {
    if (1..=16).contains(&mid.len()) && mid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(mid.to_owned())
    } else {
        Err(StreamingError::InvalidElement(
            "Invalid element (mid should be 1 to 16 letters, digits or _)".to_owned(),
        ))
    }
}

/// How long an RTP mountpoint's locked source must be silent before another stream
/// may take its place (an encoder restart shows a gap this long).
pub(in crate::plugin::streaming) const DEFAULT_RELOCK: std::time::Duration =
    std::time::Duration::from_secs(2);

/// A port number element's value.
pub(in crate::plugin::streaming) fn port_value(
    v: &Value,
    key: &str,
) -> Result<u16, StreamingError> {
    v.as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or(StreamingError::InvalidElement(format!(
            "Invalid element ({key} should be 0-65535)"
        )))
}

/// Binds a mountpoint's UDP port (`what`: "" or "RTCP "); returns it and the port bound.
pub(in crate::plugin::streaming) fn bind_port(
    io: &mut dyn super::super::io::StreamingIo,
    addr: SocketAddr,
    what: &str,
    mid: &str,
) -> Result<(UdpSocket, u16), StreamingError> {
    let port = addr.port();
    let socket = io.bind_udp(addr).map_err(|e| {
        StreamingError::CantCreate(format!("Can't bind {what}port {port} for mid '{mid}': {e}"))
    })?;
    let bound = socket
        .local_addr()
        .map_err(|e| StreamingError::CantCreate(e.to_string()))?
        .port();
    Ok((socket, bound))
}

/// An RTP mountpoint's media as asked for, ports not bound yet.
pub(in crate::plugin::streaming) struct MediaPlan {
    pub(in crate::plugin::streaming) media: Vec<PlannedMedia>,
    pub(in crate::plugin::streaming) source_ip: Option<IpAddr>,
    pub(in crate::plugin::streaming) relock: std::time::Duration,
}

/// One medium of an RTP mountpoint, ports as asked for (0: any).
pub(in crate::plugin::streaming) struct PlannedMedia {
    pub(in crate::plugin::streaming) media: MountMedia,
    pub(in crate::plugin::streaming) port: u16,
    pub(in crate::plugin::streaming) rtcp_port: Option<u16>,
}

impl MediaPlan {
    /// The fixed ports asked for (not 0), with what each is for.
    pub(in crate::plugin::streaming) fn fixed_ports(&self) -> Vec<(u16, String)> {
        let mut v = Vec::new();
        for p in &self.media {
            if p.port != 0 {
                v.push((p.port, format!("media '{}' port", p.media.mid)));
            }
            if let Some(r) = p.rtcp_port.filter(|r| *r != 0) {
                v.push((r, format!("media '{}' rtcpport", p.media.mid)));
            }
        }
        v
    }
}

/// Validates an RTP mountpoint's `media` (and `source_ip`, `relock_timeout`) without
/// binding anything: what `create` and `--check-config` both run.
pub(in crate::plugin::streaming) fn plan_media(
    body: &Map<String, Value>,
) -> Result<MediaPlan, StreamingError> {
    let list = media_list(body)?.ok_or(StreamingError::MissingElement(
        "Missing mandatory element (media)".to_owned(),
    ))?;
    let source_ip = match str_field(body, "source_ip")? {
        None => None,
        Some(ip) => Some(ip.parse::<IpAddr>().map_err(|_| {
            StreamingError::InvalidElement(
                "Invalid element (source_ip should be an IP address)".to_owned(),
            )
        })?),
    };
    let relock = match body.get("relock_timeout") {
        None | Some(Value::Null) => DEFAULT_RELOCK,
        Some(v) => v
            .as_f64()
            .filter(|s| (0.1..=3600.0).contains(s))
            .map(std::time::Duration::from_secs_f64)
            .ok_or(StreamingError::InvalidElement(
                "Invalid element (relock_timeout should be 0.1 to 3600 seconds)".to_owned(),
            ))?,
    };
    let mut media: Vec<PlannedMedia> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let item = planned_medium(m, &media).map_err(|e| e.context(format_args!("media[{i}]")))?;
        media.push(item);
    }
    Ok(MediaPlan {
        media,
        source_ip,
        relock,
    })
}

/// One item of an RTP mountpoint's `media`, checked against those before it.
pub(in crate::plugin::streaming) fn planned_medium(
    m: &Value,
    before: &[PlannedMedia],
) -> Result<PlannedMedia, StreamingError> {
    let m = m.as_object().ok_or(StreamingError::InvalidElement(
        "Invalid element (media items should be objects)".to_owned(),
    ))?;
    let kind = media_kind(m)?;
    let mid = checked_mid(required_str(m, "mid")?)?;
    if before.iter().any(|x| x.media.mid == mid) {
        return Err(StreamingError::InvalidElement(format!(
            "Duplicate mid '{mid}'"
        )));
    }
    let codec_name = required_str(m, "codec")?;
    let fmtp = str_field(m, "fmtp")?;
    check_fmtp(fmtp)?;
    let codec = codec_spec(codec_name, fmtp).ok_or(StreamingError::InvalidElement(format!(
        "Invalid element (codec: unsupported '{codec_name}')"
    )))?;
    let expected = if kind == "audio" {
        MediaKind::Audio
    } else {
        MediaKind::Video
    };
    if codec.kind != expected {
        return Err(StreamingError::InvalidElement(format!(
            "Invalid media type '{kind}' for codec '{codec_name}'"
        )));
    }
    let pt = match m.get("pt") {
        None => {
            return Err(StreamingError::MissingElement(
                "Missing mandatory element (pt)".into(),
            ))
        }
        Some(v) => match v.as_u64() {
            Some(pt) if pt < 128 => pt as u8,
            _ => {
                return Err(StreamingError::InvalidElement(
                    "Invalid element (pt should be 0-127)".into(),
                ))
            }
        },
    };
    let port = match m.get("port") {
        None => 0,
        Some(v) => port_value(v, "port")?,
    };
    let rtcp_port = match m.get("rtcpport") {
        None | Some(Value::Null) => None,
        Some(v) => Some(port_value(v, "rtcpport")?),
    };
    Ok(PlannedMedia {
        media: MountMedia {
            msid: str_field(m, "msid")?.unwrap_or(&mid).to_owned(),
            label: str_field(m, "label")?.unwrap_or(&mid).to_owned(),
            mid,
            port: 0,
            rtcp_port: None,
            pt,
            fmtp: fmtp.map(str::to_owned),
            codec,
        },
        port,
        rtcp_port,
    })
}

/// An `fmtp` as it goes into SDP: `key=value` pairs (or bare keys) separated by `;`,
/// printable ASCII without spaces in keys, at most 1024 bytes. H.264's
/// `profile-level-id` must be 6 hex digits and `packetization-mode` 0, 1 or 2.
pub(in crate::plugin::streaming) fn check_fmtp(fmtp: Option<&str>) -> Result<(), StreamingError> {
    let Some(fmtp) = fmtp else { return Ok(()) };
    let bad = |why: &str| {
        Err(StreamingError::InvalidElement(format!(
            "Invalid element (fmtp: {why})"
        )))
    };
    if fmtp.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if !fmtp.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return bad("only printable ASCII");
    }
    for kv in fmtp.split(';').map(str::trim).filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || k.contains(' ') {
            return bad(&format!("'{kv}' is not key=value"));
        }
        match k {
            "profile-level-id" if !(v.len() == 6 && v.bytes().all(|b| b.is_ascii_hexdigit())) => {
                return bad("profile-level-id should be 6 hex digits");
            }
            "packetization-mode" if !matches!(v, "0" | "1" | "2") => {
                return bad("packetization-mode should be 0, 1 or 2");
            }
            _ => {}
        }
    }
    Ok(())
}
