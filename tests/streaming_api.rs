//! janus.plugin.streaming's requests and error codes, as janus-api.md §0/§3 state.

mod common;

use common::*;
use serde_json::{json, Value};

struct Streaming<'a> {
    gw: &'a Gw,
    sid: u64,
    hid: u64,
}

impl Streaming<'_> {
    async fn attach(gw: &Gw) -> Streaming<'_> {
        let sid = gw.create_session().await;
        let hid = gw.attach_plugin(sid, "janus.plugin.streaming").await;
        Streaming { gw, sid, hid }
    }

    /// A synchronous request: the plugin's answer from `success` + `plugindata`.
    async fn sync(&self, body: Value) -> Value {
        let r = self
            .gw
            .post(
                &format!("/{}/{}", self.sid, self.hid),
                json!({"janus": "message", "transaction": "s", "body": body}),
            )
            .await;
        assert_eq!(r["janus"], "success", "{r}");
        assert_eq!(r["plugindata"]["plugin"], "janus.plugin.streaming");
        r["plugindata"]["data"].clone()
    }

    /// An asynchronous request: `ack`, then the event with the same transaction.
    async fn with_event(&self, body: Value) -> Value {
        let r = self
            .gw
            .post(
                &format!("/{}/{}", self.sid, self.hid),
                json!({"janus": "message", "transaction": "w", "body": body}),
            )
            .await;
        assert_eq!(r["janus"], "ack", "{r}");
        let (_, ev) = self.gw.poll(self.sid, 1).await;
        assert_eq!(ev["transaction"], "w", "{ev}");
        ev
    }
}

fn rtp_media() -> Value {
    json!([{"type": "audio", "mid": "a", "port": 0, "pt": 111, "codec": "opus"},
           {"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": "vp8"}])
}

#[tokio::test]
async fn create_list_info_destroy() {
    let gw = start(|_| {}).await;
    let s = Streaming::attach(&gw).await;
    let r = s.sync(json!({"request": "create", "type": "rtp", "id": 5, "name": "lab", "description": "lab feed",
                          "secret": "mpsecret", "media": rtp_media()})).await;
    assert_eq!(r["streaming"], "created");
    assert_eq!(r["created"], "lab");
    assert_eq!(r["stream"]["id"], 5);
    assert_eq!(r["stream"]["type"], "live");
    let ports = r["stream"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 2);
    assert!(ports.iter().all(|p| p["port"].as_u64().unwrap() > 0), "{r}");

    let r = s.sync(json!({"request": "list"})).await;
    assert_eq!(r["streaming"], "list");
    assert_eq!(r["list"][0]["id"], 5);
    assert_eq!(r["list"][0]["description"], "lab feed");
    assert_eq!(r["list"][0]["media"].as_array().unwrap().len(), 2);

    let r = s.sync(json!({"request": "info", "id": 5})).await;
    assert_eq!(r["info"]["name"], "lab");
    assert!(
        r["info"].get("secret").is_none(),
        "secret only with the secret: {r}"
    );
    assert!(r["info"]["media"][0].get("port").is_none());
    let r = s
        .sync(json!({"request": "info", "id": 5, "secret": "mpsecret"}))
        .await;
    assert_eq!(r["info"]["secret"], "mpsecret");
    assert!(r["info"]["media"][1]["port"].as_u64().unwrap() > 0);
    assert_eq!(r["info"]["media"][1]["codec"], "vp8");

    assert_eq!(
        s.sync(json!({"request": "destroy", "id": 5})).await["error_code"],
        457
    );
    let r = s
        .sync(json!({"request": "destroy", "id": 5, "secret": "mpsecret"}))
        .await;
    assert_eq!(r, json!({"streaming": "destroyed", "destroyed": 5}));
    assert_eq!(s.sync(json!({"request": "list"})).await["list"], json!([]));
    gw.running.shutdown().await;
}

