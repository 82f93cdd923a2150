//! HTTP REST + long-poll transport, main and admin API, with CORS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Map, Value};

use super::Hub;
use crate::api::{code, error_reply, ApiError, HandleId, LongPollError, Origin, SessionId, Target};

/// Most events one long poll returns, whatever `maxev` asks.
const MAX_EVENTS: usize = 100;

/// The main API at `http.base_path`.
pub(crate) fn main_router(hub: Arc<Hub>) -> Router {
    let base = hub.config.http.base_path.clone();
    Router::new()
        .route(&base, post(main_root).get(info_root))
        .route(
            &format!("{base}/{{session}}"),
            post(main_session).get(long_poll),
        )
        .route(&format!("{base}/{{session}}/{{handle}}"), post(main_handle))
        .layer(middleware::from_fn_with_state(hub.clone(), cors))
        .with_state(hub)
}

/// The admin API at `http.admin_base_path`. No CORS headers: a page of another origin
/// must not read what the admin API answers (Janus answers `*` there too; we do not).
pub(crate) fn admin_router(hub: Arc<Hub>) -> Router {
    let base = hub.config.http.admin_base_path.clone();
    Router::new()
        .route(&base, post(admin_root).get(admin_info))
        .route(&format!("{base}/{{session}}"), post(admin_session))
        .route(
            &format!("{base}/{{session}}/{{handle}}"),
            post(admin_handle),
        )
        .with_state(hub)
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        v.to_string(),
    )
        .into_response()
}

/// How long a request body may take to arrive (a client trickling it byte by byte
/// must not hold its request open).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the body up to the configured cap; over it, HTTP 413 with a Janus error; too
/// slow, HTTP 408.
async fn read_body(hub: &Hub, body: Body) -> Result<Bytes, Response> {
    let limit = hub.config.http.max_body_bytes;
    let refuse = |status, reason: String| {
        let e = ApiError::new(code::TRANSPORT_SPECIFIC, reason);
        json_response(status, &error_reply(None, None, &e))
    };
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body too large (limit is {limit} bytes)"),
        )),
        Err(_) => Err(refuse(
            StatusCode::REQUEST_TIMEOUT,
            format!("Request body not received within {BODY_TIMEOUT:?}"),
        )),
    }
}

/// Reads `<session>[/<handle>]` from the path; a non-number is an unknown id, as in Janus.
fn url_target(session: &str, handle: Option<&str>) -> Result<Target, ApiError> {
    let sid = match session.parse::<u64>() {
        Ok(n) if n > 0 => SessionId(n),
        _ => {
            return Err(ApiError::new(
                code::SESSION_NOT_FOUND,
                format!("Invalid session {session}"),
            ))
        }
    };
    let hid = match handle.map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) if n > 0 => Some(HandleId(n)),
        Some(_) => {
            return Err(ApiError::new(
                code::HANDLE_NOT_FOUND,
                format!("Invalid handle {}", handle.unwrap_or_default()),
            ))
        }
    };
    Ok(Target {
        session: Some(sid),
        handle: hid,
    })
}

