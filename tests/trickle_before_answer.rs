//! Trickle before the SDP is queued and acked (single, array, completed), then
//! applied when the offer creates the PeerConnection.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn candidates_before_the_offer_are_queued_then_used() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach(sid).await;
    let h = format!("/{sid}/{hid}");
    let cand = |port: u16| json!({"candidate": format!("candidate:1 1 udp 2122260223 127.0.0.1 {port} typ host"), "sdpMid": "0", "sdpMLineIndex": 0});
    let r = gw
        .post(
            &h,
            json!({"janus": "trickle", "transaction": "t1", "candidate": cand(50000)}),
        )
        .await;
    assert_eq!(
        r,
        json!({"janus": "ack", "session_id": sid, "transaction": "t1"})
    );
    let r = gw.post(&h, json!({"janus": "trickle", "transaction": "t2", "candidates": [cand(50001), cand(50002)]})).await;
    assert_eq!(r["janus"], "ack");
    // mDNS names cannot be used; Janus acks them anyway.
    let r = gw.post(&h, json!({"janus": "trickle", "transaction": "t3", "candidate": {"candidate": "candidate:2 1 udp 2122260223 3f1e.local 50003 typ host", "sdpMid": "0"}})).await;
    assert_eq!(r["janus"], "ack");
    let info = gw
        .admin_post(
            &h,
            json!({"janus": "handle_info", "admin_secret": "janusoverlord", "transaction": "i"}),
        )
        .await;
    assert_eq!(info["info"]["pending_candidates"], 3, "{info}");
    let r = gw
        .post(
            &h,
            json!({"janus": "trickle", "transaction": "t4", "candidate": {"completed": true}}),
        )
        .await;
    assert_eq!(r["janus"], "ack");
    let info = gw
        .admin_post(
            &h,
            json!({"janus": "handle_info", "admin_secret": "janusoverlord", "transaction": "i"}),
        )
        .await;
    assert_eq!(info["info"]["flags"]["trickle-completed"], true);

    // The offer creates the PeerConnection and takes the queued candidates.
    let r = gw
        .post(
            &h,
            json!({"janus": "message", "transaction": "o", "body": {"audio": true, "video": true},
                               "jsep": {"type": "offer", "sdp": chromium_offer()}}),
        )
        .await;
    assert_eq!(r["janus"], "ack");
    let (_, ev) = gw.poll(sid, 1).await;
    assert_eq!(ev["transaction"], "o");
    assert_eq!(ev["plugindata"]["data"]["result"], "ok", "{ev}");
    assert_eq!(ev["jsep"]["type"], "answer");
    let sdp = ev["jsep"]["sdp"].as_str().unwrap();
    assert!(sdp.starts_with("v=0"), "{sdp}");
    assert!(
        sdp.contains("a=candidate:") && sdp.contains("127.0.0.1"),
        "answer carries our host candidate: {sdp}"
    );
    let info = gw
        .admin_post(
            &h,
            json!({"janus": "handle_info", "admin_secret": "janusoverlord", "transaction": "i"}),
        )
        .await;
    assert_eq!(info["info"]["pending_candidates"], 0);
    assert_eq!(info["info"]["flags"]["got-offer"], true);
    assert!(info["info"]["webrtc"]["ice"]["state"].is_string(), "{info}");

    // A trickle after the PeerConnection exists is acked too; hangup sends the hangup event.
    let r = gw
        .post(
            &h,
            json!({"janus": "trickle", "transaction": "t5", "candidate": cand(50004)}),
        )
        .await;
    assert_eq!(r["janus"], "ack");
    gw.post(&h, json!({"janus": "hangup", "transaction": "h"}))
        .await;
    let (_, evs) = gw.poll(sid, 10).await;
    let evs = evs.as_array().unwrap();
    assert!(
        evs.iter()
            .any(|e| e["janus"] == "hangup" && e["reason"] == "Janus API"),
        "{evs:?}"
    );
    assert!(
        evs.iter()
            .any(|e| e["plugindata"]["data"]["result"] == "done"),
        "{evs:?}"
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn null_candidate_means_completed_and_bad_shapes_are_refused() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach(sid).await;
    let h = format!("/{sid}/{hid}");
    let r = gw
        .post(
            &h,
            json!({"janus": "trickle", "transaction": "t", "candidate": null}),
        )
        .await;
    assert_eq!(r["janus"], "ack");
    let r = gw.post(&h, json!({"janus": "trickle", "transaction": "t", "candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host"})).await;
    assert_eq!(error_code(&r), 467);
    let r = gw
        .post(
            &h,
            json!({"janus": "trickle", "transaction": "t", "candidates": {"a": 1}}),
        )
        .await;
    assert_eq!(error_code(&r), 467);
    gw.running.shutdown().await;
}
