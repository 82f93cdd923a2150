//! The event handlers' driver: events the core reported, stamped with the emitter and
//! the time, go to every configured sink, each with a bounded queue of its own so a
//! slow or dead one holds back neither the others nor the gateway:
//!
//! * a webhook gets them in batches (a JSON array per `POST`, up to `events.batch`),
//!   retried with backoff (0.5 s doubling, at most 8 s) `retries` times, then dropped;
//! * NATS gets one message per event on `events.nats.subject` (async-nats reconnects by
//!   itself; what cannot be published is dropped).
//!
//! Everything dropped is counted ([`EventCounters`], in the metrics).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::api::events::HandlerEvent;
use crate::config::{EventsConfig, WebhookConfig};

/// Longest wait between a webhook's attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a batch waits for more events once it has one.
const LINGER: Duration = Duration::from_millis(50);

/// What happened to events, per sink.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Events handed over (a webhook's 2xx, NATS's publish).
    pub sent: AtomicU64,
    /// Events dropped: the sink's queue was full, or its retries ran out.
    pub dropped: AtomicU64,
    /// Webhook attempts that failed (and were retried or gave up).
    pub failures: AtomicU64,
    /// The sink's queue's bound and free room, for the depth.
    capacity: AtomicU64,
    free: AtomicU64,
}

impl SinkCounters {
    /// Events waiting in the sink's queue.
    pub fn queued(&self) -> u64 {
        self.capacity
            .load(Relaxed)
            .saturating_sub(self.free.load(Relaxed))
    }
}

/// Every sink's counters, by name (`webhook:<n>`, `nats`).
#[derive(Debug, Default)]
pub struct EventCounters {
    /// The sinks, in configuration order.
    pub sinks: Vec<(String, Arc<SinkCounters>)>,
}

/// Where the hub hands events.
pub(crate) struct EventSink {
    emitter: String,
    sinks: Vec<(mpsc::Sender<Arc<Value>>, Arc<SinkCounters>)>,
    pub(crate) counters: Arc<EventCounters>,
}

impl EventSink {
    /// Starts a task per sink of `config` on `tasks`; `None` when events are off or
    /// have nowhere to go.
    pub(crate) fn start(
        config: &EventsConfig,
        tasks: &mut JoinSet<()>,
        shutdown: watch::Receiver<bool>,
    ) -> Option<EventSink> {
        if !config.enabled || (config.webhooks.is_empty() && config.nats.url.is_empty()) {
            return None;
        }
        let mut sinks = Vec::new();
        let mut named = Vec::new();
        let mut queue = |name: String| {
            let (tx, rx) = mpsc::channel(config.queue);
            let c = Arc::new(SinkCounters::default());
            c.capacity.store(config.queue as u64, Relaxed);
            c.free.store(config.queue as u64, Relaxed);
            named.push((name, c.clone()));
            sinks.push((tx, c.clone()));
            (rx, c)
        };
        for (i, hook) in config.webhooks.iter().enumerate() {
            let (rx, c) = queue(format!("webhook:{i}"));
            tasks.spawn(webhook(hook.clone(), config.batch, rx, c, shutdown.clone()));
        }
        if !config.nats.url.is_empty() {
            let (rx, c) = queue("nats".into());
            let nats = config.nats.clone();
            tasks.spawn(publish_nats(nats.url, nats.subject, rx, c, shutdown));
        }
        Some(EventSink {
            emitter: config.emitter.clone(),
            sinks,
            counters: Arc::new(EventCounters { sinks: named }),
        })
    }

    /// Stamps `e` and queues it for every sink (never waits: a full queue drops it).
    pub(crate) fn send(&self, e: &HandlerEvent) {
        #[allow(clippy::disallowed_methods)] // events carry the wall-clock time, as Janus's
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let v = Arc::new(e.envelope(&self.emitter, now_us));
        for (tx, c) in &self.sinks {
            match tx.try_send(v.clone()) {
                Ok(()) => {}
                Err(_) => {
                    let n = c.dropped.fetch_add(1, Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(dropped = n, "event handler queue full: events dropped");
                    }
                }
            }
            c.free.store(tx.capacity() as u64, Relaxed);
        }
    }
}

