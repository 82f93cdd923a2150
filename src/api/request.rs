//! Parsing of a Janus request body into an envelope the core can dispatch.
//!
//! Input from the network: never panics, every refusal is an [`ApiError`] with
//! Janus's code (see `../shared/janus-api.md` §0 for the measured rules).

use serde_json::{Map, Value};

use super::error::{code, ApiError};
use super::ids::{HandleId, SessionId};

/// Which transport carried the request; a few error codes differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// HTTP REST (+ long poll).
    Http,
    /// WebSocket.
    Websocket,
}

/// Where a request is addressed: root, a session, or a handle of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Target {
    /// The session, if addressed.
    pub session: Option<SessionId>,
    /// The handle, if addressed (then `session` is too).
    pub handle: Option<HandleId>,
}

/// A parsed request: its verb, its transaction and the whole JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The `janus` element, e.g. `create`.
    pub janus: String,
    /// The `transaction` element, echoed on every reply.
    pub transaction: String,
    /// Where it is addressed.
    pub target: Target,
    /// The whole request object, for request-specific elements.
    pub body: Map<String, Value>,
}

/// Why a request could not be parsed, with the transaction when one was read.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// The Janus error.
    pub error: ApiError,
    /// The transaction, when it was read before the failure.
    pub transaction: Option<String>,
}

impl From<ApiError> for ParseError {
    fn from(error: ApiError) -> Self {
        ParseError {
            error,
            transaction: None,
        }
    }
}

/// Parses a request body. Over HTTP `url_target` comes from the path; over WebSocket
/// pass `None` and the target is read from `session_id`/`handle_id` in the body.
pub fn parse_request(
    bytes: &[u8],
    transport: TransportKind,
    url_target: Option<Target>,
) -> Result<Request, ParseError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(code::INVALID_JSON, format!("JSON error: {e}")))?;
    let body = match value {
        Value::Object(map) => map,
        Value::Array(_) if transport == TransportKind::Websocket => {
            return Err(ApiError::missing("janus").into())
        }
        _ => {
            return Err(
                ApiError::new(code::INVALID_JSON_OBJECT, "JSON error: not an object").into(),
            )
        }
    };
    let janus = match body.get("janus") {
        None => return Err(ApiError::missing("janus").into()),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad_type("janus", "a string").into()),
    };
    let transaction = match body.get("transaction") {
        None => return Err(ApiError::missing("transaction").into()),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad_type("transaction", "a string").into()),
    };
    let with_tx = |error| ParseError {
        error,
        transaction: Some(transaction.clone()),
    };
    let target = match url_target {
        Some(t) => {
            // Ids in the body must agree with the path, as Janus's HTTP transport checks.
            let session = optional_id(&body, "session_id").map_err(with_tx)?;
            let handle = optional_id(&body, "handle_id").map_err(with_tx)?;
            if session.is_some_and(|s| Some(SessionId(s)) != t.session) {
                return Err(ApiError::new(
                    code::INVALID_REQUEST_PATH,
                    "Conflicting session ID (payload and path)",
                )
                .into());
            }
            if handle.is_some_and(|h| Some(HandleId(h)) != t.handle) {
                return Err(ApiError::new(
                    code::INVALID_REQUEST_PATH,
                    "Conflicting handle ID (payload and path)",
                )
                .into());
            }
            t
        }
        None => {
            let session = optional_id(&body, "session_id").map_err(with_tx)?;
            let handle = optional_id(&body, "handle_id").map_err(with_tx)?;
            if handle.is_some() && session.is_none() {
                // Janus looks the (absent, so 0) session up first and finds none.
                return Err(with_tx(ApiError::new(
                    code::SESSION_NOT_FOUND,
                    "No such session 0",
                )));
            }
            Target {
                session: session.map(SessionId),
                handle: handle.map(HandleId),
            }
        }
    };
    Ok(Request {
        janus,
        transaction,
        target,
        body,
    })
}

/// Reads an optional positive integer element; 0 counts as absent, as in Janus.
fn optional_id(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, ApiError> {
    Ok(crate::fields::opt_u64(body, key)?.filter(|id| *id != 0))
}

/// A JSEP object (`{"type":"offer","sdp":"v=0..."}`) validated as Janus's core does.
#[derive(Debug, Clone, PartialEq)]
pub struct Jsep {
    /// Offer or answer.
    pub kind: JsepKind,
    /// The SDP text.
    pub sdp: String,
    /// `"trickle": false` means the client will send no trickle candidates.
    pub trickle: bool,
    /// `"restart": true` asks for an ICE restart.
    pub restart: bool,
}

/// JSEP type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsepKind {
    /// SDP offer.
    Offer,
    /// SDP answer.
    Answer,
}

impl JsepKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JsepKind::Offer => "offer",
            JsepKind::Answer => "answer",
        }
    }
}

