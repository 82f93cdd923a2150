//! The ICE servers handed to browsers: `[[media.ice_servers]]` as the `RTCIceServer`
//! list janus.js takes (`iceServers`), with time-limited TURN credentials made per
//! request for servers on coturn's REST scheme (`use-auth-secret`). Sans-IO: the
//! caller passes the time.

use aws_lc_rs::hmac;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::config::IceServerConfig;

/// Seconds since 1970 now: TURN REST credentials expire by the wall clock, so the
/// transport drivers that hand them out read it here.
pub(crate) fn unix_now() -> u64 {
    #[allow(clippy::disallowed_methods)] // a driver's wall clock, for credential expiry
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The list for browsers at `now_unix` (seconds since 1970).
pub(crate) fn for_browsers(servers: &[IceServerConfig], now_unix: u64) -> Value {
    servers
        .iter()
        .map(|s| {
            let mut v = json!({ "urls": s.urls });
            match (&s.username, &s.credential, &s.rest_secret) {
                (Some(user), Some(password), _) => {
                    v["username"] = json!(user);
                    v["credential"] = json!(password);
                }
                (_, _, Some(secret)) => {
                    let expiry = now_unix.saturating_add(s.rest_ttl);
                    let (user, password) = rest_credentials(secret, &s.rest_user, expiry);
                    v["username"] = json!(user);
                    v["credential"] = json!(password);
                }
                _ => {}
            }
            v
        })
        .collect()
}

/// coturn's TURN REST credentials: the user `<expiry>:<user>` and the password
/// base64(HMAC-SHA1(secret, that user)); coturn refuses them after `expiry_unix`.
pub(crate) fn rest_credentials(secret: &str, user: &str, expiry_unix: u64) -> (String, String) {
    let name = format!("{expiry_unix}:{user}");
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = hmac::sign(&key, name.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    (name, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credentials_are_coturns_hmac() {
        // Computed independently: Python's hmac.new(b"n0rth-secret",
        // b"1700000000:cardea", hashlib.sha1), base64.
        assert_eq!(
            rest_credentials("n0rth-secret", "cardea", 1_700_000_000),
            (
                "1700000000:cardea".to_owned(),
                "SFRvSiv3LdUI1tLRCcGWe+LwSnw=".to_owned()
            )
        );
    }

    #[test]
    fn static_and_rest_servers_for_browsers() {
        let stun = IceServerConfig {
            urls: vec!["stun:stun.lan:3478".into()],
            username: None,
            credential: None,
            rest_secret: None,
            rest_ttl: 3600,
            rest_user: "cardea".into(),
        };
        let fixed = IceServerConfig {
            urls: vec!["turn:turn.lan:3478?transport=udp".into()],
            username: Some("lab".into()),
            credential: Some("labpass".into()),
            ..stun.clone()
        };
        let rest = IceServerConfig {
            urls: vec!["turn:turn.lan:3478".into(), "turns:turn.lan:5349".into()],
            rest_secret: Some("n0rth-secret".into()),
            ..stun.clone()
        };
        let list = for_browsers(&[stun, fixed, rest], 1_699_996_400);
        assert_eq!(list[0], json!({"urls": ["stun:stun.lan:3478"]}));
        assert_eq!(
            list[1],
            json!({"urls": ["turn:turn.lan:3478?transport=udp"], "username": "lab", "credential": "labpass"})
        );
        assert_eq!(list[2]["username"], "1700000000:cardea");
        assert_eq!(list[2]["credential"], "SFRvSiv3LdUI1tLRCcGWe+LwSnw=");
        assert_eq!(list[2]["urls"][1], "turns:turn.lan:5349");
    }
}
