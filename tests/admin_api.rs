//! The admin API over HTTP and WebSocket, with and without the secret.

mod common;

use common::*;
use serde_json::{json, Value};

const SECRET: &str = "janusoverlord";

fn admin(verb: &str, extra: Value) -> Value {
    let mut v = json!({"janus": verb, "transaction": format!("tx-{verb}"), "admin_secret": SECRET});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    v
}

#[tokio::test]
async fn secret_is_required_except_for_ping_and_info() {
    let gw = start(|_| {}).await;
    let r = gw
        .admin_post("", json!({"janus": "list_sessions", "transaction": "t"}))
        .await;
    assert_eq!(error_code(&r), 403);
    let r = gw
        .admin_post(
            "",
            json!({"janus": "list_sessions", "admin_secret": "nope", "transaction": "t"}),
        )
        .await;
    assert_eq!(error_code(&r), 403);
    let r = gw
        .admin_post("", json!({"janus": "ping", "transaction": "t"}))
        .await;
    assert_eq!(r["janus"], "pong");
    let r = gw
        .admin_post("", json!({"janus": "info", "transaction": "t"}))
        .await;
    assert_eq!(r["janus"], "server_info");
    // Main-API requests at the admin root, and admin requests at the main root, are 457.
    assert_eq!(
        error_code(&gw.admin_post("", admin("create", json!({}))).await),
        457
    );
    assert_eq!(
        error_code(&gw.post("", admin("list_sessions", json!({}))).await),
        457
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn empty_admin_secret_means_none_needed() {
    let gw = start(|c| c.general.admin_secret = String::new()).await;
    let r = gw
        .admin_post("", json!({"janus": "list_sessions", "transaction": "t"}))
        .await;
    assert_eq!(r["janus"], "success", "{r}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn sessions_handles_and_their_management() {
    let gw = start(|_| {}).await;
    let s1 = gw.create_session().await;
    let s2 = gw.create_session().await;
    let h1 = gw.attach(s1).await;
    let r = gw.admin_post("", admin("list_sessions", json!({}))).await;
    assert_eq!(r["transaction"], "tx-list_sessions");
    let mut ids: Vec<u64> = r["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![s1, s2];
    want.sort();
    assert_eq!(ids, want);

    let r = gw
        .admin_post(&format!("/{s1}"), admin("list_handles", json!({})))
        .await;
    assert_eq!(r["handles"], json!([h1]));
    assert_eq!(
        error_code(&gw.admin_post("", admin("list_handles", json!({}))).await),
        457
    );
    assert_eq!(
        error_code(
            &gw.admin_post("/999", admin("list_handles", json!({})))
                .await
        ),
        458
    );

    let r = gw
        .admin_post(&format!("/{s1}/{h1}"), admin("handle_info", json!({})))
        .await;
    assert_eq!(r["janus"], "success", "{r}");
    let info = &r["info"];
    assert_eq!(info["plugin"], "janus.plugin.echotest");
    assert_eq!(info["session_id"], s1);
    assert_eq!(info["handle_id"], h1);
    assert_eq!(info["session_transport"], "janus.transport.http");
    assert_eq!(info["plugin_specific"]["audio_active"], true);
    assert!(info["webrtc"].is_null(), "no PeerConnection yet: {info}");
    let r = gw
        .admin_post(
            &format!("/{s1}/{h1}"),
            admin("handle_info", json!({"plugin_only": true})),
        )
        .await;
    assert_eq!(
        r["info"],
        json!({"plugin_specific": {"audio_active": true, "video_active": true, "bitrate": 0, "frames_echoed": 0}})
    );
    assert_eq!(
        error_code(
            &gw.admin_post(&format!("/{s1}/12345"), admin("handle_info", json!({})))
                .await
        ),
        459
    );

    let r = gw
        .admin_post(&format!("/{s1}/{h1}"), admin("hangup_webrtc", json!({})))
        .await;
    assert_eq!(r["janus"], "success");
    let r = gw
        .admin_post(&format!("/{s1}/{h1}"), admin("detach_handle", json!({})))
        .await;
    assert_eq!(r["janus"], "success");
    let r = gw
        .admin_post(&format!("/{s1}"), admin("list_handles", json!({})))
        .await;
    assert_eq!(r["handles"], json!([]));

    let r = gw
        .admin_post(&format!("/{s2}"), admin("destroy_session", json!({})))
        .await;
    assert_eq!(r["janus"], "success");
    let r = gw
        .post(
            &format!("/{s2}"),
            json!({"janus": "keepalive", "transaction": "k"}),
        )
        .await;
    assert_eq!(error_code(&r), 458);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn status_log_level_timeouts_and_accepting() {
    let gw = start(|_| {}).await;
    let r = gw
        .admin_post("", admin("set_log_level", json!({"level": 5})))
        .await;
    assert_eq!(r["level"], 5);
    assert_eq!(
        error_code(
            &gw.admin_post("", admin("set_log_level", json!({"level": 9})))
                .await
        ),
        467
    );
    assert_eq!(
        error_code(&gw.admin_post("", admin("set_log_level", json!({}))).await),
        456
    );
    let r = gw
        .admin_post("", admin("set_session_timeout", json!({"timeout": 120})))
        .await;
    assert_eq!(r["timeout"], 120);
    let r = gw
        .admin_post("", admin("accept_new_sessions", json!({"accept": false})))
        .await;
    assert_eq!(r["accept"], false);
    assert_eq!(
        error_code(
            &gw.post("", json!({"janus": "create", "transaction": "c"}))
                .await
        ),
        472
    );
    let r = gw.admin_post("", admin("get_status", json!({}))).await;
    let st = &r["status"];
    assert_eq!(st["log_level"], 5);
    assert_eq!(st["session_timeout"], 120);
    assert_eq!(st["accepting_new_sessions"], false);
    assert!(st["media"]["datagrams_in"].is_u64(), "{st}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn tokens_lifecycle() {
    let gw = start(|c| c.general.token_auth = true).await;
    let r = gw
        .admin_post(
            "",
            admin(
                "add_token",
                json!({"token": "tok1", "plugins": ["janus.plugin.echotest"]}),
            ),
        )
        .await;
    assert_eq!(
        r["data"]["plugins"],
        json!(["janus.plugin.echotest"]),
        "{r}"
    );
    // Idempotent.
    let r = gw
        .admin_post(
            "",
            admin(
                "add_token",
                json!({"token": "tok1", "plugins": ["janus.plugin.echotest"]}),
            ),
        )
        .await;
    assert_eq!(r["janus"], "success");
    let r = gw.admin_post("", admin("list_tokens", json!({}))).await;
    assert_eq!(
        r["data"]["tokens"],
        json!([{"token": "tok1", "allowed_plugins": ["janus.plugin.echotest"]}])
    );
    let r = gw
        .admin_post(
            "",
            admin(
                "disallow_token",
                json!({"token": "tok1", "plugins": ["janus.plugin.echotest"]}),
            ),
        )
        .await;
    assert_eq!(r["data"]["plugins"], json!([]));
    let r = gw
        .admin_post(
            "",
            admin(
                "allow_token",
                json!({"token": "tok1", "plugins": ["janus.plugin.echotest"]}),
            ),
        )
        .await;
    assert_eq!(r["data"]["plugins"], json!(["janus.plugin.echotest"]));
    assert_eq!(
        error_code(
            &gw.admin_post(
                "",
                admin("allow_token", json!({"token": "nope", "plugins": []}))
            )
            .await
        ),
        470
    );
    assert_eq!(
        error_code(
            &gw.admin_post(
                "",
                admin(
                    "add_token",
                    json!({"token": "t", "plugins": ["janus.plugin.nope"]})
                )
            )
            .await
        ),
        460
    );
    let r = gw
        .admin_post("", admin("remove_token", json!({"token": "tok1"})))
        .await;
    assert_eq!(r["janus"], "success");
    assert_eq!(
        error_code(
            &gw.admin_post("", admin("remove_token", json!({"token": "tok1"})))
                .await
        ),
        470
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn token_requests_without_token_auth_are_490() {
    let gw = start(|_| {}).await;
    assert_eq!(
        error_code(
            &gw.admin_post("", admin("add_token", json!({"token": "x"})))
                .await
        ),
        490
    );
    assert_eq!(
        error_code(&gw.admin_post("", admin("list_tokens", json!({}))).await),
        490
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn message_plugin_for_unknown_plugin_and_plugin_without_admin() {
    let gw = start(|_| {}).await;
    let r = gw
        .admin_post(
            "",
            admin(
                "message_plugin",
                json!({"plugin": "janus.plugin.nope", "request": {}}),
            ),
        )
        .await;
    assert_eq!(error_code(&r), 460);
    let r = gw
        .admin_post(
            "",
            admin(
                "message_plugin",
                json!({"plugin": "janus.plugin.echotest", "request": {}}),
            ),
        )
        .await;
    assert_eq!(error_code(&r), 490);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn admin_over_websocket() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let mut ws = ws_connect(&gw.admin_ws, "janus-admin-protocol").await;
    let r = ws
        .request(json!({"janus": "list_sessions", "transaction": "w1"}))
        .await;
    assert_eq!(error_code(&r), 403);
    let r = ws.request(admin("list_sessions", json!({}))).await;
    assert_eq!(r["sessions"], json!([sid]));
    let r = ws
        .request(admin("list_handles", json!({"session_id": sid})))
        .await;
    assert_eq!(r["handles"], json!([]));
    // The main-API subprotocol is not accepted on the admin socket.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        gw.admin_ws.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "janus-protocol".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    gw.running.shutdown().await;
}
