//! janus.plugin.sip's request validation and error codes (janus-api.md §4): every
//! request is asynchronous, errors come as `{"sip":"event","error_code":N}` with the
//! request's transaction, and nothing reaches the network when a request is refused.
//! A registrar is not needed here; tests against kamailio are in interop-tests.

mod common;

use common::*;
use serde_json::{json, Value};

/// Sends `body` on a SIP handle: `ack`, then the event answering it.
async fn request(gw: &Gw, sid: u64, hid: u64, body: Value) -> Value {
    let r = gw
        .post(
            &format!("/{sid}/{hid}"),
            json!({"janus": "message", "transaction": "t", "body": body}),
        )
        .await;
    assert_eq!(r["janus"], "ack", "{r}");
    let (_, ev) = gw.poll(sid, 1).await;
    assert_eq!(ev["transaction"], "t", "{ev}");
    assert_eq!(ev["plugindata"]["plugin"], "janus.plugin.sip", "{ev}");
    ev["plugindata"]["data"].clone()
}

/// The address the tests register as.
const GUEST: &str = "sip:alice@127.0.0.1:5999";

/// A gateway, a session and a handle attached to janus.plugin.sip.
async fn sip_handle() -> (Gw, u64, u64) {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach_plugin(sid, "janus.plugin.sip").await;
    (gw, sid, hid)
}

/// Registers the handle as a guest ([`GUEST`], nothing sent); the event answering it.
async fn register_guest(gw: &Gw, sid: u64, hid: u64) -> Value {
    request(
        gw,
        sid,
        hid,
        json!({"request": "register", "type": "guest", "username": GUEST}),
    )
    .await
}

#[tokio::test]
async fn register_is_validated_before_anything_is_sent() {
    let (gw, sid, hid) = sip_handle().await;
    let user = GUEST;
    let cases = [
        (json!({}), 443),
        (json!({"request": "register", "secret": "x"}), 443),
        (
            json!({"request": "register", "username": "alice", "secret": "x"}),
            446,
        ),
        (
            json!({"request": "register", "username": "sip:@127.0.0.1", "secret": "x"}),
            446,
        ),
        (json!({"request": "register", "username": user}), 443), // no secret
        (
            json!({"request": "register", "username": user, "secret": "x", "register_ttl": 0}),
            444,
        ),
        (
            json!({"request": "register", "username": user, "secret": "x", "proxy": "127.0.0.1"}),
            446,
        ),
        (
            json!({"request": "register", "username": user, "secret": "x", "type": "sometimes"}),
            444,
        ),
        // CR/LF in a custom header would let the caller write any header or body.
        (
            json!({"request": "register", "username": user, "secret": "x",
                "headers": {"X-A": "1\r\nContact: <sip:evil@203.0.113.1>"}}),
            444,
        ),
        (
            json!({"request": "register", "username": user, "secret": "x", "headers": {"Bad Name": "1"}}),
            444,
        ),
        (
            json!({"request": "register", "username": user, "secret": "x", "headers": ["X-A: 1"]}),
            444,
        ),
        (
            json!({"request": "register", "username": user, "secret": "x", "transcode": "no"}),
            444,
        ),
        (json!({"request": "unregister"}), 447),
        (json!({"request": "fly"}), 442),
        (json!({"request": 7}), 444),
    ];
    for (body, code) in cases {
        let ev = request(&gw, sid, hid, body.clone()).await;
        assert_eq!(ev["sip"], "event", "{body}: {ev}");
        assert_eq!(ev["error_code"], code, "{body}: {ev}");
        assert!(ev["error"].as_str().is_some_and(|e| !e.is_empty()), "{ev}");
    }
    // The handle is still there and usable.
    let ev = register_guest(&gw, sid, hid).await;
    assert_eq!(ev["result"]["event"], "registered", "{ev}");
    assert_eq!(ev["result"]["register_sent"], false, "{ev}");
    let ev = register_guest(&gw, sid, hid).await;
    assert_eq!(ev["error_code"], 445, "{ev}");
    let ev = request(&gw, sid, hid, json!({"request": "unregister"})).await;
    assert_eq!(ev["result"]["event"], "unregistered", "{ev}");
}

