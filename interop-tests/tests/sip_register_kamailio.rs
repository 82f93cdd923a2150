//! Registration against a real registrar: kamailio (Debian's 5.6) with digest
//! authentication. The gateway's REGISTER is challenged and answered; kamailio then
//! routes requests for the user to the gateway (an OPTIONS sent to alice through
//! kamailio is answered by the gateway), and no longer after `unregister`. A wrong
//! password gives `registration_failed` with kamailio's code; a registrar that is not
//! there gives one within timer F (32 s); the handle stays usable after each. A 6 s
//! registration is still there 30 s later (refreshed).

#![allow(clippy::disallowed_methods)] // times a real registrar

use std::time::{Duration, Instant};

use interop_tests::sip::{kamailio, options, SipHandle};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn register_refresh_unregister_and_failures() {
    let gw = interop_tests::start_gateway().await;
    let registrar = kamailio().expect("kamailio");
    let port = registrar.port;
    let domain = format!("127.0.0.1:{port}");
    assert_eq!(
        options(port, Some("alice")).unwrap(),
        Some(404),
        "alice unknown before registering"
    );

    // alice registers: challenged (401), answered, registered.
    let alice = SipHandle::attach(&gw);
    let ack = alice.send(
        json!({"request": "register", "username": format!("sip:alice@{domain}"),
        "secret": "s3cret", "register_ttl": 60, "headers": {"X-Cardea-Test": "1"}}),
    );
    assert_eq!(ack["janus"], "ack", "{ack}");
    let e = alice.expect_event(Duration::from_secs(5)).await;
    assert_eq!(e["result"]["event"], "registering", "{e}");
    let e = alice.expect_event(Duration::from_secs(10)).await;
    assert_eq!(e["result"]["event"], "registered", "{e}");
    assert_eq!(e["result"]["username"], "alice");
    assert_eq!(e["result"]["register_sent"], true);
    // kamailio now routes alice's requests to the gateway, which answers OPTIONS.
    assert_eq!(options(port, Some("alice")).unwrap(), Some(200));
    // A second register on the same handle is refused.
    alice.send(json!({"request": "register", "username": format!("sip:alice@{domain}"), "secret": "s3cret"}));
    let e = alice.expect_event(Duration::from_secs(5)).await;
    assert_eq!(e["error_code"], 445, "{e}");

    // bob with the wrong password: kamailio's 403, and the handle can try again.
    let bob = SipHandle::attach(&gw);
    bob.send(
        json!({"request": "register", "username": format!("sip:bob@{domain}"), "secret": "nope"}),
    );
    assert_eq!(
        bob.expect_event(Duration::from_secs(5)).await["result"]["event"],
        "registering"
    );
    let e = bob.expect_event(Duration::from_secs(10)).await;
    println!("wrong password: {e}");
    assert_eq!(e["result"]["event"], "registration_failed", "{e}");
    assert!(
        matches!(e["result"]["code"].as_u64(), Some(401 | 403)),
        "{e}"
    );
    assert_eq!(options(port, Some("bob")).unwrap(), Some(404));
    // Registered for 6 s only: the binding lasts the whole test only if refreshed.
    bob.send(
        json!({"request": "register", "username": format!("sip:bob@{domain}"),
        "secret": "b0bpass", "register_ttl": 6}),
    );
    assert_eq!(
        bob.expect_event(Duration::from_secs(5)).await["result"]["event"],
        "registering"
    );
    assert_eq!(
        bob.expect_event(Duration::from_secs(10)).await["result"]["event"],
        "registered"
    );
    assert_eq!(options(port, Some("bob")).unwrap(), Some(200));

    // alice unregisters: kamailio forgets her.
    alice.send(json!({"request": "unregister"}));
    assert_eq!(
        alice.expect_event(Duration::from_secs(5)).await["result"]["event"],
        "unregistering"
    );
    let e = alice.expect_event(Duration::from_secs(10)).await;
    assert_eq!(e["result"]["event"], "unregistered", "{e}");
    assert_eq!(options(port, Some("alice")).unwrap(), Some(404));
    assert_eq!(
        options(port, Some("bob")).unwrap(),
        Some(200),
        "bob still registered"
    );

    // A registrar that is not there: a clear failure within timer F.
    let nobody = interop_tests::free_port();
    let carol = SipHandle::attach(&gw);
    let started = Instant::now();
    carol.send(json!({"request": "register", "username": format!("sip:carol@127.0.0.1:{nobody}"), "secret": "x"}));
    assert_eq!(
        carol.expect_event(Duration::from_secs(5)).await["result"]["event"],
        "registering"
    );
    let e = carol.expect_event(Duration::from_secs(40)).await;
    println!("registrar down: {e} after {:?}", started.elapsed());
    assert_eq!(e["result"]["event"], "registration_failed", "{e}");
    assert!(
        started.elapsed() <= Duration::from_secs(33),
        "{:?}",
        started.elapsed()
    );
    // Over 30 s later bob's 6 s registration is still there: refreshed (at 75 %),
    // challenges answered each time, and quietly (no event for a refresh).
    assert_eq!(
        options(port, Some("bob")).unwrap(),
        Some(200),
        "bob's registration was refreshed"
    );
    assert_eq!(bob.event(Duration::from_millis(100)).await, None);
    // The handle is not stuck: it registers once a registrar is given.
    carol.send(json!({"request": "register", "username": format!("sip:alice@{domain}"), "secret": "s3cret"}));
    assert_eq!(
        carol.expect_event(Duration::from_secs(5)).await["result"]["event"],
        "registering"
    );
    assert_eq!(
        carol.expect_event(Duration::from_secs(10)).await["result"]["event"],
        "registered"
    );
    gw.shutdown().await;
}
