//! The built-in pages on janus.js: the camera wall at `/` (every mountpoint, live), and
//! the lab at `/lab` (echo test, one stream with its controls, the phone). janus.js and
//! its adapter come from the `npm install` the setup command runs, never from the repo.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::Hub;

const WALL: &str = include_str!("../../web/wall.html");
const LAB: &str = include_str!("../../web/index.html");
const PLAYER: &str = include_str!("../../web/player.html");

/// `/`, `/lab`, `/player`, `/settings.js`, `/vendor/janus.js`, `/vendor/adapter.js`.
pub(crate) fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/", get(wall))
        .route("/lab", get(lab))
        .route("/player", get(player))
        .route("/settings.js", get(settings))
        .route("/vendor/janus.js", get(janus_js))
        .route("/vendor/adapter.js", get(adapter_js))
        .with_state(hub)
}

async fn wall() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], WALL).into_response()
}

/// The plain WHEP player (no janus.js): `/player?id=<mountpoint>[&token=…]`.
async fn player() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PLAYER).into_response()
}

async fn lab() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], LAB).into_response()
}

/// Tells the page where the APIs are, so it works on any port and host.
/// (And which ICE servers browsers use: `[[media.ice_servers]]`, none by default, so
/// janus.js does not fall back to a public STUN server; and `[web.phone]`, the lab page's
/// phone form filled in, when configured.)
async fn settings(State(hub): State<Arc<Hub>>) -> Response {
    let c = &hub.config;
    let ws_port = if c.websocket.enabled {
        c.websocket.bind.port()
    } else {
        0
    };
    let now = super::ice_servers::unix_now();
    let mut settings = serde_json::json!({
        "httpPath": c.http.base_path,
        "wsPort": ws_port,
        "iceServers": super::ice_servers::for_browsers(&c.media.ice_servers, now),
    });
    let phone = &c.web.phone;
    if !phone.user.is_empty() || !phone.dial.is_empty() {
        settings["phone"] = serde_json::json!({
            "user": phone.user,
            "secret": phone.secret,
            "proxy": phone.proxy,
            "dial": phone.dial,
        });
    }
    let body = format!("window.CARDEA = {settings};\n");
    ([(header::CONTENT_TYPE, "text/javascript")], body).into_response()
}

async fn vendor(hub: &Hub, rel: &str) -> Response {
    let path: PathBuf = hub.config.web.node_modules.join(rel);
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "text/javascript")], bytes).into_response(),
        Err(e) => (
            StatusCode::NOT_FOUND,
            format!(
                "{}: {e}. Run the README's setup (it installs janus-gateway from npm), or set web.node_modules.",
                path.display()
            ),
        )
            .into_response(),
    }
}

async fn janus_js(State(hub): State<Arc<Hub>>) -> Response {
    vendor(&hub, "janus-gateway/npm/dist/janus.es.js").await
}

async fn adapter_js(State(hub): State<Arc<Hub>>) -> Response {
    vendor(&hub, "webrtc-adapter/out/adapter.js").await
}
