//! The HTTP/1.1 server under every listener (main and admin API, WebSocket, the page):
//! axum's router on hyper's connection, with what `axum::serve` leaves out and an open
//! network needs (`[http]` sets each):
//!
//! * a header read timeout: a client must send a request's whole header within it, and
//!   an idle keep-alive connection is closed after it (slow-loris holds nothing);
//! * a cap on open connections per listener, and one per client address, past which a
//!   new connection is closed at once (counted, logged at powers of two).
//!
//! A WebSocket, once upgraded, leaves the HTTP connection behind and with it this
//! accounting: neither the timeout nor the caps count it any more (its bounds are the
//! session limits and `websocket.max_queued_messages`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::contain::lock;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections open at once.
    pub(crate) max_connections: usize,
    /// Connections open at once from one address.
    pub(crate) max_per_client: usize,
    /// Time to send a request's header (and to start the next one on a kept-alive connection).
    pub(crate) header_timeout: Duration,
}

/// Open connections per client address; an entry leaves with its last connection.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerClient`], given back when dropped.
struct ClientSlot {
    table: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    fn take(table: &Arc<PerClient>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut t = lock(&table.0);
        let n = t.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut t = lock(&self.table.0);
        if let Some(n) = t.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

/// Connections refused at a cap, over every listener (for the log's powers of two).
static REFUSED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Accepts connections on `listener` and serves `router` on each until `shutdown`
/// flips; connections then finish what they are doing (graceful shutdown) and close.
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = Arc::new(PerClient::default());
    loop {
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: go on.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Some(held) = admit(&open, &per_client, remote.ip(), limits) else {
            let n = REFUSED_CONNECTIONS.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(client = %remote.ip(), refused = n, "connection refused at a cap");
            }
            continue; // dropping `tcp` closes it
        };
        // Small JSON messages each way: Nagle's algorithm would hold replies back for the
        // peer's delayed ACK (tens of milliseconds per WebSocket round trip).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        tokio::spawn(connection(
            tcp,
            remote,
            router.clone(),
            limits,
            held,
            shutdown.clone(),
        ));
    }
}

/// A connection's places under both caps, or `None` when either is full.
fn admit(
    open: &Arc<Semaphore>,
    per_client: &Arc<PerClient>,
    ip: IpAddr,
    limits: Limits,
) -> Option<(OwnedSemaphorePermit, ClientSlot)> {
    let permit = open.clone().try_acquire_owned().ok()?;
    let slot = PerClient::take(per_client, ip, limits.max_per_client)?;
    Some((permit, slot))
}

async fn connection(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: Limits,
    _held: (OwnedSemaphorePermit, ClientSlot),
    mut shutdown: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(remote));
        router.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %remote, error = %e, "HTTP connection ended");
    }
}
