//! `[events]`: Janus-style event handlers. What the gateway reports (sessions, handles,
//! JSEP, WebRTC and media state, plugin events, start and stop) in Janus's envelope,
//! batched to HTTP webhooks and published on a NATS subject.

use serde::Deserialize;

/// `[events]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Report events at all.
    pub enabled: bool,
    /// `emitter` of every event (Janus's `server_name`): tells gateways apart on one bus.
    pub emitter: String,
    /// Which types: `all`, or names among sessions, handles, jsep, webrtc, media,
    /// plugins, core (and external, transports, which Cardea does not emit).
    pub types: Vec<String>,
    /// Events waiting for each sink; past it new ones are dropped and counted.
    pub queue: usize,
    /// Most events in one webhook POST.
    pub batch: usize,
    /// Webhooks: each gets every event, in batches (a JSON array per POST).
    pub webhooks: Vec<WebhookConfig>,
    /// A NATS subject: one message per event.
    pub nats: NatsConfig,
}

/// `[[events.webhooks]]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://host:port/path` (plain HTTP: put a TLS proxy in front for HTTPS).
    pub url: String,
    /// Sent as `Authorization: Bearer <bearer>` when set.
    #[serde(default)]
    pub bearer: String,
    /// Attempts after the first failure (backoff 0.5 s, doubling, at most 8 s); then
    /// the batch is dropped and counted.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_retries() -> u32 {
    3
}

/// `[events.nats]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// `nats://host:port` (credentials as `nats://user:pass@host:port`); "" = off.
    pub url: String,
    /// The subject events are published on.
    pub subject: String,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: false,
            emitter: "Cardea".into(),
            types: vec!["all".into()],
            queue: 10_000,
            batch: 100,
            webhooks: Vec::new(),
            nats: NatsConfig::default(),
        }
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: String::new(),
            subject: "cardea.events".into(),
        }
    }
}

/// Janus's event types, by the names `types` takes.
const EVENT_TYPES: [(&str, u32); 9] = [
    ("sessions", 1),
    ("handles", 2),
    ("external", 4),
    ("jsep", 8),
    ("webrtc", 16),
    ("media", 32),
    ("plugins", 64),
    ("transports", 128),
    ("core", 256),
];

impl EventsConfig {
    /// The types to report, as Janus's bit mask (0 when off).
    pub fn mask(&self) -> u32 {
        if !self.enabled {
            return 0;
        }
        self.types
            .iter()
            .map(|t| match t.as_str() {
                "all" => u32::MAX,
                name => EVENT_TYPES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(0, |(_, bit)| *bit),
            })
            .fold(0, |a, b| a | b)
    }

    /// What is wrong, with the key that holds it.
    pub(super) fn problem(&self) -> Option<(&'static str, String)> {
        for t in &self.types {
            if t != "all" && !EVENT_TYPES.iter().any(|(n, _)| n == t) {
                let names: Vec<&str> = EVENT_TYPES.iter().map(|(n, _)| *n).collect();
                return Some((
                    "events.types",
                    format!(
                        "unknown type {t:?}: use \"all\" or some of {}",
                        names.join(", ")
                    ),
                ));
            }
        }
        if !(1..=1_000_000).contains(&self.queue) {
            return Some(("events.queue", "must be 1 to 1000000".into()));
        }
        if !(1..=10_000).contains(&self.batch) {
            return Some(("events.batch", "must be 1 to 10000".into()));
        }
        if self.emitter.len() > 256 || self.emitter.chars().any(char::is_control) {
            return Some((
                "events.emitter",
                "must be at most 256 bytes, without control characters".into(),
            ));
        }
        if self.webhooks.len() > 16 {
            return Some(("events.webhooks", "at most 16".into()));
        }
        for w in &self.webhooks {
            match url::Url::parse(&w.url) {
                Ok(u) if u.scheme() == "http" && u.host().is_some() => {}
                _ => {
                    return Some((
                        "events.webhooks.url",
                        "must be an http://host[:port]/path URL (no TLS: put a proxy in front)"
                            .into(),
                    ))
                }
            }
            if w.retries > 10 {
                return Some(("events.webhooks.retries", "at most 10".into()));
            }
            if w.bearer.chars().any(char::is_control) {
                return Some((
                    "events.webhooks.bearer",
                    "must not hold control characters".into(),
                ));
            }
        }
        if !self.nats.url.is_empty() {
            match url::Url::parse(&self.nats.url) {
                Ok(u) if u.scheme() == "nats" && u.host().is_some() => {}
                _ => return Some(("events.nats.url", "must be a nats://host[:port] URL".into())),
            }
            let s = &self.nats.subject;
            if s.is_empty()
                || s.len() > 256
                || s.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Some((
                    "events.nats.subject",
                    "must be 1 to 256 characters, no spaces".into(),
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_make_janus_masks() {
        let mut c = EventsConfig::default();
        assert_eq!(c.mask(), 0, "off by default");
        c.enabled = true;
        assert_eq!(c.mask(), u32::MAX);
        c.types = vec!["sessions".into(), "webrtc".into(), "core".into()];
        assert_eq!(c.mask(), 1 | 16 | 256);
        assert_eq!(c.problem(), None);
        c.types = vec!["session\r\n".into()];
        assert_eq!(c.problem().map(|p| p.0), Some("events.types"));
    }

    #[test]
    fn sinks_are_checked() {
        let mut c = EventsConfig::default();
        c.webhooks.push(WebhookConfig {
            url: "https://example.org/x".into(),
            bearer: String::new(),
            retries: 3,
        });
        assert_eq!(c.problem().map(|p| p.0), Some("events.webhooks.url"));
        c.webhooks[0].url = "http://127.0.0.1:9/x".into();
        assert_eq!(c.problem(), None);
        c.nats.url = "http://127.0.0.1:4222".into();
        assert_eq!(c.problem().map(|p| p.0), Some("events.nats.url"));
        c.nats.url = "nats://user:pa\u{e9}ss@127.0.0.1:4222".into();
        assert_eq!(c.problem(), None);
        c.nats.subject = "a b".into();
        assert_eq!(c.problem().map(|p| p.0), Some("events.nats.subject"));
    }
}
