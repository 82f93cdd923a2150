//! Every Janus error code the core produces, with the path rules, as janus-api.md §0/§2 state.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn envelope_errors_over_http() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let url = format!("{}/{sid}", gw.base);

    // Malformed JSON: 454 with no transaction, and the session lives on.
    let (status, r) = gw.post_raw(&url, "{\"janus\": \"keepalive\", ").await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&r), 454);
    assert!(r.get("transaction").is_none(), "{r}");
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "keepalive", "transaction": "k"}),
        )
        .await;
    assert_eq!(r["janus"], "ack");

    assert_eq!(error_code(&gw.post_raw(&url, "[1,2]").await.1), 455);
    let r = gw.post_raw(&url, r#"{"transaction":"t"}"#).await.1;
    assert_eq!(error_code(&r), 456);
    assert!(r.get("transaction").is_none());
    assert_eq!(
        error_code(&gw.post_raw(&url, r#"{"janus":"keepalive"}"#).await.1),
        456
    );
    assert_eq!(
        error_code(
            &gw.post_raw(&url, r#"{"janus":7,"transaction":"t"}"#)
                .await
                .1
        ),
        467
    );
    assert_eq!(
        error_code(
            &gw.post_raw(&url, r#"{"janus":"keepalive","transaction":[]}"#)
                .await
                .1
        ),
        467
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn path_rules() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach(sid).await;
    let at = |p: &str, verb: &str| (p.to_owned(), json!({"janus": verb, "transaction": "t"}));
    let cases = [
        // Root: only create/info/ping; anything else, known or not, is 457.
        (at("", "keepalive"), 457),
        (at("", "attach"), 457),
        (at("", "foo"), 457),
        (at("", "list_sessions"), 457),
        // Session level: misplaced known requests 457, unknown 453.
        (at(&format!("/{sid}"), "message"), 457),
        (at(&format!("/{sid}"), "create"), 457),
        (at(&format!("/{sid}"), "foo"), 453),
        // Handle level likewise.
        (at(&format!("/{sid}/{hid}"), "attach"), 457),
        (at(&format!("/{sid}/{hid}"), "keepalive"), 457),
        (at(&format!("/{sid}/{hid}"), "foo"), 453),
        // Unknown ids.
        (at("/123456", "keepalive"), 458),
        (at(&format!("/{sid}/987654"), "hangup"), 459),
    ];
    for ((path, body), code) in cases {
        let r = gw.post(&path, body.clone()).await;
        assert_eq!(error_code(&r), code, "{path} {body} -> {r}");
        assert_eq!(r["transaction"], "t", "{r}");
    }
    gw.running.shutdown().await;
}

#[tokio::test]
async fn attach_and_message_errors() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "attach", "transaction": "t"}),
        )
        .await;
    assert_eq!(error_code(&r), 456);
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "attach", "plugin": "janus.plugin.nope", "transaction": "t"}),
        )
        .await;
    assert_eq!(error_code(&r), 460);
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "attach", "plugin": 5, "transaction": "t"}),
        )
        .await;
    assert_eq!(error_code(&r), 467);
    let hid = gw.attach(sid).await;
    let h = format!("/{sid}/{hid}");
    let msg = |extra: serde_json::Value| {
        let mut m = json!({"janus": "message", "transaction": "t"});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m
    };
    assert_eq!(error_code(&gw.post(&h, msg(json!({}))).await), 456);
    assert_eq!(
        error_code(&gw.post(&h, msg(json!({"body": "x"}))).await),
        467
    );
    let offer = chromium_offer();
    let cases = [
        (json!({"body": {}, "jsep": {"sdp": offer}}), 456),
        (json!({"body": {}, "jsep": {"type": "offer"}}), 456),
        (
            json!({"body": {}, "jsep": {"type": "rollback", "sdp": offer}}),
            464,
        ),
        (
            json!({"body": {}, "jsep": {"type": "offer", "sdp": "not an sdp"}}),
            465,
        ),
        (
            json!({"body": {}, "jsep": {"type": "offer", "sdp": "v=0\r\ns=-\r\n"}}),
            465,
        ),
    ];
    for (extra, code) in cases {
        let r = gw.post(&h, msg(extra.clone())).await;
        assert_eq!(error_code(&r), code, "{extra} -> {r}");
    }
    // Trickle without a candidate.
    let r = gw
        .post(&h, json!({"janus": "trickle", "transaction": "t"}))
        .await;
    assert_eq!(error_code(&r), 456);
    // The plugin's own validation: empty body → ack, then an event with 413.
    let r = gw.post(&h, msg(json!({"body": {}}))).await;
    assert_eq!(r["janus"], "ack");
    let (_, ev) = gw.poll(sid, 1).await;
    assert_eq!(ev["plugindata"]["data"]["error_code"], 413, "{ev}");
    let r = gw.post(&h, msg(json!({"body": {"audio": "yes"}}))).await;
    assert_eq!(r["janus"], "ack");
    let (_, ev) = gw.poll(sid, 1).await;
    assert_eq!(ev["plugindata"]["data"]["error_code"], 413, "{ev}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn envelope_errors_over_websocket() {
    let gw = start(|_| {}).await;
    let mut ws = ws_connect(&gw.ws, "janus-protocol").await;
    ws.send_text("{ nope").await;
    let r = ws.recv().await;
    assert_eq!(error_code(&r), 454);
    ws.send_text("[1]").await;
    assert_eq!(error_code(&ws.recv().await), 456);
    let r = ws
        .request(json!({"janus": "create", "transaction": "c"}))
        .await;
    let sid = r["data"]["id"].as_u64().unwrap();
    // The socket and the session survive the garbage.
    let r = ws
        .request(json!({"janus": "keepalive", "session_id": sid, "transaction": "k"}))
        .await;
    assert_eq!(r["janus"], "ack");
    let r = ws.request(json!({"janus": "attach", "session_id": "x", "plugin": "janus.plugin.echotest", "transaction": "a"})).await;
    assert_eq!(error_code(&r), 467);
    let r = ws.request(json!({"janus": "message", "session_id": sid, "handle_id": 77, "body": {}, "transaction": "m"})).await;
    assert_eq!(error_code(&r), 459);
    assert_eq!(r["session_id"], sid);
    // A handle without a session: Janus looks for session 0 and answers 458.
    for janus in ["message", "trickle", "hangup", "detach"] {
        let r = ws
            .request(json!({"janus": janus, "handle_id": 77, "body": {}, "candidate": {"completed": true}, "transaction": "h"}))
            .await;
        assert_eq!(error_code(&r), 458, "{janus}: {r}");
        assert_eq!(r["error"]["reason"], "No such session 0", "{r}");
        assert_eq!(r["transaction"], "h", "{r}");
    }
    gw.running.shutdown().await;
}

#[tokio::test]
async fn oversized_body_is_refused_with_a_clear_error() {
    let gw = start(|c| c.http.max_body_bytes = 4096).await;
    let big = format!(
        r#"{{"janus":"create","transaction":"t","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let (status, r) = gw.post_raw(&gw.base, &big).await;
    assert_eq!(status, 413);
    assert_eq!(error_code(&r), 450);
    assert!(
        r["error"]["reason"].as_str().unwrap().contains("4096"),
        "{r}"
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn not_accepting_sessions() {
    let gw = start(|c| c.general.accept_new_sessions = false).await;
    let r = gw
        .post("", json!({"janus": "create", "transaction": "c"}))
        .await;
    assert_eq!(error_code(&r), 472);
    let r = gw
        .admin_post(
            "",
            json!({"janus": "accept_new_sessions", "accept": true,
                                      "admin_secret": "janusoverlord", "transaction": "a"}),
        )
        .await;
    assert_eq!(r["janus"], "success", "{r}");
    gw.create_session().await;
    gw.running.shutdown().await;
}
