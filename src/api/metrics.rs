//! What the gateway reports to a metrics scrape (Prometheus): a snapshot of named
//! families of samples, taken under the gateway's lock and encoded by the transport.
//!
//! Sans-IO and format-free: the core and each plugin add families here
//! ([`crate::plugin::Plugin::metrics`]); `transport::metrics` turns the snapshot into
//! the text exposition format with `prometheus-client`. Label values come from the
//! gateway's own tables (mountpoint ids, states, SIP codes), never from free text a
//! client sent, so every family's size is bounded by a table's bound.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use crate::media::webrtc::{MediaCounters, PeerState};

/// A gauge (a level that goes up and down) or a counter (a total that only grows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A level: sessions, viewers, state flags.
    Gauge,
    /// A running total since start; the exposition adds `_total` to its name.
    Counter,
}

/// One sample: its labels (name, value) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label names are fixed by the code; values come from the gateway's tables.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// A metric: name (`cardea_...`, without `_total`), help text, kind, samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The metric's name.
    pub name: &'static str,
    /// One line for `# HELP`.
    pub help: &'static str,
    /// Gauge or counter.
    pub kind: MetricKind,
    /// Its samples; a family may have none (nothing to count yet).
    pub samples: Vec<Sample>,
}

impl Family {
    /// Adds a sample with `labels`.
    pub fn with(&mut self, labels: &[(&'static str, &str)], value: impl Into<f64>) -> &mut Self {
        self.samples.push(Sample {
            labels: labels.iter().map(|&(k, v)| (k, v.to_owned())).collect(),
            value: value.into(),
        });
        self
    }

    /// Adds the sample without labels.
    pub fn value(&mut self, value: impl Into<f64>) -> &mut Self {
        self.with(&[], value)
    }
}

/// The families of one scrape, in the order they were added.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Metrics {
    families: Vec<Family>,
}

impl Metrics {
    /// Starts a gauge.
    pub fn gauge(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.family(name, help, MetricKind::Gauge)
    }

    /// Starts a counter.
    pub fn counter(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.family(name, help, MetricKind::Counter)
    }

    fn family(&mut self, name: &'static str, help: &'static str, kind: MetricKind) -> &mut Family {
        debug_assert!(
            self.families.iter().all(|f| f.name != name),
            "metric {name} added twice"
        );
        self.families.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
        self.families.last_mut().expect("just pushed")
    }

