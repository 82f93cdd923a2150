//! What an attacker sends, and what it gets: each attack is refused with the exact Janus
//! error code, and afterwards the gateway still answers a fresh create/attach/destroy.
//! (Media flowing through an established echo session while requests panic is shown in
//! tests/echo_in_process.rs; SIP forgeries on the wire in interop-tests.)

mod common;

use common::*;
use serde_json::{json, Value};

/// Sends a plugin message; the synchronous answer, or the event for an asynchronous one.
async fn message(gw: &Gw, sid: u64, hid: u64, body: Value) -> Value {
    let r = gw
        .post(
            &format!("/{sid}/{hid}"),
            json!({"janus": "message", "transaction": "m", "body": body}),
        )
        .await;
    match r["janus"].as_str() {
        Some("success") => r["plugindata"]["data"].clone(),
        Some("ack") => {
            let (_, ev) = gw.poll(sid, 1).await;
            ev["plugindata"]["data"].clone()
        }
        _ => r,
    }
}

/// The gateway is still whole: a new session, a handle on every plugin, destroyed.
async fn still_serves(gw: &Gw) {
    let sid = gw.create_session().await;
    for plugin in [
        "janus.plugin.echotest",
        "janus.plugin.streaming",
        "janus.plugin.sip",
    ] {
        gw.attach_plugin(sid, plugin).await;
    }
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "destroy", "transaction": "d"}),
        )
        .await;
    assert_eq!(r["janus"], "success", "{r}");
}

/// The strings every field gets: line breaks, multibyte characters, NUL, 60 KB.
fn hostile_strings() -> Vec<String> {
    vec![
        "é".into(),
        "日本語🎥".into(),
        "a\r\nVia: SIP/2.0/UDP 203.0.113.1".into(),
        "\0".into(),
        "x".repeat(60_000),
        "sip:bob@127.0.0.1?Route=%3Csip:evil%3E".into(),
        "<sip:evil@203.0.113.1>".into(),
    ]
}

/// Numbers no field should take.
fn hostile_numbers() -> Vec<Value> {
    vec![
        json!(-1),
        json!(u64::MAX),
        json!(1e300),
        json!(-1e300),
        json!(0),
        json!(4294967296u64),
        json!("12"),
    ]
}

