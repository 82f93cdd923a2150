//! WebSocket transport: subprotocol `janus-protocol` (main API) or
//! `janus-admin-protocol` (admin API). Events of the sessions a socket created or
//! claimed are pushed on it; closing it ends them unless claimed elsewhere.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::Hub;
use crate::api::Origin;

const MAIN_PROTOCOL: &str = "janus-protocol";
const ADMIN_PROTOCOL: &str = "janus-admin-protocol";

#[derive(Clone)]
struct WsState {
    hub: Arc<Hub>,
    admin: bool,
}

/// A router upgrading any path to the main or admin WebSocket API.
pub(crate) fn router(hub: Arc<Hub>, admin: bool) -> Router {
    Router::new()
        .fallback(upgrade)
        .with_state(WsState { hub, admin })
}

async fn upgrade(
    State(st): State<WsState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if st.admin && !same_origin(&headers) {
        // A page on another site must not drive the admin API through a browser.
        return (
            StatusCode::FORBIDDEN,
            "cross-origin admin WebSocket refused",
        )
            .into_response();
    }
    let protocol = if st.admin {
        ADMIN_PROTOCOL
    } else {
        MAIN_PROTOCOL
    };
    let Ok(ws) = ws else {
        return (StatusCode::BAD_REQUEST, "WebSocket upgrade expected").into_response();
    };
    let ws = ws
        .protocols([protocol])
        .max_message_size(st.hub.config.http.max_body_bytes);
    if ws.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            format!("WebSocket subprotocol '{protocol}' required"),
        )
            .into_response();
    }
    ws.on_upgrade(move |socket| serve(st, socket, client.ip()))
}

async fn serve(st: WsState, mut socket: WebSocket, client: IpAddr) {
    let hub = st.hub;
    let (conn, mut events) = hub.register_conn();
    let origin = Origin::websocket_from(conn, client);
    let send_timeout = Duration::from_secs(hub.config.websocket.send_timeout_seconds.max(1));
    let mut shutdown = hub.shutdown.clone();
    tracing::debug!(%conn, admin = st.admin, "WebSocket connected");
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let bytes = match msg {
                    Some(Ok(Message::Text(t))) => t.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                };
                let reply = hub.with_gateway(|g, now| {
                    if st.admin {
                        g.handle_admin_request(now, origin, None, &bytes)
                    } else {
                        g.handle_request(now, origin, None, &bytes)
                    }
                });
                if !send(&mut socket, reply.to_string(), send_timeout).await {
                    break;
                }
            }
            ev = events.recv() => match ev {
                Some(text) => {
                    if !send(&mut socket, text, send_timeout).await {
                        break;
                    }
                }
                None => break,
            },
            _ = shutdown.changed() => break,
        }
    }
    tracing::debug!(%conn, "WebSocket closed");
    hub.unregister_conn(conn);
}

/// Sends one message; false when the client is gone or does not take it in time (a
/// client that stops reading must not hold its connection's loop, or memory, forever).
async fn send(socket: &mut WebSocket, text: String, limit: Duration) -> bool {
    match tokio::time::timeout(limit, socket.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::info!("WebSocket client did not read for {limit:?}: disconnecting it");
            false
        }
    }
}

/// Whether a WebSocket handshake comes from no browser page (no `Origin`) or from a page
/// served by this very host (`Origin`'s host and port equal `Host`).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}
