//! `cardea --check-config` exits non-zero naming the bad key; the shipped file passes.

use std::process::Command;

fn cardea(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cardea"))
        .args(args)
        .output()
        .expect("run cardea");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_config_checks_ok() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/cardea.toml");
    let (code, out, _) = cardea(&["--config", conf, "--check-config"]);
    assert_eq!(code, 0);
    assert!(out.contains("configuration OK"), "{out}");
}

/// The docker-compose lab's configuration (mounted into its gateway) keeps up with the code.
#[test]
fn lab_config_checks_ok() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/lab/cardea.toml");
    let (code, out, err) = cardea(&["--config", conf, "--check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration OK"), "{out}");
}

#[test]
fn a_phone_preset_that_is_not_a_sip_uri_is_named() {
    let dir = std::env::temp_dir().join(format!("cardea-cli-phone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (body, key) in [
        ("[web.phone]\nuser = \"alice@pbx\"\n", "web.phone.user"),
        (
            "[web.phone]\ndial = \"sip:1000@pbx\\r\\nX: y\"\n",
            "web.phone.dial",
        ),
        ("[web.phone]\nproxy = \"http://pbx\"\n", "web.phone.proxy"),
    ] {
        let file = dir.join("phone.toml");
        std::fs::write(&file, body).unwrap();
        let (code, _, err) = cardea(&["--config", file.to_str().unwrap(), "--check-config"]);
        assert_ne!(code, 0, "{body}");
        assert!(err.contains(key), "{body}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_key_is_named_and_exit_is_non_zero() {
    let dir = std::env::temp_dir().join(format!("cardea-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[websocket]\nbind = \"127.0.0.1:8188\"\nadmin_bnd = \"127.0.0.1:7188\"\n",
    )
    .unwrap();
    let (code, _, err) = cardea(&["--config", bad.to_str().unwrap(), "--check-config"]);
    assert_ne!(code, 0);
    assert!(err.contains("admin_bnd"), "{err}");
    let wrong_type = dir.join("type.toml");
    std::fs::write(&wrong_type, "[media]\nudp_bind = 10000\n").unwrap();
    let (code, _, err) = cardea(&["--config", wrong_type.to_str().unwrap(), "--check-config"]);
    assert_ne!(code, 0);
    assert!(err.contains("udp_bind"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_lists_the_options() {
    let (code, out, _) = cardea(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--config") && out.contains("--check-config"),
        "{out}"
    );
}

#[test]
fn the_well_known_admin_secret_beyond_loopback_is_refused() {
    let dir = std::env::temp_dir().join(format!("cardea-cli-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exposed = dir.join("exposed.toml");
    std::fs::write(&exposed, "[http]\nadmin_bind = \"0.0.0.0:7088\"\n").unwrap();
    let path = exposed.to_str().unwrap();
    let (code, _, err) = cardea(&["--config", path, "--check-config"]);
    assert_ne!(code, 0);
    assert!(err.contains("general.admin_secret"), "{err}");
    // A start refuses with the same message, before binding anything.
    let (code, _, err) = cardea(&["--config", path]);
    assert_ne!(code, 0);
    assert!(err.contains("general.admin_secret"), "{err}");
    // The operator's own secret makes it acceptable.
    let own = dir.join("own.toml");
    std::fs::write(
        &own,
        "[general]\nadmin_secret = \"s0mething-else\"\n[http]\nadmin_bind = \"0.0.0.0:7088\"\n",
    )
    .unwrap();
    let (code, out, err) = cardea(&["--config", own.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_gateway_with_status_zero() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = std::env::temp_dir().join(format!("cardea-cli-term-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("loopback.toml");
    std::fs::write(
        &conf,
        "[http]\nbind = \"127.0.0.1:0\"\nadmin_bind = \"127.0.0.1:0\"\n\
         [websocket]\nbind = \"127.0.0.1:0\"\nadmin_bind = \"127.0.0.1:0\"\n\
         [media]\nudp_bind = \"127.0.0.1:0\"\nhost_addresses = [\"127.0.0.1\"]\n\
         [web]\nenabled = false\n[streaming]\nrtp_bind_ip = \"127.0.0.1\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardea"))
        .args(["--config", conf.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run cardea");
    // Up when it says its WebSocket API listens (the last listener to start).
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let up = lines.by_ref().take(200).any(|l| {
        l.map(|l| l.contains("WebSocket admin API listening"))
            .unwrap_or(false)
    });
    assert!(up, "the gateway started");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Read the rest of its log aside, so it never blocks writing it.
    let reader = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let mut code = None;
    for _ in 0..150 {
        if let Some(c) = child.try_wait().unwrap() {
            code = Some(c);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let Some(code) = code else {
        let _ = child.kill();
        panic!("still running 15 s after SIGTERM");
    };
    let log = reader.join().unwrap();
    assert_eq!(code.code(), Some(0), "{log:?}");
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file whose loopback listeners and RTP ports never clash with another test's.
const LOOPBACK: &str = "[http]\nbind = \"127.0.0.1:0\"\nadmin_bind = \"127.0.0.1:0\"\n\
    [websocket]\nbind = \"127.0.0.1:0\"\nadmin_bind = \"127.0.0.1:0\"\n\
    [media]\nudp_bind = \"127.0.0.1:0\"\nhost_addresses = [\"127.0.0.1\"]\n\
    [web]\nenabled = false\n[streaming]\nrtp_bind_ip = \"127.0.0.1\"\n";

#[test]
fn a_bad_mountpoint_is_named_by_check_config_and_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("cardea-cli-mp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rtp = |port: u16, codec: &str, fmtp: &str| {
        format!(
            "type = \"rtp\"\nmedia = [{{ type = \"video\", mid = \"v\", port = {port}, pt = 96, \
             codec = \"{codec}\"{fmtp} }}]\n"
        )
    };
    // (mountpoints, what the message must name)
    let cases = [
        (
            "[[streaming.mountpoints]]\nid = 3\nname = \"door\"\ntype = \"rtsp\"\n".to_owned(),
            vec!["mountpoint 3 (\"door\")", "(url)"],
        ),
        (
            format!("[[streaming.mountpoints]]\nid = 4\n{}", rtp(0, "mjpeg", "")),
            vec!["mountpoint 4", "media[0]", "codec", "mjpeg"],
        ),
        (
            format!(
                "[[streaming.mountpoints]]\nid = 5\ntype = \"demo\"\n\
                 [[streaming.mountpoints]]\nid = 5\n{}",
                rtp(0, "vp8", "")
            ),
            vec!["mountpoint 5", "id 5"],
        ),
        (
            format!(
                "[[streaming.mountpoints]]\nid = 6\n{}[[streaming.mountpoints]]\nid = 7\n{}",
                rtp(47004, "vp8", ""),
                rtp(47004, "h264", "")
            ),
            vec!["mountpoint 7", "port 47004", "mountpoint 6"],
        ),
        (
            format!(
                "[[streaming.mountpoints]]\nid = 8\n{}",
                rtp(
                    0,
                    "h264",
                    ", fmtp = \"profile-level-id=xyz;packetization-mode=1\""
                )
            ),
            vec!["mountpoint 8", "media[0]", "fmtp", "profile-level-id"],
        ),
        (
            "[[streaming.mountpoints]]\nid = 9\ntype = \"rtsp\"\nurl = \"rtsp://127.0.0.1/cam\"\n\
             videocodec = \"h264\"\nvideofmtp = \"packetization-mode=7\"\n"
                .to_owned(),
            vec!["mountpoint 9", "fmtp", "packetization-mode"],
        ),
    ];
    for (n, (mountpoints, names)) in cases.iter().enumerate() {
        let file = dir.join(format!("mp{n}.toml"));
        std::fs::write(&file, format!("{LOOPBACK}{mountpoints}")).unwrap();
        let path = file.to_str().unwrap();
        let (code, out, err) = cardea(&["--config", path, "--check-config"]);
        assert_ne!(code, 0, "{mountpoints}: {out}");
        assert!(err.contains("streaming.mountpoints"), "{err}");
        for name in names {
            assert!(err.contains(name), "'{name}' in: {err}");
        }
        // A start with the same file stops with the same message, before serving.
        let (code, _, start_err) = cardea(&["--config", path]);
        assert_ne!(code, 0, "{mountpoints}");
        let message = err
            .trim()
            .trim_start_matches("cardea: invalid configuration: ");
        assert!(start_err.contains(message), "{start_err}\nvs {message}");
    }
    // A camera by its URL alone, and the Janus way (flags without codecs), are fine.
    let fine = dir.join("fine.toml");
    std::fs::write(
        &fine,
        format!(
            "{LOOPBACK}[[streaming.mountpoints]]\nid = 10\ntype = \"rtsp\"\n\
             url = \"rtsp://127.0.0.1:1/cam\"\n[[streaming.mountpoints]]\nid = 11\n\
             type = \"rtsp\"\nurl = \"rtsp://127.0.0.1:1/cam2\"\naudio = true\nvideo = true\n"
        ),
    )
    .unwrap();
    let (code, out, err) = cardea(&["--config", fine.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