#[tokio::test]
async fn a_multibyte_media_type_is_refused_and_the_gateway_lives_on() {
    // Once, this one request poisoned the gateway's lock and ended the process (status 0).
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach_plugin(sid, "janus.plugin.streaming").await;
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "create", "type": "rtsp", "url": "rtsp://127.0.0.1:1/",
               "media": [{"type": "é", "codec": "h264"}]}),
    )
    .await;
    assert_eq!(r["error_code"], 454, "{r}");
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "create", "type": "rtp",
               "media": [{"type": "video", "mid": "é", "pt": 96, "codec": "vp8"}]}),
    )
    .await;
    assert_eq!(r["error_code"], 454, "{r}");
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_thousand_media_entries_are_refused_at_once() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach_plugin(sid, "janus.plugin.streaming").await;
    let media: Vec<Value> = (0..1000)
        .map(|i| json!({"type": "video", "mid": format!("v{i}"), "codec": "h264"}))
        .collect();
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "create", "type": "rtsp", "url": "rtsp://127.0.0.1:1/", "media": media}),
    )
    .await;
    assert_eq!(r["error_code"], 454, "{r}");
    assert!(r["error"].as_str().unwrap().contains("1 to 16"), "{r}");
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn mountpoint_administration_is_off_by_default() {
    let gw = start(|c| {
        c.streaming.open_admin = false;
        c.streaming.mountpoints = vec![
            cardea::config::MountpointConfig {
                id: 1,
                kind: "demo".into(),
                ..Default::default()
            },
            cardea::config::MountpointConfig {
                id: 2,
                kind: "demo".into(),
                secret: Some("owner".into()),
                pin: Some("1234".into()),
                ..Default::default()
            },
        ];
    })
    .await;
    let sid = gw.create_session().await;
    let hid = gw.attach_plugin(sid, "janus.plugin.streaming").await;
    let r = message(&gw, sid, hid, json!({"request": "create", "type": "demo"})).await;
    assert_eq!(r["error_code"], 457, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("open_admin"),
        "says how: {r}"
    );
    for request in ["destroy", "enable", "disable", "kick_all", "edit"] {
        let r = message(&gw, sid, hid, json!({"request": request, "id": 1})).await;
        assert_eq!(
            r["error_code"], 457,
            "{request} on a mountpoint without secret: {r}"
        );
        let r = message(
            &gw,
            sid,
            hid,
            json!({"request": request, "id": 2, "secret": "nope"}),
        )
        .await;
        assert_eq!(r["error_code"], 457, "{request} with a wrong secret: {r}");
    }
    // Rewriting the operator's file takes more than the mountpoint's secret.
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "edit", "id": 2, "secret": "owner", "permanent": true}),
    )
    .await;
    assert_eq!(r["error_code"], 457, "{r}");
    // The owner's secret still administers its own mountpoint.
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "edit", "id": 2, "secret": "owner", "new_description": "front"}),
    )
    .await;
    assert_eq!(r["streaming"], "edited", "{r}");
    // Nobody reads a pin back, not even the owner.
    for body in [
        json!({"request": "info", "id": 2}),
        json!({"request": "info", "id": 2, "secret": "owner"}),
    ] {
        let r = message(&gw, sid, hid, body).await;
        assert_eq!(r["streaming"], "info", "{r}");
        assert!(!r.to_string().contains("1234"), "pin shown: {r}");
    }
    let r = message(&gw, sid, hid, json!({"request": "list"})).await;
    assert_eq!(r["list"].as_array().unwrap().len(), 2, "{r}");
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn the_admin_key_opens_administration() {
    let gw = start(|c| {
        c.streaming.open_admin = false;
        c.streaming.admin_key = "k3y".into();
        c.streaming.rtsp_allow = vec!["camera.lan".into()];
        c.streaming.max_api_mountpoints = 2;
    })
    .await;
    let sid = gw.create_session().await;
    let hid = gw.attach_plugin(sid, "janus.plugin.streaming").await;
    let r = message(&gw, sid, hid, json!({"request": "create", "type": "demo"})).await;
    assert_eq!(r["error_code"], 453, "{r}");
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "create", "type": "demo", "admin_key": "k3Y"}),
    )
    .await;
    assert_eq!(r["error_code"], 457, "{r}");
    // Only the hosts the operator allows (no SSRF, no port scan through the gateway).
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "create", "type": "rtsp", "admin_key": "k3y", "url": "rtsp://127.0.0.1:22/"}),
    )
    .await;
    assert_eq!(r["error_code"], 454, "{r}");
    for id in [10, 11] {
        let r = message(
            &gw,
            sid,
            hid,
            json!({"request": "create", "type": "demo", "id": id, "admin_key": "k3y"}),
        )
        .await;
        assert_eq!(r["streaming"], "created", "{r}");
    }
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "create", "type": "demo", "id": 12, "admin_key": "k3y"}),
    )
    .await;
    assert_eq!(r["error_code"], 456, "over max_api_mountpoints: {r}");
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "destroy", "id": 10, "admin_key": "k3y"}),
    )
    .await;
    assert_eq!(r["streaming"], "destroyed", "{r}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn hostile_strings_and_numbers_in_every_plugin_request() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let echo = gw.attach_plugin(sid, "janus.plugin.echotest").await;
    let streaming = gw.attach_plugin(sid, "janus.plugin.streaming").await;
    let sip = gw.attach_plugin(sid, "janus.plugin.sip").await;
    let requests: Vec<(u64, Value)> = vec![
        (
            echo,
            json!({"audio": true, "video": true, "bitrate": 0, "substream": 0, "temporal": 0,
            "videocodec": "", "filename": ""}),
        ),
        (
            streaming,
            json!({"request": "create", "type": "rtp", "id": 77, "name": "", "description": "", "metadata": "", "secret": "", "pin": "",
            "media": [{"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": "vp8", "fmtp": "", "label": "", "msid": ""}]}),
        ),
        (
            streaming,
            json!({"request": "create", "type": "rtsp", "id": 78, "url": "rtsp://127.0.0.1:1/", "rtsp_user": "", "rtsp_pwd": "",
            "media": [{"type": "video", "mid": "v", "codec": "h264", "fmtp": "", "label": ""}]}),
        ),
        (
            streaming,
            json!({"request": "info", "id": 77, "secret": ""}),
        ),
        (
            streaming,
            json!({"request": "edit", "id": 77, "new_description": "", "new_metadata": "", "new_secret": "", "new_pin": ""}),
        ),
        (
            streaming,
            json!({"request": "watch", "id": 77, "pin": "", "media": ["v"]}),
        ),
        (
            streaming,
            json!({"request": "configure", "streams": [{"mid": "", "send": true}]}),
        ),
        (streaming, json!({"request": "switch", "id": 77})),
        (
            sip,
            json!({"request": "register", "username": "", "secret": "", "authuser": "", "display_name": "", "proxy": "", "outbound_proxy": "",
            "headers": {"X-A": ""}}),
        ),
        (
            sip,
            json!({"request": "register", "type": "guest", "username": "", "display_name": ""}),
        ),
        (
            sip,
            json!({"request": "call", "uri": "", "headers": {"X-B": ""}}),
        ),
        (
            sip,
            json!({"request": "message", "uri": "", "content_type": "", "content": ""}),
        ),
        (sip, json!({"request": "dtmf_info", "digit": ""})),
        (sip, json!({"request": "transfer", "uri": ""})),
    ];
    let mut answered = 0;
    for (hid, template) in &requests {
        // Each field in turn holds each hostile string, then each hostile number.
        let fields = scalar_fields(template);
        for path in &fields {
            for bad in hostile_strings()
                .into_iter()
                .map(Value::String)
                .chain(hostile_numbers())
            {
                let mut body = template.clone();
                set(&mut body, path, bad);
                let r = message(&gw, sid, *hid, body).await;
                assert!(
                    r.get("error_code").is_some()
                        || r.get("streaming").is_some()
                        || r.get("echotest").is_some()
                        || r.get("sip").is_some()
                        || r["janus"] == "error",
                    "{path:?}: {r}"
                );
                assert_ne!(r["janus"], "error", "no core error for a plugin field: {r}");
                answered += 1;
            }
        }
    }
    println!("{answered} hostile requests answered");
    assert!(answered > 300);
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

/// The paths of every string, number and boolean in `v` (object keys, array indexes).
fn scalar_fields(v: &Value) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    fn walk(v: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
        match v {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => out.push(path.clone()),
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "request" || k == "type" {
                        continue;
                    }
                    path.push(json!(k));
                    walk(x, path, out);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(json!(i));
                    walk(x, path, out);
                    path.pop();
                }
            }
            Value::Null => {}
        }
    }
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn set(v: &mut Value, path: &[Value], new: Value) {
    let mut at = v;
    for p in path {
        at = match p {
            Value::String(k) => &mut at[k.as_str()],
            _ => &mut at[p.as_u64().unwrap() as usize],
        };
    }
    *at = new;
}