/// Call requests refused before anything is sent: wrong state (no registration, no
/// call), missing JSEP offer, bad addresses and elements. The handle lives on.
#[tokio::test]
async fn call_requests_are_validated() {
    let (gw, sid, hid) = sip_handle().await;
    let callee = "sip:bob@127.0.0.1:5998";
    // Not registered yet.
    let ev = request(&gw, sid, hid, json!({"request": "call", "uri": callee})).await;
    assert_eq!(ev["error_code"], 447, "{ev}");
    let ev = register_guest(&gw, sid, hid).await;
    assert_eq!(ev["result"]["event"], "registered", "{ev}");
    let cases = [
        (json!({"request": "call"}), 443),
        (json!({"request": "call", "uri": "bob"}), 446),
        (json!({"request": "call", "uri": callee}), 448), // no JSEP offer
        (
            json!({"request": "call", "uri": callee, "transcode": "no"}),
            444,
        ),
        (
            json!({"request": "call", "uri": callee, "headers": {"X-A": "1\r\nVia: x"}}),
            444,
        ),
        // SDES-SRTP: only sdes_optional/sdes_mandatory, only the AES-CM suites.
        (
            json!({"request": "call", "uri": callee, "srtp": "dtls"}),
            444,
        ),
        (json!({"request": "call", "uri": callee, "srtp": true}), 444),
        (
            json!({"request": "call", "uri": callee, "srtp": "sdes_mandatory",
                "srtp_profile": "AEAD_AES_256_GCM"}),
            444,
        ),
        (
            json!({"request": "call", "uri": callee, "srtp": "sdes_mandatory",
                "srtp_profile": "AES_CM_128_HMAC_SHA1_32"}),
            448,
        ),
        (json!({"request": "accept", "srtp": "sdes"}), 444),
        (json!({"request": "accept"}), 447),
        (json!({"request": "progress"}), 447),
        (json!({"request": "decline"}), 447),
        (json!({"request": "decline", "code": 200}), 444),
        (json!({"request": "hangup"}), 447),
        (json!({"request": "hold"}), 447),
        (json!({"request": "hold", "direction": "sideways"}), 444),
        (json!({"request": "dtmf_info", "digit": "5"}), 447),
        (json!({"request": "dtmf_info", "digit": "55"}), 444),
        (json!({"request": "dtmf_info"}), 443),
        (json!({"request": "info", "content": "x"}), 447),
        (json!({"request": "info"}), 443),
        // In a call's dialog (no uri): there is no call.
        (json!({"request": "message", "content": "hi"}), 447),
        (json!({"request": "transfer", "uri": "nowhere"}), 446),
        (json!({"request": "transfer", "uri": callee}), 447),
        (json!({"request": "update"}), 447),
    ];
    for (body, code) in cases {
        let ev = request(&gw, sid, hid, body.clone()).await;
        assert_eq!(ev["error_code"], code, "{body}: {ev}");
    }
}

/// A proxy given by name is looked up; a name that does not resolve fails the
/// registration with 503 (RFC 3261 8.1.3.1) and a reason naming it, and the handle can
/// register again.
#[tokio::test]
async fn an_unresolvable_proxy_fails_with_503() {
    let (gw, sid, hid) = sip_handle().await;
    let body = json!({"request": "register", "username": GUEST,
        "secret": "x", "proxy": "sip:pbx.nowhere.invalid:5070"});
    let ev = request(&gw, sid, hid, body).await;
    assert_eq!(ev["result"]["event"], "registering", "{ev}");
    let (_, ev) = gw.poll(sid, 1).await;
    let data = &ev["plugindata"]["data"]["result"];
    assert_eq!(data["event"], "registration_failed", "{ev}");
    assert_eq!(data["code"], 503, "{ev}");
    assert!(
        data["reason"]
            .as_str()
            .is_some_and(|r| r.contains("pbx.nowhere.invalid")),
        "{ev}"
    );
    let ev = register_guest(&gw, sid, hid).await;
    assert_eq!(ev["result"]["event"], "registered", "{ev}");
}

