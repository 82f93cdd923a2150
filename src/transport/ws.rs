//! WebSocket transport: subprotocol `janus-protocol` (main API) or
//! `janus-admin-protocol` (admin API). Events of the sessions a socket created or
//! claimed are pushed on it; closing it ends them unless claimed elsewhere.

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
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
pub fn router(hub: Arc<Hub>, admin: bool) -> Router {
    Router::new()
        .fallback(upgrade)
        .with_state(WsState { hub, admin })
}

async fn upgrade(
    State(st): State<WsState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
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
    ws.on_upgrade(move |socket| serve(st, socket))
}

async fn serve(st: WsState, mut socket: WebSocket) {
    let hub = st.hub;
    let (conn, mut events) = hub.register_conn();
    let origin = Origin::websocket(conn);
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
                if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                    break;
                }
            }
            ev = events.recv() => match ev {
                Some(text) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
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
