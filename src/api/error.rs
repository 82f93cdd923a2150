//! Janus API error codes (`apierror.h`) and the error type of the API edge.

/// A Janus API error: numeric code and a human reason, sent as `{"janus":"error","error":{..}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct ApiError {
    /// Janus's numeric code.
    pub code: u16,
    /// Human-readable reason.
    pub reason: String,
}

/// The codes, named as in Janus's `apierror.h`.
pub mod code {
    /// Wrong or missing api_secret / token.
    pub const UNAUTHORIZED: u16 = 403;
    /// The token may not use this plugin.
    pub const UNAUTHORIZED_PLUGIN: u16 = 405;
    /// Transport-specific failure (e.g. body too large).
    pub const TRANSPORT_SPECIFIC: u16 = 450;
    /// The request has no `janus` element.
    pub const MISSING_REQUEST: u16 = 452;
    /// Unknown request at session or handle level.
    pub const UNKNOWN_REQUEST: u16 = 453;
    /// The body is not JSON.
    pub const INVALID_JSON: u16 = 454;
    /// The body is JSON but not an object.
    pub const INVALID_JSON_OBJECT: u16 = 455;
    /// A mandatory element is missing.
    pub const MISSING_MANDATORY_ELEMENT: u16 = 456;
    /// The request is not valid at this path.
    pub const INVALID_REQUEST_PATH: u16 = 457;
    /// No such session.
    pub const SESSION_NOT_FOUND: u16 = 458;
    /// No such handle.
    pub const HANDLE_NOT_FOUND: u16 = 459;
    /// No such plugin.
    pub const PLUGIN_NOT_FOUND: u16 = 460;
    /// The plugin refused the attach.
    pub const PLUGIN_ATTACH: u16 = 461;
    /// The plugin failed to take the message.
    pub const PLUGIN_MESSAGE: u16 = 462;
    /// The plugin failed to detach.
    pub const PLUGIN_DETACH: u16 = 463;
    /// JSEP `type` is neither offer nor answer.
    pub const JSEP_UNKNOWN_TYPE: u16 = 464;
    /// JSEP `sdp` is not a usable SDP.
    pub const JSEP_INVALID_SDP: u16 = 465;
    /// Trickle for an unknown stream.
    pub const TRICKLE_INVALID_STREAM: u16 = 466;
    /// An element has the wrong JSON type.
    pub const INVALID_ELEMENT_TYPE: u16 = 467;
    /// Requested session id already in use.
    pub const SESSION_CONFLICT: u16 = 468;
    /// An answer arrived where none was expected.
    pub const UNEXPECTED_ANSWER: u16 = 469;
    /// No such token.
    pub const TOKEN_NOT_FOUND: u16 = 470;
    /// The PeerConnection is in the wrong state for this.
    pub const WEBRTC_STATE: u16 = 471;
    /// New sessions are not being accepted.
    pub const NOT_ACCEPTING_SESSIONS: u16 = 472;
    /// Anything else.
    pub const UNKNOWN: u16 = 490;
}

impl ApiError {
    /// An error with `code` and `reason`.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.into(),
        }
    }

    pub(crate) fn unauthorized() -> Self {
        ApiError::new(
            code::UNAUTHORIZED,
            "Unauthorized request (wrong or missing secret/token)",
        )
    }

    pub(crate) fn path(request: &str) -> Self {
        ApiError::new(
            code::INVALID_REQUEST_PATH,
            format!("Unhandled request '{request}' at this path"),
        )
    }

    pub(crate) fn unknown_request(request: &str) -> Self {
        ApiError::new(
            code::UNKNOWN_REQUEST,
            format!("Unknown request '{request}'"),
        )
    }

    pub(crate) fn missing(element: &str) -> Self {
        ApiError::new(
            code::MISSING_MANDATORY_ELEMENT,
            format!("Missing mandatory element ({element})"),
        )
    }

    pub(crate) fn bad_type(element: &str, expected: &str) -> Self {
        ApiError::new(
            code::INVALID_ELEMENT_TYPE,
            format!("Invalid element type ({element} should be {expected})"),
        )
    }
}

impl From<crate::fields::FieldError> for ApiError {
    fn from(e: crate::fields::FieldError) -> Self {
        use crate::fields::FieldError;
        match e {
            FieldError::Missing(key) => ApiError::missing(&key),
            FieldError::Invalid { key, expected } => ApiError::bad_type(&key, expected),
        }
    }
}