#[tokio::test]
async fn absurd_ids_get_the_janus_codes() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach(sid).await;
    for bad in ["18446744073709551615", "-1", "1e300", "é", "0"] {
        let (_, r) = gw
            .post_raw(
                &format!("{}/{bad}", gw.base),
                &json!({"janus": "keepalive", "transaction": "k"}).to_string(),
            )
            .await;
        assert_eq!(error_code(&r), 458, "session {bad}: {r}");
        let (_, r) = gw
            .post_raw(
                &format!("{}/{sid}/{bad}", gw.base),
                &json!({"janus": "message", "transaction": "k", "body": {}}).to_string(),
            )
            .await;
        assert_eq!(error_code(&r), 459, "handle {bad}: {r}");
    }
    let absurd = [
        json!(-1),
        json!(u64::MAX),
        json!(1e300),
        json!(0),
        json!(1u64 << 53),
        json!("12"),
    ];
    for id in absurd {
        let r = gw
            .post("", json!({"janus": "create", "transaction": "c", "id": id}))
            .await;
        assert_eq!(error_code(&r), 467, "create with id {id}: {r}");
    }
    let r = gw
        .post(
            &format!("/{sid}/{hid}"),
            json!({"janus": "detach", "transaction": "d"}),
        )
        .await;
    assert_eq!(r["janus"], "success", "{r}");
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn five_thousand_trickled_candidates_stop_at_the_limit() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach(sid).await;
    let candidates: Vec<Value> = (0..5000)
        .map(|i| {
            json!({"sdpMid": "0", "sdpMLineIndex": 0, "candidate":
                format!("candidate:{i} 1 udp 2122260223 127.0.0.1 {} typ host", 1024 + i)})
        })
        .collect();
    // In batches under the 64 KB body cap: every batch is refused at the limit.
    for batch in candidates.chunks(500) {
        let r = gw
            .post(
                &format!("/{sid}/{hid}"),
                json!({"janus": "trickle", "transaction": "t", "candidates": batch}),
            )
            .await;
        assert_eq!(error_code(&r), 490, "{r}");
        assert!(
            r["error"]["reason"].as_str().unwrap().contains("limit 64"),
            "{r}"
        );
    }
    let r = gw
        .post(
            &format!("/{sid}/{hid}"),
            json!({"janus": "trickle", "transaction": "t", "candidate":
                {"sdpMid": "0", "sdpMLineIndex": 0, "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}}),
        )
        .await;
    assert_eq!(error_code(&r), 490, "still over the limit: {r}");
    // A hangup starts a new PeerConnection's count.
    gw.post(
        &format!("/{sid}/{hid}"),
        json!({"janus": "hangup", "transaction": "h"}),
    )
    .await;
    let r = gw
        .post(
            &format!("/{sid}/{hid}"),
            json!({"janus": "trickle", "transaction": "t", "candidate":
                {"sdpMid": "0", "sdpMLineIndex": 0, "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}}),
        )
        .await;
    assert_eq!(r["janus"], "ack", "{r}");
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn sip_forgeries_are_refused_naming_the_field() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach_plugin(sid, "janus.plugin.sip").await;
    // The registrar every refused request would have gone to: nothing may reach it.
    let registrar = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let user = format!("sip:alice@{}", registrar.local_addr().unwrap());
    let user = user.as_str();
    let forged = "sip:bob@127.0.0.1\r\nFrom: <sip:ceo@bank.example>";
    // (field, value, code, what the error names): one field of a register per case.
    let headers_17: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("X-{i}"), json!("1"))).collect();
    let cases = [
        ("username", json!(forged), 446, "username"),
        (
            "username",
            json!("sip:bob@127.0.0.1?Route=<sip:evil>"),
            446,
            "username",
        ),
        ("username", json!("<sip:bob@127.0.0.1>"), 446, "username"),
        ("proxy", json!("sip:127.0.0.1?X=1"), 446, "proxy"),
        (
            "outbound_proxy",
            json!("sip:127.0.0.1\n"),
            446,
            "outbound_proxy",
        ),
        (
            "display_name",
            json!("Bob\"<sip:ceo@bank>"),
            444,
            "display_name",
        ),
        ("display_name", json!("Bob\r\nX: 1"), 444, "display_name"),
        ("authuser", json!("a\"b"), 444, "authuser"),
        ("secret", json!("x\r\n"), 444, "secret"),
        (
            "headers",
            json!({"Via": "SIP/2.0/UDP 203.0.113.1"}),
            444,
            "Via",
        ),
        (
            "headers",
            json!({"contact": "<sip:evil@203.0.113.1>"}),
            444,
            "contact",
        ),
        ("headers", json!({"l": "0"}), 444, "'l'"),
        ("headers", Value::Object(headers_17), 444, "16"),
    ];
    for (field, value, code, named) in cases {
        let mut body = json!({"request": "register", "username": user, "secret": "x"});
        body[field] = value;
        let r = message(&gw, sid, hid, body.clone()).await;
        assert_eq!(r["error_code"], code, "{body}: {r}");
        assert!(r["error"].as_str().unwrap().contains(named), "{body}: {r}");
    }
    let mut buf = [0u8; 2048];
    let heard = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        registrar.recv_from(&mut buf),
    )
    .await;
    assert!(heard.is_err(), "a refused request reached the wire");
    // A guest registration (nothing sent) then calls with forged addresses.
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "register", "type": "guest", "username": user}),
    )
    .await;
    assert_eq!(r["result"]["event"], "registered", "{r}");
    for (body, code) in [
        (json!({"request": "call", "uri": forged}), 446),
        (
            json!({"request": "call", "uri": "sip:bob@127.0.0.1?Call-ID=1"}),
            446,
        ),
        (
            json!({"request": "message", "uri": "sip:bob@127.0.0.1", "content": "hi", "content_type": "text/plain\r\nX: 1"}),
            444,
        ),
    ] {
        let r = message(&gw, sid, hid, body.clone()).await;
        assert_eq!(r["error_code"], code, "{body}: {r}");
    }
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn sessions_handles_and_queued_events_are_bounded() {
    let gw = start(|c| {
        c.general.max_sessions_per_client = 3;
        c.general.max_handles_per_session = 3;
        c.general.max_queued_events = 5;
    })
    .await;
    let mut sids = Vec::new();
    for _ in 0..3 {
        sids.push(gw.create_session().await);
    }
    let r = gw
        .post("", json!({"janus": "create", "transaction": "c"}))
        .await;
    assert_eq!(error_code(&r), 472, "fourth session from one address: {r}");
    // Destroying one frees a place.
    gw.post(
        &format!("/{}", sids[0]),
        json!({"janus": "destroy", "transaction": "d"}),
    )
    .await;
    let sid = gw.create_session().await;
    for _ in 0..3 {
        gw.attach(sid).await;
    }
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "attach", "plugin": "janus.plugin.echotest", "transaction": "a"}),
        )
        .await;
    assert_eq!(error_code(&r), 461, "fourth handle: {r}");
    // A client that never polls: each detach queues an event; only the newest 5 stay.
    let other = sids[1];
    let mut handles = Vec::new();
    for _ in 0..2 {
        handles.push(gw.attach(other).await);
    }
    for (i, hid) in handles.iter().enumerate() {
        for _ in 0..4 {
            gw.post(
                &format!("/{other}/{hid}"),
                json!({"janus": "message", "transaction": format!("m{i}"), "body": {"audio": true}}),
            )
            .await;
        }
    }
    let (_, events) = gw.poll(other, 100).await;
    assert_eq!(events.as_array().unwrap().len(), 5, "{events}");
    let status = gw
        .admin_post(
            "",
            json!({"janus": "get_status", "transaction": "s", "admin_secret": "janusoverlord"}),
        )
        .await;
    assert_eq!(status["status"]["dropped_events"], 3, "{status}");
    gw.post(
        &format!("/{sid}"),
        json!({"janus": "destroy", "transaction": "d"}),
    )
    .await;
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_websocket_client_that_never_reads_is_disconnected() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let gw = start(|c| {
        c.websocket.max_queued_messages = 50;
        c.websocket.send_timeout_seconds = 2;
    })
    .await;
    let mut req = gw.ws.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "janus-protocol".parse().unwrap());
    // A small receive window: its replies fill the kernel buffers quickly.
    let (mut stream, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    stream
        .send(Message::Text(
            json!({"janus": "create", "transaction": "c"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    // It sends pings with 50 KB transactions and never reads a reply.
    let big = "p".repeat(50_000);
    let mut sent = 0;
    for _ in 0..2_000 {
        let msg = json!({"janus": "ping", "transaction": big}).to_string();
        match tokio::time::timeout(
            std::time::Duration::from_millis(200),
            stream.send(Message::Text(msg.into())),
        )
        .await
        {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    println!("sent {sent} pings without reading");
    // The gateway gave up on it: the session it created is gone, everyone else is served.
    assert!(
        eventually(|| gw.running.hub.with_gateway(|g, _| g.session_count()) == 0).await,
        "the non-reading client's session ends"
    );
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_answers_no_cross_origin_page() {
    let gw = start(|_| {}).await;
    let r = gw
        .client
        .post(&gw.admin)
        .header("Origin", "http://evil.example")
        .body(json!({"janus": "ping", "transaction": "p"}).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // The main API keeps its CORS for janus.js pages of other origins.
    let r = gw
        .client
        .post(&gw.base)
        .header("Origin", "http://pages.example")
        .body(json!({"janus": "ping", "transaction": "p"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    // A browser page of another origin cannot open the admin WebSocket.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = gw.admin_ws.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "janus-admin-protocol".parse().unwrap(),
    );
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    let e = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn slow_loris_connections_neither_starve_nor_outlive_their_timeout() {
    use tokio::io::AsyncWriteExt;
    let gw = start(|c| c.http.header_read_timeout_seconds = 2).await;
    let addr = gw.running.http.unwrap();
    // 200 connections that send half a header and a byte now and then.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /janus HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // A normal client is served meanwhile, promptly.
    #[allow(clippy::disallowed_methods)] // measuring a real network wait
    let t = std::time::Instant::now();
    still_serves(&gw).await;
    let served_in = t.elapsed();
    println!("served in {served_in:?} beside 200 slow-loris connections");
    assert!(
        served_in < std::time::Duration::from_secs(2),
        "{served_in:?}"
    );
    // Dribbling keeps none of them alive past the header timeout: each is closed.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let mut closed = 0;
    for s in &mut slow {
        let _ = s.write_all(b"a").await;
        let mut buf = [0u8; 256];
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout(std::time::Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => closed += 1, // EOF, a 408, or a reset
            Err(_) => {}
        }
    }
    assert_eq!(
        closed, 200,
        "every slow connection closed after the header timeout"
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once() {
    use tokio::io::AsyncReadExt;
    let gw = start(|c| c.http.max_connections_per_client = 20).await;
    let addr = gw.running.http.unwrap();
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(2), extra.read(&mut buf))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "the 21st connection from one address is closed");
    // Places come back when connections close (give the server a moment to see it).
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    still_serves(&gw).await;
    gw.running.shutdown().await;
}

/// An RTP packet of VP8 (pt 96) with `ssrc` and `seq`.
fn vp8_rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0x10, 0, 0x9d, 0x01, 0x2a, 0, 0, 0]);
    p
}

#[tokio::test]
async fn nobody_injects_into_a_live_rtp_mountpoint() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach_plugin(sid, "janus.plugin.streaming").await;
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "create", "type": "rtp", "id": 40,
               "media": [{"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": "vp8"}]}),
    )
    .await;
    let port = r["stream"]["ports"][0]["port"].as_u64().unwrap() as u16;
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let camera = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let attacker = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let same_host = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for seq in 0..20u16 {
        camera
            .send_to(&vp8_rtp(0xCA3E_0001, seq), target)
            .await
            .unwrap();
        // The attacker copies the camera's SSRC, uses its own, or the camera's host.
        attacker
            .send_to(&vp8_rtp(0xCA3E_0001, 100 + seq), target)
            .await
            .unwrap();
        attacker
            .send_to(&vp8_rtp(0xBAD, 200 + seq), target)
            .await
            .unwrap();
        same_host
            .send_to(&vp8_rtp(0xCA3E_0001, 300 + seq), target)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let r = source_counts(&gw, sid, hid, 40, 80).await;
    assert_eq!(r["info"]["source"]["packets"], 20, "only the camera's: {r}");
    assert_eq!(r["info"]["source"]["dropped_foreign"], 60, "{r}");

    // source_ip: a mountpoint fed from 127.0.0.2 only.
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "create", "type": "rtp", "id": 41, "source_ip": "127.0.0.2",
               "media": [{"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": "vp8"}]}),
    )
    .await;
    let port = r["stream"]["ports"][0]["port"].as_u64().unwrap() as u16;
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for seq in 0..10u16 {
        camera.send_to(&vp8_rtp(7, seq), target).await.unwrap();
        attacker.send_to(&vp8_rtp(8, seq), target).await.unwrap();
    }
    let r = source_counts(&gw, sid, hid, 41, 20).await;
    assert_eq!(r["info"]["source"]["packets"], 10, "{r}");
    assert_eq!(r["info"]["source"]["dropped_foreign"], 10, "{r}");
    let r = message(
        &gw,
        sid,
        hid,
        json!({"request": "create", "type": "rtp", "source_ip": "camera.lan",
               "media": [{"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": "vp8"}]}),
    )
    .await;
    assert_eq!(r["error_code"], 454, "{r}");
    gw.running.shutdown().await;
}

/// Mountpoint `id`'s `info` once its source has counted `total` packets, taken or
/// dropped as foreign (or after a second).
async fn source_counts(gw: &Gw, sid: u64, hid: u64, id: u64, total: u64) -> Value {
    let mut r = Value::Null;
    for _ in 0..50 {
        r = message(gw, sid, hid, json!({"request": "info", "id": id})).await;
        let count = |k: &str| r["info"]["source"][k].as_u64().unwrap_or(0);
        if count("packets") + count("dropped_foreign") >= total {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    r
}
