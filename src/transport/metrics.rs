//! `GET /metrics`: the gateway's [`Metrics`] snapshot and the process's own figures
//! (CPU, RSS, open files, build) in the Prometheus text exposition format (0.0.4),
//! encoded by `prometheus-client`.
//!
//! Served by the HTTP admin listener, or by a listener of its own (`metrics.bind`);
//! with `metrics.token` set, a scrape must carry `Authorization: Bearer <token>`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::Hub;
use crate::api::metrics::{MetricKind, Metrics};

/// The route, for a listener's router.
pub(crate) fn router(hub: Arc<Hub>) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(hub)
}

async fn scrape(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
    let token = &hub.config.metrics.token;
    if !token.is_empty() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !crate::secret::given_eq(given, token) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a metrics token is required\n",
            )
                .into_response();
        }
    }
    let mut m = hub.with_gateway(|g, now| g.metrics(now));
    event_metrics(&hub, &mut m);
    process_metrics(&mut m);
    match encode(m) {
        Ok(text) => (
            [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(_) => {
            tracing::error!("metrics could not be encoded");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The snapshot in the text exposition format.
fn encode(m: Metrics) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(m)));
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// One scrape's figures, handed to the encoder as a collector.
#[derive(Debug)]
struct Snapshot(Metrics);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in self.0.families() {
            let kind = match f.kind {
                MetricKind::Gauge => MetricType::Gauge,
                MetricKind::Counter => MetricType::Counter,
            };
            let mut family = encoder.encode_descriptor(f.name, f.help, None, kind)?;
            for s in &f.samples {
                let labels: Vec<(&str, &str)> =
                    s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let sample = family.encode_family(&labels)?;
                match f.kind {
                    MetricKind::Gauge => ConstGauge::new(s.value).encode(sample)?,
                    MetricKind::Counter => ConstCounter::new(s.value).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

/// The event handlers' queues and what they sent and dropped, per sink.
fn event_metrics(hub: &Hub, m: &mut Metrics) {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(sink) = &hub.event_sink else { return };
    let sinks = &sink.counters.sinks;
    let f = m.gauge(
        "cardea_events_queued",
        "Events waiting for an event handler, per sink.",
    );
    for (name, c) in sinks {
        f.with(&[("sink", name)], c.queued() as f64);
    }
    let f = m.counter(
        "cardea_events_sent",
        "Events an event handler took, per sink.",
    );
    for (name, c) in sinks {
        f.with(&[("sink", name)], c.sent.load(Relaxed) as f64);
    }
    let f = m.counter(
        "cardea_events_dropped",
        "Events dropped: a sink's queue full or its retries spent.",
    );
    for (name, c) in sinks {
        f.with(&[("sink", name)], c.dropped.load(Relaxed) as f64);
    }
    let f = m.counter("cardea_events_failures", "Webhook attempts that failed.");
    for (name, c) in sinks {
        f.with(&[("sink", name)], c.failures.load(Relaxed) as f64);
    }
}

/// The process's figures, as Prometheus's client libraries name them, and the build.
fn process_metrics(m: &mut Metrics) {
    m.gauge(
        "cardea_build_info",
        "The running build: version (always 1).",
    )
    .with(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    // Linux only; elsewhere these families are left out.
    if let Some(cpu) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(cpu_seconds)
    {
        m.counter(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds.",
        )
        .value(cpu);
    }
    if let Some(rss) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(rss_bytes)
    {
        m.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        )
        .value(rss as f64);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        m.gauge("process_open_fds", "Open file descriptors.")
            .value(dir.count() as f64);
    }
}

/// utime + stime of `/proc/self/stat`, in seconds (the kernel reports them in
/// USER_HZ ticks, 100 per second on every Linux architecture).
fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from the
    // last ')'. utime and stime are fields 14 and 15, i.e. 11 and 12 after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_help_type_total_and_escaped_labels() {
        let mut m = Metrics::default();
        m.gauge("cardea_streaming_viewers", "Viewers.")
            .with(&[("mountpoint", "1")], 3.0)
            .with(&[("mountpoint", "a\"b\\c\nd")], 0.0);
        m.counter("cardea_media_dropped", "Drops.")
            .with(&[("reason", "garbage")], 7.0);
        m.gauge("cardea_empty", "Nothing yet.");
        let text = encode(m).unwrap();
        assert!(
            text.contains("# HELP cardea_streaming_viewers Viewers.\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE cardea_streaming_viewers gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("cardea_streaming_viewers{mountpoint=\"1\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(r#"cardea_streaming_viewers{mountpoint="a\"b\\c\nd"} 0"#),
            "{text}"
        );
        assert!(
            text.contains("# TYPE cardea_media_dropped_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("cardea_media_dropped_total{reason=\"garbage\"} 7"),
            "{text}"
        );
    }

    #[test]
    fn proc_files_are_read_from_their_real_shapes() {
        // A command name with spaces and parentheses, as /proc allows.
        let stat = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1000000 500";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
        let status = "Name:\tcardea\nVmPeak:\t  200 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        assert_eq!(rss_bytes(status), Some(12345 * 1024));
        assert_eq!(rss_bytes("Name: x\n"), None);
        // This process's own files parse.
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_seconds(&own).is_some());
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(rss_bytes(&own).unwrap() > 0);
    }
}
