//! create → attach → message → keepalive → hangup → detach → destroy over HTTP,
//! with transactions echoed and events delivered by long poll.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn full_lifecycle_over_http() {
    let gw = start(|_| {}).await;
    let r = gw
        .post("", json!({"janus": "create", "transaction": "t-create"}))
        .await;
    assert_eq!(r["janus"], "success");
    assert_eq!(r["transaction"], "t-create");
    let sid = r["data"]["id"].as_u64().unwrap();
    assert!(sid > 0 && sid < (1 << 53));

    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "attach", "plugin": "janus.plugin.echotest",
                                          "opaque_id": "op-1", "transaction": "t-attach"}),
        )
        .await;
    assert_eq!(
        (r["janus"].as_str(), r["transaction"].as_str()),
        (Some("success"), Some("t-attach"))
    );
    assert_eq!(r["session_id"], sid);
    let hid = r["data"]["id"].as_u64().unwrap();
    assert!(hid > 0 && hid < (1 << 53) && hid != sid);

    // Asynchronous plugin reply: ack now, event with the same transaction later.
    let r = gw
        .post(
            &format!("/{sid}/{hid}"),
            json!({"janus": "message", "transaction": "t-msg",
                                                "body": {"audio": false, "bitrate": 128000}}),
        )
        .await;
    assert_eq!(
        (r["janus"].as_str(), r["transaction"].as_str()),
        (Some("ack"), Some("t-msg"))
    );
    let (status, ev) = gw.poll(sid, 1).await;
    assert_eq!(status, 200);
    assert_eq!(ev["janus"], "event");
    assert_eq!(ev["transaction"], "t-msg");
    assert_eq!(ev["sender"], hid);
    assert_eq!(ev["session_id"], sid);
    assert_eq!(ev["plugindata"]["plugin"], "janus.plugin.echotest");
    assert_eq!(
        ev["plugindata"]["data"],
        json!({"echotest": "event", "result": "ok"})
    );

    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "keepalive", "transaction": "t-ka"}),
        )
        .await;
    assert_eq!(
        (r["janus"].as_str(), r["transaction"].as_str()),
        (Some("ack"), Some("t-ka"))
    );

    // Hangup without a PeerConnection: success, then the echotest's "done".
    let r = gw
        .post(
            &format!("/{sid}/{hid}"),
            json!({"janus": "hangup", "transaction": "t-h"}),
        )
        .await;
    assert_eq!(
        (r["janus"].as_str(), r["transaction"].as_str()),
        (Some("success"), Some("t-h"))
    );
    let (_, ev) = gw.poll(sid, 1).await;
    assert_eq!(
        ev["plugindata"]["data"],
        json!({"echotest": "event", "result": "done"})
    );

    let r = gw
        .post(
            &format!("/{sid}/{hid}"),
            json!({"janus": "detach", "transaction": "t-d"}),
        )
        .await;
    assert_eq!(r["janus"], "success");
    let (_, ev) = gw.poll(sid, 1).await;
    assert_eq!(
        ev,
        json!({"janus": "detached", "session_id": sid, "sender": hid})
    );
    let r = gw
        .post(
            &format!("/{sid}/{hid}"),
            json!({"janus": "message", "transaction": "x", "body": {}}),
        )
        .await;
    assert_eq!(error_code(&r), 459);

    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "destroy", "transaction": "t-x"}),
        )
        .await;
    assert_eq!(
        (r["janus"].as_str(), r["transaction"].as_str()),
        (Some("success"), Some("t-x"))
    );
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "keepalive", "transaction": "k"}),
        )
        .await;
    assert_eq!(error_code(&r), 458);
    assert_eq!(gw.poll(sid, 1).await.0, 404);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn info_and_ping() {
    let gw = start(|_| {}).await;
    let r = gw
        .post("", json!({"janus": "info", "transaction": "i"}))
        .await;
    assert_eq!(r["janus"], "server_info");
    assert_eq!(r["transaction"], "i");
    assert_eq!(r["session-timeout"], 60);
    assert!(r["plugins"]["janus.plugin.echotest"].is_object(), "{r}");
    assert!(r["transports"]["janus.transport.http"].is_object(), "{r}");
    assert!(
        r["transports"]["janus.transport.websockets"].is_object(),
        "{r}"
    );
    let (status, body) = gw.get("/info").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"server_info\""));
    let r = gw
        .post("", json!({"janus": "ping", "transaction": "p"}))
        .await;
    assert_eq!(r, json!({"janus": "pong", "transaction": "p"}));
    assert_eq!(gw.get("/ping").await.0, 404);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn chosen_session_id_and_conflict() {
    let gw = start(|_| {}).await;
    let r = gw
        .post(
            "",
            json!({"janus": "create", "id": 4242, "transaction": "c"}),
        )
        .await;
    assert_eq!(r["data"]["id"], 4242);
    let r = gw
        .post(
            "",
            json!({"janus": "create", "id": 4242, "transaction": "c2"}),
        )
        .await;
    assert_eq!(error_code(&r), 468);
    assert_eq!(r["transaction"], "c2");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let gw = start(|_| {}).await;
    let r = gw
        .client
        .request(reqwest::Method::OPTIONS, &gw.base)
        .header("Origin", "http://example.test")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["access-control-allow-methods"], "POST");
    assert_eq!(h["access-control-allow-headers"], "content-type");
    let r = gw
        .client
        .post(&gw.base)
        .body(r#"{"janus":"ping","transaction":"p"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["content-type"], "application/json");
    gw.running.shutdown().await;
}
