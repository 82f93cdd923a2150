//! Reading a request's fields, and the checks `create` runs on a mountpoint declared
//! in the configuration (`--check-config` and the start).

use super::*;
use crate::fields::{self, FieldError};

/// Every mountpoint of `[streaming]` through the checks `create` runs before it
/// starts anything (nothing is bound or connected), plus ids and fixed UDP ports used
/// twice: `--check-config` and the start run it. The error names the mountpoint and
/// the field.
pub fn check_configured(settings: &crate::config::StreamingConfig) -> Result<(), String> {
    let mut ids = std::collections::HashSet::new();
    let mut ports: Vec<(u16, String)> = Vec::new();
    for m in &settings.mountpoints {
        let who = who(m);
        if !ids.insert(m.id) {
            return Err(format!("{who}: id {} is used by another mountpoint", m.id));
        }
        let fixed = check_body(&config_body(m), settings).map_err(|e| format!("{who}: {e}"))?;
        for (port, what) in fixed {
            if let Some((_, other)) = ports.iter().find(|(p, _)| *p == port) {
                return Err(format!("{who}: {what} {port} is also {other}"));
            }
            ports.push((port, format!("{who} {what}")));
        }
    }
    Ok(())
}

/// A configured mountpoint as a `create` body.
pub(super) fn config_body(m: &crate::config::MountpointConfig) -> Map<String, Value> {
    match serde_json::to_value(m) {
        Ok(Value::Object(b)) => b,
        _ => Map::new(),
    }
}

/// "mountpoint 3 (\"Front door\")", for errors about a configured mountpoint.
pub(super) fn who(m: &crate::config::MountpointConfig) -> String {
    match &m.name {
        Some(name) => format!("mountpoint {} ({name:?})", m.id),
        None => format!("mountpoint {}", m.id),
    }
}

/// What `create` checks of a body before it starts anything; the fixed UDP ports an
/// RTP mountpoint asks for, with what each is for.
pub(super) fn check_body(
    body: &Map<String, Value>,
    settings: &crate::config::StreamingConfig,
) -> Result<Vec<(u16, String)>, StreamingError> {
    for k in ["name", "description", "metadata", "secret", "pin"] {
        optional_str(body, k)?;
    }
    optional_bool(body, "is_private")?;
    match required_str(body, "type")? {
        "demo" => Ok(Vec::new()),
        "rtsp" => Mountpoint::parse_rtsp(body, &settings.rtsp_allow).map(|_| Vec::new()),
        "rtp" => Ok(mountpoint::plan_media(body)?.fixed_ports()),
        "webrtc" => mountpoint::plan_media(body).map(|_| Vec::new()),
        kind => Err(StreamingError::InvalidElement(format!(
            "Unsupported mountpoint type '{kind}' (rtp, rtsp, webrtc or demo, for now)"
        ))),
    }
}

pub(super) fn event(result: Value) -> Value {
    json!({"streaming": "event", "result": result})
}

/// The event a refused request answers with.
pub(super) fn error(e: StreamingError) -> Value {
    json!({"streaming": "event", "error_code": e.code(), "error": e.into_text()})
}

pub(super) fn mountpoint_id(body: &Map<String, Value>) -> Result<MountpointId, StreamingError> {
    fields::req_u64(body, "id")
        .map(MountpointId)
        .map_err(refusal)
}

/// A field the request could not give, as the plugin refuses it (453 or 454).
pub(super) fn refusal(e: FieldError) -> StreamingError {
    match e {
        FieldError::Missing(_) => StreamingError::MissingElement(e.to_string()),
        FieldError::Invalid { .. } => StreamingError::InvalidElement(e.to_string()),
    }
}

pub(super) fn optional_bool(
    body: &Map<String, Value>,
    key: &str,
) -> Result<Option<bool>, StreamingError> {
    fields::opt_bool(body, key).map_err(refusal)
}

pub(super) fn optional_str(
    body: &Map<String, Value>,
    key: &str,
) -> Result<Option<String>, StreamingError> {
    Ok(str_field(body, key)?.map(str::to_owned))
}
