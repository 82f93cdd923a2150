//! The streaming plugin does no I/O of its own: ports and the configuration file
//! come through its `StreamingIo`. With a fake one this checks that the answer says
//! whether the outside world took the change, and that a change it refused is not
//! made: a port in use, a configuration file that cannot be written.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cardea::api::{Gateway, HandleId, Origin, SessionId, Target};
use cardea::config::MountpointConfig;
use cardea::ids::MountpointId;
use cardea::media::webrtc::WebrtcFactory;
use cardea::plugin::streaming::io::StreamingIo;
use cardea::plugin::streaming::Streaming;
use cardea::Config;
use serde_json::{json, Value};

/// What the fake saw, and how it answers.
#[derive(Default)]
struct World {
    /// Ports asked for.
    binds: Vec<u16>,
    /// This port is in use.
    busy: Option<u16>,
    /// Saves asked for: the id and whether it was a write (not a removal).
    saves: Vec<(u64, bool)>,
    /// The disk is full.
    full: bool,
}

struct FakeIo(Arc<Mutex<World>>);

impl StreamingIo for FakeIo {
    fn bind_udp(&mut self, addr: SocketAddr) -> std::io::Result<UdpSocket> {
        let mut w = self.0.lock().unwrap();
        w.binds.push(addr.port());
        if w.busy == Some(addr.port()) {
            return Err(std::io::ErrorKind::AddrInUse.into());
        }
        UdpSocket::bind("127.0.0.1:0")
    }

    fn can_save(&self) -> bool {
        true
    }

    fn save_mountpoint(
        &mut self,
        id: MountpointId,
        config: Option<&MountpointConfig>,
    ) -> Result<(), String> {
        let mut w = self.0.lock().unwrap();
        w.saves.push((id.0, config.is_some()));
        match w.full {
            true => Err("writing cardea.toml: No space left on device".into()),
            false => Ok(()),
        }
    }
}

struct Plugin {
    gateway: Gateway,
    now: Instant,
    handle: u64,
}

impl Plugin {
    fn new(world: &Arc<Mutex<World>>) -> Plugin {
        let mut config = Config::default().on_loopback_ephemeral_ports();
        config.streaming.open_admin = true;
        config.streaming.mountpoints.clear();
        let factory = WebrtcFactory::new(&config.media, 9, &["127.0.0.1".parse().unwrap()]);
        #[allow(clippy::disallowed_methods)] // the fake clock's starting point
        let now = Instant::now();
        let io = Box::new(FakeIo(world.clone()));
        let mut gateway = Gateway::new(
            config.clone(),
            vec![Box::new(Streaming::new(&config.streaming, io))],
            Arc::new(factory),
            now,
        );
        let create = br#"{"janus":"create","transaction":"c","id":1}"#;
        gateway.handle_request(now, Origin::HTTP, Some(Target::default()), create);
        let at = Target {
            session: Some(SessionId(1)),
            handle: None,
        };
        let attach = br#"{"janus":"attach","transaction":"a","plugin":"janus.plugin.streaming"}"#;
        let r = gateway.handle_request(now, Origin::HTTP, Some(at), attach);
        let handle = r["data"]["id"].as_u64().unwrap();
        Plugin {
            gateway,
            now,
            handle,
        }
    }

    fn sync(&mut self, body: Value) -> Value {
        let at = Target {
            session: Some(SessionId(1)),
            handle: Some(HandleId(self.handle)),
        };
        let request = json!({"janus": "message", "transaction": "m", "body": body}).to_string();
        let r = (self.gateway).handle_request(self.now, Origin::HTTP, Some(at), request.as_bytes());
        while self.gateway.poll_output().is_some() {}
        r["plugindata"]["data"].clone()
    }
}

fn rtp(id: u64, port: u16) -> Value {
    json!({"request": "create", "type": "rtp", "id": id, "description": "before",
           "media": [{"type": "video", "mid": "v", "port": port, "pt": 96, "codec": "vp8"},
                     {"type": "audio", "mid": "a", "port": 0, "pt": 111, "codec": "opus"}]})
}

#[test]
fn a_port_in_use_refuses_the_mountpoint() {
    let world = Arc::new(Mutex::new(World {
        busy: Some(5004),
        ..World::default()
    }));
    let mut p = Plugin::new(&world);
    let r = p.sync(rtp(30, 5004));
    assert_eq!(r["error_code"], 456, "{r}");
    let text = r["error"].as_str().unwrap();
    assert!(text.contains("Can't bind port 5004 for mid 'v'"), "{r}");
    assert_eq!(
        p.sync(json!({"request": "info", "id": 30}))["error_code"],
        455
    );
    // Another port: created, each medium bound once.
    let r = p.sync(rtp(30, 5006));
    assert_eq!(r["streaming"], "created", "{r}");
    assert_eq!(world.lock().unwrap().binds, [5004, 5006, 0]);
}

#[test]
fn a_change_the_file_cannot_take_is_not_made() {
    let world = Arc::new(Mutex::new(World::default()));
    let mut p = Plugin::new(&world);
    let mut create = rtp(31, 0);
    create["permanent"] = json!(true);
    assert_eq!(p.sync(create.clone())["streaming"], "created");

    world.lock().unwrap().full = true;
    // Edit: refused with Janus's 470, the description unchanged.
    let edit = json!({"request": "edit", "id": 31, "new_description": "after", "permanent": true});
    let r = p.sync(edit);
    assert_eq!(r["error_code"], 470, "{r}");
    assert_eq!(
        r["error"],
        "Error saving configuration: writing cardea.toml: No space left on device"
    );
    let info = p.sync(json!({"request": "info", "id": 31}));
    assert_eq!(info["info"]["description"], "before", "{info}");
    // Destroy: refused, the mountpoint stays.
    let destroy = json!({"request": "destroy", "id": 31, "permanent": true});
    assert_eq!(p.sync(destroy.clone())["error_code"], 470);
    assert_eq!(
        p.sync(json!({"request": "info", "id": 31}))["info"]["id"],
        31
    );
    // Create: refused, nothing created.
    create["id"] = json!(32);
    assert_eq!(p.sync(create)["error_code"], 470);
    assert_eq!(
        p.sync(json!({"request": "info", "id": 32}))["error_code"],
        455
    );

    world.lock().unwrap().full = false;
    assert_eq!(p.sync(destroy)["streaming"], "destroyed");
    let saves = world.lock().unwrap().saves.clone();
    assert_eq!(
        saves,
        [(31, true), (31, true), (31, false), (32, true), (31, false)]
    );
}