/// One webhook: batches from its queue, POSTed with retries.
async fn webhook(
    hook: WebhookConfig,
    batch: usize,
    mut rx: mpsc::Receiver<Arc<Value>>,
    c: Arc<SinkCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client: Client<_, Body> = Client::builder(TokioExecutor::new()).build_http();
    let shown = crate::ingest::rtsp::redact(&hook.url);
    let mut events: Vec<Arc<Value>> = Vec::with_capacity(batch);
    loop {
        let first = tokio::select! {
            e = rx.recv() => e,
            _ = shutdown.changed() => None,
        };
        let Some(first) = first else { break };
        events.push(first);
        // A burst (a session's attach, JSEP, webrtcup) goes in one POST.
        let deadline = tokio::time::sleep(LINGER);
        tokio::pin!(deadline);
        while events.len() < batch {
            tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => events.push(e),
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        c.free.store(rx.capacity() as u64, Relaxed);
        let body = Value::Array(events.iter().map(|e| (**e).clone()).collect()).to_string();
        let n = events.len() as u64;
        events.clear();
        let mut backoff = Duration::from_millis(500);
        let mut attempt = 0;
        loop {
            match post(&client, &hook, body.clone()).await {
                Ok(()) => {
                    c.sent.fetch_add(n, Relaxed);
                    break;
                }
                Err(e) => {
                    c.failures.fetch_add(1, Relaxed);
                    if attempt >= hook.retries {
                        c.dropped.fetch_add(n, Relaxed);
                        tracing::warn!(webhook = %shown, error = %e, events = n, "webhook unreachable: events dropped");
                        break;
                    }
                    tracing::debug!(webhook = %shown, error = %e, "webhook failed: retrying");
                    attempt += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

async fn post(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Body>,
    hook: &WebhookConfig,
    body: String,
) -> Result<(), String> {
    let mut req = hyper::Request::post(&hook.url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "Cardea");
    if !hook.bearer.is_empty() {
        req = req.header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", hook.bearer),
        );
    }
    let req = req.body(Body::from(body)).map_err(|e| e.to_string())?;
    match tokio::time::timeout(POST_TIMEOUT, client.request(req)).await {
        Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
        Ok(Ok(resp)) => Err(format!("HTTP {}", resp.status())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {POST_TIMEOUT:?}")),
    }
}

/// NATS: one message per event on `subject`.
async fn publish_nats(
    url: String,
    subject: String,
    mut rx: mpsc::Receiver<Arc<Value>>,
    c: Arc<SinkCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let shown = crate::ingest::rtsp::redact(&url);
    // Connects in the background and keeps reconnecting; publishes wait in its buffer.
    let options = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .name("cardea");
    let client = match options.connect(url.as_str()).await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(nats = %shown, error = %e, "NATS: cannot connect; events to it are dropped");
            return drain_dropping(rx, c, shutdown).await;
        }
    };
    tracing::info!(nats = %shown, %subject, "publishing events to NATS");
    loop {
        let e = tokio::select! {
            e = rx.recv() => e,
            _ = shutdown.changed() => None,
        };
        let Some(e) = e else { break };
        c.free.store(rx.capacity() as u64, Relaxed);
        match client.publish(subject.clone(), e.to_string().into()).await {
            Ok(()) => {
                c.sent.fetch_add(1, Relaxed);
            }
            Err(err) => {
                c.dropped.fetch_add(1, Relaxed);
                tracing::debug!(nats = %shown, error = %err, "NATS publish failed");
            }
        }
    }
    let _ = client.flush().await;
}

async fn drain_dropping(
    mut rx: mpsc::Receiver<Arc<Value>>,
    c: Arc<SinkCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            e = rx.recv() => match e {
                Some(_) => { c.dropped.fetch_add(1, Relaxed); }
                None => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}
