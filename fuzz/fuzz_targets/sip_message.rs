//! What reaches the SIP socket, and what a client may put into our requests: any
//! bytes through rsipstack's message parser (as its transport parses datagrams; a
//! panic there would take the user agent down), then the parsed message written back
//! out and parsed again; and the checks on `username` URIs and custom `headers` from
//! the Janus API. No panic; a header we accept never carries a line break.
#![no_main]

use cardea::fuzzing::{check_sip_header as check_header, split_sip_uri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = rsipstack::sip::parser::parse_message(data) {
        let again = msg.to_string();
        let _ = rsipstack::sip::parser::parse_message(again.as_bytes());
    }
    let text = String::from_utf8_lossy(data);
    let _ = split_sip_uri(&text);
    let (name, value) = text.split_once(':').unwrap_or((&text, ""));
    if check_header(name, value).is_ok() {
        assert!(!name.contains(['\r', '\n']) && !value.contains(['\r', '\n']));
    }
});
