//! WHEP at the API core (`Gateway::whep_start`/`whep_patch`/`whep_stop`) with the API
//! protected: who may start a viewer, what a viewer session is (no idle timeout, no
//! claim by a Janus client), and what a stop leaves. The HTTP side and real players are
//! in interop-tests (`whep_players`).

mod common;

use std::time::Duration;

use cardea::api::sdpfrag;
use cardea::api::whep::{WhepError, WhepPatch};
use common::*;
use serde_json::json;

fn demo(c: &mut cardea::Config) {
    c.general.api_secret = "s3cret".into();
    c.general.session_timeout = 60;
    // The shipped demo mountpoint (H.264 + PCMU) and a pinned copy of it.
    c.streaming.mountpoints = cardea::Config::default().streaming.mountpoints;
    let mut pinned = c.streaming.mountpoints[0].clone();
    pinned.id = 2;
    pinned.pin = Some("4321".into());
    c.streaming.mountpoints.push(pinned);
}

#[tokio::test]
async fn the_api_secret_comes_first_then_the_mountpoint_s_pin() {
    let gw = start(demo).await;
    let offer = chromium_offer();
    let start = |mp: &str, bearer: Option<&str>| {
        gw.running
            .hub
            .with_gateway(|g, now| g.whep_start(now, None, mp, bearer, &offer))
    };
    // Without the API's credential nothing is told, not even whether a mountpoint exists.
    for mp in ["1", "999", "x"] {
        assert!(matches!(start(mp, None), Err(WhepError::Unauthorized(_))));
        assert!(matches!(
            start(mp, Some("wrong")),
            Err(WhepError::Unauthorized(_))
        ));
    }
    assert!(matches!(
        start("999", Some("s3cret")),
        Err(WhepError::NotFound(_))
    ));
    // A pinned mountpoint wants its pin, which the API's secret is not.
    assert!(matches!(
        start("2", Some("s3cret")),
        Err(WhepError::Unauthorized(_))
    ));
    assert_eq!(gw.running.hub.with_gateway(|g, _| g.session_count()), 0);

    let v = start("1", Some("s3cret")).unwrap();
    // The fixture offers sendrecv (an echo test's): we send on both m-lines.
    assert!(
        !v.answer.contains("a=inactive") && !v.answer.contains("a=recvonly"),
        "{}",
        v.answer
    );
    assert!(
        v.answer.contains("H264") && v.answer.contains("PCMU"),
        "{}",
        v.answer
    );
    assert_eq!(v.resource.len(), 32);
    assert!(!v.etag.is_empty());
    assert_eq!(gw.running.hub.with_gateway(|g, _| g.whep_viewers()), 1);
    gw.running
        .hub
        .with_gateway(|g, now| g.whep_stop(now, &v.resource));
    assert_eq!(gw.running.hub.with_gateway(|g, _| g.whep_viewers()), 0);
    assert_eq!(gw.running.hub.with_gateway(|g, _| g.session_count()), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_viewer_session_outlives_the_idle_timeout_and_cannot_be_claimed() {
    let gw = start(demo).await;
    let offer = chromium_offer();
    let v = gw
        .running
        .hub
        .with_gateway(|g, now| g.whep_start(now, None, "1", Some("s3cret"), &offer))
        .unwrap();
    let sid = gw.running.hub.with_gateway(|g, now| {
        g.handle_admin_request(
            now,
            cardea::api::Origin::HTTP,
            Some(cardea::api::Target::default()),
            br#"{"janus":"list_sessions","transaction":"l","admin_secret":"janusoverlord"}"#,
        )["sessions"][0]
            .as_u64()
            .unwrap()
    });
    // Twice the session timeout without a request: a Janus session would be gone.
    gw.clock.advance(Duration::from_secs(130));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(gw.running.hub.with_gateway(|g, _| g.session_count()), 1);
    // A Janus client that learns its id cannot take it over.
    let r = gw
        .post(
            &format!("/{sid}"),
            json!({"janus": "claim", "transaction": "c", "apisecret": "s3cret"}),
        )
        .await;
    assert_eq!(error_code(&r), 458, "{r}");
    // Trickle and an ICE restart without its password are told apart.
    let frag = sdpfrag::parse(b"a=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host\r\n").unwrap();
    let r = gw
        .running
        .hub
        .with_gateway(|g, now| g.whep_patch(now, &v.resource, None, &frag));
    assert_eq!(r, Ok(WhepPatch::Trickled));
    let restart = sdpfrag::parse(b"a=ice-ufrag:newone\r\n").unwrap();
    let r = gw
        .running
        .hub
        .with_gateway(|g, now| g.whep_patch(now, &v.resource, None, &restart));
    assert!(matches!(r, Err(WhepError::BadRequest(_))), "{r:?}");
    let r = gw
        .running
        .hub
        .with_gateway(|g, now| g.whep_patch(now, &v.resource, Some("\"other\""), &frag));
    assert!(matches!(r, Err(WhepError::PreconditionFailed(_))), "{r:?}");
    gw.running.shutdown().await;
}
