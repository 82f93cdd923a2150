//! Cameras that answer badly: malformed SDP, a Content-Length longer than the body,
//! endless 401s, interleaved frames with a bad length, a SETUP never answered. Each
//! gives a clear error on the mountpoint (`info`), retries with backoff, and the
//! gateway carries on.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
enum Misbehaviour {
    MalformedSdp,
    ShortBody,
    Unauthorized,
    BadInterleavedFrame,
    /// Answers DESCRIBE, then never SETUP (the connection stays open).
    StallAfterDescribe,
}

const GOOD_SDP: &str =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f;\
sprop-parameter-sets=Z0LgH9kAoD2wEQAAAwABAAADADyPGDKg,aM48gA==\r\na=control:trackID=0\r\n";

/// Reads one RTSP request; returns its CSeq and method.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if sock.read(&mut byte).await.ok()? == 0 || buf.len() > 16384 {
            return None;
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let method = text.split_whitespace().next()?.to_owned();
    let cseq = text
        .lines()
        .find_map(|l| l.strip_prefix("CSeq:").or_else(|| l.strip_prefix("Cseq:")))?
        .trim()
        .to_owned();
    Some((cseq, method))
}

/// A fake camera on 127.0.0.1 misbehaving as told; counts the connections it gets.
async fn bad_camera(how: Misbehaviour) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                while let Some((cseq, method)) = read_request(&mut sock).await {
                    let reply = match (how, method.as_str()) {
                        (Misbehaviour::Unauthorized, _) => format!(
                            "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"{cseq}abc\"\r\n\r\n"
                        ),
                        (Misbehaviour::MalformedSdp, "DESCRIBE") => {
                            let sdp = "v=0\r\nm=video\r\nthis is not sdp\r\n";
                            format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len())
                        }
                        (Misbehaviour::ShortBody, "DESCRIBE") => {
                            let _ = sock.write_all(format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: 5000\r\n\r\n{GOOD_SDP}").as_bytes()).await;
                            return; // Hang up with 5000 bytes promised.
                        }
                        (Misbehaviour::StallAfterDescribe, "SETUP") => {
                            // Read on, answer nothing, keep the connection open.
                            while read_request(&mut sock).await.is_some() {}
                            return;
                        }
                        (_, "DESCRIBE") => format!(
                            "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: rtsp://127.0.0.1/cam/\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{GOOD_SDP}",
                            GOOD_SDP.len()
                        ),
                        (_, "SETUP") => format!(
                            "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 12345678;timeout=60\r\n\r\n"
                        ),
                        (_, "PLAY") => {
                            let ok = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 12345678\r\n\r\n");
                            let _ = sock.write_all(ok.as_bytes()).await;
                            // An interleaved frame claiming 65535 bytes, then garbage and EOF.
                            let _ = sock.write_all(&[b'$', 0, 0xff, 0xff, 0x80, 0x60, 0, 1]).await;
                            let _ = sock.write_all(&[0xee; 300]).await;
                            return;
                        }
                        (_, other) => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: {other}\r\n\r\n"),
                    };
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, connections)
}

async fn streaming(gw: &Gw, sid: u64, hid: u64, body: Value) -> Value {
    let r = gw
        .post(
            &format!("/{sid}/{hid}"),
            json!({"janus": "message", "transaction": "s", "body": body}),
        )
        .await;
    r["plugindata"]["data"].clone()
}

#[tokio::test]
async fn bad_cameras_give_clear_errors_and_retries() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach_plugin(sid, "janus.plugin.streaming").await;
    let cases = [
        (Misbehaviour::MalformedSdp, 51),
        (Misbehaviour::ShortBody, 52),
        (Misbehaviour::Unauthorized, 53),
        (Misbehaviour::BadInterleavedFrame, 54),
    ];
    let mut cameras = Vec::new();
    for (how, id) in cases {
        let (port, connections) = bad_camera(how).await;
        let r = streaming(&gw, sid, hid, json!({"request": "create", "type": "rtsp", "id": id,
            "url": format!("rtsp://127.0.0.1:{port}/cam"), "rtsp_user": "admin", "rtsp_pwd": "hunter2",
            "rtsp_reconnect_delay": 0.2})).await;
        assert_eq!(r["streaming"], "created", "{r}");
        cameras.push((id, connections));
    }
    // Long enough for a few attempts with backoff (0.2, 0.4, 0.8 s, ...).
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (id, connections) in &cameras {
        let info = streaming(&gw, sid, hid, json!({"request": "info", "id": id})).await;
        let rtsp = &info["info"]["rtsp"];
        println!(
            "mountpoint {id}: {} connections, {rtsp}",
            connections.load(Ordering::Relaxed)
        );
        assert_eq!(rtsp["connected"], false, "{info}");
        let error = rtsp["last_error"].as_str().unwrap();
        assert!(!error.is_empty(), "a clear error: {info}");
        assert!(
            !info.to_string().contains("hunter2"),
            "no password anywhere: {info}"
        );
        assert!(rtsp["reconnects"].as_u64().unwrap() >= 2, "retried: {info}");
        let attempts = connections.load(Ordering::Relaxed);
        assert!(
            (2..=12).contains(&attempts),
            "retries with backoff, not a busy loop: {attempts}"
        );
    }
    // The gateway carries on.
    let r = streaming(&gw, sid, hid, json!({"request": "list"})).await;
    assert_eq!(r["list"].as_array().unwrap().len(), 4, "{r}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_camera_that_stalls_after_describe_is_reconnected() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach_plugin(sid, "janus.plugin.streaming").await;
    let (port, connections) = bad_camera(Misbehaviour::StallAfterDescribe).await;
    let r = streaming(
        &gw,
        sid,
        hid,
        json!({"request": "create", "type": "rtsp", "id": 55,
        "url": format!("rtsp://127.0.0.1:{port}/cam"), "rtsp_reconnect_delay": 0.2}),
    )
    .await;
    assert_eq!(r["streaming"], "created", "{r}");
    // SETUP times out after 5 s: the supervisor says why and connects again.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let info = streaming(&gw, sid, hid, json!({"request": "info", "id": 55})).await;
    println!(
        "{} connections, {}",
        connections.load(Ordering::Relaxed),
        info["info"]["rtsp"]
    );
    assert_eq!(
        info["info"]["rtsp"]["last_error"], "SETUP timed out",
        "{info}"
    );
    assert!(
        connections.load(Ordering::Relaxed) >= 2,
        "reconnected: {info}"
    );
    gw.running.shutdown().await;
}
