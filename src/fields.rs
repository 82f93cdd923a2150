//! Reading a request's JSON fields: one set of readers for the API core and every
//! plugin (each had its own copy), one error. Each caller turns a [`FieldError`] into
//! its own Janus code; the text is Janus's ("Missing mandatory element (id)",
//! "Invalid element type (id should be a positive integer)").

use serde_json::{Map, Value};

/// Why a field could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Absent (or null) where it is required.
    #[error("Missing mandatory element ({0})")]
    Missing(String),
    /// Present, but not of the type it must have.
    #[error("Invalid element type ({key} should be {expected})")]
    Invalid {
        /// The field.
        key: String,
        /// What it should be, e.g. "a string".
        expected: &'static str,
    },
}

impl FieldError {
    fn invalid(key: &str, expected: &'static str) -> FieldError {
        FieldError::Invalid {
            key: key.to_owned(),
            expected,
        }
    }
}

/// `key` as a string; absent or null is `None`.
pub(crate) fn opt_str<'a>(
    body: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, FieldError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(FieldError::invalid(key, "a string")),
    }
}

/// `key` as a string, required (null is the wrong type, as in Janus).
pub(crate) fn req_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, FieldError> {
    required(body, key, "a string", opt_str)
}

/// `key` as a boolean; absent or null is `None`.
pub(crate) fn opt_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, FieldError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(FieldError::invalid(key, "a boolean")),
    }
}

/// `key` as a boolean, required (null is the wrong type).
pub(crate) fn req_bool(body: &Map<String, Value>, key: &str) -> Result<bool, FieldError> {
    required(body, key, "a boolean", opt_bool)
}

/// `key` as a non-negative integer; absent or null is `None`.
pub(crate) fn opt_u64(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, FieldError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| FieldError::invalid(key, "a positive integer")),
    }
}

/// `key` as a non-negative integer, required (null is the wrong type).
pub(crate) fn req_u64(body: &Map<String, Value>, key: &str) -> Result<u64, FieldError> {
    required(body, key, "a positive integer", opt_u64)
}

/// A required field: absent is missing; present but null is the wrong type (Janus
/// checks the type of whatever is there).
fn required<'a, T>(
    body: &'a Map<String, Value>,
    key: &str,
    expected: &'static str,
    read: impl Fn(&'a Map<String, Value>, &str) -> Result<Option<T>, FieldError>,
) -> Result<T, FieldError> {
    match body.get(key) {
        None => Err(FieldError::Missing(key.to_owned())),
        Some(Value::Null) => Err(FieldError::invalid(key, expected)),
        Some(_) => read(body, key)?.ok_or_else(|| FieldError::invalid(key, expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn absent_and_null_are_none_and_absent_is_missing_when_required() {
        let b = body(json!({"n": null}));
        for key in ["n", "absent"] {
            assert_eq!(opt_str(&b, key), Ok(None));
            assert_eq!(opt_bool(&b, key), Ok(None));
            assert_eq!(opt_u64(&b, key), Ok(None));
        }
        let e = req_str(&b, "absent").unwrap_err();
        assert_eq!(e, FieldError::Missing("absent".into()));
        assert_eq!(e.to_string(), "Missing mandatory element (absent)");
        assert!(matches!(
            req_bool(&b, "absent"),
            Err(FieldError::Missing(_))
        ));
        assert!(matches!(req_u64(&b, "absent"), Err(FieldError::Missing(_))));
        // A required element that is there as null has the wrong type, as in Janus.
        assert_eq!(
            req_u64(&b, "n").unwrap_err().to_string(),
            "Invalid element type (n should be a positive integer)"
        );
        assert!(matches!(req_str(&b, "n"), Err(FieldError::Invalid { .. })));
        assert!(matches!(req_bool(&b, "n"), Err(FieldError::Invalid { .. })));
    }

    #[test]
    fn types_are_checked_with_janus_wording() {
        let b = body(json!({"s": "x\r\né", "t": true, "n": 7, "neg": -1, "big": 1e300, "o": {}}));
        assert_eq!(req_str(&b, "s"), Ok("x\r\né"));
        assert_eq!(req_bool(&b, "t"), Ok(true));
        assert_eq!(req_u64(&b, "n"), Ok(7));
        assert_eq!(
            req_str(&b, "n").unwrap_err().to_string(),
            "Invalid element type (n should be a string)"
        );
        assert_eq!(
            req_bool(&b, "s").unwrap_err().to_string(),
            "Invalid element type (s should be a boolean)"
        );
        for key in ["neg", "big", "s", "o", "t"] {
            assert_eq!(
                req_u64(&b, key).unwrap_err().to_string(),
                format!("Invalid element type ({key} should be a positive integer)")
            );
        }
    }
}
