//! WebRTC across topologies loopback cannot show, in network namespaces the test makes
//! (root inside the test command's own namespace; nothing leaves the machine):
//!
//! - TURN: Chromium's namespace has no route to the gateway's; coturn sits between
//!   them (use-auth-secret, the gateway hands out REST credentials), and a TCP
//!   forwarder beside it carries the signalling. The echo test and the demo stream play
//!   over a relay candidate.
//! - 1:1 NAT: the gateway's address is private; a NAT namespace maps a "public" address
//!   to it (nftables DNAT/SNAT), `media.public_address` advertises that address alone,
//!   and Chromium, which reaches only the public side, connects to it as a host
//!   candidate.
//!
//! - Multi-homed: the gateway's socket on 0.0.0.0 of an interface with two addresses;
//!   Chromium may reach only one of them (nftables drops the other in its namespace),
//!   first one, then the other. Each run's selected pair is host/host on the address it
//!   reached: the gateway answered from it (IP_PKTINFO), no peer-reflexive surprise.
//!
//! They run one after the other in one test: each leaves the test's namespace with
//! loopback alone, as every other test expects.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use cardea::config::{Config, IceServerConfig};
use cardea::{Running, StartOptions};
use interop_tests::netns::{veth, Netns};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Starts a gateway whose media and HTTP listen on `ip` (not loopback).
async fn gateway_on(ip: IpAddr, edit: impl FnOnce(&mut Config)) -> Running {
    let mut c = Config::default().on_loopback_ephemeral_ports();
    c.media.udp_bind = SocketAddr::new(ip, 0);
    c.media.host_addresses = vec![ip];
    c.media.include_loopback = false;
    c.http.bind = SocketAddr::new(ip, 0);
    c.web.node_modules = interop_tests::workspace().join("web/node_modules");
    edit(&mut c);
    cardea::start(c, StartOptions::default())
        .await
        .expect("gateway starts")
}

