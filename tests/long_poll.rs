//! Long poll: batching with maxev, keepalive when idle, 404/403, activity.
#![allow(clippy::disallowed_methods)] // the test measures how long the server holds a poll

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test]
async fn batches_up_to_maxev_and_single_object_otherwise() {
    let gw = start(|_| {}).await;
    let sid = gw.create_session().await;
    let hid = gw.attach(sid).await;
    for i in 0..3 {
        let r = gw
            .post(&format!("/{sid}/{hid}"), json!({"janus": "message", "transaction": format!("m{i}"), "body": {"video": true}}))
            .await;
        assert_eq!(r["janus"], "ack");
    }
    let (status, batch) = gw.poll(sid, 2).await;
    assert_eq!(status, 200);
    let batch = batch.as_array().expect("an array when maxev > 1");
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0]["transaction"], "m0");
    assert_eq!(batch[1]["transaction"], "m1");
    let (_, single) = gw.poll(sid, 1).await;
    assert!(single.is_object(), "{single}");
    assert_eq!(single["transaction"], "m2");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn idle_poll_answers_keepalive_after_the_hold() {
    let gw = start(|c| c.http.long_poll_seconds = 1).await;
    let sid = gw.create_session().await;
    let t = Instant::now();
    let (status, r) = gw.poll(sid, 1).await;
    assert_eq!((status, r), (200, json!({"janus": "keepalive"})));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "held {:?}",
        t.elapsed()
    );
    let (_, r) = gw.poll(sid, 5).await;
    assert_eq!(r, json!([{"janus": "keepalive"}]));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn pending_poll_wakes_on_event() {
    let gw = start(|c| c.http.long_poll_seconds = 10).await;
    let sid = gw.create_session().await;
    let hid = gw.attach(sid).await;
    let poller = {
        let client = gw.client.clone();
        let url = format!("{}/{sid}", gw.base);
        tokio::spawn(async move {
            let t = Instant::now();
            let body = client.get(url).send().await.unwrap().text().await.unwrap();
            (t.elapsed(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.post(
        &format!("/{sid}/{hid}"),
        json!({"janus": "message", "transaction": "w", "body": {"audio": true}}),
    )
    .await;
    let (took, body) = poller.await.unwrap();
    assert!(took < Duration::from_secs(5), "poll took {took:?}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["transaction"], "w");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn credentials_are_checked_before_the_session_as_janus_does() {
    let gw = start(|c| c.general.api_secret = "s3cret".into()).await;
    assert_eq!(gw.poll(123, 1).await.0, 403);
    assert_eq!(gw.get("/123?apisecret=s3cret").await.0, 404);
    let r = gw
        .post(
            "",
            json!({"janus": "create", "apisecret": "s3cret", "transaction": "c"}),
        )
        .await;
    let sid = r["data"]["id"].as_u64().unwrap();
    let (status, body) = gw.get(&format!("/{sid}")).await;
    assert_eq!((status, body.as_str()), (403, ""));
    let (status, _) = gw.get(&format!("/{sid}?apisecret=wrong")).await;
    assert_eq!(status, 403);
    let hid = gw
        .post(&format!("/{sid}"), json!({"janus": "attach", "plugin": "janus.plugin.echotest", "apisecret": "s3cret", "transaction": "a"}))
        .await["data"]["id"]
        .as_u64()
        .unwrap();
    gw.post(&format!("/{sid}/{hid}"), json!({"janus": "message", "apisecret": "s3cret", "transaction": "m", "body": {"audio": true}})).await;
    let (status, body) = gw.get(&format!("/{sid}?apisecret=s3cret")).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"m\""), "{body}");
    gw.running.shutdown().await;
}