async fn request(
    hub: Arc<Hub>,
    admin: bool,
    origin: Origin,
    target: Result<Target, ApiError>,
    body: Body,
) -> Response {
    let target = match target {
        Ok(t) => t,
        Err(e) => return json_response(StatusCode::OK, &error_reply(None, None, &e)),
    };
    let bytes = match read_body(&hub, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let reply = hub.with_gateway(|g, now| {
        if admin {
            g.handle_admin_request(now, origin, Some(target), &bytes)
        } else {
            g.handle_request(now, origin, Some(target), &bytes)
        }
    });
    json_response(StatusCode::OK, &reply)
}

/// The root takes `create`: the client's address counts its sessions.
async fn main_root(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: Body,
) -> Response {
    let origin = Origin::http_from(client.ip());
    request(hub, false, origin, Ok(Target::default()), body).await
}

async fn main_session(State(hub): State<Arc<Hub>>, Path(s): Path<String>, body: Body) -> Response {
    request(hub, false, Origin::HTTP, url_target(&s, None), body).await
}

async fn main_handle(
    State(hub): State<Arc<Hub>>,
    Path((s, h)): Path<(String, String)>,
    body: Body,
) -> Response {
    request(hub, false, Origin::HTTP, url_target(&s, Some(&h)), body).await
}

async fn admin_root(State(hub): State<Arc<Hub>>, body: Body) -> Response {
    request(hub, true, Origin::HTTP, Ok(Target::default()), body).await
}

async fn admin_session(State(hub): State<Arc<Hub>>, Path(s): Path<String>, body: Body) -> Response {
    request(hub, true, Origin::HTTP, url_target(&s, None), body).await
}

async fn admin_handle(
    State(hub): State<Arc<Hub>>,
    Path((s, h)): Path<(String, String)>,
    body: Body,
) -> Response {
    request(hub, true, Origin::HTTP, url_target(&s, Some(&h)), body).await
}

fn info_reply(hub: &Hub, admin: bool) -> Response {
    let body = json!({"janus": "info", "transaction": "GET"}).to_string();
    let mut v = hub.with_gateway(|g, now| {
        if admin {
            g.handle_admin_request(now, Origin::HTTP, Some(Target::default()), body.as_bytes())
        } else {
            g.handle_request(now, Origin::HTTP, Some(Target::default()), body.as_bytes())
        }
    });
    if let Some(o) = v.as_object_mut() {
        o.remove("transaction");
    }
    json_response(StatusCode::OK, &v)
}

/// `GET <base>`: Janus answers server info there too.
async fn info_root(State(hub): State<Arc<Hub>>) -> Response {
    info_reply(&hub, false)
}

async fn admin_info(State(hub): State<Arc<Hub>>) -> Response {
    info_reply(&hub, true)
}

/// `GET <base>/<session>?maxev=N`: waits up to `long_poll_seconds` for events.
async fn long_poll(
    State(hub): State<Arc<Hub>>,
    Path(s): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if s == "info" {
        return info_reply(&hub, false);
    }
    let Ok(sid) = s.parse::<u64>().map(SessionId) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut credentials = Map::new();
    let mut maxev = 1usize;
    for (k, v) in query {
        match k.as_str() {
            "maxev" => maxev = v.parse().unwrap_or(1).clamp(1, MAX_EVENTS),
            "apisecret" | "token" => {
                credentials.insert(k, Value::String(v));
            }
            _ => {}
        }
    }
    let batch = maxev > 1;
    #[allow(clippy::disallowed_methods)] // the transport driver owns the wall clock of its holds
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(hub.config.http.long_poll_seconds);
    let notify = hub.waiter(sid);
    let mut shutdown = hub.shutdown.clone();
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match hub.with_gateway(|g, now| g.take_events(now, sid, &credentials, maxev)) {
            Err(LongPollError::NoSuchSession) => return StatusCode::NOT_FOUND.into_response(),
            Err(LongPollError::Unauthorized) => return StatusCode::FORBIDDEN.into_response(),
            Ok(events) if !events.is_empty() => {
                let v = if batch {
                    Value::Array(events)
                } else {
                    events.into_iter().next().unwrap_or(Value::Null)
                };
                return json_response(StatusCode::OK, &v);
            }
            Ok(_) => {}
        }
        tokio::select! {
            _ = &mut notified => continue,
            _ = tokio::time::sleep_until(deadline) => break,
            _ = shutdown.changed() => break,
        }
    }
    let keepalive = json!({"janus": "keepalive"});
    let v = if batch { json!([keepalive]) } else { keepalive };
    json_response(StatusCode::OK, &v)
}

/// Adds CORS headers to every reply and answers preflight requests.
async fn cors(State(hub): State<Arc<Hub>>, req: Request, next: Next) -> Response {
    let origin = HeaderValue::from_str(&hub.config.http.allow_origin)
        .unwrap_or(HeaderValue::from_static("*"));
    let req_headers = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned();
    let req_method = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .cloned();
    let mut resp = if req.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        req_method.unwrap_or(HeaderValue::from_static("GET, POST, OPTIONS")),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        req_headers.unwrap_or(HeaderValue::from_static("Content-Type")),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}