impl Jsep {
    /// Validates a `jsep` element: missing type/sdp → 456, unknown type → 464, bad SDP → 465.
    pub fn parse(value: &Value) -> Result<Jsep, ApiError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ApiError::bad_type("jsep", "an object"))?;
        let kind = match obj.get("type") {
            None => return Err(ApiError::missing("type")),
            Some(Value::String(t)) if t.eq_ignore_ascii_case("offer") => JsepKind::Offer,
            Some(Value::String(t)) if t.eq_ignore_ascii_case("answer") => JsepKind::Answer,
            Some(Value::String(t)) => {
                return Err(ApiError::new(
                    code::JSEP_UNKNOWN_TYPE,
                    format!("JSEP error: unknown message type '{t}'"),
                ))
            }
            Some(_) => return Err(ApiError::bad_type("type", "a string")),
        };
        let sdp = match obj.get("sdp") {
            None => return Err(ApiError::missing("sdp")),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(ApiError::bad_type("sdp", "a string")),
        };
        if !sdp_looks_valid(&sdp) {
            return Err(ApiError::new(
                code::JSEP_INVALID_SDP,
                "JSEP error: invalid SDP",
            ));
        }
        let flag = |k: &str| obj.get(k).and_then(Value::as_bool);
        Ok(Jsep {
            kind,
            sdp,
            trickle: flag("trickle").unwrap_or(true),
            restart: flag("restart").unwrap_or(false),
        })
    }

    /// The wire form.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({"type": self.kind.as_str(), "sdp": self.sdp});
        if self.restart {
            v["restart"] = Value::Bool(true);
        }
        v
    }
}

/// The core's structural check: starts with `v=` and has `o=`, `s=` and `m=` lines.
fn sdp_looks_valid(sdp: &str) -> bool {
    if !sdp.starts_with("v=") {
        return false;
    }
    let has = |p: &str| sdp.lines().any(|l| l.starts_with(p));
    has("o=") && has("s=") && has("m=")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(bytes: &str, t: TransportKind) -> ParseError {
        parse_request(bytes.as_bytes(), t, None).unwrap_err()
    }

    #[test]
    fn envelope_errors_match_janus() {
        use TransportKind::*;
        assert_eq!(err("{", Http).error.code, 454);
        assert_eq!(err("[1]", Http).error.code, 455);
        assert_eq!(err("[1]", Websocket).error.code, 456);
        assert_eq!(err("3", Http).error.code, 455);
        assert_eq!(err(r#"{"transaction":"t"}"#, Http).error.code, 456);
        assert_eq!(
            err(r#"{"janus":1,"transaction":"t"}"#, Http).error.code,
            467
        );
        assert_eq!(
            err(r#"{"janus":"create","transaction":5}"#, Http)
                .error
                .code,
            467
        );
        let e = err(r#"{"janus":"create"}"#, Http);
        assert_eq!((e.error.code, e.transaction), (456, None));
    }

    #[test]
    fn websocket_target_comes_from_body() {
        let r = parse_request(
            br#"{"janus":"message","transaction":"x","session_id":5,"handle_id":7}"#,
            TransportKind::Websocket,
            None,
        )
        .unwrap();
        assert_eq!(r.target.session, Some(SessionId(5)));
        assert_eq!(r.target.handle, Some(HandleId(7)));
        let e = err(
            r#"{"janus":"attach","transaction":"x","session_id":"5"}"#,
            TransportKind::Websocket,
        );
        assert_eq!((e.error.code, e.transaction.as_deref()), (467, Some("x")));
    }

    #[test]
    fn body_ids_must_match_the_http_path() {
        let path = Target {
            session: Some(SessionId(5)),
            handle: None,
        };
        let p = |b: &str| parse_request(b.as_bytes(), TransportKind::Http, Some(path));
        assert!(p(r#"{"janus":"keepalive","transaction":"x","session_id":5}"#).is_ok());
        assert_eq!(
            p(r#"{"janus":"keepalive","transaction":"x","session_id":6}"#)
                .unwrap_err()
                .error
                .code,
            457
        );
        assert_eq!(
            p(r#"{"janus":"keepalive","transaction":"x","handle_id":6}"#)
                .unwrap_err()
                .error
                .code,
            457
        );
    }

    #[test]
    fn jsep_validation() {
        let j = |v: &str| Jsep::parse(&serde_json::from_str(v).unwrap());
        assert_eq!(j(r#"{"sdp":"v=0"}"#).unwrap_err().code, 456);
        assert_eq!(j(r#"{"type":"offer"}"#).unwrap_err().code, 456);
        assert_eq!(
            j(r#"{"type":"pranswer","sdp":"v=0"}"#).unwrap_err().code,
            464
        );
        assert_eq!(
            j(r#"{"type":"offer","sdp":"hello"}"#).unwrap_err().code,
            465
        );
        assert_eq!(
            j(r#"{"type":"offer","sdp":"v=0\r\ns=-\r\n"}"#)
                .unwrap_err()
                .code,
            465
        );
        let ok = j(r#"{"type":"offer","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n","trickle":false}"#)
            .unwrap();
        assert_eq!((ok.kind, ok.trickle), (JsepKind::Offer, false));
    }
}
