//! Reading and checking a request's fields (URIs, strings, custom headers) and the
//! shapes of the plugin's answers.

use super::*;

/// The event a refused request answers with.
pub(super) fn error_event(e: &SipError) -> Value {
    json!({"sip": "event", "error_code": e.code(), "error": e.to_string()})
}

pub(super) fn result(event: Value) -> Value {
    json!({"sip": "event", "result": event})
}

/// The request's `uri`, a SIP address: 443 when missing, 446 when not `sip:user@host`.
pub(super) fn sip_uri_of(body: &Map<String, Value>) -> Result<&str, SipError> {
    let uri = address_field(body, "uri")?
        .ok_or(SipError::MissingElement("Missing element (uri)".into()))?;
    if split_sip_uri(uri).is_none() {
        return Err(SipError::InvalidAddress(format!(
            "Invalid user address ({uri})"
        )));
    }
    Ok(uri)
}

/// `transcode`: a boolean, `default` when absent.
pub(super) fn transcode_of(body: &Map<String, Value>, default: bool) -> Result<bool, SipError> {
    match body.get("transcode") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(SipError::InvalidElement(
            "Invalid element type (transcode should be a boolean)".into(),
        )),
    }
}

/// `srtp` (`sdes_optional` or `sdes_mandatory`) and `srtp_profile` (the suite,
/// AES_CM_128_HMAC_SHA1_80 by default): 444 for anything else.
pub(super) fn srtp_of(body: &Map<String, Value>) -> Result<SrtpMode, SipError> {
    let suite = match optional_str(body, "srtp_profile")? {
        None => Suite::AesCm128HmacSha1_80,
        Some(p) => Suite::parse(p).ok_or(SipError::InvalidElement(format!(
            "Invalid element (unsupported SRTP profile {p})"
        )))?,
    };
    match optional_str(body, "srtp")? {
        None => Ok(SrtpMode::Off),
        Some("sdes_optional") => Ok(SrtpMode::Optional(suite)),
        Some("sdes_mandatory") => Ok(SrtpMode::Mandatory(suite)),
        Some(_) => Err(SipError::InvalidElement(
            "Invalid element (srtp can only be sdes_optional or sdes_mandatory)".into(),
        )),
    }
}

/// Longest string field but `content` (a message body, bounded by the request size).
pub(super) const MAX_FIELD: usize = 2048;

/// A string field. Every one but `content` ends up in a SIP header, an SDP line or an
/// event: CR, LF or NUL would end that line and start another of the caller's choosing
/// (444, naming the field).
pub(super) fn optional_str<'a>(
    body: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, SipError> {
    match crate::fields::opt_str(body, key).map_err(failure)? {
        Some(s) if key == "content" => Ok(Some(s)),
        Some(s) if s.contains(['\r', '\n', '\0']) => Err(SipError::InvalidElement(format!(
            "Invalid element ({key} may not hold CR, LF or NUL)"
        ))),
        Some(s) if s.len() > MAX_FIELD => Err(SipError::InvalidElement(format!(
            "Invalid element ({key} is longer than {MAX_FIELD} bytes)"
        ))),
        other => Ok(other),
    }
}

/// A field the request could not give, as the plugin refuses it (443 or 444).
pub(super) fn failure(e: crate::fields::FieldError) -> SipError {
    match e {
        crate::fields::FieldError::Missing(_) => SipError::MissingElement(e.to_string()),
        crate::fields::FieldError::Invalid { .. } => SipError::InvalidElement(e.to_string()),
    }
}

/// A SIP address field (`uri`, `username`, `proxy`, `outbound_proxy`): besides line
/// breaks, no `<`, `>`, quotes, spaces or `?` (a `?headers` part would put headers of
/// the caller's choosing in our request): 446 naming the field.
pub(super) fn address_field<'a>(
    body: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, SipError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || "<>?\"\\".contains(c);
    match body.get(key) {
        Some(Value::String(s)) if s.len() > MAX_FIELD || s.contains(bad) => {
            Err(SipError::InvalidAddress(format!(
                "Invalid address ({key}: no spaces, line breaks, <, >, quotes or ?headers)"
            )))
        }
        _ => optional_str(body, key),
    }
}

/// A display name or auth user, written inside quotes: 444 for what would end them.
pub(super) fn quoted_field<'a>(
    body: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, SipError> {
    let value = optional_str(body, key)?;
    if value.is_some_and(|v| v.contains(|c: char| c.is_control() || "<>\"\\".contains(c))) {
        return Err(SipError::InvalidElement(format!(
            "Invalid element ({key} may not hold <, >, quotes or control characters)"
        )));
    }
    Ok(value)
}

/// Headers that give a SIP message its structure and routing: the user agent writes
/// them, a request's `headers` may not.
pub(super) const STRUCTURAL_HEADERS: [&str; 11] = [
    "via",
    "route",
    "record-route",
    "contact",
    "from",
    "to",
    "call-id",
    "cseq",
    "content-length",
    "content-type",
    "max-forwards",
];

/// Most custom headers one request may add (each at most 1024 bytes).
pub(super) const MAX_CUSTOM_HEADERS: usize = 16;

/// The compact forms of those (RFC 3261 7.3.3): v, m, f, t, i, l, c.
pub(super) const COMPACT_STRUCTURAL: [&str; 7] = ["v", "m", "f", "t", "i", "l", "c"];

/// The `headers` object of a request, each checked for what would break the message.
pub(super) fn headers_of(body: &Map<String, Value>) -> Result<Vec<(String, String)>, SipError> {
    let Some(h) = body.get("headers") else {
        return Ok(Vec::new());
    };
    let Some(h) = h.as_object() else {
        return Err(SipError::InvalidElement(
            "Invalid element type (headers should be an object)".into(),
        ));
    };
    if h.len() > MAX_CUSTOM_HEADERS {
        return Err(SipError::InvalidElement(format!(
            "Invalid element (at most {MAX_CUSTOM_HEADERS} custom headers)"
        )));
    }
    let mut out = Vec::with_capacity(h.len());
    for (name, value) in h {
        let Some(value) = value.as_str() else {
            return Err(SipError::InvalidElement(format!(
                "Invalid element type (header '{name}' should be a string)"
            )));
        };
        check_header(name, value)
            .map_err(|e| SipError::InvalidElement(format!("Invalid element ({e})")))?;
        let lower = name.to_ascii_lowercase();
        if STRUCTURAL_HEADERS.contains(&lower.as_str())
            || COMPACT_STRUCTURAL.contains(&lower.as_str())
        {
            return Err(SipError::InvalidElement(format!(
                "Invalid element (header '{name}' is written by the gateway, not the request)"
            )));
        }
        out.push((name.clone(), value.to_owned()));
    }
    Ok(out)
}
