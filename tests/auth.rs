//! api_secret and token auth, as Janus: 403 when missing or wrong, either one enough, 405 per plugin.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn api_secret_guards_everything_but_info_and_ping() {
    let gw = start(|c| c.general.api_secret = "s3cret".into()).await;
    assert_eq!(
        error_code(
            &gw.post("", json!({"janus": "create", "transaction": "c"}))
                .await
        ),
        403
    );
    assert_eq!(
        error_code(
            &gw.post(
                "",
                json!({"janus": "create", "apisecret": "bad", "transaction": "c"})
            )
            .await
        ),
        403
    );
    assert_eq!(
        gw.post("", json!({"janus": "info", "transaction": "i"}))
            .await["janus"],
        "server_info"
    );
    assert_eq!(
        gw.post("", json!({"janus": "ping", "transaction": "p"}))
            .await["janus"],
        "pong"
    );
    let r = gw
        .post(
            "",
            json!({"janus": "create", "apisecret": "s3cret", "transaction": "c"}),
        )
        .await;
    let sid = r["data"]["id"].as_u64().unwrap();
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "keepalive", "transaction": "k"}),
        )
        .await;
    assert_eq!(error_code(&r), 403);
    assert_eq!(r["transaction"], "k");
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "keepalive", "apisecret": "s3cret", "transaction": "k"}),
        )
        .await;
    assert_eq!(r["janus"], "ack");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn tokens_and_either_credential() {
    let gw = start(|c| {
        c.general.api_secret = "s3cret".into();
        c.general.token_auth = true;
    })
    .await;
    assert_eq!(
        error_code(
            &gw.post(
                "",
                json!({"janus": "create", "token": "unknown", "transaction": "c"})
            )
            .await
        ),
        403
    );
    gw.admin_post(
        "",
        json!({"janus": "add_token", "token": "only-echo", "plugins": ["janus.plugin.echotest"],
                             "admin_secret": "janusoverlord", "transaction": "t"}),
    )
    .await;
    gw.admin_post(
        "",
        json!({"janus": "add_token", "token": "no-plugins", "plugins": [],
                             "admin_secret": "janusoverlord", "transaction": "t"}),
    )
    .await;
    // Token alone is enough.
    let r = gw
        .post(
            "",
            json!({"janus": "create", "token": "only-echo", "transaction": "c"}),
        )
        .await;
    let sid = r["data"]["id"]
        .as_u64()
        .expect("token alone creates a session");
    let r = gw.post(&format!("/{sid}"), json!({"janus": "attach", "plugin": "janus.plugin.echotest", "token": "only-echo", "transaction": "a"})).await;
    assert_eq!(r["janus"], "success", "{r}");
    // A token without the plugin: 405.
    let r = gw.post(&format!("/{sid}"), json!({"janus": "attach", "plugin": "janus.plugin.echotest", "token": "no-plugins", "transaction": "a"})).await;
    assert_eq!(error_code(&r), 405);
    // The secret alone is enough too, for any plugin.
    let r = gw.post(&format!("/{sid}"), json!({"janus": "attach", "plugin": "janus.plugin.echotest", "apisecret": "s3cret", "transaction": "a"})).await;
    assert_eq!(r["janus"], "success", "{r}");
    // Long poll with the token in the query.
    assert_eq!(
        gw.get(&format!("/{sid}?token=only-echo&maxev=1")).await.0,
        200
    );
    assert_eq!(gw.get(&format!("/{sid}?token=bogus")).await.0, 403);
    // A removed token stops working.
    gw.admin_post("", json!({"janus": "remove_token", "token": "only-echo", "admin_secret": "janusoverlord", "transaction": "t"})).await;
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "keepalive", "token": "only-echo", "transaction": "k"}),
        )
        .await;
    assert_eq!(error_code(&r), 403);
    gw.running.shutdown().await;
}
