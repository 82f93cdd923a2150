//! WebSocket ownership: events pushed on the socket, claim moves them, closing
//! the owner socket ends its sessions unless claimed elsewhere.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn events_follow_the_claimer_and_close_ends_unclaimed_sessions() {
    let gw = start(|_| {}).await;
    let mut a = ws_connect(&gw.ws, "janus-protocol").await;
    let sid = a
        .request(json!({"janus": "create", "transaction": "c"}))
        .await["data"]["id"]
        .as_u64()
        .unwrap();
    let r = a.request(json!({"janus": "attach", "session_id": sid, "plugin": "janus.plugin.echotest", "transaction": "at"})).await;
    let hid = r["data"]["id"].as_u64().unwrap();

    // An async message on A: the event is pushed on A.
    a.send(json!({"janus": "message", "session_id": sid, "handle_id": hid, "transaction": "m1", "body": {"audio": true}})).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(a.recv().await);
    }
    assert!(
        got.iter()
            .any(|m| m["janus"] == "ack" && m["transaction"] == "m1"),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|m| m["janus"] == "event" && m["transaction"] == "m1"),
        "{got:?}"
    );

    // A long poll on a WebSocket-owned session is 404.
    assert_eq!(gw.poll(sid, 1).await.0, 404);

    // B claims: later events go to B, not A.
    let mut b = ws_connect(&gw.ws, "janus-protocol").await;
    let r = b
        .request(json!({"janus": "claim", "session_id": sid, "transaction": "cl"}))
        .await;
    assert_eq!(
        r,
        json!({"janus": "success", "session_id": sid, "transaction": "cl"})
    );
    let r = a.request(json!({"janus": "message", "session_id": sid, "handle_id": hid, "transaction": "m2", "body": {"video": true}})).await;
    assert_eq!(r["janus"], "ack");
    let ev = b.recv().await;
    assert_eq!(
        (ev["janus"].as_str(), ev["transaction"].as_str()),
        (Some("event"), Some("m2"))
    );
    assert!(
        a.recv_within(Duration::from_millis(300)).await.is_none(),
        "A must not get B's events"
    );

    // Closing A no longer ends the session: B owns it.
    a.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = b
        .request(json!({"janus": "keepalive", "session_id": sid, "transaction": "k"}))
        .await;
    assert_eq!(r["janus"], "ack");

    // Closing B, the owner, destroys the session at once (reclaim timeout 0).
    b.close().await;
    assert!(eventually(|| gw.running.hub.with_gateway(|g, _| g.session_count()) == 0).await);
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "keepalive", "transaction": "k"}),
        )
        .await;
    assert_eq!(error_code(&r), 458);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn claim_over_http_moves_events_to_long_poll() {
    let gw = start(|_| {}).await;
    let mut a = ws_connect(&gw.ws, "janus-protocol").await;
    let sid = a
        .request(json!({"janus": "create", "transaction": "c"}))
        .await["data"]["id"]
        .as_u64()
        .unwrap();
    let hid = a.request(json!({"janus": "attach", "session_id": sid, "plugin": "janus.plugin.echotest", "transaction": "at"})).await["data"]["id"].as_u64().unwrap();
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "claim", "transaction": "cl"}),
        )
        .await;
    assert_eq!(r["janus"], "success");
    // POSTs for it over HTTP work, and its events now come by long poll.
    gw.post(
        &format!("/{sid}/{hid}"),
        json!({"janus": "message", "transaction": "m", "body": {"audio": true}}),
    )
    .await;
    let (status, ev) = gw.poll(sid, 1).await;
    assert_eq!(status, 200);
    assert_eq!(ev["transaction"], "m");
    a.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(gw.running.hub.with_gateway(|g, _| g.session_count()), 1);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn reclaim_window_keeps_the_session_for_a_claim() {
    let gw = start(|c| c.general.reclaim_session_timeout = 5).await;
    let mut a = ws_connect(&gw.ws, "janus-protocol").await;
    let sid = a
        .request(json!({"janus": "create", "transaction": "c"}))
        .await["data"]["id"]
        .as_u64()
        .unwrap();
    a.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b = ws_connect(&gw.ws, "janus-protocol").await;
    let r = b
        .request(json!({"janus": "claim", "session_id": sid, "transaction": "cl"}))
        .await;
    assert_eq!(r["janus"], "success", "{r}");

    // An orphan nobody claims is destroyed once the window passes.
    let mut c = ws_connect(&gw.ws, "janus-protocol").await;
    let sid2 = c
        .request(json!({"janus": "create", "transaction": "c"}))
        .await["data"]["id"]
        .as_u64()
        .unwrap();
    c.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.clock.advance(Duration::from_secs(6));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = b
        .request(json!({"janus": "claim", "session_id": sid2, "transaction": "cl2"}))
        .await;
    assert_eq!(error_code(&r), 458);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn wrong_subprotocol_is_refused() {
    let gw = start(|_| {}).await;
    let url = gw.ws.clone();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "chat".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    gw.running.shutdown().await;
}
