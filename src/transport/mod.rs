//! Transports: HTTP (REST and long poll), WebSocket, the admin listeners, the pages
//! and snapshots. They reach the gateway only through the runtime's [`Hub`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub(crate) use crate::runtime::Hub;
use crate::runtime::StartError;

pub(crate) mod http;
pub(crate) mod ice_servers;
pub(crate) mod metrics;
mod serve;
pub(crate) mod snapshot;
pub(crate) mod web;
pub(crate) mod whep;
pub(crate) mod ws;

/// Binds `addr` for the listener `what`.
pub(crate) async fn bind_tcp(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })?;
    let local = l
        .local_addr()
        .map_err(|source| StartError::Bind { what, addr, source })?;
    Ok((l, local))
}

/// Serves `router` on `listener` with the HTTP limits of `config` until shutdown.
pub(crate) fn spawn_serve(
    tasks: &mut JoinSet<()>,
    listener: TcpListener,
    router: axum::Router,
    config: &crate::config::HttpConfig,
    shutdown: watch::Receiver<bool>,
) {
    let limits = serve::Limits {
        max_connections: config.max_connections,
        max_per_client: config.max_connections_per_client,
        header_timeout: Duration::from_secs(config.header_read_timeout_seconds.max(1)),
    };
    tasks.spawn(serve::run(listener, router, limits, shutdown));
}
