//! Incoming SIP requests reach only the handle whose registration they name, and only
//! from that registration's registrar: two handles registering the same user through
//! two registrars each get only their own calls, and a stranger's INVITE gets 403.
//! The registrars are two small UDP responders on their own loopback addresses
//! (127.0.0.1 and 127.0.0.2); the stranger sends from 127.0.0.3.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::net::UdpSocket;

/// A header's value in a SIP message (first occurrence, case-insensitive name).
fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A registrar: answers every REGISTER with 200 and the Contact it was given; returns
/// the first Contact URI it registered.
async fn registrar(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 8192];
    loop {
        let (n, from) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
            .await
            .expect("a REGISTER within 10 s")
            .unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !msg.starts_with("REGISTER ") {
            continue;
        }
        let contact = header(&msg, "Contact").unwrap_or_default();
        let uri = contact
            .trim_start_matches('<')
            .split(['>', ';'])
            .next()
            .unwrap()
            .to_owned();
        let reply = format!(
            "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=reg{}\r\nCall-ID: {}\r\n\
             CSeq: {}\r\nContact: {};expires=3600\r\nContent-Length: 0\r\n\r\n",
            header(&msg, "Via").unwrap(),
            header(&msg, "From").unwrap(),
            header(&msg, "To").unwrap(),
            rand::random::<u16>(),
            header(&msg, "Call-ID").unwrap(),
            header(&msg, "CSeq").unwrap(),
            contact,
        );
        sock.send_to(reply.as_bytes(), from).await.unwrap();
        return uri;
    }
}

/// An INVITE for `ruri` with a PCMU offer, as `me` sends it.
fn invite(me: SocketAddr, ruri: &str, n: u32) -> String {
    let sdp = format!(
        "v=0\r\no=- {n} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        ip = me.ip()
    );
    format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-inv-{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bob@{me}>;tag=b{n}\r\nTo: <{ruri}>\r\n\
         Call-ID: call-{n}@{me}\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@{me}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The final status code the gateway answers `msg` with, as `sock` receives it.
async fn final_status(sock: &UdpSocket, to: SocketAddr, msg: &str) -> Option<u16> {
    sock.send_to(msg.as_bytes(), to).await.unwrap();
    let mut buf = vec![0u8; 8192];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        let text = String::from_utf8_lossy(&buf[..n]);
        let code: u16 = text.split(' ').nth(1)?.parse().ok()?;
        if code >= 180 {
            return Some(code);
        }
    }
}

/// Events of `sid` for the next `wait`, as long polls return them.
async fn events_for(gw: &Gw, sid: u64, wait: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    #[allow(clippy::disallowed_methods)] // a real wait for real packets
    let until = std::time::Instant::now() + wait;
    #[allow(clippy::disallowed_methods)]
    while std::time::Instant::now() < until {
        let (_, v) = gw.poll(sid, 10).await;
        out.extend(
            v.as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["janus"] != "keepalive")
                .cloned(),
        );
    }
    out
}

fn sip_event(ev: &Value) -> &str {
    ev["plugindata"]["data"]["result"]["event"]
        .as_str()
        .unwrap_or("")
}

#[tokio::test]
async fn each_registration_gets_only_its_own_calls_and_strangers_get_403() {
    let gw = start(|_| {}).await;
    let sip = gw.running.sip.expect("SIP enabled");
    let reg_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let reg_b = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let stranger = UdpSocket::bind("127.0.0.3:0").await.unwrap();
    let (a, b) = (reg_a.local_addr().unwrap(), reg_b.local_addr().unwrap());

    // Two handles register the same user, alice, each through its own registrar.
    let mut handles = Vec::new();
    for (registrar_addr, sock) in [(a, &reg_a), (b, &reg_b)] {
        let sid = gw.create_session().await;
        let hid = gw.attach_plugin(sid, "janus.plugin.sip").await;
        let r = gw
            .post(
                &format!("/{sid}/{hid}"),
                json!({"janus": "message", "transaction": "r", "body": {"request": "register",
                    "username": format!("sip:alice@{registrar_addr}"), "secret": "s3cret"}}),
            )
            .await;
        assert_eq!(r["janus"], "ack", "{r}");
        let contact = registrar(sock).await;
        let evs = events_for(&gw, sid, Duration::from_millis(500)).await;
        assert!(evs.iter().any(|e| sip_event(e) == "registered"), "{evs:?}");
        println!("handle {hid} registered contact {contact}");
        handles.push((sid, hid, contact));
    }
    let (contact_a, contact_b) = (&handles[0].2, &handles[1].2);
    assert!(contact_a.starts_with("sip:alice-"), "{contact_a}");
    assert_ne!(contact_a, contact_b, "each registration its own Contact");

    // A stranger, and registrar B for A's contact: 403, nobody rings.
    let me = stranger.local_addr().unwrap();
    assert_eq!(
        final_status(&stranger, sip, &invite(me, contact_a, 1)).await,
        Some(403)
    );
    assert_eq!(
        final_status(&reg_b, sip, &invite(b, contact_a, 2)).await,
        Some(403)
    );
    // The plain user (not a registered Contact): 404.
    let plain = format!("sip:alice@{sip}");
    assert_eq!(
        final_status(&reg_a, sip, &invite(a, &plain, 3)).await,
        Some(404)
    );

    // Registrar A calls A's contact: handle A rings, handle B hears nothing.
    reg_a
        .send_to(invite(a, contact_a, 4).as_bytes(), sip)
        .await
        .unwrap();
    let evs_a = events_for(&gw, handles[0].0, Duration::from_millis(800)).await;
    let evs_b = events_for(&gw, handles[1].0, Duration::from_millis(800)).await;
    assert!(
        evs_a.iter().any(|e| sip_event(e) == "incomingcall"),
        "{evs_a:?}"
    );
    assert!(
        !evs_b.iter().any(|e| sip_event(e) == "incomingcall"),
        "{evs_b:?}"
    );
    // And B's registrar reaches B.
    reg_b
        .send_to(invite(b, contact_b, 5).as_bytes(), sip)
        .await
        .unwrap();
    let evs_b = events_for(&gw, handles[1].0, Duration::from_millis(800)).await;
    assert!(
        evs_b.iter().any(|e| sip_event(e) == "incomingcall"),
        "{evs_b:?}"
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn accept_from_any_restores_janus_behaviour() {
    let gw = start(|c| c.sip.accept_from = vec!["any".into()]).await;
    let sip = gw.running.sip.expect("SIP enabled");
    let reg_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stranger = UdpSocket::bind("127.0.0.3:0").await.unwrap();
    let a = reg_a.local_addr().unwrap();
    let sid = gw.create_session().await;
    let hid = gw.attach_plugin(sid, "janus.plugin.sip").await;
    gw.post(
        &format!("/{sid}/{hid}"),
        json!({"janus": "message", "transaction": "r", "body": {"request": "register",
            "username": format!("sip:alice@{a}"), "secret": "s3cret"}}),
    )
    .await;
    let contact = registrar(&reg_a).await;
    events_for(&gw, sid, Duration::from_millis(300)).await;
    let me = stranger.local_addr().unwrap();
    stranger
        .send_to(invite(me, &contact, 6).as_bytes(), sip)
        .await
        .unwrap();
    let evs = events_for(&gw, sid, Duration::from_millis(800)).await;
    assert!(
        evs.iter().any(|e| sip_event(e) == "incomingcall"),
        "{evs:?}"
    );
    gw.running.shutdown().await;
}
