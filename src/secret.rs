//! Comparing secrets (api_secret, admin_secret, tokens, streaming admin_key, mountpoint
//! secrets and pins) in constant time, so the time an answer takes does not tell an
//! attacker how much of a guess was right. Only the length can show.

use subtle::ConstantTimeEq;

/// Whether `given` is exactly `expected`, compared in constant time.
pub(crate) fn eq(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Whether a request carried `expected` (a missing value never matches).
pub(crate) fn given_eq(given: Option<&str>, expected: &str) -> bool {
    given.is_some_and(|g| eq(g, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        assert!(eq("janusoverlord", "janusoverlord"));
        assert!(!eq("janusoverlorD", "janusoverlord"));
        assert!(!eq("janusoverlor", "janusoverlord"));
        assert!(!eq("", "x"));
        assert!(eq("é\r\n", "é\r\n"));
        assert!(!given_eq(None, ""));
        assert!(given_eq(Some(""), ""));
    }
}