    /// The families.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The value of `name`'s sample whose labels include `labels` (tests, benches).
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let f = self.families.iter().find(|f| f.name == name)?;
        f.samples
            .iter()
            .find(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
    }
}

impl super::Gateway {
    /// What a metrics scrape reports of the core, the media engine and every plugin.
    pub fn metrics(&self, now: Instant) -> Metrics {
        let core = &self.core;
        let mut m = Metrics::default();
        m.gauge("cardea_sessions", "Janus API sessions open.")
            .value(core.sessions.len() as f64);
        m.gauge("cardea_handles", "Plugin handles attached.")
            .value(core.handles.len() as f64);
        let mut by_plugin = vec![0u32; self.plugins.len()];
        let mut by_state = [0u32; PeerState::ALL.len()];
        for h in core.handles.values() {
            by_plugin[h.plugin] += 1;
            if let Some(pc) = &h.pc {
                by_state[pc.stats.state() as usize] += 1;
            }
        }
        let handles = m.gauge("cardea_plugin_handles", "Handles attached, per plugin.");
        for (p, n) in self.plugins.iter().zip(by_plugin) {
            handles.with(&[("plugin", p.info().package)], n);
        }
        let pcs = m.gauge(
            "cardea_peerconnections",
            "WebRTC PeerConnections of handles, by state.",
        );
        for (state, n) in PeerState::ALL.iter().zip(by_state) {
            pcs.with(&[("state", state.name())], n);
        }
        let whip = core.whep.values().filter(|w| w.publisher).count();
        m.gauge("cardea_whep_viewers", "Viewers that came by WHEP.")
            .value((core.whep.len() - whip) as f64);
        m.gauge("cardea_whip_publishers", "Publishers that came by WHIP.")
            .value(whip as f64);
        m.counter(
            "cardea_dropped_events",
            "Events dropped because a session's queue was full (a client not polling).",
        )
        .value(core.dropped_events as f64);
        m.gauge(
            "cardea_uptime_seconds",
            "Seconds since the gateway started.",
        )
        .value(now.saturating_duration_since(core.started).as_secs_f64());
        media_metrics(core.webrtc.counters(), &mut m);
        for p in &self.plugins {
            p.metrics(now, &mut m);
        }
        m
    }
}

/// The media engine's counters, summed over its shards (peers also per shard).
fn media_metrics(shards: &[Arc<MediaCounters>], m: &mut Metrics) {
    let sum = |f: fn(&MediaCounters) -> &AtomicU64| -> f64 {
        shards.iter().map(|c| f(c).load(Relaxed)).sum::<u64>() as f64
    };
    let peers = m.gauge(
        "cardea_media_peers",
        "WebRTC peers served by each media shard.",
    );
    for (i, c) in shards.iter().enumerate() {
        peers.with(&[("shard", &i.to_string())], c.peers.load(Relaxed) as f64);
    }
    m.counter(
        "cardea_media_datagrams_in",
        "UDP datagrams received on the media sockets.",
    )
    .value(sum(|c| &c.datagrams_in));
    m.counter(
        "cardea_media_bytes_in",
        "Bytes of the UDP datagrams received on the media sockets.",
    )
    .value(sum(|c| &c.bytes_in));
    m.counter(
        "cardea_media_datagrams_out",
        "UDP datagrams sent from the media sockets.",
    )
    .value(sum(|c| &c.datagrams_out));
    m.counter(
        "cardea_media_bytes_out",
        "Bytes of the UDP datagrams sent from the media sockets.",
    )
    .value(sum(|c| &c.bytes_out));
    m.counter(
        "cardea_media_send_calls",
        "System calls that sent them (one per GSO run of datagrams).",
    )
    .value(sum(|c| &c.send_calls));
    m.counter(
        "cardea_media_dropped",
        "Media datagrams, source packets and commands dropped, by reason.",
    )
    .with(&[("reason", "garbage")], sum(|c| &c.dropped_garbage))
    .with(
        &[("reason", "unknown_peer")],
        sum(|c| &c.dropped_unknown_peer),
    )
    .with(&[("reason", "rejected")], sum(|c| &c.dropped_rejected))
    .with(&[("reason", "queue_full")], sum(|c| &c.dropped_queue_full))
    .with(&[("reason", "commands")], sum(|c| &c.dropped_commands));
    m.counter(
        "cardea_media_keyframe_requests",
        "Keyframe requests (RTCP PLI/FIR) received from WebRTC peers.",
    )
    .value(sum(|c| &c.keyframe_requests));
    m.counter(
        "cardea_media_nacks",
        "NACK messages received from WebRTC peers (packets they lost).",
    )
    .value(sum(|c| &c.nacks));
    m.counter(
        "cardea_media_retransmitted_packets",
        "Packets sent again to WebRTC peers answering their NACKs (RTX, or repeated).",
    )
    .value(sum(|c| &c.retransmitted));
    m.counter(
        "cardea_media_retransmissions_unsent",
        "NACKed packets not sent again: missed (no longer in the source's history), \
         refused (never sent to that viewer, too old, asked too often, over its share).",
    )
    .with(&[("reason", "missed")], sum(|c| &c.retransmit_missed))
    .with(&[("reason", "refused")], sum(|c| &c.retransmit_refused));
    m.counter(
        "cardea_media_peer_panics",
        "Peers closed because handling their media panicked (a bug to report).",
    )
    .value(sum(|c| &c.peer_panics));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_matches_a_subset_of_labels() {
        let mut m = Metrics::default();
        m.gauge("g", "a gauge")
            .with(&[("mountpoint", "1"), ("kind", "rtp")], 3.0)
            .with(&[("mountpoint", "2"), ("kind", "rtp")], 5.0);
        assert_eq!(m.find("g", &[("mountpoint", "2")]), Some(5.0));
        assert_eq!(m.find("g", &[]), Some(3.0));
        assert_eq!(m.find("g", &[("mountpoint", "3")]), None);
        assert_eq!(m.find("h", &[]), None);
    }
}
