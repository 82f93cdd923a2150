//! Garbage datagrams and malformed STUN sent to the media port are dropped and
//! counted while an established echo test keeps flowing.

use std::time::Duration;

use tokio::net::UdpSocket;

/// A well-formed STUN Binding Request header with a USERNAME nobody owns.
fn stun_with_username(user: &[u8]) -> Vec<u8> {
    let mut attrs = vec![0x00, 0x06, 0x00, user.len() as u8];
    attrs.extend_from_slice(user);
    while attrs.len() % 4 != 0 {
        attrs.push(0);
    }
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    m.extend_from_slice(&[7u8; 12]);
    m.extend_from_slice(&attrs);
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_is_dropped_and_counted_while_echo_flows() {
    let gw = interop_tests::start_gateway().await;
    let udp = gw.udp;
    let browser = interop_tests::chromium_echotest(&gw, "ws", 14);
    let attack = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = interop_tests::media_counters(&gw).await;
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut garbage = 0u64;
        let mut unknown = 0u64;
        let counted = |c: &serde_json::Value| {
            c["dropped_garbage"].as_u64().unwrap() + c["dropped_unknown_peer"].as_u64().unwrap()
        };
        for i in 0..1500u32 {
            let b = i.to_be_bytes();
            let datagrams: Vec<Vec<u8>> = vec![
                // Not any protocol we speak.
                vec![0xff, b[2], b[3], 0x42, 0x13],
                b"GET / HTTP/1.1\r\n\r\n".to_vec(),
                vec![],
                // Malformed STUN: truncated header, length past the end, attribute past the end.
                vec![0x00, 0x01, 0x00],
                {
                    let mut m = stun_with_username(b"abcd:efgh");
                    m[3] = 0xfc;
                    m
                },
                {
                    let mut m = stun_with_username(b"abcd:efgh");
                    m[22] = 0x40;
                    m
                },
            ];
            for d in &datagrams {
                sock.send_to(d, udp).await.unwrap();
                garbage += 1;
            }
            // Well-formed, but for nobody: unknown ufrag, and RTP/DTLS from a stranger.
            for d in [
                stun_with_username(b"nobody:here"),
                vec![0x80; 40],
                vec![22u8; 40],
            ] {
                sock.send_to(&d, udp).await.unwrap();
                unknown += 1;
            }
            // Wait for the gateway to have counted what was sent, so the kernel's socket
            // buffer never overflows and every datagram is accounted for.
            let mut waited = 0;
            while counted(&interop_tests::media_counters(&gw).await) - counted(&before)
                < garbage + unknown
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
                waited += 1;
                assert!(
                    waited < 5000,
                    "the gateway stopped counting dropped datagrams"
                );
            }
        }
        let after = interop_tests::media_counters(&gw).await;
        let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
        (
            garbage,
            unknown,
            delta("dropped_garbage"),
            delta("dropped_unknown_peer"),
        )
    };
    let (r, (garbage, unknown, dropped_garbage, dropped_unknown)) = tokio::join!(browser, attack);
    let r = r.unwrap();
    println!("sent {garbage} garbage + {unknown} stranger datagrams; counted {dropped_garbage} garbage, {dropped_unknown} unknown-peer");
    assert_eq!(
        dropped_garbage, garbage,
        "every garbage datagram counted as garbage"
    );
    assert_eq!(
        dropped_unknown, unknown,
        "every stranger datagram counted as unknown-peer"
    );
    assert_eq!(r["webrtcup"], true, "{r}");
    // Media kept flowing during and after the attack (it starts 5 s in).
    let samples = r["samples"].as_array().unwrap();
    let at = |ms: u64| {
        samples
            .iter()
            .find(|s| s["ms"].as_u64().unwrap() >= ms)
            .unwrap()
            .clone()
    };
    let (s5, end) = (at(5000), samples.last().unwrap().clone());
    let frames_after = end["frames"].as_u64().unwrap() - s5["frames"].as_u64().unwrap();
    let audio_after = end["audio"].as_u64().unwrap() - s5["audio"].as_u64().unwrap();
    println!("after the attack began: {frames_after} frames decoded, {audio_after} audio packets");
    assert!(frames_after > 60, "{r}");
    assert!(audio_after > 100, "{r}");
    gw.shutdown().await;
}
