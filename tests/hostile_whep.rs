//! Hostile WHEP players and WHIP publishers, as a stranger would try them (issue 26):
//! what the gateway tells them back.

mod common;

use common::*;
use serde_json::json;

/// Offers no WebRTC stack takes, each as an attacker would send it.
fn bad_offers() -> Vec<(&'static str, String)> {
    let good = chromium_offer();
    vec![
        ("a NUL byte", good.replacen("a=mid:0", "a=mid:\0", 1)),
        (
            "a payload type without a=rtpmap",
            good.replacen("a=rtpmap:111 opus/48000/2\r\n", "", 1),
        ),
        (
            "60 KB of one line",
            format!("v=0\r\n{}", "x".repeat(60_000)),
        ),
        ("CR alone", good.replace("\r\n", "\r")),
        (
            "multibyte in a payload type",
            good.replacen("a=rtpmap:111 opus", "a=rtpmap:1€1 opus", 1),
        ),
        ("not an SDP", "{\"janus\": \"create\"}".to_owned()),
    ]
}

async fn post_sdp(gw: &Gw, path: &str, bearer: &str, body: &str) -> (u16, String) {
    let url = format!("http://{}{path}", gw.running.http.unwrap());
    let r = gw
        .client
        .post(url)
        .header("Content-Type", "application/sdp")
        .bearer_auth(bearer)
        .body(body.to_owned())
        .send()
        .await
        .expect("POST");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Whether a refusal shows anything of a library's insides: a parser's position
/// (`PointerOffset(0x7f…)`, a heap address), a hex address, a Debug dump.
fn leaks(text: &str) -> bool {
    text.contains("PointerOffset") || text.contains("0x") || text.contains("Some(")
}

#[tokio::test]
async fn a_bad_offer_is_refused_in_our_words() {
    let gw = start(|c| {
        c.streaming.mountpoints = cardea::Config::default().streaming.mountpoints;
    })
    .await;
    let sid = gw.create_session().await;
    let hid = gw.attach_plugin(sid, "janus.plugin.streaming").await;
    let created = gw
        .post(
            &format!("/{sid}/{hid}"),
            json!({"janus": "message", "transaction": "c", "body": {
                "request": "create", "type": "webrtc", "id": 7, "secret": "pub",
                "media": [{"type": "video", "mid": "v", "pt": 96, "codec": "h264"}]}}),
        )
        .await;
    assert_eq!(
        created["plugindata"]["data"]["streaming"], "created",
        "{created}"
    );
    for (what, offer) in bad_offers() {
        for (path, bearer) in [("/whep/1", ""), ("/whip/7", "pub")] {
            let (status, body) = post_sdp(&gw, path, bearer, &offer).await;
            println!("{what} to {path}: {status} {body}");
            assert!(
                status == 400 || status == 413,
                "{what} to {path}: {status} {body}"
            );
            assert!(!leaks(&body), "{what} to {path}: {body}");
            assert!(
                body.len() <= 300 && !body.contains(['\0', '\r']),
                "{what}: {body}"
            );
        }
        // The same offer in a Janus `watch` (the viewer's own offer): error 465, our words.
        let h = gw.attach_plugin(sid, "janus.plugin.streaming").await;
        let r = gw
            .post(
                &format!("/{sid}/{h}"),
                json!({"janus": "message", "transaction": "w",
                       "body": {"request": "watch", "id": 1},
                       "jsep": {"type": "offer", "sdp": offer}}),
            )
            .await;
        // Refused at once (an SDP the API cannot take), or answered by an event.
        let text = if r["janus"] == "error" {
            r.to_string()
        } else {
            gw.poll(sid, 10).await.1.to_string()
        };
        println!("{what} in a watch: {text}");
        assert!(text.contains("error"), "{text}");
        assert!(!leaks(&text), "{what}: {text}");
    }
    // Nothing was held for any of them.
    assert_eq!(gw.running.hub.with_gateway(|g, _| g.session_count()), 1);
}