#[tokio::test]
async fn error_codes() {
    let gw = start(|c| c.streaming.admin_key = "adm".into()).await;
    let s = Streaming::attach(&gw).await;
    let code = |v: Value| v["error_code"].as_u64().unwrap();
    assert_eq!(code(s.sync(json!({"request": "nope"})).await), 452);
    assert_eq!(code(s.sync(json!({})).await), 453);
    assert_eq!(
        code(
            s.sync(json!({"request": "create", "type": "rtp", "media": rtp_media()}))
                .await
        ),
        453
    );
    assert_eq!(code(s.sync(json!({"request": "create", "admin_key": "bad", "type": "rtp", "media": rtp_media()})).await), 457);
    let ok = s.sync(json!({"request": "create", "admin_key": "adm", "type": "rtp", "id": 9, "media": rtp_media()})).await;
    assert_eq!(ok["streaming"], "created", "{ok}");
    assert_eq!(code(s.sync(json!({"request": "create", "admin_key": "adm", "type": "rtp", "id": 9, "media": rtp_media()})).await), 456);
    assert_eq!(code(s.sync(json!({"request": "create", "admin_key": "adm", "type": "rtp", "media": [{"type": "video", "mid": "v", "pt": 96, "codec": "mpeg2"}]})).await), 454);
    assert_eq!(
        code(
            s.sync(json!({"request": "create", "admin_key": "adm", "type": "rtp"}))
                .await
        ),
        453
    );
    assert_eq!(
        code(s.sync(json!({"request": "info", "id": 999})).await),
        455
    );
    assert_eq!(
        code(s.sync(json!({"request": "destroy", "id": 999})).await),
        455
    );
    assert_eq!(
        code(s.sync(json!({"request": "info", "id": "x"})).await),
        454
    );
    // watch of an unknown id: ack, then the event with 455.
    let ev = s.with_event(json!({"request": "watch", "id": 999})).await;
    assert_eq!(ev["plugindata"]["data"]["error_code"], 455, "{ev}");
    // start/pause without a watch: wrong state.
    let ev = s.with_event(json!({"request": "pause"})).await;
    assert_eq!(ev["plugindata"]["data"]["error_code"], 460, "{ev}");
    let ev = s.with_event(json!({"request": "stop"})).await;
    assert_eq!(ev["plugindata"]["data"]["result"]["status"], "idle", "{ev}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn watch_offers_the_mountpoint_codecs_and_admin_can_list() {
    let gw = start(|_| {}).await;
    let s = Streaming::attach(&gw).await;
    s.sync(
        json!({"request": "create", "type": "rtp", "id": 3, "pin": "1234", "media": rtp_media()}),
    )
    .await;
    let ev = s
        .with_event(json!({"request": "watch", "id": 3, "pin": "0000"}))
        .await;
    assert_eq!(ev["plugindata"]["data"]["error_code"], 457, "{ev}");
    let ev = s
        .with_event(json!({"request": "watch", "id": 3, "pin": "1234"}))
        .await;
    assert_eq!(
        ev["plugindata"]["data"]["result"]["status"], "preparing",
        "{ev}"
    );
    assert_eq!(ev["jsep"]["type"], "offer");
    let sdp = ev["jsep"]["sdp"].as_str().unwrap();
    assert!(sdp.contains("a=rtpmap:111 opus/48000/2"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:96 VP8/90000"), "{sdp}");
    assert!(sdp.contains("a=sendonly"), "{sdp}");
    // The offer carries the mountpoint's mids, as Janus (front-ends address them).
    assert!(sdp.contains("\r\na=group:BUNDLE a v\r\n"), "{sdp}");
    let mids: Vec<&str> = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=mid:"))
        .collect();
    assert_eq!(mids, ["a", "v"], "{sdp}");
    assert!(!sdp.contains("sdes:mid"), "no MID header extension: {sdp}");
    // Only the chosen subset is offered.
    let s2 = Streaming::attach(&gw).await;
    let ev = s2
        .with_event(json!({"request": "watch", "id": 3, "pin": "1234", "media": ["v"]}))
        .await;
    let sdp = ev["jsep"]["sdp"].as_str().unwrap();
    assert!(!sdp.contains("m=audio") && sdp.contains("m=video"), "{sdp}");
    assert!(sdp.contains("\r\na=mid:v\r\n"), "{sdp}");
    // The admin API reaches the plugin's synchronous requests.
    let r = gw.admin_post("", json!({"janus": "message_plugin", "plugin": "janus.plugin.streaming",
                                      "request": {"request": "info", "id": 3}, "admin_secret": "janusoverlord", "transaction": "m"})).await;
    assert_eq!(r["response"]["info"]["viewers"], 2, "{r}");
    gw.running.shutdown().await;
}

#[tokio::test]
async fn edit_and_permanent_update_the_configuration_file() {
    let dir = std::env::temp_dir().join(format!("cardea-permanent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cardea.toml");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/cardea.toml");
    std::fs::copy(&shipped, &path).unwrap();
    let gw = start_with_file(|_| {}, Some(path.clone())).await;
    let s = Streaming::attach(&gw).await;
    let r = s
        .sync(
            json!({"request": "create", "type": "rtp", "id": 21, "description": "lab feed",
                          "secret": "x", "permanent": true, "media": rtp_media()}),
        )
        .await;
    assert_eq!(r["streaming"], "created", "{r}");
    assert_eq!(r["permanent"], true);
    let saved = cardea::Config::load(&path).unwrap();
    let mp = saved
        .streaming
        .mountpoints
        .iter()
        .find(|m| m.id == 21)
        .expect("saved");
    assert_eq!(mp.secret.as_deref(), Some("x"));
    assert_eq!(mp.media.len(), 2);

    let r = s
        .sync(json!({"request": "edit", "id": 21, "secret": "wrong", "new_description": "no"}))
        .await;
    assert_eq!(r["error_code"], 457, "{r}");
    let r = s
        .sync(
            json!({"request": "edit", "id": 21, "secret": "x", "new_description": "renamed",
                          "new_is_private": true, "permanent": true}),
        )
        .await;
    assert_eq!(
        r,
        json!({"streaming": "edited", "id": 21, "permanent": true})
    );
    let list = s.sync(json!({"request": "list"})).await;
    assert!(!list.to_string().contains("renamed"), "private now: {list}");
    let info = s
        .sync(json!({"request": "info", "id": 21, "secret": "x"}))
        .await;
    assert_eq!(info["info"]["description"], "renamed");
    let saved = cardea::Config::load(&path).unwrap();
    let mp = saved
        .streaming
        .mountpoints
        .iter()
        .find(|m| m.id == 21)
        .unwrap();
    assert_eq!(
        (mp.description.as_deref(), mp.is_private),
        (Some("renamed"), Some(true))
    );

    let r = s
        .sync(json!({"request": "destroy", "id": 21, "secret": "x", "permanent": true}))
        .await;
    assert_eq!(r["streaming"], "destroyed", "{r}");
    assert_eq!(
        cardea::Config::load(&path).unwrap(),
        cardea::Config::default()
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# A plain-RTP feed"), "comments kept");
    std::fs::remove_dir_all(&dir).unwrap();

    // Without a configuration file, `permanent` is refused and nothing is created.
    let gw = start(|_| {}).await;
    let s = Streaming::attach(&gw).await;
    let r = s
        .sync(
            json!({"request": "create", "type": "rtp", "id": 22, "permanent": true,
                          "media": rtp_media()}),
        )
        .await;
    assert_eq!(r["error_code"], 470, "{r}");
    let r = s.sync(json!({"request": "info", "id": 22})).await;
    assert_eq!(r["error_code"], 455, "{r}");
    // A key `permanent` could not write back is named.
    let r = s
        .sync(
            json!({"request": "create", "type": "rtp", "id": 23, "permanent": true,
                          "bogus_key": 1, "media": rtp_media()}),
        )
        .await;
    assert_eq!(r["error_code"], 456, "{r}");
    assert!(r["error"].as_str().unwrap().contains("bogus_key"), "{r}");
}

#[tokio::test]
async fn configure_and_switch_need_a_viewer() {
    let gw = start(|_| {}).await;
    let s = Streaming::attach(&gw).await;
    for body in [
        json!({"request": "configure", "streams": [{"mid": "v", "send": false}]}),
        json!({"request": "switch", "id": 1}),
    ] {
        let ev = s.with_event(body).await;
        assert_eq!(ev["plugindata"]["data"]["error_code"], 460, "{ev}");
    }
}

#[tokio::test]
async fn garbage_to_mountpoint_ports_is_dropped_and_counted() {
    let gw = start(|c| c.streaming.rtp_bind_ip = "127.0.0.1".parse().unwrap()).await;
    let s = Streaming::attach(&gw).await;
    let r = s.sync(json!({"request": "create", "type": "rtp", "id": 31,
        "media": [{"type": "video", "mid": "v", "port": 0, "rtcpport": 0, "pt": 96, "codec": "vp8"}]})).await;
    assert_eq!(r["streaming"], "created", "{r}");
    let port = r["stream"]["ports"][0]["port"].as_u64().unwrap() as u16;
    let rtcp = r["stream"]["ports"][0]["rtcpport"].as_u64().unwrap() as u16;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // The first VP8 packet of a GStreamer feed (as in src/ingest/rtp.rs's fixture).
    let good: [u8; 26] = [
        0x80, 0x60, 0x4a, 0x0a, 0x44, 0xa2, 0xe3, 0x00, 0x28, 0x55, 0x67, 0x59, 0x10, 0x10, 0x60,
        0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0x00, 0x47, 0x08,
    ];
    let mut wrong_pt = good;
    wrong_pt[1] = 0x61;
    let mut bad_padding = good;
    bad_padding[0] |= 0x20;
    bad_padding[25] = 200;
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 5],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        wrong_pt.to_vec(),
        bad_padding.to_vec(),
        vec![0x80, 200, 0, 1, 0, 0, 0, 1], // RTCP on the RTP port
    ];
    for g in &garbage {
        sock.send_to(g, ("127.0.0.1", port)).unwrap();
    }
    sock.send_to(b"not rtcp at all", ("127.0.0.1", rtcp))
        .unwrap();
    sock.send_to(&good, ("127.0.0.1", port)).unwrap();
    let mut info = Value::Null;
    for _ in 0..100 {
        info = s.sync(json!({"request": "info", "id": 31})).await;
        if info["info"]["source"]["packets"] == 1 && info["info"]["source"]["dropped"] == 7 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let source = &info["info"]["source"];
    assert_eq!(
        source["dropped"], 7,
        "6 bad datagrams on RTP, 1 on RTCP: {info}"
    );
    assert_eq!(source["packets"], 1, "the good one went on: {info}");
    assert_eq!(
        source["keyframes"], 1,
        "and it starts a VP8 keyframe: {info}"
    );
    assert_eq!(source["rtcp_in"], 0, "{info}");
}
