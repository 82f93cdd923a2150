//! Session timeout driven by a fake clock: `timeout` event, everything freed.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn websocket_session_times_out_and_is_freed() {
    let gw = start(|_| {}).await;
    let mut ws = ws_connect(&gw.ws, "janus-protocol").await;
    let sid = ws
        .request(json!({"janus": "create", "transaction": "c"}))
        .await["data"]["id"]
        .as_u64()
        .unwrap();
    ws.request(json!({"janus": "attach", "session_id": sid, "plugin": "janus.plugin.echotest", "transaction": "a"})).await;
    assert_eq!(gw.running.hub.with_gateway(|g, _| g.handle_count()), 1);

    // 59 s idle: still alive (a keepalive resets the timer).
    gw.clock.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = ws
        .request(json!({"janus": "keepalive", "session_id": sid, "transaction": "k"}))
        .await;
    assert_eq!(r["janus"], "ack");
    gw.clock.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gw.running.hub.with_gateway(|g, _| g.session_count()), 1);

    // Past 60 s since the keepalive: the timeout event arrives on the socket.
    gw.clock.advance(Duration::from_secs(2));
    let ev = ws.recv().await;
    assert_eq!(ev, json!({"janus": "timeout", "session_id": sid}));
    assert!(
        eventually(|| gw
            .running
            .hub
            .with_gateway(|g, _| g.session_count() + g.handle_count())
            == 0)
        .await
    );
    // The socket stays open and usable.
    let r = ws
        .request(json!({"janus": "keepalive", "session_id": sid, "transaction": "k2"}))
        .await;
    assert_eq!(error_code(&r), 458);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn http_timeout_event_goes_out_on_the_pending_poll() {
    let gw = start(|c| c.http.long_poll_seconds = 10).await;
    let sid = gw.create_session().await;
    let poll = {
        let client = gw.client.clone();
        let url = format!("{}/{sid}", gw.base);
        tokio::spawn(async move { client.get(url).send().await.unwrap().text().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.clock.advance(Duration::from_secs(61));
    let body = poll.await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, json!({"janus": "timeout", "session_id": sid}));
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
async fn a_long_poll_counts_as_activity() {
    let gw = start(|c| c.http.long_poll_seconds = 1).await;
    let sid = gw.create_session().await;
    gw.clock.advance(Duration::from_secs(50));
    let (status, _) = gw.poll(sid, 1).await;
    assert_eq!(status, 200);
    gw.clock.advance(Duration::from_secs(50));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "keepalive", "transaction": "k"}),
        )
        .await;
    assert_eq!(
        r["janus"], "ack",
        "session should live: the poll 50 s ago was activity"
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn zero_disables_the_timeout() {
    let gw = start(|c| c.general.session_timeout = 0).await;
    let sid = gw.create_session().await;
    gw.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "keepalive", "transaction": "k"}),
        )
        .await;
    assert_eq!(r["janus"], "ack");
    gw.running.shutdown().await;
}
