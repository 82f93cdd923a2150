//! MESSAGE outside a call (RFC 3428) between the gateway and baresip through
//! kamailio: the gateway's `message` with a `uri` reaches baresip (a loopback capture
//! shows the MESSAGE and its body arriving at baresip's port; baresip answers 200:
//! `messagedelivery` 200 with the `messagesent` Call-ID), baresip's
//! MESSAGE to alice reaches the handle as a `message` event; a MESSAGE to a user
//! kamailio does not know comes back as `messagedelivery` 404.

#![allow(clippy::disallowed_methods)] // drives real peers in real time

use std::time::Duration;

use interop_tests::sip::{analyze_capture, capture, kamailio, Baresip, Scratch, SipHandle};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn messages_both_ways_outside_a_call() {
    let gw = interop_tests::start_gateway().await;
    let registrar = kamailio().expect("kamailio");
    let domain = format!("127.0.0.1:{}", registrar.port);
    let dir = Scratch::new("baresip-message").unwrap();
    let bob = Baresip::start(&dir.0, "bob", "b0bpass", registrar.port, 700, None, "").unwrap();
    let alice = SipHandle::attach(&gw);
    alice.send(
        json!({"request": "register", "username": format!("sip:alice@{domain}"),
        "secret": "s3cret"}),
    );
    assert_eq!(
        alice.expect_event(Duration::from_secs(5)).await["result"]["event"],
        "registering"
    );
    let e = alice.expect_event(Duration::from_secs(10)).await;
    assert_eq!(e["result"]["event"], "registered", "{e}");
    assert!(
        bob.wait_for("200 OK", Duration::from_secs(10)),
        "baresip registers: {}",
        bob.log()
    );

    // alice → bob.
    let pcap = dir.0.join("sip.pcap");
    let mut cap = capture(&pcap).expect("tcpdump");
    alice.send(
        json!({"request": "message", "uri": format!("sip:bob@{domain}"),
        "content": "hello bob from the browser", "content_type": "text/plain"}),
    );
    let sent = alice.expect_event(Duration::from_secs(5)).await;
    assert_eq!(sent["result"]["event"], "messagesent", "{sent}");
    let delivery = alice.expect_event(Duration::from_secs(10)).await;
    println!("delivery: {delivery}");
    assert_eq!(delivery["result"]["event"], "messagedelivery", "{delivery}");
    assert_eq!(delivery["result"]["code"], 200, "{delivery}");
    assert_eq!(delivery["call_id"], sent["call_id"], "{delivery}");
    cap.interrupt();
    let seen = analyze_capture(&pcap, 0).expect("capture");
    let at_bob: Vec<&serde_json::Value> = seen["sip_requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["cseq"].as_str().unwrap_or("").ends_with(" MESSAGE"))
        .filter(|q| q["dport"] == bob.sip_port)
        .collect();
    assert_eq!(at_bob.len(), 1, "{seen}");
    assert_eq!(at_bob[0]["body"], "hello bob from the browser", "{seen}");
    assert_eq!(at_bob[0]["call_id"], sent["call_id"], "{seen}");

    // bob → alice.
    bob.command("/message hi alice, bob here").unwrap();
    let got = alice.expect_event(Duration::from_secs(10)).await;
    println!("received: {got}");
    assert_eq!(got["result"]["event"], "message", "{got}");
    assert_eq!(got["result"]["content"], "hi alice, bob here", "{got}");
    assert!(
        got["result"]["sender"]
            .as_str()
            .is_some_and(|s| s.contains("sip:bob@")),
        "{got}"
    );

    // To nobody: kamailio's 404 comes back.
    alice.send(
        json!({"request": "message", "uri": format!("sip:carol@{domain}"),
        "content": "anyone?"}),
    );
    assert_eq!(
        alice.expect_event(Duration::from_secs(5)).await["result"]["event"],
        "messagesent"
    );
    let delivery = alice.expect_event(Duration::from_secs(10)).await;
    assert_eq!(delivery["result"]["event"], "messagedelivery", "{delivery}");
    assert_eq!(delivery["result"]["code"], 404, "{delivery}");
}
