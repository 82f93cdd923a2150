//! `[media]`: the WebRTC media shards, their sockets and candidates, ICE servers.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

/// `[media]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Address of the first media shard's UDP socket; shard k binds the port after
    /// shard k-1's (or a port of the OS's choosing each, for port 0).
    pub udp_bind: SocketAddr,
    /// Media shards: threads with WebRTC peers of their own, one UDP socket each.
    /// 0: one per core.
    pub shards: usize,
    /// Addresses offered as host candidates. Empty: every interface address found at start.
    pub host_addresses: Vec<IpAddr>,
    /// Offer 127.0.0.1 as a candidate too (Janus never does; useful for localhost demos and tests).
    pub include_loopback: bool,
    /// Address advertised to peers in front of a NAT or Docker port mapping: the only
    /// host candidate when set (loopback ones aside); empty for none. The environment
    /// variable `CARDEA_PUBLIC_ADDRESS` overrides it.
    pub public_address: String,
    /// The port advertised with `public_address` when a port mapping differs from
    /// `udp_bind`'s (Docker `-p 20000:10000/udp`); 0: the bound port.
    pub public_port: u16,
    /// Send a REMB to a publisher at most this many bits per second when a plugin sets none.
    pub default_remb_bitrate: u64,
    /// ICE-lite (RFC 8445 §2.5): the gateway answers the browser's connectivity checks
    /// and lets the browser nominate, instead of running checks of its own. Its
    /// candidates are host candidates (public, mapped or advertised) that browsers must
    /// reach anyway, so nothing is lost, and a viewer connects in one round of checks
    /// (full ICE paces its own checks 50 ms apart and waits for the browser's answer
    /// before it starts). false: full ICE, as Janus's default.
    pub ice_lite: bool,
    /// STUN and TURN servers handed to browsers (the pages read them from the gateway).
    pub ice_servers: Vec<IceServerConfig>,
    /// How long each source's packets are kept to answer viewers' NACKs (one history per
    /// source, shared by its viewers), milliseconds; 0: no retransmissions.
    pub nack_history_ms: u64,
}

/// `[[media.ice_servers]]`: a STUN or TURN server for browsers. The gateway's own
/// candidates are host candidates (str0m gathers no server-reflexive or relay ones);
/// these let a browser behind NAT reach it through TURN.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:…`.
    pub urls: Vec<String>,
    /// A TURN server's static user.
    #[serde(default)]
    pub username: Option<String>,
    /// Its password.
    #[serde(default)]
    pub credential: Option<String>,
    /// coturn's `static-auth-secret` (`use-auth-secret`): the gateway hands out
    /// credentials that expire after `rest_ttl` seconds instead of a static user.
    #[serde(default)]
    pub rest_secret: Option<String>,
    /// Lifetime of those credentials, seconds (60 to 604800).
    #[serde(default = "default_rest_ttl")]
    pub rest_ttl: u64,
    /// The user part of those credentials (`<expiry>:<rest_user>`).
    #[serde(default = "default_rest_user")]
    pub rest_user: String,
}

fn default_rest_ttl() -> u64 {
    86_400
}

fn default_rest_user() -> String {
    "cardea".into()
}

impl std::fmt::Debug for IceServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("IceServerConfig")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &hidden(&self.credential))
            .field("rest_secret", &hidden(&self.rest_secret))
            .field("rest_ttl", &self.rest_ttl)
            .field("rest_user", &self.rest_user)
            .finish()
    }
}

impl IceServerConfig {
    /// What is wrong with it, if anything.
    fn problem(&self) -> Option<&'static str> {
        if self.urls.is_empty() {
            return Some("each server needs at least one url");
        }
        let clean = |s: &str| s.len() <= 512 && s.bytes().all(|b| (0x21..0x7f).contains(&b));
        let mut turn = false;
        for u in &self.urls {
            let scheme = u.split(':').next().unwrap_or("");
            match scheme {
                "stun" | "stuns" => {}
                "turn" | "turns" => turn = true,
                _ => return Some("urls start with stun:, stuns:, turn: or turns:"),
            }
            if !clean(u) || u.len() <= scheme.len() + 1 {
                return Some("urls are printable ASCII without spaces, with a host");
            }
        }
        let fixed = self.username.is_some() || self.credential.is_some();
        let fields = [&self.username, &self.credential, &self.rest_secret];
        if fields
            .iter()
            .any(|f| f.as_deref().is_some_and(|v| !clean(v) || v.is_empty()))
        {
            return Some("username, credential and rest_secret are printable ASCII without spaces");
        }
        if !clean(&self.rest_user) || self.rest_user.contains(':') {
            return Some("rest_user is printable ASCII without spaces or ':'");
        }
        if fixed && self.rest_secret.is_some() {
            return Some("a server takes username + credential or rest_secret, not both");
        }
        if fixed && (self.username.is_none() || self.credential.is_none()) {
            return Some("username and credential go together");
        }
        if turn && !fixed && self.rest_secret.is_none() {
            return Some("a TURN server needs username + credential, or rest_secret");
        }
        if !(60..=604_800).contains(&self.rest_ttl) {
            return Some("rest_ttl is 60 to 604800 seconds");
        }
        None
    }
}

impl MediaConfig {
    /// The key that is wrong, and why, if any.
    pub(super) fn problem(&self) -> Option<(&'static str, &'static str)> {
        if let Some(problem) = self.ice_servers.iter().find_map(IceServerConfig::problem) {
            return Some(("media.ice_servers", problem));
        }
        if self.shards > crate::media::webrtc::shard::MAX_SHARDS {
            return Some(("media.shards", "at most 64 (0: one per core)"));
        }
        let shards = self.shard_count();
        for (key, port) in [
            ("media.udp_bind", self.udp_bind.port()),
            ("media.public_port", self.public_port),
        ] {
            if port != 0 && usize::from(port) + shards - 1 > usize::from(u16::MAX) {
                return Some((
                    key,
                    "leaves no room for one port per media shard (see media.shards)",
                ));
            }
        }
        if self.nack_history_ms > MAX_NACK_HISTORY_MS {
            return Some((
                "media.nack_history_ms",
                "at most 10000 milliseconds (0: no retransmissions)",
            ));
        }
        if !self.public_address.is_empty() {
            match self.public_address.parse::<IpAddr>() {
                Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() => {}
                _ => return Some((
                    "media.public_address",
                    "must be the IP address peers reach (e.g. \"203.0.113.7\"), or \"\" for none",
                )),
            }
        }
        None
    }

    /// How many media shards run: `shards`, or one per core.
    pub fn shard_count(&self) -> usize {
        match self.shards {
            0 => std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(crate::media::webrtc::shard::MAX_SHARDS),
            n => n.min(crate::media::webrtc::shard::MAX_SHARDS),
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            udp_bind: ([0, 0, 0, 0], 10000).into(),
            shards: 0,
            host_addresses: Vec::new(),
            include_loopback: true,
            public_address: String::new(),
            public_port: 0,
            default_remb_bitrate: 0,
            ice_lite: true,
            ice_servers: Vec::new(),
            nack_history_ms: 1000,
        }
    }
}

/// Longest NACK history: beyond a few seconds a retransmission comes too late to play.
const MAX_NACK_HISTORY_MS: u64 = 10_000;