/// A child that prints "ready" once it serves.
async fn until_ready(mut cmd: tokio::process::Command, what: &str) -> tokio::process::Child {
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    assert!(
        matches!(first, Ok(Ok(Some(ref l))) if l == "ready"),
        "{what} did not start: {first:?}"
    );
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// The TCP forwarder in `ns`: `listen` → `target` (the gateway's HTTP API).
async fn forwarder(ns: &Netns, listen: SocketAddr, target: SocketAddr) -> tokio::process::Child {
    let mut cmd = ns.command("/usr/bin/python3");
    cmd.arg(interop_tests::workspace().join("interop-tests/py/tcp_forward.py"))
        .args([listen.ip().to_string(), listen.port().to_string()])
        .args([target.ip().to_string(), target.port().to_string()]);
    until_ready(cmd, "tcp forwarder").await
}

#[tokio::test(flavor = "multi_thread")]
async fn relay_through_turn_and_a_public_address_through_nat() {
    interop_tests::require_loopback_only();
    turn_relay().await;
    one_to_one_nat().await;
    multi_homed().await;
    // The children were killed and reaped: their namespaces go.
    interop_tests::netns::until_loopback_alone().await;
}

async fn turn_relay() {
    let turn = Netns::new("cdturn").unwrap();
    let browser = Netns::new("cdbrow").unwrap();
    // gateway 10.77.1.1 <-> 10.77.1.2 [coturn] 10.77.2.1 <-> 10.77.2.2 browser; no forwarding.
    veth(
        None,
        "cdgw0",
        "10.77.1.1/24",
        &turn,
        "cdturn0",
        "10.77.1.2/24",
    )
    .unwrap();
    veth(
        Some(&turn),
        "cdturn1",
        "10.77.2.1/24",
        &browser,
        "cdbrow0",
        "10.77.2.2/24",
    )
    .unwrap();
    let gw_ip: IpAddr = "10.77.1.1".parse().unwrap();
    let gw = gateway_on(gw_ip, |c| {
        c.media.ice_servers = vec![IceServerConfig {
            urls: vec!["turn:10.77.2.1:3478?transport=udp".into()],
            username: None,
            credential: None,
            rest_secret: Some("relay-s3cret".into()),
            rest_ttl: 600,
            rest_user: "lab".into(),
        }];
    })
    .await;
    let mut coturn = turn.command("turnserver");
    coturn.args([
        "-n",
        "--listening-ip=10.77.2.1",
        "--relay-ip=10.77.1.2",
        "--listening-port=3478",
        "--min-port=49152",
        "--max-port=49352",
        "--use-auth-secret",
        "--static-auth-secret=relay-s3cret",
        "--realm=cardea.test",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--fingerprint",
        "--log-file=stdout",
        "--simple-log",
    ]);
    coturn
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut coturn = coturn.spawn().expect("turnserver (Debian coturn) runs");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let front: SocketAddr = "10.77.2.1:18088".parse().unwrap();
    let mut fwd = forwarder(&turn, front, gw.http.unwrap()).await;
    let lab =
        |q: &str| format!("http://{front}/lab?{q}&transport=http&server=http://{front}/janus");

    let echo = browser.chromium(&lab("autostart=1"), "echo", 12).await;
    println!(
        "echo through TURN: pair {}, {} frames, {} audio packets",
        echo["selectedPair"], echo["framesDecoded"], echo["audioPacketsReceived"]
    );
    interop_tests::assert_browser_echo(&echo);
    assert_eq!(echo["selectedPair"]["local"], "relay", "{echo}");
    assert_eq!(echo["selectedPair"]["remote"], "host", "{echo}");

    let watch = browser.chromium(&lab("watch=1"), "viewer", 10).await;
    println!(
        "demo stream through TURN: pair {}, {} frames",
        watch["selectedPair"], watch["framesDecoded"]
    );
    interop_tests::assert_stream_watched(&watch);
    assert_eq!(watch["selectedPair"]["local"], "relay", "{watch}");
    gw.shutdown().await;
    let _ = coturn.kill().await;
    let _ = fwd.kill().await;
}

async fn one_to_one_nat() {
    let nat = Netns::new("cdnat").unwrap();
    let browser = Netns::new("cdbrow").unwrap();
    // gateway 10.77.3.1 (private) <-> 10.77.3.2 [NAT] 10.77.4.1 (public) <-> 10.77.4.2 browser.
    veth(
        None,
        "cdgw1",
        "10.77.3.1/24",
        &nat,
        "cdnat0",
        "10.77.3.2/24",
    )
    .unwrap();
    veth(
        Some(&nat),
        "cdnat1",
        "10.77.4.1/24",
        &browser,
        "cdbrow1",
        "10.77.4.2/24",
    )
    .unwrap();
    interop_tests::netns::ip(&["route", "add", "10.77.4.0/24", "via", "10.77.3.2"]).unwrap();
    nat.sysctl("net.ipv4.ip_forward", "1").unwrap();
    let gw = gateway_on("10.77.3.1".parse().unwrap(), |c| {
        c.media.public_address = "10.77.4.1".into();
    })
    .await;
    // 1:1: the public address's UDP media ports (one per shard) are the gateway's, both ways.
    let media_ports: Vec<u16> = gw.media_addrs.iter().map(|a| a.port()).collect();
    let dnat: String = media_ports
        .iter()
        .map(|p| format!(" ip daddr 10.77.4.1 udp dport {p} dnat to 10.77.3.1:{p}\n"))
        .collect();
    let rules = format!(
        "table ip nat {{\n\
           chain pre {{\n type nat hook prerouting priority dstnat;\n{dnat} }}\n\
           chain post {{\n type nat hook postrouting priority srcnat;\n ip saddr 10.77.3.1 oifname \"cdnat1\" snat to 10.77.4.1\n }}\n\
         }}\n"
    );
    nat.nft(&rules).await.unwrap();
    let front: SocketAddr = "10.77.4.1:18088".parse().unwrap();
    let mut fwd = forwarder(&nat, front, gw.http.unwrap()).await;
    let page = format!("http://{front}/lab?autostart=1&transport=http&server=http://{front}/janus");
    let echo = browser.chromium(&page, "echo", 12).await;
    println!(
        "echo through a 1:1 NAT: pair {}, {} frames, {} audio packets",
        echo["selectedPair"], echo["framesDecoded"], echo["audioPacketsReceived"]
    );
    interop_tests::assert_browser_echo(&echo);
    assert_eq!(echo["selectedPair"]["remote"], "host", "{echo}");
    let reached = echo["selectedPair"]["remoteAddress"].as_str().unwrap_or("");
    assert!(
        media_ports
            .iter()
            .any(|p| reached == format!("10.77.4.1:{p}")),
        "{echo}"
    );
    gw.shutdown().await;
    let _ = fwd.kill().await;
}

async fn multi_homed() {
    let browser = Netns::new("cdbrow").unwrap();
    veth(
        None,
        "cdgw5",
        "10.77.7.1/24",
        &browser,
        "cdbrow2",
        "10.77.7.2/24",
    )
    .unwrap();
    interop_tests::netns::ip(&["addr", "add", "10.77.7.11/24", "dev", "cdgw5"]).unwrap();
    let any: IpAddr = "0.0.0.0".parse().unwrap();
    let gw = gateway_on(any, |c| {
        c.media.host_addresses = vec!["10.77.7.1".parse().unwrap(), "10.77.7.11".parse().unwrap()];
    })
    .await;
    let http = gw.http.unwrap().port();
    for (reach, blocked) in [("10.77.7.1", "10.77.7.11"), ("10.77.7.11", "10.77.7.1")] {
        let rules = format!(
            "table inet only {{\n chain out {{\n type filter hook output priority 0;\n ip daddr {blocked} drop\n }}\n\
             chain in {{\n type filter hook input priority 0;\n ip saddr {blocked} drop\n }}\n}}\n"
        );
        let _ = browser
            .command("nft")
            .args(["delete", "table", "inet", "only"])
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        browser.nft(&rules).await.unwrap();
        let page = format!(
            "http://{reach}:{http}/lab?autostart=1&transport=http&server=http://{reach}:{http}/janus"
        );
        let echo = browser.chromium(&page, "echo", 10).await;
        println!(
            "echo reaching only {reach}: pair {}, {} frames, {} audio packets",
            echo["selectedPair"], echo["framesDecoded"], echo["audioPacketsReceived"]
        );
        interop_tests::assert_browser_echo(&echo);
        let pair = &echo["selectedPair"];
        assert_eq!(
            (&pair["local"], &pair["remote"]),
            (&"host".into(), &"host".into()),
            "{echo}"
        );
        let reached = pair["remoteAddress"].as_str().unwrap_or("");
        assert!(
            gw.media_addrs
                .iter()
                .any(|a| reached == format!("{reach}:{}", a.port())),
            "{echo}"
        );
    }
    gw.shutdown().await;
}
