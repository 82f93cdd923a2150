//! The SIP user agent: our own types at the plugin boundary, rsipstack behind them.
//!
//! The plugin (under the core's lock, sans-IO) validates requests and sends
//! [`SipCommand`]s; the driver ([`driver::run`], the only code that touches rsipstack
//! and sockets) answers with [`SipEvent`]s through the core's event channel. One
//! endpoint (one UDP socket) serves every handle; each handle has at most one
//! registration, refreshed before it expires.

pub mod driver;

use crate::api::HandleId;

/// A SIP account, as a `register` request describes it.
#[derive(Clone)]
pub struct Account {
    /// The address of record, `sip:user@domain[:port]`.
    pub uri: String,
    /// The user part of `uri`.
    pub user: String,
    /// The `host[:port]` part of `uri`.
    pub domain: String,
    /// Digest password.
    pub secret: Option<String>,
    /// Digest user name when it differs from `user`.
    pub authuser: Option<String>,
    /// Where REGISTER goes instead of `domain` (`proxy`, or `outbound_proxy`).
    pub proxy: Option<String>,
    /// Requested registration lifetime, seconds.
    pub ttl: u32,
    /// Extra headers on REGISTER, already checked (no CR/LF, token names).
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("uri", &self.uri)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("authuser", &self.authuser)
            .field("proxy", &self.proxy)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// What the plugin asks of the user agent.
#[derive(Debug)]
pub enum SipCommand {
    /// Register (and keep refreshing) `account` for `handle`, replacing any earlier one.
    Register {
        /// The handle.
        handle: HandleId,
        /// The account.
        account: Account,
    },
    /// Remove the handle's registration (REGISTER with Expires: 0).
    Unregister {
        /// The handle.
        handle: HandleId,
    },
    /// The handle is gone: stop whatever it had running, quietly.
    Forget {
        /// The handle.
        handle: HandleId,
    },
}

/// What the user agent reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SipEvent {
    /// A REGISTER got a 2xx; `expires` is what the registrar granted.
    Registered {
        /// The handle.
        handle: HandleId,
        /// Seconds until the binding lapses (refreshed before then).
        expires: u32,
        /// false for a refresh: only the first success is an event for the client.
        first: bool,
    },
    /// A REGISTER failed: the final response, or 408 when nothing answered within
    /// timer F, 503 when the request could not be sent.
    RegistrationFailed {
        /// The handle.
        handle: HandleId,
        /// SIP status code.
        code: u16,
        /// Reason phrase or what went wrong.
        reason: String,
    },
    /// The registration was removed (or the registrar refused the removal: it lapses anyway).
    Unregistered {
        /// The handle.
        handle: HandleId,
    },
}

/// Why a `headers` element of a request cannot go into a SIP message.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    // RFC 3261 token characters for the name; no line breaks or NUL in the value
    // (a CR/LF would start a header or a body of the caller's choosing).
    let token = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("invalid header name '{}'", name.escape_debug()));
    }
    if value.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) {
        return Err(format!("header '{name}' has a line break in its value"));
    }
    if value.len() > 1024 {
        return Err(format!("header '{name}' is longer than 1024 bytes"));
    }
    Ok(())
}

/// Splits `sip:user@host[:port][;params]` into `(user, host[:port])`.
pub fn split_sip_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let rest = rest.split([';', '?']).next()?;
    let (user, host) = rest.split_once('@')?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    let user_ok = !user.is_empty() && !user.chars().any(|c| c.is_whitespace() || c == ':');
    (host_ok && user_ok).then_some((user, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_that_would_inject_are_refused() {
        assert!(check_header("X-Account", "gold").is_ok());
        for (n, v) in [
            ("X-A", "1\r\nVia: SIP/2.0/UDP evil"),
            ("X-A", "1\nContact: <sip:evil>"),
            ("X A", "1"),
            ("X-A:", "1"),
            ("", "1"),
            ("X-A\r\nVia", "1"),
        ] {
            assert!(check_header(n, v).is_err(), "{n:?}: {v:?}");
        }
        assert!(check_header("X-Long", &"a".repeat(2000)).is_err());
    }

    #[test]
    fn sip_uris() {
        assert_eq!(
            split_sip_uri("sip:1001@pbx.example.com"),
            Some(("1001", "pbx.example.com"))
        );
        assert_eq!(
            split_sip_uri("sip:alice@127.0.0.1:5070;transport=udp"),
            Some(("alice", "127.0.0.1:5070"))
        );
        for bad in [
            "1001@pbx",
            "sip:pbx.example.com",
            "sip:@pbx",
            "sip:a b@pbx",
            "sip:a@",
        ] {
            assert_eq!(split_sip_uri(bad), None, "{bad}");
        }
    }
}