/// `message` with a `uri` (outside a call) is refused before anything is sent when
/// the handle has no account (447), the address is bad (446), the content is missing
/// (443) or a header would inject (444).
#[tokio::test]
async fn out_of_dialog_messages_are_validated() {
    let (gw, sid, hid) = sip_handle().await;
    let msg = |extra: Value| {
        let mut m = json!({"request": "message", "uri": "sip:bob@127.0.0.1:5999", "content": "hi"});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m
    };
    let ev = request(&gw, sid, hid, msg(json!({}))).await;
    assert_eq!(ev["error_code"], 447, "{ev}");
    let ev = register_guest(&gw, sid, hid).await;
    assert_eq!(ev["result"]["event"], "registered", "{ev}");
    for (extra, code) in [
        (json!({"uri": "bob"}), 446),
        (json!({"content": null}), 443),
        (json!({"headers": {"X-A": "1\r\nVia: x"}}), 444),
        (json!({"content_type": "text/plain\r\nX: y"}), 444),
    ] {
        let mut body = msg(extra.clone());
        body.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        let ev = request(&gw, sid, hid, body).await;
        assert_eq!(ev["error_code"], code, "{extra}: {ev}");
    }
}

/// A valid OPTIONS for the gateway's user agent at `to`.
fn options_request(me: std::net::SocketAddr, to: std::net::SocketAddr, transport: &str) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/{transport} {me};branch=z9hG4bK-probe-{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p{n}\r\nTo: <sip:{to}>\r\n\
         Call-ID: probe-{n}@{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        n = rand::random::<u32>()
    )
}

/// Hostile or broken SIP on the gateway's UDP socket and TCP listener (no Via, no
/// CSeq, lying Content-Length, a 60 KB header, binary junk, a never-ending header
/// over TCP) is dropped or refused; the user agent goes on answering OPTIONS on both.
#[tokio::test]
async fn malformed_sip_is_refused_and_the_agent_lives_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = start(|_| {}).await;
    let sip = gw.running.sip.expect("SIP enabled");
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = udp.local_addr().unwrap();
    let good = options_request(me, sip, "UDP");
    let without = |name: &str| {
        good.split("\r\n")
            .filter(|l| !l.starts_with(name))
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    let huge = good.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nX-Huge: {}\r\n", "a".repeat(60_000)),
        1,
    );
    let bad: Vec<Vec<u8>> = vec![
        without("Via:").into_bytes(),
        without("CSeq:").into_bytes(),
        good.replace("Content-Length: 0", "Content-Length: 99999")
            .into_bytes(),
        good.replace("Content-Length: 0", "Content-Length: -5")
            .into_bytes(),
        good.replace("Content-Length: 0", "Content-Length: lots")
            .into_bytes(),
        good.replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS")
            .into_bytes(),
        huge.into_bytes(),
        b"OPTIONS\r\n\r\n".to_vec(),
        vec![0xff; 1200],
        vec![],
    ];
    for d in &bad {
        udp.send_to(d, sip).await.unwrap();
    }
    // Whatever it answered to those (some get a 400), a good request gets its 200.
    udp.send_to(good.as_bytes(), sip).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    let answered = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        loop {
            let n = udp.recv(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 200") && text.contains(" OPTIONS") {
                return text;
            }
        }
    })
    .await
    .expect("OPTIONS answered over UDP after the junk");
    assert!(answered.contains("CSeq: 1 OPTIONS"), "{answered}");

    // TCP: a header that never ends, then a lying Content-Length, on connections of
    // their own; a fresh connection is then served.
    let mut endless = tokio::net::TcpStream::connect(sip).await.unwrap();
    let line = format!("X-Junk: {}\r\n", "b".repeat(1000));
    let mut head = options_request(endless.local_addr().unwrap(), sip, "TCP");
    head.truncate(head.len() - 4);
    let _ = endless.write_all(head.as_bytes()).await;
    for _ in 0..2000 {
        if endless.write_all(line.as_bytes()).await.is_err() {
            break; // the gateway hung up: also fine
        }
    }
    let mut lying = tokio::net::TcpStream::connect(sip).await.unwrap();
    let lie = options_request(lying.local_addr().unwrap(), sip, "TCP")
        .replace("Content-Length: 0", "Content-Length: 100000000");
    lying.write_all(lie.as_bytes()).await.unwrap();
    let mut fresh = tokio::net::TcpStream::connect(sip).await.unwrap();
    let ok = options_request(fresh.local_addr().unwrap(), sip, "TCP");
    fresh.write_all(ok.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let answered = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = fresh.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "connection closed: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&chunk[..n]);
            if got.windows(4).any(|w| w == b"\r\n\r\n") {
                return String::from_utf8_lossy(&got).into_owned();
            }
        }
    })
    .await
    .expect("OPTIONS answered over TCP after the junk");
    assert!(answered.starts_with("SIP/2.0 200"), "{answered}");
    drop((endless, lying));
}
